"""Time to solve Pendulum-v1 with D4PG (distributed, single process) against Stable-Baselines3 TD3 and SAC, and
where it goes.

An alias of `benchmarks/time_to_solve.py --agent d4pg --env Pendulum-v1 --baselines sb3_td3,sb3_sac` (its table,
criterion and JSON come from there: greedy mean of 10 episodes >= -200, launch to solved) with a longer default
budget (the baselines' rl-zoo settings take 10k random steps, then one gradient step per env step), plus the
target check and where D4PG's time goes (interpreter start, first actor episode, TF/Reverb import, the learner's
first tf.function trace and later step time, replay rate-limiter waits, parameter staleness).

    python benchmarks/d4pg_pendulum.py [--seeds 3] [--max_seconds 300] [--num_actors 2] [--quick]
        [--runs_dir DIR] [--json PATH]

Target: the distributed median is at most the faster of the TD3 and SAC medians of the same run. The JSON has the
time-to-solve measurement under "time_to_solve" (time_to_solve.py's format), the medians as distributed_seconds /
single_process_seconds / sb3_td3_seconds / sb3_sac_seconds (null if unsolved or not installed), the median env
steps to solve of each under "env_steps", "target_met" (null when no baseline solved) and "where_time_goes".
"""

import argparse
import os
import sys
from typing import Any, Dict, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import time_to_solve  # noqa: E402  pylint: disable=wrong-import-position

REPO = time_to_solve.REPO
ENV = "Pendulum-v1"
BASELINES = ["sb3_td3", "sb3_sac"]
DEFAULT_MAX_SECONDS = 300.0  # The baselines need 20k env steps with 10k gradient steps; 120 s cuts them short.


def target_met(measurement: Dict[str, Any]) -> Optional[bool]:
    """Distributed median <= the faster baseline's median (None when no baseline solved; False when D4PG did not)."""
    variants = measurement["variants"]
    baselines = [variants[name]["median_seconds"] for name in BASELINES if name in variants]
    baselines = [seconds for seconds in baselines if seconds is not None]
    if not baselines:
        return None
    distributed = variants["distributed"]["median_seconds"]
    return distributed is not None and distributed <= min(baselines)


def learner_trace_and_step() -> Dict[str, float]:
    """Seconds of the learner's first step (tf.function trace) and its later steps on a batch in memory."""
    sys.path.insert(0, REPO)
    import replay
    from agents import envs
    from agents.d4pg import D4PGBuilder, D4PGConfig

    config = D4PGConfig()
    spec = replay.make_environment_spec(envs.make_environment(ENV))
    signature = replay.NStepTransitionAdder.signature(spec)
    first, later = time_to_solve.learner_step_seconds(D4PGBuilder(config), signature, config.batch_size, env=ENV)
    return {"first_learner_step_seconds": first, "later_learner_step_ms": 1e3 * later}


def _print_section(title: str, values: Dict[str, Optional[float]]) -> None:
    print(f"\n{title}")
    for key, value in values.items():
        print(f"  {key:45s} {'-' if value is None else format(value, ',.3f')}")


def results(measurement: Dict, where: Optional[Dict]) -> Dict:
    variants = measurement["variants"]
    names = ["distributed", "single_process", *BASELINES]
    return {
        **{f"{name}_seconds": variants[name]["median_seconds"] if name in variants else None for name in names},
        "env_steps": {name: variants[name]["median_env_steps"] if name in variants else None for name in names},
        "target_met": target_met(measurement),
        "seeds": measurement["settings"]["seeds"],
        "where_time_goes": where,
        "time_to_solve": measurement,
    }


def main() -> int:
    time_to_solve.exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    time_to_solve.add_arguments(parser)
    parser.set_defaults(max_seconds=DEFAULT_MAX_SECONDS)
    args = parser.parse_args()
    seeds, max_seconds = time_to_solve.budget(args)
    try:
        measurement = time_to_solve.measure(
            "d4pg", ENV, seeds, BASELINES, max_seconds, args.num_actors, runs_dir=args.runs_dir
        )
    except time_to_solve.UsageError as error:
        parser.error(str(error))
    time_to_solve.print_table(measurement)
    met = target_met(measurement)
    print(
        "\nTarget (distributed median <= the faster of TD3 and SAC): "
        + {True: "met", False: "NOT met", None: "no baseline solved"}[met]
    )
    if args.json:  # Written now too, so that the measurement survives a failure below.
        time_to_solve.write_json(args.json, results(measurement, None))
    where = {**time_to_solve.where_time_goes(measurement), **learner_trace_and_step()}
    _print_section("Where the time goes (D4PG runs, medians):", where)
    if args.json:
        time_to_solve.write_json(args.json, results(measurement, where))
        print(f"\nwrote {args.json}")
    return 1 if measurement["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
