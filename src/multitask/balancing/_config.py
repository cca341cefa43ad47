"""Conflict-free updates (Liu, Chu & Thuerey, 2025): ConFIG, written as a weighting of the Gramian."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task


def config_weights(gramian: torch.Tensor) -> torch.Tensor:
    """``w = (1ᵀ G v / vᵀ G v) v`` with ``v = D^(−1/2) C⁺ 1``: ConFIG's ``d = wᵀ J`` from ``G = J Jᵀ`` alone.

    ``D = diag(G)``, ``C = D^(−1/2) G D^(−1/2)`` the cosines of the task gradients (a zero gradient gets a
    zero row). ConFIG's ``b = U⁺ 1`` for the unit gradients ``U = D^(−1/2) J`` is ``Uᵀ (U Uᵀ)⁺ 1 = vᵀ J``,
    ``‖b‖² = vᵀ G v``, and ``d = (Σ_t g_t · b̂) b̂ = wᵀ J``. Zeros when every gradient is zero.
    """
    g = gramian.detach().double()
    diag = torch.diagonal(g).clamp(min=0)
    inv_norms = torch.where(diag > 0, diag.rsqrt(), torch.zeros_like(diag))
    cosines = inv_norms[:, None] * g * inv_norms[None, :]
    v = inv_norms * (torch.linalg.pinv(cosines, hermitian=True) @ torch.ones_like(diag))
    squared = v @ g @ v
    if float(squared) <= 0:
        return torch.zeros_like(diag)
    return (g.sum(dim=0) @ v / squared) * v


class ConFIG(Balancing):
    """``d = (Σ_t g_t · b̂) b̂``, ``b̂ = b / ‖b‖``, ``b = U⁺ 1`` for the unit gradients ``U`` (ConFIG).

    Liu, Chu & Thuerey, "ConFIG: towards conflict-free training of physics informed neural networks",
    ICLR 2025 (eq. 2, with equal weights): ``b̂`` has the same positive cosine with every task gradient
    (when they are linearly independent), and ``d`` has the length of the sum of the gradients projected on
    it. Only inner products enter, so it is written on ``G = J Jᵀ``: ``d = wᵀ J`` with the implied weights
    of :func:`config_weights` (they can be negative). With linearly independent gradients ``d`` points as
    IMTL-G's direction; only the length differs.

    Own code: torchjd 0.18's ``ConFIG`` is an aggregator of ``J`` (the tests check that both give the same
    ``d``); the Gramian form needs no ``J`` (representation gradients, torchjd's autogram). The
    pseudo-inverse of the cosine matrix leaves out eigenvalues below ``T · eps`` of the largest.

    Args:
        tasks: the tasks, in the order of the losses.
        of: "parameters" (default) or "representation": where the task gradients are taken.
    """

    nonnegative = False

    needs = "gramian"

    def __init__(self, tasks: Sequence[Task | str], of: str = "parameters") -> None:
        super().__init__(task_names(list(tasks)), of)

    def weigh(self, gramian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """ConFIG's implied weights ``w`` (T,): ``d = wᵀ J``."""
        w = config_weights(gramian)
        self.weights_ = w
        return w
