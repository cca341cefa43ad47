"""Boosting one LightGBM model from given starting scores, early-stopped on validation rows.

Every task's model is additive: a constant raw score plus the raw outputs of its boosters (a
:class:`TaskModel`). A booster shared by several tasks sees the task's index as one more, categorical,
feature (the last column of :func:`design`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from multitask.gbdt._data import Matrix
from multitask.gbdt._objectives import Array, Objective


@dataclass(frozen=True)
class TaskModel:
    """A task's raw score: ``constant + Σ boosters[i](x)`` over ``stages`` ``(i, code)``; booster ``i`` sees
    ``[x, code]`` when ``code`` is the task's index in a shared booster, ``x`` alone when ``code`` is None."""

    constant: Array
    stages: tuple[tuple[int, int | None], ...] = ()


@dataclass(frozen=True)
class Part:
    """Rows to boost on or to validate with: features, labels, and the raw scores they start from."""

    X: Matrix
    y: Array
    init: Array  # (n, width)


def design(X: Matrix, rows: NDArray[np.intp] | None, code: int | None) -> Matrix:
    """``X[rows]``, with a last column holding ``code`` (the task id) unless ``code`` is None."""
    part = X if rows is None else X[rows]
    if code is None:
        return part
    column = np.full((part.shape[0], 1), float(code))
    if sp.issparse(part):
        return sp.hstack([part, sp.csr_matrix(column)], format="csr")
    return np.hstack([part, column])


def part(X: Matrix, rows: NDArray[np.intp], code: int | None, y: Array, init: Array) -> Part:
    """The rows ``rows`` of ``X`` (with the task column ``code``), labels ``y``, starting from ``init``
    (one raw score ``(width,)`` for every row, or ``(n, width)``)."""
    start = np.tile(init, (len(rows), 1)) if init.ndim == 1 else init
    return Part(design(X, rows, code), y, start)


def stack(parts: Sequence[Part]) -> Part:
    """The rows of several parts one after the other."""
    tables = [p.X for p in parts]
    X = sp.vstack(tables, format="csr") if sp.issparse(tables[0]) else np.vstack(tables)
    return Part(X, np.concatenate([p.y for p in parts]), np.vstack([p.init for p in parts]))


def raw_score(boosters: Sequence[lgb.Booster], model: TaskModel, X: Matrix, num_threads: int) -> Array:
    """A task's raw scores ``(n, width)`` on the rows of ``X``."""
    raw = np.tile(model.constant, (X.shape[0], 1))
    for index, code in model.stages:
        out = boosters[index].predict(design(X, None, code), raw_score=True, num_threads=num_threads)
        raw += np.asarray(out).reshape(X.shape[0], -1)
    return raw


def _dataset(part: Part, params: dict[str, Any], categorical: bool, reference: lgb.Dataset | None = None
             ) -> lgb.Dataset:
    init = part.init[:, 0] if part.init.shape[1] == 1 else part.init
    return lgb.Dataset(part.X, part.y, init_score=init, params=params, reference=reference, free_raw_data=True,
                       categorical_feature=[part.X.shape[1] - 1] if categorical else "auto")


def boost(params: dict[str, Any], objective: Objective, train: Part, valid: Part | None, rounds: int,
          stopping_rounds: int | None, *, categorical: bool) -> lgb.Booster | None:
    """Up to ``rounds`` trees from ``train.init``; with ``valid`` and ``stopping_rounds``, the trees up to the
    best validation loss, none if no round beats the starting scores. The booster holds only the kept trees.

    ``categorical``: the last column of ``X`` is a task id.
    """
    train_set = _dataset(train, params, categorical)
    if valid is None or stopping_rounds is None or len(valid.y) == 0:
        booster = lgb.train(params, train_set, num_boost_round=rounds)
        kept = booster.current_iteration()
    else:
        valid_set = _dataset(valid, params, categorical, reference=train_set)
        record: dict[str, Any] = {}
        booster = lgb.train(params, train_set, num_boost_round=rounds, valid_sets=[valid_set],
                            callbacks=[lgb.early_stopping(stopping_rounds, first_metric_only=True, verbose=False),
                                       lgb.record_evaluation(record)])
        curve = np.asarray(record["valid_0"][objective.metric])
        kept = int(np.argmin(curve)) + 1
        start = objective.loss(valid.y, valid.init)
        if not curve[kept - 1] < start - 1e-12 * max(1.0, abs(start)):
            return None
    if kept == 0:
        return None
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=kept))
