"""Fronts of task trade-offs: preference vectors on the simplex, non-dominated points, exact hypervolume."""

from __future__ import annotations

import itertools

import numpy as np


def simplex_grid(tasks: int, points: int) -> np.ndarray:
    """About ``points`` preference vectors spread over the simplex ``{r ≥ 0, Σ r = 1}`` of ``tasks`` tasks.

    Two tasks: ``points`` evenly spaced vectors from (1, 0) to (0, 1). More: the lattice ``{k / m}`` with the
    smallest ``m`` giving at least ``points`` vectors (``C(m + T − 1, T − 1)`` of them), corners included.
    """
    if tasks < 2:
        raise ValueError("a front needs at least two tasks")
    if points < 2:
        raise ValueError(f"a front needs at least 2 preference vectors, got {points}")
    if tasks == 2:
        a = np.linspace(1.0, 0.0, points)
        return np.stack([a, 1.0 - a], axis=1)
    m = 1
    while _lattice_size(m, tasks) < points:
        m += 1
    rows = [c for c in itertools.product(range(m + 1), repeat=tasks - 1) if sum(c) <= m]
    grid = np.array([[*c, m - sum(c)] for c in rows], dtype=np.float64) / m
    return grid[np.lexsort(grid.T[::-1])][::-1]


def _lattice_size(m: int, tasks: int) -> int:
    from math import comb

    return comb(m + tasks - 1, tasks - 1)


def nondominated(points: np.ndarray) -> np.ndarray:
    """Mask of the rows of ``points`` (n × d, lower is better) that no other row dominates.

    ``q`` dominates ``p`` when ``q ≤ p`` everywhere and ``q < p`` somewhere; of equal rows all are kept.
    """
    p = np.asarray(points, dtype=np.float64)
    keep = np.ones(len(p), dtype=bool)
    for i in range(len(p)):
        others = np.delete(p, i, axis=0)
        if len(others) and np.any(np.all(others <= p[i], axis=1) & np.any(others < p[i], axis=1)):
            keep[i] = False
    return keep


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """The volume dominated by ``points`` (n × d, lower is better) and bounded by ``reference`` (exact).

    Points not strictly better than ``reference`` in every coordinate add nothing. Computed by slicing along
    the last coordinate (the HSO recursion: exact, fine for the tens of points of a front in a few dimensions).
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, len(reference))
    ref = np.asarray(reference, dtype=np.float64)
    if not np.all(np.isfinite(ref)):
        raise ValueError("the reference point must be finite")
    p = p[np.all(np.isfinite(p), axis=1) & np.all(p < ref, axis=1)]
    return _slices(p, ref)


def _slices(p: np.ndarray, ref: np.ndarray) -> float:
    if len(p) == 0:
        return 0.0
    if p.shape[1] == 1:
        return float(ref[0] - p[:, 0].min())
    p = p[nondominated(p)]
    p = p[np.argsort(p[:, -1], kind="stable")]
    total = 0.0
    for i in range(len(p)):
        upper = p[i + 1, -1] if i + 1 < len(p) else ref[-1]
        depth = upper - p[i, -1]
        if depth > 0:
            total += depth * _slices(p[: i + 1, :-1], ref[:-1])
    return total


def reference_point(points: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """The worst value of each coordinate over ``points`` plus ``margin`` times its range (the nadir, padded)."""
    p = np.asarray(points, dtype=np.float64)
    p = p[np.all(np.isfinite(p), axis=1)]
    if len(p) == 0:
        raise ValueError("no finite point to place a reference point from")
    worst, best = p.max(axis=0), p.min(axis=0)
    span = np.where(worst > best, worst - best, np.maximum(np.abs(worst), 1e-12))
    return worst + margin * span
