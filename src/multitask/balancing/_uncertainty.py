"""Uncertainty weighting (Kendall, Gal & Cipolla, 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task


class Uncertainty(Balancing):
    """``L = Σ_t exp(−s_t) L_t + s_t`` with learnable log-variances ``s_t = log σ_t²`` (Kendall et al., 2018).

    Kendall, Gal & Cipolla, "Multi-task learning using uncertainty to weigh losses for scene geometry and
    semantics", CVPR 2018 (eq. 7 and 10, written for ``s = log σ²`` and multiplied by 2, which changes no
    minimizer). The ``s_t`` are parameters of this module, trained by the run's optimizer; the weights
    ``exp(−s_t)`` start at ``exp(−init)``.

    Args:
        tasks: the tasks, in the order of the losses.
        init: the initial log-variance of every task, default 0.0 (weights 1).
    """

    def __init__(self, tasks: Sequence[Task | str], init: float = 0.0) -> None:
        super().__init__(task_names(list(tasks)))
        self.log_vars = nn.Parameter(torch.full((len(self.tasks),), float(init)))

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """``Σ_t exp(−s_t) L_t + s_t``."""
        stacked = self._stack(losses)
        s = self.log_vars.to(stacked.dtype)
        self.weights_ = torch.exp(-s).detach().double().cpu()
        return (torch.exp(-s) * stacked + s).sum()
