"""Cross-validation: folds stratified within tasks, parallel equals serial, the chosen model is refitted."""

from __future__ import annotations

import numpy as np
import pytest

from multitask.errors import ConfigError
from multitask.linear import L21, Dirty, MultiTaskCV, TraceNorm, cross_validate_params
from multitask.linear._cv import task_folds
from tests.linear._helpers import mixed, regression


def long_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [30, 12, 45, 7]
    tasks = np.repeat(np.arange(len(sizes)), sizes)
    X = rng.normal(size=(len(tasks), 5))
    W = rng.normal(size=5) + 0.2 * rng.normal(size=(len(sizes), 5))
    y = np.einsum("ij,ij->i", X, W[tasks]) + 0.3 * rng.normal(size=len(tasks))
    return X, y, tasks


def test_folds_are_stratified_within_tasks() -> None:
    _, y, tasks = long_data()
    folds = task_folds(y, tasks, len(y), 3, seed=0)
    test_rows = np.concatenate([test for _, test in folds])
    np.testing.assert_array_equal(np.sort(test_rows), np.arange(len(y)))  # a partition
    for train, test in folds:
        assert len(np.intersect1d(train, test)) == 0
        for t, size in enumerate([30, 12, 45, 7]):  # every task in every fold, sizes within one row
            assert abs(np.sum(tasks[test] == t) - size / 3) < 1


def test_cv_chooses_and_refits() -> None:
    X, y, tasks = long_data()
    search = MultiTaskCV(L21(), {"alpha": [1e-3, 1e-2, 10.0]}, cv=3).fit(X, y, tasks)
    assert search.best_params_["alpha"] < 10.0  # alpha = 10 zeroes every weight
    assert len(search.cv_results_["params"]) == 3 and search.cv_results_["split2_test_score"].shape == (3,)
    refit = L21(alpha=search.best_params_["alpha"]).fit(X, y, tasks)
    np.testing.assert_allclose(search.best_estimator_.coef_, refit.coef_)
    np.testing.assert_allclose(search.predict(X, tasks), refit.predict(X, tasks))


def test_parallel_equals_serial_and_two_parameters() -> None:
    X, Y, losses = mixed()
    grid = {"alpha_sparse": [1e-3, 1e-1], "alpha_group": [1e-3, 1e-1]}
    serial = MultiTaskCV(Dirty(loss=losses), grid, cv=3).fit(X, Y)
    parallel = MultiTaskCV(Dirty(loss=losses), grid, cv=3, n_jobs=2).fit(X, Y)
    assert len(serial.cv_results_["params"]) == 4
    assert serial.best_params_ == parallel.best_params_
    np.testing.assert_allclose(serial.cv_results_["mean_test_score"], parallel.cv_results_["mean_test_score"])
    assert serial.predict_proba(X).shape == Y.shape


def test_default_grid_and_the_cli_helper() -> None:
    X, Y, _ = regression()
    fitted = cross_validate_params(TraceNorm(), X, Y, cv=3)
    assert isinstance(fitted, TraceNorm) and fitted.alpha in TraceNorm.param_grid["alpha"]
    assert fitted.coef_.shape == (3, X.shape[1])


def test_cv_errors() -> None:
    X, Y, _ = regression()
    with pytest.raises(ConfigError, match="param_grid: L21 has no parameters"):
        MultiTaskCV(L21(), {"beta": [1.0]}).fit(X, Y)
    with pytest.raises(ConfigError, match="cv: need an integer"):
        MultiTaskCV(L21(), cv=1).fit(X, Y)
