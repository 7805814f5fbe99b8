"""Learning-curve plots from the CSV logs of a run."""

import csv
import glob
import math
import os
from typing import Dict, List, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position


def read_csv_log(path: str) -> Dict[str, List[float]]:
    """Reads a CSV log into columns of floats (non-numeric cells become NaN)."""
    columns: Dict[str, List[float]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    number = float("nan")
                columns.setdefault(key, []).append(number)
    return columns


def plot_learning_curve(
    run_dir: str,
    output_path: Optional[str] = None,
    start_time: Optional[float] = None,
    return_keys=("eval_return", "episode_return"),
) -> str:
    """Plots returns vs wall time and vs actor steps from run_dir/logs/*.csv.

    Every log with a return column (the first of `return_keys` it has) and a
    `timestamp` column becomes one line (rows whose return is NaN are skipped). Wall time counts from `start_time`
    (seconds since the epoch), else from the earliest timestamp. Returns the
    PNG path (default run_dir/learning_curve.png).
    """
    output_path = output_path or os.path.join(run_dir, "learning_curve.png")
    curves = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "logs", "*.csv"))):
        columns = read_csv_log(path)
        key = next((k for k in return_keys if k in columns), None)
        if key is None or "timestamp" not in columns:
            continue
        curves[os.path.splitext(os.path.basename(path))[0]] = (columns, key)
    if start_time is None:
        start_time = min((min(c["timestamp"]) for c, _ in curves.values()), default=0.0)

    figure, (by_time, by_steps) = plt.subplots(1, 2, figsize=(11, 4))
    for label, (columns, key) in curves.items():
        is_eval = "eval" in label
        style = dict(
            label=label,
            linewidth=2.0 if is_eval else 1.0,
            alpha=1.0 if is_eval else 0.6,
            marker="o" if is_eval else None,
        )
        rows = [i for i, value in enumerate(columns[key]) if not math.isnan(value)]
        returns = [columns[key][i] for i in rows]
        by_time.plot([columns["timestamp"][i] - start_time for i in rows], returns, **style)
        if "actor_steps" in columns:
            by_steps.plot([columns["actor_steps"][i] for i in rows], returns, **style)
    by_time.set_xlabel("wall time (s)")
    by_steps.set_xlabel("actor steps")
    for axis in (by_time, by_steps):
        axis.set_ylabel("return")
        axis.grid(alpha=0.3)
    if curves:
        by_time.legend(loc="best", fontsize="small")
    figure.suptitle(os.path.basename(os.path.normpath(run_dir)))
    figure.tight_layout()
    figure.savefig(output_path, dpi=100)
    plt.close(figure)
    return output_path
