"""Static weights: the default, ``L = Σ_t w_t L_t`` with ``w_t = task.weight``."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from multitask.balancing._base import Balancing
from multitask.tasks import Task


class StaticWeights(Balancing):
    """Fixed task weights: ``L = Σ_t w_t L_t`` (the default, with ``w_t = task.weight``)."""

    def __init__(self, weights: dict[str, float]) -> None:
        super().__init__(list(weights))
        self.weights = dict(weights)

    @classmethod
    def from_tasks(cls, tasks: Sequence[Task | str]) -> StaticWeights:
        """Weights ``w_t = task.weight`` (1 for a task given by its name)."""
        return cls(
            {t: 1.0 for t in tasks if isinstance(t, str)}
            | {t.name: t.weight for t in tasks if not isinstance(t, str)}
        )

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """``Σ_t w_t L_t``."""
        self.weights_ = torch.tensor([self.weights[t] for t in losses], dtype=torch.float64)
        return torch.stack([self.weights[t] * loss for t, loss in losses.items()]).sum()


def static(tasks: Sequence[Task | str]) -> StaticWeights:
    """Fixed task weights: ``L = Σ_t w_t L_t`` with ``w_t = task.weight`` (1 for a task given by name)."""
    return StaticWeights.from_tasks(tasks)
