"""The front as a figure: validation losses of each method's points, for two or three tasks."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd

from multitask._rundir import atomic_replace

_STYLE = {"conditioned": ("tab:blue", "o", "one preference-conditioned model"),
          "fixed": ("tab:orange", "s", "one model per fixed weighting")}


def plot_front(table: pd.DataFrame, tasks: list[str], path: Path) -> None:
    """Scatter of each method's points in loss space (front points joined); one panel per pair of tasks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(itertools.combinations(range(len(tasks)), 2))
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.6 * len(pairs), 4.2), squeeze=False)
    for ax, (i, j) in zip(axes[0], pairs, strict=True):
        for method, part in table.groupby("method", sort=False):
            color, marker, label = _STYLE.get(str(method), ("tab:gray", "x", str(method)))
            x, y = part[f"loss:{tasks[i]}"], part[f"loss:{tasks[j]}"]
            ax.scatter(x, y, c=color, marker=marker, label=label, alpha=0.8)
            front = part[part["front"]].sort_values(f"loss:{tasks[i]}")
            if len(tasks) == 2 and len(front) > 1:
                ax.plot(front[f"loss:{tasks[i]}"], front[f"loss:{tasks[j]}"], c=color, alpha=0.6)
        ax.set_xlabel(f"validation loss: {tasks[i]}")
        ax.set_ylabel(f"validation loss: {tasks[j]}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Trade-offs between tasks (lower is better)")
    fig.tight_layout()
    try:
        atomic_replace(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)
