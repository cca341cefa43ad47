"""Task groups from an affinity matrix: exact search against brute force, beam search on block structure."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from multitask.affinity._grouping import Partition, best_partition, partition_names, partition_score


def all_partitions(t: int) -> Iterator[list[list[int]]]:
    """Every partition of ``0..t-1`` (restricted growth strings)."""
    def grow(i: int, groups: list[list[int]]) -> Iterator[list[list[int]]]:
        if i == t:
            yield [list(g) for g in groups]
            return
        for g in groups:
            g.append(i)
            yield from grow(i + 1, groups)
            g.pop()
        groups.append([i])
        yield from grow(i + 1, groups)
        groups.pop()
    yield from grow(0, [])


def brute_force(a: np.ndarray, k: int | None = None, singleton: float = 0.0) -> tuple[float, int]:
    """The best score and, among the partitions reaching it, the fewest groups."""
    best, fewest = -np.inf, 0
    for p in all_partitions(a.shape[0]):
        if k is not None and len(p) != k:
            continue
        s = partition_score(a, p, singleton)
        if s > best + 1e-9:
            best, fewest = s, len(p)
        elif s > best - 1e-9:
            fewest = min(fewest, len(p))
    return best, fewest


def blocks(sizes: list[int], seed: int = 0, across: float = -0.5,
           noise: float = 0.0) -> tuple[np.ndarray, list[list[int]]]:
    """An affinity matrix with high affinity inside blocks of shuffled tasks (each its own level), and the blocks."""
    rng = np.random.default_rng(seed)
    t = sum(sizes)
    order = rng.permutation(t)
    label = np.empty(t, dtype=int)
    start = 0
    for b, size in enumerate(sizes):
        label[order[start:start + size]] = b
        start += size
    inside = rng.uniform(0.5, 1.5, len(sizes))[label]
    a = np.where(label[:, None] == label[None, :], inside[None, :], across) + noise * rng.standard_normal((t, t))
    np.fill_diagonal(a, np.nan)  # ignored
    groups = sorted((sorted(np.flatnonzero(label == b).tolist()) for b in range(len(sizes))), key=lambda g: g[0])
    return a, groups


def as_sets(groups: list[list[int]]) -> set[frozenset[int]]:
    return {frozenset(g) for g in groups}


def test_all_partitions_counts_bell_numbers() -> None:
    assert [sum(1 for _ in all_partitions(t)) for t in range(1, 8)] == [1, 2, 5, 15, 52, 203, 877]


@pytest.mark.parametrize("exact_limit", [12, 0], ids=["exact", "beam"])
def test_blocks_are_recovered(exact_limit: int) -> None:
    a, groups = blocks([3, 4, 2, 3])
    p = best_partition(a, exact_limit=exact_limit)
    assert p.groups == groups
    assert p.method == ("exact" if exact_limit else "beam")
    assert p.score == pytest.approx(partition_score(a, groups))


@pytest.mark.parametrize("seed", range(4))
def test_beam_finds_blocks_of_twenty_tasks(seed: int) -> None:
    a, groups = blocks([5, 3, 6, 4, 2], seed=seed)
    p = best_partition(a)
    assert p.method == "beam"
    assert p.groups == groups
    noisy, groups = blocks([5, 3, 6, 4, 2], seed=seed, noise=0.1)
    assert best_partition(noisy, k=5).groups == groups
    assert best_partition(noisy, k=5).score == pytest.approx(partition_score(noisy, groups))


@pytest.mark.parametrize("seed", [0, 1])
def test_greedy_finds_blocks_of_hundreds_of_tasks(seed: int) -> None:
    sizes = [40, 25, 60, 35, 40]  # 200 tasks: the beam search would take minutes
    a, groups = blocks(sizes, seed=seed)
    p = best_partition(a)
    assert p.method == "greedy"
    assert p.groups == groups
    noisy, groups = blocks(sizes, seed=seed, noise=0.1)
    found = best_partition(noisy, k=5)
    assert found.groups == groups
    assert found.score == pytest.approx(partition_score(noisy, groups))


@pytest.mark.parametrize("exact_limit", [12, 0], ids=["exact", "beam"])
def test_noise_inside_a_block_splits_it_unless_k_is_fixed(exact_limit: int) -> None:
    """Averaging makes a uniform block worth the same as any split of it; noise then picks the strongest pairs."""
    a, groups = blocks([4, 4, 3], seed=1, noise=0.1)
    p = best_partition(a, exact_limit=exact_limit)
    assert p.k > 3 and all(any(set(g) <= set(b) for b in groups) for g in p.groups)
    assert best_partition(a, k=3, exact_limit=exact_limit).groups == groups


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("t", [1, 2, 3, 4, 5, 6, 7])
def test_exact_equals_brute_force(t: int, seed: int) -> None:
    a = np.random.default_rng(seed).standard_normal((t, t))
    best, fewest = brute_force(a)
    p = best_partition(a)
    assert p.score == pytest.approx(best, abs=1e-9)
    assert p.k == fewest
    assert partition_score(a, p.groups) == pytest.approx(p.score)
    for k in range(1, t + 1):
        assert best_partition(a, k=k).score == pytest.approx(brute_force(a, k)[0], abs=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_singleton_value_and_beam_near_exact(seed: int) -> None:
    a = np.random.default_rng(seed).standard_normal((6, 6))
    best, _ = brute_force(a, singleton=0.7)
    assert best_partition(a, singleton=0.7).score == pytest.approx(best)
    beam = best_partition(a, exact_limit=0, beam_width=32)
    assert beam.score == pytest.approx(brute_force(a)[0])


@pytest.mark.parametrize("exact_limit", [12, 0], ids=["exact", "beam"])
def test_pinned_values(exact_limit: int) -> None:
    """{0, 1}: A[1, 0] + A[0, 1] = 2; {2, 3}: 1 + 2 = 3; all four together: (1 + 1 + 2 + 1) / 3."""
    a = np.array([[0.0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 2], [0, 0, 1, 0]])
    p = best_partition(a, exact_limit=exact_limit)
    assert (p.groups, p.score) == ([[0, 1], [2, 3]], pytest.approx(5.0))
    assert partition_names(p, ["a", "b", "c", "d"]) == [["a", "b"], ["c", "d"]]
    assert best_partition(a, k=1, exact_limit=exact_limit).score == pytest.approx(5 / 3)
    assert best_partition(a, k=4, exact_limit=exact_limit).score == 0.0
    assert best_partition(a, k=3, singleton=0.5, exact_limit=exact_limit).score == pytest.approx(4.0)
    assert best_partition(np.zeros((1, 1)), exact_limit=exact_limit).groups == [[0]]


def test_ties_choose_fewer_groups() -> None:
    assert best_partition(np.zeros((5, 5))).groups == [[0, 1, 2, 3, 4]]
    assert best_partition(np.zeros((5, 5)), exact_limit=0).groups == [[0, 1, 2, 3, 4]]


@pytest.mark.parametrize("exact_limit", [12, 0], ids=["exact", "beam"])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_fixed_k_gives_k_nonempty_groups(k: int, exact_limit: int) -> None:
    a = np.random.default_rng(k).standard_normal((8, 8))
    p = best_partition(a, k=k, exact_limit=exact_limit)
    assert p.k == k and all(p.groups)
    assert sorted(i for g in p.groups for i in g) == list(range(8))


@pytest.mark.parametrize("exact_limit", [12, 0], ids=["exact", "beam"])
@pytest.mark.parametrize("seed", range(3))
def test_permuting_tasks_permutes_the_partition(seed: int, exact_limit: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((9, 9))
    perm = rng.permutation(9)  # new task n is old task perm[n]
    p = best_partition(a, exact_limit=exact_limit)
    q = best_partition(a[np.ix_(perm, perm)], exact_limit=exact_limit)
    assert q.score == pytest.approx(p.score)
    assert as_sets([[int(perm[i]) for i in g] for g in q.groups]) == as_sets(p.groups)


def test_exact_twelve_tasks_is_fast() -> None:
    a = np.random.default_rng(0).standard_normal((12, 12))
    p = best_partition(a)
    assert p.method == "exact"
    assert best_partition(a, k=p.k).score == pytest.approx(p.score)


def test_partition_names() -> None:
    p = Partition([[0, 2], [1]], 1.0, "exact")
    assert partition_names(p, ["a", "b", "c"]) == [["a", "c"], ["b"]]
    assert partition_names([[1], [0]], ["a", "b"]) == [["b"], ["a"]]
    with pytest.raises(ValueError, match="3 task names"):
        partition_names([[0, 1]], ["a", "b", "c"])


@pytest.mark.parametrize(("matrix", "kwargs", "message"), [
    (np.zeros((2, 3)), {}, "square"),
    (np.zeros(4), {}, "square"),
    (np.zeros((0, 0)), {}, "empty"),
    (np.array([[0.0, np.inf], [1.0, 0.0]]), {}, r"finite off the diagonal; A\[0, 1\]"),
    (np.array([[0.0, np.nan], [1.0, 0.0]]), {"exact_limit": 0}, "finite"),
    (np.zeros((3, 3)), {"k": 0}, r"k, the number of groups, must be an integer in \[1, 3\]"),
    (np.zeros((3, 3)), {"k": 4}, r"\[1, 3\]"),
    (np.zeros((3, 3)), {"k": 1.5}, "integer"),
    (np.zeros((3, 3)), {"beam_width": 0}, "beam_width"),
    (np.zeros((3, 3)), {"exact_limit": -1}, "exact_limit"),
    (np.zeros((3, 3)), {"singleton": np.nan}, "singleton"),
])
def test_validation(matrix: np.ndarray, kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        best_partition(matrix, **kwargs)  # type: ignore[arg-type]


def test_partition_score_rejects_non_partitions() -> None:
    with pytest.raises(ValueError, match="partition"):
        partition_score(np.zeros((3, 3)), [[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="partition"):
        partition_score(np.zeros((2, 2)), [[0, 1], []])


def test_diagonal_is_ignored() -> None:
    a = np.random.default_rng(1).standard_normal((5, 5))
    b = a.copy()
    np.fill_diagonal(b, [np.nan, 1e9, -1e9, np.inf, 3.0])
    assert best_partition(a).groups == best_partition(b).groups
