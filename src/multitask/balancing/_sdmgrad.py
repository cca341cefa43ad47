"""Stochastic direction-oriented multi-objective gradient descent (Xiao, Ban & Ji, 2023): SDMGrad."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from multitask.balancing._base import Balancing, task_names
from multitask.balancing._mgda import project_simplex
from multitask.tasks import Task


class SDMGrad(Balancing):
    """``d = (g_w + λ g₀) / (1 + λ)``, ``w ≈ argmin_{w ∈ Δ} ½ ‖g_w + λ g₀‖²``, ``g₀`` the mean (SDMGrad).

    Xiao, Ban & Ji, "Direction-oriented multi-objective learning: simple and provable stochastic
    algorithms", NeurIPS 2023 (Algorithm 1): the direction closest to the min-norm one that stays within a
    region around the mean gradient; ``g_w = Σ_t w_t g_t``. The inner problem is solved approximately, as in
    the authors' code and torchjd: ``n_iter`` steps of projected gradient descent with momentum on
    ``Â = G / (mean_t √G_tt)²``, warm-started from the previous step's ``w`` (a buffer):
    ``v ← momentum · v + Â (w + λ/T)``, ``w ← Π_Δ(w − lr · v)``. The implied (logged) weights are
    ``(w + λ/T) / (1 + λ)`` (≥ 0, sum 1).

    Own code (a few lines) rather than torchjd 0.18's ``SDMGradWeighting``, whose warm start is a buffer
    created on the first call, so that a fresh instance refuses it in ``load_state_dict``; the tests check
    that both give the same weights step after step. Two differences: ``G`` is this batch's Gramian (the
    paper's ``J₁ J₂ᵀ`` of two independent batches, used by its stochastic analysis, is not available to a
    weighting of one batch),
    and the scale ``(mean_t √G_tt)²`` is not padded by 1e-8 (torchjd's absolute padding changes the step
    for small gradients); all zero gradients leave ``w`` as it is.

    Args:
        tasks: the tasks, in the order of the losses.
        lam: ``λ ≥ 0``, the pull towards the mean gradient, default 0.3 (the authors' experiments, torchjd).
        lr: the inner step size, default 10.0 (torchjd's).
        momentum: the inner momentum in [0, 1), default 0.5 (torchjd's).
        n_iter: inner steps per training step, default 20 (torchjd's).
        of: "parameters" (default) or "representation": where the task gradients are taken.
    """

    needs = "gramian"

    def __init__(
        self,
        tasks: Sequence[Task | str],
        lam: float = 0.3,
        lr: float = 10.0,
        momentum: float = 0.5,
        n_iter: int = 20,
        of: str = "parameters",
    ) -> None:
        super().__init__(task_names(list(tasks)), of)
        if not (math.isfinite(lam) and lam >= 0):
            raise ValueError(f"lam must be finite and >= 0, got {lam}")
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be finite and > 0, got {lr}")
        if not (math.isfinite(momentum) and 0 <= momentum < 1):
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if n_iter < 1:
            raise ValueError(f"n_iter must be >= 1, got {n_iter}")
        self.lam, self.lr, self.momentum, self.n_iter = float(lam), float(lr), float(momentum), int(n_iter)
        t = len(self.tasks)
        #: the inner solver's weights, warm start of the next step
        self.register_buffer("inner", torch.full((t,), 1.0 / t, dtype=torch.float64))
        self.inner: torch.Tensor

    def weigh(self, gramian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """SDMGrad's implied weights ``(w + λ/T) / (1 + λ)`` (T,) after this step's inner steps."""
        g = gramian.detach().double()
        t = g.shape[0]
        pull = torch.full((t,), self.lam / t, dtype=torch.float64, device=g.device)
        scale = float(torch.diagonal(g).clamp(min=0).sqrt().mean()) ** 2
        w = self.inner.to(g.device)
        if scale > 0:
            a = g / scale
            velocity = torch.zeros_like(w)
            for i in range(self.n_iter):
                step = a @ (w + pull)
                velocity = step if i == 0 else self.momentum * velocity + step
                w = project_simplex(w - self.lr * velocity)
            self.inner.copy_(w)
        weights = (w + pull) / (1 + self.lam)
        self.weights_ = weights
        return weights
