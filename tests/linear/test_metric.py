"""Steps scaled per feature: the backends' curvature bound, the prox with one step per feature, and the solver."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from multitask.linear import L21, Dirty, Lasso
from multitask.linear._backend import ArrayBackend, Backend, Centered, Counted, curvature
from multitask.linear._losses import LOSSES, get_loss
from multitask.linear._penalties import Blocks, GroupNorm, L1InfNorm, L1Norm, Penalty
from multitask.linear._solver import FeatureMetric, fista
from multitask.linear._working_set import feature_metric
from tests.linear.test_backend import layouts

PENALTIES: dict[str, Blocks] = {
    "lasso": Blocks([L1Norm(0.05)]),
    "l21": Blocks([GroupNorm(0.05)]),
    "dirty": Blocks([L1Norm(0.06), L1InfNorm(0.05)]),
}


def backend_of(layout: str, sparse: bool, centered: bool,
               scales: tuple[float, ...] = (0.1, 1.0, 3.0, 0.5)) -> tuple[Backend, np.ndarray, list[np.ndarray], list[str]]:
    X, rows, targets, names = layouts()[layout]
    X = X * np.array(scales) + 0.7  # unequal scales, nonzero means
    backend: Backend = ArrayBackend(sp.csr_array(X) if sparse else X, rows, targets, [get_loss(n) for n in names])
    if centered:
        backend = Centered(backend, X.mean(axis=0))
    return backend, X, rows, names


@pytest.mark.parametrize("layout", ["gram", "masked", "long"])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("centered", [False, True])
def test_curvature_is_the_diagonal_of_the_bound(layout: str, sparse: bool, centered: bool) -> None:
    backend, X, rows, names = backend_of(layout, sparse, centered)
    found = curvature(backend)
    assert found is not None
    mean = X.mean(axis=0) if centered else np.zeros(X.shape[1])
    for t, (r, name) in enumerate(zip(rows, names, strict=True)):
        c = LOSSES[name].curvature_bound / len(r)
        Xc = X[r] - mean
        np.testing.assert_allclose(found.coef[t], c * (Xc * Xc).sum(axis=0), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(found.cross[t], c * Xc.sum(axis=0), rtol=1e-10, atol=1e-12)
        assert found.intercept[t] == pytest.approx(c * len(r), rel=1e-12)


@pytest.mark.parametrize("layout", ["gram", "masked", "long"])
def test_the_quadratic_bound_holds_along_every_feature(layout: str) -> None:
    # f(x + s e_tj) <= f(x) + s g_tj + h_tj s^2 / 2 at random points and steps, for every loss
    backend, X, rows, _ = backend_of(layout, sparse=False, centered=True)
    found = curvature(backend)
    assert found is not None
    rng = np.random.default_rng(2)
    for _ in range(20):
        W, b = 2 * rng.normal(size=(len(rows), X.shape[1])), rng.normal(size=len(rows))
        f, G, gb = backend.loss_and_grad(W, b)
        t, j, s = rng.integers(len(rows)), rng.integers(X.shape[1]), 3 * rng.normal()
        E = np.zeros_like(W)
        E[t, j] = s
        assert backend.loss(W + E, b) <= f + s * G[t, j] + 0.5 * found.coef[t, j] * s * s + 1e-12
        e = np.zeros_like(b)
        e[t] = s
        assert backend.loss(W, b + e) <= f + s * gb[t] + 0.5 * found.intercept[t] * s * s + 1e-12


def test_a_backend_without_curvature_gets_one_step_for_all() -> None:
    class Plain:
        n_tasks, n_features = 1, 3

        def loss(self, W: np.ndarray, b: np.ndarray) -> float:
            return 0.0

        def loss_and_grad(self, W: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
            return 0.0, np.zeros_like(W), np.zeros_like(b)

    counted = Counted(Plain())
    assert curvature(counted) is None and counted.passes == 0
    assert feature_metric(counted, PENALTIES["l21"], 1) is None
    backend, *_ = backend_of("gram", sparse=False, centered=True)
    counted = Counted(backend)
    assert feature_metric(counted, PENALTIES["l21"], 1) is not None and counted.passes == 1  # one pass
    assert feature_metric(counted, L1Norm(1.0), 1) is None  # not a Blocks of feature norms


def test_metric_from_curvature() -> None:
    backend, *_ = backend_of("masked", sparse=False, centered=True)
    found = curvature(backend)
    assert found is not None
    metric = FeatureMetric.from_curvature(found, n_blocks=2)
    np.testing.assert_allclose(metric.features, 2 * found.coef.max(axis=0))
    np.testing.assert_allclose(metric.intercept, found.intercept)
    found.coef[:, 1] = 0.0  # a constant feature: floored, so its step stays finite
    assert np.all(FeatureMetric.from_curvature(found, 1).features > 0)
    np.testing.assert_array_equal(metric.restrict(np.array([0, 2])).features, metric.features[[0, 2]])


@pytest.mark.parametrize("penalty", [L1Norm(0.3), GroupNorm(0.3), L1InfNorm(0.3),
                                     Blocks([L1Norm(0.2), L1InfNorm(0.3)])], ids=repr)
def test_prox_with_one_step_per_feature_is_the_prox_of_each_column(penalty: Any) -> None:
    rng = np.random.default_rng(0)
    shape = (2, 4, 6) if isinstance(penalty, Blocks) else (4, 6)
    V = rng.normal(size=shape)
    steps = np.array([0.0, 0.1, 0.5, 1.0, 2.0, 10.0])
    out = penalty.prox(V, steps)
    for j, step in enumerate(steps):
        np.testing.assert_allclose(out[..., j], penalty.prox(V, float(step))[..., j], atol=1e-14)


def test_group_soft_thresholding_at_the_threshold_gives_zero() -> None:
    rng = np.random.default_rng(4)
    for _ in range(200):
        g = rng.normal(size=(5, 1))
        step = float(rng.uniform(0.01, 10.0))
        alpha = float(np.linalg.norm(g))  # the column is exactly at the threshold, up to round-off
        assert not np.any(GroupNorm(alpha).prox(-step * g, step))


def _objective(backend: Backend, penalty: Penalty, coef: np.ndarray, intercept: np.ndarray) -> float:
    return backend.loss(coef.sum(axis=0), intercept) + penalty.value(coef)


@pytest.mark.parametrize("name", PENALTIES)
@pytest.mark.parametrize("layout", ["gram", "masked"])  # long form: tests/linear/test_working_set.py
@pytest.mark.parametrize("sparse", [False, True])
def test_same_solution_with_and_without_the_metric(name: str, layout: str, sparse: bool) -> None:
    backend, X, rows, _ = backend_of(layout, sparse, centered=True, scales=(0.5, 1.0, 2.0, 1.0))
    penalty = PENALTIES[name]
    n_blocks = len(penalty.parts)
    start = (np.zeros((n_blocks, len(rows), X.shape[1])), np.zeros(len(rows)))
    metric = feature_metric(backend, penalty, n_blocks)
    assert metric is not None
    scaled = fista(backend, penalty, *start, tol=1e-9, max_iter=20_000, metric=metric)
    plain = fista(backend, penalty, *start, tol=1e-9, max_iter=20_000)
    assert scaled.converged and plain.converged
    a, b = (_objective(backend, penalty, r.coef, r.intercept) for r in (plain, scaled))
    assert b == pytest.approx(a, rel=1e-8, abs=1e-12)  # the same optimum to 8 digits
    assert np.all(np.diff(scaled.objective) <= 1e-12 * np.abs(scaled.objective[1:]))  # never increases


def _ill_scaled(loss: str) -> tuple[Any, np.ndarray]:
    """Sparse columns whose norms span four orders of magnitude, a few of them used by every task."""
    rng = np.random.default_rng(5)
    X = sp.random(300, 200, density=0.05, format="csr", random_state=5, data_rvs=rng.standard_normal)
    X = sp.csr_array(X @ sp.diags(np.logspace(-2, 2, 200)))
    W = np.zeros((3, 200))
    W[:, rng.choice(200, 10, replace=False)] = rng.normal(size=(3, 10))
    Z = np.asarray(X @ W.T) + 0.1 * rng.normal(size=(300, 3))
    return X, Z if loss == "squared" else (Z > 0).astype(float)


@pytest.mark.parametrize("cls", [Lasso, L21, Dirty])
@pytest.mark.parametrize("loss", ["squared", "logistic"])
def test_per_feature_steps_need_fewer_iterations_on_columns_of_unequal_norms(cls: Any, loss: str) -> None:
    X, Y = _ill_scaled(loss)
    scale = cls(loss=loss).regularization_scale(X, Y)
    params = {name: 0.1 * value for name, value in scale.items()}
    scaled = cls(**params, loss=loss, tol=1e-8, max_iter=100_000, working_set=False).fit(X, Y)
    backend = scaled._prepare(X, Y, None).backend
    penalty = scaled._penalty(3)
    start = (np.zeros_like(scaled._coef_parts), scaled._initial_intercept(
        [y for y in Y.T], [get_loss(loss)] * 3))
    plain = fista(backend, penalty, *start, tol=1e-8, max_iter=100_000)
    assert scaled.n_iter_ < plain.n_iter / 1.5  # 1.8 to 7 times fewer here
    value = _objective(backend, penalty, scaled._coef_parts, scaled.intercept_ + scaled.coef_ @ X.mean(axis=0))
    assert value <= _objective(backend, penalty, plain.coef, plain.intercept) + 1e-7 * abs(value)
