"""Penalties Ω(W) on a coefficient matrix ``W`` of shape ``(n_tasks, n_features)``: ``value`` and ``prox``.

``prox(V, step) = argmin_W Ω(W) + ||W - V||_F^2 / (2 step)``. Every penalty here has an exact proximal
operator. The norms also give ``dual_norm(G)``: for ``G`` the loss gradient at ``W = 0``, ``W = 0`` is optimal
exactly when ``alpha >= dual_norm(G)``. Norms that are sums over features (ℓ1, ℓ2,1, ℓ1,∞) also give
``feature_dual_norms(G)``, the dual norm of each feature's column: feature ``j`` can stay at 0 exactly when
it is at most ``alpha`` (what a working set ranks features by); their ``prox`` takes one step per feature
(an array of shape ``(n_features,)``), the prox under a metric that is constant on each feature's column. Decomposed models (``W = P + Q``) stack their parts as ``(n_blocks, n_tasks, n_features)`` and
use :class:`Blocks`, which applies one penalty per part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


class Penalty(Protocol):
    """A convex penalty with an exact proximal operator."""

    def value(self, W: Array) -> float: ...

    def prox(self, W: Array, step: float) -> Array: ...


@runtime_checkable
class FeatureNorm(Protocol):
    """A norm ``alpha * sum_j N(W_{:, j})``, a sum over features, with the dual norm of each column."""

    alpha: float

    def value(self, W: Array) -> float: ...

    def prox(self, W: Array, step: float | Array) -> Array: ...

    def feature_dual_norms(self, G: Array) -> Array: ...


@dataclass(frozen=True)
class Zero:
    """Ω(W) = 0."""

    def value(self, W: Array) -> float:
        return 0.0

    def prox(self, W: Array, step: float) -> Array:
        return W


@dataclass(frozen=True)
class L1Norm:
    """Ω(W) = alpha * sum_tj |W_tj| (soft thresholding)."""

    alpha: float

    def value(self, W: Array) -> float:
        return self.alpha * float(np.abs(W).sum())

    def prox(self, W: Array, step: float | Array) -> Array:
        """Soft thresholding; ``step`` one number, or one per feature."""
        return np.sign(W) * np.maximum(np.abs(W) - step * self.alpha, 0.0)

    def dual_norm(self, G: Array) -> float:
        """max_tj |G_tj|."""
        return float(np.abs(G).max()) if G.size else 0.0

    def feature_dual_norms(self, G: Array) -> Array:
        """max_t |G_tj| for each feature j."""
        return np.abs(G).max(axis=0)


@dataclass(frozen=True)
class GroupNorm:
    """Ω(W) = alpha * sum_g ||W_g||_2 over groups ``"features"`` (columns: ℓ2,1) or ``"tasks"`` (rows)."""

    alpha: float
    groups: Literal["features", "tasks"] = "features"

    @property
    def _axis(self) -> int:
        return 0 if self.groups == "features" else 1

    def value(self, W: Array) -> float:
        return self.alpha * float(np.linalg.norm(W, axis=self._axis).sum())

    def prox(self, W: Array, step: float | Array) -> Array:
        """Group soft thresholding; ``step`` one number, or one per feature (groups ``"features"``).

        A group whose norm exceeds the threshold by less than its own round-off (4 ulps) goes to zero.
        """
        norms = np.linalg.norm(W, axis=self._axis, keepdims=True)
        kept = norms - step * self.alpha
        kept = np.where(kept > 4.0 * np.finfo(float).eps * norms, kept, 0.0)
        return W * np.divide(kept, norms, out=np.zeros_like(norms), where=kept > 0)

    def dual_norm(self, G: Array) -> float:
        """The largest group norm of ``G``."""
        return float(np.linalg.norm(G, axis=self._axis).max()) if G.size else 0.0

    def feature_dual_norms(self, G: Array) -> Array:
        """||G_{:, j}||_2 for each feature j (groups ``"features"`` only: the norm is then a sum over features)."""
        if self.groups != "features":
            raise ValueError("a norm with task groups is not a sum over features")
        return np.linalg.norm(G, axis=0)


def project_l1_ball(V: Array, radius: float | Array) -> Array:
    """Euclidean projection of each column of ``V`` onto ``{x : ||x||_1 <= radius}`` (Duchi et al., 2008).

    ``radius`` one number, or one per column.
    """
    magnitude = np.abs(V)
    inside = magnitude.sum(axis=0) <= radius
    if inside.all():
        return V.copy()
    u = -np.sort(-magnitude, axis=0)
    css = np.cumsum(u, axis=0) - radius
    j = np.arange(1, V.shape[0] + 1)[:, None]
    rho = np.count_nonzero(u - css / j > 0, axis=0)  # u is decreasing, so the condition holds on a prefix
    theta = css[np.maximum(rho - 1, 0), np.arange(V.shape[1])] / np.maximum(rho, 1)
    theta = np.where(inside, 0.0, np.maximum(theta, 0.0))
    return np.sign(V) * np.maximum(magnitude - theta, 0.0)


@dataclass(frozen=True)
class L1InfNorm:
    """Ω(W) = alpha * sum_j max_t |W_tj| (features as groups; prox by Moreau: V - proj onto an ℓ1 ball)."""

    alpha: float

    def value(self, W: Array) -> float:
        if W.size == 0:
            return 0.0
        return self.alpha * float(np.abs(W).max(axis=0).sum())

    def prox(self, W: Array, step: float | Array) -> Array:
        """``step`` one number, or one per feature."""
        return W - project_l1_ball(W, step * self.alpha)

    def dual_norm(self, G: Array) -> float:
        """max_j sum_t |G_tj| (ℓ∞,1)."""
        return float(np.abs(G).sum(axis=0).max()) if G.size else 0.0

    def feature_dual_norms(self, G: Array) -> Array:
        """sum_t |G_tj| for each feature j."""
        return np.abs(G).sum(axis=0)


@dataclass(frozen=True)
class NuclearNorm:
    """Ω(W) = alpha * ||W||_* = alpha * sum of singular values (singular value soft thresholding)."""

    alpha: float

    def value(self, W: Array) -> float:
        return self.alpha * float(np.linalg.svd(W, compute_uv=False).sum())

    def prox(self, W: Array, step: float) -> Array:
        U, s, Vt = np.linalg.svd(W, full_matrices=False)
        s = np.maximum(s - step * self.alpha, 0.0)
        keep = s > 0
        return (U[:, keep] * s[keep]) @ Vt[keep]

    def dual_norm(self, G: Array) -> float:
        """The spectral norm (largest singular value) of ``G``."""
        return float(np.linalg.norm(G, 2)) if G.size else 0.0


@dataclass(frozen=True)
class TaskQuadratic:
    """Ω(W) = rho * tr(Wᵀ M W) + alpha * ||W||_F^2 for a symmetric PSD task matrix ``M`` (n_tasks, n_tasks).

    ``M = I - 11ᵀ/T`` gives ``sum_t ||w_t - w̄||^2``; a graph Laplacian ``D - A`` gives
    ``sum_{s<t} a_st ||w_s - w_t||^2``; ``M = 0`` is ridge. The prox is exact through ``M = U diag(mu) Uᵀ``:
    ``U diag(1 / (1 + 2 step (rho mu + alpha))) Uᵀ V``.
    """

    matrix: Array
    rho: float
    alpha: float
    _eig: tuple[Array, Array] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        mu, U = np.linalg.eigh(self.matrix)
        object.__setattr__(self, "_eig", (np.maximum(mu, 0.0), U))

    def value(self, W: Array) -> float:
        return float(self.rho * np.sum(W * (self.matrix @ W)) + self.alpha * np.sum(W * W))

    def prox(self, W: Array, step: float) -> Array:
        mu, U = self._eig
        shrink = 1.0 / (1.0 + 2.0 * step * (self.rho * mu + self.alpha))
        return U @ (shrink[:, None] * (U.T @ W))


@dataclass(frozen=True)
class EqualRows:
    """Ω(W) = alpha * ||w||^2 if every row of W equals one w (pooled model), +inf otherwise."""

    alpha: float

    def value(self, W: Array) -> float:
        return self.alpha * float(np.sum(W[0] ** 2)) if len(W) else 0.0

    def prox(self, W: Array, step: float) -> Array:
        n_tasks = W.shape[0]
        mean = W.mean(axis=0, keepdims=True) / (1.0 + 2.0 * step * self.alpha / n_tasks)
        return np.repeat(mean, n_tasks, axis=0)


@dataclass(frozen=True)
class Blocks:
    """Ω(P_1, ..., P_k) = sum_i Ω_i(P_i) on a stack ``(k, n_tasks, n_features)``; the model uses W = sum_i P_i."""

    parts: Sequence[Penalty]

    def value(self, V: Array) -> float:
        return float(sum(part.value(block) for part, block in zip(self.parts, V, strict=True)))

    def prox(self, V: Array, step: float | Array) -> Array:
        """Each part's prox; ``step`` one number, or one per feature when every part takes that."""
        return np.stack([part.prox(block, step) for part, block in zip(self.parts, V, strict=True)])  # type: ignore[arg-type]


@dataclass(frozen=True)
class SquaredTraceNorm:
    """Ω(W) = alpha ||W||_F^2 + beta ||W||_*^2, a function of the singular values ``s``: alpha Σs² + beta (Σs)².

    ``beta ||W||_*^2 = min {beta tr(Wᵀ Ω^{-1} W) : Ω ≻ 0, tr Ω = 1}`` (the task-relationship penalty with Ω
    minimized out). Prox: with ``v`` the singular values of V, the top ``k`` values become
    ``(v_i - 2 step beta S) / (1 + 2 step alpha)`` with ``S = sum_{i<=k} v_i / (1 + 2 step alpha + 2 step beta k)``,
    ``k`` the largest for which ``v_k > 2 step beta S``; the others become 0.
    """

    alpha: float
    beta: float

    def value(self, W: Array) -> float:
        s = np.linalg.svd(W, compute_uv=False)
        return float(self.alpha * np.sum(s * s) + self.beta * s.sum() ** 2)

    def prox(self, W: Array, step: float) -> Array:
        U, v, Vt = np.linalg.svd(W, full_matrices=False)
        if v.size == 0:
            return W.copy()
        k = np.arange(1, len(v) + 1)
        totals = np.cumsum(v) / (1.0 + 2.0 * step * self.alpha + 2.0 * step * self.beta * k)
        active = v > 2.0 * step * self.beta * totals  # holds on a prefix of the decreasing v
        n_active = int(np.count_nonzero(active))
        if n_active == 0:
            return np.zeros_like(W)
        S = totals[n_active - 1]
        s = np.maximum(v[:n_active] - 2.0 * step * self.beta * S, 0.0) / (1.0 + 2.0 * step * self.alpha)
        return (U[:, :n_active] * s) @ Vt[:n_active]
