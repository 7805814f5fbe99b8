"""The DQN program under launch_type="ray" (one Ray node) against local_mp in the same run, and courier calls
between two "machines" of a Ray cluster.

- start-up: lp.launch() until every node of the DQN program serves (its port accepts connections);
- time to solve CartPole-v1 (3 seeds, python -m agents.run), with the actors' env steps/s and the learner's
  steps/s from the runs' logs. Target: under Ray, actor and learner throughput >= 0.8x local_mp's;
- courier call p50 (small argument) from a node to a node on the other machine of a two-namespace cluster, against
  two nodes on the same machine.

Every Ray process runs inside network namespaces this script creates (as the tests do: tests/_netns.py).
Usage: python benchmarks/launch_ray.py [--seeds 3] [--max_seconds 150] [--json PATH]
"""

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCHMARKS)
sys.path[:0] = [BENCHMARKS, REPO, os.path.join(REPO, "tests")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The Ray processes of this benchmark: no token file written to ~/.ray, no usage reports.
# (setdefault: the courier latency worker is this script too, started with the token of its cluster.)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import _netns  # noqa: E402
import time_to_solve  # noqa: E402

HEAD_PORT = 6379
CALLS = 2000


# ------------------------------------------------------------------------------------------ worker processes


def startup_worker(launch_type: str, address: Optional[str]) -> None:
    """Prints the seconds from lp.launch() until every serving node of the DQN program accepts connections."""
    import grpc

    import launch as lp
    from agents import experiments
    from agents.dqn import DQNBuilder, DQNConfig

    with tempfile.TemporaryDirectory() as run_dir:
        # Never solved, never out of budget: the program runs until stopped here.
        experiment = experiments.ExperimentConfig(
            builder=DQNBuilder(DQNConfig()), run_dir=run_dir, max_seconds=900, solved_return=1e9
        )
        program = experiments.make_distributed_program(experiment, num_actors=2)
        os.makedirs(os.path.join(run_dir, "checkpoints"))
        serving = [served for node in program.get_all_nodes() for served in node.serving_nodes()]
        options = {"ray_address": address} if launch_type == "ray" else {}
        started = time.perf_counter()
        controller = lp.launch(program, launch_type=launch_type, termination_notice_secs=5, **options)
        for node in serving:
            while node.address is None:  # Ray: published once the node's actor is placed and constructed.
                if controller.wait(0.01):
                    raise RuntimeError("The program ended before all its nodes served; see its output.")
            with grpc.insecure_channel(node.address) as channel:
                grpc.channel_ready_future(channel).result(timeout=300)
        seconds = time.perf_counter() - started
        controller.stop()
        controller.wait(120)
    print(json.dumps({"seconds": seconds}))


class Echo:
    def echo(self, value):
        return value


def _time_calls(echo, path):
    import launch as lp

    echo.echo(0)  # Waits until it serves.
    samples = []
    for _ in range(CALLS):
        started = time.perf_counter()
        echo.echo(7)
        samples.append(time.perf_counter() - started)
    with open(path, "w") as f:
        json.dump(samples, f)
    lp.stop()


def rpc_worker(address: str, out_dir: str) -> None:
    """Times small calls from a node on the head's machine to nodes on each machine; writes samples to out_dir."""
    import launch as lp

    for where in ("head_machine", "worker_machine"):
        program = lp.Program(f"rpc_{where}")
        echo = program.add_node(lp.CourierNode(Echo), label="echo")
        program.add_node(lp.PyNode(_time_calls, echo, os.path.join(out_dir, f"{where}.json")), label="caller")
        resources = {"echo": {"resources": {where: 1}}, "caller": {"resources": {"head_machine": 1}}}
        controller = lp.launch(program, launch_type="ray", ray_address=address, ray_resources=resources)
        controller.wait(300)


# --------------------------------------------------------------------------------------------- measurements


def _worker_output(command: List[str], env: Dict[str, str]) -> Dict[str, Any]:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, cwd=REPO)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(seeds: int, max_seconds: float, work_dir: str) -> Dict[str, Any]:
    try:
        rpc: Dict[str, Any] = measure_rpc_across_machines()
    except RuntimeError as error:  # E.g. a Ray node that did not come up on an overloaded machine: said, not fatal.
        rpc = {"error": str(error)[-2000:]}
    namespace = _netns.NetworkNamespace()
    env = _netns.ray_env()
    address = f"127.0.0.1:{HEAD_PORT}"
    head = _start_head(namespace, env, address)
    try:
        me = [sys.executable, os.path.abspath(__file__)]
        startup: Dict[str, List[float]] = {"local_mp": [], "ray": []}
        runs: Dict[str, List[Dict[str, Any]]] = {"local_mp": [], "ray": []}
        for seed in range(seeds):  # Interleaved, so that the machine's load drifts over both alike.
            startup["local_mp"].append(_worker_output(me + ["--startup", "local_mp"], env)["seconds"])
            startup["ray"].append(
                _worker_output(namespace.command(me + ["--startup", "ray", "--address", address]), env)["seconds"]
            )
            common = dict(agent="dqn", env="CartPole-v1", seed=seed, single_process=False)
            common.update(max_seconds=max_seconds, num_actors=2, work_dir=work_dir)
            runs["local_mp"].append(time_to_solve.run_encore(**common, variant="local_mp"))
            runs["ray"].append(
                time_to_solve.run_encore(
                    **common,
                    variant="ray",
                    extra_args=["--launch_type", "ray", "--ray_address", address],
                    command_prefix=namespace.command([]),
                )
            )
    finally:
        head.stop()
        leftovers = namespace.close()
    variants = {}
    for name in ("local_mp", "ray"):
        seconds = [run["seconds"] for run in runs[name]]
        solved = [s for s in seconds if s is not None]
        variants[name] = {
            "startup_seconds": statistics.median(startup[name]),
            "actor_steps_per_second": _median(run.get("actor_steps_per_second") for run in runs[name]),
            "learner_steps_per_second": _median(run.get("learner_steps_per_second") for run in runs[name]),
            "time_to_solve_median_seconds": statistics.median(solved) if len(solved) * 2 > len(seconds) else None,
            "per_seed_seconds": seconds,
            "errors": [run["error"] for run in runs[name] if run.get("error")],
        }
    ratios = {
        key: (variants["ray"][key] / variants["local_mp"][key])
        if variants["ray"][key] and variants["local_mp"][key]
        else None
        for key in ("actor_steps_per_second", "learner_steps_per_second")
    }
    return {
        "seeds": seeds,
        "variants": variants,
        "ray_over_local_mp": ratios,
        "target_ratio": 0.8,
        "courier_p50_ms": rpc,
        "ray_processes_left_in_namespace": leftovers,
    }


def _start_head(namespace: "_netns.NetworkNamespace", env: Dict[str, str], address: str) -> "_netns.RayNode":
    """A Ray head in `namespace`; tried twice: on an overloaded machine Ray's own start-up deadline can pass."""
    for attempt in range(2):
        head = _netns.RayNode(
            namespace, tempfile.mkdtemp(prefix="encbench"), env, f"--port={HEAD_PORT}", "--num-cpus=2", detached=True
        )
        try:
            head.wait_until_up(address, env)
            return head
        except RuntimeError:
            head.stop()
            if attempt:
                raise
    raise AssertionError("unreachable")


def measure_rpc_across_machines() -> Dict[str, float]:
    """p50 of small courier calls to a node on the same machine and on the other machine (veth, token auth)."""
    head_ns, worker_ns = _netns.NetworkNamespace(), _netns.NetworkNamespace()
    _netns.connect(head_ns, worker_ns, "10.231.0.1", "10.231.0.2")
    env = _netns.ray_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    temp_dir = tempfile.mkdtemp(prefix="encbench2")
    address = "10.231.0.1:6380"
    nodes = []
    try:
        nodes.append(
            _netns.RayNode(
                head_ns,
                temp_dir,
                env,
                "--node-ip-address=10.231.0.1",
                "--port=6380",
                "--num-cpus=2",
                '--resources={"head_machine": 10}',
                "--include-dashboard=false",
                detached=True,  # Ended by a watchdog if this script dies without cleaning up.
            )
        )
        nodes[0].wait_until_up(address, env)
        nodes.append(
            _netns.RayNode(
                worker_ns,
                temp_dir,
                env,
                f"--address={address}",
                "--node-ip-address=10.231.0.2",
                "--num-cpus=2",
                '--resources={"worker_machine": 10}',
                head=False,
                detached=True,
            )
        )
        nodes[1].wait_until_up(address, env, nodes=2)
        out_dir = tempfile.mkdtemp(prefix="encbench_rpc")
        command = [sys.executable, os.path.abspath(__file__), "--rpc", "--address", address, "--out_dir", out_dir]
        done = subprocess.run(head_ns.command(command), env=env, timeout=900, cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"The courier latency run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        result = {}
        for where in ("head_machine", "worker_machine"):
            with open(os.path.join(out_dir, f"{where}.json")) as f:
                result[f"{'same' if where == 'head_machine' else 'other'}_machine"] = (
                    statistics.median(json.load(f)) * 1e3
                )
        return result
    finally:
        for node in reversed(nodes):
            node.stop()
        worker_ns.close()
        head_ns.close()


def _median(values) -> Optional[float]:
    present = [v for v in values if v]
    return statistics.median(present) if present else None


def _fmt(value: Optional[float], spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(measurement: Dict[str, Any]) -> None:
    variants, ratios = measurement["variants"], measurement["ray_over_local_mp"]
    print(f"DQN CartPole-v1, 2 actors, {measurement['seeds']} seeds (medians)")
    print(f"{'':32}{'local_mp':>12}{'ray (1 node)':>14}{'ray/local_mp':>14}")
    rows = (
        ("launch -> all nodes serving (s)", "startup_seconds", None),
        ("actor env steps/s", "actor_steps_per_second", "actor_steps_per_second"),
        ("learner steps/s", "learner_steps_per_second", "learner_steps_per_second"),
        ("time to solve (s)", "time_to_solve_median_seconds", None),
    )
    for label, key, ratio in rows:
        local, ray = variants["local_mp"][key], variants["ray"][key]
        shown = _fmt(ratios[ratio], ".2f") if ratio else _fmt(ray / local if ray and local else None, ".2f")
        print(f"{label:32}{_fmt(local):>12}{_fmt(ray):>14}{shown:>14}")
    for name in ("local_mp", "ray"):
        print(f"  {name} per-seed seconds to solve: {variants[name]['per_seed_seconds']}")
    rpc = measurement["courier_p50_ms"]
    if "error" in rpc:
        print(f"courier call p50, two-namespace cluster: not measured ({rpc['error'].splitlines()[-1]})")
    else:
        print(
            f"courier call p50, two-namespace cluster: same machine {rpc['same_machine']:.2f} ms, "
            f"other machine {rpc['other_machine']:.2f} ms"
        )
    print(f"target: ray throughput >= {measurement['target_ratio']}x local_mp's")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max_seconds", type=float, default=150.0)
    parser.add_argument("--json")
    parser.add_argument("--startup", choices=["local_mp", "ray"], help=argparse.SUPPRESS)
    parser.add_argument("--rpc", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--out_dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.startup:
        startup_worker(args.startup, args.address)
        return 0
    if args.rpc:
        rpc_worker(args.address, args.out_dir)
        return 0
    with tempfile.TemporaryDirectory(prefix="encore_bench_ray") as work_dir:
        measurement = measure(args.seeds, args.max_seconds, work_dir)
    print_table(measurement)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(measurement, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
