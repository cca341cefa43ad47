"""Holding out a validation part of each source, stratified by task so that every task keeps labelled rows."""

from __future__ import annotations

import numpy as np

from multitask.data.preprocess import _task_rows
from multitask.data.spec import DataSpec
from multitask.errors import ConfigError


def split_spec(spec: DataSpec, fraction: float, seed: int) -> tuple[DataSpec, DataSpec]:
    """``(train, valid)``: ``fraction`` of the rows of each task (and of unlabelled rows) go to ``valid``.

    A row is assigned to the first task that labels it; within each such group rows are shuffled with
    ``seed`` and ``round(fraction * n)`` of them (at least one, when the group has two or more) are held out.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"--valid-fraction must be strictly between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    train_frames, valid_frames = {}, {}
    for name, src in spec.sources.items():
        n = len(src.frame)
        group = np.full(n, -1, dtype=np.int64)
        for i, task in enumerate(spec.task_names):
            if spec.task_source[task] != name:
                continue
            labelled = _task_rows(spec, task) & src.frame[spec.target_column[task]].notna().to_numpy()
            group[(group == -1) & labelled] = i
        valid = np.zeros(n, dtype=bool)
        for g in np.unique(group):
            rows = np.flatnonzero(group == g)
            k = round(fraction * len(rows))
            if len(rows) >= 2:
                k = min(max(k, 1), len(rows) - 1)
            else:
                k = 0
            valid[rng.permutation(rows)[:k]] = True
        # the original index stays, so that errors name the row of the user's file
        train_frames[name] = src.frame.iloc[np.flatnonzero(~valid)]
        valid_frames[name] = src.frame.iloc[np.flatnonzero(valid)]
    paths = {n: s.path for n, s in spec.sources.items()}
    return spec.with_frames(train_frames, paths), spec.with_frames(valid_frames, paths)
