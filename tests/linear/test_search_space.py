"""Each formulation's search space reaches both of its limits: no regularization, and W = 0 (or pooled tasks)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from multitask.linear import (
    L21,
    Dirty,
    IndependentLinear,
    Lasso,
    PooledLinear,
    Robust,
    SparseLowRank,
    TraceNorm,
    regularization_path,
)
from tests.linear._helpers import ESTIMATORS, make, mixed

NAMES = list(ESTIMATORS)
N, D, T = 300, 5, 3
#: parameters whose coupling pools the tasks at its upper end (the others' upper end zeroes W)
POOLING = {"mean-regularized": "rho", "graph": "rho"}
#: dimensionless parameters (unit 1): which end is weakest and which strongest
RATIOS = {("clustered", "eta"): ("high", "low")}


def problem() -> tuple[np.ndarray, np.ndarray]:
    """Well-conditioned shared-X regression: 300 rows, 5 features, 3 related tasks."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, D))
    W = rng.normal(size=D) + 0.5 * rng.normal(size=(T, D))
    return X, X @ W.T + 1.0 + 0.3 * rng.normal(size=(N, T))


def least_squares(X: np.ndarray, Y: np.ndarray, pooled: bool) -> np.ndarray:
    """Unregularized fit with an intercept per task: per task, or one w for all tasks."""
    if not pooled:
        return np.linalg.lstsq(np.hstack([X, np.ones((N, 1))]), Y, rcond=None)[0][:D].T
    design = np.vstack([np.hstack([X, np.outer(np.ones(N), np.eye(T)[t])]) for t in range(T)])
    return np.tile(np.linalg.lstsq(design, Y.T.ravel(), rcond=None)[0][:D], (T, 1))


def at_end(name: str, bounds: dict[str, tuple[float, float]], end: str, **override: float) -> dict[str, Any]:
    params = {}
    for param, (low, high) in bounds.items():
        which = RATIOS.get((name, param), ("low", "high"))[0 if end == "low" else 1]
        params[param] = low if which == "low" else high
    return {**params, **override}


def fit(name: str, X: np.ndarray, Y: np.ndarray, **params: float) -> np.ndarray:
    return make(name, tol=1e-10, max_iter=100_000, **params).fit(X, Y).coef_


@pytest.mark.parametrize("name", NAMES)
def test_the_lower_end_is_least_squares(name: str) -> None:
    X, Y = problem()
    bounds = make(name).search_bounds(X, Y)
    reference = least_squares(X, Y, pooled=name == "pooled")
    W = fit(name, X, Y, **at_end(name, bounds, "low"))
    assert np.linalg.norm(W - reference) < 1e-3 * np.linalg.norm(reference)


@pytest.mark.parametrize("name", NAMES)
def test_the_upper_end_zeroes_w(name: str) -> None:
    X, Y = problem()
    bounds = make(name).search_bounds(X, Y)
    unregularized = np.linalg.norm(fit(name, X, Y, **at_end(name, bounds, "low")))
    W = fit(name, X, Y, **at_end(name, bounds, "high"))
    smooth = name in ("independent", "pooled", "mean-regularized", "graph", "clustered", "mtrl")
    # a quadratic penalty only shrinks (to 1e-3 by design); a norm at its scale gives exact zeros
    assert np.linalg.norm(W) < (2e-3 if smooth else 1e-12) * unregularized


@pytest.mark.parametrize("name", list(POOLING))
def test_the_upper_end_of_the_coupling_pools_the_tasks(name: str) -> None:
    X, Y = problem()
    bounds = make(name).search_bounds(X, Y)
    low = at_end(name, bounds, "low")
    independent = fit(name, X, Y, **low)
    W = fit(name, X, Y, **{**low, POOLING[name]: bounds[POOLING[name]][1]})
    # rho -> inf leaves one w under the ridge alpha ||W||_F^2 = T alpha ||w||^2
    pooled = PooledLinear(alpha=T * low["alpha"], tol=1e-10, max_iter=100_000).fit(X, Y).coef_
    assert np.linalg.norm(W - pooled) < 2e-3 * np.linalg.norm(independent - pooled)
    assert np.linalg.norm(W - W.mean(axis=0)) < 2e-3 * np.linalg.norm(independent - independent.mean(axis=0))


@pytest.mark.parametrize(("cls", "param"), [
    (Lasso, "alpha"), (L21, "alpha"), (TraceNorm, "alpha"), (Dirty, "alpha_sparse"), (Dirty, "alpha_group"),
    (SparseLowRank, "alpha_sparse"), (SparseLowRank, "alpha_low_rank"), (Robust, "alpha_low_rank"),
    (Robust, "alpha_outlier"),
])
def test_a_norms_scale_is_the_smallest_strength_that_zeroes_w(cls: type, param: str) -> None:
    X, Y, losses = mixed()
    scale = cls(loss=losses).regularization_scale(X, Y)[param]
    others = {p: 1e6 for p in cls.regularization_params if p != param}  # only this part can be nonzero
    for factor, zero in ((1.0, True), (0.95, False)):
        model = cls(loss=losses, tol=1e-10, max_iter=50_000, **others, **{param: factor * scale}).fit(X, Y)
        assert (np.abs(model.coef_).max() < 1e-12) == zero


def test_scales_follow_the_data_units() -> None:
    X, Y = problem()
    lasso, ridge = Lasso().regularization_scale(X, Y), IndependentLinear().regularization_scale(X, Y)
    assert Lasso().regularization_scale(X, 10 * Y)["alpha"] == pytest.approx(10 * lasso["alpha"])
    assert Lasso().regularization_scale(3 * X, Y)["alpha"] == pytest.approx(3 * lasso["alpha"])
    assert IndependentLinear().regularization_scale(3 * X, 10 * Y)["alpha"] == pytest.approx(9 * ridge["alpha"], rel=1e-3)
    # the ridge's unit is the loss curvature: the top eigenvalue of the feature covariance, times 500
    top = np.linalg.eigvalsh(np.cov(X.T, bias=True)).max()
    assert ridge["alpha"] == pytest.approx(500 * top, rel=1e-3)


def test_a_parameter_without_a_data_scale() -> None:
    X, Y = problem()
    assert make("clustered").regularization_scale(X, Y)["eta"] == 1.0
    constant = np.ones_like(X)  # no variation: nothing to regularize, unit scale
    assert make("l21").regularization_scale(constant, Y) == {"alpha": 1.0}
    assert make("independent").regularization_scale(constant, Y) == {"alpha": 1.0}


@pytest.mark.parametrize("name", NAMES)
def test_scales_agree_across_data_forms(name: str) -> None:
    X, Y, losses = mixed()
    X[np.abs(X) < 0.3] = 0.0
    wide = make(name, loss=losses).regularization_scale(X, Y)
    rows, tasks = np.nonzero(~np.isnan(Y))
    long = make(name, loss=losses).regularization_scale(sp.csr_array(X[rows]), Y[rows, tasks], tasks)
    assert long == pytest.approx(wide, rel=1e-3)


def test_the_default_path_runs_from_w_zero_to_least_squares() -> None:
    X, Y = problem()
    path = regularization_path(L21(tol=1e-10, max_iter=100_000), X, Y)
    assert np.all(path.coefs[0] == 0.0) and np.all(np.diff(path.values) < 0)
    reference = least_squares(X, Y, pooled=False)
    assert np.linalg.norm(path.coefs[-1] - reference) < 1e-3 * np.linalg.norm(reference)
