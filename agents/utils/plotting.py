"""Learning-curve plots from the CSV logs of a run."""

import csv
import glob
import math
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import matplotlib
import numpy as np

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
    *,
    title: Optional[str] = None,
    threshold: Optional[float] = None,
) -> str:
    """Plots returns vs wall time and vs actor steps from run_dir/logs/*.csv, titled `title` (default: the run
    directory's name), with `threshold` (the solve threshold) as a dashed line.

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
        if threshold is not None:
            axis.axhline(threshold, color="black", linestyle="--", linewidth=1.0, label="solve threshold")
    figure.suptitle(title or os.path.basename(os.path.normpath(run_dir)))
    handles, labels = by_time.get_legend_handles_labels()
    if handles:  # Below both plots, where it covers no data.
        figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize="small", frameon=False)
    figure.tight_layout(rect=(0, 0.1 if handles else 0, 1, 1))
    figure.savefig(output_path, dpi=100)
    plt.close(figure)
    return output_path


def plot_sweep_curves(
    curves: Mapping[str, Sequence[Tuple[np.ndarray, np.ndarray]]],
    output_path: str,
    *,
    title: str = "",
    threshold: Optional[float] = None,
    points: int = 100,
    resamples: int = 1000,
) -> str:
    """One line per setting: the mean over its seeds of the evaluation return against env steps, with a 95%
    bootstrap band (seeds resampled with replacement). `curves[setting]` holds one (env steps, returns) pair per
    seed. Between evaluations a seed's curve holds its latest value, and after its last one (a run that stopped
    once solved, or at its budget) it keeps it; a setting's line starts where all its seeds have been evaluated.
    Returns the path."""
    figure, axis = plt.subplots(figsize=(8, 4.5))
    end = max((steps[-1] for runs in curves.values() for steps, _ in runs if len(steps)), default=1.0)
    grid = np.linspace(0.0, end, points)
    bootstrap = np.random.default_rng(0)  # A fixed seed: the same sweep gives the same plot.
    for setting, runs in curves.items():
        values = np.array([_latest_value(steps, returns, grid) for steps, returns in runs if len(steps)])
        if values.size == 0:
            continue
        shown = ~np.isnan(values).any(axis=0)  # From the step where every seed has been evaluated.
        if not shown.any():
            continue
        mean = values[:, shown].mean(axis=0)
        picks = bootstrap.integers(0, len(values), size=(resamples, len(values)))
        means = values[:, shown][picks].mean(axis=1)  # resamples × points
        low, high = np.percentile(means, [2.5, 97.5], axis=0)
        (line,) = axis.plot(grid[shown], mean, label=f"{setting} ({len(values)} seeds)")
        axis.fill_between(grid[shown], low, high, color=line.get_color(), alpha=0.2)
    if threshold is not None:
        axis.axhline(threshold, color="black", linestyle="--", linewidth=1.0, label="solve threshold")
    axis.set_xlabel("env steps")
    axis.set_ylabel("evaluation return")
    axis.grid(alpha=0.3)
    axis.set_title(title, fontsize="medium")
    handles, labels = axis.get_legend_handles_labels()
    if handles:  # Below the plot, where it covers no data.
        figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize="small", frameon=False)
    figure.tight_layout(rect=(0, 0.12 if handles else 0, 1, 1))
    figure.savefig(output_path, dpi=100)
    plt.close(figure)
    return output_path


def _latest_value(steps: np.ndarray, returns: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """At each grid point, the return of the latest evaluation at or before it (NaN before the first)."""
    index = np.searchsorted(steps, grid, side="right") - 1
    return np.where(index >= 0, returns[np.maximum(index, 0)], np.nan)
