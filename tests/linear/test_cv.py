"""Cross-validation: folds stratified by task, the score rule, NaN and failure policies, refitting."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit

from multitask.errors import ConfigError, DataError
from multitask.linear import (
    L21,
    Dirty,
    IndependentLinear,
    Lasso,
    MeanRegularized,
    MultiTaskCV,
    TraceNorm,
    cross_validate_params,
)
from multitask.linear._cv import TRAIN_ALWAYS, assign_folds, task_folds
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
    grid = TraceNorm().default_param_grid(X, Y)["alpha"]
    assert isinstance(fitted, TraceNorm) and np.isclose(grid, fitted.alpha, rtol=1e-12).sum() == 1
    assert fitted.coef_.shape == (3, X.shape[1])


def test_cv_errors() -> None:
    X, Y, _ = regression()
    with pytest.raises(ConfigError, match="param_grid: L21 has no parameters"):
        MultiTaskCV(L21(), {"beta": [1.0]}).fit(X, Y)
    with pytest.raises(ConfigError, match="cv: need an integer"):
        MultiTaskCV(L21(), cv=1).fit(X, Y)


# ---- folds with small tasks -----------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n_splits=st.integers(2, 5), long=st.booleans())
def test_every_task_keeps_a_training_row_in_every_fold(seed: int, n_splits: int, long: bool) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 40))
    if long:  # each row one task, sizes from 1 up
        sizes = rng.integers(1, 8, size=int(rng.integers(1, 6)))
        rows = list(np.split(rng.permutation(int(sizes.sum())), np.cumsum(sizes)[:-1]))
        n = int(sizes.sum())
    else:  # wide: tasks labelled on random, overlapping rows, some on 1, 2 or 3 rows only
        rows = [np.sort(rng.choice(n, size=int(rng.integers(1, n + 1)) if rng.random() < 0.5 else int(rng.integers(1, 4)),
                                   replace=False)) for _ in range(int(rng.integers(1, 6)))]
    fold = assign_folds(rows, n, n_splits, seed)
    assert set(np.unique(fold)) <= {TRAIN_ALWAYS, *range(n_splits)}
    for r in rows:
        held = [int(np.sum(fold[r] == k)) for k in range(n_splits)]
        assert all(h < len(r) for h in held)  # at least one training row in every fold
        if len(r) == 1:
            assert fold[r[0]] == TRAIN_ALWAYS
        if long:  # nothing shared: rows spread evenly, a 2- or 3-row task held out in as many folds as it can
            assert max(held) - min(held) <= 1 or len(r) == 1
            assert sum(h > 0 for h in held) == (min(len(r), n_splits) if len(r) > 1 else 0)


def test_a_one_row_task_is_trained_on_and_never_scored() -> None:
    X, y, tasks = long_data()
    X, y, tasks = np.vstack([X, np.ones((1, 5))]), np.append(y, 3.0), np.append(tasks, 9)
    search = MultiTaskCV(L21(), {"alpha": [1e-2, 1e-1]}, cv=3).fit(X, y, tasks)
    np.testing.assert_array_equal(search.scored_cells_[:, -1], False)
    assert search.scored_cells_[:, :-1].all()
    assert search.best_estimator_.tasks_[-1] == 9


# ---- the score -----------------------------------------------------------------------------------------
def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def test_score_is_the_mean_skill_over_the_best_constant() -> None:
    X, Y, losses = mixed(n=90)
    search = MultiTaskCV(L21(loss=losses), {"alpha": [0.05]}, cv=3, random_state=4).fit(X, Y)
    skills: list[list[float]] = [[], [], []]
    for train, test in task_folds(Y, None, len(X), 3, seed=4):
        model = L21(alpha=0.05, loss=losses).fit(X[train], Y[train])
        for t in range(3):
            y_tr, keep = Y[train, t], ~np.isnan(Y[test, t])
            y_tr, y_te, x_te = y_tr[~np.isnan(y_tr)], Y[test, t][keep], X[test][keep]
            z = x_te @ model.coef_[t] + model.intercept_[t]
            if losses[t] == "squared":  # out-of-sample R^2 against the training mean
                skills[t].append(1 - np.mean((z - y_te) ** 2) / np.mean((y_tr.mean() - y_te) ** 2))
            else:  # log loss against the training rate
                constant = np.full(len(y_te), y_tr.mean())
                skills[t].append(1 - log_loss(expit(z), y_te) / log_loss(constant, y_te))
    assert search.best_score_ == pytest.approx(np.mean([np.mean(s) for s in skills]), rel=1e-10)
    assert 0.5 < search.best_score_ < 1


def test_every_grid_point_is_scored_on_the_same_cells() -> None:
    X, Y, _ = regression()
    _, first_test = task_folds(Y, None, len(X), 3, seed=0)[0]

    def scoring(model: Lasso, X_test: np.ndarray, Y_test: np.ndarray, tasks: None) -> float:
        if model.alpha == 0.5 and np.array_equal(X_test, X[first_test]):
            return float("nan")  # undefined for one grid point in the first fold only
        return model.score(X_test, Y_test)

    search = MultiTaskCV(Lasso(), {"alpha": [1e-3, 0.5, 5.0]}, scoring=scoring).fit(X, Y)
    np.testing.assert_array_equal(search.scored_cells_, [[False], [True], [True]])
    results = search.cv_results_
    assert np.isnan(results["split0_test_score"]).all()  # dropped for every grid point, not only alpha = 0.5
    np.testing.assert_allclose(results["mean_test_score"],
                               (results["split1_test_score"] + results["split2_test_score"]) / 2)


def test_a_failed_grid_point_is_recorded_and_never_chosen() -> None:
    X, Y, _ = regression(n_tasks=4)
    search = MultiTaskCV(MeanRegularized(), {"rho": [1e-2, 1.0, np.inf]}).fit(X, Y)
    results = search.cv_results_
    rho = [p["rho"] for p in results["params"]]
    failed = results["failed"][rho.index(np.inf)]
    assert failed and results["mean_test_score"][rho.index(np.inf)] == -np.inf
    assert "diverged" in results["error"][rho.index(np.inf)]
    assert results["failed"].sum() == 1 and np.isfinite(search.best_score_) and search.best_params_["rho"] < np.inf
    with pytest.raises(DataError, match="cross-validation: every grid point failed; the first because the solver"):
        MultiTaskCV(MeanRegularized(), {"rho": [np.inf]}).fit(X, Y)


def test_features_on_an_extreme_scale_fail_with_a_clear_error() -> None:
    X, Y, _ = regression()
    X[5, 1] = 1e200
    with pytest.raises(DataError, match=r"every grid point failed.*standardize the features of X"):
        MultiTaskCV(IndependentLinear(), {"alpha": [1e-3, 1e300]}).fit(X, Y)
    with pytest.raises(DataError, match=r"^the solver diverged"):
        IndependentLinear().fit(X, Y)


def test_nothing_to_score_is_a_data_error() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(6, 2)), rng.normal(size=6)
    with pytest.raises(DataError, match=r"no \(fold, task\) cell can be scored"):
        MultiTaskCV(L21(), {"alpha": [1e-2, 1e-1]}).fit(X, y, tasks=np.arange(6))  # six one-row tasks
