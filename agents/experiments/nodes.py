"""The nodes of a distributed experiment: learner, actor and evaluator, for any builder.

Every node process unpickles the whole program, so this module imports only light modules; TensorFlow and
Reverb are imported by the nodes (and builder methods) that need them.
"""

import logging
import os
import threading
import time
from typing import Any, Dict, Mapping, Optional

import launch as lp
import replay
from agents import core, utils
from agents.experiments.config import ExperimentConfig
from agents.experiments.evaluation import screen_then_evaluate

_PROGRESS_SECONDS = 5.0
_IDLE_SECONDS = 0.05
_SAMPLE_TIMEOUT_MS = 1000  # The learner re-checks for stop this often while replay is starved.
_CLOSE_TIMEOUT_SECS = 2.0  # For the last priority updates at stop: well inside the termination notice.


class _NonBlockingPublisher:
    """Publishes to a remote VariableServer with at most one call in flight; skips while busy."""

    def __init__(self, variable_server: Any):
        self._variable_server = variable_server
        self._in_flight = None

    def publish(self, params: Any, version: int) -> None:
        if self._in_flight is not None:
            if not self._in_flight.done():
                return  # A newer publication follows soon; never wait on the network.
            self._in_flight.result()  # Surfaces a failed publication.
        self._in_flight = self._variable_server.futures.publish(params, version)


class _RemoteSaveable(core.Saveable):
    """Checkpoints a remote Saveable (the counter node) through its RPCs.

    If the node does not answer within `timeout` seconds (it may have stopped first at shutdown), the last
    state it did return is saved (None if none).
    """

    def __init__(self, client: Any, timeout: float = 1.0):
        self._client = client
        self._timeout = timeout
        self._last_state = None

    def save(self):
        try:
            self._last_state = self._client.futures.save().result(timeout=self._timeout)
        except Exception as error:  # pylint: disable=broad-except  # Any failure of the remote call.
            # Expected at shutdown, when the counter may stop first; worth a warning while the program runs.
            log = logging.debug if lp.stop_event().is_set() else logging.warning
            log("Counter state not refreshed for the checkpoint (%s: %s)", type(error).__name__, error)
        return self._last_state

    def restore(self, state) -> None:
        self._client.restore(state)


def table_status(client: Any) -> Dict[str, Any]:
    """Items in all tables and how long their workers waited (ms).

    `waiting_for_inserts_ms`: samples held back for lack of inserts (learner starved);
    `waiting_for_sampling_ms`: inserts held back until a learner sampled (actors throttled);
    `inserts` / `samples`: the completed insert and sample calls the server counts (since it started).
    """
    info = client.server_info(timeout=5)
    return {
        "replay_size": sum(int(table.current_size) for table in info.values()),
        "inserts": sum(int(t.rate_limiter_info.insert_stats.completed) for t in info.values()),
        "samples": sum(int(t.rate_limiter_info.sample_stats.completed) for t in info.values()),
        "waiting_for_inserts_ms": sum(int(t.table_worker_time.waiting_for_inserts_ms) for t in info.values()),
        "waiting_for_sampling_ms": sum(int(t.table_worker_time.waiting_for_sampling_ms) for t in info.values()),
    }


class LearnerNode:
    """Runs the builder's learner until the program stops; checkpoints it and the counter."""

    def __init__(self, experiment: ExperimentConfig, replay_client: Any, variable_server: Any, counter: Any):
        builder = experiment.builder
        self._client = replay_client
        spec = replay.make_environment_spec(experiment.make_environment(experiment.seed))
        self._priority_updater = (
            replay.PriorityUpdater(replay_client, builder.priority_table) if builder.prioritized else None
        )
        from agents.experiments._iterators import StoppableIterator  # pylint: disable=import-outside-toplevel

        iterator = StoppableIterator(
            lambda: builder.make_dataset_iterator(replay_client.server_address, _SAMPLE_TIMEOUT_MS),
            lp.stop_event().is_set,
        )
        self._learner = builder.make_learner(
            builder.make_networks(spec, experiment.seed),
            iterator,
            publisher=_NonBlockingPublisher(variable_server),
            priority_updater=self._priority_updater,
            counter=utils.Counter(counter, prefix="learner"),
            logger=utils.make_logger(
                "learner", experiment.run_dir, terminal=experiment.verbose, steps_key="learner_steps"
            ),
        )
        self._checkpointer = utils.Checkpointer(
            {**self._learner.checkpoint_objects, "counter": _RemoteSaveable(counter)},
            os.path.join(experiment.run_dir, "checkpoints"),
            time_delta_minutes=experiment.checkpoint_seconds / 60,
        )
        self._final_lock = threading.Lock()
        self._final_saved = False

    def run(self) -> None:
        stop = lp.stop_event()
        # Saved from the stop notice itself: the step loop may be blocked on replay by then.
        lp.register_stop_handler(self._final_checkpoint)
        import tensorflow as tf  # pylint: disable=import-outside-toplevel  # Loaded by the learner already.

        try:
            while not stop.is_set():
                try:
                    self._learner.step()
                except StopIteration:  # The program stopped while the learner waited for data.
                    break
                except (RuntimeError, tf.errors.OpError):
                    if stop.is_set():
                        break  # Replay stopped under a sample or a priority update: the program is ending.
                    raise
                self._checkpointer.save()
        finally:
            self._final_checkpoint()
            if self._priority_updater is not None:
                try:
                    self._priority_updater.close(timeout=_CLOSE_TIMEOUT_SECS)
                except (RuntimeError, TimeoutError) as error:  # Replay may already be gone at shutdown.
                    logging.debug("Last priority updates not sent: %s", error)

    def _final_checkpoint(self) -> None:
        with self._final_lock:
            if self._final_saved:
                return
            self._final_saved = True
            self._checkpointer.save(force=True)

    def status(self) -> Dict[str, Any]:
        """Learner steps, the checkpoint it started from, and the replay tables' state (see table_status)."""
        return {
            "learner_steps": self._learner.num_steps,
            "resumed_from": self._checkpointer.restored_from,
            **table_status(self._client),
        }


class _WithFields(utils.Logger):
    """Adds fields computed at write time to every row (the row's own values win).

    Fields also fix CSV columns that the first row may lack (e.g. `learner_steps` before the learner's first
    count reaches the counter).
    """

    def __init__(self, logger: utils.Logger, fields_fn):
        self._logger = logger
        self._fields_fn = fields_fn

    def write(self, data) -> None:
        self._logger.write({**self._fields_fn(), **data})

    def close(self) -> None:
        self._logger.close()


class ActorNode:
    """One of `num_actors` actors the builder makes, writing to replay through the builder's adder."""

    def __init__(
        self,
        experiment: ExperimentConfig,
        actor_id: int,
        num_actors: int,
        replay_client: Any,
        variable_server: Any,
        counter: Any,
    ):
        builder = experiment.builder
        self._environment = experiment.make_environment(experiment.seed + 1000 * (actor_id + 1))
        spec = replay.make_environment_spec(self._environment)
        self._variable_client = utils.VariableClient(variable_server, builder.variable_update_period())
        self._adder = builder.make_adder(replay_client)
        settings = core.ActorSettings(actor_id=actor_id, num_actors=num_actors, seed=experiment.seed + actor_id)
        self._actor = builder.make_actor(spec, self._variable_client, self._adder, settings)
        self._counter = utils.Counter(counter, prefix="actor", time_delta=0.25)
        logger = utils.make_logger(
            f"actor_{actor_id}", experiment.run_dir, terminal=experiment.verbose, steps_key="actor_steps"
        )
        self._logger = _WithFields(
            logger,
            lambda: {"actor_id": actor_id, "learner_steps": 0, "parameter_version": self._variable_client.version},
        )

    def run(self) -> None:
        stop = lp.stop_event()
        # Once the learner stops sampling, an insert can wait on the rate limiter for good: closing the
        # adder at stop ends that wait (the program is ending, so unsent items do not matter).
        lp.register_stop_handler(self._adder.close)
        loop = core.EnvironmentLoop(self._environment, self._actor, self._counter, self._logger)
        try:
            loop.run(should_stop=stop.is_set)
        except RuntimeError:
            if not stop.is_set():
                raise  # Writes fail once the adder is closed at stop; anything else is a real error.
        finally:
            self._variable_client.close()
            self._logger.close()


class EvaluatorNode:
    """Evaluates each new parameter version greedily; stops the program when solved or out of budget.

    Writes run_dir/result.json and prints the progress line every few seconds.
    """

    def __init__(self, experiment: ExperimentConfig, variable_server: Any, counter: Any, learner: Any):
        self._experiment = experiment
        self._environment = experiment.make_environment(experiment.seed + 10_000)
        self._variable_client = utils.VariableClient(variable_server)
        self._actor = experiment.builder.make_evaluation_actor(
            replay.make_environment_spec(self._environment), self._variable_client, experiment.seed
        )
        self._counter = counter
        self._learner = learner
        # No TensorBoard here: its writer is TensorFlow's, which this numpy node would otherwise never import.
        self._logger = utils.make_logger(
            "evaluator", experiment.run_dir, terminal=experiment.verbose, tensorboard=False
        )
        self._progress = utils.ProgressLine(experiment.start_time)
        self._eval_return: Optional[float] = None

    def run(self) -> None:
        stop = lp.stop_event()
        evaluated_version = -1
        last_progress = time.monotonic()
        status: Dict[str, Any] = {"learner_steps": 0, "replay_size": None}
        experiment = self._experiment
        try:
            while not stop.is_set():
                self._variable_client.update(wait=True)
                counts = self._counter.get_counts()
                version = self._variable_client.version
                solved = False
                if version > max(evaluated_version, 0):
                    evaluated_version = version
                    screen_return, mean_return, solved = screen_then_evaluate(
                        self._environment,
                        self._actor,
                        experiment.eval_episodes,
                        experiment.solved_return,
                        experiment.max_return,
                    )
                    if mean_return is not None:
                        self._eval_return = mean_return
                    self._logger.write(
                        {
                            "actor_steps": counts.get("actor_steps", 0),
                            "learner_steps": counts.get("learner_steps", 0),
                            "parameter_version": version,
                            "screen_return": screen_return,
                            "eval_return": float("nan") if mean_return is None else mean_return,
                        }
                    )
                else:
                    stop.wait(_IDLE_SECONDS)
                if time.monotonic() - last_progress >= _PROGRESS_SECONDS or solved:
                    last_progress = time.monotonic()
                    status = self._learner.status()
                    self._progress.show(
                        counts.get("actor_steps", 0), status["learner_steps"], status["replay_size"], self._eval_return
                    )
                if solved or experiment.out_of_budget(counts.get("actor_steps", 0)):
                    self._finish(solved, status)
                    return
        finally:
            self._variable_client.close()
            self._logger.close()

    def _finish(self, solved: bool, status: Mapping[str, Any]) -> None:
        counts = self._counter.get_counts()
        try:
            status = self._learner.status()
        except (TimeoutError, ConnectionError, lp.RemoteError) as error:
            logging.warning("Learner status unavailable at the end; keeping the last one: %s", error)
        utils.write_json(
            os.path.join(self._experiment.run_dir, "result.json"),
            {
                "solved": solved,
                "wall_seconds": time.time() - self._experiment.start_time,
                "eval_return": self._eval_return,
                "actor_steps": counts.get("actor_steps", 0),
                "learner_steps": max(counts.get("learner_steps", 0), status["learner_steps"]),
                "replay_size": status["replay_size"],
                "replay_waiting_for_inserts_ms": status.get("waiting_for_inserts_ms"),
                "replay_waiting_for_sampling_ms": status.get("waiting_for_sampling_ms"),
                "replay_inserts": status.get("inserts"),
                "replay_samples": status.get("samples"),
                "resumed_from": status.get("resumed_from"),
                "parameter_version": self._variable_client.version,
            },
        )
        lp.stop()
