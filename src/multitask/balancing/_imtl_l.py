"""IMTL-L, the loss-balancing half of impartial multi-task learning (Liu et al., 2021)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task


class IMTLL(Balancing):
    """``L = Σ_t e^{s_t} L_t − s_t`` with learnable log-scales ``s_t`` (IMTL-L, Liu et al., 2021).

    Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, "Towards impartial multi-task learning", ICLR 2021
    (section 3.2, the loss balance). Minimizing over ``s_t`` alone gives ``e^{s_t} L_t = 1``: every scaled loss
    is pushed towards 1. The ``s_t`` start at 0 (weights 1) and are trained by the run's optimizer (its
    learning rate and weight decay). The scalarization is torchjd's :class:`torchjd.scalarization.IMTLL`
    (it holds ``s`` as its parameter ``log_scale``); the logged weights are ``e^{s_t}``. It is Kendall et al.'s
    uncertainty weighting with ``s = −log σ²``, times 2. A task whose loss is exactly 0 in a step (no labelled
    rows in the batch) is left out of the sum, ``−s_t`` included: otherwise each such step would raise its
    ``s_t`` with nothing to balance.

    Args:
        tasks: the tasks, in the order of the losses.
    """

    def __init__(self, tasks: Sequence[Task | str]) -> None:
        super().__init__(task_names(list(tasks)))
        # imported when used: torchjd loads cvxpy and scipy, which a run without it does not need
        from torchjd.scalarization import IMTLL as _TorchjdIMTLL

        self.scalarizer = _TorchjdIMTLL(len(self.tasks))

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """``Σ_t e^{s_t} L_t − s_t`` over the tasks whose loss is not 0."""
        stacked = self._stack(losses)
        s = self.scalarizer.log_scale
        self.weights_ = torch.exp(s.detach())
        absent = stacked.detach() == 0
        return self.scalarizer(stacked) + (s * absent).sum()  # puts back the −s_t of absent tasks
