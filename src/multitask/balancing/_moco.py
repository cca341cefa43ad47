"""MoCo, multi-objective gradient with tracked gradients (Fernando, Shen, Liu, Chaudhury, Murugesan & Chen, 2023)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from multitask.balancing._base import Balancing, task_names
from multitask.balancing._db_mtl import resize_lazy_buffers
from multitask.tasks import Task

#: the ε of the gradients' normalization (the authors' code uses 1e-8)
_EPS = 1e-8


class MoCo(Balancing):
    """``d = Yᵀλ``, ``y_t ← y_t − β_k (y_t − g_t)``, ``λ ← Π_Δ(λ − γ_k (Y Yᵀ + ρ I) λ)`` (MoCo).

    Fernando, Shen, Liu, Chaudhury, Murugesan & Chen, "Mitigating gradient bias in multi-objective learning:
    a provably convergent approach", ICLR 2023 (Algorithm 1). Each task's stochastic gradient ``g_t`` (row of
    ``J``) is tracked by ``y_t`` (rows of ``Y``, T × P, starting at 0) to reduce the bias of MGDA-like weights
    computed on one batch; ``λ`` (starting at ``1/T``) takes one projected gradient step of the regularized
    min-norm problem ``min_{λ ∈ Δ} ½‖Yᵀλ‖² + ½ρ‖λ‖²`` per step, with the new ``Y``; the direction uses the new
    ``λ``. Step sizes decay as in the paper's analysis and the authors' code: ``β_k = β / k^{σ_β}``,
    ``γ_k = γ / k^{σ_γ}``, ``k`` counting steps from 1. With ``normalize`` (default, as in the authors' code
    that LibMTL adapts) ``g_t`` is first rescaled to norm ``L_t``: ``g_t L_t / ‖g_t‖``; ``Π_Δ`` is the
    Euclidean projection on the simplex (the paper's; LibMTL uses a softmax instead).

    ``Y`` (shaped on the first step), ``λ`` and ``k`` are buffers. A task whose loss is exactly 0 in a step (no
    labelled rows) keeps its ``y_t``, which still enters ``λ`` and ``d``. The logged weights are ``λ``.

    Args:
        tasks: the tasks, in the order of the losses.
        beta: ``β`` in (0, 1], the tracking rate, default 0.5.
        beta_sigma: ``σ_β`` ≥ 0, default 0.5.
        gamma: ``γ`` > 0, the step of ``λ``, default 0.1.
        gamma_sigma: ``σ_γ`` ≥ 0, default 0.5.
        rho: ``ρ`` ≥ 0, the ℓ2 regularization of ``λ``, default 0.0.
        normalize: rescale each ``g_t`` to norm ``L_t`` first, default True.
        of: "parameters" (default) or "representation": where the task gradients are taken.

    The defaults are LibMTL's (from the authors' code).
    """

    needs = "jacobian"

    def __init__(
        self,
        tasks: Sequence[Task | str],
        beta: float = 0.5,
        beta_sigma: float = 0.5,
        gamma: float = 0.1,
        gamma_sigma: float = 0.5,
        rho: float = 0.0,
        normalize: bool = True,
        of: str = "parameters",
    ) -> None:
        super().__init__(task_names(list(tasks)), of)
        if not (math.isfinite(beta) and 0 < beta <= 1):
            raise ValueError(f"beta must be in (0, 1], got {beta}")
        if not (math.isfinite(gamma) and gamma > 0):
            raise ValueError(f"gamma must be finite and > 0, got {gamma}")
        for name, value in (("beta_sigma", beta_sigma), ("gamma_sigma", gamma_sigma), ("rho", rho)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        self.beta, self.beta_sigma = float(beta), float(beta_sigma)
        self.gamma, self.gamma_sigma = float(gamma), float(gamma_sigma)
        self.rho, self.normalize = float(rho), bool(normalize)
        t = len(self.tasks)
        self.register_buffer("tracked", torch.zeros(0))
        self.register_buffer("lambdas", torch.full((t,), 1.0 / t, dtype=torch.float64))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))
        self.tracked: torch.Tensor
        self.lambdas: torch.Tensor
        self.steps: torch.Tensor

    def direction(self, jacobian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """``Yᵀλ`` (P,) after this step's updates of ``Y`` and ``λ``."""
        if self.tracked.shape != jacobian.shape:
            self.tracked = torch.zeros_like(jacobian)
        values = losses.detach().to(jacobian.device, jacobian.dtype)
        grads = jacobian
        if self.normalize:
            grads = jacobian * (values / (jacobian.norm(dim=1) + _EPS)).unsqueeze(1)
        self.steps.add_(1)
        k = self.steps.to(torch.float64)
        beta = (self.beta / k**self.beta_sigma).to(jacobian.dtype)
        present = (values != 0).unsqueeze(1)
        self.tracked.copy_(torch.where(present, self.tracked - beta * (self.tracked - grads), self.tracked))
        gram = (self.tracked @ self.tracked.T).to(self.lambdas.device, torch.float64)
        gamma = self.gamma / k**self.gamma_sigma
        step = gram @ self.lambdas + self.rho * self.lambdas
        self.lambdas.copy_(_project_simplex(self.lambdas - gamma * step))
        self.weights_ = self.lambdas.clone()
        return self.lambdas.to(jacobian.device, jacobian.dtype) @ self.tracked

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        resize_lazy_buffers(self, state_dict, prefix, ("tracked",))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _project_simplex(v: torch.Tensor) -> torch.Tensor:
    """The Euclidean projection of ``v`` on ``{λ ≥ 0, Σ λ = 1}`` by sorting, without a host sync."""
    u, _ = torch.sort(v, descending=True)
    cumulative = torch.cumsum(u, dim=0) - 1
    index = torch.arange(1, v.numel() + 1, dtype=v.dtype, device=v.device)
    count = (u - cumulative / index > 0).sum().clamp_min(1)  # the condition holds on a prefix
    theta = cumulative.gather(0, (count - 1).unsqueeze(0)) / count.to(v.dtype)
    return torch.clamp(v - theta, min=0)
