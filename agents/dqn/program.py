"""The distributed Ape-X DQN program: replay, counter, learner, variable server, actors, evaluator.

Every node process unpickles the whole program, so this module imports only
light modules; TensorFlow and Reverb are imported inside the nodes that need
them (replay, learner, actors). The counter, variable server and evaluator
never import TensorFlow.
"""

import functools
import logging
import os
import threading
import time
from typing import Any, Dict, Optional

import launch as lp
from agents import core, envs, utils
from agents.dqn.acting import DQNActor, apex_epsilons, screen_then_evaluate
from agents.dqn.config import DQNConfig

_PROGRESS_SECONDS = 5.0
_IDLE_SECONDS = 0.05
_SAMPLE_TIMEOUT_MS = 1000  # The learner re-checks for stop this often while replay is starved.
# Calls to a node that has stopped fail after this long instead of waiting for it forever.
_CALL_TIMEOUT = {"call_timeout": 3.0}


def _environment_spec(env_name: str):
    import replay  # pylint: disable=import-outside-toplevel
    return replay.make_environment_spec(envs.make_environment(env_name))


def _replay_tables(config: DQNConfig, env_name: str):
    from agents.dqn.builder import DQNBuilder  # pylint: disable=import-outside-toplevel
    return DQNBuilder(config).make_replay_tables(_environment_spec(env_name))


class _NonBlockingPublisher:
    """Publishes to a remote VariableServer with at most one call in flight; skips while busy."""

    def __init__(self, variable_server: Any):
        self._variable_server = variable_server
        self._in_flight = None

    def update(self, params: Any, version: int) -> None:
        if self._in_flight is not None:
            if not self._in_flight.done():
                return  # A newer publication follows soon; never wait on the network.
            self._in_flight.result()  # Surfaces a failed publication.
        self._in_flight = self._variable_server.futures.update(params, version)


class _RemoteSaveable(core.Saveable):
    """Checkpoints a remote Saveable (e.g. the counter node) through its RPCs.

    If the node does not answer within `timeout` seconds (it may have stopped
    first at shutdown), the last state it did return is saved (None if none).
    """

    def __init__(self, client: Any, timeout: float = 1.0):
        self._client = client
        self._timeout = timeout
        self._last_state = None

    def save(self):
        try:
            self._last_state = self._client.futures.save().result(timeout=self._timeout)
        except Exception:  # pylint: disable=broad-except
            pass
        return self._last_state

    def restore(self, state) -> None:
        self._client.restore(state)


class LearnerNode:
    """Runs the DQN learner until the program stops; checkpoints it and the counter."""

    def __init__(self, config: DQNConfig, env_name: str, replay_client: Any, variable_server: Any,
                 counter: Any, run_dir: str, seed: int = 0, verbose: bool = False):
        import replay  # pylint: disable=import-outside-toplevel
        from agents.dqn.builder import DQNBuilder  # pylint: disable=import-outside-toplevel
        self._config = config
        self._client = replay_client
        builder = DQNBuilder(config)
        self._builder = builder
        spec = _environment_spec(env_name)
        self._priority_updater = replay.PriorityUpdater(replay_client, config.replay_table_name)
        self._learner = builder.make_learner(
            builder.make_networks(spec, seed=seed),
            builder.make_dataset_iterator(replay_client.server_address, _SAMPLE_TIMEOUT_MS),
            priority_updater=self._priority_updater,
            variable_server=_NonBlockingPublisher(variable_server),
            counter=utils.Counter(counter, prefix="learner"),
            logger=utils.make_logger("learner", run_dir, terminal=verbose, steps_key="learner_steps"))
        self._checkpointer = utils.Checkpointer(
            {**self._learner.state, "counter": _RemoteSaveable(counter)},
            os.path.join(run_dir, "checkpoints"), time_delta_minutes=5.0)
        self._final_lock = threading.Lock()
        self._final_saved = False

    def run(self) -> None:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        stop = lp.stop_event()
        # Saved from the stop notice itself: the step loop may be blocked on replay by then.
        lp.register_stop_handler(self._final_checkpoint)
        try:
            while not stop.is_set():
                try:
                    self._learner.step()
                except (tf.errors.OutOfRangeError, tf.errors.DeadlineExceededError):
                    # Replay had nothing to give for a while (or is shutting down): start over.
                    if stop.is_set():
                        break
                    self._learner.replace_iterator(self._builder.make_dataset_iterator(
                        self._client.server_address, _SAMPLE_TIMEOUT_MS))
                self._checkpointer.save()
        except Exception:  # pylint: disable=broad-except
            if not stop.is_set():
                raise  # Errors while the program shuts down (replay gone) are expected.
        finally:
            self._final_checkpoint()
            try:
                self._priority_updater.close()
            except RuntimeError as error:  # Replay may already be gone at shutdown.
                logging.info("Last priority updates not sent: %s", error)

    def _final_checkpoint(self) -> None:
        with self._final_lock:
            if self._final_saved:
                return
            self._final_saved = True
            try:
                self._checkpointer.save(force=True)
            except Exception as error:  # pylint: disable=broad-except
                logging.warning("Final learner checkpoint failed: %s", error)

    def status(self) -> Dict[str, Any]:
        """Learner steps, the replay table's size and how long its worker waited (ms).

        `waiting_for_inserts_ms`: samples held back for lack of inserts (learner
        starved); `waiting_for_sampling_ms`: inserts held back until the learner
        sampled (actors throttled by the rate limiter).
        """
        info = self._client.server_info(timeout=5)[self._config.replay_table_name]
        worker = info.table_worker_time
        return {"learner_steps": self._learner.num_steps, "replay_size": int(info.current_size),
                "waiting_for_inserts_ms": int(worker.waiting_for_inserts_ms),
                "waiting_for_sampling_ms": int(worker.waiting_for_sampling_ms)}


class ActorNode:
    """An actor with its own epsilon, writing n-step transitions to replay."""

    def __init__(self, config: DQNConfig, env_name: str, actor_id: int, epsilon: float,
                 replay_client: Any, variable_server: Any, counter: Any, run_dir: str,
                 seed: int = 0, verbose: bool = False):
        from agents.dqn.builder import DQNBuilder  # pylint: disable=import-outside-toplevel
        builder = DQNBuilder(config)
        self._environment = envs.make_environment(env_name, seed=seed + 1000 * (actor_id + 1))
        spec = _environment_spec(env_name)
        self._variable_client = utils.VariableClient(variable_server, config.variable_update_period)
        self._adder = builder.make_adder(replay_client)
        self._actor = builder.make_actor(spec, self._variable_client, epsilon, adder=self._adder,
                                         seed=seed + actor_id)
        self._counter = utils.Counter(counter, prefix="actor", time_delta=0.25)
        logger = utils.make_logger(f"actor_{actor_id}", run_dir, terminal=verbose,
                                   steps_key="actor_steps")
        self._logger = _WithFields(logger, lambda: {
            "actor_id": actor_id, "epsilon": epsilon, "learner_steps": 0,
            "parameter_version": self.parameter_version()})

    def run(self) -> None:
        stop = lp.stop_event()
        # Once the learner stops sampling, an insert can wait on the rate limiter for good: closing the
        # adder at stop ends that wait (the program is ending, so unsent transitions do not matter).
        lp.register_stop_handler(self._adder.close)
        loop = core.EnvironmentLoop(self._environment, self._actor, self._counter, self._logger)
        try:
            loop.run(should_stop=stop.is_set)
        except Exception:  # pylint: disable=broad-except
            if not stop.is_set():
                raise  # Writers fail once replay stops; that is expected at shutdown.
        finally:
            self._variable_client.close()
            self._logger.close()

    def parameter_version(self) -> int:
        """The version of the parameters the actor acts with (-1 before the first)."""
        return self._variable_client.version


class EvaluatorNode:
    """Evaluates each new parameter version greedily; stops the program when solved or out of budget.

    Writes run_dir/result.json and prints the progress line every few seconds.
    """

    def __init__(self, config: DQNConfig, env_name: str, variable_server: Any, counter: Any,
                 learner: Any, run_dir: str, start_time: float, seed: int = 0,
                 max_seconds: Optional[float] = None, max_actor_steps: Optional[int] = None,
                 verbose: bool = False):
        self._config = config
        self._environment = envs.make_environment(env_name, seed=seed + 10_000)
        spec_actions = self._environment.action_spec()
        self._variable_client = utils.VariableClient(variable_server)
        self._actor = DQNActor(spec_actions.num_values, config.dueling, self._variable_client,
                               epsilon=0.0, seed=seed)
        self._counter = counter
        self._learner = learner
        self._run_dir = run_dir
        self._start_time = start_time
        self._target = envs.solved_return(env_name)
        self._max_return = envs.max_return(env_name)
        self._max_seconds = max_seconds
        self._max_actor_steps = max_actor_steps
        self._logger = utils.make_logger("evaluator", run_dir, terminal=verbose, tensorboard=False)
        self._progress = utils.ProgressLine(start_time)
        self._eval_return: Optional[float] = None

    def run(self) -> None:
        stop = lp.stop_event()
        evaluated_version = -1
        last_progress = time.monotonic()
        status = {"learner_steps": 0, "replay_size": None}
        try:
            while not stop.is_set():
                self._variable_client.update(wait=True)
                counts = self._counter.get_counts()
                version = self._variable_client.version
                solved = False
                if version > max(evaluated_version, 0):
                    evaluated_version = version
                    screen_return, mean_return, solved = screen_then_evaluate(
                        self._environment, self._actor, self._config.eval_episodes, self._target,
                        self._max_return)
                    if mean_return is not None:
                        self._eval_return = mean_return
                    self._logger.write({
                        "actor_steps": counts.get("actor_steps", 0),
                        "learner_steps": counts.get("learner_steps", 0),
                        "parameter_version": version, "screen_return": screen_return,
                        "eval_return": float("nan") if mean_return is None else mean_return})
                else:
                    stop.wait(_IDLE_SECONDS)
                if time.monotonic() - last_progress >= _PROGRESS_SECONDS or solved:
                    last_progress = time.monotonic()
                    status = self._learner.status()
                    self._progress.show(counts.get("actor_steps", 0), status["learner_steps"],
                                        status["replay_size"], self._eval_return)
                if solved or self._out_of_budget(counts):
                    self._finish(solved, counts, status)
                    return
        finally:
            self._variable_client.close()
            self._logger.close()

    def _out_of_budget(self, counts: Dict[str, Any]) -> bool:
        return ((self._max_seconds is not None and
                 time.time() - self._start_time >= self._max_seconds) or
                (self._max_actor_steps is not None and
                 counts.get("actor_steps", 0) >= self._max_actor_steps))

    def _finish(self, solved: bool, counts: Dict[str, Any], status: Dict[str, Any]) -> None:
        counts = self._counter.get_counts()
        try:
            status = self._learner.status()
        except Exception:  # pylint: disable=broad-except
            pass  # Keep the last known status.
        utils.write_json(os.path.join(self._run_dir, "result.json"), {
            "solved": solved, "wall_seconds": time.time() - self._start_time,
            "eval_return": self._eval_return, "actor_steps": counts.get("actor_steps", 0),
            "learner_steps": max(counts.get("learner_steps", 0), status["learner_steps"]),
            "replay_size": status["replay_size"],
            "replay_waiting_for_inserts_ms": status.get("waiting_for_inserts_ms"),
            "replay_waiting_for_sampling_ms": status.get("waiting_for_sampling_ms"),
            "parameter_version": self._variable_client.version})
        lp.stop()


class _WithFields(utils.Logger):
    """Adds fields computed at write time to every row (the row's own values win).

    Fields also fix CSV columns that the first row may lack (e.g. `learner_steps`
    before the learner's first count reaches the counter).
    """

    def __init__(self, logger: utils.Logger, fields_fn):
        self._logger = logger
        self._fields_fn = fields_fn

    def write(self, data) -> None:
        self._logger.write({**self._fields_fn(), **data})

    def close(self) -> None:
        self._logger.close()


def make_distributed_program(config: DQNConfig, env_name: str, num_actors: int, *,
                             run_dir: Optional[str] = None, seed: int = 0,
                             start_time: Optional[float] = None,
                             max_seconds: Optional[float] = None,
                             max_actor_steps: Optional[int] = None,
                             verbose: bool = False) -> lp.Program:
    """An lp.Program with nodes replay, counter, learner, variable_server, actor (xN), evaluator."""
    if num_actors < 1:
        raise ValueError(f"num_actors must be >= 1 (got {num_actors}).")
    run_dir = utils.make_run_dir(run_dir)
    start_time = time.time() if start_time is None else start_time
    program = lp.Program("apex_dqn")
    replay_handle = program.add_node(
        lp.ReverbNode(functools.partial(_replay_tables, config, env_name)), label="replay")
    counter = program.add_node(lp.CourierNode(utils.Counter, courier_client_kwargs=_CALL_TIMEOUT),
                               label="counter")
    variable_server = program.add_node(
        lp.CourierNode(utils.VariableServer, courier_client_kwargs=_CALL_TIMEOUT),
        label="variable_server")
    learner = program.add_node(
        lp.CourierNode(LearnerNode, config, env_name, replay_handle, variable_server, counter,
                       run_dir, seed, verbose, courier_client_kwargs=_CALL_TIMEOUT),
        label="learner")
    with program.group("actor"):
        for actor_id, epsilon in enumerate(apex_epsilons(num_actors)):
            program.add_node(lp.CourierNode(ActorNode, config, env_name, actor_id, epsilon,
                                            replay_handle, variable_server, counter, run_dir,
                                            seed, verbose))
    program.add_node(
        lp.CourierNode(EvaluatorNode, config, env_name, variable_server, counter, learner, run_dir,
                       start_time, seed, max_seconds, max_actor_steps, verbose),
        label="evaluator")
    return program


def run_distributed(config: DQNConfig, env_name: str, run_dir: str, *, num_actors: int = 2,
                    launch_type: str = "local_mp", seed: int = 0,
                    max_seconds: Optional[float] = None, max_actor_steps: Optional[int] = None,
                    start_time: Optional[float] = None, verbose: bool = False) -> Dict[str, Any]:
    """Launches the program, waits for it to stop itself, and returns result.json's contents."""
    start_time = time.time() if start_time is None else start_time
    if launch_type != "local_mp":
        # Nodes are threads of this process: import TensorFlow once here rather than from
        # several node threads at the same time, which can deadlock.
        import agents.dqn.builder  # pylint: disable=import-outside-toplevel,unused-import
    program = make_distributed_program(
        config, env_name, num_actors, run_dir=run_dir, seed=seed, start_time=start_time,
        max_seconds=max_seconds, max_actor_steps=max_actor_steps, verbose=verbose)
    log_dir = os.path.join(run_dir, "node_logs")
    controller = lp.launch(program, launch_type=launch_type, log_dir=log_dir,
                           termination_notice_secs=5)
    utils.write_program_json(
        run_dir, program.name, launch_type, program.groups["replay"][0].address,
        [(node.label, node.index, node.address) for node in program.get_all_nodes()], node_logs=log_dir)
    controller.wait()
    result_path = os.path.join(run_dir, "result.json")
    if not os.path.exists(result_path):
        raise RuntimeError(f"The program ended without writing {result_path}; see the node logs "
                           f"in {log_dir}.")
    utils.plot_learning_curve(run_dir, start_time=start_time)
    return utils.read_json(result_path)
