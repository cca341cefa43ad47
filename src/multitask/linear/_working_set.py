"""A working-set strategy around the one FISTA for norms that are sums over features (ℓ1, ℓ2,1, ℓ1,∞).

With such a penalty (or a :class:`~multitask.linear._penalties.Blocks` of them, ``W = P + Q``), feature ``j``
can stay at zero in every part exactly when the dual norm of its column of the loss gradient ``G`` is at most
each part's ``alpha``. So the solver (as celer and skglm do, Massias et al., 2018; Bertrand et al., 2022):

1. ranks the features by ``score_j = max_parts N*(G_{:, j}) / alpha_part`` (features already nonzero first),
   and keeps the ``k`` best: the working set;
2. solves the problem restricted to those columns with :func:`~multitask.linear._solver.fista` (on the
   backend's ``restrict``, a fraction of the cost of a full pass), from the current point, with its steps
   scaled per feature by the backend's curvature bound when the backend gives one (measured once, one
   pass): on a working set of sparse columns of unequal norms this cuts the iterations ten- to twenty-fold;
3. makes one full pass for ``G`` on all features and measures the optimality of the zeros outside the set:
   ``||prox_Ω(-G_out)||``, the proximal-gradient mapping of the full solver restricted to those features
   (for a norm it does not depend on the step), the distance of ``-G_j`` to the ball ``alpha`` of the dual
   norm;
4. stops when that violation is at most ``tol`` times the full solver's scale and the restricted solve met
   ``tol``: the full solver's own stopping test then holds on every feature, so both stop at the same
   accuracy. Otherwise, if the violation is above ``tol``, ``k`` doubles (at least twice the number of
   nonzero features) and the set is chosen again; if not, the same set is solved to ``tol``.

Stopping rule. The backend gives the loss and its gradient in ``(W, b)``, not the per-row dual variables a
duality gap needs for every loss (squared, logistic, squared hinge, missing labels), so the rule is the
optimality (KKT) violation above, for every formulation here — ℓ1, ℓ2,1 and the dirty model alike. The
inner solves run at ``max(tol, violation / 3)`` (relative), tightened to ``tol`` as the violation falls.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from numpy.typing import NDArray

from multitask.linear._backend import Backend, curvature, restricted
from multitask.linear._penalties import Blocks, FeatureNorm
from multitask.linear._solver import FeatureMetric, SolverResult, fista, gradient_scale

Array = NDArray[np.float64]
logger = logging.getLogger(__name__)
#: the first working set holds at least this many features
_FIRST = 16
#: the inner tolerance is this fraction of the current violation (until it reaches ``tol``)
_INNER = 0.3


def applies(penalty: object) -> bool:
    """Whether ``penalty`` is a :class:`Blocks` of norms that are sums over features (what the strategy needs)."""
    return isinstance(penalty, Blocks) and all(
        isinstance(part, FeatureNorm) and getattr(part, "groups", "features") == "features" for part in penalty.parts)


def feature_metric(backend: Backend, penalty: object, n_blocks: int) -> FeatureMetric | None:
    """The per-feature metric from the backend's :class:`~multitask.linear._backend.Curvature` (one pass), for a
    penalty the strategy :func:`applies` to; None otherwise (the solver then takes one step for all)."""
    if not applies(penalty):
        return None
    found = curvature(backend)
    return None if found is None else FeatureMetric.from_curvature(found, n_blocks)


def feature_scores(penalty: Blocks, G: Array) -> Array:
    """``max_parts N*(G_{:, j}) / alpha``: feature ``j`` may stay at zero in every part when at most 1."""
    scores = np.zeros(G.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        for part in penalty.parts:
            assert isinstance(part, FeatureNorm)
            norms = part.feature_dual_norms(G)
            scores = np.maximum(scores, np.where(norms > 0, norms / part.alpha, 0.0))
    return scores


def _violation(penalty: Blocks, G: Array) -> float:
    """``||prox_Ω(-G)||`` over all parts: how far zero is from optimal on these columns."""
    if G.shape[1] == 0:
        return 0.0
    mapped = penalty.prox(np.broadcast_to(-G, (len(penalty.parts), *G.shape)).copy(), 1.0)
    return math.sqrt(float(np.sum(mapped * mapped)))


def working_set_fista(backend: Backend, penalty: Blocks, coef: Array, intercept: Array, *, fit_intercept: bool = True,
                      tol: float = 1e-5, max_iter: int = 1000) -> SolverResult:
    """Minimize ``backend(sum(coef), intercept) + penalty(coef)`` through working sets of features.

    ``max_iter`` bounds the inner iterations over all working sets together.
    """
    full = backend
    V = np.array(coef, dtype=float)
    b = np.asarray(intercept, dtype=float).copy()
    n_blocks, _, n_features = V.shape
    _, G, g_b = full.loss_and_grad(V.sum(axis=0), b)
    if np.any(V):  # the full solver's scale: the gradient at W = 0
        scale = gradient_scale(full, n_blocks, b, fit_intercept)
    else:
        scale = math.sqrt(n_blocks * float(np.sum(G * G)) + (float(np.sum(g_b * g_b)) if fit_intercept else 0.0))
    metric = feature_metric(full, penalty, n_blocks)
    active = np.any(V != 0, axis=(0, 1))
    violation = _violation(penalty, G[:, ~active]) / scale if scale > 0 else 0.0
    size = min(n_features, _FIRST)
    history: list[float] = []
    n_iter, converged = 0, False
    features = np.empty(0, dtype=np.intp)
    while n_iter < max_iter:
        inner_tol = max(tol, _INNER * violation)
        if violation > tol or not len(features):  # otherwise the set stays: only the inner tolerance tightens
            active = np.any(V != 0, axis=(0, 1))
            size = min(n_features, max(size, 2 * int(active.sum())))
            scores = feature_scores(penalty, G)
            scores[active] = np.inf
            features = (np.sort(np.argpartition(-scores, size - 1)[:size]) if size < n_features
                        else np.arange(n_features))
        sub = restricted(full, features)
        result = fista(sub, penalty, V[:, :, features], b, fit_intercept=fit_intercept, tol=inner_tol,
                       max_iter=max_iter - n_iter, scale=scale,
                       metric=None if metric is None else metric.restrict(features))
        n_iter += result.n_iter
        history.extend(result.objective)
        V[:] = 0.0
        V[:, :, features] = result.coef
        b = result.intercept
        _, G, _ = full.loss_and_grad(V.sum(axis=0), b)
        outside = np.ones(n_features, dtype=bool)
        outside[features] = False
        violation = _violation(penalty, G[:, outside]) / scale if scale > 0 else 0.0
        logger.debug("working set of %d features: %d iterations, violation outside %.3g (inner tol %.3g)",
                     len(features), result.n_iter, violation, inner_tol)
        if violation <= tol and result.converged and inner_tol <= tol:
            converged = True
            break
        if violation > tol:
            size = min(n_features, 2 * size)
    return SolverResult(V, b, n_iter, converged, history)
