"""How batches are drawn across tasks of very different sizes.

A sampler yields, for each step of an epoch, ``{source: row indices}`` (``np.int64`` arrays) for
:meth:`Arrays.take <multitask.data.arrays.Arrays.take>`. Every sampler

* draws ``steps_per_epoch(data, batch_size) = ceil(labelled rows / batch_size)`` batches per epoch, where a
  source row counts once if any task labels it;
* only draws labelled rows (a row is labelled if some task of its source has a label on it);
* is a pure function of ``(data, batch_size, epoch, seed)``: no global random state, so a resumed run draws
  the same batches as an uninterrupted one.

A batch holds rows, not (row, task) pairs: on a wide table a row drawn for one task also trains every other
task that has a label on it. The task shares below are shares of *drawn* rows.

==============  =====================================================================================
name            per step
==============  =====================================================================================
proportional    the next ``batch_size`` rows of a shuffled pass over every labelled row (each row once per
                epoch: task ``t`` is seen in proportion to ``n_t``; on one wide table, plain minibatching)
uniform         ``batch_size / T`` rows for each of the ``T`` tasks, drawn with replacement from its labelled rows
temperature     ``batch_size`` rows split across tasks by a multinomial draw with ``p_t ∝ n_t^(1/τ)``, each
                task's share drawn with replacement from its labelled rows
round-robin     the whole batch for one task, cycling through the tasks in order; each task walks through
                reshuffled passes over its labelled rows
==============  =====================================================================================
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from multitask.data.arrays import Arrays
from multitask.errors import ConfigError

Rows = dict[str, np.ndarray]


@runtime_checkable
class Sampler(Protocol):
    """Yields one epoch of batches, ``{source: row indices}`` per step, determined by ``(seed, epoch)``."""

    def batches(self, data: Arrays, batch_size: int, epoch: int, seed: int) -> Iterator[Rows]: ...


def labelled_rows(data: Arrays, source: str) -> np.ndarray:
    """Rows of ``source`` on which at least one task has a label (sorted ``int64``)."""
    any_label = np.zeros(data.n_rows(source), dtype=bool)
    for task in data.tasks_of(source):
        any_label |= data.masks[task].astype(bool)
    return np.flatnonzero(any_label).astype(np.int64)


def steps_per_epoch(data: Arrays, batch_size: int) -> int:
    """``ceil(labelled rows / batch_size)``, counting a source row once if any task labels it."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    total = sum(len(labelled_rows(data, s)) for s in data.sources)
    return math.ceil(total / batch_size)


def _rng(seed: int, epoch: int, *salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, *salt])


def _task_rows(data: Arrays) -> dict[str, np.ndarray]:
    rows = {t: np.flatnonzero(m).astype(np.int64) for t, m in data.masks.items()}
    return {t: r for t, r in rows.items() if len(r)}


def _group(pairs: list[tuple[str, np.ndarray]], sources: list[str]) -> Rows:
    """Rows per source, concatenated in task order; every source is present (possibly empty)."""
    out: Rows = {}
    for source in sources:
        parts = [r for s, r in pairs if s == source]
        out[source] = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return out


def _draw_shares(
    data: Arrays, task_rows: dict[str, np.ndarray], shares: np.ndarray, rng: np.random.Generator
) -> Rows:
    pairs = []
    for (task, rows), k in zip(task_rows.items(), shares, strict=True):
        if k:
            pairs.append((data.task_source[task], rows[rng.integers(0, len(rows), size=int(k))]))
    return _group(pairs, data.sources)


@dataclass(frozen=True)
class Proportional:
    """Every labelled row once per epoch, shuffled (task ``t`` seen ∝ ``n_t``); the default."""

    def batches(self, data: Arrays, batch_size: int, epoch: int, seed: int) -> Iterator[Rows]:
        sources = data.sources
        rows = [labelled_rows(data, s) for s in sources]
        which = np.concatenate([np.full(len(r), i, dtype=np.int64) for i, r in enumerate(rows)])
        index = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        order = _rng(seed, epoch).permutation(len(index))
        which, index = which[order], index[order]
        for start in range(0, len(index), batch_size):
            w, i = which[start : start + batch_size], index[start : start + batch_size]
            yield {s: i[w == k] for k, s in enumerate(sources)}


@dataclass(frozen=True)
class Uniform:
    """Each step gives every task an equal share of the batch, drawn with replacement from its labelled rows.

    With ``T`` tasks each gets ``batch_size // T`` rows; the remainder goes to one extra row for a
    rotating set of tasks so that over steps the shares are equal.
    """

    def batches(self, data: Arrays, batch_size: int, epoch: int, seed: int) -> Iterator[Rows]:
        task_rows = _task_rows(data)
        n_tasks = len(task_rows)
        rng = _rng(seed, epoch)
        for step in range(steps_per_epoch(data, batch_size)):
            shares = np.full(n_tasks, batch_size // n_tasks, dtype=np.int64)
            extra = (np.arange(n_tasks) - step * (batch_size % n_tasks)) % n_tasks < batch_size % n_tasks
            shares[extra] += 1
            yield _draw_shares(data, task_rows, shares, rng)


@dataclass(frozen=True)
class Temperature:
    """Task ``t`` gets a share ``p_t ∝ n_t^(1/τ)`` of each batch (τ=1 proportional, τ→∞ uniform).

    Each step splits ``batch_size`` across tasks by one multinomial draw with probabilities ``p_t`` (so
    shares are exact in expectation, not per step), then draws each task's share with replacement from its
    labelled rows. Default ``tau=2.0``.
    """

    tau: float = 2.0
    #: the labelled rows ``n_t`` of each task, when they are known beyond ``data`` (a streamed run under
    #: torchrun draws from each process's window with the counts of the whole training part); None: ``data``'s
    counts: dict[str, int] | None = None

    def __post_init__(self) -> None:
        if not self.tau > 0:
            raise ConfigError(f"temperature must be > 0, got {self.tau}")

    def with_counts(self, counts: dict[str, int]) -> Temperature:
        """The same sampler with ``n_t`` taken from ``counts`` instead of the data drawn from."""
        return Temperature(self.tau, dict(counts))

    def probabilities(self, data: Arrays) -> dict[str, float]:
        """``p_t = n_t^(1/τ) / Σ_u n_u^(1/τ)`` over the tasks with at least one label in ``data``."""
        rows = _task_rows(data)
        n = np.array([self.counts[t] if self.counts is not None else len(r) for t, r in rows.items()],
                     dtype=np.float64)
        logits = np.log(n) / self.tau
        p = np.exp(logits - logits.max())
        p /= p.sum()
        return dict(zip(_task_rows(data), p.tolist(), strict=True))

    def batches(self, data: Arrays, batch_size: int, epoch: int, seed: int) -> Iterator[Rows]:
        task_rows = _task_rows(data)
        if not task_rows:
            return
        p = np.array(list(self.probabilities(data).values()))
        rng = _rng(seed, epoch)
        for _ in range(steps_per_epoch(data, batch_size)):
            yield _draw_shares(data, task_rows, rng.multinomial(batch_size, p), rng)


@dataclass(frozen=True)
class RoundRobin:
    """Each step one task (cycling in task order) gets the whole batch from its labelled rows.

    Each task walks through its labelled rows in reshuffled passes, so small tasks repeat rows and large
    tasks see a different part of their rows at each turn.
    """

    def batches(self, data: Arrays, batch_size: int, epoch: int, seed: int) -> Iterator[Rows]:
        task_rows = _task_rows(data)
        names = list(task_rows)
        rngs = {t: _rng(seed, epoch, i) for i, t in enumerate(names)}
        queues: dict[str, list[np.ndarray]] = {t: [] for t in names}
        queued = dict.fromkeys(names, 0)
        for step in range(steps_per_epoch(data, batch_size)):
            task = names[step % len(names)]
            while queued[task] < batch_size:
                queues[task].append(rngs[task].permutation(task_rows[task]))
                queued[task] += len(task_rows[task])
            pool = np.concatenate(queues[task])
            take, rest = pool[:batch_size], pool[batch_size:]
            queues[task], queued[task] = [rest], len(rest)
            yield _group([(data.task_source[task], take)], data.sources)


__all__ = [
    "Proportional",
    "RoundRobin",
    "Rows",
    "Sampler",
    "Temperature",
    "Uniform",
    "labelled_rows",
    "steps_per_epoch",
]
