"""``eval_predictions.npz``: the model's predictions on the rows its metrics come from, and label counts.

Written by :func:`multitask.runs.train` next to ``metrics.json`` so that a report can draw predicted against
true values, ROC and calibration curves and confusion matrices without reading the data again. No pickles:
every array is numeric or unicode. Per task ``i`` (in ``tasks`` order):

``true_i``, ``pred_i``      the labelled rows of the evaluated part: regression in the target's own units;
                             binary the label (0/1) and the positive-class probability; multiclass the class
                             index and the class probabilities ``(n, k)``; multilabel ``(n, k)`` labels and
                             probabilities
``classes_i``                the class (or label) names, classification tasks only
``class_counts_i``           the labelled training rows of each class (each label, multilabel)

and ``tasks``, ``kinds``, ``part`` (``valid``, ``test`` or ``held-out``), ``counts`` ``(tasks, 3)`` and
``count_parts`` (the labelled rows of each task in the training, validation and test parts; -1 without a
test part). A task with more than :data:`MAX_ROWS` labelled rows keeps a seeded random sample of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from multitask._rundir import atomic_replace
from multitask.errors import CheckpointError

if TYPE_CHECKING:
    from multitask.runs import Prepared

PREDICTIONS_FILE = "eval_predictions.npz"
#: at most this many rows per task are kept (a seeded random sample of the labelled rows beyond it)
MAX_ROWS = 100_000
PARTS = ("train", "valid", "test")


@dataclass(frozen=True)
class TaskPredictions:
    """One task's labels and predictions on the evaluated part, and its label counts."""

    name: str
    kind: str
    true: np.ndarray
    pred: np.ndarray
    classes: list[str]
    class_counts: np.ndarray  # labelled training rows per class (empty for regression)
    counts: dict[str, int]  # labelled rows per part (absent part: -1)


def save_predictions(path: Path, p: Prepared, predictions: Mapping[str, np.ndarray]) -> None:
    """Write ``eval_predictions.npz`` for the prepared data ``p`` and the model's ``predictions`` on
    ``p.evaluation``, atomically."""
    arrays: dict[str, Any] = {
        "tasks": np.array([t.name for t in p.tasks], dtype=str),
        "kinds": np.array([t.kind for t in p.tasks], dtype=str),
        "part": np.array(p.evaluated_on, dtype=str),
        "count_parts": np.array(PARTS, dtype=str),
    }
    counts = np.full((len(p.tasks), len(PARTS)), -1, dtype=np.int64)
    rng = np.random.default_rng(0)
    for i, task in enumerate(p.tasks):
        for j, part in enumerate((p.train, p.valid, p.test)):
            if part is not None:
                counts[i, j] = int(part.masks[task.name].sum())
        rows = np.flatnonzero(p.evaluation.masks[task.name])
        if len(rows) > MAX_ROWS:
            rows = np.sort(rng.choice(rows, MAX_ROWS, replace=False))
        y = np.asarray(p.evaluation.targets[task.name])[rows]
        pred = np.asarray(predictions[task.name])[rows]
        if task.kind == "regression":
            y = p.pre.to_original(task.name, y.astype(np.float64))
            pred = p.pre.to_original(task.name, pred.astype(np.float64))
        else:
            codec = p.pre.targets[task.name]
            arrays[f"classes_{i}"] = np.array([str(c) for c in codec.classes], dtype=str)
            labels = np.asarray(p.train.targets[task.name])[p.train.masks[task.name]]
            arrays[f"class_counts_{i}"] = (labels.sum(axis=0) if task.kind == "multilabel" else
                                           np.bincount(labels.astype(np.int64), minlength=len(codec.classes)))
        arrays[f"true_{i}"] = np.asarray(y, dtype=np.float32 if task.kind != "regression" else np.float64)
        arrays[f"pred_{i}"] = np.asarray(pred, dtype=np.float32 if task.kind != "regression" else np.float64)
    arrays["counts"] = counts

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    atomic_replace(path, write)


def load_predictions(path: Path) -> tuple[str, list[TaskPredictions]]:
    """``(evaluated part, per-task predictions)`` from ``eval_predictions.npz``."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data: dict[str, Any] = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise CheckpointError(f"{path}: corrupted ({e})") from None
    try:
        names, kinds = [str(n) for n in data["tasks"]], [str(k) for k in data["kinds"]]
        parts = [str(s) for s in data["count_parts"]]
        out = []
        for i, (name, kind) in enumerate(zip(names, kinds, strict=True)):
            classes = [str(c) for c in data.get(f"classes_{i}", np.array([], dtype=str))]
            out.append(TaskPredictions(
                name, kind, data[f"true_{i}"], data[f"pred_{i}"], classes,
                data.get(f"class_counts_{i}", np.array([], dtype=np.int64)),
                {part: int(c) for part, c in zip(parts, data["counts"][i], strict=True)},
            ))
        return str(data["part"]), out
    except (KeyError, ValueError, IndexError) as e:
        raise CheckpointError(f"{path}: field {e} is missing or invalid") from None
