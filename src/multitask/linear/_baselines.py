"""Baselines: one independent model per task, and one model pooled over all tasks."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from multitask.linear._base import LinearMTL
from multitask.linear._penalties import Blocks, EqualRows, Penalty, TaskQuadratic
from multitask.linear._scale import QUADRATIC_GRID, QUADRATIC_LIMIT, ScaleInputs


class IndependentLinear(LinearMTL):
    """Independent per-task models: ``min sum_t L_t(w_t, b_t) + alpha ||W||_F^2`` (ridge / L2-logistic per task).

    The tasks share nothing; this is the single-task baseline every multi-task formulation should beat.

    Parameters
    ----------
    alpha : float, default=1e-2
        Ridge strength on every task's weights.
    loss : str, sequence of str or mapping, default="squared"
        ``"squared"``, ``"logistic"`` or ``"squared_hinge"``; one name for all tasks, one per task (in the
        order of :attr:`tasks_`), or ``{task: name}``.
    fit_intercept : bool, default=True
        Fit an unpenalized intercept per task.
    tol : float, default=1e-5
        Solver tolerance: stop when the proximal gradient mapping is below ``tol`` times the loss gradient
        at ``W = 0``.
    max_iter : int, default=5000
        Maximum number of solver iterations.
    warm_start : bool, default=False
        Start from the previous solution when refitting with the same shapes.

    Attributes
    ----------
    coef_ : ndarray of shape (n_tasks, n_features)
    intercept_ : ndarray of shape (n_tasks,)
    tasks_ : ndarray of shape (n_tasks,)
        Task labels: sorted task ids (long form), column names or 0..T-1 (wide form).
    losses_ : list of str
    task_classes_ : list of (ndarray of shape (2,) or None)
        The two classes of each classification task (mapped to 0/1), None for regression tasks.
    n_iter_ : int
    n_passes_ : int
        Evaluations of the loss over all the data (each a pass over X: a job on a cluster).
    n_restricted_passes_ : int
        Evaluations over the columns of a working set only (0 without one).
    objective_ : ndarray
        Objective value after each accepted solver iteration.
    """

    regularization_params: ClassVar[tuple[str, ...]] = ("alpha",)
    param_grid: ClassVar[dict[str, tuple[float, ...]]] = {"alpha": QUADRATIC_GRID}

    def __init__(self, alpha: float = 1e-2, *, loss: Any = "squared", fit_intercept: bool = True,
                 tol: float = 1e-5, max_iter: int = 5000, warm_start: bool = False) -> None:
        self.alpha = alpha
        self.loss = loss
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _penalty(self, n_tasks: int) -> Penalty:
        return Blocks([TaskQuadratic(np.zeros((n_tasks, n_tasks)), 0.0, self.alpha)])

    def _scales(self, inputs: ScaleInputs) -> dict[str, float]:
        return {"alpha": QUADRATIC_LIMIT * inputs.max_curvature}


class PooledLinear(LinearMTL):
    """One model pooled over all tasks: ``min_w sum_t L_t(w, b_t) + alpha ||w||^2`` (every ``w_t = w``).

    Each task keeps its own unpenalized intercept ``b_t``; the weights are shared. Parameters and attributes
    as in :class:`IndependentLinear` (``coef_`` repeats ``w`` on every row).
    """

    regularization_params: ClassVar[tuple[str, ...]] = ("alpha",)
    param_grid: ClassVar[dict[str, tuple[float, ...]]] = {"alpha": QUADRATIC_GRID}

    def __init__(self, alpha: float = 1e-2, *, loss: Any = "squared", fit_intercept: bool = True,
                 tol: float = 1e-5, max_iter: int = 5000, warm_start: bool = False) -> None:
        self.alpha = alpha
        self.loss = loss
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start

    def _penalty(self, n_tasks: int) -> Penalty:
        return Blocks([EqualRows(self.alpha)])

    def _scales(self, inputs: ScaleInputs) -> dict[str, float]:
        # the shared w carries the curvature of every task's loss
        return {"alpha": QUADRATIC_LIMIT * float(inputs.curvature.sum())}
