"""Writing an affinity matrix: a CSV (tasks × tasks) and a heatmap in cluster order."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from multitask.affinity._measures import cluster_order

#: matrices of at most this many tasks get their values written in the cells
ANNOTATE_UP_TO = 20


def write_csv(matrix: np.ndarray, tasks: Sequence[str], path: Path) -> None:
    """The matrix with the task names as header and index (row: the task whose gradient moves)."""
    pd.DataFrame(matrix, index=list(tasks), columns=list(tasks)).to_csv(path, index_label="task")


def read_csv(path: Path) -> pd.DataFrame:
    """A matrix written by :func:`write_csv`."""
    return pd.read_csv(path, index_col=0)


def plot_heatmap(matrix: np.ndarray, tasks: Sequence[str], path: Path, title: str) -> list[int]:
    """A heatmap of ``matrix`` with tasks in cluster order (:func:`cluster_order`), a diverging colormap
    centred at 0, the values written in the cells up to 20 tasks; returns the order."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    order = cluster_order(matrix)
    m = matrix[np.ix_(order, order)]
    names = [tasks[i] for i in order]
    n = len(order)
    finite = m[np.isfinite(m)]
    bound = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
    size = 3 + 0.45 * n
    fig = Figure(figsize=(size + 1.5, size), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(m), cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -bound, bound))
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("affected task j")
    ax.set_ylabel("task i (its gradient)")
    ax.set_title(title)
    if n <= ANNOTATE_UP_TO:
        for r in range(n):
            for c in range(n):
                if np.isfinite(m[r, c]):
                    ax.text(c, r, f"{m[r, c]:.2g}", ha="center", va="center", fontsize=8,
                            color="white" if abs(m[r, c]) > 0.6 * bound else "black")
    fig.colorbar(image, ax=ax)
    fig.savefig(path, dpi=120)
    return order
