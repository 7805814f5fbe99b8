"""The nodes of a distributed experiment: learner, actor and evaluator, for any builder.

Every node process unpickles the whole program, so this module imports only light modules; TensorFlow and
Reverb are imported by the nodes (and builder methods) that need them.
"""

import concurrent.futures
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, Optional, Sequence

import launch as lp
import replay
from agents import core, utils
from agents.experiments.config import ExperimentConfig
from agents.experiments.evaluation import Evaluations, make_evaluator_logger

_PROGRESS_SECONDS = 5.0
_LEARNER_LOG_SECONDS = 1.0  # At most one learner log row a second: hundreds of steps a second would flood it.
_IDLE_SECONDS = 0.05
_SAMPLE_TIMEOUT_MS = 1000  # The learner re-checks for stop this often while replay is starved.
_CLOSE_TIMEOUT_SECS = 2.0  # For the last priority updates at stop: well inside the termination notice.
_RETRY_SECONDS = 0.5  # Between calls to a node that did not answer.
_FINAL_CALL_SECONDS = 1.0  # For the last counts and learner status once the program is stopping.
_STOP_POLL_SECONDS = 0.1  # How often a push waiting on a parameter server checks whether the program stops.


# What a call to a node that is down or restarting raises (courier clients rebuild remote errors with their type).
_NODE_DOWN_ERRORS = (ConnectionError, TimeoutError, lp.RemoteError)


def _brief(error: BaseException) -> str:
    """What a warning shows of an error: its first line (the cause) and, for an error raised in another node, which
    node; that node's traceback, the rest of a remote error's text, would bury both in the log."""
    lines = str(error).splitlines()
    if not lines:
        return type(error).__name__
    where = next((line for line in lines if line.startswith("Raised remotely in ")), None)
    return f"{lines[0]} ({where.rstrip(':')})" if where else lines[0]


class _NonBlockingPublisher:
    """Publishes to a remote VariableServer with at most one call in flight; skips while busy.

    A failed publication is logged (once until one succeeds again) and the learner goes on: the variable server
    may be restarting, or, after the learner itself restarted from a checkpoint, still hold a newer version than
    the restored step count (refused until the learner passes it).
    """

    def __init__(self, variable_server: Any):
        self._variable_server = variable_server
        self._in_flight = None
        self._failing = False

    def publish(self, params: Any, version: int) -> None:
        if self._in_flight is not None:
            if not self._in_flight.done():
                return  # A newer publication follows soon; never wait on the network.
            error = self._in_flight.exception()
            if error is not None and not self._failing:
                logging.warning("Publishing parameters failed (retrying with the next ones): %s", _brief(error))
            elif error is None and self._failing:
                logging.warning("Publishing parameters works again.")
            self._failing = error is not None
        self._in_flight = self._variable_server.futures.publish(params, version)


class StoppableGradientSink:
    """A client of a parameter server whose pushes give up (returning None) once `stop` is set, rather than wait out
    a barrier or the call's timeout."""

    def __init__(self, server: Any, stop: threading.Event):
        self._server = server
        self._stop = stop

    def push_gradients(self, gradients: Any, based_on_version: int, group: int = 0) -> Optional[core.Versioned]:
        future = self._server.futures.push_gradients(gradients, based_on_version, group)
        while True:
            try:
                return future.result(timeout=_STOP_POLL_SECONDS)
            except concurrent.futures.TimeoutError:
                if self._stop.is_set():  # Left to finish (or fail) on its own: the node closes the client.
                    return None

    def get(self, known_version: int = -1) -> Optional[core.Versioned]:
        return self._server.get(known_version)


class _TolerantPriorityUpdater:
    """A replay.PriorityUpdater whose failed sends are logged and dropped instead of failing the learner step: replay
    killed under a send resets the connection, and a restarted replay holds its items' checkpointed priorities,
    refreshed as they are sampled again."""

    def __init__(self, updater: Any):
        self._updater = updater

    def update(self, keys: Any, priorities: Any) -> None:
        try:
            self._updater.update(keys, priorities)
        except RuntimeError as error:  # An earlier send failed; raising it cleared it.
            logging.warning("Priority updates dropped: %s", _brief(error))
            self._updater.update(keys, priorities)  # Still raises if the updater was closed.


class CounterNode(utils.Counter):
    """The program's counter, checkpointed to `path` (JSON) every `period_seconds`, at stop, and restored from it
    when the node starts, so a restarted counter node continues from its last checkpoint and a resumed run from
    where it stopped."""

    def __init__(self, path: str, period_seconds: float):
        super().__init__()
        self._path = path
        self._period_seconds = period_seconds
        if os.path.exists(path):
            self.restore(utils.read_json(path))

    def run(self) -> None:
        stop = lp.stop_event()
        while not stop.wait(self._period_seconds):
            utils.write_json(self._path, self.save())
        utils.write_json(self._path, self.save())


def table_status(client: Any) -> Dict[str, Any]:
    """Items in all tables and how long their workers waited (ms).

    `waiting_for_inserts_ms`: samples held back for lack of inserts (learner starved);
    `waiting_for_sampling_ms`: inserts held back until a learner sampled (actors throttled);
    `inserts` / `samples`: the completed insert and sample calls the server counts (since it started).
    """
    info = replay.server_info(client, timeout_secs=5)  # ConnectionError naming the address if replay is down.
    return {
        "replay_size": sum(int(table.current_size) for table in info.values()),
        "inserts": sum(int(t.rate_limiter_info.insert_stats.completed) for t in info.values()),
        "samples": sum(int(t.rate_limiter_info.sample_stats.completed) for t in info.values()),
        "waiting_for_inserts_ms": sum(int(t.table_worker_time.waiting_for_inserts_ms) for t in info.values()),
        "waiting_for_sampling_ms": sum(int(t.table_worker_time.waiting_for_sampling_ms) for t in info.values()),
    }


def make_parameter_server(experiment: ExperimentConfig) -> utils.ParameterServer:
    """The parameter server of a builder with several learners (core.Builder.make_parameter_server), logging its
    stats() to run_dir/logs/parameter_server.csv."""
    replay.import_tensorflow()
    return experiment.builder.make_parameter_server(
        replay.make_environment_spec(experiment.make_environment(experiment.seed)),
        experiment.seed,
        logger=utils.make_logger(
            "parameter_server", experiment.run_dir, terminal=experiment.verbose, steps_key="updates"
        ),
    )


def replay_status(clients: Sequence[Any]) -> Dict[str, Any]:
    """table_status summed over replay shards; with several, `replay_shards` lists each shard's own."""
    shards = [table_status(client) for client in clients]
    total = {field: sum(shard[field] for shard in shards) for field in shards[0]}
    return {**total, "replay_shards": shards} if len(shards) > 1 else total


class LearnerNode:
    """Runs the builder's learner until the program stops; checkpoints it (the counter node checkpoints itself).

    With several replay shards, the learner takes batches from each in turn and priorities go back to the shard
    each item came from (replay.InterleavedSamples, replay.ShardedPriorityUpdater).

    With a `learner_id`, it is that one of the builder's several learners (see core.Builder.num_learners):
    `variable_server` is then a parameter server it pushes gradients to, it logs as learner_<id>, keeps no checkpoint
    (the server holds the parameters and optimizer) and its status() includes the server's stats().
    """

    def __init__(
        self,
        experiment: ExperimentConfig,
        replay_clients: Sequence[Any],
        variable_server: Any,
        counter: Any,
        learner_id: Optional[int] = None,
    ):
        builder = experiment.builder
        self._clients = list(replay_clients)
        spec = replay.make_environment_spec(experiment.make_environment(experiment.seed))
        from agents.experiments._iterators import StoppableIterator  # pylint: disable=import-outside-toplevel

        iterators = [
            StoppableIterator(
                # Each shard's dataset starts over on its own when its rate limiter holds it past the timeout.
                lambda address=client.server_address: builder.make_dataset_iterator(address, _SAMPLE_TIMEOUT_MS),
                lp.stop_event().is_set,
            )
            for client in self._clients
        ]
        iterator = iterators[0] if len(iterators) == 1 else replay.InterleavedSamples(iterators)
        self._priority_updater = None
        if builder.prioritized:
            updaters = [replay.PriorityUpdater(client, builder.priority_table) for client in self._clients]
            self._priority_updater = (
                updaters[0] if len(updaters) == 1 else replay.ShardedPriorityUpdater(updaters, iterator.shards_of)
            )
        learner_parts = dict(
            priority_updater=None
            if self._priority_updater is None
            else _TolerantPriorityUpdater(self._priority_updater),
            counter=utils.Counter(counter, prefix="learner"),
            logger=utils.make_logger(
                "learner" if learner_id is None else f"learner_{learner_id}",
                experiment.run_dir,
                terminal=experiment.verbose,
                time_delta=_LEARNER_LOG_SECONDS,
                steps_key="learner_steps",
            ),
        )
        networks = builder.make_networks(spec, experiment.seed)
        self._parameter_server = None if learner_id is None else variable_server
        self._checkpointer: Optional[utils.Checkpointer] = None
        if learner_id is None:
            self._learner = builder.make_learner(
                networks, iterator, publisher=_NonBlockingPublisher(variable_server), **learner_parts
            )
            self._checkpointer = utils.Checkpointer(
                self._learner.checkpoint_objects,
                os.path.join(experiment.run_dir, "checkpoints"),
                time_delta_minutes=experiment.checkpoint_seconds / 60,
            )
        else:
            sink = StoppableGradientSink(variable_server, lp.stop_event())
            self._learner = builder.make_gradient_learner(networks, iterator, sink, **learner_parts)
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
                if self._checkpointer is not None:
                    self._checkpointer.save()
        finally:
            self._final_checkpoint()
            if self._parameter_server is not None:
                # A push sent as the program stopped waits for a server that is gone until its timeout: end it now.
                self._parameter_server.close()
            if self._priority_updater is not None:
                try:
                    self._priority_updater.close(timeout=_CLOSE_TIMEOUT_SECS)
                except (RuntimeError, TimeoutError) as error:  # Replay may already be gone at shutdown.
                    logging.debug("Last priority updates not sent: %s", error)

    def _final_checkpoint(self) -> None:
        with self._final_lock:
            if self._final_saved or self._checkpointer is None:
                return
            self._final_saved = True
            self._checkpointer.save(force=True)

    def status(self) -> Dict[str, Any]:
        """Learner steps, the CPU seconds its process has used (with nodes as threads, the program's), the
        checkpoint it started from, the replay tables' state (see table_status) and, for one of several learners,
        `parameter_server`: the server's stats()."""
        return {
            "learner_steps": self._learner.num_steps,
            "cpu_seconds": time.process_time(),
            "resumed_from": None if self._checkpointer is None else self._checkpointer.restored_from,
            **replay_status(self._clients),
            **({} if self._parameter_server is None else {"parameter_server": self._parameter_server.stats()}),
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


class _RenewableAdder:
    """The builder's adder, replaceable by a new one (`renew()`) when replay stopped answering."""

    def __init__(self, make_adder: Callable[[], Any]):
        self._make_adder = make_adder
        self._adder = make_adder()

    def add_first(self, *args, **kwargs) -> None:
        self._adder.add_first(*args, **kwargs)

    def add(self, *args, **kwargs) -> None:
        self._adder.add(*args, **kwargs)

    def reset(self, *args, **kwargs) -> None:
        self._adder.reset(*args, **kwargs)

    def renew(self) -> None:
        """Drops the current adder (and what it had not sent) for a new one; the next write starts an episode."""
        old, self._adder = self._adder, self._make_adder()
        old.close()

    def close(self) -> None:
        self._adder.close()


class ActorNode:
    """One of `num_actors` actors the builder makes, writing to replay through the builder's adder.

    If replay stops answering (killed, restarting), the adder raises ConnectionError after its timeout: the
    actor drops the episode in progress and starts a new one with a new adder.
    """

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
        # Owns the client: closing it at stop ends a poll still waiting for a variable server that is gone.
        self._variable_client = utils.VariableClient(
            variable_server, builder.variable_update_period(), closes_source=True
        )
        self._waits_for_parameters = builder.actors_wait_for_parameters()
        self._adder = _RenewableAdder(lambda: builder.make_adder(replay_client))
        settings = core.ActorSettings(actor_id=actor_id, num_actors=num_actors, seed=experiment.seed + actor_id)
        self._actor = builder.make_actor(spec, self._variable_client, self._adder, settings)
        self._counter = utils.Counter(counter, prefix="actor", time_delta=0.25)
        logger = utils.make_logger(
            f"actor_{actor_id}", experiment.run_dir, terminal=experiment.verbose, steps_key="actor_steps"
        )
        self._logger = _WithFields(
            logger,
            # cpu_seconds: this actor process's CPU time so far (what acting costs, next to the learner's).
            lambda: {
                "actor_id": actor_id,
                "learner_steps": 0,
                "parameter_version": self._variable_client.version,
                "cpu_seconds": time.process_time(),
            },
        )

    def run(self) -> None:
        stop = lp.stop_event()
        # Once the learner stops sampling, an insert can wait on the rate limiter for good: closing the
        # adder at stop ends that wait (the program is ending, so unsent items do not matter).
        lp.register_stop_handler(self._adder.close)
        loop = core.EnvironmentLoop(self._environment, self._actor, self._counter, self._logger)
        try:
            if self._waits_for_parameters:
                self._wait_for_first_parameters(stop)
            while not stop.is_set():
                try:
                    loop.run(should_stop=stop.is_set)
                except ConnectionError as error:
                    if stop.is_set():
                        break
                    logging.warning("Replay did not answer; starting a new episode with a new adder: %s", _brief(error))
                    self._adder.renew()
                except RuntimeError:
                    if not stop.is_set():
                        raise  # Writes fail once the adder is closed at stop; anything else is a real error.
        finally:
            self._variable_client.close()
            self._logger.close()

    def _wait_for_first_parameters(self, stop: threading.Event) -> None:
        """Until the learner has published (or the program stops); a variable server still starting is retried."""
        while self._variable_client.version < 0 and not stop.is_set():
            try:
                self._variable_client.update(wait=True)
            except _NODE_DOWN_ERRORS as error:
                logging.info("The variable server did not answer yet (retrying): %s", _brief(error))
            if self._variable_client.version < 0:
                stop.wait(_IDLE_SECONDS)


class EvaluatorNode:
    """Evaluates the learner's parameters greedily (see `Evaluations`); stops the program when solved (unless
    the run trains to its budget) or out of budget.

    Writes run_dir/result.json, with `stopped_by` "solved", "budget" or "user" (the program was stopped from
    outside, e.g. by Ctrl-C), and prints the progress line every few seconds. A node it calls that is down (e.g.
    restarting) is retried rather than fatal.
    """

    def __init__(self, experiment: ExperimentConfig, variable_server: Any, counter: Any, learner: Any):
        self._experiment = experiment
        self._variable_client = utils.VariableClient(variable_server)
        environment = experiment.make_environment(experiment.seed + 10_000)
        actor = experiment.builder.make_evaluation_actor(
            replay.make_environment_spec(environment), self._variable_client, experiment.seed
        )
        self._logger = make_evaluator_logger(experiment)
        self._evaluations = Evaluations(experiment, environment, actor, self._logger)
        self._counter = counter
        self._learner = learner
        self._progress = utils.ProgressLine(experiment.start_time)
        self._evaluated_version = -1
        self._resumed = False
        self._last_progress = time.monotonic()
        # The latest answers of the counter and the learner, for result.json when they no longer answer.
        self._counts: Dict[str, Any] = {}
        self._status: Dict[str, Any] = {"learner_steps": 0, "replay_size": None}

    def run(self) -> None:
        stop = lp.stop_event()
        stopped_by = None
        failing = False
        try:
            while stopped_by is None and not stop.is_set():
                try:
                    stopped_by = self._round()
                except _NODE_DOWN_ERRORS as error:
                    # While the program stops, nodes going down is expected, not worth a warning.
                    if not failing and not stop.is_set():
                        logging.warning("A node did not answer the evaluator (retrying): %s", _brief(error))
                    failing = True
                    stop.wait(_RETRY_SECONDS)
                else:
                    failing = False
            self._finish(stopped_by or "user")
        finally:
            self._variable_client.close()
            self._logger.close()

    def _round(self) -> Optional[str]:
        """Evaluates a new parameter version if one is due; returns "solved" or "budget" when the run ends."""
        self._counts = self._counter.get_counts()
        actor_steps = self._counts.get("actor_steps", 0)
        if not self._resumed:  # The first round: a resumed run evaluates from where it stopped.
            self._evaluations.resume(actor_steps)
            self._resumed = True
        solved = evaluated = False
        if self._evaluations.due(actor_steps):
            self._variable_client.update(wait=True)
            version = self._variable_client.version
            if version > max(self._evaluated_version, 0):
                self._evaluated_version, evaluated = version, True
                solved = self._evaluations.run(self._counts, version)
        if not evaluated:
            lp.stop_event().wait(_IDLE_SECONDS)
        if time.monotonic() - self._last_progress >= _PROGRESS_SECONDS or solved:
            self._last_progress = time.monotonic()
            self._status = self._learner.status()
            self._progress.show(
                self._counts.get("actor_steps", 0),
                self._status["learner_steps"],
                self._status["replay_size"],
                self._evaluations.eval_return,
                self._evaluations.eval_actor_steps,
            )
        if solved:
            return "solved"
        if self._experiment.out_of_budget(actor_steps):
            self._variable_client.update(wait=True)
            if self._variable_client.version > 0:  # Parameters to evaluate.
                self._evaluations.final(self._counts, self._variable_client.version)
            return "budget"
        return None

    def _finish(self, stopped_by: str) -> None:
        stopping = lp.stop_event().is_set()
        # When the program is stopping, the counter and learner answer only for a moment (if at all).
        timeout = _FINAL_CALL_SECONDS if stopping else None
        try:
            self._counts = self._counter.futures.get_counts().result(timeout=timeout)
            self._status = self._learner.futures.status().result(timeout=timeout)
        except (*_NODE_DOWN_ERRORS, concurrent.futures.TimeoutError) as error:
            logging.warning("Counts or learner status unavailable at the end; keeping the last ones: %s", _brief(error))
        counts, status = self._counts, self._status
        utils.write_json(
            os.path.join(self._experiment.run_dir, "result.json"),
            {
                "stopped_by": stopped_by,
                "wall_seconds": time.time() - self._experiment.start_time,
                **self._evaluations.result_fields(),
                "actor_steps": counts.get("actor_steps", 0),
                "learner_steps": max(counts.get("learner_steps", 0), status["learner_steps"]),
                "replay_size": status["replay_size"],
                "learner_cpu_seconds": status.get("cpu_seconds"),
                "replay_waiting_for_inserts_ms": status.get("waiting_for_inserts_ms"),
                "replay_waiting_for_sampling_ms": status.get("waiting_for_sampling_ms"),
                "replay_inserts": status.get("inserts"),
                "replay_samples": status.get("samples"),
                "resumed_from": status.get("resumed_from"),
                "parameter_version": self._variable_client.version,
                # A parameter server as the learner (agents.utils.ParameterServer.status): pushes, staleness.
                **({"parameter_server": status["parameter_server"]} if "parameter_server" in status else {}),
                # Several replay shards (replay_status): each shard's own counts.
                **({"replay_shards": status["replay_shards"]} if "replay_shards" in status else {}),
            },
        )
        if not stopping:
            lp.stop()
