"""Preprocessing fitted on the training data and saved in the run, so that evaluate and predict apply exactly it.

Features: numeric columns are standardized ((x − mean) / std, std 0 → 1); string, categorical and other
non-numeric columns are one-hot encoded (a missing value is its own category; a category not seen in
training encodes as all zeros); image sources are scaled to [0, 1]. NaN or inf in a numeric feature is an
error, never imputed.

Targets: regression targets are standardized (predictions are mapped back to the original units); binary
targets are mapped to 0/1 (0/1 and False/True as given, otherwise the two values in sorted order, the
second being the positive class); multiclass targets to class indices in sorted order; multilabel targets
are ``|``-separated label sets. An empty target cell is a missing label.

Rows in error messages are the frame's index labels: for a file read by :func:`~multitask.data.reading.read_table`,
the 0-based data row (the header not counted).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from multitask.data.arrays import Arrays
from multitask.data.spec import DataSpec
from multitask.errors import CheckpointError, DataError

MISSING = "(missing)"
FORMAT = "multitask-preprocessing/1"


@dataclass
class ColumnCodec:
    """How one feature column becomes numbers."""

    name: str
    kind: str  # "numeric" | "categorical"
    mean: float = 0.0
    std: float = 1.0
    categories: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return len(self.categories) if self.kind == "categorical" else 1


@dataclass
class SourceCodec:
    """The encoding of one source's features (a table, or images given as pixel columns)."""

    columns: list[ColumnCodec]
    image_shape: tuple[int, int, int] | None = None
    image_scale: float = 1.0

    @property
    def features(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def width(self) -> int:
        return sum(c.width for c in self.columns)


@dataclass
class TargetCodec:
    """The encoding of one task's target."""

    kind: str
    classes: list[Any] = field(default_factory=list)  # binary / multiclass / multilabel
    mean: float = 0.0  # regression
    std: float = 1.0

    @property
    def n_outputs(self) -> int:
        return 1 if self.kind in ("regression", "binary") else len(self.classes)


def _where(spec: DataSpec, source: str) -> str:
    return spec.sources[source].path or f"source {source!r}"


def _as_str(values: pd.Series) -> np.ndarray:
    obj = values.astype(object)
    return np.asarray(obj.where(values.notna(), MISSING).map(str), dtype=object)


def _is_numeric(values: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values))


def _numeric(values: pd.Series, where: str, column: str) -> np.ndarray:
    if not _is_numeric(values):
        bad = values[pd.to_numeric(values, errors="coerce").isna() & values.notna()]
        if len(bad):
            raise DataError(f"{where}: column {column!r} has non-numeric value {bad.iloc[0]!r} at row {bad.index[0]}")
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    bad_rows = ~np.isfinite(x)
    if bad_rows.any():
        pos = int(np.flatnonzero(bad_rows)[0])
        row = values.index[pos]
        what = "NaN (empty)" if np.isnan(x[pos]) else "inf"
        raise DataError(
            f"{where}: feature column {column!r} has {what} at row {row}; impute or drop it (features are never imputed)"
        )
    return x


def _label_key(v: Any) -> Any:
    """Labels as JSON-safe, comparable keys: integral numbers as int, other numbers as float, else str."""
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return int(v) if float(v).is_integer() else float(v)
    return str(v)


def _sort_key(v: Any) -> tuple[int, float, str]:
    return (0, float(v), "") if isinstance(v, (int, float)) else (1, 0.0, str(v))


class Preprocessor:
    """Feature and target encodings fitted on training data; ``transform`` turns a :class:`DataSpec` into Arrays."""

    def __init__(self, sources: dict[str, SourceCodec], targets: dict[str, TargetCodec]) -> None:
        self.sources = sources
        self.targets = targets

    # ---- fitting -------------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, spec: DataSpec) -> Preprocessor:
        sources = {name: _fit_source(spec, name) for name in spec.sources}
        targets: dict[str, TargetCodec] = {}
        for task in spec.tasks:
            values = _labelled_targets(spec, task.name)
            if len(values) == 0:
                raise DataError(f"task {task.name!r} has no labelled rows in {_where(spec, spec.task_source[task.name])}")
            targets[task.name] = _fit_target(
                task.name, task.kind, values, spec.target_column[task.name], _where(spec, spec.task_source[task.name])
            )
        return cls(sources, targets)

    # ---- applying ------------------------------------------------------------------------------------------
    def transform(self, spec: DataSpec) -> Arrays:
        """Encode features (and, for labelled data, targets and masks) of every source and task."""
        inputs = {name: self._encode_source(spec, name) for name in spec.sources}
        targets: dict[str, np.ndarray] = {}
        masks: dict[str, np.ndarray] = {}
        for task in spec.tasks:
            n = len(spec.sources[spec.task_source[task.name]].frame)
            if spec.labelled:
                targets[task.name], masks[task.name] = self._encode_target(spec, task.name)
            else:
                codec = self.targets[task.name]
                shape = (n, codec.n_outputs) if codec.kind == "multilabel" else (n,)
                dtype = np.int64 if codec.kind == "multiclass" else np.float32
                targets[task.name] = np.zeros(shape, dtype=dtype)
                masks[task.name] = _task_rows(spec, task.name)
        return Arrays(inputs=inputs, targets=targets, masks=masks, task_source=dict(spec.task_source))

    def _encode_source(self, spec: DataSpec, name: str) -> np.ndarray:
        codec = self.sources[name]
        frame = spec.sources[name].frame
        where = _where(spec, name)
        missing = [c for c in codec.features if c not in frame.columns]
        if missing:
            raise DataError(f"{where}: no column {missing[0]!r}, which the model was trained with")
        if codec.image_shape is not None:
            pixels = np.stack([_numeric(frame[c], where, c) for c in codec.features], axis=1)
            return (pixels / codec.image_scale).astype(np.float32).reshape(len(frame), *codec.image_shape)
        out = np.zeros((len(frame), codec.width), dtype=np.float32)
        j = 0
        for col in codec.columns:
            if col.kind == "numeric":
                out[:, j] = (_numeric(frame[col.name], where, col.name) - col.mean) / col.std
            else:
                codes = pd.Index(col.categories).get_indexer(_as_str(frame[col.name])).astype(np.int64)
                seen = codes >= 0
                out[np.flatnonzero(seen), j + codes[seen]] = 1.0
            j += col.width
        return out

    def _encode_target(self, spec: DataSpec, task: str) -> tuple[np.ndarray, np.ndarray]:
        codec = self.targets[task]
        source = spec.task_source[task]
        column = spec.target_column[task]
        frame = spec.sources[source].frame
        where = _where(spec, source)
        if column not in frame.columns:
            raise DataError(f"{where}: no column {column!r} (the target of task {task!r})")
        values = frame[column]
        mask = _task_rows(spec, task) & values.notna().to_numpy()
        n = len(frame)
        if codec.kind == "regression":
            y = np.zeros(n, dtype=np.float32)
            y[mask] = (_regression_values(values[mask], task, column, where) - codec.mean) / codec.std
            return y, mask
        if codec.kind == "multilabel":
            y2 = np.zeros((n, len(codec.classes)), dtype=np.float32)
            index = {c: i for i, c in enumerate(codec.classes)}
            for r in np.flatnonzero(mask):
                for label in _split_labels(values.iloc[r]):
                    if label not in index:
                        raise DataError(
                            f"{where}: task {task!r}: label {label!r} at row {values.index[r]} was not seen in training"
                        )
                    y2[r, index[label]] = 1.0
            return y2, mask
        index = {c: i for i, c in enumerate(codec.classes)}
        keys = [_label_key(v) for v in values[mask]]
        unknown = [k for k in keys if k not in index]
        if unknown:
            rows = np.flatnonzero(mask)
            r = values.index[rows[keys.index(unknown[0])]]
            if codec.kind == "binary":
                raise DataError(
                    f"{where}: task {task!r} (binary): column {column!r} has value {unknown[0]!r} at row {r}; "
                    f"a binary target takes two values, here {codec.classes}"
                )
            raise DataError(f"{where}: task {task!r}: class {unknown[0]!r} at row {r} was not seen in training")
        codes = np.asarray([index[k] for k in keys], dtype=np.int64)
        if codec.kind == "binary":
            yb = np.zeros(n, dtype=np.float32)
            yb[mask] = codes
            return yb, mask
        ym = np.zeros(n, dtype=np.int64)
        ym[mask] = codes
        return ym, mask

    # ---- what the model needs ------------------------------------------------------------------------------
    def input_shapes(self) -> dict[str, int | tuple[int, int, int]]:
        """Per source: the feature width, or the image shape (C, H, W)."""
        return {n: (c.image_shape if c.image_shape is not None else c.width) for n, c in self.sources.items()}

    def output_sizes(self) -> dict[str, int]:
        return {t: c.n_outputs for t, c in self.targets.items()}

    def to_original(self, task: str, prediction: np.ndarray) -> np.ndarray:
        """Regression predictions back in the target's units (classification predictions are unchanged)."""
        codec = self.targets[task]
        if codec.kind == "regression":
            return prediction * codec.std + codec.mean
        return prediction

    # ---- persistence (JSON, no pickle) ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "sources": {n: asdict(c) for n, c in self.sources.items()},
            "targets": {n: asdict(c) for n, c in self.targets.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessor:
        if d.get("format") != FORMAT:
            raise CheckpointError(f"preprocessing format {d.get('format')!r} is not {FORMAT!r}")
        sources = {}
        for name, s in d["sources"].items():
            shape = tuple(s["image_shape"]) if s.get("image_shape") else None
            sources[name] = SourceCodec(
                columns=[ColumnCodec(**c) for c in s["columns"]],
                image_shape=shape,
                image_scale=float(s.get("image_scale", 1.0)),
            )
        targets = {name: TargetCodec(**t) for name, t in d["targets"].items()}
        return cls(sources, targets)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: Path) -> Preprocessor:
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no such file (is this a run directory?)") from None
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: not a valid preprocessing file ({e})") from None


def _task_rows(spec: DataSpec, task: str) -> np.ndarray:
    """Rows of the task's source that belong to the task (all, except in long form)."""
    frame = spec.sources[spec.task_source[task]].frame
    if task not in spec.task_rows:
        return np.ones(len(frame), dtype=bool)
    column, value = spec.task_rows[task]
    if column not in frame.columns:
        raise DataError(f"{_where(spec, spec.task_source[task])}: no task-id column {column!r}")
    return np.asarray(frame[column].astype(object).map(str) == str(value), dtype=bool)


def _labelled_targets(spec: DataSpec, task: str) -> pd.Series:
    frame = spec.sources[spec.task_source[task]].frame
    values = frame[spec.target_column[task]]
    return values[_task_rows(spec, task) & values.notna().to_numpy()]


def _split_labels(v: Any) -> list[str]:
    return [s.strip() for s in str(v).split("|") if s.strip()]


def _regression_values(labelled: pd.Series, task: str, column: str, where: str) -> np.ndarray:
    """The labelled target values as finite floats, or an error naming the first bad row."""
    num = pd.to_numeric(labelled, errors="coerce")
    if num.isna().any():
        bad = labelled[num.isna()]
        raise DataError(
            f"{where}: task {task!r} (regression): column {column!r} has non-numeric value {bad.iloc[0]!r} "
            f"at row {bad.index[0]}; a regression target must be numbers"
        )
    x = num.to_numpy(dtype=np.float64)
    if not np.isfinite(x).all():
        raise DataError(f"{where}: task {task!r} (regression): column {column!r} has inf values")
    return x


def _fit_target(task: str, kind: str, values: pd.Series, column: str, where: str) -> TargetCodec:
    if kind == "regression":
        x = _regression_values(values, task, column, where)
        std = float(x.std())
        return TargetCodec(kind, mean=float(x.mean()), std=std if std > 0 else 1.0)
    if kind == "multilabel":
        labels = sorted({label for v in values for label in _split_labels(v)})
        if not labels:
            raise DataError(f"{where}: task {task!r} (multilabel): column {column!r} has no labels")
        return TargetCodec(kind, classes=labels)
    classes = sorted({_label_key(v) for v in values}, key=_sort_key)
    if kind == "binary":
        if len(classes) > 2:
            raise DataError(
                f"{where}: task {task!r} (binary): column {column!r} has {len(classes)} classes "
                f"({', '.join(map(repr, classes[:5]))}); a binary task takes two — declare it multiclass"
            )
        if set(classes) <= {0, 1}:
            classes = [0, 1]
        elif len(classes) < 2:
            raise DataError(f"{where}: task {task!r} (binary): column {column!r} has only one class, {classes[0]!r}")
        return TargetCodec(kind, classes=classes)
    if len(classes) < 2:
        raise DataError(f"{where}: task {task!r} (multiclass): column {column!r} has only one class, {classes[0]!r}")
    return TargetCodec(kind, classes=classes)


def _fit_source(spec: DataSpec, name: str) -> SourceCodec:
    src = spec.sources[name]
    where = _where(spec, name)
    features = spec.feature_columns(name)
    if not features:
        raise DataError(f"{where}: no feature columns left after the targets and task id")
    missing = [c for c in features if c not in src.frame.columns]
    if missing:
        raise DataError(f"{where}: no column {missing[0]!r} (a feature)")
    if src.image_shape is not None:
        c, h, w = src.image_shape
        if len(features) != c * h * w:
            raise DataError(
                f"{where}: image shape {src.image_shape} needs {c * h * w} pixel columns, found {len(features)}"
            )
        peak = max(float(np.max(_numeric(src.frame[col], where, col))) for col in features)
        return SourceCodec(
            columns=[ColumnCodec(col, "numeric") for col in features],
            image_shape=(c, h, w),
            image_scale=255.0 if peak > 1.0 else 1.0,
        )
    columns: list[ColumnCodec] = []
    for col in features:
        values = src.frame[col]
        if _is_numeric(values):
            x = _numeric(values, where, col)
            std = float(x.std())
            columns.append(ColumnCodec(col, "numeric", mean=float(x.mean()), std=std if std > 0 else 1.0))
        else:
            columns.append(ColumnCodec(col, "categorical", categories=sorted(set(_as_str(values)))))
    return SourceCodec(columns=columns)
