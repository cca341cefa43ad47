"""Sparse formulations: Lasso per task, joint feature selection (ℓ2,1) and the dirty model (ℓ1 + ℓ1,∞)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from multitask.linear._base import LinearMTL
from multitask.linear._penalties import Blocks, GroupNorm, L1InfNorm, L1Norm, Penalty
from multitask.linear._scale import NORM_GRID, NORM_GRID_SHORT, ScaleInputs


class Lasso(LinearMTL):
    """Lasso per task: ``min sum_t L_t(w_t, b_t) + alpha sum_tj |W_tj|`` (Tibshirani, 1996).

    No sharing between tasks beyond the common ``alpha``; the sparse baseline beside :class:`L21`.

    Parameters
    ----------
    alpha : float, default=1e-2
        ℓ1 strength.
    loss : str, sequence of str or mapping, default="squared"
        ``"squared"``, ``"logistic"`` or ``"squared_hinge"``: one for all tasks, one per task, or ``{task: name}``.
    fit_intercept, tol, max_iter, warm_start
        As in :class:`IndependentLinear`.
    working_set : bool or "auto", default="auto"
        Solve on working sets of features, grown until the zeros of the others are optimal (see
        :mod:`multitask.linear._working_set`): the same solution in fewer passes over the data when many
        features end at zero. ``"auto"``: from 500 features on, when the data's backend can restrict its
        columns (in memory it can).

    Attributes are those of :class:`IndependentLinear`.
    """

    regularization_params: ClassVar[tuple[str, ...]] = ("alpha",)
    param_grid: ClassVar[dict[str, tuple[float, ...]]] = {"alpha": NORM_GRID}

    def __init__(self, alpha: float = 1e-2, *, loss: Any = "squared", fit_intercept: bool = True,
                 tol: float = 1e-5, max_iter: int = 5000, warm_start: bool = False,
                 working_set: bool | str = "auto") -> None:
        self.alpha = alpha
        self.loss = loss
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start
        self.working_set = working_set

    def _penalty(self, n_tasks: int) -> Penalty:
        return Blocks([L1Norm(self.alpha)])

    def _scales(self, inputs: ScaleInputs) -> dict[str, float]:
        return {"alpha": L1Norm(1.0).dual_norm(inputs.gradient)}


class L21(LinearMTL):
    """Joint feature selection: ``min sum_t L_t(w_t, b_t) + alpha sum_j ||W_{:, j}||_2`` (ℓ2,1 norm).

    A feature is used by all tasks or by none (Obozinski, Taskar & Jordan, 2010; Argyriou, Evgeniou &
    Pontil, 2008; MALSAR ``Least_L21``). With squared loss and every task on the same rows it is
    scikit-learn's ``MultiTaskLasso``: ``(1 / (2n)) ||Y - XW^T||_F^2 + alpha ||W||_21``.

    Parameters
    ----------
    alpha : float, default=1e-2
        ℓ2,1 strength.
    loss : str, sequence of str or mapping, default="squared"
        ``"squared"``, ``"logistic"`` or ``"squared_hinge"``: one for all tasks, one per task, or ``{task: name}``.
    fit_intercept, tol, max_iter, warm_start
        As in :class:`IndependentLinear`.
    working_set : bool or "auto", default="auto"
        Solve on working sets of features, grown until the zeros of the others are optimal (see
        :mod:`multitask.linear._working_set`): the same solution in fewer passes over the data when many
        features end at zero. ``"auto"``: from 500 features on, when the data's backend can restrict its
        columns (in memory it can).

    Attributes are those of :class:`IndependentLinear`.
    """

    regularization_params: ClassVar[tuple[str, ...]] = ("alpha",)
    param_grid: ClassVar[dict[str, tuple[float, ...]]] = {"alpha": NORM_GRID}

    def __init__(self, alpha: float = 1e-2, *, loss: Any = "squared", fit_intercept: bool = True,
                 tol: float = 1e-5, max_iter: int = 5000, warm_start: bool = False,
                 working_set: bool | str = "auto") -> None:
        self.alpha = alpha
        self.loss = loss
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start
        self.working_set = working_set

    def _penalty(self, n_tasks: int) -> Penalty:
        return Blocks([GroupNorm(self.alpha, "features")])

    def _scales(self, inputs: ScaleInputs) -> dict[str, float]:
        return {"alpha": GroupNorm(1.0, "features").dual_norm(inputs.gradient)}


class Dirty(LinearMTL):
    """Dirty model: ``W = P + Q``, ``min sum_t L_t + alpha_sparse ||P||_1 + alpha_group sum_j max_t |Q_tj|``.

    ``P`` is elementwise sparse (task-specific features); ``Q`` is row-sparse in the ℓ1,∞ sense (features
    shared by all tasks with similar magnitudes), as in Jalali, Ravikumar, Sanghavi & Ruan, "A Dirty Model
    for Multi-task Learning", NeurIPS 2010 (and MALSAR ``Least_Dirty``).

    Parameters
    ----------
    alpha_sparse : float, default=1e-2
        ℓ1 strength on ``P``.
    alpha_group : float, default=1e-2
        ℓ1,∞ strength on ``Q`` (sum over features of the largest absolute weight across tasks).
    loss : str, sequence of str or mapping, default="squared"
        ``"squared"``, ``"logistic"`` or ``"squared_hinge"``: one for all tasks, one per task, or ``{task: name}``.
    fit_intercept, tol, max_iter, warm_start
        As in :class:`IndependentLinear`.
    working_set : bool or "auto", default="auto"
        Solve on working sets of features, grown until the zeros of the others are optimal (see
        :mod:`multitask.linear._working_set`): the same solution in fewer passes over the data when many
        features end at zero. ``"auto"``: from 500 features on, when the data's backend can restrict its
        columns (in memory it can).

    Attributes
    ----------
    sparse_coef_ : ndarray of shape (n_tasks, n_features)
        ``P``.
    group_coef_ : ndarray of shape (n_tasks, n_features)
        ``Q``; ``coef_ = P + Q``. Other attributes as in :class:`IndependentLinear`.
    """

    regularization_params: ClassVar[tuple[str, ...]] = ("alpha_sparse", "alpha_group")
    param_grid: ClassVar[dict[str, tuple[float, ...]]] = {"alpha_sparse": NORM_GRID,
                                                           "alpha_group": NORM_GRID_SHORT}
    _n_blocks: ClassVar[int] = 2

    def __init__(self, alpha_sparse: float = 1e-2, alpha_group: float = 1e-2, *, loss: Any = "squared",
                 fit_intercept: bool = True, tol: float = 1e-5, max_iter: int = 5000,
                 warm_start: bool = False, working_set: bool | str = "auto") -> None:
        self.alpha_sparse = alpha_sparse
        self.alpha_group = alpha_group
        self.loss = loss
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start
        self.working_set = working_set

    def _penalty(self, n_tasks: int) -> Penalty:
        return Blocks([L1Norm(self.alpha_sparse), L1InfNorm(self.alpha_group)])

    def _scales(self, inputs: ScaleInputs) -> dict[str, float]:
        G = inputs.gradient
        return {"alpha_sparse": L1Norm(1.0).dual_norm(G), "alpha_group": L1InfNorm(1.0).dual_norm(G)}

    def _set_parts(self, coef: np.ndarray) -> None:
        self.sparse_coef_, self.group_coef_ = coef[0], coef[1]
