"""Cross-validation of any linear MTL estimator's regularization, folds stratified within tasks, in parallel."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, clone
from sklearn.utils import Tags, get_tags
from sklearn.utils._available_if import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from multitask.errors import ConfigError
from multitask.linear._data import split_targets
from multitask.linear._path import warm_fits

logger = logging.getLogger(__name__)
Scorer = Callable[[Any, Any, Any, Any], float]


def task_folds(y: Any, tasks: Any, n_samples: int, n_splits: int, seed: int
               ) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """K folds of row indices: within each task (long form) or over rows (wide form, single task)."""
    rng = np.random.default_rng(seed)
    fold = np.empty(n_samples, dtype=np.intp)
    if tasks is not None and np.asarray(y).ndim == 1:
        for rows in split_targets(y, tasks, n_samples).rows:  # each task's rows spread over the folds
            fold[rng.permutation(rows)] = (rng.integers(n_splits) + np.arange(len(rows))) % n_splits
    else:
        fold[rng.permutation(n_samples)] = np.arange(n_samples) % n_splits
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(n_splits)]


def _take(a: Any, rows: NDArray[np.intp]) -> Any:
    return None if a is None else (a.iloc[rows] if hasattr(a, "iloc") else a[rows])


def _score_path(estimator: Any, path_param: str, values: Sequence[float], fixed: dict[str, Any], X: Any, y: Any,
                tasks: Any, train: NDArray[np.intp], test: NDArray[np.intp], scorer: Scorer | None
                ) -> list[tuple[dict[str, Any], float]]:
    base = clone(estimator).set_params(**fixed)
    t_train = _take(tasks, train)
    if t_train is not None:  # test only on tasks seen in training
        seen = np.isin(np.asarray(_take(tasks, test)), np.unique(np.asarray(t_train)))
        test = test[seen]
    X_test, y_test, t_test = _take(X, test), _take(y, test), _take(tasks, test)
    out = []
    for value, model in warm_fits(base, path_param, values, _take(X, train), _take(y, train), t_train):
        score = model.score(X_test, y_test, t_test) if scorer is None else scorer(model, X_test, y_test, t_test)
        out.append(({**fixed, path_param: value}, float(score)))
    return out


def _has(name: str) -> Callable[[Any], bool]:
    return lambda self: hasattr(self.estimator, name)


class MultiTaskCV(BaseEstimator):
    """Choose a linear MTL estimator's regularization by K-fold cross-validation, then refit on all data.

    Folds are stratified within tasks in long form (each task's rows are spread over the folds) and drawn
    over rows in wide form. The first parameter of the grid is followed as a warm-started path (largest
    value first); the other grid parameters and the folds run in parallel with joblib.

    Parameters
    ----------
    estimator : LinearMTL
        The formulation to tune, e.g. ``L21(loss="logistic")``.
    param_grid : dict of str to list of float, default=None
        Values to try; None uses ``estimator.default_param_grid()``.
    cv : int, default=3
        Number of folds.
    scoring : callable, default=None
        ``scoring(fitted_estimator, X, y, tasks) -> float``, larger is better; None uses
        ``estimator.score`` (mean over tasks of R^2 or accuracy).
    n_jobs : int, default=None
        Parallel jobs (joblib); None is one.
    random_state : int, default=0
        Seed of the fold assignment.

    Attributes
    ----------
    best_params_ : dict
    best_score_ : float
    best_estimator_ : estimator refitted on all the data with ``best_params_``
    cv_results_ : dict with ``params``, ``mean_test_score``, ``std_test_score``, ``split{k}_test_score``
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
        grid = dict(self.param_grid if self.param_grid is not None else self.estimator.default_param_grid())
        if not grid:
            raise ConfigError("param_grid: empty, and the estimator has no default grid")
        if not (isinstance(self.cv, int) and self.cv >= 2):
            raise ConfigError(f"cv: need an integer number of folds >= 2, got {self.cv!r}")
        unknown = set(grid) - set(self.estimator.get_params())
        if unknown:
            raise ConfigError(f"param_grid: {type(self.estimator).__name__} has no parameters {sorted(unknown)}")
        if X.shape[0] < self.cv:
            raise ConfigError(f"cv: {self.cv} folds need at least {self.cv} rows, got n_samples={X.shape[0]}")
        split_targets(y, tasks, X.shape[0])  # fail early on bad targets
        y_arr = y if hasattr(y, "iloc") else np.asarray(y)
        folds = task_folds(y_arr, tasks, X.shape[0], self.cv, self.random_state)
        path_param, *others = list(grid)
        combos = [dict(zip(others, values, strict=True)) for values in itertools.product(*(grid[k] for k in others))]
        jobs = Parallel(n_jobs=self.n_jobs)(
            delayed(_score_path)(self.estimator, path_param, list(grid[path_param]), fixed, X, y_arr,
                                 None if tasks is None else np.asarray(tasks), train, test, self.scoring)
            for fixed in combos for train, test in folds)
        scores: dict[tuple[tuple[str, Any], ...], list[float]] = {}
        for job in jobs:
            for params, score in job:
                scores.setdefault(tuple(sorted(params.items())), []).append(score)
        params_list = [dict(key) for key in scores]
        table = np.array([scores[key] for key in scores])
        mean = np.nanmean(table, axis=1) if np.isfinite(table).any() else np.full(len(table), np.nan)
        self.cv_results_: dict[str, Any] = {"params": params_list, "mean_test_score": mean,
                                            "std_test_score": table.std(axis=1)}
        for k in range(table.shape[1]):
            self.cv_results_[f"split{k}_test_score"] = table[:, k]
        self.best_index_ = int(np.nanargmax(mean))
        self.best_params_ = params_list[self.best_index_]
        self.best_score_ = float(mean[self.best_index_])
        logger.info("MultiTaskCV: best %s (score %.4g)", self.best_params_, self.best_score_)
        self.best_estimator_ = clone(self.estimator).set_params(**self.best_params_).fit(X, y_arr, tasks)
        return self

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

    The grid defaults to ``estimator.default_param_grid()``. The returned estimator is a fitted clone of
    ``estimator`` (same class and parameters but the chosen ones); the search is logged at INFO level.
    """
    search = MultiTaskCV(estimator, param_grid, cv=cv, n_jobs=n_jobs, random_state=random_state)
    return search.fit(X, y, tasks).best_estimator_
