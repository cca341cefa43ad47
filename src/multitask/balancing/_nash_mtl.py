"""Multi-task learning as a bargaining game (Navon et al., 2022): Nash-MTL."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from multitask.balancing._base import Balancing, task_names
from multitask.balancing._fairgrad import fair_weights
from multitask.tasks import Task


class NashMTL(Balancing):
    """``d = Σ_t w_t g_t`` with ``(G w)_t = 1 / w_t``: the Nash bargaining solution of the tasks (Nash-MTL).

    Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya, "Multi-task learning as a bargaining
    game", ICML 2022 (Algorithm 1): ``d`` maximizes ``Σ_t log(g_t · d)`` in a ball, whose solution is
    ``d = wᵀ J`` with ``G w = 1/w`` element-wise, ``G = J Jᵀ``; then ``‖d‖ = √T``. Then, as in the authors'
    code and torchjd, ``w`` is scaled down so that ``‖d‖ ≤ max_norm`` (``max_norm = 0``: no clipping), and
    the weights are recomputed only every ``update_weights_every`` steps (reused in between).

    Own solver (:func:`~multitask.balancing._fairgrad.fair_weights` with α = 1, exact Newton steps on the
    convex ``½ wᵀ G w − Σ log w_t``) rather than torchjd 0.18's ``NashMTL``, whose state (numpy arrays and a
    cvxpy problem) a checkpoint cannot carry and whose sequential convex approximation stops at a residual
    of 1e-3; the tests check that both agree. The weights to reuse and the step count are buffers. A task
    with a zero gradient gets weight 0. The logged weights are ``w`` after the clipping (≥ 0).

    Args:
        tasks: the tasks, in the order of the losses.
        max_norm: the largest ``‖d‖``, default 1.0 (the authors' code and torchjd); 0 disables the clipping.
        update_weights_every: solve for ``w`` every this many steps, default 1 (as torchjd).
        max_iter: Newton iterations of the solver, default 100.
        of: "parameters" (default) or "representation": where the task gradients are taken.
    """

    needs = "gramian"

    def __init__(
        self,
        tasks: Sequence[Task | str],
        max_norm: float = 1.0,
        update_weights_every: int = 1,
        max_iter: int = 100,
        of: str = "parameters",
    ) -> None:
        super().__init__(task_names(list(tasks)), of)
        if not (math.isfinite(max_norm) and max_norm >= 0):
            raise ValueError(f"max_norm must be finite and >= 0, got {max_norm}")
        if update_weights_every < 1:
            raise ValueError(f"update_weights_every must be >= 1, got {update_weights_every}")
        if max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter}")
        self.max_norm = float(max_norm)
        self.update_weights_every = int(update_weights_every)
        self.max_iter = int(max_iter)
        t = len(self.tasks)
        #: the last solved weights (before clipping), reused between updates
        self.register_buffer("solved", torch.ones(t, dtype=torch.float64))
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))
        self.solved: torch.Tensor
        self.steps: torch.Tensor

    def weigh(self, gramian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """The Nash bargaining weights ``w`` (T,) of ``G``, clipped so that ``‖wᵀ J‖ ≤ max_norm``."""
        g = gramian.double()
        if int(self.steps) % self.update_weights_every == 0:
            self.solved.copy_(fair_weights(g, 1.0, self.max_iter))
        self.steps.add_(1)
        w = self.solved.to(g.device)
        if self.max_norm > 0:
            norm = math.sqrt(max(float(w @ g @ w), 0.0))
            if norm > self.max_norm:
                w = w * (self.max_norm / norm)
        self.weights_ = w
        return w
