"""What a fit works on: per task its training and validation rows, targets and objective.

Targets come in the forms of :mod:`multitask.linear` (wide with NaN, long with ``tasks``, one task).
Validation rows are an explicit ``eval_set`` or a random share of each task's labelled rows.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.utils.validation import check_array

from multitask.errors import ConfigError, DataError
from multitask.gbdt._objectives import Array, Objective, get_objective
from multitask.linear._data import TaskTargets, task_index

Matrix = Any  # a dense float64 array or a scipy CSR matrix


@dataclass(frozen=True)
class TaskRows:
    """One task's training rows of ``Problem.X`` and validation rows of ``Problem.X_val``, with labels."""

    rows: NDArray[np.intp]
    y: Array
    val_rows: NDArray[np.intp]
    y_val: Array


@dataclass(frozen=True)
class Problem:
    """Everything a booster needs: the feature tables, each task's rows and its objective."""

    X: Matrix
    X_val: Matrix
    tasks: list[TaskRows]
    objectives: list[Objective]
    n_classes: list[int]  # 1 for regression tasks
    early_stopping: bool  # validation rows exist and early_stopping_rounds is set


def resolve_objectives(objective: object, labels: NDArray[Any]) -> list[Objective]:
    """One objective per task from a name, a sequence of names in task order, or a {task: name} map."""
    n_tasks = len(labels)
    if isinstance(objective, str):
        return [get_objective(objective)] * n_tasks
    if isinstance(objective, Mapping):
        missing = [t for t in labels.tolist() if t not in objective]
        if missing:
            raise ConfigError(f"objective: no objective given for tasks {missing[:10]}")
        return [get_objective(objective[t]) for t in labels.tolist()]
    if isinstance(objective, Sequence | np.ndarray):
        names = list(objective)
        if len(names) != n_tasks:
            raise ConfigError(f"objective: got {len(names)} objectives for {n_tasks} tasks; give one or one per task")
        return [get_objective(name) for name in names]
    raise ConfigError(f"objective: expected a name, a sequence of names or a mapping, got {type(objective).__name__}")


def resolve_n_classes(n_classes: object, labels: NDArray[Any], objectives: list[Objective],
                      seen: list[Array]) -> list[int]:
    """Per task its number of classes: for a multiclass task the given count (an int for all, a sequence in
    task order or a {task: k} map; None: inferred from the labels ``seen``), 2 for binary, 1 for regression."""
    names = labels.tolist()
    if n_classes is None or isinstance(n_classes, numbers.Integral):
        given: list[object] = [n_classes] * len(names)
    elif isinstance(n_classes, Mapping):
        given = [n_classes.get(t) for t in names]
    elif isinstance(n_classes, Sequence | np.ndarray) and not isinstance(n_classes, str):
        given = list(n_classes)
        if len(given) != len(names):
            raise ConfigError(f"n_classes: got {len(given)} values for {len(names)} tasks; give one or one per task")
    else:
        raise ConfigError(f"n_classes: expected None, an integer, a sequence or a mapping, got {n_classes!r}")
    widths = []
    for obj, k, y, name in zip(objectives, given, seen, names, strict=True):
        if obj.name != "multiclass" or k is None:
            widths.append(obj.n_classes(y))
            continue
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 2:
            raise ConfigError(f"n_classes: task {name!r} needs an integer >= 2, got {k!r}")
        if len(y) and y.max() >= k:
            raise DataError(f"task {name!r}: class code {int(y.max())} is not below n_classes={k}")
        widths.append(int(k))
    return widths


def holdout(n_rows: int, fraction: float, seed: int, task: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Training and validation positions among a task's ``n_rows`` labelled rows: ``floor(fraction * n)``
    random ones held out, at least one kept for training; the draw depends on the task and its rows only."""
    n_val = min(int(fraction * n_rows), n_rows - 1)
    held = np.zeros(n_rows, dtype=bool)
    held[np.random.default_rng([seed, task]).permutation(n_rows)[:n_val]] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


def eval_targets(y_val: Any, tasks_val: Any, labels: NDArray[Any], n_rows: int
                 ) -> tuple[list[NDArray[np.intp]], list[Array]]:
    """Per task the rows of ``X_val`` labelled for it and their labels (a task may have none)."""
    n_tasks = len(labels)
    y_arr = np.asarray(y_val)
    if y_arr.ndim == 2:
        Y = check_array(y_val, ensure_all_finite="allow-nan", dtype=np.float64, ensure_min_samples=0,
                        input_name="y")
        if Y.shape != (n_rows, n_tasks):
            raise DataError(f"eval_set: y_val has shape {Y.shape}, expected ({n_rows}, {n_tasks}) "
                            "(one row per row of X_val, one column per task)")
        rows = [np.flatnonzero(~np.isnan(Y[:, j])) for j in range(n_tasks)]
        return rows, [Y[r, j] for j, r in enumerate(rows)]
    y1 = check_array(y_val, ensure_2d=False, dtype=np.float64, ensure_min_samples=0, input_name="y")
    if y1.shape != (n_rows,):
        raise DataError(f"eval_set: y_val has shape {y1.shape}, expected ({n_rows},) or ({n_rows}, {n_tasks})")
    if tasks_val is None:
        if n_tasks != 1:
            raise DataError(f"eval_set: a 1-D y_val needs tasks_val, the model has {n_tasks} tasks")
        return [np.arange(n_rows)], [y1]
    index = task_index(labels, tasks_val, n_rows)
    rows = [np.flatnonzero(index == t) for t in range(n_tasks)]
    return rows, [y1[r] for r in rows]


def as_csr(X: Matrix) -> Matrix:
    """A sparse ``X`` as a CSR matrix (LightGBM predicts on ``csr_matrix``, not ``csr_array``); dense as is."""
    return sp.csr_matrix(X) if sp.issparse(X) else X


def make_problem(X: Matrix, data: TaskTargets, objective: object, n_classes: object,
                 validation: tuple[Matrix, Any, Any] | None, validation_fraction: float | None,
                 early_stopping_rounds: int | None, seed: int) -> Problem:
    """The per-task rows of a fit: labels checked, validation rows from ``validation`` or held out."""
    objectives = resolve_objectives(objective, data.labels)
    labels = data.labels.tolist()
    targets = [obj.check(y, label) for obj, y, label in zip(objectives, data.targets, labels, strict=True)]
    tasks: list[TaskRows] = []
    if validation is not None:
        X_val, y_val, tasks_val = validation
        val_rows, val_targets = eval_targets(y_val, tasks_val, data.labels, X_val.shape[0])
        val_targets = [obj.check(y, label) for obj, y, label in zip(objectives, val_targets, labels, strict=True)]
        tasks = [TaskRows(r, y, vr, vy)
                 for r, y, vr, vy in zip(data.rows, targets, val_rows, val_targets, strict=True)]
    else:
        X_val = X
        for t, (rows, y) in enumerate(zip(data.rows, targets, strict=True)):
            train, val = holdout(len(rows), validation_fraction or 0.0, seed, t)
            tasks.append(TaskRows(rows[train], y[train], rows[val], y[val]))
    widths = resolve_n_classes(n_classes, data.labels, objectives, [np.concatenate([t.y, t.y_val]) for t in tasks])
    has_validation = any(len(task.val_rows) for task in tasks)
    return Problem(X, X_val, tasks, objectives, widths, has_validation and early_stopping_rounds is not None)
