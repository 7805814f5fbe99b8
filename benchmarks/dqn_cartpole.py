"""Time to solve CartPole-v1 with DQN (distributed Ape-X, single process, Stable-Baselines3), and where it goes.

An alias of `benchmarks/time_to_solve.py --agent dqn --env CartPole-v1 --baselines sb3_dqn` (its table,
criterion and JSON come from there) with two more distributed variants, 2 learners pushing gradients to a parameter
server (`--config num_learners=2`, asynchronous; and with `synchronous_learners=true`) next to the one learner of
`distributed` (time to solve; "learner steps/s" are gradient steps/s of all learners), plus DQN-only measurements:
one actor's env steps/s against a bare
environment + Reverb writer loop, the TF/Reverb import, the learner's first tf.function trace, and from the
distributed runs' logs the interpreter start, first actor episode and parameter staleness.

    python benchmarks/dqn_cartpole.py [--seeds 3] [--max_seconds 120] [--num_actors 2] [--quick]
        [--runs_dir DIR] [--json PATH]

The JSON has
the time-to-solve measurement under "time_to_solve" (time_to_solve.py's format), the medians as
distributed_seconds / single_process_seconds / sb3_seconds / two_learners_seconds / two_learners_sync_seconds (null
if unsolved or SB3 is not installed), "gradient_steps_per_second" (medians by variant) and "where_time_goes".
"""

import argparse
import os
import sys
import time
from typing import Dict, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import time_to_solve  # noqa: E402  pylint: disable=wrong-import-position

REPO = time_to_solve.REPO
# The parameter-server variants: {name: (description, more arguments of the run script)}.
LEARNER_VARIANTS = {
    "two_learners": ("Encore dqn, 2 actors, 2 learners (asynchronous pushes)", ["--config", "num_learners=2"]),
    "two_learners_sync": (
        "Encore dqn, 2 actors, 2 learners (synchronous rounds)",
        ["--config", "num_learners=2", "--config", "synchronous_learners=true"],
    ),
}


def actor_throughput(num_steps: int) -> Dict[str, float]:
    """Env steps/s of one DQN actor (numpy policy + n-step adder) vs a bare env + writer loop."""
    sys.path.insert(0, REPO)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    import replay
    from agents import EnvironmentLoop, core, envs, utils
    from agents.dqn import DQNBuilder, DQNConfig

    config = DQNConfig(max_replay_size=4 * num_steps)
    builder = DQNBuilder(config)
    environment = envs.make_environment("CartPole-v1", seed=0)
    spec = replay.make_environment_spec(environment)
    with replay.ReplayServer(builder.make_replay_tables(spec, rate_limited=False)) as server:
        client = server.client()
        rng = np.random.default_rng(0)
        start, steps = time.perf_counter(), 0
        with client.trajectory_writer(num_keep_alive_refs=2) as writer:
            while steps < num_steps:
                timestep = environment.reset()
                while not timestep.last():
                    action = np.int64(rng.integers(2))
                    next_timestep = environment.step(action)
                    writer.append(
                        {
                            "observation": timestep.observation,
                            "action": action,
                            "reward": next_timestep.reward,
                            "discount": next_timestep.discount,
                            "next_observation": next_timestep.observation,
                        }
                    )
                    item = {
                        k: writer.history[k][-1]
                        for k in ("observation", "action", "reward", "discount", "next_observation")
                    }
                    writer.create_item(config.replay_table_name, 1.0, replay.Transition(**item))
                    writer.flush(16)
                    timestep = next_timestep
                    steps += 1
                writer.end_episode()
        bare = steps / (time.perf_counter() - start)
        client.reset(config.replay_table_name)

        network, _ = builder.make_networks(spec, seed=0)
        variable_server = utils.VariableServer()
        variable_server.publish(network.numpy_parameters())
        variable_client = utils.VariableClient(variable_server, config.variable_update_period)
        # A distributed actor (the first rung of the Ape-X epsilon ladder).
        actor = builder.make_actor(spec, variable_client, builder.make_adder(client), core.ActorSettings())
        actor.update(wait=True)
        loop = EnvironmentLoop(environment, actor)
        start = time.perf_counter()
        steps = loop.run(num_steps=num_steps)
        actor_rate = steps / (time.perf_counter() - start)
        variable_client.close()
    return {
        "bare_env_writer_steps_per_second": bare,
        "actor_steps_per_second": actor_rate,
        "actor_fraction_of_bare": actor_rate / bare,
    }


def first_trace_seconds() -> Dict[str, float]:
    """Seconds of the learner's first step (tf.function trace) vs a later gradient step, on batches in memory."""
    sys.path.insert(0, REPO)
    import replay
    from agents import envs
    from agents.dqn import DQNBuilder, DQNConfig

    config = DQNConfig()
    spec = replay.make_environment_spec(envs.make_environment("CartPole-v1"))
    first, later = time_to_solve.learner_step_seconds(
        DQNBuilder(config),
        replay.NStepTransitionAdder.signature(spec),
        config.batch_size * config.num_sgd_steps_per_step,
    )
    return {"first_learner_step_seconds": first, "later_sgd_step_ms": 1e3 * later / config.num_sgd_steps_per_step}


def where_time_goes(measurement: Dict, quick: bool) -> Dict[str, float]:
    """Medians over the runs' logs, plus this process's DQN measurements."""
    return {
        **time_to_solve.where_time_goes(measurement),
        **first_trace_seconds(),
        **actor_throughput(5_000 if quick else 20_000),
    }


def main() -> int:
    time_to_solve.exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    time_to_solve.add_arguments(parser)
    args = parser.parse_args()
    seeds, max_seconds = time_to_solve.budget(args)
    try:
        measurement = time_to_solve.measure(
            "dqn",
            "CartPole-v1",
            seeds,
            ["sb3_dqn"],
            max_seconds,
            args.num_actors,
            runs_dir=args.runs_dir,
            more_variants=LEARNER_VARIANTS,
        )
    except time_to_solve.UsageError as error:
        parser.error(str(error))
    time_to_solve.print_table(measurement)
    if args.json:  # Written now too, so that the measurement survives a failure below.
        time_to_solve.write_json(args.json, results(measurement, None))

    where = where_time_goes(measurement, args.quick)
    print("\nOne actor vs a bare env + Reverb writer loop, and where the time goes:")
    for key, value in where.items():
        print(f"  {key:45s} {'-' if value is None else format(value, ',.3f')}")

    if args.json:
        time_to_solve.write_json(args.json, results(measurement, where))
        print(f"\nwrote {args.json}")
    return 1 if measurement["errors"] else 0


def results(measurement: Dict, where: Optional[Dict[str, float]]) -> Dict:
    """The JSON: the time-to-solve measurement, its medians under the old names, and where the time goes."""
    variants = measurement["variants"]
    return {
        "distributed_seconds": variants["distributed"]["median_seconds"],
        "single_process_seconds": variants["single_process"]["median_seconds"],
        "sb3_seconds": variants["sb3_dqn"]["median_seconds"] if "sb3_dqn" in variants else None,
        "two_learners_seconds": variants["two_learners"]["median_seconds"],
        "two_learners_sync_seconds": variants["two_learners_sync"]["median_seconds"],
        "gradient_steps_per_second": {
            name: time_to_solve.median_or_none(
                [run.get("learner_steps_per_second") for run in measurement["details"][name]["runs"]]
            )
            for name in ("distributed", *LEARNER_VARIANTS)
        },
        "seeds": measurement["settings"]["seeds"],
        "where_time_goes": where,
        "time_to_solve": measurement,
    }


if __name__ == "__main__":
    sys.exit(main())
