"""Tabular Q-learning: env steps and wall seconds until the greedy policy is exactly optimal, single learner vs
K workers that own blocks of the state space (partitioned) vs K workers whose tables are averaged.

Per seed, each variant is a fresh `python -m agents.run --agent tabular` process; seconds count from its launch
(interpreter start, imports and the node processes' start-up included) until the coordinator (or the single
process) first judged the merged table's greedy policy optimal from every start state against value iteration:

- `single`: one learner in one process (`--single_process`, the config's defaults);
- `single_eps1`: the same with epsilon=1 (a uniformly random behaviour policy): the best single learner we found;
- `partitioned_k2`, `partitioned_k5`: `--config mode=partitioned --config num_workers=K`, local_mp (the automatic
  epsilon of several workers, 0.7);
- `partitioned_k5_eps02`: K=5 with the single learner's epsilon, 0.2;
- `averaged_k5`: `--config mode=averaged --config num_workers=5`, local_mp (epsilon 0.7 too).

Target (Taxi-v4): partitioned K=5 in <= 1/4 of `single`'s seconds, on every seed. FrozenLake8x8-v1 is reported as
measured (slippery: a learner reaches Q* only approximately, and value crosses block borders once per merge).

    python benchmarks/tabular_parallel.py [--seeds 5] [--quick] [--runs_dir DIR] [--json PATH]

Start-up is launch until every worker learns; "waits" is how long the workers' exchanges waited for the slowest
worker (TabularConfig.max_lead), summed over workers, until the run stopped.

JSON: {"settings", "envs": {ENV: {VARIANT: {"solved", "seeds", "median_steps", "median_seconds",
"median_startup_seconds", "median_lead_wait_seconds", "runs": [...]}}}, "target": {"ratios", "met", "seeds"}}. An
unsolved run counts as never (its seconds null); a median over seeds with half or more unsolved is null.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import time_to_solve  # noqa: E402  pylint: disable=wrong-import-position

VARIANTS = {
    "single": ["--single_process"],
    "single_eps1": ["--single_process", "--config", "epsilon=1.0"],
    "partitioned_k2": ["--config", "mode=partitioned", "--config", "num_workers=2"],
    "partitioned_k5": ["--config", "mode=partitioned", "--config", "num_workers=5"],
    "partitioned_k5_eps02": ["--config", "mode=partitioned", "--config", "num_workers=5", "--config", "epsilon=0.2"],
    "averaged_k5": ["--config", "mode=averaged", "--config", "num_workers=5"],
}
# Environment -> (variants, budget seconds per run).
ENVIRONMENTS = {
    "Taxi-v4": (list(VARIANTS), 120.0),
    "FrozenLake8x8-v1": (["single", "partitioned_k2", "partitioned_k5"], 45.0),
}
TARGET_RATIO = 0.25


def run_variant(env: str, variant: str, seed: int, max_seconds: float, work_dir: str) -> Dict[str, Any]:
    """One training process; `seconds` from its launch until optimal (None if it was not reached)."""
    run_dir = os.path.join(work_dir, f"{env}_{variant}_{seed}")
    command = [sys.executable, "-m", "agents.run", "--agent", "tabular", "--env", env, "--seed", str(seed)]
    command += ["--run_dir", run_dir, "--max_seconds", f"{max_seconds:g}", *VARIANTS[variant]]
    process = time_to_solve.run_process(
        command, max_seconds + time_to_solve.DEADLINE_MARGIN_SECONDS, run_dir + ".process"
    )
    run: Dict[str, Any] = {"variant": variant, "seed": seed, "optimal": False, "seconds": None, "steps": None}
    result_path, config_path = os.path.join(run_dir, "result.json"), os.path.join(run_dir, "config.json")
    if not (os.path.exists(result_path) and os.path.exists(config_path)):
        run["error"] = f"exit code {process['returncode']}, no result.json:\n{process['stderr_tail']}"
        return run
    result = _read_json(result_path)
    interpreter_start = _read_json(config_path)["start_time"] - process["launched"]
    run.update(
        optimal=bool(result["optimal"]),
        steps=result["steps"],
        actor_steps=result["actor_steps"],
        max_q_error=result["max_q_error"],
        startup_seconds=None if result["startup_seconds"] is None else interpreter_start + result["startup_seconds"],
        lead_wait_seconds=result.get("lead_wait_seconds"),
    )
    if result["optimal"]:
        run["seconds"] = interpreter_start + result["seconds"]
    return run


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _median_of_all(values: List[Optional[float]]) -> Optional[float]:
    """The median with None as never; None when that is the median."""
    median = statistics.median([float("inf") if v is None else v for v in values])
    return None if median == float("inf") else median


def summarize(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {
        "solved": sum(run["optimal"] for run in runs),
        "seeds": len(runs),
        "median_steps": _median_of_all([run["steps"] for run in runs]),
        "median_seconds": _median_of_all([run["seconds"] for run in runs]),
        "median_startup_seconds": time_to_solve.median_or_none([run.get("startup_seconds") for run in runs]),
        "median_lead_wait_seconds": time_to_solve.median_or_none([run.get("lead_wait_seconds") for run in runs]),
        "median_final_max_q_error": time_to_solve.median_or_none([run.get("max_q_error") for run in runs]),
        "runs": runs,
    }


def target(taxi: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """Per seed: partitioned K=5's seconds over single's (an unsolved single counts as its whole budget, a lower
    bound; an unsolved partitioned run misses the target)."""
    budget = ENVIRONMENTS["Taxi-v4"][1]
    ratios = []
    for single, split in zip(taxi["single"]["runs"], taxi["partitioned_k5"]["runs"]):
        single_seconds = single["seconds"] if single["optimal"] else budget
        ratios.append(None if not split["optimal"] else split["seconds"] / single_seconds)
    met = sum(1 for ratio in ratios if ratio is not None and ratio <= TARGET_RATIO)
    return {"ratios": ratios, "met": met, "seeds": len(ratios), "target_ratio": TARGET_RATIO}


def _format(value: Optional[float], spec: str, missing: str = "never") -> str:
    return missing if value is None else format(value, spec)


def print_table(envs: Dict[str, Dict[str, Dict[str, Any]]], goal: Optional[Dict[str, Any]]) -> None:
    for env, variants in envs.items():
        print(f"\n{env}: until the greedy policy is exactly optimal (medians over seeds)")
        header = f"{'optimal':>8s} {'env steps':>11s} {'seconds':>8s} {'start-up s':>10s} {'waits s':>8s} "
        header += f"{'max|Q-Q*|':>10s}"
        print(f"  {'variant':20s} {header}")
        for name, summary in variants.items():
            print(
                f"  {name:20s} {summary['solved']:>4d}/{summary['seeds']:<3d} "
                f"{_format(summary['median_steps'], ',.0f'):>11s} {_format(summary['median_seconds'], '.1f'):>8s} "
                f"{_format(summary['median_startup_seconds'], '.1f', '-'):>10s} "
                f"{_format(summary['median_lead_wait_seconds'], '.2f', '-'):>8s} "
                f"{_format(summary['median_final_max_q_error'], '.3f', '-'):>10s}"
            )
    if goal is not None:
        ratios = ", ".join(_format(ratio, ".2f") for ratio in goal["ratios"])
        print(
            f"\nTarget: partitioned K=5 seconds / single seconds <= {goal['target_ratio']} on every seed: "
            f"{goal['met']}/{goal['seeds']} seeds (ratios {ratios})"
        )


def main() -> int:
    time_to_solve.exit_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one seed, Taxi-v4 only")
    parser.add_argument("--runs_dir", default=None, help="keep the runs' directories here (default: deleted)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    seeds = 1 if args.quick else args.seeds
    environments = {"Taxi-v4": ENVIRONMENTS["Taxi-v4"]} if args.quick else ENVIRONMENTS
    with tempfile.TemporaryDirectory() as temporary:
        work_dir = args.runs_dir or temporary
        os.makedirs(work_dir, exist_ok=True)
        envs: Dict[str, Dict[str, Any]] = {}
        errors = []
        for env, (variants, max_seconds) in environments.items():
            runs: Dict[str, List[Dict[str, Any]]] = {variant: [] for variant in variants}
            for seed in range(seeds):  # Seeds outermost: load drift on the shared machine hits every variant.
                for variant in variants:
                    run = run_variant(env, variant, seed, max_seconds, work_dir)
                    runs[variant].append(run)
                    errors += [run["error"]] if "error" in run else []
                    print(
                        f"{env} {variant} seed {seed}: optimal={run['optimal']} steps={run['steps']} "
                        f"seconds={_format(run['seconds'], '.1f')}",
                        flush=True,
                    )
            envs[env] = {variant: summarize(variant_runs) for variant, variant_runs in runs.items()}
    goal = target(envs["Taxi-v4"])
    print_table(envs, goal)
    if args.json:
        settings = {"seeds": seeds, "budgets": {env: budget for env, (_, budget) in environments.items()}}
        time_to_solve.write_json(args.json, {"settings": settings, "envs": envs, "target": goal})
        print(f"\nwrote {args.json}")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
