"""The report's figures, each drawn with matplotlib's Agg canvas and returned as PNG bytes.

Per-task figures are small multiples: one panel per task, at most :data:`PANELS` panels per figure, so that
a run of 139 tasks gives a few figures of a readable size rather than one that no screen holds.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from multitask.report._predictions import TaskPredictions

#: panels per small-multiples figure (6 x 6)
PANELS = 36
COLUMNS = 6
#: points drawn per scatter panel (a seeded random sample beyond it)
MAX_POINTS = 2_000
DPI = 80
TRAIN, VALID = "#1f77b4", "#d62728"

Figure = Any  # matplotlib.figure.Figure, imported lazily


@contextmanager
def _figure(width: float, height: float) -> Iterator[Figure]:
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    with matplotlib.rc_context({"font.size": 8, "axes.titlesize": 8, "legend.fontsize": 7}):
        fig = MplFigure(figsize=(width, height))
        FigureCanvasAgg(fig)
        yield fig


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def chunks(n: int, size: int = PANELS) -> list[range]:
    """The index ranges of each small-multiples figure of ``n`` panels."""
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def small_multiples(names: Sequence[str], draw: Callable[[Any, int], None], *, cell: tuple[float, float] = (2.3, 1.9),
                    legend: Sequence[tuple[str, str]] = ()) -> bytes:
    """One panel per name, ``draw(axes, i)`` filling panel ``i``; ``legend`` is ``(label, colour)`` pairs."""
    cols = min(COLUMNS, len(names))
    rows = math.ceil(len(names) / cols)
    width, height = cell[0] * cols + 0.2, cell[1] * rows + (0.3 if legend else 0.0)
    with _figure(width, height) as fig:
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        from matplotlib.ticker import MaxNLocator

        for i, name in enumerate(names):
            axes[i].set_title(_short(name))
            draw(axes[i], i)
            axes[i].xaxis.set_major_locator(MaxNLocator(3))  # few ticks: their labels are most of the cost
            axes[i].yaxis.set_major_locator(MaxNLocator(3))
            axes[i].tick_params(labelsize=6, length=2, pad=1)
        for ax in axes[len(names):]:
            ax.set_visible(False)
        if legend:
            from matplotlib.lines import Line2D

            handles = [Line2D([], [], color=colour, label=label) for label, colour in legend]
            fig.legend(handles=handles, loc="upper center", ncol=len(handles), frameon=False)
        top = 1 - (0.55 if legend else 0.25) / height  # margins in inches: the title, the axis labels
        fig.subplots_adjust(left=0.55 / width, right=1 - 0.1 / width, bottom=0.45 / height, top=top,
                            hspace=0.65, wspace=0.45)
        return _png(fig)


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _values(history: Sequence[dict[str, Any]], key: str, task: str) -> np.ndarray:
    return np.array([_number((r.get(key) or {}).get(task)) for r in history], dtype=float)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


# ---- training history ---------------------------------------------------------------------------------------
def overview(history: Sequence[dict[str, Any]], tasks: Sequence[str]) -> bytes:
    """The sum over tasks of the training loss and the weighted validation total, per epoch."""
    epochs = [r["epoch"] for r in history]
    with _figure(6.0, 2.8) as fig:
        ax = fig.subplots()
        train = np.nansum([_values(history, "train", t) for t in tasks], axis=0)
        ax.plot(epochs, train, color=TRAIN, marker=".", label="training: Σ task losses")
        valid = np.array([_number(r.get("valid_total")) for r in history])
        if np.isfinite(valid).any():
            ax.plot(epochs, valid, color=VALID, marker=".", label="validation: weighted total")
            best = int(np.nanargmin(valid))
            ax.axvline(epochs[best], color="grey", linestyle=":", label=f"best epoch ({epochs[best]})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend()
        fig.tight_layout()
        return _png(fig)


def learning_curves(history: Sequence[dict[str, Any]], tasks: Sequence[str]) -> bytes:
    """Per task: the mean training loss and the validation loss per epoch."""
    epochs = [r["epoch"] for r in history]

    def draw(ax: Any, i: int) -> None:
        ax.plot(epochs, _values(history, "train", tasks[i]), color=TRAIN)
        valid = _values(history, "valid", tasks[i])
        if np.isfinite(valid).any():
            ax.plot(epochs, valid, color=VALID)

    return small_multiples(tasks, draw, legend=(("training loss", TRAIN), ("validation loss", VALID)))


def task_weights(history: Sequence[dict[str, Any]], tasks: Sequence[str]) -> bytes:
    """Each task's mean weight per epoch, as the balancer set it."""
    epochs = [r["epoch"] for r in history]
    with _figure(7.0, 3.2) as fig:
        ax = fig.subplots()
        for t in tasks:
            ax.plot(epochs, _values(history, "weights", t), label=_short(t, 20), linewidth=1)
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean task weight")
        if len(tasks) <= 12:
            ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        fig.tight_layout()
        return _png(fig)


def cosine(history: Sequence[dict[str, Any]]) -> bytes:
    """The mean cosine between task gradients per epoch."""
    epochs = [r["epoch"] for r in history]
    with _figure(6.0, 2.6) as fig:
        ax = fig.subplots()
        ax.plot(epochs, [_number(r.get("cosine")) for r in history], marker=".", color="black")
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean gradient cosine")
        fig.tight_layout()
        return _png(fig)


# ---- predictions --------------------------------------------------------------------------------------------
def _sample(n: int, size: int = MAX_POINTS) -> np.ndarray:
    return np.arange(n) if n <= size else np.sort(np.random.default_rng(0).choice(n, size, replace=False))


def predicted_vs_true(tasks: Sequence[TaskPredictions]) -> bytes:
    """Per regression task: each evaluated row's prediction against its true value, with the diagonal."""

    def draw(ax: Any, i: int) -> None:
        t = tasks[i]
        rows = _sample(len(t.true))
        few = len(rows) <= 300  # few points: bigger and darker, so that they show
        ax.scatter(t.true[rows], t.pred[rows], s=9 if few else 3, alpha=0.8 if few else 0.35, color=TRAIN,
                   linewidths=0)
        if len(t.true):
            lo = float(min(t.true.min(), t.pred.min()))
            hi = float(max(t.true.max(), t.pred.max()))
            ax.plot([lo, hi], [lo, hi], color="grey", linewidth=0.8)
        ax.set_xlabel("true", labelpad=1)
        ax.set_ylabel("predicted", labelpad=1)

    return small_multiples([t.name for t in tasks], draw, cell=(2.3, 2.2))


def _binary(t: TaskPredictions) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities of one binary task, or of every (row, label) of a multilabel task."""
    return np.asarray(t.true).ravel(), np.asarray(t.pred).ravel()


def _title(t: TaskPredictions) -> str:
    return f"{t.name} (all labels)" if t.kind == "multilabel" else t.name


def roc_curves(tasks: Sequence[TaskPredictions]) -> bytes:
    """Per binary (or multilabel, labels pooled) task: the ROC curve and its AUC."""
    from sklearn.metrics import roc_auc_score, roc_curve

    def draw(ax: Any, i: int) -> None:
        y, p = _binary(tasks[i])
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
        if len(np.unique(y)) < 2:
            ax.text(0.5, 0.5, "one class only", ha="center", va="center")
            return
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, color=TRAIN)
        ax.text(0.97, 0.05, f"AUC {roc_auc_score(y, p):.3f}", ha="right")
        ax.set_xlabel("false positive rate", labelpad=1)
        ax.set_ylabel("true positive rate", labelpad=1)

    return small_multiples([_title(t) for t in tasks], draw, cell=(2.3, 2.2))


def calibration_curves(tasks: Sequence[TaskPredictions], bins: int = 10) -> bytes:
    """Per binary (or multilabel, labels pooled) task: the observed share of positives in each predicted
    probability bin (equal widths), against the diagonal of perfect calibration."""

    def draw(ax: Any, i: int) -> None:
        y, p = _binary(tasks[i])
        ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
        which = np.clip((p * bins).astype(int), 0, bins - 1)
        counts = np.bincount(which, minlength=bins)
        used = counts > 0
        observed = np.bincount(which, weights=y, minlength=bins)[used] / counts[used]
        predicted = np.bincount(which, weights=p, minlength=bins)[used] / counts[used]
        ax.plot(predicted, observed, color=VALID, marker=".")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("predicted probability", labelpad=1)
        ax.set_ylabel("observed share", labelpad=1)

    return small_multiples([_title(t) for t in tasks], draw, cell=(2.3, 2.2))


#: confusion matrices of more classes than this are drawn without tick labels and cell counts
LABELLED_CLASSES = 20


def confusion(t: TaskPredictions) -> bytes:
    """A multiclass task's confusion matrix: counts, coloured by the share of each true class's rows."""
    k = len(t.classes)
    true = np.asarray(t.true).astype(np.int64)
    pred = np.asarray(t.pred).argmax(axis=1) if len(t.pred) else np.zeros(0, dtype=np.int64)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (true, pred), 1)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(3 + 0.35 * k, 12)
    with _figure(size + 1.0, size) as fig:
        ax = fig.subplots()
        image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        if k <= LABELLED_CLASSES:
            names = [_short(c, 14) for c in t.classes]
            ax.set_xticks(range(k), names, rotation=45, ha="right")
            ax.set_yticks(range(k), names)
            for r in range(k):
                for c in range(k):
                    ax.text(c, r, str(matrix[r, c]), ha="center", va="center", fontsize=7,
                            color="white" if share[r, c] > 0.6 else "black")
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(_short(t.name, 60))
        fig.colorbar(image, ax=ax, label="share of the true class's rows")
        fig.tight_layout()
        return _png(fig)


# ---- data ---------------------------------------------------------------------------------------------------
def label_counts(names: Sequence[str], counts: Sequence[dict[str, int]]) -> bytes:
    """Labelled rows of each task in each part, stacked bars (tasks in their order)."""
    parts = [p for p in ("train", "valid", "test") if any(c.get(p, -1) >= 0 for c in counts)]
    n = len(names)
    with _figure(min(max(5.0, 0.18 * n + 2), 16.0), 3.2) as fig:
        ax = fig.subplots()
        bottom = np.zeros(n)
        for part, colour in zip(parts, (TRAIN, VALID, "#2ca02c"), strict=False):
            values = np.array([max(c.get(part, 0), 0) for c in counts], dtype=float)
            ax.bar(range(n), values, bottom=bottom, color=colour, label=part, width=0.8)
            bottom += values
        if n <= 40:
            ax.set_xticks(range(n), [_short(t, 16) for t in names], rotation=60, ha="right")
        else:
            ax.set_xlabel(f"task (1 to {n}, in the table's order)")
        ax.set_ylabel("labelled rows")
        ax.legend(frameon=False)
        fig.tight_layout()
        return _png(fig)
