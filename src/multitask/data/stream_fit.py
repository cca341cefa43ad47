"""Preprocessing fitted in one pass over a :class:`~multitask.data.streaming.Table`, piece by piece.

The encodings are those of :meth:`Preprocessor.fit <multitask.data.preprocess.Preprocessor.fit>` on the
training rows: a numeric column's mean and (population) standard deviation are combined piece by piece
(Chan et al.'s pairwise update of count, mean and sum of squared deviations, in float64), categories and
classes are collected as sets. A column's type is decided in each piece by the in-memory rule and must be
the same in every piece (a CSV column of numbers with text in one chunk is an error naming the chunk).

Each piece is summarized alone (its counts, its moments, its categories and classes, or the errors reading it
raised), and the summaries are folded in piece order. Under torchrun (``group``) every process summarizes
its own contiguous run of pieces (:func:`~multitask.data.streaming.split`), the summaries are gathered, and
every process folds all of them in piece order: the fitted preprocessing, the counts and any error are those
of one process, to the last bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
from multitask.data.streaming import SHUFFLE_BUFFER, Group, Stream, Table, is_valid_row, split
from multitask.errors import ConfigError, DataError, MultitaskError


@dataclass
class Moments:
    """Count, mean and sum of squared deviations of the values seen so far (Chan et al. 1979)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @classmethod
    def of(cls, x: np.ndarray) -> Moments:
        """The moments of ``x`` alone."""
        if len(x) == 0:
            return cls()
        with np.errstate(over="ignore", invalid="ignore"):
            mean = float(x.mean())
            return cls(len(x), mean, float(((x - mean) ** 2).sum()))

    def add(self, x: np.ndarray) -> None:
        self.merge(Moments.of(x))

    def merge(self, other: Moments) -> None:
        """Add the values that ``other`` summarizes (Chan et al.'s pairwise update)."""
        if other.n == 0:
            return
        with np.errstate(over="ignore", invalid="ignore"):
            n = self.n + other.n
            delta = other.mean - self.mean
            self.mean += delta * other.n / n
            self.m2 += other.m2 + delta * delta * self.n * other.n / n
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
    group: Group | None = None,
) -> tuple[Preprocessor, Stream, Stream]:
    """``(preprocessing, training stream, validation stream)`` after one pass over ``table``.

    Row ``i`` goes to validation when ``h(seed, i) < fraction`` (:func:`~multitask.data.streaming.is_valid_row`).
    With ``group`` (torchrun) each process reads its run of pieces, and the streams it returns are its
    shares (``rank``, ``world_size``) of the training and validation parts.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"--valid-fraction must be strictly between 0 and 1, got {fraction}")
    rank, world = (group.rank, group.world_size) if group is not None else (0, 1)
    mine = split([p.rows for p in table.pieces], world)[rank]
    summaries = _summarize(table, mine, spec_of, fraction, seed)
    if group is not None and world > 1:
        summaries = sorted((s for part in group.all_gather_object(summaries) for s in part), key=lambda s: s.index)
    fold = _Fold()
    for k, summary in enumerate(summaries):
        if summary.index != k:  # a process stopped at an error: the fold raised it before reaching here
            raise RuntimeError(f"piece {k} of {table.paths[0]} was not summarized")
        fold.add(summary)
    spec = fold.spec
    if spec is None:
        raise DataError(f"{table.paths[0]}: no rows")
    pre = fold.preprocessor(spec, str(table.paths[0]))
    task_source = dict(spec.task_source)
    if world > 1:
        with_rows = sum(1 for n in fold.rows["train"] if n)
        if with_rows < world:
            raise DataError(
                f"{table.paths[0]}: {with_rows} of its {len(table.pieces)} pieces (row groups, or CSV chunks) hold "
                f"labelled training rows, for {world} processes: under torchrun --stream each process reads its own "
                "row groups; write the data in more, smaller row groups (or files), or start fewer processes "
                "(--nproc_per_node)"
            )
    train, valid = (
        Stream(table, spec_of, pre, part, fraction, seed, fold.rows[part], fold.labelled[part], task_source,
               shuffle_buffer, rank=rank, world_size=world)
        for part in ("train", "valid")
    )
    return pre, train, valid


# ---- one piece alone ----------------------------------------------------------------------------------------------
@dataclass
class _Column:
    """A feature column in one piece: its kind there (or the error deciding it), whether all its cells are
    empty, and its moments (or the error reading it as numbers) or its categories."""

    kind: str | MultitaskError
    empty: bool = False
    moments: Moments | MultitaskError | None = None
    categories: set[str] | None = None


@dataclass
class _Summary:
    """What the fit takes from one piece. ``first``: an error raised before anything of the piece counts
    (reading it, declaring its training rows); ``last``: one raised after its training rows are taken in
    (declaring its validation rows)."""

    index: int
    where: str
    rows: dict[str, int] = field(default_factory=dict)
    labelled: dict[str, dict[str, int]] = field(default_factory=dict)
    columns: dict[str, _Column] = field(default_factory=dict)
    targets: dict[str, Moments | pd.Series | MultitaskError] = field(default_factory=dict)
    spec: DataSpec | None = None  # the declaration over the piece's columns (rows left out)
    first: MultitaskError | None = None
    last: MultitaskError | None = None

    @property
    def failed(self) -> bool:
        return self.first is not None or self.last is not None


def _attempt(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or the error it raised."""
    try:
        return fn(*args)
    except MultitaskError as e:
        return e


def _summarize(
    table: Table, indices: list[int], spec_of: Callable[[pd.DataFrame, str], DataSpec], fraction: float, seed: int
) -> list[_Summary]:
    """The summaries of pieces ``indices`` (in file order), up to and with the first that failed."""
    out: list[_Summary] = []
    reading = table.read([table.pieces[i] for i in indices])
    for k, i in enumerate(indices):
        where = table.where(table.pieces[i])
        try:
            piece, frame = next(reading)
        except MultitaskError as e:
            out.append(_Summary(i, where, first=e))
            break
        summary = _Summary(i, where)
        out.append(summary)
        valid = is_valid_row(piece.first + np.arange(len(frame), dtype=np.int64), fraction, seed)
        for part, chosen in (("train", ~valid), ("valid", valid)):
            try:
                spec = spec_of(frame.iloc[np.flatnonzero(chosen)], where)
                if len(spec.sources) != 1:
                    raise ConfigError("streaming reads one table: per-task data sets are read in memory")
            except MultitaskError as e:
                summary.first, summary.last = (e, None) if part == "train" else (None, e)
                break
            any_label = np.zeros(int(chosen.sum()), dtype=bool)
            counts = summary.labelled.setdefault(part, {})
            for name in spec.task_names:
                mask = spec.labelled_rows(name)
                any_label |= mask
                counts[name] = int(mask.sum())
            summary.rows[part] = int(any_label.sum())
            if part == "train":
                try:
                    _summarize_training_rows(spec, where, summary)
                except MultitaskError as e:
                    summary.first = e
                    break
            elif k == len(indices) - 1:
                summary.spec = spec_of(frame.iloc[:0], where)
        if summary.failed:
            break
    return out


def _summarize_training_rows(spec: DataSpec, where: str, summary: _Summary) -> None:
    name = next(iter(spec.sources))
    src = spec.sources[name]
    if src.image_shape is not None:
        raise ConfigError("streaming reads tables of features; image sources are read in memory")
    frame = src.frame
    if len(frame) == 0:
        return
    for col in spec.feature_columns(name):
        if col not in frame.columns:
            summary.columns[col] = _Column(DataError(f"{where}: no column {col!r} (a feature)"))
            return
        values = frame[col]
        column = _Column(_attempt(_column_kind, values, where, col), bool(values.isna().all()))
        if column.kind == "numeric" or column.empty:
            column.moments = _attempt(_numeric_moments, values, where, col)
        if column.kind == "categorical":
            column.categories = set(_as_str(values))
        summary.columns[col] = column
    for task in spec.tasks:
        target = spec.target_column[task.name]
        values = frame[target][spec.labelled_rows(task.name)]
        if task.kind == "regression":
            summary.targets[task.name] = _attempt(_target_moments, values, task.name, target, where)
        else:
            summary.targets[task.name] = values.drop_duplicates()


def _numeric_moments(values: pd.Series, where: str, column: str) -> Moments:
    return Moments.of(_numeric(values, where, column))


def _target_moments(values: pd.Series, task: str, column: str, where: str) -> Moments:
    return Moments.of(_regression_values(values, task, column, where))


# ---- the pieces in order -------------------------------------------------------------------------------------------
class _Fold:
    """The summaries folded in piece order, as one pass over the pieces reads them."""

    def __init__(self) -> None:
        self.kinds: dict[str, tuple[str, str]] = {}  # column -> (kind, where it was decided)
        self.moments: dict[str, Moments] = {}
        self.categories: dict[str, set[str]] = {}
        self.target_moments: dict[str, Moments] = {}
        self.classes: dict[str, list[pd.Series]] = {}
        self.rows: dict[str, list[int]] = {"train": [], "valid": []}
        self.labelled: dict[str, dict[str, int]] = {"train": {}, "valid": {}}
        self.spec: DataSpec | None = None

    def add(self, summary: _Summary) -> None:
        for part, counts in summary.labelled.items():
            for name, n in counts.items():
                self.labelled[part][name] = self.labelled[part].get(name, 0) + n
            self.rows[part].append(summary.rows[part])
        if summary.first is not None:
            raise summary.first
        for col, column in summary.columns.items():
            self._column(col, column, summary.where)
        for task, target in summary.targets.items():
            if isinstance(target, MultitaskError):
                raise target
            if isinstance(target, Moments):
                self.target_moments.setdefault(task, Moments()).merge(target)
            else:
                self.classes.setdefault(task, []).append(target)
        if summary.last is not None:
            raise summary.last
        if summary.spec is not None:
            self.spec = summary.spec

    def _column(self, col: str, column: _Column, where: str) -> None:
        if column.empty and col in self.kinds and self.kinds[col][0] == "numeric":
            kind = "numeric"  # a chunk of only empty cells: the NaN error below names the row
        elif isinstance(column.kind, MultitaskError):
            raise column.kind
        else:
            kind = column.kind
        before = self.kinds.setdefault(col, (kind, where))
        if before[0] != kind:
            raise DataError(
                f"{where}: feature column {col!r} reads as {kind} here but as {before[0]} in {before[1]}; "
                "make its values of one type"
            )
        if kind == "numeric":
            if isinstance(column.moments, MultitaskError):
                raise column.moments
            assert column.moments is not None
            self.moments.setdefault(col, Moments()).merge(column.moments)
        else:
            assert column.categories is not None
            self.categories.setdefault(col, set()).update(column.categories)

    def preprocessor(self, spec: DataSpec, where: str) -> Preprocessor:
        name = next(iter(spec.sources))
        columns = []
        for col in spec.feature_columns(name):
            if col not in self.kinds:
                raise DataError(f"{where}: no training rows to fit feature column {col!r} on")
            if self.kinds[col][0] == "numeric":
                mean, std = self.moments[col].mean_std(where, f"feature column {col!r}")
                columns.append(ColumnCodec(col, "numeric", mean=mean, std=std))
            else:
                columns.append(ColumnCodec(col, "categorical", categories=sorted(self.categories[col])))
        if not columns:
            raise DataError(f"{where}: no feature columns left after the targets and task id")
        targets: dict[str, TargetCodec] = {}
        for task in spec.tasks:
            column = spec.target_column[task.name]
            if self.labelled["train"].get(task.name, 0) == 0:
                raise DataError(f"task {task.name!r} has no labelled rows in the training part of {where}")
            if task.kind == "regression":
                mean, std = self.target_moments[task.name].mean_std(
                    where, f"task {task.name!r} (regression): column {column!r}"
                )
                targets[task.name] = TargetCodec("regression", mean=mean, std=std)
            else:
                seen = pd.concat(self.classes[task.name], ignore_index=True).drop_duplicates()
                targets[task.name] = _fit_target(task.name, task.kind, seen, column, where)
        return Preprocessor({name: SourceCodec(columns=columns)}, targets)
