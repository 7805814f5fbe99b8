"""A tour of Encore's replay layer: one Reverb server, two writer processes, one reader.

Writer 1 steps CartPole with a random policy and writes 3-step transitions into a prioritized table;
writer 2 writes overlapping 8-step sequences into a FIFO queue. The reader (this process) prints table
stats while they run, then draws a prioritized batch (keys and probabilities included), sends new
priorities back, and drains the queue.

    python examples/replay_tour.py [--episodes 20]
"""

import argparse
import multiprocessing
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import reverb  # noqa: E402

import replay  # noqa: E402
from agents.envs import make_environment  # noqa: E402

ENV = "CartPole-v1"
SEQUENCE_LENGTH, PERIOD = 8, 4


def write_episodes(address: str, kind: str, episodes: int, seed: int) -> None:
    """Runs a random policy for `episodes` episodes, writing through the adder named by `kind`."""
    client = reverb.Client(address)
    if kind == "transitions":
        adder = replay.NStepTransitionAdder(client, n_step=3, discount=0.99, priority_fns={"transitions": None})
    else:
        adder = replay.SequenceAdder(client, SEQUENCE_LENGTH, PERIOD, priority_fns={"sequences": None})
    environment = make_environment(ENV, seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(episodes):
        timestep = environment.reset()
        adder.add_first(timestep)
        while not timestep.last():
            action = np.int64(rng.integers(2))
            timestep = environment.step(action)
            adder.add(action, timestep)


def print_tables(client, title: str) -> None:
    info = client.server_info()
    cells = "   ".join(
        f"{name}: {table.current_size:>5}/{table.max_size} items, "
        f"{table.rate_limiter_info.insert_stats.completed:>5} inserts, "
        f"{table.rate_limiter_info.sample_stats.completed:>5} samples"
        for name, table in sorted(info.items())
    )
    print(f"{title:<10} {cells}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20, help="episodes per writer")
    args = parser.parse_args()

    spec = replay.make_environment_spec(make_environment(ENV))
    tables = [
        replay.tables.prioritized(
            "transitions",
            max_size=100_000,
            priority_exponent=0.6,
            signature=replay.NStepTransitionAdder.signature(spec),
        ),
        replay.tables.queue(
            "sequences",
            max_size=10_000,
            signature=replay.SequenceAdder.signature(spec, sequence_length=SEQUENCE_LENGTH),
        ),
    ]
    with replay.ReplayServer(tables) as server:
        print(f"Reverb server at {server.address}: tables {', '.join(server.table_names)}")
        context = multiprocessing.get_context("spawn")
        writers = [
            context.Process(target=write_episodes, args=(server.address, kind, args.episodes, seed))
            for seed, kind in enumerate(("transitions", "sequences"))
        ]
        for writer in writers:
            writer.start()
        print("writers starting (each imports TensorFlow)...", flush=True)
        client = server.client()
        start = time.time()
        while any(writer.is_alive() for writer in writers):
            print_tables(client, f"t={time.time() - start:4.1f}s")
            time.sleep(1.0)
        if any(writer.exitcode for writer in writers):
            raise SystemExit(f"a writer failed (exit codes {[w.exitcode for w in writers]})")
        print_tables(client, "written")

        batch = next(replay.make_numpy_iterator(server.address, "transitions", batch_size=4))
        print("\nprioritized batch of 4 transitions:")
        for key, probability, reward, discount in zip(
            batch.info.key, batch.info.probability, batch.data.reward, batch.data.discount
        ):
            print(f"  key {key:>20}  P={probability:.2e}  3-step return {reward:5.2f}  discount {discount:.3f}")
        with replay.PriorityUpdater(client, "transitions") as updater:
            updater.update(batch.info.key, np.full(4, 1000.0))
        again = next(replay.make_numpy_iterator(server.address, "transitions", batch_size=64))
        boosted = np.isin(again.info.key, batch.info.key).sum()
        print(f"after raising their priority to 1000: {boosted} of the next 64 samples are those 4 items")

        size = client.server_info()["sequences"].current_size
        consumed = replay.make_numpy_iterator(server.address, "sequences", batch_size=size, num_workers_per_iterator=1)
        sequences = next(consumed)
        print(
            f"\ndrained the queue: {sequences.data.observation.shape[0]} sequences of shape "
            f"{sequences.data.observation.shape[1:]} ({int(sequences.data.start_of_episode[:, 0].sum())} "
            "begin an episode)"
        )
        print_tables(client, "final")


if __name__ == "__main__":
    main()
