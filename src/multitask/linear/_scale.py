"""Where each regularization strength reaches its limit, measured on the data: the unit of the search spaces.

Two quantities of the loss at ``W = 0`` (intercepts at their best constants) set every scale:

* ``gradient`` ``G`` (n_tasks, n_features): a norm penalty ``alpha ||W||`` has ``W = 0`` as its solution
  exactly when ``alpha >= ||G||_dual`` (the dual norm), so that value is the norm's scale;
* ``curvature`` ``h_t``: the largest eigenvalue of task ``t``'s loss Hessian in ``w_t`` (its centred feature
  covariance times the loss's second derivative at its best constant). A quadratic penalty
  ``c tr(Wᵀ M W)`` whose curvature ``2 c mu`` exceeds ``1000 h_max`` on the directions it penalizes
  (``mu`` the smallest positive eigenvalue of ``M``) leaves those directions within about ``1e-3`` of
  their limit (0, or pooled); its scale is ``QUADRATIC_LIMIT h_max / mu``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from multitask.linear._backend import ArrayBackend, Backend, Matrix
from multitask.linear._losses import LOSSES, Loss

Array = NDArray[np.float64]
#: a quadratic penalty's scale in units of ``h_max / mu``: its curvature is then 1000 times the loss's
QUADRATIC_LIMIT = 500.0
_POWER_ITERATIONS = 200


@dataclass
class ScaleInputs:
    """The loss at ``W = 0`` of one data set: ``gradient`` and per-task ``curvature`` (computed when asked)."""

    X: Matrix
    rows: Sequence[NDArray[np.intp]]
    targets: Sequence[Array]
    losses: Sequence[Loss]
    backend: Backend  # the fit's backend: the sum of the tasks' mean losses
    intercept: Array  # the best constant of each task (0 without intercepts)
    fit_intercept: bool

    @cached_property
    def gradient(self) -> Array:
        """``∇_W L(0, b)`` with ``b`` the best constants (so ``∇_b L = 0``)."""
        zero = np.zeros((self.backend.n_tasks, self.backend.n_features))
        return self.backend.loss_and_grad(zero, self.intercept)[1]

    @cached_property
    def curvature(self) -> Array:
        """``h_t = mean_i loss''(b_t, y_i) * λ_max(C_t)``, ``C_t`` the (centred) covariance of task t's rows."""
        n_tasks = len(self.rows)
        squared = ArrayBackend(self.X, self.rows, [np.zeros(len(r)) for r in self.rows], [LOSSES["squared"]] * n_tasks)
        if self.fit_intercept:
            means = np.vstack([np.asarray(self.X[r].mean(axis=0)).ravel() for r in self.rows])
        else:
            means = np.zeros((n_tasks, self.X.shape[1]))
        # power iteration on every task at once: with zero targets and b_t = -m_t·w_t, the squared loss's
        # gradient in w_t is C_t w_t
        V = np.random.default_rng(0).standard_normal((n_tasks, self.X.shape[1]))
        V /= np.linalg.norm(V, axis=1, keepdims=True)
        top = np.zeros(n_tasks)
        for _ in range(_POWER_ITERATIONS):
            CV = squared.loss_and_grad(V, -np.einsum("ij,ij->i", means, V))[1]
            norms = np.linalg.norm(CV, axis=1)
            V = CV / np.where(norms > 0, norms, 1.0)[:, None]
            done = bool(np.all(np.abs(norms - top) <= 1e-4 * norms))
            top = norms
            if done:
                break
        # centring through Gram matrices cancels: below round-off of the raw second moment, there is no curvature
        squares = np.asarray((self.X.multiply(self.X) if sp.issparse(self.X) else self.X * self.X).sum(axis=1)).ravel()
        top[top <= 1e-10 * np.array([float(squares[r].mean()) for r in self.rows])] = 0.0
        factor = np.array([float(np.mean(loss.curvature(np.full(len(y), b), y)))
                           for loss, y, b in zip(self.losses, self.targets, self.intercept, strict=True)])
        return factor * top

    @property
    def max_curvature(self) -> float:
        return float(self.curvature.max()) if self.curvature.size else 0.0


def smallest_positive_eigenvalue(M: Array) -> float:
    """The smallest eigenvalue of the PSD matrix ``M`` above round-off (0 when ``M`` is 0)."""
    mu = np.linalg.eigvalsh(M)
    positive = mu[mu > 1e-10 * max(float(mu.max()), 0.0)] if mu.size else mu
    return float(positive.min()) if positive.size else 0.0


# ---- default grids, in units of the scale (their ends bound each formulation's search space) ------------
#: a norm's strength: from 1e-4 of the one that zeroes W (effectively unregularized) to it
NORM_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
#: a norm's strength when it is the second parameter of a grid
NORM_GRID_SHORT = (1e-4, 1e-2, 1.0)
#: a quadratic strength: from curvature 1e-4 of the loss's (effectively unregularized) to 1e3 times it
QUADRATIC_GRID = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
#: a quadratic strength when it is the second parameter of a grid
QUADRATIC_GRID_SHORT = (1e-7, 1e-3, 1.0)
