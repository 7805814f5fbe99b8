"""Launch tour: producers write into a Reverb queue served by a ReverbNode; a consumer drains it.

    python examples/launch_tour/run.py                          # threads (local_mt)
    python examples/launch_tour/run.py --lp_launch_type=local_mp --num_producers=3

Written exactly as a Launchpad program, with `import launch as lp`. Under local_mp every node is
a process: its output appears here prefixed `[label/index]` and in the log directory printed at
start. Ctrl-C stops every node (again: kills them).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import (
    app,  # noqa: E402
    flags,  # noqa: E402
    logging,  # noqa: E402
)

import launch as lp  # noqa: E402

_NUM_PRODUCERS = flags.DEFINE_integer("num_producers", 2, "Producer nodes.")
_ITEMS = flags.DEFINE_integer("items_per_producer", 20, "Items each producer writes.")
_TABLE = "queue"


def make_tables():
    import replay  # Imported by the replay node only.

    return [replay.tables.queue(_TABLE, max_size=100)]


def produce(replay_client, producer_id: int, num_items: int) -> None:
    """Writes `num_items` small observations into the queue (blocks while it is full)."""
    for step in range(num_items):
        observation = np.full((4,), producer_id * 1000 + step, np.float32)
        replay_client.insert(observation, priorities={_TABLE: 1.0})
    logging.info("producer %d wrote %d items", producer_id, num_items)


class Consumer:
    """Drains the queue; `progress()` can be called remotely by any node holding its handle."""

    def __init__(self, replay_client, expected_items: int):
        self._client = replay_client
        self._expected = expected_items
        self._seen = 0

    def progress(self) -> int:
        return self._seen

    def run(self) -> None:
        per_producer = {}
        for sample in self._client.sample(_TABLE, num_samples=self._expected):
            producer_id = int(sample[0].data[0][0]) // 1000
            per_producer[producer_id] = per_producer.get(producer_id, 0) + 1
            self._seen += 1
        logging.info("consumer read %d items: %s per producer", self._seen, per_producer)
        print(f"consumer read {self._seen} items, per producer: {dict(sorted(per_producer.items()))}")
        lp.stop()


def make_program(num_producers: int, items_per_producer: int) -> lp.Program:
    program = lp.Program("launch_tour")
    replay_handle = program.add_node(lp.ReverbNode(make_tables), label="replay")
    with program.group("producer"):
        for producer_id in range(num_producers):
            program.add_node(lp.PyNode(produce, replay_handle, producer_id, items_per_producer))
    program.add_node(lp.CourierNode(Consumer, replay_handle, num_producers * items_per_producer), label="consumer")
    return program


def main(argv):
    del argv
    controller = lp.launch(make_program(_NUM_PRODUCERS.value, _ITEMS.value))
    controller.wait()
    print("launch tour finished")


if __name__ == "__main__":
    app.run(main)
