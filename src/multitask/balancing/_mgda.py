"""Multiple-gradient descent as multi-objective optimization (Sener & Koltun, 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import quadprog
import torch

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task


def project_simplex(v: torch.Tensor) -> torch.Tensor:
    """The Euclidean projection of ``v`` onto the probability simplex ``{w ≥ 0, Σ w = 1}`` (by sorting)."""
    u, _ = torch.sort(v, descending=True)
    cumulative = torch.cumsum(u, dim=0) - 1
    index = torch.arange(1, v.numel() + 1, dtype=v.dtype, device=v.device)
    rho = int((u - cumulative / index > 0).nonzero().max())
    theta = cumulative[rho] / (rho + 1)
    return torch.clamp(v - theta, min=0)


def min_norm_weights(gramian: torch.Tensor, max_iter: int = 1000, tol: float = 1e-12) -> torch.Tensor:
    """``argmin_{w ∈ Δ} wᵀ G w``: the weights of the min-norm point of the convex hull of the rows of ``J``.

    ``G = J Jᵀ`` (T × T). Solved exactly by the dual active-set method of Goldfarb & Idnani (``quadprog``)
    in float64, on ``G + εI`` with ``ε = 10⁻¹⁰ · trace(G) / T`` (the solver needs a positive-definite matrix;
    the ridge moves the minimum norm by a relative 10⁻¹⁰). If the solver fails (a degenerate problem) the
    accelerated projected gradient of :func:`min_norm_weights_iterative` is used. Sener & Koltun solve the
    same problem by Frank-Wolfe; the minimizer is the same.
    """
    g = gramian.detach().double().cpu().numpy()
    t = g.shape[0]
    scale = float(np.trace(g)) / t
    if not scale > 0:
        return torch.full((t,), 1.0 / t, dtype=torch.float64, device=gramian.device)  # every gradient is 0
    g = (g + g.T) / (2 * scale)
    constraints = np.hstack([np.ones((t, 1)), np.eye(t)])
    bounds = np.concatenate([[1.0], np.zeros(t)])
    try:
        w = quadprog.solve_qp(g + 1e-10 * np.eye(t), np.zeros(t), constraints, bounds, meq=1)[0]
    except ValueError:
        return min_norm_weights_iterative(gramian, max_iter, tol)
    w = np.clip(w, 0.0, None)
    return torch.as_tensor(w / w.sum(), dtype=torch.float64, device=gramian.device)


def min_norm_weights_iterative(
    gramian: torch.Tensor, max_iter: int = 1000, tol: float = 1e-12
) -> torch.Tensor:
    """:func:`min_norm_weights` by accelerated projected gradient (FISTA) with step ``1 / λ_max(G)``.

    From equal weights, in float64, until the weights move less than ``tol`` or ``max_iter`` iterations.
    """
    g = gramian.double()
    t = g.shape[0]
    w = torch.full((t,), 1.0 / t, dtype=torch.float64, device=g.device)
    lipschitz = float(torch.linalg.eigvalsh(g).max())
    if lipschitz <= 0:
        return w  # every gradient is zero: any point is the minimum
    y, momentum = w.clone(), 1.0
    for _ in range(max_iter):
        w_next = project_simplex(y - (g @ y) / lipschitz)
        momentum_next = (1 + (1 + 4 * momentum**2) ** 0.5) / 2
        y = w_next + ((momentum - 1) / momentum_next) * (w_next - w)
        if float((w_next - w).abs().max()) < tol:
            w = w_next
            break
        w, momentum = w_next, momentum_next
    return w


class MGDA(Balancing):
    """``d = Σ_t w_t g_t`` with ``w = argmin_{w ∈ Δ} ‖Σ_t w_t g_t‖²``, the min-norm point of the hull (MGDA).

    Sener & Koltun, "Multi-task learning as multi-objective optimization", NeurIPS 2018 (eq. 3, without the
    gradient normalizations of their appendix). ``g_t`` are the gradients of the task losses w.r.t. the
    shared parameters (the rows of ``J``); only the Gramian ``J Jᵀ`` enters the weights. ``d`` is 0 at a
    Pareto-stationary point. The logged weights are ``w``.

    Args:
        tasks: the tasks, in the order of the losses.
        max_iter: iterations of the simplex QP solver, default 1000.
        of: "parameters" (default) or "representation" (the gradients of the shared representation: MGDA-UB).
    """

    needs = "gramian"

    def __init__(self, tasks: Sequence[Task | str], max_iter: int = 1000, of: str = "parameters") -> None:
        super().__init__(task_names(list(tasks)), of)
        if max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter}")
        self.max_iter = int(max_iter)

    def weigh(self, gramian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """The min-norm weights ``w`` (T,) of the Gramian ``J Jᵀ``."""
        w = min_norm_weights(gramian, self.max_iter)
        self.weights_ = w
        return w


class MGDAUB(MGDA):
    """MGDA-UB: MGDA on the gradients of the shared representation (Sener & Koltun, 2018, section 3.3).

    The min-norm weights of the Gramian of ``∂L_t/∂z`` for the shared representation ``z`` (every row of the
    batch), an upper bound of the parameter-level problem that needs one backward pass through the shared
    part instead of one per task. The same as ``mgda`` with ``of="representation"``.

    Args:
        tasks: the tasks, in the order of the losses.
        max_iter: iterations of the simplex QP solver, default 1000.
    """

    def __init__(self, tasks: Sequence[Task | str], max_iter: int = 1000) -> None:
        super().__init__(tasks, max_iter, of="representation")
