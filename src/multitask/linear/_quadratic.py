"""Quadratic task coupling: mean-regularized MTL (Evgeniou & Pontil) and graph-regularized MTL."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from multitask.errors import ConfigError
from multitask.linear._base import LinearMTL
from multitask.linear._penalties import Blocks, Penalty, TaskQuadratic
from multitask.linear._scale import (
    QUADRATIC_GRID,
    QUADRATIC_GRID_SHORT,
    QUADRATIC_LIMIT,
    ScaleInputs,
    smallest_positive_eigenvalue,
)

_GRID = {"rho": QUADRATIC_GRID, "alpha": QUADRATIC_GRID_SHORT}


class MeanRegularized(LinearMTL):
    """Mean-regularized MTL: ``min sum_t L_t(w_t, b_t) + rho sum_t ||w_t - w̄||^2 + alpha ||W||_F^2``.

    Tasks are pulled towards their mean ``w̄`` (Evgeniou & Pontil, "Regularized multi-task learning",
    KDD 2004; MALSAR ``Least_CMTL`` with one cluster). With ``loss="squared_hinge"`` this is the
    (squared-hinge) multi-task SVM of that paper. The penalty is quadratic; the solver applies it exactly
    through its proximal operator.

    Parameters
    ----------
    rho : float, default=0.1
        Strength of the pull towards the mean.
    alpha : float, default=1e-3
        Small ridge on all weights (also shrinks the mean).
    loss : str, sequence of str or mapping, default="squared"
        ``"squared"``, ``"logistic"`` or ``"squared_hinge"``: one for all tasks, one per task, or ``{task: name}``.
    fit_intercept, tol, max_iter, warm_start
        As in :class:`IndependentLinear`.

    Attributes are those of :class:`IndependentLinear`.
    """

    regularization_params: ClassVar[tuple[str, ...]] = ("rho", "alpha")
    param_grid: ClassVar[dict[str, tuple[float, ...]]] = _GRID

    def __init__(self, rho: float = 0.1, alpha: float = 1e-3, *, loss: Any = "squared",
                 fit_intercept: bool = True, tol: float = 1e-5, max_iter: int = 5000,
                 warm_start: bool = False) -> None:
        self.rho = rho
        self.alpha = alpha
        self.loss = loss
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _penalty(self, n_tasks: int) -> Penalty:
        centering = np.eye(n_tasks) - np.full((n_tasks, n_tasks), 1.0 / n_tasks)
        return Blocks([TaskQuadratic(centering, self.rho, self.alpha)])

    def _scales(self, inputs: ScaleInputs) -> dict[str, float]:
        # the centring matrix has eigenvalues 1 (deviations from the mean) and 0 (the mean)
        limit = QUADRATIC_LIMIT * inputs.max_curvature
        return {"rho": limit, "alpha": limit}


class GraphRegularized(LinearMTL):
    """Graph-regularized MTL: ``min sum_t L_t + rho sum_{s<t} a_st ||w_s - w_t||^2 + alpha ||W||_F^2``.

    Tasks joined by an edge of weight ``a_st`` are pulled together; the penalty is ``rho tr(Wᵀ (D - A) W)``
    with the graph Laplacian ``D - A`` (e.g. Evgeniou, Micchelli & Pontil, JMLR 2005; MALSAR ``Least_SRMTL``).

    Parameters
    ----------
    adjacency : array-like of shape (n_tasks, n_tasks), default=None
        Symmetric non-negative task graph, rows and columns in the order of :attr:`tasks_` (sorted task ids
        in long form, the columns of ``y`` in wide form). None: the complete graph with unit weights.
    rho : float, default=0.1
        Strength of the graph coupling.
    alpha : float, default=1e-3
        Small ridge on all weights.
    loss : str, sequence of str or mapping, default="squared"
        ``"squared"``, ``"logistic"`` or ``"squared_hinge"``: one for all tasks, one per task, or ``{task: name}``.
    fit_intercept, tol, max_iter, warm_start
        As in :class:`IndependentLinear`.

    Attributes are those of :class:`IndependentLinear`.
    """

    regularization_params: ClassVar[tuple[str, ...]] = ("rho", "alpha")
    param_grid: ClassVar[dict[str, tuple[float, ...]]] = _GRID

    def __init__(self, adjacency: Any = None, rho: float = 0.1, alpha: float = 1e-3, *, loss: Any = "squared",
                 fit_intercept: bool = True, tol: float = 1e-5, max_iter: int = 5000,
                 warm_start: bool = False) -> None:
        self.adjacency = adjacency
        self.rho = rho
        self.alpha = alpha
        self.loss = loss
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _scales(self, inputs: ScaleInputs) -> dict[str, float]:
        limit = QUADRATIC_LIMIT * inputs.max_curvature
        connectivity = smallest_positive_eigenvalue(self._laplacian(len(inputs.rows)))  # 0 without edges
        return {"rho": limit / connectivity if connectivity > 0 else 0.0, "alpha": limit}

    def _penalty(self, n_tasks: int) -> Penalty:
        return Blocks([TaskQuadratic(self._laplacian(n_tasks), self.rho, self.alpha)])

    def _laplacian(self, n_tasks: int) -> np.ndarray:
        if self.adjacency is None:
            A = np.ones((n_tasks, n_tasks)) - np.eye(n_tasks)
        else:
            A = np.asarray(self.adjacency, dtype=float)
            if A.shape != (n_tasks, n_tasks):
                raise ConfigError(f"adjacency: expected shape ({n_tasks}, {n_tasks}) for {n_tasks} tasks, "
                                  f"got {A.shape}")
            if not np.allclose(A, A.T) or (A < 0).any() or not np.isfinite(A).all():
                raise ConfigError("adjacency: must be symmetric, finite and non-negative")
            A = A - np.diag(np.diag(A))
        return np.diag(A.sum(axis=1)) - A
