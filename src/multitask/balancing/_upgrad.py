"""Unconflicting projection of gradients (Quinton & Rey, 2024), computed by torchjd."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task


def check_reg_eps(reg_eps: float) -> float:
    """``reg_eps`` as a float, or a ValueError naming it."""
    if not (math.isfinite(reg_eps) and reg_eps >= 0):
        raise ValueError(f"reg_eps must be finite and >= 0, got {reg_eps}")
    return float(reg_eps)


def dual_cone_weights(weighting: Callable[[torch.Tensor], torch.Tensor], gramian: torch.Tensor) -> torch.Tensor:
    """torchjd's dual-cone ``weighting`` of ``G`` in float64, or ``1/T`` when every gradient is zero."""
    g = gramian.detach().double()
    if float(torch.diagonal(g).sum()) > 0:
        return weighting(g)
    return torch.full((g.shape[0],), 1.0 / g.shape[0], dtype=torch.float64, device=g.device)


class UPGrad(Balancing):
    """``d = (1/T) Σ_i π(g_i)``, each ``g_i`` projected onto the dual cone ``{x : g_t · x ≥ 0 ∀t}`` (UPGrad).

    Quinton & Rey, "Jacobian descent for multi-objective optimization", arXiv:2406.16232, 2024 (the
    aggregator UPGrad). By duality ``π(g_i) = v_iᵀ J`` with ``v_i = argmin_{v ≥ e_i} vᵀ G v``, so
    ``d = wᵀ J`` with ``w = (1/T) Σ_i v_i`` (≥ 1/T): a weighting of ``G = J Jᵀ``. ``d`` conflicts with no
    task gradient (``g_t · d ≥ 0``) and is the mean gradient when they do not conflict.

    Computed by torchjd's ``UPGradWeighting`` (quadprog on the Gramian divided by its trace plus
    ``reg_eps · I``, so the non-conflict holds up to about ``reg_eps · trace(G)``). The trace is divided out
    for every non-zero ``G`` (torchjd's own threshold of 1e-4 on the trace is set to 0: small gradients are
    projected too); all zero gradients give ``w = 1/T``. The logged weights are ``w``.

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
        from torchjd.aggregation import UPGradWeighting
        from torchjd.linalg import QuadprogProjector

        self._weighting = UPGradWeighting(projector=QuadprogProjector(norm_eps=0.0, reg_eps=self.reg_eps))

    def weigh(self, gramian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """UPGrad's weights ``w = (1/T) Σ_i v_i`` (T,) of ``G``."""
        w = dual_cone_weights(self._weighting, gramian)
        self.weights_ = w
        return w
