"""Multi-task targets in the forms users have: per task, the row indices into ``X`` and the targets.

* wide: ``y`` of shape ``(n, T)``, NaN where a task has no label (a DataFrame's columns name the tasks);
* long: ``y`` of shape ``(n,)`` with ``tasks`` giving each row's task (each task its own rows);
* single task: ``y`` of shape ``(n,)`` and no ``tasks``.

Every :class:`~multitask.errors.DataError` about one task starts with ``task LABEL``; in wide form it goes on
with ``(column J of y)``, which :func:`rename_task_error` rewrites with the caller's task names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.utils.validation import check_array

from multitask.errors import ConfigError, DataError
from multitask.linear._losses import Loss, get_loss

Array = NDArray[np.float64]


@dataclass(frozen=True)
class TaskTargets:
    """Task labels, and per task the rows of ``X`` it is labelled on and its targets there."""

    labels: NDArray[np.object_] | NDArray[np.generic]
    rows: list[NDArray[np.intp]]
    targets: list[Array]
    form: str  # "wide", "long" or "single"


#: a one-class logistic task's targets become (n_positive + SMOOTHING) / (n + 2 SMOOTHING) (Jeffreys prior)
SMOOTHING = 0.5


def task_ref(data: TaskTargets, j: int) -> str:
    """How messages name task ``j``: ``task 3 (column 3 of y)`` (wide), ``task 'a'`` (long), ``y`` (single)."""
    label = data.labels.tolist()[j]
    if data.form == "wide":
        return f"task {label!r} (column {j} of y)"
    return f"task {label!r}" if data.form == "long" else "y"


_COLUMN_REF = re.compile(r"""task (?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s'"()]+) \(column (\d+) of y\)""")


def rename_task_error(error: DataError, names: Sequence[str]) -> DataError:
    """``error`` with every ``task J (column J of y)`` written as ``task 'NAME'``, ``NAME = names[J]``.

    The estimators know tasks only by their column of ``y``; a caller that knows the names (the command
    line) re-raises with ``raise rename_task_error(err, names) from err``. Indices beyond ``names`` are left
    as they are; an error that names no column is returned as it is.
    """
    def name(match: re.Match[str]) -> str:
        j = int(match.group(1))
        return f"task {names[j]!r}" if j < len(names) else match.group(0)

    message = _COLUMN_REF.sub(name, str(error))
    return error if message == str(error) else DataError(message)


def _y_required(y: object) -> None:
    if y is None:
        raise ValueError("this estimator requires y to be passed, but the target y is None")


def split_targets(y: object, tasks: object, n_samples: int) -> TaskTargets:
    """Per-task rows and targets from wide ``y`` (NaN = missing), long ``y`` + ``tasks``, or one task."""
    _y_required(y)
    columns = getattr(y, "columns", None)
    y_arr = np.asarray(y)
    if y_arr.ndim == 2:
        if tasks is not None:
            raise DataError("tasks: give either a 2-D y (one column per task) or a 1-D y with tasks, not both")
        Y = check_array(y, ensure_all_finite="allow-nan", dtype=np.float64, ensure_min_samples=0)
        if Y.shape[0] != n_samples:
            raise DataError(f"y has {Y.shape[0]} rows but X has {n_samples}")
        labels = np.asarray(list(columns)) if columns is not None else np.arange(Y.shape[1])
        rows, targets = [], []
        for j in range(Y.shape[1]):
            r = np.flatnonzero(~np.isnan(Y[:, j]))
            if len(r) == 0:
                raise DataError(f"task {labels.tolist()[j]!r} (column {j} of y) has no labelled rows")
            rows.append(r)
            targets.append(Y[r, j])
        return TaskTargets(labels, rows, targets, "wide")
    y1 = check_array(y, ensure_2d=False, dtype=np.float64, ensure_min_samples=0, input_name="y")
    if y1.ndim != 1:
        raise DataError(f"y should be a 1d array or a 2-D (n, n_tasks) array, got shape {y1.shape}")
    if y1.shape[0] != n_samples:
        raise DataError(f"y has {y1.shape[0]} rows but X has {n_samples}")
    if tasks is None:
        return TaskTargets(np.arange(1), [np.arange(n_samples)], [y1], "single")
    task_ids = np.asarray(tasks)
    if task_ids.shape != (n_samples,):
        raise DataError(f"tasks must have one task id per row of X ({n_samples}), got shape {task_ids.shape}")
    labels, inverse = np.unique(task_ids, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=len(labels)))[:-1]
    rows = [r.astype(np.intp) for r in np.split(order, bounds)]
    return TaskTargets(labels, rows, [y1[r] for r in rows], "long")


def task_index(labels: NDArray[np.generic], tasks: object, n_samples: int) -> NDArray[np.intp]:
    """Index into ``labels`` of each row's task; a :class:`DataError` naming an unknown task."""
    task_ids = np.asarray(tasks)
    if task_ids.shape != (n_samples,):
        raise DataError(f"tasks must have one task id per row of X ({n_samples}), got shape {task_ids.shape}")
    lookup = {label.item() if hasattr(label, "item") else label: i for i, label in enumerate(labels)}
    try:
        return np.fromiter((lookup[t.item() if hasattr(t, "item") else t] for t in task_ids),
                           dtype=np.intp, count=n_samples)
    except KeyError as err:
        known = ", ".join(map(repr, labels[:10]))
        raise DataError(f"tasks: task {err.args[0]!r} was not seen in fit (known tasks: {known}...)") from None


def resolve_losses(loss: object, labels: NDArray[np.generic]) -> list[Loss]:
    """One :class:`Loss` per task from a name, a sequence of names in task order, or a {task: name} map."""
    n_tasks = len(labels)
    if isinstance(loss, str | Loss):
        return [get_loss(loss)] * n_tasks
    if isinstance(loss, Mapping):
        missing = [t for t in labels.tolist() if t not in loss]
        if missing:
            raise ConfigError(f"loss: no loss given for tasks {missing[:10]}")
        return [get_loss(loss[t]) for t in labels.tolist()]
    if isinstance(loss, Sequence | np.ndarray):
        names = list(loss)
        if len(names) != n_tasks:
            raise ConfigError(f"loss: got {len(names)} losses for {n_tasks} tasks; give one name or one per task")
        return [get_loss(name) for name in names]
    raise ConfigError(f"loss: expected a loss name, a sequence of names or a mapping, got {type(loss).__name__}")


def encode_binary(data: TaskTargets, losses: Sequence[Loss]) -> tuple[list[Array], list[Array | None]]:
    """Map each classification task's two classes to 0/1; per task its two classes (None for regression).

    A task whose rows have one class ``c`` still fits: its classes are ``(0, 1)`` when ``c`` is 0 or 1
    (the usual coding), else ``(c, c)`` (it always predicts ``c``). Its logistic targets are smoothed to
    ``(n_c + 1/2) / (n + 1)`` (or one minus that), so the intercept goes towards ``c`` and stays finite.
    """
    encoded: list[Array] = []
    classes: list[Array | None] = []
    for j, (y, loss) in enumerate(zip(data.targets, losses, strict=True)):
        if not loss.is_classification:
            encoded.append(y)
            classes.append(None)
            continue
        values = np.unique(y)
        if len(values) > 2:
            raise DataError(f"{task_ref(data, j)}: loss {loss.name!r} needs two classes, "
                            f"found {len(values)} ({values[:5].tolist()})")
        if len(values) == 2:
            encoded.append((y == values[1]).astype(np.float64))
            classes.append(values)
            continue
        only = float(values[0])
        classes.append(np.array([0.0, 1.0]) if only in (0.0, 1.0) else np.array([only, only]))
        positive = only != 0.0
        if loss.name == "logistic":
            share = (len(y) + SMOOTHING) / (len(y) + 2 * SMOOTHING)
            encoded.append(np.full(len(y), share if positive else 1.0 - share))
        else:
            encoded.append(np.full(len(y), float(positive)))
    return encoded, classes
