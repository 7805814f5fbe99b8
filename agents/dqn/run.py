"""Trains Ape-X DQN on a gymnasium environment until solved or out of budget.

    python -m agents.dqn.run                          # CartPole-v1, local_mp, 2 actors
    python -m agents.dqn.run --single_process         # acting and learning in one process

Writes run_dir/{config,program,result}.json, logs/*.csv, tb/ and learning_curve.png.
"""

import time

_START_TIME = time.time()  # Before the heavy imports: wall time counts them.

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from typing import Any, Dict, List, Optional  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from agents import utils  # noqa: E402
from agents.dqn.config import DQNConfig  # noqa: E402

LAUNCH_TYPES = ("local_mp", "local_mt", "test_mt")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m agents.dqn.run", description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="CartPole-v1", help="gymnasium environment id")
    parser.add_argument("--num_actors", type=int, default=2)
    parser.add_argument("--launch_type", default="local_mp", choices=LAUNCH_TYPES)
    parser.add_argument("--run_dir", default=None, help="output directory (default runs/<timestamp>)")
    parser.add_argument("--max_seconds", type=float, default=300.0, help="wall-clock budget")
    parser.add_argument("--max_actor_steps", type=int, default=None, help="actor-step budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--single_process", action="store_true",
                        help="interleave acting and learning in one process (no launch)")
    parser.add_argument("--verbose", action="store_true", help="node logs to the terminal too")
    args = parser.parse_args(argv)
    if args.num_actors < 1:
        parser.error(f"--num_actors must be >= 1 (got {args.num_actors}).")
    if args.max_seconds is not None and args.max_seconds <= 0:
        parser.error(f"--max_seconds must be > 0 (got {args.max_seconds}).")
    return args


def main(argv: Optional[List[str]] = None, config: Optional[DQNConfig] = None,
         start_time: Optional[float] = None) -> Dict[str, Any]:
    """Runs one experiment and returns the contents of result.json."""
    args = parse_args(argv)
    config = config or DQNConfig()
    start_time = _START_TIME if start_time is None else start_time
    run_dir = utils.make_run_dir(args.run_dir)
    utils.write_json(os.path.join(run_dir, "config.json"),
                     {"env": args.env, "num_actors": args.num_actors, "launch_type": args.launch_type,
                      "single_process": args.single_process, "seed": args.seed,
                      "max_seconds": args.max_seconds, "max_actor_steps": args.max_actor_steps,
                      "start_time": start_time, "agent": dataclasses.asdict(config)})
    print(f"run_dir: {run_dir}")
    if args.single_process:
        from agents.dqn.single_process import run_single_process  # pylint: disable=import-outside-toplevel
        result = run_single_process(config, args.env, run_dir, seed=args.seed,
                                    max_seconds=args.max_seconds, max_actor_steps=args.max_actor_steps,
                                    start_time=start_time, verbose=args.verbose)
    else:
        from agents.dqn.program import run_distributed  # pylint: disable=import-outside-toplevel
        result = run_distributed(config, args.env, run_dir, num_actors=args.num_actors,
                                 launch_type=args.launch_type, seed=args.seed,
                                 max_seconds=args.max_seconds, max_actor_steps=args.max_actor_steps,
                                 start_time=start_time, verbose=args.verbose)
    status = "solved" if result["solved"] else "not solved"
    eval_return = result["eval_return"]
    print(f"{status} in {result['wall_seconds']:.1f}s: eval return "
          f"{'-' if eval_return is None else format(eval_return, '.1f')}, "
          f"{result['actor_steps']:,} actor steps, {result['learner_steps']:,} learner steps. "
          f"Plot: {os.path.join(run_dir, 'learning_curve.png')}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
