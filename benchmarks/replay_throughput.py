"""Encore's adders and datasets against raw Reverb loops doing the same work, in one run on one server.

Writers: items/s written by a raw TrajectoryWriter loop vs NStepTransitionAdder (n=3) vs SequenceAdder
(length 20, period 10), for float32[4] and uint8[84,84,4] observations; the raw loops write items of the same
structure and flush on the same in-flight bound. Readers: items/s from raw TrajectoryDataset (batch 256)
vs make_dataset (batch 256). Each figure is the median of several interleaved rounds.

    python benchmarks/replay_throughput.py [--seconds 1.5] [--rounds 3] [--json PATH]
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dm_env  # noqa: E402
import numpy as np  # noqa: E402
import reverb  # noqa: E402
import tree  # noqa: E402

import replay  # noqa: E402

EPISODE_LENGTH = 200
N_STEP = 3
SEQUENCE_LENGTH, PERIOD = 20, 10
IN_FLIGHT = 16
BATCH = 256


def environment_spec(observation_shape, dtype):
    return replay.EnvironmentSpec(
        observations=dm_env.specs.Array(observation_shape, dtype),
        actions=dm_env.specs.DiscreteArray(4),
        rewards=dm_env.specs.Array((), np.float32),
        discounts=dm_env.specs.Array((), np.float32),
    )


def episode(spec, rng):
    """One episode of (observation, action, reward, discount) arrays; fixed length."""
    shape, dtype = spec.observations.shape, spec.observations.dtype
    if dtype == np.uint8:
        observations = rng.integers(0, 255, (EPISODE_LENGTH + 1, *shape), dtype=np.uint8)
    else:
        observations = rng.standard_normal((EPISODE_LENGTH + 1, *shape)).astype(dtype)
    actions = rng.integers(0, 4, EPISODE_LENGTH).astype(np.int32)
    rewards = rng.standard_normal(EPISODE_LENGTH).astype(np.float32)
    return observations, actions, rewards


def timed(run, seconds):
    """Calls run() (which returns items written) until `seconds` pass; returns items/s."""
    items, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        items += run()
    return items / (time.perf_counter() - start)


def adder_episode(adder, data):
    observations, actions, rewards = data
    one = np.float32(1)
    adder.add_first(dm_env.restart(observations[0]))
    for t in range(EPISODE_LENGTH - 1):
        adder.add(actions[t], dm_env.transition(rewards[t], observations[t + 1], one))
    adder.add(actions[-1], dm_env.TimeStep(dm_env.StepType.LAST, rewards[-1], np.float32(0), observations[-1]))


def raw_transitions_episode(writer, table, data, flush_every_step=False):
    """The same Transition items as NStepTransitionAdder, without n-step arithmetic."""
    observations, actions, rewards = data
    one, items = np.float32(1), 0
    writer.append({"observation": observations[0]}, partial_step=True)
    for t in range(EPISODE_LENGTH):
        writer.append({"action": actions[t], "reward": rewards[t], "discount": one})
        writer.append({"observation": observations[t + 1]}, partial_step=True)
        history = writer.history
        start = -min(t + 2, N_STEP + 1)
        writer.create_item(
            table,
            1.0,
            replay.Transition(
                history["observation"][start],
                history["action"][start],
                history["reward"][-2],
                history["discount"][-2],
                history["observation"][-1],
            ),
        )
        items += 1
        writer.flush(0 if flush_every_step else IN_FLIGHT)
    writer.append({"action": actions[0], "reward": rewards[0], "discount": one})
    writer.end_episode()
    return items


def raw_sequences_episode(writer, table, data):
    """The same Step sequences as SequenceAdder (mid-episode writes; no end-of-episode padding)."""
    observations, actions, rewards = data
    one, items = np.float32(1), 0
    writer.append({"observation": observations[0], "start_of_episode": True}, partial_step=True)
    for t in range(EPISODE_LENGTH):
        writer.append({"action": actions[t], "reward": rewards[t], "discount": one})
        writer.append({"observation": observations[t + 1], "start_of_episode": False}, partial_step=True)
        steps = t + 1
        if steps >= SEQUENCE_LENGTH and (steps - SEQUENCE_LENGTH) % PERIOD == 0:
            window = slice(-SEQUENCE_LENGTH - 1, -1)
            writer.create_item(
                table, 1.0, replay.Step(**tree.map_structure(lambda column: column[window], writer.history))
            )
            items += 1
            writer.flush(IN_FLIGHT)
    writer.append({"action": actions[0], "reward": rewards[0], "discount": one})
    writer.end_episode()
    return items


def table_size(client, table):
    return client.server_info()[table].current_size


def measure_writers(server, kind, spec, seconds, rounds, rng):
    client = server.client()
    data = episode(spec, rng)
    nstep_items = EPISODE_LENGTH + N_STEP - 1
    sequence_items = (EPISODE_LENGTH + 1 - SEQUENCE_LENGTH) // PERIOD + 1
    raw_nstep_writer = client.trajectory_writer(N_STEP + 1)
    raw_nstep_flushing_writer = client.trajectory_writer(N_STEP + 1)
    raw_sequence_writer = client.trajectory_writer(SEQUENCE_LENGTH + 1)
    nstep_adder = replay.NStepTransitionAdder(
        client, N_STEP, 0.99, priority_fns={f"t_{kind}": None}, max_in_flight_items=IN_FLIGHT
    )
    sequence_adder = replay.SequenceAdder(
        client, SEQUENCE_LENGTH, PERIOD, priority_fns={f"s_{kind}": None}, max_in_flight_items=IN_FLIGHT
    )
    runs = {
        "raw_nstep": lambda: raw_transitions_episode(raw_nstep_writer, f"t_{kind}", data),
        "raw_nstep_flush_each_step": lambda: raw_transitions_episode(
            raw_nstep_flushing_writer, f"t_{kind}", data, flush_every_step=True
        ),
        "nstep": lambda: adder_episode(nstep_adder, data) or nstep_items,
        "raw_sequence": lambda: raw_sequences_episode(raw_sequence_writer, f"s_{kind}", data),
        "sequence": lambda: adder_episode(sequence_adder, data) or sequence_items,
    }
    results = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            results[name].append(timed(run, seconds))
    return {name: statistics.median(values) for name, values in results.items()}


def measure_datasets(server, seconds, rounds):
    client = server.client()
    spec = environment_spec((4,), np.float32)
    adder = replay.NStepTransitionAdder(client, N_STEP, 0.99, priority_fns={"d": None})
    rng = np.random.default_rng(1)
    while table_size(client, "d") < 20_000:
        adder_episode(adder, episode(spec, rng))
    raw = reverb.TrajectoryDataset.from_table_signature(
        server.address, "d", max_in_flight_samples_per_worker=2 * BATCH
    ).batch(BATCH, drop_remainder=True)
    ours = replay.make_dataset(server.address, "d", BATCH)

    def reader(dataset):
        iterator = iter(dataset)
        next(iterator)  # Warm up the stream before timing.
        return lambda: next(iterator) and BATCH

    readers = {"raw_dataset": reader(raw), "make_dataset": reader(ours)}
    results = {name: [] for name in readers}
    for _ in range(rounds):
        for name, run in readers.items():
            results[name].append(timed(run, seconds))
    return {name: statistics.median(values) for name, values in results.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="duration of one measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    kinds = {
        "float32[4]": environment_spec((4,), np.float32),
        "uint8[84,84,4]": environment_spec((84, 84, 4), np.uint8),
    }
    tables = [replay.tables.uniform("d", 50_000, signature=replay.NStepTransitionAdder.signature(kinds["float32[4]"]))]
    for kind, spec in kinds.items():
        tables.append(replay.tables.uniform(f"t_{kind}", 2_000, signature=replay.NStepTransitionAdder.signature(spec)))
        tables.append(replay.tables.uniform(f"s_{kind}", 200, signature=replay.SequenceAdder.signature(spec)))
    rng = np.random.default_rng(0)
    with replay.ReplayServer(tables) as server:
        writers = {
            kind: measure_writers(server, kind, spec, args.seconds, args.rounds, rng) for kind, spec in kinds.items()
        }
        readers = measure_datasets(server, args.seconds, args.rounds)

    print(f"\nreplay throughput (items/s, median of {args.rounds} rounds x {args.seconds}s)")
    print(
        f"{'observation':<16}{'raw n-step':>12}{'n-step adder':>14}{'ratio':>7}{'raw seq':>10}"
        f"{'seq adder':>11}{'ratio':>7}{'flush/step':>12}"
    )
    for kind, r in writers.items():
        print(
            f"{kind:<16}{r['raw_nstep']:>12,.0f}{r['nstep']:>14,.0f}{r['nstep'] / r['raw_nstep']:>7.2f}"
            f"{r['raw_sequence']:>10,.0f}{r['sequence']:>11,.0f}{r['sequence'] / r['raw_sequence']:>7.2f}"
            f"{r['raw_nstep_flush_each_step']:>12,.0f}"
        )
    print(f"\n{'reader (batch 256, float32[4])':<32}{'raw TrajectoryDataset':>22}{'make_dataset':>14}{'ratio':>7}")
    print(
        f"{'items/s':<32}{readers['raw_dataset']:>22,.0f}{readers['make_dataset']:>14,.0f}"
        f"{readers['make_dataset'] / readers['raw_dataset']:>7.2f}"
    )

    f32 = writers["float32[4]"]
    result = {
        "nstep_vs_raw": f32["nstep"] / f32["raw_nstep"],
        "sequence_vs_raw": f32["sequence"] / f32["raw_sequence"],
        "dataset_vs_raw": readers["make_dataset"] / readers["raw_dataset"],
        "writers_items_per_second": writers,
        "readers_items_per_second": readers,
    }
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
