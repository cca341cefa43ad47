"""Preprocessing fitted in one pass over a :class:`~multitask.data.streaming.Table`, piece by piece.

The encodings are those of :meth:`Preprocessor.fit <multitask.data.preprocess.Preprocessor.fit>` on the
training rows: a numeric column's mean and (population) standard deviation are combined piece by piece
(Chan et al.'s pairwise update of count, mean and sum of squared deviations, in float64), categories and
classes are collected as sets. A column's type is decided in each piece by the in-memory rule and must be
the same in every piece (a CSV column of numbers with text in one chunk is an error naming the chunk).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from multitask.data.preprocess import (
    ColumnCodec,
    Preprocessor,
    SourceCodec,
    TargetCodec,
    _as_str,
    _column_kind,
    _fit_target,
    _numeric,
    _regression_values,
)
from multitask.data.spec import DataSpec
from multitask.data.streaming import SHUFFLE_BUFFER, Stream, Table, is_valid_row
from multitask.errors import ConfigError, DataError


@dataclass
class Moments:
    """Count, mean and sum of squared deviations of the values seen so far (Chan et al. 1979)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: np.ndarray) -> None:
        if len(x) == 0:
            return
        with np.errstate(over="ignore", invalid="ignore"):
            n_b = len(x)
            mean_b = float(x.mean())
            m2_b = float(((x - mean_b) ** 2).sum())
            n = self.n + n_b
            delta = mean_b - self.mean
            self.mean += delta * n_b / n
            self.m2 += m2_b + delta * delta * self.n * n_b / n
            self.n = n

    def mean_std(self, where: str, what: str) -> tuple[float, float]:
        """``(mean, std)`` with std 0 → 1, or an error when they overflow."""
        std = math.sqrt(self.m2 / self.n) if self.n and self.m2 >= 0 else float("nan")
        if not (math.isfinite(self.mean) and math.isfinite(std)):
            raise DataError(
                f"{where}: {what} has values too large to standardize; rescale the column (divide it, or take a log) "
                "or drop it"
            )
        return self.mean, std if std > 0 else 1.0


def fit_stream(
    table: Table,
    spec_of: Callable[[pd.DataFrame, str], DataSpec],
    fraction: float,
    seed: int,
    shuffle_buffer: int = SHUFFLE_BUFFER,
) -> tuple[Preprocessor, Stream, Stream]:
    """``(preprocessing, training stream, validation stream)`` after one pass over ``table``.

    Row ``i`` goes to validation when ``h(seed, i) < fraction`` (:func:`~multitask.data.streaming.is_valid_row`).
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"--valid-fraction must be strictly between 0 and 1, got {fraction}")
    kinds: dict[str, tuple[str, str]] = {}  # column -> (kind, where it was decided)
    moments: dict[str, Moments] = {}
    categories: dict[str, set[str]] = {}
    target_moments: dict[str, Moments] = {}
    classes: dict[str, list[pd.Series]] = {}
    rows = {"train": [], "valid": []}  # type: dict[str, list[int]]
    labelled = {"train": {}, "valid": {}}  # type: dict[str, dict[str, int]]
    spec: DataSpec | None = None
    for piece, frame in table.read(table.pieces):
        where = table.where(piece)
        valid = is_valid_row(piece.first + np.arange(len(frame), dtype=np.int64), fraction, seed)
        for part, chosen in (("train", ~valid), ("valid", valid)):
            spec = spec_of(frame.iloc[np.flatnonzero(chosen)], where)
            if len(spec.sources) != 1:
                raise ConfigError("streaming reads one table: per-task data sets are read in memory")
            any_label = np.zeros(int(chosen.sum()), dtype=bool)
            for name in spec.task_names:
                mask = spec.labelled_rows(name)
                any_label |= mask
                labelled[part][name] = labelled[part].get(name, 0) + int(mask.sum())
            rows[part].append(int(any_label.sum()))
            if part == "train":
                _add_piece(spec, where, kinds, moments, categories, target_moments, classes)
    if spec is None:
        raise DataError(f"{table.paths[0]}: no rows")
    name = next(iter(spec.sources))
    columns = []
    for col in spec.feature_columns(name):
        if col not in kinds:
            raise DataError(f"{table.paths[0]}: no training rows to fit feature column {col!r} on")
        if kinds[col][0] == "numeric":
            mean, std = moments[col].mean_std(str(table.paths[0]), f"feature column {col!r}")
            columns.append(ColumnCodec(col, "numeric", mean=mean, std=std))
        else:
            columns.append(ColumnCodec(col, "categorical", categories=sorted(categories[col])))
    if not columns:
        raise DataError(f"{table.paths[0]}: no feature columns left after the targets and task id")
    targets: dict[str, TargetCodec] = {}
    for task in spec.tasks:
        where = str(table.paths[0])
        column = spec.target_column[task.name]
        if labelled["train"].get(task.name, 0) == 0:
            raise DataError(f"task {task.name!r} has no labelled rows in the training part of {where}")
        if task.kind == "regression":
            mean, std = target_moments[task.name].mean_std(where, f"task {task.name!r} (regression): column {column!r}")
            targets[task.name] = TargetCodec("regression", mean=mean, std=std)
        else:
            seen = pd.concat(classes[task.name], ignore_index=True).drop_duplicates()
            targets[task.name] = _fit_target(task.name, task.kind, seen, column, where)
    pre = Preprocessor({name: SourceCodec(columns=columns)}, targets)
    task_source = dict(spec.task_source)
    streams = tuple(
        Stream(table, spec_of, pre, part, fraction, seed, rows[part], labelled[part], task_source, shuffle_buffer)
        for part in ("train", "valid")
    )
    return pre, streams[0], streams[1]


def _add_piece(
    spec: DataSpec,
    where: str,
    kinds: dict[str, tuple[str, str]],
    moments: dict[str, Moments],
    categories: dict[str, set[str]],
    target_moments: dict[str, Moments],
    classes: dict[str, list[pd.Series]],
) -> None:
    name = next(iter(spec.sources))
    src = spec.sources[name]
    if src.image_shape is not None:
        raise ConfigError("streaming reads tables of features; image sources are read in memory")
    frame = src.frame
    if len(frame) == 0:
        return
    for col in spec.feature_columns(name):
        if col not in frame.columns:
            raise DataError(f"{where}: no column {col!r} (a feature)")
        values = frame[col]
        if values.isna().all() and col in kinds and kinds[col][0] == "numeric":
            kind = "numeric"  # a chunk of only empty cells: the NaN error below names the row
        else:
            kind = _column_kind(values, where, col)
        before = kinds.setdefault(col, (kind, where))
        if before[0] != kind:
            raise DataError(
                f"{where}: feature column {col!r} reads as {kind} here but as {before[0]} in {before[1]}; "
                "make its values of one type"
            )
        if kind == "numeric":
            moments.setdefault(col, Moments()).add(_numeric(values, where, col))
        else:
            categories.setdefault(col, set()).update(_as_str(values))
    for task in spec.tasks:
        column = spec.target_column[task.name]
        values = frame[column][spec.labelled_rows(task.name)]
        if task.kind == "regression":
            target_moments.setdefault(task.name, Moments()).add(_regression_values(values, task.name, column, where))
        else:
            classes.setdefault(task.name, []).append(values.drop_duplicates())
