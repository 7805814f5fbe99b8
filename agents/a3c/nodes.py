"""A3C/A2C as a launch program: a parameter server, `num_workers` workers, a counter and the experiment layer's
evaluator. This module stays light: TensorFlow is imported by the nodes that need it, in their own processes."""

import logging
import os
import threading
from typing import Any, List, Optional

import launch as lp
import replay
from agents import utils
from agents.core import Counting
from agents.experiments.config import ExperimentConfig
from agents.experiments.distributed import counter_checkpoint_path, make_counter_node
from agents.experiments.nodes import EvaluatorNode, StoppableGradientSink

_STOPPING_SECONDS = 5.0  # How long a worker whose server went away waits for the program's stop before failing.
_IDLE_SECONDS = 0.05
_NODE_DOWN_ERRORS = (ConnectionError, TimeoutError, lp.RemoteError)
# Nodes of the threads launch types share a process: TensorFlow imported from several threads at once can deadlock.
_IMPORT_LOCK = threading.Lock()


def _import_tensorflow() -> None:
    with _IMPORT_LOCK:
        replay.import_tensorflow()


def make_parameter_server(
    experiment: ExperimentConfig, num_workers: int, counter: Optional[Counting] = None
) -> utils.ParameterServer:
    """The run's parameter server: the network's initial parameters, RMSProp, and the config's update scheme. Its
    log is the run's learner log (run_dir/logs/learner.csv): updates are the learner steps of these agents."""
    _import_tensorflow()
    config = experiment.builder.config
    spec = replay.make_environment_spec(experiment.make_environment(experiment.seed))

    def make_parameters() -> List[Any]:
        from agents.a3c.networks import make_network  # pylint: disable=import-outside-toplevel

        return make_network(spec, config, experiment.seed).numpy_parameters()

    def make_optimizer() -> Any:
        from agents.a3c.learning import make_optimizer  # pylint: disable=import-outside-toplevel

        return make_optimizer(config)

    return utils.ParameterServer(
        make_parameters,
        make_optimizer,
        group_size=config.group_size(num_workers),
        num_groups=config.num_groups,
        max_staleness=config.max_staleness,
        barrier_timeout=config.barrier_timeout,
        counter=counter,
        logger=utils.make_logger("learner", experiment.run_dir, terminal=experiment.verbose, steps_key="learner_steps"),
    )


class WorkerLoop:
    """Worker `worker_id` of `num_workers`: rollouts and pushes until `stop` is set; counts its steps and episodes
    (as actor_steps, actor_episodes) and logs each finished episode to run_dir/logs/actor_<id>.csv."""

    def __init__(self, experiment: ExperimentConfig, worker_id: int, num_workers: int, server: Any, counter: Counting):
        _import_tensorflow()
        from agents.a3c.learning import A3CWorker  # pylint: disable=import-outside-toplevel

        config = experiment.builder.config
        environments = [
            experiment.make_environment(experiment.seed + 1000 * (worker_id + 1) + e) for e in range(config.num_envs)
        ]
        group = worker_id // config.group_size(num_workers) if config.synchronous else 0
        self._worker = A3CWorker(config, environments, server, experiment.seed + worker_id, group)
        self._steps_per_rollout = config.t_max * config.num_envs
        self._counter = counter
        self._worker_id = worker_id
        self._logger = utils.make_logger(
            f"actor_{worker_id}", experiment.run_dir, terminal=experiment.verbose, steps_key="actor_steps"
        )

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                finished = self._worker.step()
                if finished is None:  # No parameters yet.
                    stop.wait(_IDLE_SECONDS)
                    continue
                counts = self._counter.increment(steps=self._steps_per_rollout, episodes=len(finished))
                for episode_return, episode_length in finished:
                    self._logger.write(
                        {
                            **counts,
                            "worker_id": self._worker_id,
                            "episode_return": episode_return,
                            "episode_length": episode_length,
                            "parameter_version": self._worker.version,
                            **self._worker.metrics,
                        }
                    )
        finally:
            self._logger.close()


class WorkerNode:
    """A WorkerLoop as a launch node, talking to the parameter server and counter nodes."""

    def __init__(self, experiment: ExperimentConfig, worker_id: int, num_workers: int, server: Any, counter: Any):
        self._stop = lp.stop_event()
        self._server = server
        self._loop = WorkerLoop(
            experiment,
            worker_id,
            num_workers,
            StoppableGradientSink(server, self._stop),
            utils.Counter(counter, prefix="actor", time_delta=0.25),
        )

    def run(self) -> None:
        try:
            self._loop.run(self._stop)
        except _NODE_DOWN_ERRORS as error:
            if not self._stop.wait(_STOPPING_SECONDS):  # The server went down without the program stopping.
                raise
            logging.debug("The parameter server stopped first: %s", error)
        finally:
            # A push sent as the program stopped waits for a server that is gone until its timeout: end it now.
            self._server.close()


def make_program(experiment: ExperimentConfig, num_workers: int) -> lp.Program:
    """counter, parameter_server, worker (x num_workers) and evaluator. The parameter server holds the only copy of
    the parameters and is not restarted; a restarted worker starts from the server's newest parameters."""
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1 (got {num_workers}).")
    builder = experiment.builder
    config = builder.config
    config.group_size(num_workers)  # ValueError now, not in a node, if the workers do not split into groups.
    os.makedirs(os.path.dirname(counter_checkpoint_path(experiment.run_dir)), exist_ok=True)
    program = lp.Program(builder.name)
    counter = program.add_node(make_counter_node(experiment), label="counter", max_restarts=experiment.max_restarts)
    server = program.add_node(
        lp.CourierNode(
            make_parameter_server,
            experiment,
            num_workers,
            counter,
            courier_kwargs={"thread_pool_size": 16 + num_workers},  # Every worker may wait at the barrier at once.
            courier_client_kwargs={"call_timeout": config.barrier_timeout + 30.0},
        ),
        label="parameter_server",
        max_restarts=0,
        imports_tensorflow=True,  # Its optimizer; the workers' gradients (the evaluator acts in numpy).
    )
    for worker_id in range(num_workers):
        program.add_node(
            lp.PyClassNode(WorkerNode, experiment, worker_id, num_workers, server, counter),
            label="worker",
            max_restarts=experiment.max_restarts,
            imports_tensorflow=True,
        )
    # The parameter server answers the evaluator both as the variable source and as the learner (status()).
    program.add_node(
        lp.CourierNode(EvaluatorNode, experiment, server, counter, server),
        label="evaluator",
        max_restarts=experiment.max_restarts,
    )
    return program
