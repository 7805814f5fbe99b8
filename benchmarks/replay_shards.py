"""Sharded replay: insert and sample throughput with K = 1, 2, 4 replay servers, in one run.

Insert: W = 1, 2, 4 writer processes (NStepTransitionAdder, n=3, float32[4] observations), writer i writing to
shard i mod K; total items/s. Sample: one learner input over the K shards (`replay.InterleavedSamples` over one
`make_dataset` per shard, batch 256), items/s. Every server runs in its own process, as replay nodes do.

    python benchmarks/replay_shards.py [--seconds 2] [--rounds 3] [--quick] [--json PATH]
"""

import argparse
import json
import multiprocessing
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from replay_scaling import ServerProcess, Writers  # noqa: E402

import replay  # noqa: E402

SHARDS = (1, 2, 4)
WRITERS = (1, 2, 4)
BATCH = 256


def sample_items_per_second(addresses, seconds: float) -> float:
    samples = replay.InterleavedSamples(
        [iter(replay.make_dataset(address, "transitions", BATCH)) for address in addresses]
    )
    for _ in addresses:
        next(samples)  # Each shard's stream starts up: not throughput.
    batches, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(samples)
        batches += 1
    return batches * BATCH / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of one measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--quick", action="store_true", help="a smoke run: one short round")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    seconds, rounds = (0.5, 1) if args.quick else (args.seconds, args.rounds)

    context = multiprocessing.get_context("spawn")
    load_start = os.getloadavg()
    servers = [ServerProcess(context, "float32[4]") for _ in range(max(SHARDS))]
    try:
        writers = Writers(context, [server.address for server in servers], max(WRITERS))
        inserts = {(k, w): [] for k in SHARDS for w in WRITERS}
        samples = {k: [] for k in SHARDS}
        try:
            for _ in range(rounds):
                for k, w in inserts:
                    inserts[k, w].append(writers.items_per_second(w, seconds, servers=k))
                for k in SHARDS:
                    samples[k].append(sample_items_per_second([s.address for s in servers[:k]], seconds))
        finally:
            writers.stop()
    finally:
        for server in servers:
            server.stop()
    insert = {f"{k}x{w}": statistics.median(v) for (k, w), v in inserts.items()}
    sample = {str(k): statistics.median(v) for k, v in samples.items()}
    load_end = os.getloadavg()

    print(f"\nsharded replay, items/s (median of {rounds} x {seconds}s; load {load_start[0]:.1f} -> {load_end[0]:.1f})")
    print(f"{'shards':<8}" + "".join(f"{f'insert W={w}':>14}" for w in WRITERS) + f"{'sample':>12}")
    for k in SHARDS:
        print(f"{k:<8}" + "".join(f"{insert[f'{k}x{w}']:>14,.0f}" for w in WRITERS) + f"{sample[str(k)]:>12,.0f}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(
                {
                    "insert_items_per_second": insert,
                    "sample_items_per_second": sample,
                    "seconds": seconds,
                    "rounds": rounds,
                    "load_average": [load_start, load_end],
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
