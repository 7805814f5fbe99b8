"""Courier RPC latency/throughput and local_mp start-up time, each against a baseline in the same run.

- latency: `client.echo(x)` to a CourierNode in its own process (local_mp) vs a raw gRPC call of
  the same, already pickled, request (what our client adds on top of gRPC);
- futures throughput: 4 client threads keeping futures in flight vs one thread of sync calls;
- start-up: launch() until every PyNode of 1, 4 and 8 runs vs starting one bare
  `python -c "import launch"` process.

Targets: small-call p50 <= 0.5 ms; 8 nodes up <= 15 s (2 cores).
Usage: python benchmarks/launch_rpc.py [--json PATH] [--quick]
"""

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cloudpickle  # noqa: E402
import grpc  # noqa: E402
import numpy as np  # noqa: E402

import launch as lp  # noqa: E402
from launch import (
    _context,  # noqa: E402
    _courier,  # noqa: E402
)


class Echo:
    def echo(self, value):
        return value


def _percentiles_ms(samples):
    return {"p50_ms": float(np.percentile(samples, 50) * 1e3), "p99_ms": float(np.percentile(samples, 99) * 1e3)}


def _time_interleaved(first, second, count, rounds=10):
    """Latency samples of two calls, measured in alternating rounds so load drift hits both."""
    for _ in range(min(50, count)):
        first(), second()  # Warm-up.
    samples = ([], [])
    for _ in range(rounds):
        for call, out in ((first, samples[0]), (second, samples[1])):
            for _ in range(max(count // rounds, 1)):
                started = time.perf_counter()
                call()
                out.append(time.perf_counter() - started)
    return samples


def measure_rpc(calls, seconds):
    program = lp.Program("bench_rpc")
    handle = program.add_node(lp.CourierNode(Echo), label="echo")
    controller = lp.launch(program, launch_type="local_mp", termination_notice_secs=2)
    rows = []
    try:
        client = handle.dereference()
        client.echo(0)  # Waits until the node serves.
        address = program.groups["echo"][0].address
        metadata = ((_courier.TOKEN_METADATA_KEY, _context.current().token),)
        channel = grpc.insecure_channel(address, options=_courier.CHANNEL_OPTIONS)
        raw = channel.unary_unary("/encore.Courier/Call")
        for name, payload, count in (("small (int)", 7, calls), ("1 MiB numpy", np.ones(2**17), max(calls // 10, 20))):
            request = cloudpickle.dumps(("echo", (payload,), {}))
            courier, baseline = map(
                _percentiles_ms,
                _time_interleaved(lambda: client.echo(payload), lambda: raw(request, metadata=metadata), count),
            )
            rows.append(
                {
                    "what": f"latency {name}",
                    **courier,
                    "baseline_p50_ms": baseline["p50_ms"],
                    "ratio_p50": courier["p50_ms"] / baseline["p50_ms"],
                }
            )
        rows.append(_throughput(client, seconds))
        channel.close()
    finally:
        controller.stop()
        controller.wait(30)
    return rows


def _throughput(client, seconds):
    def sync_loop(deadline):
        done = 0
        while time.perf_counter() < deadline:
            client.echo(1)
            done += 1
        return done

    def futures_loop(deadline, window=16):
        done = 0
        while time.perf_counter() < deadline:
            futures = [client.futures.echo(1) for _ in range(window)]
            for future in futures:
                future.result()
            done += window
        return done

    baseline = sync_loop(time.perf_counter() + seconds) / seconds
    deadline = time.perf_counter() + seconds
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        total = sum(pool.map(futures_loop, [deadline] * 4))
    rate = total / seconds
    return {
        "what": "futures throughput, 4 threads",
        "calls_per_s": rate,
        "baseline_calls_per_s": baseline,
        "ratio": rate / baseline,
    }


def _mark_running(path):
    with open(path, "a") as f:
        f.write("up\n")
    lp.wait_for_stop()


def measure_startup(node_counts):
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import launch"], check=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    )
    bare = time.perf_counter() - started
    rows = []
    for count in node_counts:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "up")
            program = lp.Program(f"bench_start_{count}")
            with program.group("node"):
                for _ in range(count):
                    program.add_node(lp.PyNode(_mark_running, path))
            started = time.perf_counter()
            controller = lp.launch(program, launch_type="local_mp", termination_notice_secs=2)
            while not (os.path.exists(path) and len(open(path).readlines()) == count):
                time.sleep(0.01)
            elapsed = time.perf_counter() - started
            controller.stop()
            controller.wait(30)
        rows.append(
            {
                "what": f"local_mp start, {count} PyNodes",
                "seconds": elapsed,
                "baseline_seconds": bare,
                "ratio": elapsed / bare,
            }
        )
    return rows


def _print_table(rows):
    print(f"{'measurement':34} {'value':>22} {'baseline':>22} {'ratio':>7}")
    for row in rows:
        if "p50_ms" in row:
            value = f"p50 {row['p50_ms']:.3f} p99 {row['p99_ms']:.3f} ms"
            base = f"raw gRPC p50 {row['baseline_p50_ms']:.3f} ms"
            ratio = row["ratio_p50"]
        elif "calls_per_s" in row:
            value = f"{row['calls_per_s']:.0f} calls/s"
            base = f"sync {row['baseline_calls_per_s']:.0f} calls/s"
            ratio = row["ratio"]
        else:
            value = f"{row['seconds']:.2f} s"
            base = f"bare python {row['baseline_seconds']:.2f} s"
            ratio = row["ratio"]
        print(f"{row['what']:34} {value:>22} {base:>22} {ratio:>7.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results as JSON to this path")
    parser.add_argument("--quick", action="store_true", help="fewer calls (smoke run)")
    args = parser.parse_args()
    calls, seconds = (200, 0.5) if args.quick else (2000, 2.0)
    rows = measure_rpc(calls, seconds) + measure_startup([1, 4, 8])
    _print_table(rows)
    small = rows[0]["p50_ms"]
    eight = rows[-1]["seconds"]
    targets = {"small_call_p50_ms<=0.5": small <= 0.5, "8_nodes_up_s<=15": eight <= 15}
    print("targets:", ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in targets.items()))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "targets": targets}, f, indent=2)


if __name__ == "__main__":
    main()
