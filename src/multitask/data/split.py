"""Holding out a validation part of each source, stratified by task so that every task keeps labelled rows."""

from __future__ import annotations

import numpy as np

from multitask.data.spec import DataSpec
from multitask.errors import ConfigError

#: row positions of each source (``{source: positions}``)
Rows = dict[str, np.ndarray]


def split_spec(spec: DataSpec, fraction: float, seed: int) -> tuple[DataSpec, DataSpec]:
    """``(train, valid)`` specs over the rows of :func:`split_rows` (the original index stays, so that errors
    name the row of the user's file)."""
    train, valid = split_rows(spec, fraction, seed)
    paths = {n: s.path for n, s in spec.sources.items()}
    train_frames = {n: s.frame.iloc[train[n]] for n, s in spec.sources.items()}
    valid_frames = {n: s.frame.iloc[valid[n]] for n, s in spec.sources.items()}
    return spec.with_frames(train_frames, paths), spec.with_frames(valid_frames, paths)


def split_rows(spec: DataSpec, fraction: float, seed: int, among: Rows | None = None) -> tuple[Rows, Rows]:
    """``(train, valid)`` row positions of each source: ``fraction`` of the rows of each task (and of
    unlabelled rows) go to ``valid``; ``among`` (optional) restricts the split to those rows of each source.

    A row is assigned to the first task that labels it; within each such group rows are shuffled with
    ``seed`` and ``round(fraction * n)`` of them (at least one, when the group has two or more) are held out.
    Every task keeps at least one labelled training row: a task left with none (in wide form, a task whose
    labelled rows all belong to other tasks' groups) gets one of its held-out rows back, chosen with ``seed``.
    A task with one labelled row therefore has none in validation. Positions come in increasing order.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"--valid-fraction must be strictly between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    train_rows, valid_rows = {}, {}
    for name, src in spec.sources.items():
        rows = np.arange(len(src.frame)) if among is None else among[name]
        n = len(rows)
        tasks = [t for t in spec.task_names if spec.task_source[t] == name]
        labelled = {t: spec.labelled_rows(t)[rows] for t in tasks}
        group = np.full(n, -1, dtype=np.int64)
        for i, task in enumerate(tasks):
            group[(group == -1) & labelled[task]] = i
        valid = np.zeros(n, dtype=bool)
        for g in np.unique(group):
            members = np.flatnonzero(group == g)
            k = round(fraction * len(members))
            if len(members) >= 2:
                k = min(max(k, 1), len(members) - 1)
            else:
                k = 0
            valid[rng.permutation(members)[:k]] = True
        for task in tasks:
            if not (labelled[task] & ~valid).any():
                held_out = np.flatnonzero(labelled[task] & valid)
                if len(held_out):
                    valid[rng.choice(held_out)] = False
        train_rows[name] = rows[~valid]
        valid_rows[name] = rows[valid]
    return train_rows, valid_rows
