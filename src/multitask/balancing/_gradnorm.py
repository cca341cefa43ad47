"""Gradient normalization (Chen, Badrinarayanan, Lee & Rabinovich, 2018)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task

#: the smallest weight kept before renormalizing (a weight the optimizer pushed below 0 is clipped here)
_FLOOR = 1e-6


class GradNorm(Balancing):
    """``L = Σ_t w_t L_t``, ``w`` learned by ``L_grad = Σ_t |w_t ‖g_t‖ − Ḡ r_t^α|``, renormalized to ``Σ w = T``.

    Chen, Badrinarayanan, Lee & Rabinovich, "GradNorm: Gradient normalization for adaptive loss balancing
    in deep multitask networks", ICML 2018 (section 3.2, eq. 1-2, Algorithm 1). ``G_t = ‖∇ w_t L_t‖ =
    w_t ‖g_t‖`` with ``‖g_t‖ = sqrt(G_tt)`` from the Gramian, ``Ḡ`` their mean, ``r_t = L̃_t / mean(L̃)``
    the relative inverse training rate with ``L̃_t = L_t / L_t(0)``; the target ``Ḡ r_t^α`` is held constant.
    The weights ``w`` (starting at 1) are parameters trained by the run's optimizer: :meth:`weigh` sets their
    ``.grad`` to ``∂L_grad/∂w_t = sign(w_t ‖g_t‖ − Ḡ r_t^α) ‖g_t‖``, and :meth:`after_step`, after the
    optimizer's step, clips them at 1e-6 and rescales them to ``Σ_t w_t = T``. ``L_t(0)`` is task ``t``'s
    first nonzero loss, a buffer. A task whose loss is exactly 0 in a step (no labelled rows) is left out of
    ``Ḡ``, ``r`` and ``L_grad`` for that step (its ``w_t`` gets no gradient), but keeps its weight.

    The paper takes ``g_t`` on the last shared layer's weights; the default here, ``of="representation"``
    (the gradient of the shared representation, every row of the batch), is the closest thing every
    architecture has, and costs one backward pass through the heads; ``of="parameters"`` uses all shared
    parameters. The logged weights are ``w``.

    Args:
        tasks: the tasks, in the order of the losses.
        alpha: the restoring force ``α``, default 1.5 (the paper's value for NYUv2; 0 equalizes the norms).
        of: "representation" (default) or "parameters": where the task gradients ``g_t`` are taken.
    """

    needs = "gramian"

    def __init__(self, tasks: Sequence[Task | str], alpha: float = 1.5, of: str = "representation") -> None:
        super().__init__(task_names(list(tasks)), of)
        if not (math.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"alpha must be finite and >= 0, got {alpha}")
        self.alpha = float(alpha)
        t = len(self.tasks)
        self.loss_weights = nn.Parameter(torch.ones(t))
        #: L_t(0), each task's first nonzero loss; NaN: not seen yet
        self.register_buffer("initial_losses", torch.full((t,), math.nan, dtype=torch.float64))
        self.initial_losses: torch.Tensor

    def weigh(self, gramian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """The current ``w`` (T,); sets ``w.grad`` to the gradient of ``L_grad``."""
        w = self.loss_weights
        values = losses.detach().to(self.initial_losses.device, torch.float64)
        present = values != 0
        self.initial_losses.copy_(
            torch.where(self.initial_losses.isnan() & present, values, self.initial_losses)
        )
        count = present.sum().clamp_min(1)
        norms = torch.diagonal(gramian.detach()).to(values.device, torch.float64).clamp_min(0).sqrt()
        weighted = w.detach().to(torch.float64) * norms
        mean_norm = torch.where(present, weighted, 0.0).sum() / count
        ratios = torch.where(present, values / self.initial_losses, 0.0)
        rates = ratios / (ratios.sum() / count).clamp_min(torch.finfo(torch.float64).tiny)
        target = mean_norm * rates**self.alpha
        grad = torch.where(present, torch.sign(weighted - target) * norms, 0.0)
        w.grad = grad.to(w.device, w.dtype)
        weights = w.detach().to(gramian.device, gramian.dtype)
        self.weights_ = weights.clone()
        return weights

    def after_step(self, losses_after: torch.Tensor | None) -> None:
        """Clip ``w`` at 1e-6 and rescale it to ``Σ_t w_t = T``."""
        with torch.no_grad():
            w = self.loss_weights
            w.clamp_(min=_FLOOR)
            w.mul_(len(self.tasks) / w.sum())
