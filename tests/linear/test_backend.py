"""The in-memory backend: its value is the sum of per-task mean losses, its gradient matches finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from multitask.linear._backend import ArrayBackend, Centered
from multitask.linear._losses import LOSSES, get_loss
from multitask.linear._penalties import Zero
from multitask.linear._solver import fista


def direct(X: np.ndarray, rows: list[np.ndarray], targets: list[np.ndarray], losses: list[str],
           W: np.ndarray, b: np.ndarray) -> float:
    total = 0.0
    for t, (r, y, name) in enumerate(zip(rows, targets, losses, strict=True)):
        z = X[r] @ W[t] + b[t]
        total += float(np.mean(LOSSES[name].values(z, y)))
    return total


def layouts() -> dict[str, tuple[np.ndarray, list[np.ndarray], list[np.ndarray], list[str]]]:
    rng = np.random.default_rng(0)
    n, d = 60, 4
    X = rng.normal(size=(n, d))
    y = rng.normal(size=n)
    c = (rng.random(n) > 0.5).astype(float)
    everything = np.arange(n)
    return {
        # wide, shared rows, squared: one Gram group
        "gram": (X, [everything, everything], [y, 2 * y], ["squared", "squared"]),
        # wide with a few missing labels: masked group; a small task: own rows
        "masked": (X, [everything[5:], everything[:50], everything[::7]], [y[5:], c[:50], y[::7]],
                   ["squared", "logistic", "squared"]),
        # long form: disjoint rows, fewer rows than features for one task
        "long": (X, [everything[:30], everything[30:57], everything[57:]], [y[:30], c[30:57], c[57:]],
                 ["squared", "squared_hinge", "logistic"]),
    }


@pytest.mark.parametrize("layout", ["gram", "masked", "long"])
@pytest.mark.parametrize("sparse", [False, True])
def test_value_and_gradient(layout: str, sparse: bool) -> None:
    X, rows, targets, names = layouts()[layout]
    Xs = sp.csr_array(X) if sparse else X
    backend = ArrayBackend(Xs, rows, targets, [get_loss(n) for n in names])
    rng = np.random.default_rng(1)
    W, b = rng.normal(size=(len(rows), X.shape[1])), rng.normal(size=len(rows))
    value, gW, gb = backend.loss_and_grad(W, b)
    assert value == pytest.approx(direct(X, rows, targets, names, W, b), rel=1e-10)
    assert backend.loss(W, b) == pytest.approx(value, rel=1e-12)
    eps = 1e-6
    for t, j in [(0, 0), (1, 2), (2 % len(rows), 3)]:
        E = np.zeros_like(W)
        E[t, j] = eps
        numeric = (backend.loss(W + E, b) - backend.loss(W - E, b)) / (2 * eps)
        assert gW[t, j] == pytest.approx(numeric, rel=1e-5, abs=1e-7)
    e = np.zeros_like(b)
    e[0] = eps
    assert gb[0] == pytest.approx((backend.loss(W, b + e) - backend.loss(W, b - e)) / (2 * eps), rel=1e-5, abs=1e-7)


def test_centering_changes_only_the_intercept() -> None:
    X, rows, targets, names = layouts()["masked"]
    losses = [get_loss(n) for n in names]
    mean = X.mean(axis=0) + 5.0
    plain = ArrayBackend(X, rows, targets, losses)
    centered = Centered(plain, mean)
    W, b = np.ones((3, 4)), np.arange(3.0)
    assert centered.loss(W, b) == pytest.approx(plain.loss(W, b - W @ mean))
    _, gW, _ = centered.loss_and_grad(W, b)
    eps = 1e-6
    E = np.zeros_like(W)
    E[1, 1] = eps
    assert gW[1, 1] == pytest.approx((centered.loss(W + E, b) - centered.loss(W - E, b)) / (2 * eps), rel=1e-5)


def test_fista_solves_least_squares() -> None:
    X, rows, targets, names = layouts()["gram"]
    backend = ArrayBackend(X, rows, targets, [get_loss(n) for n in names])
    result = fista(backend, Zero(), np.zeros((1, 2, 4)), np.zeros(2), tol=1e-10, max_iter=5000)
    A = np.hstack([X, np.ones((len(X), 1))])
    for t in range(2):
        exact = np.linalg.lstsq(A, targets[t], rcond=None)[0]
        np.testing.assert_allclose(result.coef[0, t], exact[:-1], atol=1e-7)
        assert result.intercept[t] == pytest.approx(exact[-1], abs=1e-7)
    assert result.converged
    assert np.all(np.diff(result.objective) <= 1e-12)
