"""Each fitted solution is the minimum of its objective: no small move of (W parts, b) lowers it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from multitask.linear import Clustered, LinearMTL
from multitask.linear._backend import ArrayBackend
from multitask.linear._clustered import cluster_matrix
from multitask.linear._data import encode_binary, resolve_losses, split_targets
from tests.linear._helpers import ESTIMATORS, make, mixed

Objective = Callable[[np.ndarray, np.ndarray], float]


def objective_of(model: LinearMTL, X: np.ndarray, Y: np.ndarray) -> Objective:
    """F(parts, b) = sum_t mean loss_t + Ω(parts), built independently of the solver's path."""
    data = split_targets(Y, None, len(X))
    losses = resolve_losses(model.loss, data.labels)
    targets, _ = encode_binary(data, losses)
    backend = ArrayBackend(X, data.rows, targets, losses)
    if isinstance(model, Clustered):  # M minimized out for the given W
        def clustered(parts: np.ndarray, b: np.ndarray) -> float:
            M = cluster_matrix(parts[0], model.n_clusters, model.eta)
            return backend.loss(parts[0], b) + model._w_penalty(M).value(parts)
        return clustered
    penalty = model._penalty(len(data.labels))
    return lambda parts, b: backend.loss(parts.sum(axis=0), b) + penalty.value(parts)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_fitted_solution_is_a_minimum(name: str) -> None:
    X, Y, losses = mixed(n=120)
    model = make(name, loss=losses, tol=1e-9, max_iter=50000).fit(X, Y)
    F = objective_of(model, X, Y)
    parts, b = model._coef_parts, model.intercept_
    best = F(parts, b)
    assert best == pytest.approx(model.objective_[-1], rel=1e-9)
    rng = np.random.default_rng(0)
    for eps in (1e-2, 1e-4):
        for _ in range(40):
            moved = parts + eps * rng.normal(size=parts.shape)
            if name == "pooled":  # the pooled model lives on equal rows
                moved = np.repeat(moved.mean(axis=1, keepdims=True), parts.shape[1], axis=1)
            assert best <= F(moved, b + eps * rng.normal(size=b.shape)) + 1e-9 * abs(best)
