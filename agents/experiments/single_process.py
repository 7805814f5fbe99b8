"""Any builder with acting, learning and evaluation interleaved in one process (Acme's learning actor)."""

import os
import random
import time
from typing import Any, Callable, Dict, Union

import numpy as np

import replay
from agents import core, utils
from agents.experiments.config import ExperimentConfig
from agents.experiments.distributed import check_learners
from agents.experiments.evaluation import Evaluations, make_evaluator_logger

_PROGRESS_SECONDS = 5.0


class _LearningActor(core.Actor):
    """An actor that also steps the learner: `learner_steps_per_actor_step` learner steps for every actor
    step (and `learner_steps_per_episode` for every episode's end) once the tables hold their minimum, so the
    sample-to-insert ratio is kept by construction rather than by a rate limiter (which would block the one
    thread that could unblock it)."""

    def __init__(
        self,
        actor: core.Actor,
        learner: core.Learner,
        learner_steps_per_actor_step: float,
        learner_steps_per_episode: float,
        min_actor_steps: int,
        actor_steps: int,
    ):
        self._actor = actor
        self._learner = learner
        self._ratio = learner_steps_per_actor_step
        self._ratio_per_episode = learner_steps_per_episode
        self._min_actor_steps = min_actor_steps
        self._actor_steps = actor_steps  # Of the whole run, a resumed one included.
        self._credit = 0.0

    def select_action(self, observation: Any) -> Any:
        return self._actor.select_action(observation)

    def observe_first(self, timestep) -> None:
        self._actor.observe_first(timestep)

    def observe(self, action: Any, next_timestep) -> None:
        self._actor.observe(action, next_timestep)
        self._actor_steps += 1
        if self._actor_steps > self._min_actor_steps:
            self._credit += self._ratio + (self._ratio_per_episode if next_timestep.last() else 0.0)
            while self._credit >= 1.0:
                self._learner.step()
                self._credit -= 1.0

    def update(self, wait: bool = False) -> None:
        self._actor.update(wait)


def run_single_process(experiment: ExperimentConfig, print_fn: Callable[[str], None] = print) -> Dict[str, Any]:
    """Trains until solved or out of budget; returns (and writes) result.json's contents.

    Checkpoints (learner, counts, replay) go to the run directory every `checkpoint_seconds` and at the end;
    a run directory that holds them is continued.
    """
    experiment.check_replay_shards(num_actors=1, single_process=True)
    builder = experiment.builder
    run_dir = experiment.run_dir
    check_learners(builder, single_process=True, resuming=False)
    if experiment.deterministic:
        _make_repeatable(builder, experiment.seed)
    environment = experiment.make_environment(experiment.seed)
    eval_environment = experiment.make_environment(experiment.seed + 10_000)
    spec = replay.make_environment_spec(environment)

    server = replay.ReplayServer(
        builder.make_replay_tables(spec, rate_limited=False), checkpoint_dir=os.path.join(run_dir, "replay")
    )
    client = server.client()
    utils.write_program_json(
        run_dir,
        f"{builder.name}_single_process",
        "single_process",
        server.address,
        [("replay", 0, server.address, os.getpid())],
    )
    variable_server = utils.VariableServer()
    counter = utils.Counter()
    priority_updater = replay.PriorityUpdater(client, builder.priority_table) if builder.prioritized else None
    learner = builder.make_learner(
        builder.make_networks(spec, experiment.seed),
        builder.make_dataset_iterator(server.address),
        publisher=variable_server,
        priority_updater=priority_updater,
        counter=utils.Counter(counter, prefix="learner", time_delta=0.0),
        # At most one row a second, but every step in a repeatable run: a filter by time would not repeat.
        logger=utils.make_logger(
            "learner",
            run_dir,
            terminal=experiment.verbose,
            time_delta=0.0 if experiment.deterministic else 1.0,
            steps_key="learner_steps",
        ),
    )
    checkpointer = utils.Checkpointer(
        {**learner.checkpoint_objects, "counter": counter},
        os.path.join(run_dir, "checkpoints"),
        time_delta_minutes=experiment.checkpoint_seconds / 60,
    )
    actor_client = utils.VariableClient(
        variable_server, builder.variable_update_period(), synchronous=experiment.deterministic
    )
    actor = builder.make_actor(
        spec, actor_client, builder.make_adder(client), core.ActorSettings(seed=experiment.seed, single_process=True)
    )
    actor_counter = utils.Counter(counter, prefix="actor", time_delta=0.0)
    actor_steps = counter.get_counts().get("actor_steps", 0)
    learning_actor = _LearningActor(
        actor,
        learner,
        builder.learner_steps_per_actor_step(),
        builder.learner_steps_per_episode(),
        builder.min_actor_steps_before_learning(),
        actor_steps,
    )
    eval_client = utils.VariableClient(variable_server)
    eval_logger = make_evaluator_logger(experiment)
    evaluations = Evaluations(
        experiment, eval_environment, builder.make_evaluation_actor(spec, eval_client, experiment.seed + 1), eval_logger
    )
    evaluations.resume(actor_steps)
    actor_logger = utils.make_logger("actor", run_dir, terminal=experiment.verbose, steps_key="actor_steps")
    loop = core.EnvironmentLoop(environment, learning_actor, actor_counter)

    solved = False
    last_progress = time.monotonic()
    progress = utils.ProgressLine(experiment.start_time, print_fn)
    stopped_by = None
    try:
        try:
            while not solved and not experiment.out_of_budget(actor_steps):
                episode = loop.run_episode()
                actor_steps = episode["actor_steps"]
                actor_logger.write(
                    {
                        "actor_steps": actor_steps,
                        "actor_episodes": episode["actor_episodes"],
                        "learner_steps": learner.num_steps,
                        "episode_return": episode["episode_return"],
                    }
                )
                if learner.num_steps > 0 and evaluations.due(actor_steps):
                    eval_client.update(wait=True)
                    solved = evaluations.run(
                        {"actor_steps": actor_steps, "learner_steps": learner.num_steps}, eval_client.version
                    )
                if checkpointer.save() is not None:
                    server.checkpoint()
                if time.monotonic() - last_progress >= _PROGRESS_SECONDS:
                    last_progress = time.monotonic()
                    progress.show(
                        actor_steps,
                        learner.num_steps,
                        _replay_size(client),
                        evaluations.eval_return,
                        evaluations.eval_actor_steps,
                    )
            if not solved and learner.num_steps > 0:
                eval_client.update(wait=True)
                evaluations.final({"actor_steps": actor_steps, "learner_steps": learner.num_steps}, eval_client.version)
        except KeyboardInterrupt:  # Ctrl-C: stop here, with the final checkpoint and result.json below.
            stopped_by = "user"
            actor_steps = counter.get_counts().get("actor_steps", actor_steps)
        checkpointer.save(force=True)
        server.checkpoint()
        replay_size = _replay_size(client)
    finally:
        wall_seconds = time.time() - experiment.start_time
        try:
            for closeable in (priority_updater, actor_client, eval_client, actor_logger, eval_logger):
                if closeable is not None:
                    closeable.close()
        finally:
            server.stop()  # After the updater: a send still in flight to a stopping server can hang.

    result = {
        "stopped_by": stopped_by or ("solved" if solved else "budget"),
        "wall_seconds": wall_seconds,
        **evaluations.result_fields(),
        "actor_steps": actor_steps,
        "learner_steps": learner.num_steps,
        "replay_size": replay_size,
        "cpu_seconds": time.process_time(),  # Acting, learning, replay and evaluation together.
        "resumed_from": checkpointer.restored_from,
    }
    utils.write_json(os.path.join(run_dir, "result.json"), result)
    progress.show(actor_steps, learner.num_steps, None, evaluations.eval_return, evaluations.eval_actor_steps)
    return result


def _replay_size(client: Any) -> int:
    return sum(int(table.current_size) for table in client.server_info(timeout=5).values())


def _make_repeatable(builder: core.Builder, seed: int) -> None:
    """Seeds every generator a run draws from and makes TensorFlow's ops deterministic. Environments, networks
    and actors are seeded from the experiment's seed already; parameter fetches become synchronous (above)."""
    check_repeatable(builder)
    replay.import_tensorflow()
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    tf.config.experimental.enable_op_determinism()


def check_repeatable(builder: Union[core.Builder, core.ProgramBuilder]) -> None:
    """Raises ValueError, naming why, if single-process runs of `builder` cannot repeat exactly."""
    if isinstance(builder, core.ProgramBuilder):
        if not builder.repeatable:
            raise ValueError(f"--deterministic: single-process {builder.name} runs cannot repeat exactly; drop it.")
        return
    if not builder.repeatable_sampling:
        raise ValueError(
            f"--deterministic: {builder.name} samples replay with Reverb's uniform or prioritized selector, whose "
            "random generator cannot be seeded, so its runs cannot repeat exactly; agents whose replay is a queue "
            "(e.g. impala) can. Drop --deterministic."
        )
