"""Low-rank formulations: trace norm, sparse + low rank, and robust MTL (low rank + outlier tasks)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from multitask.linear._base import LinearMTL
from multitask.linear._penalties import Blocks, GroupNorm, L1Norm, NuclearNorm, Penalty
from multitask.linear._scale import NORM_GRID, NORM_GRID_SHORT, ScaleInputs


class TraceNorm(LinearMTL):
    """Low-rank MTL: ``min sum_t L_t(w_t, b_t) + alpha ||W||_*`` (trace / nuclear norm, sum of singular values).

    Task weight vectors share a low-dimensional subspace (Ji & Ye, ICML 2009; Pong et al., 2010; MALSAR
    ``Least_Trace``).

    Parameters
    ----------
    alpha : float, default=1e-2
        Trace-norm strength.
    loss : str, sequence of str or mapping, default="squared"
        ``"squared"``, ``"logistic"`` or ``"squared_hinge"``: one for all tasks, one per task, or ``{task: name}``.
    fit_intercept, tol, max_iter, warm_start
        As in :class:`IndependentLinear`.

    Attributes are those of :class:`IndependentLinear`.
    """

    regularization_params: ClassVar[tuple[str, ...]] = ("alpha",)
    param_grid: ClassVar[dict[str, tuple[float, ...]]] = {"alpha": NORM_GRID}

    def __init__(self, alpha: float = 1e-2, *, loss: Any = "squared", fit_intercept: bool = True,
                 tol: float = 1e-5, max_iter: int = 5000, warm_start: bool = False) -> None:
        self.alpha = alpha
        self.loss = loss
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _penalty(self, n_tasks: int) -> Penalty:
        return Blocks([NuclearNorm(self.alpha)])

    def _scales(self, inputs: ScaleInputs) -> dict[str, float]:
        return {"alpha": NuclearNorm(1.0).dual_norm(inputs.gradient)}


class SparseLowRank(LinearMTL):
    """Sparse + low rank: ``W = P + Q``, ``min sum_t L_t + alpha_sparse ||P||_1 + alpha_low_rank ||Q||_*``.

    Chen, Liu & Ye, "Learning Incoherent Sparse and Low-Rank Patterns from Multiple Tasks", KDD 2010 / TKDD
    2012 (MALSAR ``Least_SparseTrace``), in penalized form: the paper (and MALSAR) bound ``||Q||_*`` by a
    constraint; the penalty here is its Lagrangian form.

    Parameters
    ----------
    alpha_sparse : float, default=1e-2
        ℓ1 strength on ``P``.
    alpha_low_rank : float, default=1e-2
        Trace-norm strength on ``Q``.
    loss : str, sequence of str or mapping, default="squared"
        ``"squared"``, ``"logistic"`` or ``"squared_hinge"``: one for all tasks, one per task, or ``{task: name}``.
    fit_intercept, tol, max_iter, warm_start
        As in :class:`IndependentLinear`.

    Attributes
    ----------
    sparse_coef_ : ndarray of shape (n_tasks, n_features)
        ``P``.
    low_rank_coef_ : ndarray of shape (n_tasks, n_features)
        ``Q``; ``coef_ = P + Q``. Other attributes as in :class:`IndependentLinear`.
    """

    regularization_params: ClassVar[tuple[str, ...]] = ("alpha_sparse", "alpha_low_rank")
    param_grid: ClassVar[dict[str, tuple[float, ...]]] = {"alpha_sparse": NORM_GRID,
                                                           "alpha_low_rank": NORM_GRID_SHORT}
    _n_blocks: ClassVar[int] = 2

    def __init__(self, alpha_sparse: float = 1e-2, alpha_low_rank: float = 1e-2, *, loss: Any = "squared",
                 fit_intercept: bool = True, tol: float = 1e-5, max_iter: int = 5000,
                 warm_start: bool = False) -> None:
        self.alpha_sparse = alpha_sparse
        self.alpha_low_rank = alpha_low_rank
        self.loss = loss
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _penalty(self, n_tasks: int) -> Penalty:
        return Blocks([L1Norm(self.alpha_sparse), NuclearNorm(self.alpha_low_rank)])

    def _scales(self, inputs: ScaleInputs) -> dict[str, float]:
        G = inputs.gradient
        return {"alpha_sparse": L1Norm(1.0).dual_norm(G), "alpha_low_rank": NuclearNorm(1.0).dual_norm(G)}

    def _set_parts(self, coef: np.ndarray) -> None:
        self.sparse_coef_, self.low_rank_coef_ = coef[0], coef[1]


class Robust(LinearMTL):
    """Robust MTL: ``W = L + S``, ``min sum_t L_t + alpha_low_rank ||L||_* + alpha_outlier sum_t ||s_t||_2``.

    ``L`` is low rank (the related tasks); ``S`` is group sparse over tasks (ℓ1,2: the sum over tasks of the
    norm of each task's row), so a task with nonzero ``s_t`` is an outlier task. Chen, Zhou & Ye, "Integrating
    Low-Rank and Group-Sparse Structures for Robust Multi-Task Learning", KDD 2011 (MALSAR ``Least_RMTL``).

    Parameters
    ----------
    alpha_low_rank : float, default=1e-2
        Trace-norm strength on ``L``.
    alpha_outlier : float, default=1e-2
        Task-wise group-sparsity strength on ``S``.
    loss : str, sequence of str or mapping, default="squared"
        ``"squared"``, ``"logistic"`` or ``"squared_hinge"``: one for all tasks, one per task, or ``{task: name}``.
    fit_intercept, tol, max_iter, warm_start
        As in :class:`IndependentLinear`.

    Attributes
    ----------
    low_rank_coef_ : ndarray of shape (n_tasks, n_features)
        ``L``.
    outlier_coef_ : ndarray of shape (n_tasks, n_features)
        ``S``; ``coef_ = L + S``.
    outlier_tasks_ : ndarray
        Labels of the tasks whose row of ``S`` is nonzero. Other attributes as in :class:`IndependentLinear`.
    """

    regularization_params: ClassVar[tuple[str, ...]] = ("alpha_low_rank", "alpha_outlier")
    param_grid: ClassVar[dict[str, tuple[float, ...]]] = {"alpha_low_rank": NORM_GRID,
                                                           "alpha_outlier": NORM_GRID_SHORT}
    _n_blocks: ClassVar[int] = 2

    def __init__(self, alpha_low_rank: float = 1e-2, alpha_outlier: float = 1e-2, *, loss: Any = "squared",
                 fit_intercept: bool = True, tol: float = 1e-5, max_iter: int = 5000,
                 warm_start: bool = False) -> None:
        self.alpha_low_rank = alpha_low_rank
        self.alpha_outlier = alpha_outlier
        self.loss = loss
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _penalty(self, n_tasks: int) -> Penalty:
        return Blocks([NuclearNorm(self.alpha_low_rank), GroupNorm(self.alpha_outlier, "tasks")])

    def _scales(self, inputs: ScaleInputs) -> dict[str, float]:
        G = inputs.gradient
        return {"alpha_low_rank": NuclearNorm(1.0).dual_norm(G), "alpha_outlier": GroupNorm(1.0, "tasks").dual_norm(G)}

    def _set_parts(self, coef: np.ndarray) -> None:
        self.low_rank_coef_, self.outlier_coef_ = coef[0], coef[1]
        self.outlier_tasks_ = self.tasks_[np.linalg.norm(coef[1], axis=1) > 0]
