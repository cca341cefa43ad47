"""Independent component alignment (Senushkin et al., 2023): Aligned-MTL, computed by torchjd."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task

SCALE_MODES = ("min", "median", "rmse")


class AlignedMTL(Balancing):
    """``d = (1/T) 1ᵀ B J`` with ``B = √λ_min V Λ^(−1/2) Vᵀ``, ``G = J Jᵀ = V Λ Vᵀ`` (Aligned-MTL).

    Senushkin, Patakin, Kuznetsov & Konushin, "Independent component alignment for multi-task learning",
    CVPR 2023 (Algorithm 1): the task gradients are replaced by ``B J``, whose rows are orthogonal with
    equal norms (``(BJ)(BJ)ᵀ = λ_min I`` on the span of ``J``: condition number 1), and averaged, so
    ``d = wᵀ J`` with ``w = B 1/T``: ``G^(1/2) w = (√λ_min / T) 1``. Eigenvalues below ``T · eps · λ_max``
    are left out (rank-deficient ``J``); all zero gradients give ``w = 1/T`` (``d = 0``).

    Computed by torchjd's ``AlignedMTLWeighting``. The weights can be negative. The logged weights are ``w``.

    Args:
        tasks: the tasks, in the order of the losses.
        scale_mode: the eigenvalue that sets the scale: "min" (default, the paper's and torchjd's), "median",
            or "rmse" (the mean eigenvalue, as in the authors' code).
        of: "parameters" (default) or "representation": where the task gradients are taken.
    """

    nonnegative = False

    needs = "gramian"

    def __init__(self, tasks: Sequence[Task | str], scale_mode: str = "min", of: str = "parameters") -> None:
        super().__init__(task_names(list(tasks)), of)
        if scale_mode not in SCALE_MODES:
            raise ValueError(f"scale_mode must be one of {', '.join(SCALE_MODES)}, got {scale_mode!r}")
        self.scale_mode = scale_mode
        # imported when used: torchjd loads cvxpy and scipy, which a run without it does not need
        from torchjd.aggregation import AlignedMTLWeighting

        self._weighting = AlignedMTLWeighting(scale_mode=scale_mode)  # type: ignore[arg-type]

    def weigh(self, gramian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """Aligned-MTL's weights ``B 1/T`` (T,)."""
        w = self._weighting(gramian.detach().double())
        self.weights_ = w
        return w
