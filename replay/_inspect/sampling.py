"""Sampling a live table for a look at its items and their priority distribution."""

import replay._quiet_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
import dataclasses
import threading
from typing import Any, Dict, List, Optional

import numpy as np
import reverb
import tensorflow as tf
import tree

from replay._inspect.connect import InspectError
from replay._inspect.tables import LimiterState, format_number, signature_leaves

_SMALL = 8  # Arrays with at most this many elements are shown in full.
_EIGHTHS = " ▏▎▍▌▋▊▉█"


@dataclasses.dataclass(frozen=True)
class SampledItem:
    """One sampled item: Reverb's SampleInfo and its data by dotted signature path."""

    key: int
    priority: float
    probability: float
    times_sampled: int
    table_size: int
    data: Dict[str, np.ndarray]


def consumption_reason(info: Any) -> Optional[str]:
    """Why sampling this table takes items away from its real consumers, or None when it does not."""
    if info.max_times_sampled == 1:
        return (
            f"table {info.name} deletes each item once it is sampled (max_times_sampled=1, a queue): the "
            "items this tool samples are taken away from the table's real consumer"
        )
    if info.max_times_sampled > 1:
        return (
            f"table {info.name} deletes each item after {info.max_times_sampled} samples "
            f"(max_times_sampled={info.max_times_sampled}): the samples this tool takes count toward that, "
            "so items leave the table before its real consumer has seen them that often"
        )
    rl = info.rate_limiter_info
    if rl.samples_per_insert == 1 and rl.min_diff == 0 and rl.max_diff == info.max_size:
        return (
            f"table {info.name} has a queue rate limiter, so every sample this tool takes is one its "
            "consumer cannot take"
        )
    return None


def sample(client: Any, info: Any, count: int, address: str, timeout: float, wait: bool = False) -> List[SampledItem]:
    """Samples `count` items, giving up when no item arrives for `timeout` seconds.

    Unless `wait`, refuses up front when the rate limiter would block before `count` samples; with `wait`,
    takes turns with the table's other consumers for the limiter's budget.
    """
    limiter = LimiterState.of(info)
    budget = limiter.sample_budget()
    if count > budget and not wait:
        if budget == 0:
            raise InspectError(
                f"samples from {info.name} are blocked right now "
                f"({limiter.sample_block_reason()}); nothing was sampled. Pass --wait to queue "
                "behind the table's other consumers for new sample budget"
            )
        raise InspectError(
            f"the rate limiter of {info.name} lets only {budget} more sample(s) proceed right now "
            f"(asked for {count}); ask for at most {budget}, or pass --wait to take turns with the "
            "table's other consumers (which then get that many fewer samples)"
        )
    if info.signature is not None:
        items = _sample_with_deadline(address, info, count, timeout)
    else:
        items = _sample_in_thread(client, info, count, address, timeout)
    if len(items) < count:
        raise InspectError(
            f"sampling {info.name} at {address} stalled for {timeout:g}s after {len(items)} of "
            f"{count} item(s): its rate limiter is holding samples back (another consumer may have "
            "used the sample budget or writers stopped); try fewer samples"
        )
    return items


def _item(sample_info: Any, names: List[str], leaves: List[Any]) -> SampledItem:
    return SampledItem(
        key=int(sample_info.key),
        priority=float(sample_info.priority),
        probability=float(sample_info.probability),
        times_sampled=int(sample_info.times_sampled),
        table_size=int(sample_info.table_size),
        data={n: np.asarray(a) for n, a in zip(names, leaves)},
    )


def _sample_with_deadline(address: str, info: Any, count: int, timeout: float) -> List[SampledItem]:
    """Up to `count` items, one request at a time; Reverb ends the stream once a sample waits `timeout` seconds."""
    signature = info.signature
    dataset = reverb.TrajectoryDataset(
        address,
        info.name,
        dtypes=tree.map_structure(lambda s: s.dtype, signature),
        shapes=tree.map_structure(lambda s: s.shape, signature),
        max_in_flight_samples_per_worker=1,
        num_workers_per_iterator=1,
        max_samples=count,
        rate_limiter_timeout_ms=max(1, round(timeout * 1000)),
    )
    names = signature_leaves(signature)
    items: List[SampledItem] = []
    try:
        for s in dataset:
            items.append(_item(s.info, names, [a.numpy() for a in tree.flatten(s.data)]))
    except tf.errors.OpError as e:
        raise InspectError(f"sampling {info.name} at {address} failed: {e.message.splitlines()[0]}") from None
    return items


def _sample_in_thread(client: Any, info: Any, count: int, address: str, timeout: float) -> List[SampledItem]:
    """Up to `count` items, giving up once none arrives for `timeout` seconds. For tables without a signature (so no
    dataset can be built): Reverb's sampler has no deadline, so a stalled one keeps its thread until an item comes."""
    items: List[SampledItem] = []
    failure: List[BaseException] = []

    def take() -> None:
        try:
            for s in client.sample(info.name, count, emit_timesteps=False):
                items.append(_item(s.info, [str(i) for i in range(len(s.data))], s.data))
        except Exception as e:  # pylint: disable=broad-except
            failure.append(e)

    worker = threading.Thread(target=take, name="encore-inspect-sample", daemon=True)
    worker.start()
    seen = -1
    while worker.is_alive() and len(items) > seen:  # Wait while samples keep arriving.
        seen = len(items)
        worker.join(timeout)
    if failure:
        raise InspectError(f"sampling {info.name} at {address} failed: {str(failure[0]).splitlines()[0]}")
    return list(items)


def summarize(array: np.ndarray) -> Dict[str, Any]:
    """Shape, dtype and, for numbers, min/max/mean; the values themselves when the array is small."""
    summary: Dict[str, Any] = {"shape": list(array.shape), "dtype": str(array.dtype)}
    if array.dtype.kind in "biuf" and array.size:
        summary.update(min=array.min().item(), max=array.max().item(), mean=float(array.mean()))
    if array.size <= _SMALL:
        summary["values"] = [
            x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in array.ravel().tolist()
        ]
    return summary


def summary_text(array: np.ndarray) -> str:
    """One line: `dtype[shape]` then the values (small arrays) or min/mean/max."""
    head = f"{array.dtype}[{', '.join(map(str, array.shape))}]"
    if array.size <= _SMALL:
        values = np.array2string(array, precision=4, separator=", ")
        return f"{head}  {' '.join(values.split())}"
    if array.dtype.kind in "biuf":
        return f"{head}  min {array.min().item():.4g}  mean {float(array.mean()):.4g}  max {array.max().item():.4g}"
    return head


def item_json(item: SampledItem) -> Dict[str, Any]:
    return {
        "key": item.key,
        "priority": item.priority,
        "probability": item.probability,
        "times_sampled": item.times_sampled,
        "table_size": item.table_size,
        "data": {name: summarize(a) for name, a in item.data.items()},
    }


def item_text(index: int, item: SampledItem) -> str:
    width = max(len(name) for name in item.data) if item.data else 0
    lines = [
        f"item {index}: key {item.key}  priority {item.priority:.6g}  probability {item.probability:.4g}  "
        f"times_sampled {item.times_sampled}  (table size {item.table_size})"
    ]
    lines += [f"  {name:<{width}}  {summary_text(a)}" for name, a in item.data.items()]
    return "\n".join(lines)


def save_npz(items: List[SampledItem], path: str) -> Dict[str, np.ndarray]:
    """Writes sample info and data arrays (`data/<path>`, stacked over items) to `path`; returns them."""
    arrays: Dict[str, np.ndarray] = {
        "key": np.array([i.key for i in items], np.uint64),
        "priority": np.array([i.priority for i in items], np.float64),
        "probability": np.array([i.probability for i in items], np.float64),
        "times_sampled": np.array([i.times_sampled for i in items], np.int64),
        "table_size": np.array([i.table_size for i in items], np.int64),
    }
    for name in items[0].data if items else {}:
        columns = [i.data[name].astype(bytes) if i.data[name].dtype == object else i.data[name] for i in items]
        if len({c.shape for c in columns}) == 1:
            arrays[f"data/{name}"] = np.stack(columns)
        else:  # Items of different lengths (e.g. whole episodes) are kept one array per item.
            arrays.update({f"data/{name}[{j}]": c for j, c in enumerate(columns)})
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return arrays


@dataclasses.dataclass(frozen=True)
class PriorityDistribution:
    """Priorities weighted to stand for the table's items.

    Exact when the samples covered every item (each counted once); otherwise each sample is weighted by
    1 / (num_samples * probability), which undoes the sampler's preference for high priorities and makes
    the weights add up to about the table size.
    """

    values: np.ndarray
    weights: np.ndarray
    exact: bool
    num_samples: int
    num_items_seen: int
    table_size: int

    @property
    def min(self) -> float:
        return float(self.values.min())

    @property
    def max(self) -> float:
        return float(self.values.max())

    @property
    def median(self) -> float:
        if self.exact:
            return float(np.median(self.values))
        order = np.argsort(self.values)
        cumulative = np.cumsum(self.weights[order])
        return float(self.values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def priority_distribution(items: List[SampledItem]) -> PriorityDistribution:
    if not items:
        raise InspectError("no items were sampled, so there is no priority distribution to show")
    latest = {i.key: i.priority for i in items}
    table_size = items[-1].table_size
    if len(latest) == table_size:
        values = np.array(list(latest.values()), np.float64)
        return PriorityDistribution(values, np.ones_like(values), True, len(items), len(latest), table_size)
    values = np.array([i.priority for i in items], np.float64)
    weights = np.array([1.0 / (len(items) * i.probability) for i in items], np.float64)
    return PriorityDistribution(values, weights, False, len(items), len(latest), table_size)


def _bin_edges(dist: PriorityDistribution, bins: int) -> np.ndarray:
    if dist.min == dist.max:
        return np.array([dist.min, dist.max + (abs(dist.max) or 1.0) * 1e-9])
    return np.linspace(dist.min, dist.max, bins + 1)


def _bar(fraction: float, width: int) -> str:
    eighths = round(fraction * width * 8)
    return "█" * (eighths // 8) + (_EIGHTHS[eighths % 8] if eighths % 8 else "")


def histogram_text(table: str, dist: PriorityDistribution, bins: int = 10, width: int = 40) -> str:
    """Summary line plus a unicode-bar histogram of items per priority bin."""
    if dist.exact:
        how = f"exact: all {dist.table_size} items seen in {dist.num_samples} samples"
    else:
        how = (
            f"estimated from {dist.num_samples} samples ({dist.num_items_seen} of {dist.table_size} items seen), "
            "weighted by 1/probability"
        )
    counts, edges = np.histogram(dist.values, bins=_bin_edges(dist, bins), weights=dist.weights)
    labels = [
        f"[{format_number(lo)}, {format_number(hi)}{']' if j == len(counts) - 1 else ')'}"
        for j, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))
    ]
    label_width = max(len(label) for label in labels)
    peak = counts.max() or 1.0
    lines = [
        f"priorities of {table}: {how}",
        f"  min {dist.min:.6g}  median {dist.median:.6g}  max {dist.max:.6g}",
        f"  {'priority':<{label_width}}  {'items' if dist.exact else '~items':>7}",
    ]
    for label, count in zip(labels, counts):
        shown = f"{int(round(count))}" if dist.exact else f"{count:.1f}"
        lines.append(f"  {label:<{label_width}}  {shown:>7}  {_bar(count / peak, width)}".rstrip())
    return "\n".join(lines)


def save_png(table: str, dist: PriorityDistribution, path: str, bins: int = 20) -> None:
    """Writes a histogram of the distribution to `path` with matplotlib (no display needed)."""
    from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel

    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.hist(dist.values, bins=_bin_edges(dist, bins), weights=dist.weights, color="tab:blue")
    ax.set_xlabel("priority")
    ax.set_ylabel("items" if dist.exact else "items (estimated)")
    ax.set_title(
        f"{table}: min {dist.min:.4g}, median {dist.median:.4g}, max {dist.max:.4g} "
        f"({'exact' if dist.exact else f'{dist.num_samples} samples'})"
    )
    fig.savefig(path)
