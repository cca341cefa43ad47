"""Robust multi-task learning with excess risks (He et al., 2024): ExcessMTL."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task


class ExcessMTL(Balancing):
    """``d = Σ_t w_t g_t``, ``w ← softmax(log w + η Ê)``, ``Ê_t ≈ g_tᵀ H_t⁻¹ g_t`` excess risks (ExcessMTL).

    He, Zhou, Zhang, Yun, Xu, Zeng, Chilimbi & Zhao, "Robust multi-task learning with excess risks",
    ICML 2024 (eq. 6-9): each task's excess risk is estimated by a second-order expansion with the diagonal
    AdaGrad preconditioner ``H_t = diag(√(Σ_steps g_t² + 1e-7))`` (accumulated over the steps), divided by
    its value at the first step (or its mean over ``n_warmup_steps`` first steps, during which ``w`` stays
    1/T; with no warm-up the first step's estimate is used undivided, as in the authors' code), and the
    weights follow an exponentiated-gradient step of size ``η``. ``w`` stays on the simplex (torchjd's
    choice; the authors' code and LibMTL scale it to sum to T, which only scales ``d``). Needs ``J``: the
    preconditioner is per coordinate.

    Own code, the same arithmetic as torchjd 0.18's ``ExcessMTLWeighting`` (the tests check it step after
    step), whose accumulators are buffers created on the first call, which a fresh instance refuses in
    ``load_state_dict``: here they are the extra state (``get_extra_state``) that ``state_dict()`` carries,
    the accumulator of squared gradients (T × P, in ``J``'s dtype) included. The logged weights are ``w``
    (≥ 0, sum 1).

    Args:
        tasks: the tasks, in the order of the losses.
        robust_step_size: ``η > 0``, default 1.0 (torchjd's).
        n_warmup_steps: steps with ``w = 1/T`` whose estimates set the baseline, default 0 (torchjd's and the
            authors' code; the paper's appendix suggests 3 epochs).
        of: "parameters" (default) or "representation": where the task gradients are taken.
    """

    needs = "jacobian"

    def __init__(
        self,
        tasks: Sequence[Task | str],
        robust_step_size: float = 1.0,
        n_warmup_steps: int = 0,
        of: str = "parameters",
    ) -> None:
        super().__init__(task_names(list(tasks)), of)
        if not (math.isfinite(robust_step_size) and robust_step_size > 0):
            raise ValueError(f"robust_step_size must be finite and > 0, got {robust_step_size}")
        if n_warmup_steps < 0:
            raise ValueError(f"n_warmup_steps must be >= 0, got {n_warmup_steps}")
        self.robust_step_size = float(robust_step_size)
        self.n_warmup_steps = int(n_warmup_steps)
        t = len(self.tasks)
        self._weights = torch.full((t,), 1.0 / t, dtype=torch.float64)
        self._squares: torch.Tensor | None = None  # Σ_steps g², (T × P)
        self._baseline: torch.Tensor | None = None  # the excess risks that the later ones are divided by
        self._warmup_sum = torch.zeros(t, dtype=torch.float64)
        self._steps = 0

    def direction(self, jacobian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """``wᵀ J`` (P,) with this step's weights."""
        j = jacobian.detach()
        squares = j * j
        if self._squares is None or self._squares.shape != j.shape:
            self._squares = torch.zeros_like(j)
        self._squares = self._squares.to(j.device, j.dtype).add_(squares)
        excess = (squares / torch.sqrt(self._squares + 1e-7)).sum(dim=1).double()
        weights = self._weights.to(j.device)
        if self._steps < self.n_warmup_steps:
            self._warmup_sum = self._warmup_sum.to(j.device) + excess
        else:
            if self._baseline is None:
                if self.n_warmup_steps > 0:
                    self._baseline = self._warmup_sum.to(j.device) / self.n_warmup_steps
                    excess = excess / (self._baseline + 1e-7)
                else:
                    self._baseline = excess
            else:
                excess = excess / (self._baseline.to(j.device) + 1e-7)
            weights = torch.softmax(torch.log(weights) + self.robust_step_size * excess, dim=0)
        self._steps += 1
        self._weights = weights
        self.weights_ = weights
        return weights.to(j.dtype) @ j

    def get_extra_state(self) -> dict[str, Any]:
        """The weights, accumulators and step count, for ``state_dict()``."""
        return {
            "weights": self._weights,
            "squares": self._squares,
            "baseline": self._baseline,
            "warmup_sum": self._warmup_sum,
            "steps": self._steps,
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_extra_state` returned."""
        self._weights = state["weights"].clone()
        self._squares = None if state["squares"] is None else state["squares"].clone()
        self._baseline = None if state["baseline"] is None else state["baseline"].clone()
        self._warmup_sum = state["warmup_sum"].clone()
        self._steps = int(state["steps"])
