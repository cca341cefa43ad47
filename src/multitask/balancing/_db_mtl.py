"""Dual-balancing multi-task learning (Lin, Jiang, Ye, Zhang, Chen, Chen, Liu, Tsang & Kwok, 2023)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task

#: the ε of ``log(L_t + ε)`` (the authors' code uses 1e-8)
_EPS = 1e-8


class DBMTL(Balancing):
    """``d = Σ_t (max_i ‖ĝ_i‖ / ‖ĝ_t‖) ĝ_t``, ``ĝ_t ← β_k ĝ_t + (1 − β_k) ∇ log(L_t + ε)``, ``β_k = β / k^σ``.

    Lin, Jiang, Ye, Zhang, Chen, Chen, Liu, Tsang & Kwok, "Dual-balancing for multi-task learning",
    arXiv:2308.12029, 2023 (Algorithm 1). Loss-scale balancing: each task trains on ``log L_t``, whose gradient
    is ``∇L_t / (L_t + ε)`` (the row of ``J`` divided by the loss). Gradient-magnitude balancing: an
    exponential moving average ``ĝ_t`` of that gradient (step ``k`` counts from 1) is rescaled to the largest
    norm among the tasks, so every task pushes the shared part equally hard, as hard as the strongest.
    ``ĝ`` (T × P, shaped on the first step) and ``k`` are buffers. A task whose loss is exactly 0 in a step
    (no labelled rows) keeps its ``ĝ_t`` unchanged, which still enters ``d``; a ``ĝ_t`` that is 0 gets scale 0.
    The logged weights are the scales ``max_i ‖ĝ_i‖ / ‖ĝ_t‖``. As in the authors' code, the heads are not part of ``J``: they receive
    what the trainer gives a gradient method's heads.

    Args:
        tasks: the tasks, in the order of the losses.
        beta: the EMA's ``β`` in [0, 1), default 0.9 (LibMTL's default, the authors' library).
        beta_sigma: the decay ``σ`` ≥ 0 of ``β_k = β / k^σ``, default 0.0 (LibMTL's default: a constant
            ``β``; the paper's ablations also use 0.5).
        of: "parameters" (default) or "representation": where the task gradients are taken.
    """

    needs = "jacobian"

    def __init__(
        self, tasks: Sequence[Task | str], beta: float = 0.9, beta_sigma: float = 0.0, of: str = "parameters"
    ) -> None:
        super().__init__(task_names(list(tasks)), of)
        if not (math.isfinite(beta) and 0 <= beta < 1):
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        if not (math.isfinite(beta_sigma) and beta_sigma >= 0):
            raise ValueError(f"beta_sigma must be finite and >= 0, got {beta_sigma}")
        self.beta, self.beta_sigma = float(beta), float(beta_sigma)
        self.register_buffer("ema", torch.zeros(0))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))
        self.ema: torch.Tensor
        self.steps: torch.Tensor

    def direction(self, jacobian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """``Σ_t (max_i ‖ĝ_i‖ / ‖ĝ_t‖) ĝ_t`` (P,) after this step's EMA update."""
        if self.ema.shape != jacobian.shape:
            self.ema = torch.zeros_like(jacobian)
        values = losses.detach().to(jacobian.device, jacobian.dtype)
        present = (values != 0).unsqueeze(1)
        self.steps.add_(1)
        beta = self.beta / self.steps.to(jacobian.dtype) ** self.beta_sigma
        log_grads = jacobian / (values + _EPS).unsqueeze(1)
        self.ema.copy_(torch.where(present, beta * self.ema + (1 - beta) * log_grads, self.ema))
        norms = self.ema.norm(dim=1)
        scales = torch.where(norms > 0, norms.max() / norms.clamp_min(torch.finfo(norms.dtype).tiny), 0.0)
        self.weights_ = scales
        return scales @ self.ema

    def _load_from_state_dict(
        self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        resize_lazy_buffers(self, state_dict, prefix, ("ema",))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def resize_lazy_buffers(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, names: Sequence[str]
) -> None:
    """Give ``module``'s lazily shaped buffers ``names`` the shape (and dtype) they have in ``state_dict``."""
    for name in names:
        saved = state_dict.get(prefix + name)
        current = getattr(module, name)
        if isinstance(saved, torch.Tensor) and saved.shape != current.shape:
            setattr(module, name, torch.empty(saved.shape, dtype=saved.dtype, device=current.device))
