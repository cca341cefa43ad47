"""Pinned optimal objective values and one coefficient per formulation, on one small mixed-loss problem.

The smooth formulations are also solved independently with scipy's L-BFGS, so their pins are checked
against another solver, not only against earlier runs of ours.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy.optimize import minimize

from multitask.linear._losses import LOSSES
from tests.linear._helpers import ESTIMATORS, make

LOSS_NAMES = ["squared", "squared", "logistic"]
PINNED = {  # name: (optimal objective, coef_[0, 0])
    "independent": (0.3901845799, 0.99540972),
    "pooled": (1.814981629, 1.0292435),
    "mean-regularized": (0.9639682672, 0.99539939),
    "lasso": (0.275671632, 1.0012718),
    "l21": (0.2262467066, 1.0103811),
    "trace-norm": (0.1979534151, 1.0174663),
    "sparse-low-rank": (0.1979534151, 1.0174663),
    "dirty": (0.215402303, 1.014496),
    "clustered": (0.4006409272, 1.0049147),
    "graph": (1.343343823, 0.9989913),
    "robust": (0.1979534151, 1.0174663),
    "mtrl": (0.6157767641, 1.0136589),
}


def problem() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    X = rng.normal(size=(40, 3))
    W = np.array([[1.0, -2.0, 0.5], [1.5, -1.0, 0.0], [-1.0, 2.0, 1.0]])
    Y = X @ W.T + 0.5 + 0.2 * rng.normal(size=(40, 3))
    Y[:, 2] = (Y[:, 2] > 0.5).astype(float)
    return X, Y


def test_every_formulation_is_pinned() -> None:
    assert set(PINNED) == set(ESTIMATORS)


@pytest.mark.parametrize("name", list(PINNED))
def test_pinned_values(name: str) -> None:
    X, Y = problem()
    model = make(name, loss=LOSS_NAMES, tol=1e-10, max_iter=100000).fit(X, Y)
    value, coef = PINNED[name]
    assert model.objective_[-1] == pytest.approx(value, rel=1e-7)
    assert model.coef_[0, 0] == pytest.approx(coef, rel=1e-5)


@pytest.mark.parametrize(("name", "task_matrix"), [
    ("independent", lambda T: np.zeros((T, T))),
    ("mean-regularized", lambda T: np.eye(T) - 1.0 / T),
    ("graph", lambda T: T * np.eye(T) - np.ones((T, T))),  # complete graph (the default): D - A
])
def test_smooth_pins_agree_with_lbfgs(name: str, task_matrix: Callable[[int], np.ndarray]) -> None:
    X, Y = problem()
    model = ESTIMATORS[name]()
    rho = getattr(model, "rho", 0.0)
    M = task_matrix(3)

    def objective(theta: np.ndarray) -> float:
        W, b = theta[:9].reshape(3, 3), theta[9:]
        total = sum(float(np.mean(LOSSES[loss].values(X @ W[t] + b[t], Y[:, t])))
                    for t, loss in enumerate(LOSS_NAMES))
        return total + rho * float(np.sum(W * (M @ W))) + model.alpha * float(np.sum(W * W))

    result = minimize(objective, np.zeros(12), method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-10})
    assert result.fun == pytest.approx(PINNED[name][0], rel=1e-7)
    assert result.x[0] == pytest.approx(PINNED[name][1], rel=1e-4)
