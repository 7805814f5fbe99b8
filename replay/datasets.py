"""Learner input: batched tf.data pipelines over Reverb tables that keep sample keys and probabilities."""

import replay._quiet_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
from typing import Iterator, Optional

import reverb
import tensorflow as tf

from replay._server_info import DEFAULT_TIMEOUT_SECS, check_tables, server_info


def make_dataset(
    server_address: str,
    table: str,
    batch_size: int,
    *,
    prefetch: Optional[int] = tf.data.AUTOTUNE,
    max_in_flight_samples_per_worker: Optional[int] = None,
    num_workers_per_iterator: int = -1,
    max_samples_per_stream: int = -1,
    rate_limiter_timeout_ms: int = -1,
    max_samples: int = -1,
    get_signature_timeout_secs: float = DEFAULT_TIMEOUT_SECS,
) -> tf.data.Dataset:
    """A dataset of `reverb.ReplaySample(info, data)` batches from `table`.

    `info` holds each item's key, probability, table_size, priority and times_sampled (for importance
    weights and priority updates); `data` has the table signature with a leading batch axis. Samples are
    streamed ahead (`max_in_flight_samples_per_worker`, default 2 * batch_size) and batches prefetched, so
    a learner only waits when the table has nothing to give. FIFO/queue tables need
    num_workers_per_iterator=1 to keep their order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (got {batch_size}).")
    _check_table(server_address, table, batch_size, get_signature_timeout_secs)
    dataset = reverb.TrajectoryDataset.from_table_signature(
        server_address=server_address,
        table=table,
        max_in_flight_samples_per_worker=max_in_flight_samples_per_worker or 2 * batch_size,
        num_workers_per_iterator=num_workers_per_iterator,
        max_samples_per_stream=max_samples_per_stream,
        rate_limiter_timeout_ms=rate_limiter_timeout_ms,
        max_samples=max_samples,
        get_signature_timeout_secs=get_signature_timeout_secs,
    )
    dataset = dataset.batch(batch_size, drop_remainder=True)
    if prefetch:
        dataset = dataset.prefetch(prefetch)
    return dataset


def make_numpy_iterator(server_address: str, table: str, batch_size: int, **kwargs) -> Iterator[reverb.ReplaySample]:
    """Like `make_dataset`, yielding numpy `reverb.ReplaySample` batches for non-TF learners."""
    return make_dataset(server_address, table, batch_size, **kwargs).as_numpy_iterator()


def _check_table(server_address: str, table: str, batch_size: int, timeout_secs: float) -> None:
    info = server_info(reverb.Client(server_address), timeout_secs)
    check_tables(info, [table], server_address)
    if info[table].max_times_sampled == 1 and info[table].max_size < batch_size:
        raise ValueError(
            f"table {table!r} holds at most {info[table].max_size} items, each sampled once, so a batch of "
            f"{batch_size} would wait for ever: make the table's max_size at least the batch size (better, a "
            "few batches), or sample smaller batches."
        )
    if info[table].signature is None:
        raise ValueError(
            f"table {table!r} has no signature, so a dataset cannot know its dtypes and shapes: "
            "create it with signature=<Adder>.signature(environment_spec)."
        )
