"""Multi-task relationship learning (MTRL): learns a task covariance Ω alongside W."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from multitask.linear._backend import Backend
from multitask.linear._base import LinearMTL
from multitask.linear._penalties import Blocks, Penalty, TaskQuadratic
from multitask.linear._solver import SolverResult, fista

Array = NDArray[np.float64]
_MAX_ALTERNATIONS = 100
#: Ω = (S + eps tr(S) I) / tr(...) keeps Ω invertible when W has rank < n_tasks
_RELATIVE_EPS = 1e-6


def task_covariance(W: Array) -> Array:
    """``argmin_Ω tr(Wᵀ Ω^{-1} W)`` over ``{Ω ≻ 0, tr Ω = 1}``: ``(W Wᵀ)^{1/2} / tr((W Wᵀ)^{1/2})``."""
    n_tasks = W.shape[0]
    values, U = np.linalg.eigh(W @ W.T)
    root = (U * np.sqrt(np.maximum(values, 0.0))) @ U.T
    trace = float(np.trace(root))
    if trace <= 0.0:
        return np.eye(n_tasks) / n_tasks
    root += _RELATIVE_EPS * trace * np.eye(n_tasks)
    return root / float(np.trace(root))


class TaskRelationship(LinearMTL):
    """Task relationship learning: ``min_{W, Ω} sum_t L_t + alpha ||W||_F^2 + beta tr(Wᵀ Ω^{-1} W)``.

    subject to ``Ω ≻ 0``, ``tr Ω = 1`` (Ω is the ``n_tasks x n_tasks`` task covariance). Zhang & Yeung,
    "A Convex Formulation for Learning Task Relationships in Multi-Task Learning", UAI 2010 (their
    ``λ1 / 2`` and ``λ2 / 2`` are ``alpha`` and ``beta`` here). Solved by alternating a FISTA solve in
    ``W`` for fixed Ω (the quadratic penalty is applied through its exact prox) with the closed form
    ``Ω = (W Wᵀ)^{1/2} / tr((W Wᵀ)^{1/2})`` (with a relative ``1e-6`` ridge to keep Ω invertible), until the
    objective changes by less than ``tol`` (relative). Starts from Ω = I / T.

    Parameters
    ----------
    alpha : float, default=1e-2
        Ridge strength.
    beta : float, default=1e-2
        Strength of the task-relationship term.
    loss : str, sequence of str or mapping, default="squared"
        ``"squared"``, ``"logistic"`` or ``"squared_hinge"``: one for all tasks, one per task, or ``{task: name}``.
    fit_intercept, tol, max_iter, warm_start
        As in :class:`IndependentLinear` (``max_iter`` bounds each W solve).

    Attributes
    ----------
    task_covariance_ : ndarray of shape (n_tasks, n_tasks)
        The learned Ω (trace 1), rows and columns in the order of :attr:`tasks_`.
    task_correlation_ : ndarray of shape (n_tasks, n_tasks)
        Ω scaled to a unit diagonal: positive for tasks that help each other, negative for opposed tasks.
    Other attributes as in :class:`IndependentLinear`; ``n_iter_`` counts all solver iterations,
    ``objective_`` holds the objective after each alternation.
    """

    regularization_params: ClassVar[tuple[str, ...]] = ("alpha", "beta")
    param_grid: ClassVar[dict[str, tuple[float, ...]]] = {"alpha": (1e-3, 1e-2, 1e-1), "beta": (1e-3, 1e-2, 1e-1)}

    def __init__(self, alpha: float = 1e-2, beta: float = 1e-2, *, loss: Any = "squared",
                 fit_intercept: bool = True, tol: float = 1e-4, max_iter: int = 2000,
                 warm_start: bool = False) -> None:
        self.alpha = alpha
        self.beta = beta
        self.loss = loss
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _w_penalty(self, omega: Array) -> Penalty:
        inverse = np.linalg.inv(omega)
        return Blocks([TaskQuadratic(0.5 * (inverse + inverse.T), self.beta, self.alpha)])

    def _solve(self, backend: Backend, coef: Array, intercept: Array) -> SolverResult:
        omega = task_covariance(coef[0])
        history: list[float] = []
        n_iter, converged, previous = 0, False, math.inf
        for _ in range(_MAX_ALTERNATIONS):
            result = fista(backend, self._w_penalty(omega), coef, intercept, fit_intercept=self.fit_intercept,
                           tol=self.tol, max_iter=self.max_iter)
            coef, intercept, n_iter = result.coef, result.intercept, n_iter + result.n_iter
            omega = task_covariance(coef[0])
            value = backend.loss(coef[0], intercept) + self._w_penalty(omega).value(coef)
            history.append(value)
            if abs(previous - value) <= self.tol * max(abs(value), 1e-12):
                converged = result.converged
                break
            previous = value
        self.task_covariance_ = omega
        scale = np.sqrt(np.diag(omega))
        self.task_correlation_ = omega / np.outer(scale, scale)
        return SolverResult(coef, intercept, n_iter, converged, history)
