"""Projecting conflicting gradients (Yu et al., 2020)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task


def pcgrad_coefficients(gramian: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``A`` (T × T) with ``g_i^PC = Σ_k A_ik g_k``: each ``g_i`` projected off the ``g_j`` it conflicts with.

    For each task ``i``, in a random order of the other tasks ``j`` (drawn from ``generator``): if
    ``g_i^PC · g_j < 0`` then ``g_i^PC ← g_i^PC − (g_i^PC · g_j / ‖g_j‖²) g_j`` (Yu et al., 2020, Alg. 1).
    Only inner products enter, so the work is on ``G = J Jᵀ``: ``g_i^PC · g_j = (A G)_ij``.
    """
    g = gramian.detach().double().cpu().numpy()
    t = g.shape[0]
    a = np.eye(t)
    for i in range(t):
        for j in torch.randperm(t, generator=generator).tolist():
            if j == i:
                continue
            dot = float(a[i] @ g[:, j])
            if dot < 0 and g[j, j] > 0:
                a[i, j] -= dot / g[j, j]
    return torch.as_tensor(a, dtype=torch.float64)


class PCGrad(Balancing):
    """``d = Σ_i g_i^PC``, each task gradient projected onto the normal plane of those it conflicts with (PCGrad).

    Yu, Kumar, Gupta, Levine, Hausman & Finn, "Gradient surgery for multi-task learning", NeurIPS 2020
    (Algorithm 1); see :func:`pcgrad_coefficients`. The random order of the other tasks is drawn from the
    generator seeded by ``(seed, epoch, step)``. ``d = cᵀ J`` with ``c = 1ᵀ A`` the implied (logged) weights.
    """

    needs = "gramian"
    stochastic = True

    def __init__(self, tasks: Sequence[Task | str], of: str = "parameters") -> None:
        super().__init__(task_names(list(tasks)), of)

    def weigh(self, gramian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """The implied weights ``c = 1ᵀ A``: ``Σ_i g_i^PC = cᵀ J``."""
        c = pcgrad_coefficients(gramian, self.generator()).sum(dim=0).to(gramian.device)
        self.weights_ = c
        return c
