"""Fronts: the preference grid, non-dominated points and the exact hypervolume against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multitask.pareto import hypervolume, nondominated, reference_point, simplex_grid


@pytest.mark.parametrize(("tasks", "points"), [(2, 2), (2, 11), (3, 10), (3, 15), (4, 5)])
def test_simplex_grid_lies_on_the_simplex_and_has_the_corners(tasks: int, points: int) -> None:
    grid = simplex_grid(tasks, points)
    assert len(grid) >= points
    assert np.allclose(grid.sum(axis=1), 1.0) and (grid >= 0).all()
    assert len(np.unique(grid.round(12), axis=0)) == len(grid)
    for corner in np.eye(tasks):
        assert np.any(np.all(np.isclose(grid, corner), axis=1))


def test_simplex_grid_refuses_too_few() -> None:
    with pytest.raises(ValueError, match="at least two tasks"):
        simplex_grid(1, 5)
    with pytest.raises(ValueError, match="at least 2"):
        simplex_grid(2, 1)


def test_nondominated_keeps_exactly_the_front() -> None:
    p = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [2.5, 2.5], [1.0, 3.0], [3.0, 3.0]])
    assert nondominated(p).tolist() == [True, True, True, False, True, False]


def test_two_dimensional_hypervolume_by_hand() -> None:
    p = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    # staircase under reference (4, 4): 3·1 + 2·1 + 1·1
    assert hypervolume(p, np.array([4.0, 4.0])) == pytest.approx(6.0)
    assert hypervolume(np.array([[5.0, 1.0]]), np.array([4.0, 4.0])) == 0.0  # outside the reference box


def _brute(points: np.ndarray, ref: np.ndarray) -> float:
    """Volume of the union of boxes [p, ref] by inclusion-exclusion (exact; few points)."""
    total = 0.0
    for k in range(1, len(points) + 1):
        for subset in itertools.combinations(range(len(points)), k):
            corner = points[list(subset)].max(axis=0)
            total += (-1) ** (k + 1) * float(np.prod(np.clip(ref - corner, 0, None)))
    return total


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 4), st.integers(1, 7), st.integers(0, 2**31 - 1))
def test_hypervolume_equals_inclusion_exclusion(d: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    points = rng.integers(0, 6, size=(n, d)).astype(float)
    ref = np.full(d, 6.0)
    assert hypervolume(points, ref) == pytest.approx(_brute(points, ref))


def test_reference_point_pads_the_worst_values() -> None:
    p = np.array([[1.0, 10.0], [3.0, 20.0]])
    assert reference_point(p).tolist() == pytest.approx([3.2, 21.0])
    with pytest.raises(ValueError, match="no finite point"):
        reference_point(np.array([[np.nan, 1.0]]))
