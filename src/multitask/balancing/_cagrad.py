"""Conflict-averse gradient descent (Liu, Liu, Jin, Stone & Liu, 2021)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task


def cagrad_weights(gramian: torch.Tensor, c: float, max_iter: int = 2000, tol: float = 1e-12) -> torch.Tensor:
    """``argmin_{w ∈ Δ} wᵀ G 1 / T + c ‖g₀‖ √(wᵀ G w)``, the inner problem of CAGrad, ``‖g₀‖² = 1ᵀ G 1 / T²``.

    Solved by projected gradient on the simplex with a backtracking (Armijo) step, from equal weights, in
    float64 (Liu et al., 2021, eq. 4 written on the Gramian ``G = J Jᵀ``).
    """
    g = gramian.detach().double().cpu().numpy()
    t = g.shape[0]
    b = g.sum(axis=1) / t
    radius = c * math.sqrt(max(float(g.sum()) / t**2, 0.0))
    floor = 1e-30 * max(float(np.diagonal(g).max()), 1e-300)

    def value(w: np.ndarray) -> float:
        return float(w @ b) + radius * math.sqrt(max(float(w @ g @ w), 0.0) + floor)

    w = np.full(t, 1.0 / t)
    step = 1.0 / max(float(np.diagonal(g).max()), 1e-300)
    current = value(w)
    for _ in range(max_iter):
        gradient = b + radius * (g @ w) / math.sqrt(max(float(w @ g @ w), 0.0) + floor)
        while True:
            candidate = _project_simplex(w - step * gradient)
            moved = candidate - w
            new = value(candidate)
            if new <= current + float(gradient @ moved) + float(moved @ moved) / (2 * step) or step < 1e-30:
                break
            step /= 2
        change = float(np.abs(moved).max())
        w, current = candidate, new
        step *= 2  # try a longer step next time
        if change < tol:
            break
    return torch.as_tensor(w, dtype=torch.float64, device=gramian.device)


def _project_simplex(v: np.ndarray) -> np.ndarray:
    """The Euclidean projection of ``v`` onto the probability simplex (by sorting), in numpy."""
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1
    rho = int(np.nonzero(u - cumulative / np.arange(1, v.size + 1) > 0)[0].max())
    return np.maximum(v - cumulative[rho] / (rho + 1), 0.0)


class CAGrad(Balancing):
    """``d = g₀ + (c ‖g₀‖ / ‖g_w‖) g_w``, ``g_w = Σ_t w_t g_t`` with ``w`` the CAGrad inner minimizer (CAGrad).

    Liu, Liu, Jin, Stone & Liu, "Conflict-averse gradient descent for multi-task learning", NeurIPS 2021
    (Algorithm 1): ``d`` maximizes the worst task's improvement ``min_t g_t · d`` within the ball
    ``‖d − g₀‖ ≤ c ‖g₀‖`` around the mean gradient ``g₀ = (1/T) Σ_t g_t``; ``w`` is given by
    :func:`cagrad_weights`. ``c = 0`` is the mean gradient. The paper's final rescaling by ``1 / (1 + c²)``
    of its code release is not applied. Implied (logged) weights: ``1/T + (c ‖g₀‖ / ‖g_w‖) w_t``.

    Args:
        tasks: the tasks, in the order of the losses.
        c: the radius of the ball relative to ``‖g₀‖``, default 0.4; at least 0 (the paper takes c < 1).
        of: "parameters" (default) or "representation": where the task gradients are taken.
    """

    needs = "gramian"

    def __init__(self, tasks: Sequence[Task | str], c: float = 0.4, of: str = "parameters") -> None:
        super().__init__(task_names(list(tasks)), of)
        if not (math.isfinite(c) and c >= 0):
            raise ValueError(f"c must be finite and >= 0, got {c}")
        self.c = float(c)

    def weigh(self, gramian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """The implied weights ``1/T + (c ‖g₀‖ / ‖g_w‖) w``: ``d = (1/T + (c ‖g₀‖ / ‖g_w‖) w)ᵀ J``."""
        gramian = gramian.double()
        t = gramian.shape[0]
        w = cagrad_weights(gramian, self.c)
        norm_w = math.sqrt(max(float(w @ gramian @ w), 0.0))
        norm_0 = math.sqrt(max(float(gramian.sum()), 0.0)) / t
        scale = self.c * norm_0 / norm_w if norm_w > 0 else 0.0
        coefficients = torch.full((t,), 1.0 / t, dtype=torch.float64, device=gramian.device) + scale * w
        self.weights_ = coefficients
        return coefficients
