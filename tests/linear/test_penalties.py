"""Each proximal operator against its definition: argmin_Z Ω(Z) + ||Z - V||^2 / (2 step)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import minimize

from multitask.linear._penalties import (
    Blocks,
    EqualRows,
    GroupNorm,
    L1InfNorm,
    L1Norm,
    NuclearNorm,
    Penalty,
    SquaredTraceNorm,
    TaskQuadratic,
    Zero,
    project_l1_ball,
)

T, D = 3, 4
_A = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
PENALTIES: dict[str, Penalty] = {
    "zero": Zero(),
    "l1": L1Norm(0.3),
    "l21-features": GroupNorm(0.8, "features"),
    "l12-tasks": GroupNorm(0.8, "tasks"),
    "l1inf": L1InfNorm(0.5),
    "nuclear": NuclearNorm(0.9),
    "graph": TaskQuadratic(np.diag(_A.sum(1)) - _A, 0.7, 0.1),
    "mean": TaskQuadratic(np.eye(T) - 1.0 / T, 1.3, 0.0),
    "ridge": TaskQuadratic(np.zeros((T, T)), 0.0, 0.4),
    "squared-trace": SquaredTraceNorm(0.2, 0.6),
    "squared-trace-strong": SquaredTraceNorm(0.0, 5.0),
}


def prox_objective(penalty: Penalty, Z: np.ndarray, V: np.ndarray, step: float) -> float:
    return penalty.value(Z) + float(np.sum((Z - V) ** 2)) / (2 * step)


@pytest.mark.parametrize("name", PENALTIES)
@pytest.mark.parametrize("step", [0.3, 1.7])
def test_prox_minimizes_its_definition(name: str, step: float) -> None:
    penalty = PENALTIES[name]
    rng = np.random.default_rng(0)
    V = rng.normal(size=(T, D))
    P = penalty.prox(V, step)
    best = prox_objective(penalty, P, V, step)
    # a convex function is minimal where no small move decreases it
    for eps in (1e-1, 1e-3, 1e-5):
        for _ in range(100):
            U = rng.normal(size=(T, D))
            assert best <= prox_objective(penalty, P + eps * U, V, step) + 1e-12
    # and a derivative-free solve from V does not beat it
    res = minimize(lambda z: prox_objective(penalty, z.reshape(T, D), V, step), V.ravel(), method="Powell",
                   options={"xtol": 1e-10, "ftol": 1e-12, "maxfev": 200000})
    assert best <= res.fun + 1e-9


def test_equal_rows_prox_is_the_constrained_minimizer() -> None:
    penalty, step = EqualRows(0.6), 0.8
    V = np.random.default_rng(1).normal(size=(T, D))
    P = penalty.prox(V, step)
    assert np.allclose(P, P[0])
    res = minimize(lambda w: prox_objective(penalty, np.tile(w, (T, 1)), V, step), np.zeros(D), method="BFGS",
                   options={"gtol": 1e-10})
    np.testing.assert_allclose(P[0], res.x, atol=1e-6)


def test_known_values() -> None:
    W = np.array([[3.0, -4.0], [0.0, 1.0]])
    assert L1Norm(2.0).value(W) == 16.0
    assert GroupNorm(1.0, "features").value(W) == pytest.approx(3.0 + np.sqrt(17.0))
    assert GroupNorm(1.0, "tasks").value(W) == pytest.approx(5.0 + 1.0)
    assert L1InfNorm(1.0).value(W) == 7.0
    assert NuclearNorm(1.0).value(W) == pytest.approx(np.linalg.svd(W, compute_uv=False).sum())
    np.testing.assert_allclose(L1Norm(1.0).prox(W, 1.5), [[1.5, -2.5], [0.0, 0.0]])
    # a whole feature column under the threshold vanishes, another is shrunk along its direction
    np.testing.assert_allclose(GroupNorm(1.0).prox(np.array([[0.3, 3.0], [0.4, 4.0]]), 1.0),
                               [[0.0, 2.4], [0.0, 3.2]])


def test_l1_ball_projection() -> None:
    rng = np.random.default_rng(2)
    V = rng.normal(size=(5, 30)) * 3
    P = project_l1_ball(V, 1.0)
    norms = np.abs(P).sum(axis=0)
    inside = np.abs(V).sum(axis=0) <= 1.0
    np.testing.assert_allclose(P[:, inside], V[:, inside])
    np.testing.assert_allclose(norms[~inside], 1.0)
    # projection: no other point of the ball is closer (check random feasible points)
    for _ in range(200):
        Z = rng.normal(size=(5, 30))
        Z /= np.maximum(np.abs(Z).sum(axis=0), 1.0)
        assert np.all(np.sum((Z - V) ** 2, axis=0) >= np.sum((P - V) ** 2, axis=0) - 1e-12)


def test_blocks_apply_one_penalty_per_part() -> None:
    V = np.random.default_rng(3).normal(size=(2, T, D))
    blocks = Blocks([L1Norm(0.2), NuclearNorm(0.5)])
    P = blocks.prox(V, 0.7)
    np.testing.assert_allclose(P[0], L1Norm(0.2).prox(V[0], 0.7))
    np.testing.assert_allclose(P[1], NuclearNorm(0.5).prox(V[1], 0.7))
    assert blocks.value(V) == pytest.approx(L1Norm(0.2).value(V[0]) + NuclearNorm(0.5).value(V[1]))


matrices = arrays(np.float64, (T, D), elements=st.floats(-10, 10, allow_nan=False))


@settings(max_examples=40, deadline=None)
@given(U=matrices, V=matrices, step=st.floats(0.01, 10.0), name=st.sampled_from(sorted(PENALTIES)))
def test_prox_is_nonexpansive(U: np.ndarray, V: np.ndarray, step: float, name: str) -> None:
    penalty = PENALTIES[name]
    gap = np.linalg.norm(penalty.prox(U, step) - penalty.prox(V, step))
    assert gap <= np.linalg.norm(U - V) * (1 + 1e-9) + 1e-9


def test_squared_trace_norm_is_the_relationship_penalty_with_omega_minimized_out() -> None:
    from multitask.linear._mtrl import task_covariance

    W = np.random.default_rng(4).normal(size=(T, D))
    omega = task_covariance(W)
    assert np.trace(omega) == pytest.approx(1.0)
    relationship = float(np.trace(W.T @ np.linalg.inv(omega) @ W))
    assert relationship == pytest.approx(SquaredTraceNorm(0.0, 1.0).value(W), rel=1e-5)
    for _ in range(20):  # any other feasible Ω does worse
        A = np.random.default_rng(_).normal(size=(T, T))
        other = A @ A.T + 0.1 * np.eye(T)
        other /= np.trace(other)
        assert float(np.trace(W.T @ np.linalg.inv(other) @ W)) >= relationship * (1 - 1e-6)
