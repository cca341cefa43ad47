"""Clustered MTL, convex relaxation (cCMTL): alternating a FISTA step in W with a closed-form step in M."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from multitask.errors import ConfigError
from multitask.linear._backend import Backend
from multitask.linear._base import LinearMTL
from multitask.linear._penalties import Blocks, Penalty, TaskQuadratic
from multitask.linear._scale import QUADRATIC_LIMIT, ScaleInputs
from multitask.linear._solver import SolverResult, fista

Array = NDArray[np.float64]
_MAX_ALTERNATIONS = 100


def cluster_matrix(W: Array, n_clusters: int, eta: float) -> Array:
    """``argmin_M tr(Wᵀ (eta I + M)^{-1} W)`` over ``{tr M = k, 0 ≼ M ≼ I}`` (Zhou, Chen & Ye, NeurIPS 2011).

    With ``W Wᵀ = U diag(σ^2) Uᵀ``, ``M = U diag(γ) Uᵀ`` where ``γ_i = clip(θ σ_i - eta, 0, 1)`` and ``θ``
    is set by bisection so that ``sum γ = k``.
    """
    n_tasks = W.shape[0]
    if n_clusters >= n_tasks:
        return np.eye(n_tasks)
    sigma2, U = np.linalg.eigh(W @ W.T)
    sigma = np.sqrt(np.maximum(sigma2, 0.0))
    positive = sigma > 1e-12 * max(float(sigma.max()), 1e-300)
    if positive.sum() <= n_clusters:  # free directions cost nothing: fill them with what is left
        gamma = np.where(positive, 1.0, (n_clusters - positive.sum()) / max((~positive).sum(), 1))
    else:
        lo, hi = 0.0, (1.0 + eta) / float(sigma[positive].min())
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            if np.clip(mid * sigma - eta, 0.0, 1.0).sum() < n_clusters:
                lo = mid
            else:
                hi = mid
        gamma = np.clip(hi * sigma - eta, 0.0, 1.0)
    return (U * gamma) @ U.T


def cluster_similarity(M: Array) -> Array:
    """``S_st = M_st / sqrt(M_ss M_tt)``: ``M`` scaled to a unit diagonal (1 inside a cluster and 0 across for
    ``M = F Fᵀ``, whatever the clusters' sizes); 0 in the row and column of a task with ``M_tt = 0``."""
    d = np.sqrt(np.maximum(np.diag(M), 0.0))
    scale = np.outer(d, d)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(scale > 0, M / np.where(scale > 0, scale, 1.0), 0.0)
    np.fill_diagonal(s, 1.0)
    return np.asarray(s)


def cluster_labels(M: Array, n_clusters: int) -> NDArray[np.int64]:
    """Each task's cluster read off ``M``: average-linkage clustering of the tasks on the distance
    ``1 - S`` (:func:`cluster_similarity`), cut into ``min(n_clusters, n_tasks)`` clusters; clusters are
    numbered ``0, 1, ...`` in the order of their first task."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n_tasks = M.shape[0]
    k = min(int(n_clusters), n_tasks)
    if n_tasks == 1 or k == n_tasks:
        return np.arange(n_tasks, dtype=np.int64)
    s = cluster_similarity(M)
    distance = np.clip(1.0 - 0.5 * (s + s.T), 0.0, None)
    np.fill_diagonal(distance, 0.0)
    raw = fcluster(linkage(squareform(distance, checks=False), method="average"), t=k, criterion="maxclust")
    first: dict[int, int] = {}
    for label in raw:
        first.setdefault(int(label), len(first))
    return np.array([first[int(label)] for label in raw], dtype=np.int64)


class Clustered(LinearMTL):
    """Convex clustered MTL: ``min_{W, M} sum_t L_t + alpha eta (1 + eta) tr(Wᵀ (eta I + M)^{-1} W)``.

    subject to ``tr M = n_clusters``, ``0 ≼ M ≼ I`` (``M`` is ``n_tasks x n_tasks``). This is the convex
    relaxation of k-means clustering of the task weights of Jacob, Bach & Vert (NeurIPS 2008) in the form of
    Zhou, Chen & Ye, "Clustered Multi-Task Learning Via Alternating Structure Optimization", NeurIPS 2011
    (MALSAR ``Least_CMTL``, with ``rho1 = alpha`` and ``rho2 = alpha * eta``). The problem is jointly convex;
    it is solved by alternating the exact minimization in ``M`` (closed form, :func:`cluster_matrix`) with
    a FISTA solve in ``W`` (the quadratic penalty is applied through its exact prox), until the objective
    changes by less than ``tol`` (relative). ``n_clusters >= n_tasks`` gives ``M = I`` (ridge ``alpha eta``).

    Parameters
    ----------
    n_clusters : int, default=2
        Number of task clusters ``k``.
    alpha : float, default=0.1
        Strength of the clustering penalty (MALSAR ``rho1``).
    eta : float, default=0.1
        Ratio of the ridge-like term to the clustering term (MALSAR ``rho2 / rho1``); larger is closer to
        ridge, smaller is closer to pure clustering.
    loss : str, sequence of str or mapping, default="squared"
        ``"squared"``, ``"logistic"`` or ``"squared_hinge"``: one for all tasks, one per task, or ``{task: name}``.
    fit_intercept, tol, max_iter, warm_start
        As in :class:`IndependentLinear` (``max_iter`` bounds each W solve).

    Attributes
    ----------
    cluster_matrix_ : ndarray of shape (n_tasks, n_tasks)
        The fitted ``M``; tasks in one cluster have large ``M_st`` (``M ≈ F Fᵀ`` for a normalized cluster
        indicator ``F``). Other attributes as in :class:`IndependentLinear`; ``n_iter_`` counts all solver
        iterations, ``objective_`` holds the objective after each alternation.
    task_clusters_ : ndarray of shape (n_tasks,)
        Each task's cluster, ``0 .. n_clusters - 1`` numbered in the order of the clusters' first tasks
        (:func:`cluster_labels`: average-linkage clustering of ``M`` scaled to a unit diagonal, cut into
        ``n_clusters``); tasks in the order of :attr:`tasks_`.
    """

    regularization_params: ClassVar[tuple[str, ...]] = ("alpha", "eta")
    #: alpha's unit zeroes W for every eta in the grid (the penalty's curvature is 2 alpha eta or more);
    #: eta is a ratio (its unit is 1), from strong clustering (0.01) to nearly ridge (1)
    param_grid: ClassVar[dict[str, tuple[float, ...]]] = {"alpha": tuple(10.0**k for k in range(-9, 1)),
                                                          "eta": (0.01, 0.1, 1.0)}

    def __init__(self, n_clusters: int = 2, alpha: float = 0.1, eta: float = 0.1, *, loss: Any = "squared",
                 fit_intercept: bool = True, tol: float = 1e-5, max_iter: int = 5000,
                 warm_start: bool = False) -> None:
        self.n_clusters = n_clusters
        self.alpha = alpha
        self.eta = eta
        self.loss = loss
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _check_params(self) -> None:
        super()._check_params()
        if not (isinstance(self.n_clusters, int | np.integer) and self.n_clusters >= 1):
            raise ConfigError(f"n_clusters: must be a positive integer, got {self.n_clusters!r}")
        if not self.eta > 0:
            raise ConfigError(f"eta: must be positive, got {self.eta!r}")

    def _scales(self, inputs: ScaleInputs) -> dict[str, float]:
        eta_low = min(self.param_grid["eta"])
        return {"alpha": QUADRATIC_LIMIT * inputs.max_curvature / eta_low, "eta": 1.0}

    def _w_penalty(self, M: Array) -> Penalty:
        inner = np.linalg.inv(self.eta * np.eye(len(M)) + M)
        return Blocks([TaskQuadratic(0.5 * (inner + inner.T), self.alpha * self.eta * (1 + self.eta), 0.0)])

    def _solve(self, backend: Backend, coef: Array, intercept: Array) -> SolverResult:
        n_tasks = backend.n_tasks
        if np.any(coef):
            M = cluster_matrix(coef[0], self.n_clusters, self.eta)
        else:
            M = np.eye(n_tasks) * min(1.0, self.n_clusters / n_tasks)
        history: list[float] = []
        n_iter, converged, previous = 0, False, math.inf
        for _ in range(_MAX_ALTERNATIONS):
            result = fista(backend, self._w_penalty(M), coef, intercept, fit_intercept=self.fit_intercept,
                           tol=self.tol, max_iter=self.max_iter)
            coef, intercept, n_iter = result.coef, result.intercept, n_iter + result.n_iter
            M = cluster_matrix(coef[0], self.n_clusters, self.eta)
            value = backend.loss(coef[0], intercept) + self._w_penalty(M).value(coef)
            history.append(value)
            if abs(previous - value) <= self.tol * max(abs(value), 1e-12):
                converged = result.converged
                break
            previous = value
        self.cluster_matrix_ = M
        self.task_clusters_ = cluster_labels(M, self.n_clusters)
        return SolverResult(coef, intercept, n_iter, converged, history)
