"""Gradient sign dropout (Chen et al., 2020): GradDrop."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task


class GradDrop(Balancing):
    """``d = Σ_t (ℓ + (1 − ℓ) M_t) ⊙ g_t``, keeping per coordinate one sign drawn by its purity (GradDrop).

    Chen, Ngiam, Huang, Luong, Kretzschmar, Chai & Anguelov, "Just pick a sign: optimizing deep multitask
    models with gradient sign dropout", NeurIPS 2020 (Algorithm 1, lines 10-15). Per coordinate ``k``: the
    positive sign purity ``P_k = ½ (1 + Σ_t g_tk / Σ_t |g_tk|)`` (½ where every ``g_tk = 0``), a draw
    ``U_k ~ U[0, 1)``, and the mask ``M_tk = 1[P_k > U_k] 1[g_tk > 0] + 1[P_k < U_k] 1[g_tk < 0]``: with
    probability ``P_k`` only the positive components pass, otherwise only the negative ones. ``ℓ`` (leak)
    lets a share of every gradient through. Not a weighting (the masks act per coordinate), so it needs ``J``.

    Own code, the same arithmetic as torchjd 0.18's ``GradDrop`` (the tests check it with the same draws),
    which draws ``U`` from the global random generator: here ``U`` is drawn on the CPU from :meth:`generator`
    (seeded by ``(seed, epoch, step)``) in float64. The paper applies it to the gradients of a layer's
    activations: ``of="representation"``. The logged weights are the share of each task's squared gradient
    norm that passes, ``g_t · ((ℓ + (1 − ℓ) M_t) ⊙ g_t) / ‖g_t‖²`` (in [0, 1]; 0 for a zero gradient).

    Args:
        tasks: the tasks, in the order of the losses.
        leak: ``ℓ`` in [0, 1], the share of every task gradient kept whatever its sign, default 0.0 (the
            paper's and torchjd's).
        of: "parameters" (default) or "representation": where the task gradients are taken.
    """

    needs = "jacobian"
    stochastic = True

    def __init__(self, tasks: Sequence[Task | str], leak: float = 0.0, of: str = "parameters") -> None:
        super().__init__(task_names(list(tasks)), of)
        if not (math.isfinite(leak) and 0 <= leak <= 1):
            raise ValueError(f"leak must be in [0, 1], got {leak}")
        self.leak = float(leak)

    def direction(self, jacobian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """The masked sum ``d`` (P,) of the task gradients."""
        j = jacobian.detach()
        total, mass = j.sum(dim=0), j.abs().sum(dim=0)
        purity = torch.where(mass > 0, 0.5 * (1 + total / torch.where(mass > 0, mass, 1)), 0.5)
        draws = torch.rand(j.shape[1], generator=self.generator(), dtype=torch.float64)
        draws = draws.to(j.device, j.dtype)
        # one sign per coordinate: the positive components pass where purity > draw, else the negative ones
        positive = purity > draws
        kept = torch.where((j > 0) == positive, j, 0.0)
        if self.leak > 0:
            kept = self.leak * j + (1 - self.leak) * kept
        squares = torch.linalg.vector_norm(j, dim=1).double() ** 2
        shares = (kept * j).sum(dim=1).double() / torch.where(squares > 0, squares, 1)
        self.weights_ = torch.where(squares > 0, shares, 0)
        return kept.sum(dim=0)
