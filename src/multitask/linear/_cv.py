"""Cross-validation of any linear MTL estimator's regularization: folds stratified by task, in parallel.

**Folds.** Every task's labelled rows are spread evenly over the folds (wide and long form alike). A task
with one labelled row keeps it in the training part of every fold; any task keeps at least one training row
in every fold, so every fold's model fits every task. A task is scored only in the folds that hold out some
of its rows.

**Score.** Each (fold, task) cell is scored by the task's *skill* on its held-out rows,
``1 - mean loss(model) / mean loss(constant)``, with the task's own loss (squared error, logistic or squared
hinge) and ``constant`` the best constant prediction fitted on that fold's training rows of the task (the
intercept-only model). 0 is no better than a constant, 1 is perfect, whatever the task's kind and scale, so
regression and binary tasks average fairly; for squared loss it is an out-of-sample R². A cell where the
constant's loss is 0 has no skill and is dropped. A grid point's score is the mean over tasks of the task's
mean over its scored folds; every grid point is scored on the same cells (a cell undefined for any grid
point, e.g. by a custom ``scoring``, is dropped for all). A grid point whose fit fails numerically
(non-finite coefficients or predictions, a failed SVD) is recorded as failed and scores ``-inf``.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import Tags, get_tags
from sklearn.utils._available_if import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from multitask.errors import ConfigError, DataError
from multitask.linear._data import TaskTargets, encode_binary, resolve_losses, split_targets
from multitask.linear._losses import Loss
from multitask.linear._solver import DivergedError

logger = logging.getLogger(__name__)
Array = NDArray[np.float64]
Scorer = Callable[[Any, Any, Any, Any], float]
#: fold of a row held in the training part of every fold
TRAIN_ALWAYS = -1


def _fill(counts: NDArray[np.intp], m: int, order: NDArray[np.intp]) -> NDArray[np.intp]:
    """How many of ``m`` new rows each fold gets so that ``counts`` end as even as possible (water filling)."""
    lo, hi = int(counts.min()), int(counts.max()) + m
    while lo < hi:  # the highest level the m rows can fill every fold up to
        mid = (lo + hi + 1) // 2
        if int(np.maximum(mid - counts, 0).sum()) <= m:
            lo = mid
        else:
            hi = mid - 1
    add = np.maximum(lo - counts, 0)
    at_level = [k for k in order if counts[k] + add[k] == lo]
    add[at_level[: m - int(add.sum())]] += 1
    return add


def assign_folds(rows: Sequence[NDArray[np.intp]], n_samples: int, n_splits: int, seed: int) -> NDArray[np.intp]:
    """Fold of each row of ``X`` (``TRAIN_ALWAYS``: in every fold's training part), stratified by task.

    Tasks are placed from the smallest: each spreads its rows not yet placed so that its held-out counts
    per fold differ by at most one where it can. A one-row task's row is trained on in every fold, and a
    task whose rows would all be held out in one fold keeps one of them in training.
    """
    rng = np.random.default_rng(seed)
    fold = np.full(n_samples, -2, dtype=np.intp)  # -2: not placed yet
    for t in sorted(range(len(rows)), key=lambda t: (len(rows[t]), t)):
        r = rows[t]
        if len(r) == 1:
            fold[r] = TRAIN_ALWAYS
            continue
        placed = fold[r]
        counts = np.bincount(placed[placed >= 0], minlength=n_splits)
        free = rng.permutation(r[placed == -2])
        fold[free] = np.repeat(np.arange(n_splits), _fill(counts, len(free), rng.permutation(n_splits)))
    for r in rows:  # rows shared with smaller tasks may leave a task nothing to train on in one fold
        held = fold[r]
        for k in range(n_splits):
            if len(r) > 1 and np.all(held == k):
                fold[r[rng.integers(len(r))]] = TRAIN_ALWAYS
    unlabelled = np.flatnonzero(fold == -2)
    fold[rng.permutation(unlabelled)] = np.arange(len(unlabelled)) % n_splits
    return fold


def task_folds(y: Any, tasks: Any, n_samples: int, n_splits: int, seed: int
               ) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """K (train, test) pairs of row indices, stratified by task (see :func:`assign_folds`)."""
    fold = assign_folds(split_targets(y, tasks, n_samples).rows, n_samples, n_splits, seed)
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(n_splits)]


@dataclass(frozen=True)
class _Fold:
    """One fold: training rows; per task its held-out rows, their targets, and its best constant's score."""

    train: NDArray[np.intp]
    test: NDArray[np.intp]
    test_rows: list[NDArray[np.intp]]
    test_targets: list[Array]
    constants: list[float]


def _folds(data: TaskTargets, losses: list[Loss], fold: NDArray[np.intp], n_splits: int) -> list[_Fold]:
    out = []
    for k in range(n_splits):
        held = [fold[r] == k for r in data.rows]
        train = TaskTargets(data.labels, [r[~h] for r, h in zip(data.rows, held, strict=True)],
                            [y[~h] for y, h in zip(data.targets, held, strict=True)], data.form)
        encoded, _ = encode_binary(train, losses)
        out.append(_Fold(np.flatnonzero(fold != k), np.flatnonzero(fold == k),
                         [r[h] for r, h in zip(data.rows, held, strict=True)],
                         [y[h] for y, h in zip(data.targets, held, strict=True)],
                         [loss.best_constant(y) for loss, y in zip(losses, encoded, strict=True)]))
    return out


def _take(a: Any, rows: NDArray[np.intp]) -> Any:
    return None if a is None else (a.iloc[rows] if hasattr(a, "iloc") else a[rows])


def _task_scores(model: Any, X: Any, rows: list[NDArray[np.intp]], long: bool) -> list[Array]:
    """Each task's linear score on its rows (long form: row by row; wide: one product on the union)."""
    if not long:
        union = np.unique(np.concatenate(rows)) if rows else np.empty(0, dtype=np.intp)
        Z = np.asarray(X[union] @ model.coef_.T) + model.intercept_
        return [Z[np.searchsorted(union, r), t] for t, r in enumerate(rows)]
    all_rows = np.concatenate(rows)
    owner = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
    Xr, Wr = X[all_rows], model.coef_[owner]
    z = np.asarray(Xr.multiply(Wr).sum(axis=1)).ravel() if sp.issparse(Xr) else np.einsum("ij,ij->i", Xr, Wr)
    return np.split(z + model.intercept_[owner], np.cumsum([len(r) for r in rows])[:-1])


def _skill(model: Any, X: Any, fold: _Fold, losses: list[Loss], long: bool) -> Array:
    """Per task ``1 - loss(model) / loss(constant)`` on the fold's held-out rows (NaN: nothing to score)."""
    scores = _task_scores(model, X, fold.test_rows, long)
    out = np.full(len(losses), np.nan)
    for t, (loss, z, y, c) in enumerate(zip(losses, scores, fold.test_targets, fold.constants, strict=True)):
        if len(y) == 0:
            continue
        classes = model.task_classes_[t]
        y = (y == classes[1]).astype(np.float64) if classes is not None else y
        reference = float(np.mean(loss.values(np.full(len(y), c), y)))
        if reference > 0 and np.isfinite(reference):
            out[t] = 1.0 - float(np.mean(loss.values(z, y))) / reference
            if not np.isfinite(out[t]):
                raise DivergedError("the prediction")
    return out


@dataclass(frozen=True)
class _Point:
    """One grid point on one fold: its cells' scores, or why it failed; whether the solver converged."""

    params: dict[str, Any]
    cells: Array
    error: str | None
    converged: bool


def _score_path(estimator: Any, path_param: str, values: Sequence[float], fixed: dict[str, Any], X: Any, y: Any,
                tasks: Any, fold: _Fold, losses: list[Loss], long: bool, scorer: Scorer | None) -> list[_Point]:
    """Fit ``values`` from the largest with warm starts on one fold; a failed fit restarts the path cold."""
    base = clone(estimator).set_params(**fixed, warm_start=True)
    X_train, y_train, t_train = _take(X, fold.train), _take(y, fold.train), _take(tasks, fold.train)
    n_cells = 1 if scorer is not None else len(losses)
    model, out = clone(base), []
    for value in sorted(values, reverse=True):
        params = {**fixed, path_param: value}
        model.set_params(**{path_param: value})
        try:
            with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
                warnings.simplefilter("always", ConvergenceWarning)
                model.fit(X_train, y_train, t_train)
                if scorer is not None:
                    cells = np.array([scorer(model, _take(X, fold.test), _take(y, fold.test), _take(tasks, fold.test))],
                                     dtype=np.float64)
                else:
                    cells = _skill(model, X, fold, losses, long)
        except (DivergedError, np.linalg.LinAlgError, FloatingPointError) as err:
            out.append(_Point(params, np.full(n_cells, np.nan), str(err), False))
            model = clone(base)
            continue
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        for w in caught:
            if not issubclass(w.category, ConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        out.append(_Point(params, cells, None, converged))
    return out


def _has(name: str) -> Callable[[Any], bool]:
    return lambda self: hasattr(self.estimator, name)


class MultiTaskCV(BaseEstimator):
    """Choose a linear MTL estimator's regularization by K-fold cross-validation, then refit on all data.

    Folds are stratified by task (a task too small to be held out stays in training); each (fold, task) cell
    is scored by the task's skill over the best constant (see the module's docstring), and a grid point's
    score is the mean over tasks of its cells. The first parameter of the grid is followed as a warm-started
    path (largest value first); the other grid parameters and the folds run in parallel with joblib.

    Parameters
    ----------
    estimator : LinearMTL
        The formulation to tune, e.g. ``L21(loss="logistic")``.
    param_grid : dict of str to list of float, default=None
        Values to try; None uses ``estimator.default_param_grid(X, y, tasks)`` (its grid in units of
        :meth:`~multitask.linear.LinearMTL.regularization_scale`, spanning its search space).
    cv : int, default=3
        Number of folds.
    scoring : callable, default=None
        ``scoring(fitted_estimator, X, y, tasks) -> float`` on a fold's held-out rows, larger is better (one
        cell per fold); None scores each task's skill over the best constant.
    n_jobs : int, default=None
        Parallel jobs (joblib); None is one.
    random_state : int, default=0
        Seed of the fold assignment.

    Attributes
    ----------
    best_params_ : dict
    best_score_ : float
    best_estimator_ : estimator refitted on all the data with ``best_params_``
    cv_results_ : dict
        ``params``, ``mean_test_score`` (``-inf`` where failed), ``std_test_score`` (over folds),
        ``split{k}_test_score`` (mean over the fold's scored tasks; NaN where it has none), ``failed``,
        ``error`` (why a grid point failed, else None) and ``n_not_converged`` (folds where the solver hit
        ``max_iter``).
    scored_cells_ : ndarray of bool, shape (cv, n_tasks)
        The (fold, task) cells every grid point is scored on (one column with ``scoring``).
    """

    def __init__(self, estimator: Any, param_grid: Mapping[str, Sequence[float]] | None = None, *,
                 cv: int = 3, scoring: Scorer | None = None, n_jobs: int | None = None,
                 random_state: int = 0) -> None:
        self.estimator = estimator
        self.param_grid = param_grid
        self.cv = cv
        self.scoring = scoring
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X: Any, y: Any, tasks: Any = None) -> MultiTaskCV:
        """Cross-validate every grid point, then refit the best on all of ``X, y, tasks``."""
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=True)
        if not (isinstance(self.cv, int) and self.cv >= 2):
            raise ConfigError(f"cv: need an integer number of folds >= 2, got {self.cv!r}")
        if X.shape[0] < self.cv:
            raise ConfigError(f"cv: {self.cv} folds need at least {self.cv} rows, got n_samples={X.shape[0]}")
        y_arr = y if y is None or hasattr(y, "iloc") else np.asarray(y)
        t_arr = None if tasks is None else np.asarray(tasks)
        data = split_targets(y_arr, t_arr, X.shape[0])  # fail early on bad targets
        losses = resolve_losses(self.estimator.loss, data.labels)
        if self.param_grid is not None:
            grid = {name: list(dict.fromkeys(values)) for name, values in self.param_grid.items()}
        else:
            grid = self.estimator.default_param_grid(X, y_arr, t_arr)
        if not grid:
            raise ConfigError("param_grid: empty, and the estimator has no default grid")
        unknown = set(grid) - set(self.estimator.get_params())
        if unknown:
            raise ConfigError(f"param_grid: {type(self.estimator).__name__} has no parameters {sorted(unknown)}")
        folds = _folds(data, losses, assign_folds(data.rows, X.shape[0], self.cv, self.random_state), self.cv)
        path_param, *others = list(grid)
        combos = [dict(zip(others, values, strict=True)) for values in itertools.product(*(grid[k] for k in others))]
        jobs = Parallel(n_jobs=self.n_jobs)(
            delayed(_score_path)(self.estimator, path_param, list(grid[path_param]), fixed, X, y_arr, t_arr, fold,
                                 losses, data.form == "long", self.scoring)
            for fixed in combos for fold in folds)
        points: dict[tuple[tuple[str, Any], ...], list[_Point]] = {}
        for job in jobs:  # jobs run combo by combo, each over the folds in order
            for point in job:
                points.setdefault(tuple(sorted(point.params.items())), []).append(point)
        self._summarize([dict(key) for key in points], list(points.values()))
        logger.info("MultiTaskCV: best %s (score %.4g)", self.best_params_, self.best_score_)
        self.best_estimator_ = clone(self.estimator).set_params(**self.best_params_).fit(X, y_arr, t_arr)
        return self

    def _summarize(self, params_list: list[dict[str, Any]], results: list[list[_Point]]) -> None:
        """``cv_results_`` and the best grid point from every grid point's per-fold cells."""
        table = np.array([[point.cells for point in folds] for folds in results])  # (grid, fold, cell)
        errors = [next((p.error for p in folds if p.error is not None), None) for folds in results]
        failed = np.array([e is not None for e in errors])
        if failed.all():
            raise DataError(f"cross-validation: every grid point failed; the first because {errors[0]}")
        scored = np.isfinite(table[~failed]).all(axis=0)  # (fold, cell): defined for every grid point
        if not scored.any():
            raise DataError("cross-validation: no (fold, task) cell can be scored: no task has held-out rows "
                            "on which a constant prediction has a loss (tasks need 2 labelled rows or more)")
        cells = np.where(scored, table, 0.0)
        per_cell = scored.sum(axis=0)  # folds scored per task
        used = per_cell > 0
        mean = (cells.sum(axis=1)[:, used] / per_cell[used]).mean(axis=1)
        mean[failed] = -np.inf
        in_fold = scored.sum(axis=1)  # tasks scored per fold
        with np.errstate(invalid="ignore", divide="ignore"):
            splits = np.where(in_fold > 0, cells.sum(axis=2) / in_fold, np.nan)  # (grid, fold)
        splits[failed] = np.nan
        std = np.zeros(len(params_list))
        std[~failed] = splits[~failed][:, in_fold > 0].std(axis=1)
        self.cv_results_: dict[str, Any] = {
            "params": params_list, "mean_test_score": mean, "std_test_score": std, "failed": failed,
            "error": errors, "n_not_converged": np.array([sum(not p.converged for p in folds) for folds in results]),
        }
        for k in range(splits.shape[1]):
            self.cv_results_[f"split{k}_test_score"] = splits[:, k]
        self.scored_cells_ = scored
        self.best_index_ = int(np.argmax(mean))
        self.best_params_ = params_list[self.best_index_]
        self.best_score_ = float(mean[self.best_index_])
        for params, error in zip(params_list, errors, strict=True):
            if error is not None:
                logger.warning("MultiTaskCV: %s failed: %s", params, error)
        not_converged = int(self.cv_results_["n_not_converged"][~failed].sum())
        if not_converged:
            logger.info("MultiTaskCV: the solver hit max_iter in %d of %d fits", not_converged, failed.size * table.shape[1])

    def _input(self, X: Any) -> Any:
        check_is_fitted(self)
        return validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=False)

    def predict(self, X: Any, tasks: Any = None) -> Any:
        """``best_estimator_.predict``."""
        X = self._input(X)
        return self.best_estimator_.predict(X, tasks)

    @available_if(_has("decision_function"))
    def decision_function(self, X: Any, tasks: Any = None) -> Any:
        """``best_estimator_.decision_function``."""
        X = self._input(X)
        return self.best_estimator_.decision_function(X, tasks)

    @available_if(_has("predict_proba"))
    def predict_proba(self, X: Any, tasks: Any = None) -> Any:
        """``best_estimator_.predict_proba``."""
        X = self._input(X)
        return self.best_estimator_.predict_proba(X, tasks)

    def score(self, X: Any, y: Any, tasks: Any = None) -> float:
        """``best_estimator_.score``."""
        X = self._input(X)
        return float(self.best_estimator_.score(X, y, tasks))

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.estimator_type = inner.estimator_type
        tags.regressor_tags = inner.regressor_tags
        tags.classifier_tags = inner.classifier_tags
        tags.target_tags = inner.target_tags
        tags.input_tags.sparse = inner.input_tags.sparse
        return tags


def cross_validate_params(estimator: Any, X: Any, y: Any, tasks: Any = None, *, cv: int = 3,
                          param_grid: Mapping[str, Sequence[float]] | None = None, n_jobs: int | None = None,
                          random_state: int = 0) -> Any:
    """``estimator`` refitted on all data with the regularization chosen by :class:`MultiTaskCV`.

    The grid defaults to ``estimator.default_param_grid(X, y, tasks)``. The returned estimator is a fitted
    clone of ``estimator`` (same class and parameters but the chosen ones); the search is logged at INFO level.
    """
    search = MultiTaskCV(estimator, param_grid, cv=cv, n_jobs=n_jobs, random_state=random_state)
    return search.fit(X, y, tasks).best_estimator_
