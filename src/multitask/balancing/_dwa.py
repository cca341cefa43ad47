"""Dynamic weight average (Liu, Johns & Davison, 2019)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task


class DynamicWeightAverage(Balancing):
    """``L = Σ_t λ_t L_t``, ``λ_t = T exp(r_t / τ) / Σ_i exp(r_i / τ)``, ``r_t = L̄_t(e−1) / L̄_t(e−2)`` (DWA).

    Liu, Johns & Davison, "End-to-end multi-task learning with attention", CVPR 2019 (eq. 1). ``L̄_t(e)`` is
    task ``t``'s mean training loss in epoch ``e``, handed over by the trainer through :meth:`end_epoch`;
    in the first two epochs every ``λ_t = 1``. A task without a mean loss in one of the two epochs (no
    labels) gets ``r_t = 1``. The last two epochs' means are buffers, so the checkpoint carries them.

    Args:
        tasks: the tasks, in the order of the losses.
        temperature: ``τ``, default 2.0 (the paper's value); larger is closer to equal weights.
    """

    def __init__(self, tasks: Sequence[Task | str], temperature: float = 2.0) -> None:
        super().__init__(task_names(list(tasks)))
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be finite and > 0, got {temperature}")
        self.temperature = float(temperature)
        t = len(self.tasks)
        #: mean losses of the last two epochs, row 1 the latest; NaN: no loss
        self.register_buffer("history", torch.full((2, t), math.nan, dtype=torch.float64))
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.int64))
        self.history: torch.Tensor
        self.epochs_seen: torch.Tensor

    def current_weights(self) -> torch.Tensor:
        """``λ`` for the coming epoch: ``T softmax(r / τ)``, or ones before two epochs have ended."""
        t = len(self.tasks)
        if int(self.epochs_seen) < 2:
            return torch.ones(t, dtype=torch.float64)
        ratio = self.history[1] / self.history[0]
        ratio = torch.where(ratio.isfinite(), ratio, torch.ones_like(ratio))
        return t * torch.softmax(ratio / self.temperature, dim=0)

    def end_epoch(self, mean_losses: dict[str, float | None]) -> None:
        """Shift in this epoch's mean training losses (``None`` for a task without labels)."""
        latest = torch.tensor(
            [_or_nan(mean_losses.get(t)) for t in self.tasks],
            dtype=torch.float64,
        )
        self.history.copy_(torch.stack([self.history[1], latest]))
        self.epochs_seen.add_(1)

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """``Σ_t λ_t L_t`` with this epoch's ``λ``."""
        stacked = self._stack(losses)
        weights = self.current_weights()
        self.weights_ = weights
        return (weights.to(stacked.dtype).to(stacked.device) * stacked).sum()


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)
