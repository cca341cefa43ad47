"""One accelerated proximal-gradient solver (FISTA) for every linear formulation.

Minimizes ``F(V, b) = f(sum_i V_i, b) + Ω(V)`` where ``f`` is a :class:`~multitask.linear._backend.Backend`
(the smooth loss), ``V`` of shape ``(n_blocks, n_tasks, n_features)`` stacks the parts of ``W`` and ``b`` is
the unpenalized intercept (Beck & Teboulle, 2009):

.. math::
    x_{k+1} = \\mathrm{prox}_{\\Omega / L}(y_k - \\nabla f(y_k) / L), \\quad
    t_{k+1} = (1 + \\sqrt{1 + 4 t_k^2}) / 2, \\quad
    y_{k+1} = x_{k+1} + \\frac{t_k - 1}{t_{k+1}} (x_{k+1} - x_k)

``L`` is found by backtracking (doubled until the quadratic upper bound holds, relaxed by 10% each step);
with a :class:`FeatureMetric` ``h`` (for penalties that are sums over features), the step is scaled per
feature, ``x_{k+1} = prox_{Ω, L diag(h)}(y_k - diag(L h)^{-1} ∇f(y_k))`` (the prox of a sum over features
under a metric constant on each feature's column is the same prox with that feature's step ``1 / (L h_j)``),
and the bound is ``f(y) + <∇f(y), d> + (L / 2) Σ_j h_j ||d_j||^2``: FISTA in the variables scaled by
``sqrt(h)``, a diagonal preconditioner (Jacobi's) that makes columns of different norms equally easy;
momentum is reset when the objective goes up (adaptive restart, O'Donoghue & Candès, 2015), so the
objective never increases. It stops when the gradient mapping ``||L h (x_{k+1} - y_k)||`` falls below ``tol``
times the norm of the loss gradient at ``W = 0`` (its first value when that is zero), or when the objective
has not moved beyond round-off for 20 iterations. Non-finite values (overflow) raise :class:`DivergedError`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from multitask.errors import DataError
from multitask.linear._backend import Backend, Curvature
from multitask.linear._penalties import Penalty

Array = NDArray[np.float64]
logger = logging.getLogger(__name__)
#: accepted iterations over which an objective change below round-off counts as converged
_STALL = 20


class DivergedError(DataError):
    """The solver met non-finite values: features on extreme scales, or a problem too ill-conditioned."""

    def __init__(self, what: str = "the loss") -> None:
        super().__init__(f"the solver diverged ({what} is not finite): standardize the features of X, "
                         "and keep the regularization strengths finite")


@dataclass
class SolverResult:
    """Solution ``coef`` (n_blocks, n_tasks, n_features), ``intercept``, iterations, objective history.

    """

    coef: Array
    intercept: Array
    n_iter: int
    converged: bool
    objective: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class FeatureMetric:
    """The solver's metric ``L diag(h)``: ``features`` (n_features,) scales each feature's column of every
    part, ``intercept`` (n_tasks,) each intercept; both positive."""

    features: Array
    intercept: Array

    @classmethod
    def from_curvature(cls, curvature: Curvature, n_blocks: int) -> FeatureMetric:
        """``h_j = n_blocks max_t coef_tj`` (``W = sum`` of ``n_blocks`` parts); floored at 1e-6 of the largest."""
        h = n_blocks * (curvature.coef.max(axis=0) if curvature.coef.size else np.zeros(curvature.coef.shape[1]))
        hb = curvature.intercept
        top = max(float(h.max()) if h.size else 0.0, float(hb.max()) if hb.size else 0.0)
        if not (math.isfinite(top) and top > 0.0):
            return cls(np.ones(len(h)), np.ones(len(hb)))
        return cls(np.maximum(h, 1e-6 * top), np.maximum(hb, 1e-6 * top))

    def restrict(self, features: NDArray[np.intp]) -> FeatureMetric:
        return FeatureMetric(self.features[features], self.intercept)


def _initial_lipschitz(backend: Backend, V: Array, b: Array, gV: Array, gb: Array, fit_intercept: bool,
                       h: Array | float = 1.0, hb: Array | float = 1.0) -> float:
    """Secant estimate ``||∇f(x) - ∇f(x')||_{1/h} / ||x - x'||_h`` along the scaled gradient ``∇f / h``."""
    uV, ub = gV / h, gb / hb
    norm = math.sqrt(float(np.sum(h * uV * uV) + (np.sum(hb * ub * ub) if fit_intercept else 0.0)))
    if norm == 0.0:
        return 1.0
    eps = 1e-4 * max(1.0, math.sqrt(float(np.sum(h * V * V) + np.sum(hb * b * b)))) / norm
    V2 = V - eps * uV
    b2 = b - eps * ub if fit_intercept else b
    _, gW2, gb2 = backend.loss_and_grad(V2.sum(axis=0), b2)
    dV = np.broadcast_to(gW2, V.shape) - gV
    diff = float(np.sum(dV * dV / h) + (np.sum((gb2 - gb) ** 2 / hb) if fit_intercept else 0.0))
    return max(math.sqrt(diff) / (eps * norm), 1e-12)


def gradient_scale(backend: Backend, n_blocks: int, intercept: Array, fit_intercept: bool) -> float:
    """The scale of the stopping test: the norm of the loss gradient at ``W = 0`` (one pass)."""
    _, g0_W, g0_b = backend.loss_and_grad(np.zeros((backend.n_tasks, backend.n_features)), intercept)
    return math.sqrt(n_blocks * float(np.sum(g0_W * g0_W)) + (float(np.sum(g0_b * g0_b)) if fit_intercept else 0.0))


def fista(backend: Backend, penalty: Penalty, coef: Array, intercept: Array, *, fit_intercept: bool = True,
          tol: float = 1e-5, max_iter: int = 1000, scale: float | None = None,
          metric: FeatureMetric | None = None) -> SolverResult:
    """Minimize ``backend(sum(coef), intercept) + penalty(coef)`` from the given starting point.

    ``scale`` (default: measured here) is the norm the stopping test's ``tol`` is relative to. ``metric``
    (default: the same step for every coordinate) scales the steps per feature; only for a penalty whose
    ``prox`` takes one step per feature (norms that are sums over features).
    """
    h: Array | float = 1.0 if metric is None else metric.features
    hb: Array | float = 1.0 if metric is None else metric.intercept
    x_V = penalty.prox(np.asarray(coef, dtype=float), 0.0) if coef.size else coef
    x_b = np.asarray(intercept, dtype=float).copy()
    f_x, gW, g_b = backend.loss_and_grad(x_V.sum(axis=0), x_b)
    F_x = f_x + penalty.value(x_V)
    if not math.isfinite(F_x):
        raise DivergedError("the objective at the starting point")
    history = [F_x]
    g_V = np.broadcast_to(gW, x_V.shape)
    if not fit_intercept:
        g_b = np.zeros_like(g_b)
    L = _initial_lipschitz(backend, x_V, x_b, np.array(g_V), g_b, fit_intercept, h, hb)
    if not math.isfinite(L):
        raise DivergedError("the loss's curvature")
    y_V, y_b, f_y, t = x_V, x_b, f_x, 1.0
    # the scale of the stopping test: the loss gradient at W = 0, so warm starts stop at the same accuracy
    if scale is None and np.any(x_V):
        scale = gradient_scale(backend, x_V.shape[0], x_b, fit_intercept)
    elif scale is None:
        scale = math.sqrt(x_V.shape[0] * float(np.sum(gW * gW)) + (float(np.sum(g_b * g_b)) if fit_intercept else 0.0))
    n_iter, converged = 0, False
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is reported
        L *= 0.9
        while True:
            step, step_b = 1.0 / (L * h), 1.0 / (L * hb)
            # one step per feature only with a metric, which the caller gives for penalties whose prox takes it
            z_V = penalty.prox(y_V - step * g_V, step)  # type: ignore[arg-type]
            z_b = y_b - step_b * g_b
            f_z = backend.loss(z_V.sum(axis=0), z_b)
            d_V, d_b = z_V - y_V, z_b - y_b
            sq = float(np.sum(h * d_V * d_V) + np.sum(hb * d_b * d_b))
            bound = f_y + float(np.sum(g_V * d_V) + np.sum(g_b * d_b)) + 0.5 * L * sq
            if f_z <= bound + 1e-12 * abs(f_y) or sq == 0.0:
                break
            L *= 2.0
            if not math.isfinite(L):  # no step, however short, decreases the loss: it is not finite near y
                raise DivergedError()
        mapping = L * (math.sqrt(sq) if metric is None else
                       math.sqrt(float(np.sum((h * d_V) ** 2) + np.sum((hb * d_b) ** 2))))
        scale = scale or mapping
        F_z = f_z + penalty.value(z_V)
        if F_z > F_x + 1e-12 * abs(F_x) and t > 1.0:  # momentum overshot: restart from x with a plain step
            y_V, y_b, t = x_V, x_b, 1.0
            f_y, gW, g_b = backend.loss_and_grad(y_V.sum(axis=0), y_b)
            g_V = np.broadcast_to(gW, y_V.shape)
            if not fit_intercept:
                g_b = np.zeros_like(g_b)
            continue
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        momentum = (t - 1.0) / t_next
        y_V, y_b = z_V + momentum * (z_V - x_V), z_b + momentum * (z_b - x_b)
        x_V, x_b, F_x, t = z_V, z_b, F_z, t_next
        history.append(F_x)
        stalled = len(history) > _STALL and history[-_STALL - 1] - F_x <= 1e-14 * abs(F_x)
        if mapping <= tol * scale or stalled:  # stalled: no progress left in floating point
            converged = True
            break
        f_y, gW, g_b = backend.loss_and_grad(y_V.sum(axis=0), y_b)
        g_V = np.broadcast_to(gW, y_V.shape)
        if not fit_intercept:
            g_b = np.zeros_like(g_b)
    logger.debug("fista: %d iterations, objective %.6g, converged=%s", n_iter, F_x, converged)
    return SolverResult(x_V, x_b, n_iter, converged, history)
