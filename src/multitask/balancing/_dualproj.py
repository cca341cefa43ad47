"""The mean gradient projected onto the dual cone of the task gradients (DualProj), computed by torchjd."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from multitask.balancing._base import Balancing, task_names
from multitask.balancing._upgrad import check_reg_eps, dual_cone_weights
from multitask.tasks import Task


class DualProj(Balancing):
    """``d = π(g₀)``: the mean gradient projected onto the dual cone ``{x : g_t · x ≥ 0 ∀t}`` (DualProj).

    Lopez-Paz & Ranzato, "Gradient episodic memory for continual learning", NeurIPS 2017 (eq. 11, the
    projection of GEM), used as an aggregator by Quinton & Rey, "Jacobian descent for multi-objective
    optimization", arXiv:2406.16232, 2024. By duality ``d = wᵀ J`` with ``w = argmin_{w ≥ 1/T} wᵀ G w``
    (≥ 1/T), a weighting of ``G = J Jᵀ``; ``g_t · d ≥ 0`` for every task, and ``d = g₀`` when ``g₀``
    conflicts with no task gradient.

    Computed by torchjd's ``DualProjWeighting`` (quadprog on the Gramian divided by its trace plus
    ``reg_eps · I``, so the non-conflict holds up to about ``reg_eps · trace(G)``); torchjd's threshold of
    1e-4 on the trace is set to 0, and all zero gradients give ``w = 1/T``. The logged weights are ``w``.

    Args:
        tasks: the tasks, in the order of the losses.
        reg_eps: the ridge added to the trace-normalized Gramian, default 1e-4 (torchjd's).
        of: "parameters" (default) or "representation": where the task gradients are taken.
    """

    needs = "gramian"

    def __init__(self, tasks: Sequence[Task | str], reg_eps: float = 1e-4, of: str = "parameters") -> None:
        super().__init__(task_names(list(tasks)), of)
        self.reg_eps = check_reg_eps(reg_eps)
        # imported when used: torchjd loads cvxpy and scipy, which a run without it does not need
        from torchjd.aggregation import DualProjWeighting
        from torchjd.linalg import QuadprogProjector

        self._weighting = DualProjWeighting(projector=QuadprogProjector(norm_eps=0.0, reg_eps=self.reg_eps))

    def weigh(self, gramian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """DualProj's weights ``w = argmin_{w ≥ 1/T} wᵀ G w`` (T,)."""
        w = dual_cone_weights(self._weighting, gramian)
        self.weights_ = w
        return w
