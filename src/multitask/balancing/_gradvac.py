"""Gradient vaccine (Wang, Tsvetkov, Firat & Cao, 2021): GradVac on the whole shared part."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task


def gradvac_coefficients(
    gramian: torch.Tensor, targets: torch.Tensor, beta: float, eps: float, generator: torch.Generator
) -> torch.Tensor:
    """``C`` (T × T) with ``g_i^GV = Σ_k C_ik g_k``; updates the EMA cosine targets ``φ̂`` (T × T) in place.

    For each task ``i``, over the other tasks ``j`` in a random order (drawn from ``generator``):
    ``φ = g_i^GV · g_j / (‖g_i^GV‖ ‖g_j‖ + eps)``; if ``φ < φ̂_ij``, then ``g_i^GV += c g_j`` with
    ``c = ‖g_i^GV‖ (φ̂_ij √(1 − φ²) − φ √(1 − φ̂_ij²)) / (‖g_j‖ √(1 − φ̂_ij²) + eps)``; then
    ``φ̂_ij ← (1 − β) φ̂_ij + β φ``. Only inner products enter, so the work is on ``G = J Jᵀ`` (CPU, float64),
    divided by its mean diagonal so that ``eps`` is relative to the gradients' scale.
    """
    g = gramian.detach().double().cpu()
    t = g.shape[0]
    mean_square = float(torch.diagonal(g).mean())
    if mean_square > 0:
        g = g / mean_square
    norms = torch.diagonal(g).clamp(min=0).sqrt()
    c = torch.eye(t, dtype=torch.float64)
    for i in range(t):
        dots = g[i].clone()  # g_i^GV · g_k for every k
        others = [j for j in range(t) if j != i]
        for index in torch.randperm(len(others), generator=generator).tolist():
            j = others[index]
            norm_i = math.sqrt(max(float(dots @ c[i]), 0.0))
            phi = float(dots[j]) / (norm_i * float(norms[j]) + eps)
            target = float(targets[i, j])
            if phi < target:
                root_phi = math.sqrt(max(1 - phi * phi, 0.0))
                root_target = math.sqrt(max(1 - target * target, 0.0))
                step = (
                    norm_i * (target * root_phi - phi * root_target) / (float(norms[j]) * root_target + eps)
                )
                c[i, j] += step
                dots += step * g[j]
            targets[i, j] = (1 - beta) * target + beta * phi
    return c


class GradVac(Balancing):
    """``d = Σ_i g_i^GV``: each task gradient pulled towards the EMA of its cosines with the others (GradVac).

    Wang, Tsvetkov, Firat & Cao, "Gradient vaccine: investigating and improving multi-task optimization in
    massively multilingual models", ICLR 2021 (Algorithm 1, one group: the whole shared part). Where the
    cosine ``φ`` of ``g_i^GV`` and ``g_j`` falls below its target ``φ̂_ij`` (an EMA of past cosines, 0 at
    first), a multiple of ``g_j`` is added to ``g_i^GV`` so that their cosine becomes ``φ̂_ij``; see
    :func:`gradvac_coefficients`. ``d = cᵀ J`` with ``c = 1ᵀ C`` the implied (logged) weights (≥ 1).

    Own code, the same arithmetic as torchjd 0.18's ``GradVacWeighting`` (the tests check it), which draws
    the order from the global random generator and keeps ``φ̂`` in a buffer created on the first call, which
    a fresh instance refuses in ``load_state_dict``: here the order comes from :meth:`generator` and ``φ̂`` is
    a (T × T) buffer. Unlike torchjd, the Gramian is divided by its mean diagonal first, so that ``eps`` does
    not shrink the cosines of small gradients.

    Args:
        tasks: the tasks, in the order of the losses.
        beta: the EMA rate of the targets in [0, 1], default 0.5 (torchjd's).
        eps: added to the denominators, default 1e-8 (torchjd's).
        of: "parameters" (default) or "representation": where the task gradients are taken.
    """

    needs = "gramian"
    stochastic = True

    def __init__(
        self, tasks: Sequence[Task | str], beta: float = 0.5, eps: float = 1e-8, of: str = "parameters"
    ) -> None:
        super().__init__(task_names(list(tasks)), of)
        if not (math.isfinite(beta) and 0 <= beta <= 1):
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        if not (math.isfinite(eps) and eps >= 0):
            raise ValueError(f"eps must be finite and >= 0, got {eps}")
        self.beta, self.eps = float(beta), float(eps)
        t = len(self.tasks)
        #: the EMA targets φ̂ of the pairwise cosines (row i: the modified gradient of task i)
        self.register_buffer("targets", torch.zeros(t, t, dtype=torch.float64))
        self.targets: torch.Tensor

    def weigh(self, gramian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """The implied weights ``c = 1ᵀ C`` (T,): ``Σ_i g_i^GV = cᵀ J``."""
        targets = self.targets.detach().double().cpu().clone()
        c = gradvac_coefficients(gramian, targets, self.beta, self.eps, self.generator())
        self.targets.copy_(targets)
        weights = c.sum(dim=0).to(gramian.device)
        self.weights_ = weights
        return weights
