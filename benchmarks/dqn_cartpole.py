"""Time to solve CartPole-v1 with DQN (distributed Ape-X, single process, Stable-Baselines3), and where it goes.

An alias of `benchmarks/time_to_solve.py --agent dqn --env CartPole-v1 --baselines sb3_dqn` (its table,
criterion and JSON come from there) with two more distributed variants, 2 learners pushing gradients to a parameter
server (`--config num_learners=2`, asynchronous; and with `synchronous_learners=true`) next to the one learner of
`distributed` (time to solve; "learner steps/s" are gradient steps/s of all learners, which the rate limiter ties to
the actors' inserts), then 1 and 2 learners trained to a fixed budget with the rate limiter out of their way (their
gradient steps/s as fast as they go), plus DQN-only measurements: one actor's env steps/s against a bare
environment + Reverb writer loop, the TF/Reverb import, the learner's first tf.function trace, and from the
distributed runs' logs the interpreter start, first actor episode and parameter staleness.

    python benchmarks/dqn_cartpole.py [--seeds 3] [--max_seconds 120] [--num_actors 2] [--throughput_seconds 60]
        [--quick] [--runs_dir DIR] [--json PATH]

The JSON has
the time-to-solve measurement under "time_to_solve" (time_to_solve.py's format), the medians as
distributed_seconds / single_process_seconds / sb3_seconds / two_learners_seconds / two_learners_sync_seconds (null
if unsolved or SB3 is not installed), "gradient_steps_per_second" (medians by variant), "learner_throughput" (one
row per learner count) and "where_time_goes".
"""

import argparse
import os
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

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


def learner_throughput(num_learners: int, seconds: float, num_actors: int, work_dir: str) -> Dict[str, Any]:
    """One distributed run with `num_learners` learners for `seconds` (start-up included), training to the budget
    without evaluations, its rate limiter's tolerance so wide that past min_replay_size the learners sample as fast
    as they can: their gradient steps/s (all learners), the actors' env steps/s and the parameter server's rates."""
    run_dir = os.path.join(work_dir, f"throughput_{num_learners}_learners")
    extra_args = ("--config", "samples_per_insert_tolerance=1000", "--config", f"num_learners={num_learners}")
    error, server, logs = time_to_solve.train_to_budget("dqn", run_dir, seconds, num_actors, extra_args)
    row: Dict[str, Any] = {"learners": num_learners, "error": error}
    if error is not None:
        return row
    row.update(
        gradient_steps_per_second=logs["learner_steps_per_second"],
        actor_steps_per_second=logs["actor_steps_per_second"],
        server_updates_per_second=server.get("updates_per_second"),
        staleness_median=server.get("staleness_median"),
    )
    return row


def print_learner_throughput(rows: List[Dict[str, Any]]) -> None:
    print("\nLearners unthrottled (samples_per_insert_tolerance=1000), training to the budget without evaluations:")
    print("  learners  gradient steps/s  actor steps/s  server updates/s  staleness median")
    cell = lambda value: "-" if value is None else f"{value:,.1f}"  # noqa: E731
    for row in rows:
        if row["error"]:
            print(f"  {row['learners']:<8}  error: " + row["error"].strip().replace("\n", "\n    "))
            continue
        print(
            f"  {row['learners']:<8}  {cell(row['gradient_steps_per_second']):<16}  "
            f"{cell(row['actor_steps_per_second']):<13}  {cell(row['server_updates_per_second']):<16}  "
            f"{cell(row['staleness_median'])}"
        )


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
    parser.add_argument("--throughput_seconds", type=float, default=60.0, help="budget of each unthrottled run")
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
        time_to_solve.write_json(args.json, results(measurement, None, []))

    with tempfile.TemporaryDirectory(prefix="dqn-learners-") as temporary:
        work_dir = os.path.join(args.runs_dir, "throughput") if args.runs_dir else temporary
        os.makedirs(work_dir, exist_ok=True)
        seconds = min(args.throughput_seconds, 30.0) if args.quick else args.throughput_seconds
        throughput = [learner_throughput(n, seconds, args.num_actors, work_dir) for n in (1, 2)]
    print_learner_throughput(throughput)

    where = where_time_goes(measurement, args.quick)
    print("\nOne actor vs a bare env + Reverb writer loop, and where the time goes:")
    for key, value in where.items():
        print(f"  {key:45s} {'-' if value is None else format(value, ',.3f')}")

    if args.json:
        time_to_solve.write_json(args.json, results(measurement, where, throughput))
        print(f"\nwrote {args.json}")
    return 1 if measurement["errors"] or any(row["error"] for row in throughput) else 0


def results(measurement: Dict, where: Optional[Dict[str, float]], throughput: List[Dict[str, Any]]) -> Dict:
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
        "learner_throughput": throughput,
        "seeds": measurement["settings"]["seeds"],
        "where_time_goes": where,
        "time_to_solve": measurement,
    }


if __name__ == "__main__":
    sys.exit(main())
