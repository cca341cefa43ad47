"""Preprocessing fitted on the training data and saved in the run, so that evaluate and predict apply exactly it.

Features: numeric columns are standardized ((x − mean) / std, std 0 → 1); string, categorical and other
non-numeric columns are one-hot encoded (a missing value is its own category; a category not seen in
training encodes as all zeros); image sources are scaled to [0, 1]. NaN or inf in a numeric feature is an
error, never imputed.

A feature's type is what its values say; a stray string in a numeric column is an error in training data
as it is in data to predict on:

* a column of a numeric or boolean dtype is numeric;
* a column of strings (or mixed objects) in which the values that parse as numbers (``pd.to_numeric``) are
  the majority of the non-missing values, but not all of them, is an error naming the first value that is
  not a number and its row: a stray ``unknown`` in a column of numbers is a typo to fix or a column to drop,
  never a reason to one-hot encode the numbers;
* any other column of strings (including one whose values all look like numbers, a ``category`` column, or
  one where numbers are half or fewer of the values) is categorical;
* a column holding nested values (lists, dicts, arrays) is an error;
* a categorical column whose values are nearly all distinct in the training part (at least 50 distinct values,
  in more than 90 % of its non-missing rows: an id, a time stamp as text, free text) is an error naming it:
  one-hot encoded, it would say nothing about new rows and take one column per training row.

Numbers stay finite: a value so large that the mean or standard deviation of its column overflows (a
feature or a regression target of 1e300), or that standardizes beyond float32 in new data, is an error
naming the column and row, as are inf and NaN. ``preprocessing.json`` never holds NaN or Infinity.

Targets: regression targets are standardized (predictions are mapped back to the original units); binary
targets are mapped to 0/1 (0/1 and False/True as given, otherwise the two values in sorted order, the
second being the positive class; a binary target with one class in the training part is an error);
multiclass targets to class indices in sorted order; multilabel targets are ``|``-separated label sets. An
empty target cell is a missing label. :meth:`Preprocessor.decode` turns a model's predictions back into the
user's units and labels.

Rows in error messages are the frame's index labels: for a file read by :func:`~multitask.data.reading.read_table`,
the 0-based data row (the header not counted).
"""

from __future__ import annotations

import json
import mmap
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from multitask.data.arrays import Arrays
from multitask.data.reading import check_flat
from multitask.data.spec import DataSpec
from multitask.data.split import Rows
from multitask.errors import CheckpointError, ConfigError, DataError

MISSING = "(missing)"
FORMAT = "multitask-preprocessing/1"
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_BLOCK_BYTES = 1 << 23  # at most 8 MiB in one block of :class:`_Staging` (one row at least)
#: a string column with at least this many distinct values, and distinct values in more than this share of
#: its non-missing training rows, is not a category (see :func:`_check_categories`)
_ID_MIN_DISTINCT = 50
_ID_SHARE = 0.9


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


def _distinct_str(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(strings, inverse)`` such that ``strings[inverse]`` is ``_as_str(values)`` (every string is used).

    A column of strings or categories is converted once per distinct value (no Python string per row);
    other columns (objects that compare equal but print differently, as ``1`` and ``1.0``) row by row.
    """
    if isinstance(values.dtype, (pd.StringDtype, pd.CategoricalDtype)):
        inverse, distinct = pd.factorize(values, use_na_sentinel=False)
        return _as_str(pd.Series(distinct, dtype=object)), inverse
    strings = _as_str(values)
    return strings, np.arange(len(strings))


def _is_numeric(values: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values))


def _numeric(values: pd.Series, where: str, column: str) -> np.ndarray:
    if not _is_numeric(values):
        bad = values[pd.to_numeric(values, errors="coerce").isna() & values.notna()]
        if len(bad):
            raise DataError(f"{where}: column {column!r} has non-numeric value {bad.iloc[0]!r} at row {bad.index[0]}")
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    bad_rows = ~np.isfinite(x)
    if len(x) > 1 and np.isnan(x).all():
        raise DataError(f"{where}: feature column {column!r} is empty in every row; drop it from the features "
                        "(--features)")
    if bad_rows.any():
        pos = int(np.flatnonzero(bad_rows)[0])
        row = values.index[pos]
        what = "NaN (empty)" if np.isnan(x[pos]) else "inf"
        raise DataError(
            f"{where}: feature column {column!r} has {what} at row {row}; impute or drop it (features are never imputed)"
        )
    return x


def _column_kind(values: pd.Series, where: str, column: str) -> str:
    """``"numeric"`` or ``"categorical"`` by the rule of the module docstring (or an error naming the row)."""
    if _is_numeric(values):
        return "numeric"
    if isinstance(values.dtype, pd.CategoricalDtype):
        return "categorical"
    check_flat(values.to_frame(), where, [column])
    counts = values.value_counts()  # parsing each distinct value once
    number = pd.to_numeric(pd.Series(counts.index, dtype=object), errors="coerce").notna().to_numpy()
    n_numbers, n_text = int(counts[number].sum()), int(counts[~number].sum())
    if 0 < n_text < n_numbers:
        pos = int(np.flatnonzero(values.isin(counts.index[~number]).to_numpy())[0])
        raise DataError(
            f"{where}: feature column {column!r} holds numbers, but {values.iloc[pos]!r} at row {values.index[pos]} "
            f"is not a number ({n_text} of its {n_text + n_numbers} values are not); fix those cells, "
            "or drop the column from the features"
        )
    return "categorical"


def _mean_std(x: np.ndarray, values: pd.Series, where: str, what: str) -> tuple[float, float]:
    """Mean and standard deviation of finite values (std 0 → 1), or an error when they overflow."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = float(x.mean()), float(x.std())
    if not (np.isfinite(mean) and np.isfinite(std)):
        pos = int(np.argmax(np.abs(x)))
        raise DataError(
            f"{where}: {what} has values too large to standardize (the largest, {float(x[pos])!r}, at row "
            f"{values.index[pos]}); rescale the column (divide it, or take a log) or drop it"
        )
    return mean, std if std > 0 else 1.0


def _standardize(x: np.ndarray, mean: float, std: float, values: pd.Series, where: str, what: str) -> np.ndarray:
    """``(x − mean) / std`` as float32, or an error naming the first value beyond float32's range."""
    with np.errstate(over="ignore", invalid="ignore"):
        z = (x - mean) / std
    too_far = ~(np.abs(z) <= _FLOAT32_MAX)
    if too_far.any():
        pos = int(np.flatnonzero(too_far)[0])
        raise DataError(
            f"{where}: {what} has value {float(x[pos])!r} at row {values.index[pos]}, too large to standardize with "
            f"the training mean {mean:g} and standard deviation {std:g}"
        )
    return z.astype(np.float32)


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
    def fit(cls, spec: DataSpec, rows: Rows | None = None) -> Preprocessor:
        """The encodings of ``spec``'s data, or of the rows at positions ``rows[source]`` of each source (the
        training part of a table, read without copying it)."""
        sources = {name: _fit_source(spec, name, _rows(rows, name)) for name in spec.sources}
        targets: dict[str, TargetCodec] = {}
        for task in spec.tasks:
            values = _labelled_targets(spec, task.name, _rows(rows, spec.task_source[task.name]))
            if len(values) == 0:
                raise DataError(f"task {task.name!r} has no labelled rows in {_where(spec, spec.task_source[task.name])}")
            targets[task.name] = _fit_target(
                task.name, task.kind, values, spec.target_column[task.name], _where(spec, spec.task_source[task.name])
            )
        return cls(sources, targets)

    # ---- applying ------------------------------------------------------------------------------------------
    def transform(self, spec: DataSpec, rows: Rows | None = None) -> Arrays:
        """Encode features (and, for labelled data, targets and masks) of every source and task; ``rows``
        (optional): only the rows at positions ``rows[source]`` of each source."""
        return self.transform_parts(spec, [rows])[0]

    def transform_parts(self, spec: DataSpec, parts: Sequence[Rows | None], *, release: bool = False) -> list[Arrays]:
        """:meth:`transform` of several parts of the same tables at once (``parts[i]``: row positions of
        each source, None for all rows), encoded column by column.

        With ``release``, each feature column is dropped from ``spec``'s frames as soon as it is encoded,
        so the tables shrink as the arrays grow: for tables read only to be encoded.
        """
        inputs: list[dict[str, np.ndarray]] = [{} for _ in parts]
        for name in spec.sources:
            encoded = self._encode_source(spec, name, [_rows(part, name) for part in parts], release)
            for i, x in enumerate(encoded):
                inputs[i][name] = x
        targets: list[dict[str, np.ndarray]] = [{} for _ in parts]
        masks: list[dict[str, np.ndarray]] = [{} for _ in parts]
        for task in spec.tasks:
            source = spec.task_source[task.name]
            n = len(spec.sources[source].frame)
            mask = spec.labelled_rows(task.name) if spec.labelled else spec.rows_of(task.name)
            for i, part in enumerate(parts):
                rows = _rows(part, source)
                if spec.labelled:
                    targets[i][task.name], masks[i][task.name] = self._encode_target(spec, task.name, rows, mask)
                else:
                    codec = self.targets[task.name]
                    m = n if rows is None else len(rows)
                    shape = (m, codec.n_outputs) if codec.kind == "multilabel" else (m,)
                    targets[i][task.name] = np.zeros(shape, dtype=np.int64 if codec.kind == "multiclass" else np.float32)
                    masks[i][task.name] = mask if rows is None else mask[rows]
        return [
            Arrays(inputs=inputs[i], targets=targets[i], masks=masks[i], task_source=dict(spec.task_source))
            for i in range(len(parts))
        ]

    def _encode_source(
        self, spec: DataSpec, name: str, parts: list[np.ndarray | None], release: bool
    ) -> list[np.ndarray]:
        """The features of each part (row positions, None for all rows), column by column."""
        codec = self.sources[name]
        frame = spec.sources[name].frame
        where = _where(spec, name)
        missing = [c for c in codec.features if c not in frame.columns]
        if missing:
            raise DataError(f"{where}: no column {missing[0]!r}, which the model was trained with")
        staged = [_Staging(len(frame) if rows is None else len(rows), codec.width) for rows in parts]
        j = 0
        for col in codec.columns:
            for rows, stage in zip(parts, staged, strict=True):
                _encode_column(stage, j, col, codec, _part(frame[col.name], rows), where)
            if release:
                del frame[col.name]
                _release_arrow()
            j += col.width
        out = [stage.assemble() for stage in staged]
        if codec.image_shape is not None:
            return [x.reshape(len(x), *codec.image_shape) for x in out]
        return out

    def _encode_target(
        self, spec: DataSpec, task: str, rows: np.ndarray | None, labelled: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The target and mask of ``task`` on the rows at positions ``rows`` (None: all) of its source;
        ``labelled`` is :meth:`DataSpec.labelled_rows` over all of them."""
        codec = self.targets[task]
        source = spec.task_source[task]
        column = spec.target_column[task]
        frame = spec.sources[source].frame
        where = _where(spec, source)
        if column not in frame.columns:
            raise DataError(f"{where}: no column {column!r} (the target of task {task!r})")
        values = frame[column] if rows is None else frame[column].iloc[rows]
        mask = labelled if rows is None else labelled[rows]
        n = len(values)
        if codec.kind == "regression":
            y = np.zeros(n, dtype=np.float32)
            labelled = values[mask]
            what = f"task {task!r} (regression): column {column!r}"
            x = _regression_values(labelled, task, column, where)
            y[mask] = _standardize(x, codec.mean, codec.std, labelled, where, what)
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

    def categorical_columns(self, source: str) -> list[tuple[str, int, int]]:
        """``(column, position, levels)`` of each categorical feature of a tabular ``source``: its one-hot
        block is features ``position .. position + levels − 1`` (what a deep model may embed instead,
        :class:`multitask.nn.InputSpec`); an all-zero block is a level not seen in training."""
        if source not in self.sources:
            raise ConfigError(f"unknown source {source!r}; sources: {', '.join(self.sources)}")
        out: list[tuple[str, int, int]] = []
        position = 0
        for col in self.sources[source].columns:
            if col.kind == "categorical" and col.width > 0:
                out.append((col.name, position, col.width))
            position += col.width
        return out

    def output_sizes(self) -> dict[str, int]:
        return {t: c.n_outputs for t, c in self.targets.items()}

    def to_original(self, task: str, prediction: np.ndarray) -> np.ndarray:
        """Regression predictions back in the target's units (classification predictions are unchanged)."""
        codec = self.targets[task]
        if codec.kind == "regression":
            return prediction * codec.std + codec.mean
        return prediction

    def decode(self, task: str, prediction: np.ndarray) -> dict[str, np.ndarray]:
        """The user-facing prediction columns of one task, from the model's prediction over rows.

        * regression: ``{task: value}`` in the target's original units;
        * binary: ``{task: probability of the positive class}``;
        * multiclass: ``{task: predicted class}`` and ``{"task:class": probability}`` per class;
        * multilabel: ``{task: "a|b"}`` (the labels of probability ≥ 0.5, ``""`` for none) and
          ``{"task:label": probability}`` per label.

        ``task`` (see :meth:`primary_column`) always holds the prediction itself.
        """
        codec = self._target(task)
        if codec.kind == "regression":
            return {task: self.to_original(task, np.asarray(prediction, dtype=np.float64))}
        if codec.kind == "binary":
            return {task: np.asarray(prediction, dtype=np.float64)}
        prob = np.asarray(prediction, dtype=np.float64)
        labels = np.asarray(codec.classes, dtype=object)
        cols: dict[str, np.ndarray] = {}
        if codec.kind == "multiclass":
            cols[task] = labels[prob.argmax(axis=1)]
        else:
            chosen = prob >= 0.5
            cols[task] = np.asarray(["|".join(map(str, labels[row])) for row in chosen], dtype=object)
        for j, c in enumerate(codec.classes):
            cols[f"{task}:{c}"] = prob[:, j]
        return cols

    def primary_column(self, task: str) -> str:
        """The key of :meth:`decode`'s output that holds the task's prediction (the task's name)."""
        self._target(task)
        return task

    def _target(self, task: str) -> TargetCodec:
        if task not in self.targets:
            raise ConfigError(f"unknown task {task!r}; tasks: {', '.join(self.targets)}")
        return self.targets[task]

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
        # every statistic was checked finite when fitted: NaN or Infinity here would be a bug, not bad data
        path.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False))

    @classmethod
    def load(cls, path: Path) -> Preprocessor:
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no such file (is this a run directory?)") from None
        except CheckpointError as e:
            raise CheckpointError(f"{path}: {e}") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:  # JSONDecodeError is a ValueError
            raise CheckpointError(f"{path}: not a valid preprocessing file ({e})") from None


def _rows(rows: Rows | None, source: str) -> np.ndarray | None:
    return None if rows is None else rows[source]


def _part(values: pd.Series, rows: np.ndarray | None) -> pd.Series:
    return values if rows is None else values.iloc[rows]


def _labelled_targets(spec: DataSpec, task: str, rows: np.ndarray | None) -> pd.Series:
    values = spec.sources[spec.task_source[task]].frame[spec.target_column[task]]
    labelled = spec.labelled_rows(task)
    if rows is not None:
        values, labelled = values.iloc[rows], labelled[rows]
    return values[labelled]


def _encode_column(stage: _Staging, j: int, col: ColumnCodec, codec: SourceCodec, part: pd.Series, where: str) -> None:
    """Column ``col`` of a part's table into columns ``j …`` of its features."""
    if codec.image_shape is not None:
        x = _numeric(part, where, col.name)
        stage.put(j, _standardize(x, 0.0, codec.image_scale, part, where, f"pixel column {col.name!r}"))
    elif col.kind == "numeric":
        x = _numeric(part, where, col.name)
        stage.put(j, _standardize(x, col.mean, col.std, part, where, f"feature column {col.name!r}"))
    else:
        check_flat(part.to_frame(), where, [col.name])
        strings, inverse = _distinct_str(part)
        stage.one_hot(j, pd.Index(col.categories).get_indexer(strings).astype(np.int64)[inverse])


def _release_arrow() -> None:
    """Hand back to the system the pages that Arrow's allocators kept: its default one (pandas' string
    columns) and its system one (the columns read from Parquet by :func:`~multitask.data.reading.read_table`)."""
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:
        pyarrow.default_memory_pool().release_unused()
        pyarrow.system_memory_pool().release_unused()


class _Staging:
    """A float32 ``(rows, width)`` array written one column at a time, never held twice in memory.

    Columns go into blocks of rows (:data:`_BLOCK_BYTES` at most) stored column by column, each block in
    its own anonymous memory map: writing a column touches only that column's pages, and each block is
    unmapped (handed back to the system) as soon as :meth:`assemble` has copied it into the row-major
    result. So, as the source table is freed column by column, memory holds about the table or the result,
    not both; and without freeing the table, the result and the table plus one block.
    """

    def __init__(self, rows: int, width: int) -> None:
        self.rows, self.width = rows, width
        step = max(1, _BLOCK_BYTES // (4 * max(width, 1)))
        self.starts = list(range(0, rows, step))
        self.blocks: list[np.ndarray | None] = [_mapped((width, min(step, rows - s))) for s in self.starts]

    def _each(self) -> list[tuple[int, np.ndarray]]:
        return [(s, b) for s, b in zip(self.starts, self.blocks, strict=True) if b is not None]

    def put(self, j: int, column: np.ndarray) -> None:
        """Column ``j`` is ``column`` (one value per row)."""
        for start, block in self._each():
            block[j] = column[start : start + block.shape[1]]

    def one_hot(self, j: int, codes: np.ndarray) -> None:
        """Columns ``j + code`` are 1 in each row (code −1: none)."""
        for start, block in self._each():
            part = codes[start : start + block.shape[1]]
            seen = part >= 0
            block[j + part[seen], np.flatnonzero(seen)] = 1.0

    def assemble(self) -> np.ndarray:
        out = np.empty((self.rows, self.width), dtype=np.float32)
        for i, start in enumerate(self.starts):
            block = self.blocks[i]
            assert block is not None
            out[start : start + block.shape[1]] = block.T
            self.blocks[i] = block = None  # unmapped here: nothing else holds it
        return out


def _mapped(shape: tuple[int, int]) -> np.ndarray:
    """Zeros of float32 in an anonymous memory map (pages taken when written, given back when dropped)."""
    nbytes = shape[0] * shape[1] * 4
    if nbytes == 0:
        return np.zeros(shape, dtype=np.float32)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=np.float32).reshape(shape)


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
    infinite = ~np.isfinite(x)
    if infinite.any():
        pos = int(np.flatnonzero(infinite)[0])
        raise DataError(
            f"{where}: task {task!r} (regression): column {column!r} has {x[pos]} at row {labelled.index[pos]}; "
            "a regression target must be finite"
        )
    return x


def _fit_target(task: str, kind: str, values: pd.Series, column: str, where: str) -> TargetCodec:
    if kind == "regression":
        x = _regression_values(values, task, column, where)
        mean, std = _mean_std(x, values, where, f"task {task!r} (regression): column {column!r}")
        return TargetCodec(kind, mean=mean, std=std)
    if kind == "multilabel":
        labels = sorted({label for v in values for label in _split_labels(v)})
        if not labels:
            raise DataError(f"{where}: task {task!r} (multilabel): column {column!r} has no labels")
        return TargetCodec(kind, classes=labels)
    keys = [_label_key(v) for v in values]
    for pos, k in enumerate(keys):
        if isinstance(k, float) and not np.isfinite(k):
            raise DataError(
                f"{where}: task {task!r} ({kind}): column {column!r} has {k} at row {values.index[pos]}; "
                "a class must be a finite number or a string"
            )
    classes = sorted(set(keys), key=_sort_key)
    if len(classes) < 2:
        raise DataError(
            f"{where}: task {task!r} ({kind}): column {column!r} has only one class, {classes[0]!r}, in the "
            "training part; a classification task needs two or more"
        )
    if kind == "binary" and len(classes) > 2:
        raise DataError(
            f"{where}: task {task!r} (binary): column {column!r} has {len(classes)} classes "
            f"({', '.join(map(repr, classes[:5]))}); a binary task takes two — declare it multiclass"
        )
    return TargetCodec(kind, classes=classes)


def _fit_source(spec: DataSpec, name: str, rows: np.ndarray | None) -> SourceCodec:
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
        peak = max(float(np.max(_numeric(_part(src.frame[col], rows), where, col))) for col in features)
        return SourceCodec(
            columns=[ColumnCodec(col, "numeric") for col in features],
            image_shape=(c, h, w),
            image_scale=255.0 if peak > 1.0 else 1.0,
        )
    columns: list[ColumnCodec] = []
    for col in features:
        values = _part(src.frame[col], rows)
        if _column_kind(values, where, col) == "numeric":
            mean, std = _mean_std(_numeric(values, where, col), values, where, f"feature column {col!r}")
            columns.append(ColumnCodec(col, "numeric", mean=mean, std=std))
        else:
            categories = sorted(set(_distinct_str(values)[0]))
            _check_categories(values, categories, where, col)
            columns.append(ColumnCodec(col, "categorical", categories=categories))
    return SourceCodec(columns=columns)


def _check_categories(values: pd.Series, categories: list[str], where: str, column: str) -> None:
    """DataError for a column of strings whose values are nearly all distinct (an id, a time stamp, free text):
    one-hot encoded it tells nothing about a new row (whose value was never seen) and takes a column per row."""
    labelled = int(values.notna().sum())
    distinct = len(categories) - (MISSING in categories)
    if distinct >= _ID_MIN_DISTINCT and distinct > _ID_SHARE * labelled:
        shown = pd.Series([c for c in categories if c != MISSING], dtype=object)
        if pd.to_numeric(shown, errors="coerce").notna().all():  # numbers read as text
            raise DataError(
                f"{where}: feature column {column!r} holds numbers, but is read as text (most likely a cell that "
                "is not a number, such as '?' or '-', is in a row outside the training part); fix those cells "
                "(leave missing values empty), or drop the column from the features (--features)"
            )
        raise DataError(
            f"{where}: feature column {column!r} has {distinct} distinct values in its {labelled} training rows: "
            f"an id, a date or free text, not a category (one-hot encoded, a new row's value is one never seen); "
            "drop it from the features (--features) or convert it to numbers"
        )
