"""The preprocessing of :mod:`multitask.data.preprocess`, fitted on a Spark DataFrame and applied on executors.

The fitted :class:`~multitask.data.preprocess.Preprocessor` is the in-memory one (``preprocessing.json`` of
the same form), so that a run trained on Spark predicts in memory and the reverse. Fitting takes one
aggregation over the data for the numeric statistics, and one small job per categorical feature and per
classification target (their distinct values). Column kinds follow Spark's schema: numeric and boolean
columns are standardized (population standard deviation, 0 → 1), string columns are one-hot encoded (a
null is the category ``(missing)``); a null or NaN in a numeric feature is an error naming the column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from multitask.data._spark import Block, floats, labels
from multitask.data.preprocess import (
    MISSING,
    ColumnCodec,
    Preprocessor,
    SourceCodec,
    TargetCodec,
    _label_key,
    _sort_key,
)
from multitask.errors import DataError
from multitask.tasks import Task


def _is_numeric(data_type: Any) -> bool:
    from pyspark.sql.types import BooleanType, NumericType

    return isinstance(data_type, NumericType | BooleanType)


def fit_preprocessor(frame: Any, where: str, features: Sequence[str], tasks: Sequence[Task],
                     target_column: dict[str, str], task_rows: dict[str, tuple[str, object]],
                     run_job: Any) -> Preprocessor:
    """A :class:`Preprocessor` of one source ``"data"`` fitted on ``frame`` (every row: the training data)."""
    from pyspark.sql import functions as F

    schema = {f.name: f.dataType for f in frame.schema.fields}
    numeric = [c for c in features if _is_numeric(schema[c])]
    aggs = []
    for c in numeric:
        x = F.col(c).cast("double")
        aggs += [F.avg(x).alias(f"m:{c}"), F.stddev_pop(x).alias(f"s:{c}"),
                 F.sum((x.isNull() | F.isnan(x) | (F.abs(x) == float("inf"))).cast("long")).alias(f"bad:{c}")]
    wide = not task_rows
    regression = [t for t in tasks if t.kind == "regression"]
    if wide:
        for t in regression:
            y = F.col(target_column[t.name]).cast("double")
            label = F.when(~F.isnan(y), y)  # NaN is a missing label, as null is
            aggs += [F.avg(label).alias(f"m:{t.name}"), F.stddev_pop(label).alias(f"s:{t.name}"),
                     F.sum((F.abs(y) == float("inf")).cast("long")).alias(f"inf:{t.name}")]
    row = run_job(lambda: frame.agg(*aggs).first()) if aggs else None
    columns: list[ColumnCodec] = []
    for c in features:
        if c in numeric:
            assert row is not None
            if row[f"bad:{c}"]:
                raise DataError(f"{where}: feature column {c!r} is null, NaN or infinite in {row[f'bad:{c}']} rows; "
                                "impute or drop it (features are never imputed)")
            std = float(row[f"s:{c}"] or 0.0)
            columns.append(ColumnCodec(c, "numeric", mean=float(row[f"m:{c}"]), std=std if std > 0 else 1.0))
        else:
            values = run_job(lambda c=c: [r[0] for r in frame.select(F.col(c).cast("string")).distinct().collect()])
            columns.append(ColumnCodec(c, "categorical", categories=sorted({MISSING if v is None else str(v)
                                                                           for v in values})))
    targets: dict[str, TargetCodec] = {}
    if wide:
        for t in tasks:
            column = target_column[t.name]
            if t.kind == "regression":
                assert row is not None
                _finite(t, column, row[f"inf:{t.name}"], where)
                if row[f"m:{t.name}"] is None:
                    raise DataError(f"{where}: task {t.name!r} has no labelled rows")
                std = float(row[f"s:{t.name}"] or 0.0)
                targets[t.name] = TargetCodec("regression", mean=float(row[f"m:{t.name}"]), std=std if std > 0 else 1.0)
            else:
                values = run_job(lambda column=column: [r[0] for r in frame.select(column).where(
                    _has_label(column, schema)).distinct().limit(3).collect()])
                targets[t.name] = _classes(t, values, column, where)
        return Preprocessor({"data": SourceCodec(columns)}, targets)
    task_column = next(iter(task_rows.values()))[0]
    target = target_column[tasks[0].name]
    labelled = frame.where(_has_label(target, schema))
    if regression:
        y = F.col(target).cast("double")
        label = F.when(~F.isnan(y), y)  # NaN is a missing label, as null is
        stats = run_job(lambda: {str(r[0]): (r[1], r[2], r[3]) for r in labelled.groupBy(task_column).agg(
            F.avg(label), F.stddev_pop(label), F.sum((F.abs(y) == float("inf")).cast("long"))).collect()})
    else:
        pairs = run_job(lambda: labelled.select(task_column, target).distinct().collect())
    for t in tasks:
        if t.kind == "regression":
            mean, std, infinite = stats.get(t.name, (None, None, 0))
            _finite(t, target, infinite, where)
            if mean is None:
                raise DataError(f"{where}: task {t.name!r} has no labelled rows")
            targets[t.name] = TargetCodec("regression", mean=float(mean),
                                          std=float(std) if std is not None and std > 0 else 1.0)
        else:
            targets[t.name] = _classes(t, [v for k, v in pairs if str(k) == t.name], target, where)
    return Preprocessor({"data": SourceCodec(columns)}, targets)


def _has_label(column: str, schema: dict[str, Any]) -> Any:
    """Where ``column`` holds a label: not null, and not NaN in a floating-point column (NaN is a missing label)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, FloatType

    present = F.col(column).isNotNull()
    return present & ~F.isnan(F.col(column)) if isinstance(schema[column], DoubleType | FloatType) else present


def _finite(task: Task, column: str, infinite: int | None, where: str) -> None:
    """DataError naming the task and its target column when that column is infinite in some of its rows."""
    if infinite:
        raise DataError(f"{where}: task {task.name!r} (regression): column {column!r} is infinite in {infinite} "
                        "rows; a regression target must be finite")


def _classes(task: Task, values: list[Any], column: str, where: str) -> TargetCodec:
    classes = sorted({_label_key(v) for v in values}, key=_sort_key)
    if len(classes) != 2:
        what = "no labels" if not classes else (f"only one class, {classes[0]!r}" if len(classes) == 1
                                                 else "more than two classes")
        raise DataError(f"{where}: task {task.name!r} ({task.kind}): column {column!r} has {what}; "
                        "a binary task takes two")
    return TargetCodec(task.kind, classes=classes)


@dataclass(frozen=True)
class CodecEncoder:
    """Blocks through a fitted :class:`Preprocessor`: features encoded (as float32, like in memory), targets
    standardized (regression) or 0/1 (binary); the long form's task ids as indices of the run's tasks."""

    source: SourceCodec
    targets: dict[str, TargetCodec]
    task_names: tuple[str, ...]
    target_columns: tuple[str, ...]  # wide: one per task; long: the one target column
    task_column: str | None = None

    def features_of(self, batch: Any) -> np.ndarray:
        n = batch.num_rows
        out = np.zeros((n, self.source.width), dtype=np.float32)
        j = 0
        for col in self.source.columns:
            column = batch.column(col.name)
            if col.kind == "numeric":
                x = floats(column)
                bad = ~np.isfinite(x)
                if bad.any():
                    raise DataError(f"feature column {col.name!r} is null, NaN or infinite in {int(bad.sum())} rows "
                                    "of this data (features are never imputed)")
                out[:, j] = ((x - col.mean) / col.std).astype(np.float32)
            else:
                values, valid = labels(column)
                text = np.where(valid, values.astype(str), MISSING) if n else np.array([], dtype=str)
                index = {c: k for k, c in enumerate(col.categories)}
                codes = np.fromiter((index.get(v, -1) for v in text.tolist()), dtype=np.int64, count=n)
                seen = codes >= 0
                out[np.flatnonzero(seen), j + codes[seen]] = 1.0
            j += col.width
        return out.astype(np.float64)

    def _target(self, codec: TargetCodec, column: Any) -> np.ndarray:
        if codec.kind == "regression":
            y = floats(column)
            return ((y - codec.mean) / codec.std).astype(np.float32).astype(np.float64)
        values, valid = labels(column)
        index = {c: k for k, c in enumerate(codec.classes)}
        return np.array([float(index.get(_label_key(v), np.nan)) if ok else np.nan
                         for v, ok in zip(values.tolist(), valid.tolist(), strict=True)])

    def __call__(self, batch: Any) -> Block:
        X = self.features_of(batch)
        if self.task_column is None:
            Y = np.column_stack([self._target(self.targets[t], batch.column(c))
                                 for t, c in zip(self.task_names, self.target_columns, strict=True)])
            return {"X": X, "Y": Y}
        ids, valid = labels(batch.column(self.task_column))
        lookup = {name: k for k, name in enumerate(self.task_names)}
        task = np.fromiter((lookup.get(str(v), -1) for v in ids.tolist()), dtype=np.intp, count=len(ids))
        y = np.full(len(ids), np.nan)
        column = batch.column(self.target_columns[0])
        for k in np.unique(task[task >= 0]).tolist():
            rows = np.flatnonzero(task == k)
            y[rows] = self._target(self.targets[self.task_names[k]], column.take(rows))
        return {"X": X, "y": y, "task": task, "task_valid": valid & (task >= 0)}
