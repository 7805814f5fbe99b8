"""DQN with acting, learning and evaluation interleaved in one process."""

import os
import time
from typing import Any, Callable, Dict, Optional

import replay
from agents import envs, utils
from agents.dqn.acting import linear_epsilon, screen_then_evaluate
from agents.dqn.builder import DQNBuilder
from agents.dqn.config import DQNConfig

_SCREEN_PERIOD = 250  # Actor steps between evaluations (see acting.screen_then_evaluate).
_PROGRESS_SECONDS = 5.0


def run_single_process(config: DQNConfig,
                       env_name: str,
                       run_dir: str,
                       *,
                       seed: int = 0,
                       max_seconds: Optional[float] = None,
                       max_actor_steps: Optional[int] = None,
                       start_time: Optional[float] = None,
                       verbose: bool = False,
                       print_fn: Callable[[str], None] = print) -> Dict[str, Any]:
    """Trains until solved or out of budget; returns (and writes) result.json's contents.

    The learner samples `samples_per_insert` transitions per actor step
    once `min_replay_size` transitions are in replay, so the sample-to-insert
    ratio is kept by construction rather than by a blocking rate limiter.
    """
    start_time = time.time() if start_time is None else start_time
    target = envs.solved_return(env_name)
    environment = envs.make_environment(env_name, seed=seed)
    eval_environment = envs.make_environment(env_name, seed=seed + 10_000)
    spec = replay.make_environment_spec(environment)
    builder = DQNBuilder(config)

    server = replay.ReplayServer(builder.make_replay_tables(spec, rate_limited=False))
    client = server.client()
    utils.write_program_json(run_dir, "dqn_single_process", "single_process", server.address,
                             [("replay", 0, server.address)])
    variable_server = utils.VariableServer()
    priority_updater = replay.PriorityUpdater(client, config.replay_table_name)
    learner = builder.make_learner(
        builder.make_networks(spec, seed=seed),
        builder.make_dataset_iterator(server.address),
        priority_updater=priority_updater,
        variable_server=variable_server,
        counter=utils.Counter(prefix="learner"),
        logger=utils.make_logger("learner", run_dir, terminal=verbose, steps_key="learner_steps"))
    actor_client = utils.VariableClient(variable_server, config.variable_update_period)
    actor = builder.make_actor(
        spec, actor_client,
        linear_epsilon(config.epsilon_start, config.epsilon_end, config.epsilon_decay_steps),
        adder=builder.make_adder(client), seed=seed)
    eval_client = utils.VariableClient(variable_server)
    eval_actor = builder.make_actor(spec, eval_client, epsilon=0.0, seed=seed + 1)
    actor_logger = utils.make_logger("actor", run_dir, terminal=verbose, steps_key="actor_steps")
    eval_logger = utils.make_logger("evaluator", run_dir, terminal=verbose, steps_key="actor_steps")

    learner_steps_per_actor_step = config.samples_per_insert / (
        config.batch_size * config.num_sgd_steps_per_step)
    credit = 0.0
    actor_steps = episodes = 0
    last_screen = 0
    eval_return = None
    solved = False
    last_progress = time.monotonic()
    progress = utils.ProgressLine(start_time, print_fn)

    def out_of_budget() -> bool:
        return ((max_seconds is not None and time.time() - start_time >= max_seconds) or
                (max_actor_steps is not None and actor_steps >= max_actor_steps))

    try:
        while not solved and not out_of_budget():
            timestep = environment.reset()
            actor.observe_first(timestep)
            episode_return = 0.0
            while not timestep.last():
                action = actor.select_action(timestep.observation)
                timestep = environment.step(action)
                actor.observe(action, timestep)
                actor.update()
                episode_return += float(timestep.reward)
                actor_steps += 1
                if actor_steps > config.min_replay_size:
                    credit += learner_steps_per_actor_step
                    while credit >= 1.0:
                        learner.step()
                        credit -= 1.0
            episodes += 1
            actor_logger.write({"actor_steps": actor_steps, "actor_episodes": episodes,
                                "learner_steps": learner.num_steps,
                                "episode_return": episode_return})
            if learner.num_steps > 0 and actor_steps - last_screen >= _SCREEN_PERIOD:
                last_screen = actor_steps
                eval_actor.update(wait=True)
                screen_return, mean_return, solved = screen_then_evaluate(
                    eval_environment, eval_actor, config.eval_episodes, target, envs.max_return(env_name))
                eval_return = eval_return if mean_return is None else mean_return
                eval_logger.write({"actor_steps": actor_steps, "learner_steps": learner.num_steps,
                                   "screen_return": screen_return,
                                   "eval_return": float("nan") if mean_return is None else mean_return})
            if time.monotonic() - last_progress >= _PROGRESS_SECONDS:
                last_progress = time.monotonic()
                progress.show(actor_steps, learner.num_steps,
                              client.server_info()[config.replay_table_name].current_size, eval_return)
    finally:
        wall_seconds = time.time() - start_time
        try:
            for closeable in (priority_updater, actor_client, eval_client, actor_logger, eval_logger):
                closeable.close()
        finally:
            server.stop()  # After the updater: a send still in flight to a stopping server can hang.

    result = {"solved": solved, "wall_seconds": wall_seconds, "eval_return": eval_return,
              "actor_steps": actor_steps, "learner_steps": learner.num_steps}
    utils.write_json(os.path.join(run_dir, "result.json"), result)
    utils.plot_learning_curve(run_dir, start_time=start_time)
    progress.show(actor_steps, learner.num_steps, None, eval_return)
    return result
