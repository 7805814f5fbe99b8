"""What a table's `reverb.TableInfo` says, as plain data and as text."""

import replay._quiet_tensorflow  # noqa: F401, I001  First: TensorFlow without its CPU-only plugin noise.
import dataclasses
import math
from typing import Any, Dict, List, Optional

import tree

_UNBOUNDED = 1e300  # Reverb stores "no limit" as +-DBL_MAX.


def format_number(x: float) -> str:
    """Integers without a decimal point, +-DBL_MAX as +-inf, other floats in 4 significant digits."""
    if abs(x) >= _UNBOUNDED:
        return "inf" if x > 0 else "-inf"
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.4g}"


@dataclasses.dataclass(frozen=True)
class LimiterState:
    """A table's rate limiter counters, judged with Reverb's CanInsert/CanSample rules.

    `inserts` and `samples` are the completed insert and sample calls the server reports; deletions are
    `inserts - size`. Reverb restarts these counts on a table reset or a checkpoint restore, so right after
    either the verdicts can be off until the table has been refilled.
    """

    size: int
    inserts: int
    samples: int
    samples_per_insert: float
    min_size_to_sample: int
    min_diff: float
    max_diff: float

    @classmethod
    def of(cls, info: Any) -> "LimiterState":
        limiter = info.rate_limiter_info
        return cls(
            size=info.current_size,
            inserts=limiter.insert_stats.completed,
            samples=limiter.sample_stats.completed,
            samples_per_insert=limiter.samples_per_insert,
            min_size_to_sample=limiter.min_size_to_sample,
            min_diff=limiter.min_diff,
            max_diff=limiter.max_diff,
        )

    @property
    def balance(self) -> float:
        """inserts * samples_per_insert - samples: what Reverb keeps within [min_diff, max_diff]."""
        return self.inserts * self.samples_per_insert - self.samples

    @property
    def limits_ratio(self) -> bool:
        """Whether the limiter enforces a samples-per-insert ratio (MinSize limiters do not)."""
        return abs(self.min_diff) < _UNBOUNDED or abs(self.max_diff) < _UNBOUNDED

    def insert_block_reason(self) -> Optional[str]:
        """Why one more insert would wait right now, or None if it would proceed."""
        if self.size + 1 <= self.min_size_to_sample:
            return None
        if self.balance + self.samples_per_insert <= self.max_diff:
            return None
        return (
            f"waiting for samples: one more insert would lift inserts*samples_per_insert - samples to "
            f"{format_number(self.balance + self.samples_per_insert)} > max_diff {format_number(self.max_diff)}"
        )

    def sample_block_reason(self) -> Optional[str]:
        """Why one more sample would wait right now, or None if it would proceed."""
        if self.size < self.min_size_to_sample:
            return f"waiting for inserts: size {self.size} < min_size_to_sample {self.min_size_to_sample}"
        if self.balance - 1 >= self.min_diff:
            return None
        return (
            f"waiting for inserts: one more sample would drop inserts*samples_per_insert - samples to "
            f"{format_number(self.balance - 1)} < min_diff {format_number(self.min_diff)}"
        )

    def sample_budget(self) -> float:
        """How many samples may proceed right now before the limiter blocks (inf when unlimited)."""
        if self.size < self.min_size_to_sample:
            return 0
        if self.min_diff <= -_UNBOUNDED:
            return math.inf
        return max(0, math.floor(self.balance - self.min_diff))


def selector(options: Any) -> Dict[str, Any]:
    """A KeyDistributionOptions proto as {"kind": ...} (+ "priority_exponent" for prioritized)."""
    kind = options.WhichOneof("distribution")
    if kind == "prioritized":
        return {"kind": kind, "priority_exponent": options.prioritized.priority_exponent}
    if kind == "heap":
        return {"kind": "min_heap" if options.heap.min_heap else "max_heap"}
    return {"kind": kind}


def signature_tree(signature: Any) -> Any:
    """A table signature as nested dicts/lists of {"shape": [...], "dtype": ...}; None without one."""

    def leaf(spec: Any) -> Dict[str, Any]:
        return {"shape": list(spec.shape.as_list()) if spec.shape.rank is not None else None, "dtype": spec.dtype.name}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):  # Sorted like Reverb flattens them, so the order matches sampled data.
            return {str(k): walk(node[k]) for k in sorted(node)}
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            return {field: walk(value) for field, value in zip(node._fields, node)}
        if isinstance(node, (list, tuple)):
            return [walk(v) for v in node]
        return leaf(node)

    return None if signature is None else walk(signature)


def signature_leaves(signature: Any) -> List[str]:
    """Dotted path of each leaf of a signature, in Reverb's flattening order."""
    return [".".join(str(p) for p in path) or "data" for path, _ in tree.flatten_with_path(signature)]


def describe(info: Any) -> Dict[str, Any]:
    """Everything `info` shows about one table, as JSON-ready data."""
    limiter = LimiterState.of(info)
    return {
        "name": info.name,
        "current_size": info.current_size,
        "max_size": info.max_size,
        "sampler": selector(info.sampler_options),
        "remover": selector(info.remover_options),
        "max_times_sampled": info.max_times_sampled,
        "rate_limiter": {
            "samples_per_insert": limiter.samples_per_insert,
            "min_size_to_sample": limiter.min_size_to_sample,
            "min_diff": limiter.min_diff,
            "max_diff": limiter.max_diff,
        },
        "inserts": limiter.inserts,
        "samples": limiter.samples,
        "inserts_blocked": limiter.insert_block_reason() is not None,
        "samples_blocked": limiter.sample_block_reason() is not None,
        "num_episodes": info.num_episodes,
        "num_deleted_episodes": info.num_deleted_episodes,
        "num_unique_samples": info.num_unique_samples,
        "signature": signature_tree(info.signature),
    }


def _selector_text(sel: Dict[str, Any]) -> str:
    if "priority_exponent" in sel:
        return f"{sel['kind']} (priority_exponent {format_number(sel['priority_exponent'])})"
    return sel["kind"]


def _leaf_text(node: Any) -> Optional[str]:
    """`dtype[shape]` for a signature leaf, "()" for an empty container, None for other containers."""
    if isinstance(node, dict) and set(node) == {"shape", "dtype"} and isinstance(node["dtype"], str):
        shape = "?" if node["shape"] is None else ", ".join("None" if d is None else str(d) for d in node["shape"])
        return f"{node['dtype']}[{shape}]"
    return None if node else "()"


def _signature_lines(node: Any, indent: str) -> List[str]:
    lines = []
    for key, child in node.items() if isinstance(node, dict) else enumerate(node):
        leaf = _leaf_text(child)
        if leaf is None:
            lines.append(f"{indent}{key}:")
            lines.extend(_signature_lines(child, indent + "  "))
        else:
            lines.append(f"{indent}{key}: {leaf}")
    return lines


def render(info: Any) -> str:
    """A human-readable block describing one table."""
    d = describe(info)
    limiter = LimiterState.of(info)
    rl = d["rate_limiter"]
    blocked = [f"inserts ({reason})" for reason in [limiter.insert_block_reason()] if reason]
    blocked += [f"samples ({reason})" for reason in [limiter.sample_block_reason()] if reason]
    rows = [
        ("size", f"{d['current_size']} / {d['max_size']}"),
        ("sampler", _selector_text(d["sampler"])),
        ("remover", _selector_text(d["remover"])),
        ("max_times_sampled", str(d["max_times_sampled"]) if d["max_times_sampled"] > 0 else "unlimited"),
        (
            "rate limiter",
            f"samples_per_insert {format_number(rl['samples_per_insert'])}, min_size_to_sample "
            f"{rl['min_size_to_sample']}, min_diff {format_number(rl['min_diff'])}, "
            f"max_diff {format_number(rl['max_diff'])}",
        ),
        ("inserts / samples", f"{d['inserts']} / {d['samples']}"),
        ("blocked now", "; ".join(blocked) if blocked else "no"),
        ("episodes", f"{d['num_episodes']} ({d['num_deleted_episodes']} deleted)"),
        ("unique samples", str(d["num_unique_samples"])),
    ]
    lines = [f"table {d['name']}"] + [f"  {label:<18} {value}" for label, value in rows]
    if d["signature"] is None:
        lines.append(f"  {'signature':<18} none")
    else:
        leaf = _leaf_text(d["signature"])
        if leaf is None:
            lines.append("  signature")
            lines.extend(_signature_lines(d["signature"], "    "))
        else:
            lines.append(f"  {'signature':<18} {leaf}")
    return "\n".join(lines)
