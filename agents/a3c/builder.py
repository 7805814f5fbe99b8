"""A3C and A2C for `python -m agents.run --agent a3c|a2c`: a parameter server and workers, as a program or as
threads of one process."""

import os
import threading
import time
from typing import Any, Callable, Dict

import launch as lp
import replay
from agents import core, utils
from agents.a3c import nodes
from agents.a3c.config import A2CConfig, A3CConfig
from agents.experiments.config import ExperimentConfig
from agents.experiments.evaluation import Evaluations, make_evaluator_logger
from agents.impala.acting import IMPALAActor, numpy_forward

_IDLE_SECONDS = 0.05
_PROGRESS_SECONDS = 5.0


class A3CBuilder(core.ProgramBuilder):
    """Advantage actor-critic workers pushing gradients to a parameter server: asynchronous (A3C) or, with
    `synchronous`, in barrier-synchronous rounds (A2C). `--num_actors` sets the number of workers."""

    name = "a3c"
    config_class = A3CConfig
    repeatable = False  # Its workers are threads that push gradients in whatever order the scheduler runs them.

    def check_experiment(self, experiment: ExperimentConfig) -> None:
        from agents import envs  # pylint: disable=import-outside-toplevel

        envs.num_discrete_actions(replay.make_environment_spec(experiment.make_environment(0)), "A3C/A2C")

    def make_program(self, experiment: ExperimentConfig, num_actors: int) -> lp.Program:
        return nodes.make_program(experiment, num_actors)

    def make_evaluation_actor(
        self, environment_spec: replay.EnvironmentSpec, variable_client: core.VariableClientLike, seed: int
    ) -> core.Actor:
        """The greedy policy (the most likely action) of the client's parameters."""
        return IMPALAActor(
            environment_spec.actions.num_values,
            variable_client,
            greedy=True,
            seed=seed,
            policy_and_value=numpy_forward(self.config.activation, self.config.head_hidden_sizes),
        )

    def run_single_process(
        self, experiment: ExperimentConfig, print_fn: Callable[[str], None] = print, num_actors: int = 1
    ) -> Dict[str, Any]:
        """The server and `num_actors` workers as threads of this process (the barrier of a synchronous server
        needs its members to push at the same time), evaluated from this thread."""
        replay.import_tensorflow()  # Once, here: threads importing TensorFlow at the same time can deadlock.
        server = nodes.make_parameter_server(experiment, num_actors)
        counter = utils.Counter()
        stop = threading.Event()
        errors = []

        def run_worker(worker_id: int) -> None:
            try:
                loop = nodes.WorkerLoop(experiment, worker_id, num_actors, server, utils.Counter(counter, "actor", 0.0))
                loop.run(stop)
            except BaseException as error:  # pylint: disable=broad-except  # Raised again by this thread, below.
                errors.append(error)
                stop.set()

        threads = [threading.Thread(target=run_worker, args=(i,), name=f"worker_{i}") for i in range(num_actors)]
        environment = experiment.make_environment(experiment.seed + 10_000)
        eval_client = utils.VariableClient(server, synchronous=True)
        logger = make_evaluator_logger(experiment)
        evaluations = Evaluations(
            experiment,
            environment,
            self.make_evaluation_actor(replay.make_environment_spec(environment), eval_client, experiment.seed),
            logger,
        )
        progress = utils.ProgressLine(experiment.start_time, print_fn)
        last_progress = time.monotonic()
        counts = {"actor_steps": 0, "learner_steps": 0}
        stopped_by = None
        for thread in threads:
            thread.start()
        try:
            try:
                while stopped_by is None and not errors:
                    evaluated = eval_client.version
                    eval_client.update(wait=True)
                    counts = {
                        "actor_steps": counter.get_counts().get("actor_steps", 0),
                        "learner_steps": server.version(),
                    }
                    if eval_client.version > max(evaluated, 0) and evaluations.due(counts["actor_steps"]):
                        stopped_by = "solved" if evaluations.run(counts, eval_client.version) else None
                    else:
                        stop.wait(_IDLE_SECONDS)
                    if stopped_by is None and experiment.out_of_budget(counts["actor_steps"]):
                        if eval_client.version > 0:
                            evaluations.final(counts, eval_client.version)
                        stopped_by = "budget"
                    if time.monotonic() - last_progress >= _PROGRESS_SECONDS:
                        last_progress = time.monotonic()
                        progress.show(
                            counts["actor_steps"],
                            counts["learner_steps"],
                            None,
                            evaluations.eval_return,
                            evaluations.eval_actor_steps,
                        )
            except KeyboardInterrupt:  # Ctrl-C: the result of what was learned so far.
                stopped_by = "user"
        finally:
            stop.set()
            server.close()  # Releases a worker waiting at the barrier for one that stopped.
            for thread in threads:
                thread.join()
            eval_client.close()
            logger.close()
        if errors:
            raise errors[0]
        result = {
            "stopped_by": stopped_by,
            "wall_seconds": time.time() - experiment.start_time,
            **evaluations.result_fields(),
            "actor_steps": counter.get_counts().get("actor_steps", 0),
            "learner_steps": server.version(),
            "replay_size": None,
            "resumed_from": None,
            "parameter_server": server.stats(),
        }
        utils.write_json(os.path.join(experiment.run_dir, "result.json"), result)
        progress.show(
            result["actor_steps"], result["learner_steps"], None, evaluations.eval_return, evaluations.eval_actor_steps
        )
        return result


class A2CBuilder(A3CBuilder):
    """A3C's workers with a synchronous parameter server: each update is the mean of one push from every worker of
    a group (all workers, by default)."""

    name = "a2c"
    config_class = A2CConfig
