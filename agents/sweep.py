"""Runs every combination of swept config values × seeds as `agents.run` subprocesses, then summarizes them.

    python -m agents.sweep --agent dqn --env CartPole-v1 --seeds 5 --config learning_rate=1e-3,3e-3 --parallel 2
    python -m agents.sweep --agent dqn --seeds 3 --config learning_rate=1e-3,3e-3 --config batch_size=64,256 \\
        --single_process --stop_when_solved false --max_actor_steps 50000

Comma-separated values of one `--config` key are an axis of the sweep (several swept keys: every combination);
for a tuple field, separate the values with ';' (`--config "hidden_sizes=64,64;128,128"`). Every other flag
goes to each run unchanged (see `python -m agents.run --help`). Writes SWEEP_DIR/<setting>/seed_<n>/ (one run
directory each, its terminal output next to it as seed_<n>.log), summary.csv, summary.json and
learning_curves.png; prints the summary table.
"""

import time

_START_TIME = time.time()

import argparse  # noqa: E402
import concurrent.futures  # noqa: E402
import csv  # noqa: E402
import datetime  # noqa: E402
import itertools  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import typing  # noqa: E402
from typing import Any, Dict, List, Optional, Sequence, Tuple  # noqa: E402

import numpy as np  # noqa: E402

from agents import envs, registry, utils  # noqa: E402
from agents.experiments.overrides import parse_overrides  # noqa: E402

# Set by the sweep for each run; a sweep that passes them on would make every run the same run.
_SWEEP_OWNED_FLAGS = ("--seed", "--run_dir", "--resume", "--agent", "--env")
_SUMMARY_COLUMNS = (
    "setting",
    "runs",
    "failed",
    "solved_fraction",
    "seconds_to_solve_median",
    "seconds_to_solve_iqr",
    "env_steps_to_solve_median",
    "env_steps_to_solve_iqr",
    "final_eval_return_mean",
)


class SweepError(Exception):
    """A mistake in the sweep's command line, reported in one line."""


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m agents.sweep", description=__doc__.split("\n")[0], allow_abbrev=False
    )
    parser.add_argument("--agent", default="dqn", help=f"one of {', '.join(sorted(registry.AGENTS))} (default dqn)")
    parser.add_argument("--env", default="CartPole-v1", help="gymnasium environment id (default CartPole-v1)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per setting (default 3)")
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a config field and its values (an axis of the sweep when several; repeatable)",
    )
    parser.add_argument("--parallel", type=int, default=1, help="runs at a time (default 1)")
    parser.add_argument("--sweep_dir", help="output directory, new or empty (default runs/sweep-<timestamp>)")
    return parser


def settings(agent: str, config_flags: Sequence[str]) -> List[Tuple[str, List[str]]]:
    """[(setting name, its --config flags)] for every combination of the swept values, checked against the
    agent's config class (an unknown field or a value of the wrong type is a SweepError naming it)."""
    config_class = registry.builder_class(agent).config_class
    hints = typing.get_type_hints(config_class)
    axes: List[List[str]] = []
    for flag in config_flags:
        key, separator, text = flag.partition("=")
        key = key.strip()
        if not separator or not key:
            raise SweepError(f"--config {flag!r} is not key=value1,value2,... (e.g. --config learning_rate=1e-3,3e-3).")
        separator = ";" if typing.get_origin(hints.get(key)) is tuple else ","
        values = [value.strip() for value in text.split(separator) if value.strip()]
        if not values:
            raise SweepError(f"--config {key}: no values given (e.g. --config {key}=V1,V2).")
        axes.append([f"{key}={value}" for value in values])
    combinations = []
    for overrides in itertools.product(*axes):
        try:
            parse_overrides(config_class, overrides)
        except ValueError as error:
            raise SweepError(str(error)) from None
        swept = [override for override, axis in zip(overrides, axes) if len(axis) > 1]
        combinations.append((",".join(swept) or "default", list(overrides)))
    return combinations


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Runs the sweep; returns the summary (summary.json's contents)."""
    args, passthrough = make_parser().parse_known_args(argv)
    try:
        plan = _plan(args, passthrough)
    except SweepError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    sweep_dir, runs = plan
    print(f"sweep_dir: {sweep_dir} ({len(runs)} runs, {args.parallel} at a time)", flush=True)
    try:
        results = _run_all(runs, args.parallel)
    except KeyboardInterrupt:
        results = [_read_result(run["run_dir"]) for run in runs]
        summarize(args.agent, args.env, runs, results, sweep_dir)
        raise SystemExit(128 + signal.SIGINT) from None
    summary = summarize(args.agent, args.env, runs, results, sweep_dir)
    print(format_table(summary["settings"]))
    print(f"{len(runs)} runs in {time.time() - _START_TIME:.0f}s. Plot: {summary['learning_curves']}")
    return summary


def _plan(args: argparse.Namespace, passthrough: List[str]) -> Tuple[str, List[Dict[str, Any]]]:
    for flag in passthrough:
        if flag.split("=")[0] in _SWEEP_OWNED_FLAGS:
            raise SweepError(f"{flag.split('=')[0]} is set by the sweep for each run; drop it.")
    if args.seeds < 1:
        raise SweepError(f"--seeds must be >= 1 (got {args.seeds}).")
    if args.parallel < 1:
        raise SweepError(f"--parallel must be >= 1 (got {args.parallel}).")
    if args.agent not in registry.AGENTS:
        raise SweepError(f"unknown agent {args.agent!r}; the agents are: {', '.join(sorted(registry.AGENTS))}.")
    # Flags for agents.run are checked once here, not once per run in a failing subprocess.
    from agents import run  # pylint: disable=import-outside-toplevel

    run_parser = run.make_parser()

    def refuse(message: str) -> None:
        raise SweepError(f"{message} (a flag for each run: see python -m agents.run --help)")

    run_parser.error = refuse  # type: ignore[method-assign]
    _, unknown = run_parser.parse_known_args(passthrough)
    if unknown:
        raise SweepError(f"{unknown[0]} is not a flag of the sweep or of `python -m agents.run` (see their --help).")
    combinations = settings(args.agent, args.config)
    sweep_dir = args.sweep_dir or os.path.join("runs", datetime.datetime.now().strftime("sweep-%Y%m%d-%H%M%S"))
    if os.path.isdir(sweep_dir) and os.listdir(sweep_dir):
        raise SweepError(f"--sweep_dir {sweep_dir} is not empty; pass a new directory.")
    os.makedirs(sweep_dir, exist_ok=True)
    runs = []
    for name, overrides in combinations:
        for seed in range(args.seeds):
            run_dir = os.path.join(sweep_dir, name, f"seed_{seed}")
            command = [sys.executable, "-m", "agents.run", "--agent", args.agent, "--env", args.env]
            command += ["--seed", str(seed), "--run_dir", run_dir, *passthrough]
            command += [flag for override in overrides for flag in ("--config", override)]
            runs.append({"setting": name, "seed": seed, "run_dir": run_dir, "command": command})
    return sweep_dir, runs


def _run_all(runs: List[Dict[str, Any]], parallel: int) -> List[Optional[Dict[str, Any]]]:
    """Runs at most `parallel` at a time; each run's result.json contents, or None if it wrote none."""
    done = [0]
    lock = threading.Lock()

    def run_one(run: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        log_path = run["run_dir"] + ".log"
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        with open(log_path, "w", encoding="utf-8") as log:
            returncode = subprocess.run(run["command"], stdout=log, stderr=subprocess.STDOUT, check=False).returncode
        result = _read_result(run["run_dir"])
        with lock:
            done[0] += 1
            print(
                f"[{done[0]}/{len(runs)}] {run['setting']} seed {run['seed']}: {_outcome(result, returncode, log_path)}"
            )
        return result

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=parallel)
    futures = [pool.submit(run_one, run) for run in runs]
    try:
        return [future.result() for future in futures]
    except KeyboardInterrupt:
        # Ctrl-C reached the running runs too (one process group): they stop with their results written.
        # Runs not started yet are dropped; the summary covers those that ran.
        print("interrupted: waiting for the running runs to stop", file=sys.stderr)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


def _read_result(run_dir: str) -> Optional[Dict[str, Any]]:
    path = os.path.join(run_dir, "result.json")
    return utils.read_json(path) if os.path.isfile(path) else None


def _outcome(result: Optional[Dict[str, Any]], returncode: int, log_path: str) -> str:
    if result is None:
        return f"failed (exit status {returncode}; see {log_path})"
    if result.get("solved"):
        return f"solved at {result['solved_at_seconds']:.1f}s, {result['solved_at_actor_steps']:,} env steps"
    return f"not solved ({result.get('stopped_by')}, {result.get('actor_steps', 0):,} env steps)"


def summarize(
    agent: str, env: str, runs: List[Dict[str, Any]], results: List[Optional[Dict[str, Any]]], sweep_dir: str
) -> Dict[str, Any]:
    """Per setting: solved fraction, time and env steps to solve (median and interquartile range over the solved
    runs), the mean of the final evaluations; writes summary.csv, summary.json and learning_curves.png."""
    rows, curves = [], {}
    for name in dict.fromkeys(run["setting"] for run in runs):
        mine = [(run, result) for run, result in zip(runs, results) if run["setting"] == name]
        finished = [result for _, result in mine if result is not None]
        solved = [result for result in finished if result.get("solved")]
        finals = [result["eval_return"] for result in finished if result.get("eval_return") is not None]
        rows.append(
            {
                "setting": name,
                "runs": len(mine),
                "failed": len(mine) - len(finished),
                "solved_fraction": len(solved) / len(mine),
                **_median_and_iqr("seconds_to_solve", [result["solved_at_seconds"] for result in solved]),
                **_median_and_iqr("env_steps_to_solve", [result["solved_at_actor_steps"] for result in solved]),
                "final_eval_return_mean": float(np.mean(finals)) if finals else None,
            }
        )
        curves[name] = [_evaluations(run["run_dir"]) for run, _ in mine]
    plot_path = utils.plot_sweep_curves(
        curves,
        os.path.join(sweep_dir, "learning_curves.png"),
        title=f"{agent} on {env}: mean and 95% bootstrap band over {max(len(c) for c in curves.values())} seeds",
        threshold=envs.solved_return(env),
    )
    with open(os.path.join(sweep_dir, "summary.csv"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=_SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    summary = {
        "agent": agent,
        "env": env,
        "settings": rows,
        "runs": [
            {"setting": run["setting"], "seed": run["seed"], "run_dir": run["run_dir"], "result": result}
            for run, result in zip(runs, results)
        ],
        "learning_curves": plot_path,
    }
    utils.write_json(os.path.join(sweep_dir, "summary.json"), summary)
    return summary


def _median_and_iqr(name: str, values: List[float]) -> Dict[str, Optional[float]]:
    if not values:
        return {f"{name}_median": None, f"{name}_iqr": None}
    q25, q50, q75 = np.percentile(values, [25, 50, 75])
    return {f"{name}_median": float(q50), f"{name}_iqr": float(q75 - q25)}


def _evaluations(run_dir: str) -> Tuple[np.ndarray, np.ndarray]:
    """(actor steps, eval return) of a run's full evaluations, from its evaluator log."""
    path = os.path.join(run_dir, "logs", "evaluator.csv")
    if not os.path.isfile(path):
        return np.zeros(0), np.zeros(0)
    columns = utils.read_csv_log(path)
    steps, returns = np.asarray(columns["actor_steps"]), np.asarray(columns["eval_return"])
    full = ~np.isnan(returns)
    return steps[full], returns[full]


def format_table(rows: List[Dict[str, Any]]) -> str:
    """The summary as an aligned text table."""
    header = ("setting", "solved", "s to solve (median, IQR)", "env steps to solve (median, IQR)", "final eval")
    lines = [header]
    for row in rows:
        lines.append(
            (
                row["setting"],
                f"{row['solved_fraction'] * row['runs']:.0f}/{row['runs']}"
                + (f" ({row['failed']} failed)" if row["failed"] else ""),
                _pair(row["seconds_to_solve_median"], row["seconds_to_solve_iqr"], "{:.1f}"),
                _pair(row["env_steps_to_solve_median"], row["env_steps_to_solve_iqr"], "{:,.0f}"),
                "-" if row["final_eval_return_mean"] is None else f"{row['final_eval_return_mean']:.1f}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def _pair(median: Optional[float], iqr: Optional[float], fmt: str) -> str:
    return "-" if median is None else f"{fmt.format(median)} ({fmt.format(iqr)})"


if __name__ == "__main__":
    main(sys.argv[1:])
