"""The fitted solutions against scikit-learn on the problems they share, and solver behaviour."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso as SkLasso
from sklearn.linear_model import LogisticRegression, MultiTaskLasso, Ridge

from multitask.linear import L21, IndependentLinear, Lasso, TraceNorm
from tests.linear._helpers import ESTIMATORS, make, mixed, regression


def test_l21_matches_multitask_lasso() -> None:
    # scikit-learn: (1 / (2n)) ||Y - XW^T - b||_F^2 + alpha ||W||_21; ours: sum_t (1 / (2n)) ||y_t - X w_t - b_t||^2
    # + alpha ||W||_21, the same objective when every task has all n rows
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 12))
    W = rng.normal(size=(4, 12)) * (rng.random(12) < 0.4)
    Y = X @ W.T + 2.0 + 0.5 * rng.normal(size=(150, 4))
    ref = MultiTaskLasso(alpha=0.1, tol=1e-12, max_iter=100000).fit(X, Y)
    ours = L21(alpha=0.1, tol=1e-10, max_iter=50000).fit(X, Y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-7)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-7)
    assert 0 < np.count_nonzero(np.abs(ours.coef_).sum(axis=0)) < 12  # some features dropped for all tasks


def test_lasso_matches_sklearn_per_task() -> None:
    X, Y, _ = regression(n=100, d=8)
    ours = Lasso(alpha=0.05, tol=1e-10, max_iter=50000).fit(X, Y)
    for t in range(Y.shape[1]):
        ref = SkLasso(alpha=0.05, tol=1e-12, max_iter=100000).fit(X, Y[:, t])
        np.testing.assert_allclose(ours.coef_[t], ref.coef_, atol=1e-7)


def test_independent_matches_ridge_and_logistic_regression() -> None:
    X, Y, _ = regression(n=90, d=5)
    n = len(X)
    ridge = IndependentLinear(alpha=0.2, tol=1e-10, max_iter=50000).fit(X, Y)
    for t in range(Y.shape[1]):  # (1/(2n))||r||^2 + alpha||w||^2  <=>  ||r||^2 + 2 n alpha ||w||^2
        np.testing.assert_allclose(ridge.coef_[t], Ridge(alpha=2 * n * 0.2).fit(X, Y[:, t]).coef_, atol=1e-7)
    c = (Y[:, 0] > np.median(Y[:, 0])).astype(int)
    ours = IndependentLinear(alpha=0.05, loss="logistic", tol=1e-10, max_iter=50000).fit(X, c)
    # (1/n) sum logloss + alpha ||w||^2  <=>  C sum logloss + ||w||^2 / 2 with C = 1 / (2 alpha n)
    ref = LogisticRegression(C=1 / (2 * 0.05 * n), tol=1e-12, max_iter=10000).fit(X, c)
    np.testing.assert_allclose(ours.coef_[0], ref.coef_[0], atol=1e-6)
    assert ours.intercept_[0] == pytest.approx(ref.intercept_[0], abs=1e-6)


def test_trace_norm_lowers_the_rank() -> None:
    X, Y, _ = regression(n=200, d=8, n_tasks=6)
    ranks = [np.linalg.matrix_rank(TraceNorm(alpha=a).fit(X, Y).coef_, tol=1e-6) for a in (1e-4, 0.3, 3.0)]
    assert ranks[0] == 6 and ranks[0] > ranks[1] >= ranks[2] and ranks[2] <= 1


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_objective_decreases_and_converges(name: str) -> None:
    X, Y, losses = mixed()
    loose = make(name, loss=losses, tol=ESTIMATORS[name]().tol, max_iter=5000).fit(X, Y)  # default tol
    tight = make(name, loss=losses).fit(X, Y)
    history = loose.objective_
    assert history[-1] < history[0]
    assert np.all(np.diff(history) <= 1e-9 * abs(history[0]))  # restarts keep it monotone
    # the default tolerance is already close to the optimum
    assert history[-1] - tight.objective_[-1] <= 1e-3 * abs(tight.objective_[-1])
    assert tight.objective_[-1] <= history[-1] + 1e-9 * abs(history[-1])


def test_not_converging_warns() -> None:
    X, Y, _ = regression()
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        L21(alpha=1e-3, max_iter=2).fit(X, Y)
