"""Properties every formulation must have, checked over one shared list of estimators."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from tests.linear._helpers import ESTIMATORS, make

NAMES = list(ESTIMATORS)


def data(seed: int, n: int, d: int, n_tasks: int, binary: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    W = rng.normal(size=d) + 0.5 * rng.normal(size=(n_tasks, d))
    Y = X @ W.T + 0.5 * rng.normal(size=(n, n_tasks))
    losses = ["squared"] * n_tasks
    if binary:
        Y[:, -1] = (Y[:, -1] > np.median(Y[:, -1])).astype(float)
        losses[-1] = "logistic"
    return X, Y, losses


problems = st.tuples(st.integers(0, 10_000), st.integers(30, 60), st.integers(2, 5), st.integers(2, 4), st.booleans())


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=4, deadline=None)
@given(problem=problems)
def test_task_permutation_equivariance(name: str, problem: tuple[int, int, int, int, bool]) -> None:
    X, Y, losses = data(*problem)
    order = np.random.default_rng(problem[0]).permutation(Y.shape[1])
    model = make(name, loss=losses).fit(X, Y)
    permuted = make(name, loss=[losses[j] for j in order]).fit(X, Y[:, order])
    np.testing.assert_allclose(permuted.coef_, model.coef_[order], atol=1e-4)
    np.testing.assert_allclose(permuted.intercept_, model.intercept_[order], atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=4, deadline=None)
@given(problem=problems)
def test_row_order_invariance_and_finite_outputs(name: str, problem: tuple[int, int, int, int, bool]) -> None:
    X, Y, losses = data(*problem)
    rows = np.random.default_rng(problem[0] + 1).permutation(len(X))
    model = make(name, loss=losses).fit(X, Y)
    shuffled = make(name, loss=losses).fit(X[rows], Y[rows])
    np.testing.assert_allclose(shuffled.coef_, model.coef_, atol=1e-4)
    assert model.coef_.shape == (Y.shape[1], X.shape[1]) and model.intercept_.shape == (Y.shape[1],)
    assert np.isfinite(model.predict(X)).all() and model.n_iter_ >= 1
    assert np.all(np.diff(model.objective_) <= 1e-9 * abs(model.objective_[0]))


@pytest.mark.parametrize("name", NAMES)
def test_clone_and_refit_are_deterministic(name: str) -> None:
    X, Y, losses = data(0, 40, 3, 3, True)
    model = make(name, loss=losses, tol=1e-5)
    first = clone(model).fit(X, Y)
    second = clone(model).fit(X, Y)
    np.testing.assert_array_equal(first.coef_, second.coef_)
    assert clone(model).get_params() == model.get_params()


@pytest.mark.parametrize("name", NAMES)
def test_infinite_regularization_leaves_only_intercepts(name: str) -> None:
    X, Y, losses = data(1, 50, 4, 3, False)
    cls = ESTIMATORS[name]
    strong = {param: 1e6 for param in cls.regularization_params}
    if name in ("mean-regularized", "graph"):  # their coupling alone does not shrink the mean
        strong = {"rho": 1.0, "alpha": 1e6}
    model = make(name, loss=losses, **strong).fit(X, Y)
    # quadratic penalties shrink like 1 / strength; the non-smooth ones give exact zeros
    smooth = name in ("independent", "pooled", "mean-regularized", "graph", "clustered", "mtrl")
    np.testing.assert_allclose(model.coef_, 0.0, atol=1e-4 if smooth else 0.0)
    np.testing.assert_allclose(model.intercept_, Y.mean(axis=0), atol=1e-4)
