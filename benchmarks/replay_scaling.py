"""Replay scaling on one machine: where one Reverb server stops scaling, as curves a reader can look at.

Four measurements, each against a Reverb server in its own process (so its RSS is the table's alone):
  insert     items/s written by 1, 2, 4, 8 writer processes, each an NStepTransitionAdder (n=3) writing
             CartPole-sized float32[4] transitions;
  sample     items/s read by one learner dataset (`replay.make_dataset`) for batch sizes 32 ... 1024;
  latency    the wait for one batch of 256 (no prefetch, one stream) from a prioritized table of 1e4 ... 1e6 items;
  memory     server RSS per million n-step transitions, float32[4] and uint8[84,84,4] observations (random
             pixels: incompressible, an upper bound; real frames compress), from the RSS growth over a fill.

    python benchmarks/replay_scaling.py [--quick] [--seconds 2] [--json PATH] [--png PATH]

Writes the figure to benchmarks/results/replay_scaling.png unless --png says otherwise.
"""

import argparse
import json
import multiprocessing
import os
import statistics
import time
from typing import List

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dm_env  # noqa: E402
import numpy as np  # noqa: E402
import replay_throughput  # noqa: E402
import reverb  # noqa: E402
import tensorflow as tf  # noqa: E402

import replay  # noqa: E402

N_STEP, EPISODE_LENGTH = replay_throughput.N_STEP, replay_throughput.EPISODE_LENGTH
WRITERS = (1, 2, 4, 8)
BATCH_SIZES = (32, 64, 128, 256, 512, 1024)
TABLE_SIZES = (10_000, 100_000, 1_000_000)
LATENCY_BATCH = 256
OBSERVATIONS = {"float32[4]": ((4,), np.float32), "uint8[84,84,4]": ((84, 84, 4), np.uint8)}
# Items that share one appended step: filling a table to 1e6 items at this many per step takes seconds.
ITEMS_PER_STEP = 50


def environment_spec(observation: str) -> replay.EnvironmentSpec:
    return replay_throughput.environment_spec(*OBSERVATIONS[observation])


def _tables(observation: str, with_sizes_table: bool):
    signature = replay.NStepTransitionAdder.signature(environment_spec(observation))
    tables = [replay.tables.uniform("transitions", 2_000_000, signature=signature)]
    if with_sizes_table:
        tables.append(
            replay.tables.prioritized("sizes", max(TABLE_SIZES), signature={"x": tf.TensorSpec((), tf.float32)})
        )
    return tables


def _serve(observation: str, with_sizes_table: bool, connection) -> None:
    """Child process: a ReplayServer until the parent says stop (or goes away)."""

    with replay.ReplayServer(_tables(observation, with_sizes_table)) as server:
        connection.send(server.port)
        try:
            connection.recv()
        except EOFError:
            pass


class ServerProcess:
    """A ReplayServer in a child process; `rss()` is that process's resident memory."""

    def __init__(self, context, observation: str, with_sizes_table: bool = False):
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(observation, with_sizes_table, child), daemon=True)
        self._process.start()
        self.address = f"localhost:{self._connection.recv()}"

    def rss(self) -> int:
        with open(f"/proc/{self._process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line in /proc/PID/status")

    def stop(self) -> None:
        self._connection.send("stop")
        self._process.join()


def episode(observation: str, rng):
    """(observations, actions, rewards) of one random episode."""
    return replay_throughput.episode(environment_spec(observation), rng)


def write_episode(adder, data, deadline: float = float("inf")) -> int:
    """One episode through `adder` (cut short at `deadline`); returns the items written."""
    observations, actions, rewards = data
    one = np.float32(1)
    adder.add_first(dm_env.restart(observations[0]))
    for t in range(EPISODE_LENGTH - 1):
        adder.add(actions[t], dm_env.transition(rewards[t], observations[t + 1], one))
        if time.perf_counter() > deadline:
            adder.reset()
            return t + 1
    last = dm_env.TimeStep(dm_env.StepType.LAST, rewards[-1], np.float32(0), observations[-1])
    adder.add(actions[-1], last)
    return EPISODE_LENGTH + N_STEP - 1


def _write(addresses: List[str], connection) -> None:
    """Child process: an adder per server in `addresses`; on each (server index, seconds) received, writes
    float32[4] transitions to that server for that long and answers (items, elapsed seconds); None ends it."""
    adders = [
        replay.NStepTransitionAdder(reverb.Client(address), N_STEP, 0.99, priority_fns={"transitions": None})
        for address in addresses
    ]
    data = episode("float32[4]", np.random.default_rng(os.getpid()))
    for adder in adders:
        write_episode(adder, data)  # Connection, signature, first chunks: not throughput.
    connection.send("ready")
    while (command := connection.recv()) is not None:
        server, seconds = command
        items, start = 0, time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            items += write_episode(adders[server], data, deadline)
        adders[server].flush()
        connection.send((items, time.perf_counter() - start))
    for adder in adders:
        adder.close()


class Writers:
    """`count` writer processes, started once and reused, each able to write to every server in `addresses`."""

    def __init__(self, context, addresses: List[str], count: int):
        self._connections, self._processes = [], []
        for _ in range(count):
            connection, child = context.Pipe()
            process = context.Process(target=_write, args=(list(addresses), child), daemon=True)
            process.start()
            self._connections.append(connection)
            self._processes.append(process)
        for connection in self._connections:
            connection.recv()  # "ready": imported, connected, one episode written.

    def items_per_second(self, count: int, seconds: float, servers: int = 1) -> float:
        """Total items/s of the first `count` writers writing at once, writer i to server i mod `servers`."""
        connections = self._connections[:count]
        for i, connection in enumerate(connections):
            connection.send((i % servers, seconds))
        return sum(items / elapsed for items, elapsed in (c.recv() for c in connections))

    def stop(self) -> None:
        for connection in self._connections:
            connection.send(None)
        for process in self._processes:
            process.join()


def sample_items_per_second(address: str, batch_size: int, seconds: float) -> float:

    iterator = iter(replay.make_dataset(address, "transitions", batch_size))
    next(iterator)  # The stream's start-up is not throughput.
    batches, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        next(iterator)
        batches += 1
    return batches * batch_size / (time.perf_counter() - start)


def fill_cheap_items(client, table: str, count: int) -> None:
    """Adds `count` items to `table` quickly: ITEMS_PER_STEP items (distinct priorities) per appended step."""
    writer = client.trajectory_writer(1)
    for start in range(0, count, ITEMS_PER_STEP):
        writer.append({"x": np.float32(start)})
        column = writer.history["x"][-1]
        for i in range(min(ITEMS_PER_STEP, count - start)):
            writer.create_item(table, 1.0 + (start + i) % 97, {"x": column})
        writer.flush(2 * ITEMS_PER_STEP)
    writer.end_episode()
    writer.close()


def batch_latencies_ms(address: str, batches: int) -> list:
    """Milliseconds to get each of `batches` batches of LATENCY_BATCH from "sizes", nothing streamed ahead."""

    dataset = replay.make_dataset(
        address,
        "sizes",
        LATENCY_BATCH,
        prefetch=None,
        max_in_flight_samples_per_worker=LATENCY_BATCH,
        num_workers_per_iterator=1,
    )
    iterator = iter(dataset)
    next(iterator)
    latencies = []
    for _ in range(batches):
        start = time.perf_counter()
        next(iterator)
        latencies.append((time.perf_counter() - start) * 1e3)
    return latencies


def memory_per_million(context, observation: str, transitions: int) -> dict:
    """Server RSS growth over writing `transitions` n-step transitions, scaled to a million."""

    server = ServerProcess(context, observation)
    try:
        client = reverb.Client(server.address)
        adder = replay.NStepTransitionAdder(client, N_STEP, 0.99, priority_fns={"transitions": None})
        data = episode(observation, np.random.default_rng(0))
        write_episode(adder, data)  # Connection, signature and first chunks: not per-item memory.
        adder.flush()
        before, written_before = server.rss(), client.server_info()["transitions"].current_size
        while client.server_info()["transitions"].current_size - written_before < transitions:
            write_episode(adder, data)
            adder.flush()
        adder.close()
        items = client.server_info()["transitions"].current_size - written_before
        growth = server.rss() - before
    finally:
        server.stop()
    return {"items": items, "rss_growth_bytes": growth, "bytes_per_million": growth / items * 1e6}


def plot(result: dict, path: str) -> None:
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    figure, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    insert = result["insert_items_per_second"]
    ax = axes[0][0]
    writers = [int(k) for k in insert]
    measured = list(insert.values())
    ax.plot(writers, measured, "o-", label="measured")
    ax.plot(writers, [measured[0] * w for w in writers], ":", color="gray", label="1 writer's rate x writers")
    ax.set(xticks=writers, xlabel="writer processes (n-step adder)", ylim=(0, 1.6 * max(measured)))
    ax.set(ylabel="items/s inserted", title="Insert: float32[4] n-step transitions")
    ax.legend()
    sample = result["sample_items_per_second"]
    ax = axes[0][1]
    sizes = [int(k) for k in sample]
    ax.plot(sizes, list(sample.values()), "o-")
    ax.set(xscale="log", xlabel="batch size", ylabel="items/s sampled", ylim=(0, None))
    ax.set_xticks(sizes, [str(size) for size in sizes], minor=False)
    ax.minorticks_off()
    ax.set(title="Sample: one learner dataset (make_dataset)")
    latency = result["sample_latency_ms"]
    ax = axes[1][0]
    table_sizes = [int(k) for k in latency]
    ax.plot(table_sizes, [v["p50"] for v in latency.values()], "o-", label="median")
    ax.plot(table_sizes, [v["p90"] for v in latency.values()], "s--", label="90th percentile")
    ax.set(xscale="log", xlabel="items in a prioritized table", ylabel=f"ms per batch of {LATENCY_BATCH}")
    ax.set(title="Sample latency vs table size", ylim=(0, None))
    ax.legend()
    memory = result["memory_per_million_transitions"]
    ax = axes[1][1]
    names = list(memory)
    gib = [memory[name]["bytes_per_million"] / 2**30 for name in names]
    bars = ax.bar(names, gib)
    ax.bar_label(bars, [f"{g:,.2f} GiB" for g in gib])
    ax.set(ylabel="server RSS per 1e6 transitions (GiB)", title="Memory (n=3 transitions)", ylim=(0, 1.15 * max(gib)))
    load = f"load average {result['load_average_start'][0]:.0f} -> {result['load_average_end'][0]:.0f}"
    figure.suptitle(f"One Reverb server on this machine ({os.cpu_count()} cores, shared: {load})")
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=80)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of one throughput point")
    parser.add_argument("--quick", action="store_true", help="a smoke run: short points, small tables and fills")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--png", default=os.path.join(os.path.dirname(__file__), "results", "replay_scaling.png"))
    args = parser.parse_args()
    seconds = 0.5 if args.quick else args.seconds
    table_sizes = TABLE_SIZES[:2] if args.quick else TABLE_SIZES
    fills = (
        {"float32[4]": 20_000, "uint8[84,84,4]": 1_000}
        if args.quick
        else {"float32[4]": 200_000, "uint8[84,84,4]": 5_000}
    )

    context = multiprocessing.get_context("spawn")  # Children start clean: no TensorFlow threads forked.
    result = {"seconds_per_point": seconds, "load_average_start": os.getloadavg()}
    server = ServerProcess(context, "float32[4]", with_sizes_table=True)
    try:
        writers = Writers(context, [server.address], max(WRITERS))
        try:
            result["insert_items_per_second"] = {str(k): writers.items_per_second(k, seconds) for k in WRITERS}
        finally:
            writers.stop()
        result["sample_items_per_second"] = {
            str(b): sample_items_per_second(server.address, b, seconds) for b in BATCH_SIZES
        }
        client, filled, latency = reverb.Client(server.address), 0, {}
        for size in table_sizes:
            fill_cheap_items(client, "sizes", size - filled)
            filled = size
            ms = batch_latencies_ms(server.address, 20 if args.quick else 100)
            latency[str(size)] = {"p50": statistics.median(ms), "p90": float(np.percentile(ms, 90))}
        result["sample_latency_ms"] = latency
    finally:
        server.stop()
    result["memory_per_million_transitions"] = {
        name: memory_per_million(context, name, count) for name, count in fills.items()
    }
    result["load_average_end"] = os.getloadavg()

    print(
        f"\nreplay scaling, one server process ({seconds}s per point; load {result['load_average_start'][0]:.1f}"
        f" at start, {result['load_average_end'][0]:.1f} at end)"
    )
    print(f"{'writers':<10}" + "".join(f"{k:>10}" for k in WRITERS))
    print(f"{'items/s':<10}" + "".join(f"{v:>10,.0f}" for v in result["insert_items_per_second"].values()))
    print(f"\n{'batch':<10}" + "".join(f"{b:>10}" for b in BATCH_SIZES))
    print(f"{'items/s':<10}" + "".join(f"{v:>10,.0f}" for v in result["sample_items_per_second"].values()))
    print(f"\n{'items':<10}" + "".join(f"{s:>12,}" for s in table_sizes))
    for q in ("p50", "p90"):
        print(f"{q + ' ms':<10}" + "".join(f"{v[q]:>12.2f}" for v in latency.values()))
    print()
    for name, m in result["memory_per_million_transitions"].items():
        print(
            f"{name:<16} {m['bytes_per_million'] / 2**30:8.2f} GiB per 1e6 transitions "
            f"(RSS +{m['rss_growth_bytes'] / 2**20:,.0f} MiB over {m['items']:,} items)"
        )
    plot(result, args.png)
    print(f"\nfigure: {args.png}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
