"""Impartial multi-task learning, gradient part (Liu et al., 2021): IMTL-G, computed by torchjd."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task


class IMTLG(Balancing):
    """``d = Σ_t w_t g_t`` with ``Σ_t w_t = 1`` and ``d · g_t / ‖g_t‖`` equal for every task (IMTL-G).

    Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, "Towards impartial multi-task learning", ICLR 2021
    (IMTL-G, the gradient part of IMTL): the aggregated gradient has the same projection on every unit task
    gradient. On the Gramian ``G = J Jᵀ``: ``w = v / Σ_t v_t`` with ``v = G⁺ s``, ``s_t = ‖g_t‖ = √G_tt`` (the
    generalization with a pseudo-inverse of Quinton & Rey, "Jacobian descent for multi-objective
    optimization", arXiv:2406.16232, 2024, which also covers linearly dependent gradients).

    Computed by torchjd's ``IMTLGWeighting``; ``w = 0`` (so ``d = 0``) when ``Σ_t v_t`` vanishes, as when
    every gradient is zero. The weights can be negative. The logged weights are ``w``.

    Args:
        tasks: the tasks, in the order of the losses.
        of: "parameters" (default) or "representation": where the task gradients are taken.
    """

    nonnegative = False

    needs = "gramian"

    def __init__(self, tasks: Sequence[Task | str], of: str = "parameters") -> None:
        super().__init__(task_names(list(tasks)), of)
        # imported when used: torchjd loads cvxpy and scipy, which a run without it does not need
        from torchjd.aggregation import IMTLGWeighting

        self._weighting = IMTLGWeighting()

    def weigh(self, gramian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """IMTL-G's weights ``G⁺ s / 1ᵀ G⁺ s`` (T,)."""
        w = self._weighting(gramian.detach().double())
        self.weights_ = w
        return w
