"""Fair resource allocation in multi-task learning (Ban & Ji, 2024): α-fair weights of the Gramian."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task

#: ridge added to the Gramian scaled to a unit mean diagonal, so that a solution exists when the task
#: gradients have 0 in their conic hull (then the weights are large but finite)
_RIDGE = 1e-10


def fair_weights(gramian: torch.Tensor, alpha: float, max_iter: int = 100) -> torch.Tensor:
    """The ``w > 0`` with ``G w = w^(−1/α)`` (element-wise power): the α-fair weights of ``G = J Jᵀ``.

    ``G w = w^(−1/α)`` is where the gradient of the strictly convex ``½ wᵀ G w − Σ_t h(w_t)`` vanishes,
    ``h(w) = log w`` for α = 1 and ``w^(1−1/α) / (1 − 1/α)`` otherwise, so it is found by damped Newton
    steps (kept inside ``w > 0``, with an Armijo backtracking) on the Gramian scaled to a unit mean diagonal
    plus a ridge of 1e-10, and scaled back exactly: ``w(sG) = s^(−α/(1+α)) w(G)``. A task with a zero
    gradient gets weight 0 (it has no solution); all zero gradients give zeros. Computed on the CPU in
    float64; the weights are returned on ``gramian``'s device.
    """
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be finite and > 0, got {alpha}")
    g = gramian.detach().double().cpu()
    t = g.shape[0]
    w = torch.zeros(t, dtype=torch.float64)
    active = torch.diagonal(g) > 0
    if not bool(active.any()):
        return w.to(gramian.device)
    a = g[active][:, active]
    n = a.shape[0]
    scale = float(torch.diagonal(a).mean())
    a = a / scale + _RIDGE * torch.eye(n, dtype=torch.float64)
    p = 1.0 / alpha

    def objective(u: torch.Tensor) -> float:
        barrier = torch.log(u).sum() if alpha == 1 else (u ** (1 - p)).sum() / (1 - p)
        return float(0.5 * u @ a @ u - barrier)

    u = torch.diagonal(a) ** (-alpha / (1 + alpha))  # the solution when the gradients are orthogonal
    u = u * (float((u ** (1 - p)).sum()) / float(u @ a @ u)) ** (1 / (1 + p))  # the best multiple of it
    for _ in range(max_iter):
        residual = a @ u - u ** (-p)
        hessian = a + torch.diag(p * u ** (-p - 1))
        step = torch.linalg.solve(hessian, residual)
        decrement = float(residual @ step)
        if decrement < 1e-24:
            break
        size = 1.0
        growing = step > 0
        if bool(growing.any()):  # stay inside w > 0
            size = min(1.0, 0.99 * float((u[growing] / step[growing]).min()))
        if decrement > 1e-12:  # far from the solution: backtrack; near it, Newton's full step converges
            current = objective(u)
            while objective(u - size * step) > current - 0.25 * size * decrement and size > 1e-12:
                size /= 2
        u = u - size * step
    w[active] = u * scale ** (-alpha / (1 + alpha))
    return w.to(gramian.device)


class FairGrad(Balancing):
    """``d = Σ_t w_t g_t`` with ``G w = w^(−1/α)``: the α-fair share of the tasks' improvements (FairGrad).

    Ban & Ji, "Fair resource allocation in multi-task learning", ICML 2024 (eq. 4 and Algorithm 1): ``d``
    maximizes ``Σ_t u_t^(1−α) / (1 − α)`` of the tasks' first-order improvements ``u_t = g_t · d`` in a ball,
    whose optimality condition is ``(G w)_t = w_t^(−1/α)`` with ``G = J Jᵀ``. α = 1 is proportional
    fairness (the weights of Nash-MTL), α → ∞ the max-min (MGDA-like) fairness, α → 0 the sum.
    Solved by :func:`fair_weights` (own solver): torchjd 0.18's ``FairGradWeighting`` solves the same
    equation with ``scipy.optimize.least_squares`` from equal weights, which stops far from the solution
    when the gradients are small (norms of about 1e-3) or when no solution exists; the tests check that both
    agree on well-scaled inputs. The logged weights are ``w`` (≥ 0; 0 for a task with a zero gradient).

    Args:
        tasks: the tasks, in the order of the losses.
        alpha: the fairness α > 0, default 1.0 (proportional fairness; the paper tunes α per benchmark and
            torchjd has no default).
        max_iter: Newton iterations of the solver, default 100.
        of: "parameters" (default) or "representation": where the task gradients are taken.
    """

    needs = "gramian"

    def __init__(
        self, tasks: Sequence[Task | str], alpha: float = 1.0, max_iter: int = 100, of: str = "parameters"
    ) -> None:
        super().__init__(task_names(list(tasks)), of)
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha must be finite and > 0, got {alpha}")
        if max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter}")
        self.alpha = float(alpha)
        self.max_iter = int(max_iter)

    def weigh(self, gramian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """The α-fair weights ``w`` (T,) of ``G``."""
        w = fair_weights(gramian, self.alpha, self.max_iter)
        self.weights_ = w
        return w
