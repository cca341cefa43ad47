"""Shared data makers and the shared list of estimators for the GBDT tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from multitask.gbdt import ESTIMATORS, GBDTMTL

#: every estimator, by class name
NAMES: dict[str, type[GBDTMTL]] = {cls.__name__: cls for cls in ESTIMATORS}
OBJECTIVES = ["regression", "binary", "multiclass"]


def make(name: str, **params: Any) -> GBDTMTL:
    """Estimator ``name`` sized for tests: few rounds, small leaves, one thread."""
    params.setdefault("n_estimators", 30)
    params.setdefault("learning_rate", 0.2)
    params.setdefault("min_child_samples", 5)
    params.setdefault("num_leaves", 7)
    params.setdefault("early_stopping_rounds", 5)
    params.setdefault("n_jobs", 1)
    if name == "GBDTMultiTask":
        params.setdefault("task_rounds", 10)
        params.setdefault("min_task_rows", 5)
    return NAMES[name](**params)


def mixed(n: int = 150, d: int = 4, seed: int = 0, missing: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Wide data with a regression, a binary (0/1) and a 3-class task (codes 0..2), some labels missing (NaN)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    score = X[:, 0] + 0.5 * X[:, 1] ** 2
    Y = np.column_stack([score + 0.1 * rng.normal(size=n),
                         (score + 0.3 * rng.normal(size=n) > 0.5).astype(float),
                         np.digitize(X[:, 1] + 0.2 * rng.normal(size=n), [-0.5, 0.5]).astype(float)])
    Y[rng.random(Y.shape) < missing] = np.nan
    return X, Y


def to_long(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The long form of wide data: each task's labelled rows in turn, ``tasks`` the column index."""
    rows = [np.flatnonzero(~np.isnan(Y[:, t])) for t in range(Y.shape[1])]
    return (np.vstack([X[r] for r in rows]), np.concatenate([Y[r, t] for t, r in enumerate(rows)]),
            np.concatenate([np.full(len(r), t) for t, r in enumerate(rows)]))


def shared_plus_task(n_tasks: int, n_per_task: int, seed: int, d: int = 5
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Long regression data: ``y = f(x) + a_t + b_t x_2 + noise``, one shared ``f`` plus per-task offsets/slopes."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n_tasks), rng.normal(size=n_tasks)
    tasks = np.repeat(np.arange(n_tasks), n_per_task)
    X = rng.normal(size=(len(tasks), d))
    f = np.sin(2 * X[:, 0]) + X[:, 1] ** 2 + 0.5 * X[:, 3]
    return X, f + a[tasks] + b[tasks] * X[:, 2] + 0.3 * rng.normal(size=len(tasks)), tasks
