"""Geometric loss strategy (Chennupati et al., 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task


class GeometricMean(Balancing):
    """``L = (Π_t L_t)^(1/T)``, the geometric mean of the task losses (GLS, Chennupati et al., 2019).

    Chennupati, Sistu, Yogamani & Rawashdeh, "MultiNet++: multi-stream feature aggregation and geometric loss
    strategy for multi-task learning", CVPR Workshops 2019. Its gradient weighs task ``t`` by
    ``∂L/∂L_t = L / (T L_t)`` (the logged weights). A task whose loss is exactly 0 in a step (no labels in
    the batch) is left out of the product, and ``T`` counts the others; with none left ``L = 0``.
    """

    def __init__(self, tasks: Sequence[Task | str]) -> None:
        super().__init__(task_names(list(tasks)))

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """``exp(mean_t log L_t)`` over the tasks with ``L_t > 0``."""
        stacked = self._stack(losses)
        present = stacked.detach() > 0
        n = int(present.sum())
        if n == 0:
            self.weights_ = torch.zeros(len(self.tasks), dtype=torch.float64)
            return (stacked * 0).sum()
        logs = torch.log(torch.where(present, stacked, torch.ones_like(stacked)))
        total = torch.exp(logs.sum() / n)
        safe = torch.where(present, stacked.detach(), torch.ones_like(stacked))
        self.weights_ = torch.where(present, total.detach() / (n * safe), 0.0).double().cpu()
        return total
