"""Time to solve CartPole-v1 with IMPALA (distributed, single process, Stable-Baselines3 PPO and A2C), and where
it goes.

An alias of `benchmarks/time_to_solve.py --agent impala --env CartPole-v1 --baselines sb3_ppo,sb3_a2c` (its
table, criterion and JSON come from there) plus IMPALA-only measurements from the distributed runs: the fraction
of wall time the queue was full (actors waiting for the learner), the frames per second the learner consumed
against the frames per second the actors produced, and where the time goes (interpreter start, first actor
episode, TF/Reverb import, the learner's first tf.function trace, queue waits).

    python benchmarks/impala_cartpole.py [--seeds 3] [--max_seconds 120] [--num_actors 2] [--quick]
        [--runs_dir DIR] [--json PATH]

The JSON has the time-to-solve measurement under "time_to_solve" (time_to_solve.py's format), the medians as
distributed_seconds / single_process_seconds / sb3_ppo_seconds / sb3_a2c_seconds (null if unsolved or not
installed), "queue_and_frames" and "where_time_goes".
"""

import argparse
import os
import sys
from typing import Any, Dict, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import time_to_solve  # noqa: E402  pylint: disable=wrong-import-position

REPO = time_to_solve.REPO
BASELINES = ["sb3_ppo", "sb3_a2c"]


def _config() -> Any:
    sys.path.insert(0, REPO)
    from agents.impala import IMPALAConfig  # pylint: disable=import-outside-toplevel

    return IMPALAConfig()


def queue_and_frames(measurement: Dict) -> Dict[str, Optional[float]]:
    """Medians over the distributed runs: queue-full fraction, and learner vs actor frames per second.

    The queue is full while inserts wait for the learner to sample (Reverb's waiting_for_sampling_ms). A learner
    step consumes batch_size sequences of sequence_length - 1 learned steps (the last only bootstraps).
    """
    config = _config()
    frames_per_learner_step = config.batch_size * (config.sequence_length - 1)
    median = time_to_solve.median_or_none
    full, starved, learner_fps, actor_fps = [], [], [], []
    for run in measurement["details"]["distributed"]["runs"]:
        result = run.get("result") or {}
        wall = result.get("wall_seconds")
        if not wall:
            continue
        if result.get("replay_waiting_for_sampling_ms") is not None:
            full.append(result["replay_waiting_for_sampling_ms"] / (1e3 * wall))
            starved.append(result["replay_waiting_for_inserts_ms"] / (1e3 * wall))
        learner_fps.append(result.get("learner_steps", 0) * frames_per_learner_step / wall)
        actor_fps.append(result.get("actor_steps", 0) / wall)
    return {
        "queue_full_fraction": median(full),
        "learner_starved_fraction": median(starved),
        "learner_frames_per_second": median(learner_fps),
        "actor_frames_per_second": median(actor_fps),
    }


def learner_trace_and_capacity() -> Dict[str, float]:
    """Seconds of the learner's construction and first step (tf.function trace and first call) and its frames/s
    on batches in memory."""
    sys.path.insert(0, REPO)
    import replay
    from agents import envs
    from agents.impala import IMPALABuilder, extras_spec

    config = _config()
    spec = replay.make_environment_spec(envs.make_environment("CartPole-v1"))
    signature = replay.SequenceAdder.signature(spec, extras_spec(2), config.sequence_length)
    first, later = time_to_solve.learner_step_seconds(IMPALABuilder(config), signature, config.batch_size)
    return {
        "first_learner_step_seconds": first,
        "later_learner_step_ms": 1e3 * later,
        "learner_capacity_frames_per_second": config.batch_size * (config.sequence_length - 1) / later,
    }


def where_time_goes(measurement: Dict) -> Dict[str, Optional[float]]:
    """Medians over the runs' logs (replay is the queue here), plus this process's learner measurements."""
    return {**time_to_solve.where_time_goes(measurement), **learner_trace_and_capacity()}


def _print_section(title: str, values: Dict[str, Optional[float]]) -> None:
    print(f"\n{title}")
    for key, value in values.items():
        print(f"  {key:45s} {'-' if value is None else format(value, ',.3f')}")


def main() -> int:
    time_to_solve.exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    time_to_solve.add_arguments(parser)
    args = parser.parse_args()
    seeds, max_seconds = time_to_solve.budget(args)
    try:
        measurement = time_to_solve.measure(
            "impala", "CartPole-v1", seeds, BASELINES, max_seconds, args.num_actors, runs_dir=args.runs_dir
        )
    except time_to_solve.UsageError as error:
        parser.error(str(error))
    time_to_solve.print_table(measurement)
    queue = queue_and_frames(measurement)
    if args.json:  # Written now too, so that the measurement survives a failure below.
        time_to_solve.write_json(args.json, results(measurement, queue, None))
    _print_section("Queue and frames (distributed runs, medians; target: queue full < 10% of the time):", queue)
    where = where_time_goes(measurement)
    _print_section("Where the time goes:", where)
    if args.json:
        time_to_solve.write_json(args.json, results(measurement, queue, where))
        print(f"\nwrote {args.json}")
    return 1 if measurement["errors"] else 0


def results(measurement: Dict, queue: Dict, where: Optional[Dict]) -> Dict:
    variants = measurement["variants"]
    return {
        "distributed_seconds": variants["distributed"]["median_seconds"],
        "single_process_seconds": variants["single_process"]["median_seconds"],
        **{f"{name}_seconds": variants[name]["median_seconds"] if name in variants else None for name in BASELINES},
        "seeds": measurement["settings"]["seeds"],
        "queue_and_frames": queue,
        "where_time_goes": where,
        "time_to_solve": measurement,
    }


if __name__ == "__main__":
    sys.exit(main())
