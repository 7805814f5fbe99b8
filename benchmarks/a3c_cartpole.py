"""Time to solve CartPole-v1 with A3C and A2C against Stable-Baselines3 A2C, and what synchronization costs.

An alias of `benchmarks/time_to_solve.py --agent a3c --baselines sb3_a2c` and `--agent a2c` (no baseline: both
compare with the same SB3 A2C runs; table, criterion and JSON from there), plus throughput runs of both agents
with 1, 2 and 4 workers for a fixed time, training to the budget (`--stop_when_solved false`, no evaluations in
between): environment steps/s (all workers), updates/s and pushes/s at the parameter server, the staleness median
(updates between the parameters a gradient was computed on and those it was applied to) and A2C's short rounds.

    python benchmarks/a3c_cartpole.py [--seeds 3] [--max_seconds 120] [--num_actors 2] [--throughput_seconds 40]
        [--quick] [--runs_dir DIR] [--json PATH]

The JSON has "a3c" and "a2c" (time_to_solve.py's measurement each), the medians as a3c_seconds / a2c_seconds /
sb3_a2c_seconds (distributed runs; null if unsolved), and "throughput": one row per agent and worker count.
"""

import argparse
import os
import sys
import tempfile
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import time_to_solve  # noqa: E402  pylint: disable=wrong-import-position

AGENTS = ("a3c", "a2c")
WORKER_COUNTS = (1, 2, 4)


def throughput(agent: str, num_workers: int, seconds: float, work_dir: str) -> Dict[str, Any]:
    """One run of `agent` with `num_workers` workers for `seconds`, training to the budget."""
    run_dir = os.path.join(work_dir, f"throughput_{agent}_{num_workers}")
    error, server, logs = time_to_solve.train_to_budget(agent, run_dir, seconds, num_workers)
    row: Dict[str, Any] = {"agent": agent, "workers": num_workers, "error": error}
    if error is not None:
        return row
    row.update(
        env_steps_per_second=logs["actor_steps_per_second"],
        updates_per_second=server.get("updates_per_second"),
        pushes_per_second=server.get("pushes_per_second"),
        staleness_median=server.get("staleness_median"),
        staleness_p90=server.get("staleness_p90"),
        short_rounds=server.get("short_rounds"),
        updates=server.get("updates"),
    )
    return row


def print_throughput(rows: List[Dict[str, Any]]) -> None:
    print(
        "\nThroughput on CartPole-v1 (training to the budget, no evaluations; env steps/s of all workers; rates at "
        "the parameter server since its first push):"
    )
    headers = ["agent", "workers", "env steps/s", "updates/s", "pushes/s", "staleness median", "p90", "short rounds"]
    keys = [
        "agent",
        "workers",
        "env_steps_per_second",
        "updates_per_second",
        "pushes_per_second",
        "staleness_median",
        "staleness_p90",
        "short_rounds",
    ]
    table = [headers]
    for row in rows:
        if row["error"]:
            table.append([row["agent"], str(row["workers"]), "error", *[""] * 5])
            continue
        table.append([_cell(row.get(key)) for key in keys])
    widths = [max(len(line[i]) for line in table) for i in range(len(headers))]
    for line in table:
        print("  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip())
    for row in rows:
        if row["error"]:
            print(f"  {row['agent']} x{row['workers']}: " + row["error"].strip().replace("\n", "\n    "))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def main() -> int:
    time_to_solve.exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    time_to_solve.add_arguments(parser)
    parser.add_argument("--throughput_seconds", type=float, default=40.0, help="budget of each throughput run")
    args = parser.parse_args()
    seeds, max_seconds = time_to_solve.budget(args)
    throughput_seconds = min(args.throughput_seconds, 20.0) if args.quick else args.throughput_seconds
    measurements: Dict[str, Dict] = {}
    try:
        for agent in AGENTS:
            runs_dir = os.path.join(args.runs_dir, agent) if args.runs_dir else None
            baselines = ["sb3_a2c"] if agent == "a3c" else []
            measurements[agent] = time_to_solve.measure(
                agent, "CartPole-v1", seeds, baselines, max_seconds, args.num_actors, runs_dir=runs_dir
            )
            time_to_solve.print_table(measurements[agent])
            if args.json:  # Written as it goes, so that what was measured survives a failure later.
                time_to_solve.write_json(args.json, results(measurements, None))
    except time_to_solve.UsageError as error:
        parser.error(str(error))
    rows: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="a3c-throughput-") as temporary:
        work_dir = os.path.join(args.runs_dir, "throughput") if args.runs_dir else temporary
        os.makedirs(work_dir, exist_ok=True)
        for agent in AGENTS:
            for num_workers in WORKER_COUNTS:
                rows.append(throughput(agent, num_workers, throughput_seconds, work_dir))
    print_throughput(rows)
    if args.json:
        time_to_solve.write_json(args.json, results(measurements, rows))
        print(f"\nwrote {args.json}")
    errors = sum(m["errors"] for m in measurements.values()) + sum(1 for row in rows if row["error"])
    return 1 if errors else 0


def results(measurements: Dict[str, Dict], rows: Optional[List[Dict[str, Any]]]) -> Dict[str, Any]:
    median = lambda agent, variant: (  # noqa: E731
        measurements[agent]["variants"].get(variant, {}).get("median_seconds") if agent in measurements else None
    )
    return {
        "a3c_seconds": median("a3c", "distributed"),
        "a2c_seconds": median("a2c", "distributed"),
        "a3c_single_process_seconds": median("a3c", "single_process"),
        "a2c_single_process_seconds": median("a2c", "single_process"),
        "sb3_a2c_seconds": median("a3c", "sb3_a2c"),
        "throughput": rows,
        **measurements,
    }


if __name__ == "__main__":
    sys.exit(main())
