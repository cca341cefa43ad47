"""Random loss weighting (Lin et al., 2022)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task


class RandomWeights(Balancing):
    """``L = Σ_t λ_t L_t`` with ``λ = softmax(z)``, ``z ~ N(0, I_T)`` drawn anew each step (Lin et al., 2022).

    Lin, Ye, Xu, Shi & Zhang, "Reasonable effectiveness of random weighting: a litmus test for multi-task
    learning", TMLR 2022 (RLW with the normal distribution). The weights sum to 1; ``z`` is drawn from the
    generator seeded by ``(seed, epoch, step)``.
    """

    stochastic = True

    def __init__(self, tasks: Sequence[Task | str]) -> None:
        super().__init__(task_names(list(tasks)))

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """``Σ_t softmax(z)_t L_t``, ``z ~ N(0, I)``."""
        stacked = self._stack(losses)
        z = torch.randn(len(self.tasks), generator=self.generator(), dtype=torch.float64)
        weights = torch.softmax(z, dim=0)
        self.weights_ = weights
        return (weights.to(stacked.dtype).to(stacked.device) * stacked).sum()
