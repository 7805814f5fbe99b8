"""local_mp start-up with and without preloading (nodes forked from one process that imported TensorFlow once),
in the same run, against one TensorFlow import.

- program: a replay node and 6 nodes that each run a TF op, trace a tf.function and insert into replay (7 TF
  nodes), from launch() until all of them run; preload on and off alternate, `--repeats` times each;
- baseline: a fresh interpreter importing `replay`'s TensorFlow and Reverb (`--repeats` times, between launches);
- DQN on CartPole-v1 (`python -m agents.run`, 2 actors), preload on and off alternating per seed: launch to the
  first actor episode and launch to solved (benchmarks/time_to_solve.py's measurement).

Targets: all 7 nodes running <= 1.5x one TF import; DQN distributed median time to solve <= 10 s.
Usage: python benchmarks/launch_startup.py [--repeats 3] [--seeds 3] [--max_seconds 120] [--json PATH] [--quick]
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import time_to_solve  # noqa: E402  pylint: disable=wrong-import-position

import launch as lp  # noqa: E402
from launch import _preloading  # noqa: E402

NUM_CLIENTS = 6  # Plus the replay node: 7 TF nodes.


def _tables():
    import replay

    return [replay.tables.queue("queue", 100)]


def _tf_client(client, out_dir: str) -> None:
    """Runs a TF op, traces a tf.function and inserts into replay, then says it runs and waits for the stop."""
    import tensorflow as tf

    double = tf.function(lambda x: 2.0 * x, autograph=False)  # No source to convert: the node is pickled by value.
    value = double(tf.reduce_sum(tf.constant([1.0, 2.0])))
    client.insert([value], {"queue": 1.0})
    with open(os.path.join(out_dir, f"{os.getpid()}"), "w") as f:
        f.write(f"{time.time()}")
    lp.wait_for_stop()


def program_seconds(preload: bool, deadline: float = 300.0) -> Tuple[float, Optional[float]]:
    """Seconds from launch() until every client node has run TF and written to replay (so replay runs too), and
    what of it the preloading process spent importing (None without preloading)."""
    with tempfile.TemporaryDirectory(prefix="launch-startup-") as out_dir:
        program = lp.Program("startup")
        replay_handle = program.add_node(lp.ReverbNode(_tables), label="replay")
        for _ in range(NUM_CLIENTS):
            program.add_node(lp.PyNode(_tf_client, replay_handle, out_dir), label="client")
        started = time.time()
        controller = lp.launch(program, launch_type="local_mp", log_dir=os.path.join(out_dir, "logs"), preload=preload)
        try:
            while len([n for n in os.listdir(out_dir) if n != "logs"]) < NUM_CLIENTS:
                if controller.done() or time.time() - started > deadline:
                    raise RuntimeError(f"the program did not start within {deadline:g}s (preload={preload})")
                time.sleep(0.01)
            seconds = max(float(open(os.path.join(out_dir, n)).read()) for n in os.listdir(out_dir) if n != "logs")
        finally:
            controller.stop_and_wait()
        return seconds - started, _preload_import_seconds(out_dir, "logs")


def tf_import_seconds() -> float:
    """A fresh interpreter importing what the preloading process imports (TensorFlow, Reverb, replay)."""
    started = time.time()
    subprocess.run(
        [sys.executable, "-c", "import replay; replay.import_tensorflow(); import reverb, replay.server"],
        env=time_to_solve.subprocess_env(),
        check=True,
        capture_output=True,
        timeout=300,
    )
    return time.time() - started


def dqn_runs(seeds: int, max_seconds: float, work_dir: str) -> Dict[str, List[Dict]]:
    runs: Dict[str, List[Dict]] = {"preload": [], "spawn": []}
    for seed in range(seeds):
        for name in ("preload", "spawn") if seed % 2 == 0 else ("spawn", "preload"):
            os.environ[_preloading.PRELOAD_ENV] = "1" if name == "preload" else "0"
            run = time_to_solve.run_encore("dqn", "CartPole-v1", seed, False, max_seconds, 2, work_dir, variant=name)
            run["preload_import_seconds"] = _preload_import_seconds(os.path.join(work_dir, f"{name}_{seed}"))
            runs[name].append(run)
            solved = f"solved in {run['seconds']:.1f} s" if run["solved"] else "not solved"
            first = run.get("first_episode_seconds")
            print(f"  DQN seed {seed} {name}: first episode {_fmt(first)} s, {solved}", flush=True)
    os.environ.pop(_preloading.PRELOAD_ENV)
    return runs


def _preload_import_seconds(run_dir: str, logs: str = "node_logs") -> Optional[float]:
    """What the run's preloading process spent importing, from its log (None without one)."""
    try:
        with open(os.path.join(run_dir, logs, "preload.log")) as f:
            return float(re.search(r" in ([0-9.]+)s", f.read()).group(1))
    except (OSError, AttributeError):
        return None


def _median(values: List[Optional[float]]) -> Optional[float]:
    """Median of the values there are (None if there are none)."""
    return time_to_solve.median_or_none(values)


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max_seconds", type=float, default=120.0, help="budget per DQN run")
    parser.add_argument("--quick", action="store_true", help="1 repeat, 1 seed")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    repeats, seeds = (1, 1) if args.quick else (args.repeats, args.seeds)
    load_before = os.getloadavg()

    timings: Dict[str, List[float]] = {"preload": [], "spawn": [], "tf_import": [], "preload_import": []}
    for repeat in range(repeats):
        for name in ("preload", "spawn") if repeat % 2 == 0 else ("spawn", "preload"):
            seconds, import_seconds = program_seconds(preload=name == "preload")
            timings[name].append(seconds)
            if import_seconds is not None:
                timings["preload_import"].append(import_seconds)
            print(
                f"  7 TF nodes, {name}: all running after {seconds:.2f} s (preloading import {_fmt(import_seconds)} s)",
                flush=True,
            )
        timings["tf_import"].append(tf_import_seconds())
        print(f"  one TF import: {timings['tf_import'][-1]:.2f} s", flush=True)
    medians = {name: statistics.median(values) for name, values in timings.items()}

    with tempfile.TemporaryDirectory(prefix="launch-startup-dqn-") as work_dir:
        dqn = dqn_runs(seeds, args.max_seconds, work_dir)
    dqn_medians = {
        name: {
            "first_episode_seconds": _median([r.get("first_episode_seconds") for r in runs]),
            "solve_seconds": time_to_solve.time_to_solve_median(runs),  # An unsolved seed counts as never.
            "launcher_start_seconds": _median([r.get("interpreter_start_seconds") for r in runs]),
            "preload_import_seconds": _median([r["preload_import_seconds"] for r in runs]),
            "solved": sum(r["solved"] for r in runs),
            "per_seed_solve_seconds": [r["seconds"] for r in runs],
            "per_seed_first_episode_seconds": [r.get("first_episode_seconds") for r in runs],
            "errors": [r["error"] for r in runs if r["error"]],
        }
        for name, runs in dqn.items()
    }
    load_after = os.getloadavg()

    ratio = medians["preload"] / medians["tf_import"]
    print(
        f"\nlocal_mp start-up, median of {repeats} "
        f"(load average {load_before[0]:.1f} before, {load_after[0]:.1f} after)"
    )
    print(f"{'':34} {'preload':>9} {'spawn':>9}")
    print(f"{'7 TF nodes: launch -> all running':34} {medians['preload']:9.2f} {medians['spawn']:9.2f}   s")
    print(f"{'  of which the preloading import':34} {medians['preload_import']:9.2f} {'-':>9}   s")
    # The same launch's own TF import: the baseline the machine's load drift cannot separate from the launch.
    own_ratio = statistics.median(t / i for t, i in zip(timings["preload"], timings["preload_import"]))
    print(f"{'  / its own preloading import':34} {own_ratio:9.2f} {'-':>9}   (median per launch)")
    print(
        f"{'  / one TF import (' + format(medians['tf_import'], '.2f') + ' s)':34} {ratio:9.2f} "
        f"{medians['spawn'] / medians['tf_import']:9.2f}   (target <= 1.5 with preload)"
    )
    for key, label in (
        ("launcher_start_seconds", "DQN: launcher interpreter + imports"),
        ("preload_import_seconds", "DQN: preloading process's import"),
        ("first_episode_seconds", "DQN: launch -> first episode"),
        ("solve_seconds", "DQN: launch -> solved"),
    ):
        print(f"{label:34} {_fmt(dqn_medians['preload'][key]):>9} {_fmt(dqn_medians['spawn'][key]):>9}   s")
    print(
        f"{'DQN seeds solved':34} {dqn_medians['preload']['solved']:>9} {dqn_medians['spawn']['solved']:>9}   "
        f"of {seeds} (target: median solve <= 10 s)"
    )
    results = {
        "program_7_tf_nodes_seconds": timings,
        "medians": medians,
        "preload_over_tf_import": ratio,
        "preload_over_own_preloading_import": own_ratio,
        "dqn_cartpole": dqn_medians,
        "dqn_runs": dqn,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "repeats": repeats,
        "seeds": seeds,
    }
    if args.json:
        time_to_solve.write_json(args.json, results)
    errors = [e for m in dqn_medians.values() for e in m["errors"]]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
