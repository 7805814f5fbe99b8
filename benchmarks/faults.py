"""Fault injection: distributed DQN runs (python -m agents.run, local_mp) with one kill -9 each, and a soak run.

For each fault: whether the run finished (its actor-step budget reached, exit status 0), seconds to recover (kill
-> the killed node's new process serving on its address), data lost (replay items: the size just before the kill
minus what the restarted server first holds; learner steps: the last count logged before the kill minus the
checkpoint the restarted learner restores) and orphans (processes of the run alive 5 s after it ended). The
launcher fault is kill -9 of `python -m agents.run` itself: recovery is `--resume`, and "recover s" is the time
until no process of the run is left (the target: 5 s), with no temporary file left behind.

The runs learn with a tiny learning rate so that none solves CartPole (and stops) before its fault; budgets end
them. `--soak MINUTES` samples every node's RSS once a second during one distributed run and reports each node's
growth after warm-up (the first fifth of the run, at least 30 s; target <= 10%).

Usage: python benchmarks/faults.py [--json PATH] [--faults actor,replay,...] [--soak MINUTES (default 10; 0: none)]
"""

import argparse
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import psutil  # noqa: E402
import reverb  # noqa: E402
import tensorflow as tf  # noqa: E402

from agents import utils  # noqa: E402
from agents.experiments.distributed import counter_checkpoint_path  # noqa: E402

FAULTS = ("actor", "replay", "learner", "variable_server", "counter", "launcher")
CHECKPOINT_SECONDS = 5
NUM_ACTORS = 2
KILL_AT_ACTOR_STEPS = 8000
BUDGET = 30_000  # Actor steps: well past the fault, so the run only finishes if the killed node's work resumes.
_NO_SOLVING = ["--config", "learning_rate=1e-6"]
_WAIT_SECONDS = 240  # For any one thing to happen before the benchmark gives up on the run.


def _wait(predicate: Callable[[], Any], what: str, timeout: float = _WAIT_SECONDS, period: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(period)


class Run:
    """One `python -m agents.run` process, its output in a file and its temporary files in a private directory."""

    def __init__(self, work_dir: str, argv: List[str], run_dir: Optional[str] = None):
        self.work_dir = work_dir
        self.run_dir = run_dir or os.path.join(work_dir, "run")
        self.tmp_dir = os.path.join(work_dir, "tmp")
        os.makedirs(self.tmp_dir, exist_ok=True)  # With work_dir.
        where = ["--resume", self.run_dir] if run_dir else ["--run_dir", self.run_dir]
        self._output = open(os.path.join(work_dir, f"output-{len(os.listdir(work_dir))}.txt"), "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agents.run", *where, *argv],
            cwd=REPO,
            env=dict(os.environ, TMPDIR=self.tmp_dir),
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )
        self.seen_pids = {self.process.pid}

    def nodes(self) -> Dict[str, Dict[str, Any]]:
        """{'label/index': {address, pid}} from program.json; remembers every pid seen (for the orphan count)."""
        try:
            program = utils.read_json(os.path.join(self.run_dir, "program.json"))
        except (OSError, ValueError):
            return {}
        nodes = {f"{n['label']}/{n['index']}": n for n in program["nodes"]}
        self.seen_pids.update(n["pid"] for n in nodes.values() if n.get("pid"))
        return nodes

    def replay_address(self) -> str:
        return utils.read_json(os.path.join(self.run_dir, "program.json"))["replay_address"]

    def learner_rows(self) -> List[int]:
        try:
            with open(os.path.join(self.run_dir, "logs", "learner.csv")) as f:
                return [int(float(row["learner_steps"])) for row in csv.DictReader(f) if row.get("learner_steps")]
        except OSError:
            return []

    def learner_checkpoint_steps(self) -> int:
        """The learner steps of the latest checkpoint (0 if none yet); waits out the learner replacing it."""
        directory = os.path.join(self.run_dir, "checkpoints")
        deadline = time.monotonic() + _WAIT_SECONDS
        while True:
            path = tf.train.latest_checkpoint(directory)
            if path is None and not os.path.exists(os.path.join(directory, "checkpoint")):
                return 0
            try:
                if path is not None:
                    return int(tf.train.load_checkpoint(path).get_tensor("num_steps/.ATTRIBUTES/VARIABLE_VALUE"))
            except (tf.errors.NotFoundError, ValueError):
                pass  # Deleted while read: the learner has just written a newer one.
            if time.monotonic() > deadline:
                raise TimeoutError(f"no readable learner checkpoint in {directory}")
            time.sleep(0.05)

    def actor_steps_counted(self) -> int:
        try:
            return int(utils.read_json(counter_checkpoint_path(self.run_dir))["counts"].get("actor_steps", 0))
        except (OSError, ValueError):
            return 0

    def alive(self, pids) -> List[int]:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        return alive

    def finish(self, timeout: float = 600, status: int = 0) -> Optional[Dict[str, Any]]:
        """Waits for the launcher; result.json if it exited with `status` and wrote one, else None."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        finally:
            self._output.close()
        path = os.path.join(self.run_dir, "result.json")
        return utils.read_json(path) if self.process.returncode == status and os.path.exists(path) else None

    def output(self) -> str:
        with open(self._output.name) as f:
            return f.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._output.close()


def _replay_size(address: str) -> Optional[int]:
    try:
        return sum(int(t.current_size) for t in reverb.Client(address).server_info(timeout=2).values())
    except reverb.errors.DeadlineExceededError:
        return None


def _serving(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.2):
            return True
    except OSError:
        return False


def measure_fault(fault: str, work_dir: str) -> Dict[str, Any]:
    argv = ["--num_actors", str(NUM_ACTORS), "--checkpoint_seconds", str(CHECKPOINT_SECONDS), *_NO_SOLVING]
    run = Run(work_dir, [*argv, "--max_actor_steps", str(BUDGET)])
    seen_pids = run.seen_pids
    row: Dict[str, Any] = {"fault": fault, "checkpoint_seconds": CHECKPOINT_SECONDS}
    try:
        # Every node has checkpointed, and the run has gone on a while: what is lost is bounded by the period.
        _wait(
            lambda: (
                len(run.nodes()) == NUM_ACTORS + 5
                and run.learner_checkpoint_steps() > 0
                and run.actor_steps_counted() >= KILL_AT_ACTOR_STEPS
            ),
            f"checkpoints and {KILL_AT_ACTOR_STEPS} actor steps",
        )
        address = run.replay_address()
        rows = len(run.learner_rows())
        _wait(lambda: len(run.learner_rows()) > rows, "a learner log row")  # A fresh count, just before the kill.
        learner_steps = run.learner_rows()[-1]
        replay_size = _replay_size(address)
        restored_steps = run.learner_checkpoint_steps()  # What a restarted learner restores: nothing newer comes.
        fault_time = time.monotonic()
        if fault == "launcher":
            pids = [n["pid"] for n in run.nodes().values()]
            run.process.send_signal(signal.SIGKILL)
            run.kill()
            _wait(lambda: not run.alive(pids), "node processes gone", timeout=30, period=0.01)
            row["recover_seconds"] = time.monotonic() - fault_time
            row["temp_files_left"] = sorted(os.listdir(run.tmp_dir))
            os.remove(os.path.join(run.run_dir, "program.json"))  # So that the resumed run's is the one read.
            run = Run(work_dir, [], run_dir=run.run_dir)
            run.seen_pids |= seen_pids
            seen_pids = run.seen_pids
            restored_size = _wait(lambda: run.nodes() and _replay_size(run.replay_address()), "replay answering")
        else:
            name = f"{fault}/0"
            node = run.nodes()[name]
            node_address = address if fault == "replay" else node["address"]
            os.kill(node["pid"], signal.SIGKILL)
            _wait(lambda: run.nodes()[name]["pid"] != node["pid"] and _serving(node_address), f"{name} serving again")
            row["recover_seconds"] = time.monotonic() - fault_time
            restored_size = _wait(lambda: _replay_size(address), "replay answering") if fault == "replay" else None
        if fault in ("replay", "launcher"):
            row["replay_items_lost"] = max(0, replay_size - restored_size)
            row["replay_items_at_fault"] = replay_size
        if fault in ("learner", "launcher"):
            row["learner_steps_lost"] = max(0, learner_steps - restored_steps)
            row["learner_steps_at_fault"] = learner_steps
        result = run.finish()
        row["finished"] = bool(result and result["stopped_by"] == "budget" and result["actor_steps"] >= BUDGET)
        # Nodes restarted besides the killed one: a node that failed to recover on its own (e.g. a learner whose
        # replay was killed).
        restarted = re.findall(r"\[launch\] Node '([^']+)' failed; restarting", run.output())
        row["other_nodes_restarted"] = sorted(name for name in restarted if name != f"{fault}/0")
    except TimeoutError as error:
        row["finished"] = False
        row["error"] = str(error)
    finally:
        run.kill()
    time.sleep(5)  # Orphans: what is still alive 5 s after the run ended.
    row["orphans"] = len(run.alive(seen_pids))
    return row


def soak(minutes: float, work_dir: str) -> Dict[str, Any]:
    """RSS of every node once a second; growth from the end of warm-up to the end of the run, per node."""
    seconds = minutes * 60
    run = Run(work_dir, ["--num_actors", str(NUM_ACTORS), "--max_seconds", "36000", *_NO_SOLVING])
    samples: Dict[str, List[float]] = {}
    replay_sizes: List[Optional[int]] = []
    try:
        _wait(lambda: len(run.nodes()) == NUM_ACTORS + 5 and run.learner_rows(), "the learner training")
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            for name, node in run.nodes().items():
                if not node.get("pid"):  # Not started yet (a restarted node is forked once preloading is done).
                    continue
                try:
                    rss = psutil.Process(node["pid"]).memory_info().rss / 2**20
                except psutil.NoSuchProcess:
                    continue
                samples.setdefault(name, []).append(rss)
            replay_sizes.append(_replay_size(run.replay_address()))
            time.sleep(max(0.0, 1.0 - (time.monotonic() - start) % 1.0))
        run.process.send_signal(signal.SIGINT)
        finished = run.finish(status=128 + signal.SIGINT) is not None
    finally:
        run.kill()
    # Warm-up ends once the replay table is full (it grows until then by design) and at least 30 s, a fifth of the
    # run, have passed.
    sizes = [size or 0 for size in replay_sizes]
    warmup = max(30, len(sizes) // 5, sizes.index(max(sizes)) if sizes else 0)
    if warmup > len(sizes) - 10:
        raise ValueError(f"--soak {minutes:g} is too short to measure after the warm-up ({warmup} s); run longer.")
    nodes = {}
    for name, rss in samples.items():
        at_warmup = sum(rss[warmup - 5 : warmup + 5]) / len(rss[warmup - 5 : warmup + 5])
        at_end = sum(rss[-10:]) / len(rss[-10:])
        nodes[name] = {
            "rss_mib_at_warmup": round(at_warmup, 1),
            "rss_mib_at_end": round(at_end, 1),
            "rss_mib_max": round(max(rss), 1),
            "growth_percent": round(100 * (at_end - at_warmup) / at_warmup, 1),
        }
    return {
        "minutes": minutes,
        "warmup_seconds": warmup,
        "finished": finished,
        "replay_items_at_warmup": replay_sizes[warmup] if len(replay_sizes) > warmup else None,
        "replay_items_at_end": replay_sizes[-1] if replay_sizes else None,
        "nodes": nodes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="write the measurements here")
    parser.add_argument("--faults", default=",".join(FAULTS), help=f"comma-separated, from {','.join(FAULTS)}")
    parser.add_argument("--soak", type=float, default=10.0, metavar="MINUTES", help="soak run length (0: none)")
    args = parser.parse_args()
    faults = [f for f in args.faults.split(",") if f]
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        parser.error(f"unknown faults {unknown}; choose from {','.join(FAULTS)}")
    if args.soak < 0:
        parser.error(f"--soak must be >= 0 minutes (got {args.soak})")
    base = tempfile.mkdtemp(prefix="encore-faults-")
    try:
        rows = []
        for fault in faults:
            work_dir = os.path.join(base, fault)
            os.makedirs(work_dir)
            rows.append(measure_fault(fault, work_dir))
            print(json.dumps(rows[-1]), flush=True)
        print_fault_table(rows)
        soak_result = soak(args.soak, os.path.join(base, "soak")) if args.soak else None
        if soak_result:
            print_soak(soak_result)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"faults": rows, "soak": soak_result}, f, indent=2)


def print_fault_table(rows: List[Dict[str, Any]]) -> None:
    def cell(row, key, fmt="{:,}"):
        return "-" if row.get(key) is None else fmt.format(row[key])

    print(
        f"\nkill -9 of one node of a distributed DQN run ({NUM_ACTORS} actors, checkpoints every {CHECKPOINT_SECONDS}s)"
    )
    print("| fault | finished | recover s | replay items lost | learner steps lost | other nodes restarted | orphans |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        replay_lost = cell(row, "replay_items_lost")
        if row.get("replay_items_at_fault"):
            replay_lost += f" of {row['replay_items_at_fault']:,}"
        learner_lost = cell(row, "learner_steps_lost")
        if row.get("learner_steps_at_fault"):
            learner_lost += f" of {row['learner_steps_at_fault']:,}"
        extra = f" ({len(row['temp_files_left'])} temp files)" if "temp_files_left" in row else ""
        print(
            f"| {row['fault']} | {'yes' if row['finished'] else 'NO'} | {cell(row, 'recover_seconds', '{:.1f}')} | "
            f"{replay_lost} | {learner_lost} | {', '.join(row.get('other_nodes_restarted', [])) or 'none'} | "
            f"{row['orphans']}{extra} |"
        )
        if "error" in row:
            print(f"  {row['fault']}: {row['error']}")


def print_soak(result: Dict[str, Any]) -> None:
    print(
        f"\nsoak: {result['minutes']:g} min, warm-up {result['warmup_seconds']} s, replay items "
        f"{result['replay_items_at_warmup']} -> {result['replay_items_at_end']}"
    )
    print("| node | RSS MiB after warm-up | RSS MiB at end | max | growth |")
    print("| --- | --- | --- | --- | --- |")
    for name, node in sorted(result["nodes"].items()):
        print(
            f"| {name} | {node['rss_mib_at_warmup']} | {node['rss_mib_at_end']} | {node['rss_mib_max']} | "
            f"{node['growth_percent']:+.1f}% |"
        )


if __name__ == "__main__":
    main()
