"""Shared data makers and the shared list of estimators for the linear tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from multitask.linear import LinearMTL
from multitask.registry import LINEAR

#: every registered formulation, resolved by name from the registry
ESTIMATORS: dict[str, type[LinearMTL]] = {name: LINEAR.get(name) for name in LINEAR}


def make(name: str, **params: Any) -> LinearMTL:
    """The registered estimator ``name`` with ``params`` (tight tolerance unless given)."""
    params.setdefault("tol", 1e-8)
    params.setdefault("max_iter", 20000)
    return ESTIMATORS[name](**params)


def regression(n: int = 120, d: int = 6, n_tasks: int = 3, seed: int = 0, noise: float = 0.3
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shared-X wide regression: ``X`` (n, d), ``Y`` (n, T), true ``W`` (T, d) with related tasks."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    shared = rng.normal(size=d)
    W = shared + 0.3 * rng.normal(size=(n_tasks, d))
    Y = X @ W.T + 1.0 + noise * rng.normal(size=(n, n_tasks))
    return X, Y, W


def mixed(n: int = 160, d: int = 5, seed: int = 1) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Wide data with two regression tasks and one binary task (0/1), some labels missing (NaN)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    Y = np.column_stack([X @ w + 0.1 * rng.normal(size=n), X @ (w + 0.2) + 0.1 * rng.normal(size=n),
                         (X @ w + 0.3 * rng.normal(size=n) > 0).astype(float)])
    Y[rng.random(Y.shape) < 0.2] = np.nan
    return X, Y, ["squared", "squared", "logistic"]
