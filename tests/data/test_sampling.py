"""Samplers: valid, labelled, deterministic indices; proportional covers each row once; shares match p_t."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multitask.data.arrays import Arrays
from multitask.data.sampling import (
    Proportional,
    RoundRobin,
    Sampler,
    Temperature,
    Uniform,
    labelled_rows,
    steps_per_epoch,
)
from multitask.errors import ConfigError
from multitask.registry import SAMPLERS

#: every registered sampler, resolved by name (Temperature at a non-default tau too)
ALL = [SAMPLERS.get(name)() for name in SAMPLERS] + [Temperature(tau=0.5), Temperature(tau=100.0)]


def _ids(s: Sampler) -> str:
    return repr(s)


@st.composite
def arrays(draw: st.DrawFn) -> Arrays:
    """1-3 sources of 0-40 rows, 1-4 tasks spread over them, random masks (at least one label somewhere)."""
    n_sources = draw(st.integers(1, 3))
    sizes = [draw(st.integers(0, 40)) for _ in range(n_sources)]
    n_tasks = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    inputs = {f"s{i}": rng.normal(size=(n, 2)).astype(np.float32) for i, n in enumerate(sizes)}
    task_source = {f"t{j}": f"s{draw(st.integers(0, n_sources - 1))}" for j in range(n_tasks)}
    density = draw(st.floats(0.0, 1.0))
    masks = {t: rng.random(sizes[int(s[1:])]) < density for t, s in task_source.items()}
    first = next(t for t, s in task_source.items())
    if sizes[int(task_source[first][1:])] and not any(m.any() for m in masks.values()):
        masks[first][0] = True
    targets = {t: np.where(m, 1.0, 0.0).astype(np.float32) for t, m in masks.items()}
    return Arrays(inputs, targets, masks, task_source)


def _epoch(
    sampler: Sampler, data: Arrays, batch_size: int, epoch: int, seed: int
) -> list[dict[str, np.ndarray]]:
    return list(sampler.batches(data, batch_size, epoch, seed))


@pytest.mark.parametrize("sampler", ALL, ids=_ids)
@settings(max_examples=40, deadline=None)
@given(data=arrays(), batch_size=st.integers(1, 17), epoch=st.integers(0, 5), seed=st.integers(0, 1000))
def test_batches_are_valid_and_deterministic(
    sampler: Sampler, data: Arrays, batch_size: int, epoch: int, seed: int
) -> None:
    batches = _epoch(sampler, data, batch_size, epoch, seed)
    assert len(batches) == steps_per_epoch(data, batch_size)
    labelled = {s: set(labelled_rows(data, s).tolist()) for s in data.sources}
    for rows in batches:
        assert set(rows) == set(data.sources)
        assert sum(len(r) for r in rows.values()) <= batch_size
        for source, r in rows.items():
            assert r.dtype == np.int64
            assert ((r >= 0) & (r < data.n_rows(source))).all()
            assert set(r.tolist()) <= labelled[source], "an unlabelled row was drawn"
        data.take(rows)  # usable as is
    again = _epoch(sampler, data, batch_size, epoch, seed)
    assert all(
        all(np.array_equal(a[s], b[s]) for s in data.sources) for a, b in zip(batches, again, strict=True)
    )


@settings(max_examples=60, deadline=None)
@given(data=arrays(), batch_size=st.integers(1, 17), epoch=st.integers(0, 5), seed=st.integers(0, 1000))
def test_proportional_draws_every_labelled_row_once_per_epoch(
    data: Arrays, batch_size: int, epoch: int, seed: int
) -> None:
    batches = _epoch(Proportional(), data, batch_size, epoch, seed)
    for source in data.sources:
        drawn = np.concatenate([b[source] for b in batches]) if batches else np.zeros(0, dtype=np.int64)
        assert np.array_equal(np.sort(drawn), labelled_rows(data, source))
    assert all(sum(len(r) for r in b.values()) == batch_size for b in batches[:-1])


def test_proportional_order_depends_on_seed_and_epoch() -> None:
    data = _per_task_sources([50, 30])
    base = _epoch(Proportional(), data, 8, 0, 0)
    for other in (_epoch(Proportional(), data, 8, 1, 0), _epoch(Proportional(), data, 8, 0, 1)):
        assert any(not np.array_equal(a["s0"], b["s0"]) for a, b in zip(base, other, strict=True))


@settings(max_examples=40, deadline=None)
@given(data=arrays(), batch_size=st.integers(1, 17), epoch=st.integers(0, 5), seed=st.integers(0, 1000))
def test_round_robin_gives_each_step_to_one_task_in_turn(
    data: Arrays, batch_size: int, epoch: int, seed: int
) -> None:
    tasks = [t for t in data.task_source if data.n_labelled(t)]
    for step, rows in enumerate(_epoch(RoundRobin(), data, batch_size, epoch, seed)):
        task = tasks[step % len(tasks)]
        source = data.task_source[task]
        assert len(rows[source]) == batch_size
        assert data.masks[task][rows[source]].all(), "a row without a label for the chosen task"
        assert all(len(r) == 0 for s, r in rows.items() if s != source)


def _per_task_sources(sizes: list[int]) -> Arrays:
    """One source per task (``s{i}`` for ``t{i}``), every row labelled."""
    inputs = {f"s{i}": np.zeros((n, 1), dtype=np.float32) for i, n in enumerate(sizes)}
    targets = {f"t{i}": np.zeros(n, dtype=np.float32) for i, n in enumerate(sizes)}
    masks = {f"t{i}": np.ones(n, dtype=bool) for i, n in enumerate(sizes)}
    return Arrays(inputs, targets, masks, {f"t{i}": f"s{i}" for i in range(len(sizes))})


def _shares(sampler: Sampler, data: Arrays, batch_size: int, epochs: int) -> np.ndarray:
    drawn = np.zeros(len(data.sources))
    for epoch in range(epochs):
        for rows in sampler.batches(data, batch_size, epoch, seed=7):
            drawn += [len(rows[s]) for s in data.sources]
    return drawn / drawn.sum()


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0, 5.0])
def test_temperature_shares_match_p(tau: float) -> None:
    sizes = [2000, 200, 20]
    data = _per_task_sources(sizes)
    p = np.array(sizes, dtype=float) ** (1 / tau)
    p /= p.sum()
    assert np.allclose(list(Temperature(tau).probabilities(data).values()), p)
    shares = _shares(Temperature(tau), data, batch_size=64, epochs=40)  # 40 x 35 steps x 64 rows
    assert np.allclose(shares, p, atol=0.01), (shares, p)


def test_temperature_limits_are_proportional_and_uniform() -> None:
    data = _per_task_sources([300, 100])
    assert np.allclose(list(Temperature(1.0).probabilities(data).values()), [0.75, 0.25])
    assert np.allclose(list(Temperature(1e9).probabilities(data).values()), [0.5, 0.5])


def test_uniform_splits_every_step_equally() -> None:
    data = _per_task_sources([1000, 50, 7])
    batches = _epoch(Uniform(), data, 10, 0, 0)
    counts = np.array([[len(b[s]) for s in data.sources] for b in batches])
    assert (counts.sum(axis=1) == 10).all()
    assert (counts.max(axis=1) - counts.min(axis=1) <= 1).all()
    three_steps = counts[:3].sum(axis=0)  # the remainder rotates: equal over T steps
    assert (three_steps == three_steps[0]).all()


def test_steps_count_each_row_once() -> None:
    data = Arrays(
        {"s": np.zeros((10, 1), dtype=np.float32)},
        {"a": np.zeros(10, dtype=np.float32), "b": np.zeros(10, dtype=np.float32)},
        {"a": np.arange(10) < 6, "b": np.arange(10) >= 3},  # rows 3-5 labelled twice, all 10 labelled
        {"a": "s", "b": "s"},
    )
    assert steps_per_epoch(data, 4) == math.ceil(10 / 4)
    with pytest.raises(ConfigError, match="batch_size"):
        steps_per_epoch(data, 0)


def test_temperature_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="temperature"):
        Temperature(0.0)
