"""Fast adaptive multitask optimization (Liu, Feng, Stone & Liu, 2023)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task

#: the ε inside the logarithms (the authors' code and torchjd use 1e-8)
_EPS = 1e-8
#: Adam's betas and eps: torch.optim.Adam's defaults, which the authors' code uses
_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


class FAMO(Balancing):
    """``L = c Σ_t z_t log(L_t + ε)``, ``z = softmax(ξ)``, ``c = (Σ_t z_t / (L_t + ε))⁻¹`` (FAMO).

    Liu, Feng, Stone & Liu, "FAMO: Fast adaptive multitask optimization", NeurIPS 2023 (Algorithm 1 and 2;
    ``c`` is held constant, so the shared part receives ``Σ_t c z_t ∇L_t / (L_t + ε)``, a convex combination of
    the task gradients, and every task's log-loss decreases at about the same rate). The logits ``ξ`` are not
    trained by the run's optimizer: after the step, :meth:`after_step` receives the losses recomputed on the
    same batch, ``δ_t = log(L_t + ε) − log(L_t⁺ + ε)`` (how much each log-loss fell), and takes one Adam step
    on ``ξ`` with the gradient ``J_softmax(ξ)ᵀ δ`` plus ``γ ξ`` (L2, as Adam's ``weight_decay``): a task that fell
    less gets more weight. The losses' lower bounds are 0.

    ``ξ``, Adam's moments and its step count are buffers, so the checkpoint carries them; the few lines of
    Adam are written here rather than wrapping torchjd's :class:`~torchjd.scalarization.FAMO`, whose internal
    ``torch.optim.Adam`` is outside its ``state_dict`` (a resumed run would restart Adam's moments). The
    result is the same as torchjd's (checked in the tests). A task whose loss is exactly 0 in a step (no
    labelled rows) is left out of that step: ``z`` is the softmax over the other tasks and its logit gets no
    gradient (weight decay still applies). The logged weights are ``c z_t / (L_t + ε)``.

    Args:
        tasks: the tasks, in the order of the losses.
        lr: Adam's learning rate for ``ξ``, default 0.025 (the paper's value).
        gamma: the weight decay ``γ`` of ``ξ``, default 1e-3 (the paper's Algorithm 2 and LibMTL; the authors'
            code uses 1e-5).
    """

    needs_losses_after_step = True

    def __init__(self, tasks: Sequence[Task | str], lr: float = 0.025, gamma: float = 1e-3) -> None:
        super().__init__(task_names(list(tasks)))
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"lr must be finite and >= 0, got {lr}")
        if not (math.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"gamma must be finite and >= 0, got {gamma}")
        self.lr, self.gamma = float(lr), float(gamma)
        t = len(self.tasks)
        self.register_buffer("logits", torch.zeros(t, dtype=torch.float64))
        self.register_buffer("exp_avg", torch.zeros(t, dtype=torch.float64))
        self.register_buffer("exp_avg_sq", torch.zeros(t, dtype=torch.float64))
        self.register_buffer("adam_steps", torch.zeros((), dtype=torch.int64))
        self.logits: torch.Tensor
        self.exp_avg: torch.Tensor
        self.exp_avg_sq: torch.Tensor
        self.adam_steps: torch.Tensor
        #: this step's loss values (before the update), for :meth:`after_step`; not state across steps
        self._before: torch.Tensor | None = None

    def _z(self, present: torch.Tensor) -> torch.Tensor:
        """``softmax(ξ)`` over the present tasks, 0 for the others."""
        z = torch.softmax(self.logits.masked_fill(~present, -math.inf), dim=0)
        return torch.nan_to_num(z, nan=0.0)  # no task has a loss: nothing to weigh

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """``c Σ_t z_t log(L_t + ε)`` with ``c`` detached."""
        stacked = self._stack(losses)
        values = stacked.detach().to(self.logits.device, torch.float64)
        self._before = values
        z = self._z(values != 0)
        shifted = values + _EPS
        c = 1.0 / (z / shifted).sum().clamp_min(torch.finfo(torch.float64).tiny)
        weights = c * z / shifted
        self.weights_ = weights
        scale = (c * z).to(stacked.device, stacked.dtype)
        return (scale * torch.log(stacked + _EPS)).sum()

    def after_step(self, losses_after: torch.Tensor | None) -> None:
        """One Adam step on ``ξ`` from how much each task's log-loss fell across the update."""
        if losses_after is None:
            raise ValueError("FAMO needs the task losses recomputed after the optimizer's step")
        if self._before is None:
            raise ValueError("FAMO.after_step called before combine in this step")
        before, self._before = self._before, None
        after = losses_after.detach().to(self.logits.device, torch.float64).reshape(before.shape)
        present = before != 0
        delta = torch.where(present, torch.log(before + _EPS) - torch.log(after + _EPS), 0.0)
        z = self._z(present)
        grad = z * (delta - (z * delta).sum()) + self.gamma * self.logits  # J_softmaxᵀ δ, L2 as Adam's
        self.adam_steps.add_(1)
        b1, b2 = _BETAS
        self.exp_avg.mul_(b1).add_(grad, alpha=1 - b1)
        self.exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        k = self.adam_steps.to(torch.float64)
        denom = (self.exp_avg_sq / (1 - b2**k)).sqrt() + _ADAM_EPS
        self.logits.sub_(self.lr * (self.exp_avg / (1 - b1**k)) / denom)
