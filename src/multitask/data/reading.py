"""Reading users' files (CSV or Parquet) and declaring tasks over them in the three layouts.

* :func:`declare_wide`: one table, one column per task target;
* :func:`declare_long`: one table with a task-id column and one target column (each task its own rows);
* :func:`declare_per_task`: one table per task, each with its own features (or images).

:func:`read_table` detects a CSV file's separator (``,`` ``;`` tab or ``|``; ``.tsv`` files are tab-separated)
unless one is given, and refuses what would otherwise be read silently wrong: a column name repeated in the
header (pandas would rename the second ``y`` to ``y.1``) and nested Parquet columns (lists, structs, maps).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from multitask.data.spec import DataSpec, Source
from multitask.errors import ConfigError, DataError
from multitask.tasks import Task

_PARQUET = (".parquet", ".pq")
SEPARATORS = ",;\t|"  # the separators detected in CSV files; another one must be given explicitly
_SNIFF_BYTES = 32_768
_SNIFF_LINES = 20
_NESTED = (list, tuple, dict, set, np.ndarray)


def read_table(path: str | Path, sep: str | None = None) -> pd.DataFrame:
    """Read a CSV (optionally compressed) or Parquet file into a DataFrame.

    ``sep`` is the CSV separator (one character; ``"\\t"`` is read as a tab); by default it is detected
    from the first lines among ``,`` ``;`` tab and ``|`` (tab for ``.tsv`` files, ``,`` when nothing is
    clear). Parquet files ignore it. A repeated column name or a nested Parquet column is an error.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file")
    if p.is_dir():
        raise DataError(f"{p}: is a folder, expected a CSV or Parquet file")
    name = p.name.lower()
    parquet = name.endswith(_PARQUET)
    if sep is not None and not parquet:
        sep = "\t" if sep == "\\t" else sep
        if len(sep) != 1:
            raise ConfigError(f"--sep must be one character, got {sep!r}")
    try:
        if parquet:
            import pyarrow.parquet as pq

            _check_unique(pq.read_schema(p).names, p)
            frame = _read_parquet(p)
        else:
            sep = sep or ("\t" if ".tsv" in name else _sniff_separator(p))
            header = pd.read_csv(p, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False)
            _check_unique(list(header.iloc[0]) if len(header) else [], p)
            frame = pd.read_csv(p, sep=sep)
    except DataError:
        raise
    except UnicodeDecodeError as e:  # a CSV saved in another encoding (Latin-1, Windows-1252, UTF-16)
        bad = e.object[e.start:e.start + 1].hex()
        raise DataError(f"{p}: is not UTF-8 text (byte 0x{bad} cannot be decoded); save it as UTF-8 "
                        "(\"CSV UTF-8\" in a spreadsheet program)") from None
    except (OSError, ValueError, ImportError) as e:  # pandas' and pyarrow's parser errors are ValueErrors
        kind = "Parquet" if parquet else "CSV"
        raise DataError(f"{p}: cannot be read as {kind}: {str(e).splitlines()[0]}") from None
    check_flat(frame, str(p))
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file as :func:`pandas.read_parquet` reads it, read column by column.

    Each column is read and converted on its own (Parquet stores columns apart), so the file is never held
    in Arrow form beside the frame: the peak is the frame and one column, not the whole Arrow table, its
    decoding buffers and the frame at once. The columns are allocated by Arrow's system allocator (malloc)
    rather than its default one (mimalloc, which kept some 50 MB of freed pages here), so that the memory
    of a column dropped once encoded (:meth:`~multitask.data.preprocess.Preprocessor.transform_parts`)
    goes back to the system; releasing its unused pages after each column lowers the resident set after
    the read by some 15 MB more (measured: ``benchmarks/memory_phases.py``).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    if not names:
        return pd.read_parquet(path)
    pool = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        columns = []
        for name in names:
            columns.append(pd.read_parquet(path, columns=[name]))  # the index comes with each (pandas metadata)
            pa.system_memory_pool().release_unused()  # the column's decoding buffers
    finally:
        pa.set_memory_pool(pool)
    frame = pd.concat(columns, axis=1) if len(columns) > 1 else columns[0]
    frame.attrs = columns[0].attrs
    return frame


def _check_unique(header: Sequence[str], path: Path) -> None:
    """A column name given twice is an error (pandas would silently rename the second ``y`` to ``y.1``)."""
    repeated = [c for c, k in Counter(h for h in header if h != "").items() if k > 1]
    if repeated:
        raise DataError(f"{path}: column {repeated[0]!r} appears more than once in the header; rename or drop one")


def check_flat(frame: pd.DataFrame, where: str, columns: Sequence[str] | None = None) -> None:
    """Refuse nested cells (lists, structs, maps, arrays: Parquet's nested types), naming the column and row."""
    for c in frame.columns if columns is None else columns:
        values = frame[c]
        if values.dtype != object:
            continue
        nested = values.map(lambda v: isinstance(v, _NESTED)).to_numpy(dtype=bool)
        if nested.any():
            i = int(np.flatnonzero(nested)[0])
            kind = type(values.iloc[i]).__name__
            raise DataError(
                f"{where}: column {c!r} holds nested values ({kind} at row {values.index[i]}); only flat columns "
                "are read: flatten it into columns of numbers or strings (a multilabel target as 'a|b'), or drop it"
            )


def _sniff_separator(path: Path) -> str:
    """The separator of a CSV file among :data:`SEPARATORS`, from its first lines (``,`` when unclear)."""
    sample = _head(path)
    if sample is None:
        return ","
    try:
        return csv.Sniffer().sniff(sample, delimiters=SEPARATORS).delimiter
    except csv.Error:
        return ","


def _head(path: Path) -> str | None:
    """The first lines of a (possibly compressed) text file; None for a compression this cannot open."""
    name = path.name.lower()
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zst")):
        return None
    if name.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            members = z.namelist()
            if len(members) != 1:
                return None
            with z.open(members[0]) as member:
                return _lines(member.read(_SNIFF_BYTES))
    f: io.BufferedIOBase
    if name.endswith(".gz"):
        f = gzip.GzipFile(path)
    elif name.endswith(".bz2"):
        f = bz2.BZ2File(path)
    elif name.endswith(".xz"):
        f = lzma.LZMAFile(path)
    else:
        f = open(path, "rb")
    with f:
        return _lines(f.read(_SNIFF_BYTES))


def _lines(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if len(data) == _SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last one is cut
    return "\n".join(lines[:_SNIFF_LINES])


def _check_columns(frame: pd.DataFrame, columns: Sequence[str], where: str, what: str) -> None:
    for c in columns:
        if c not in frame.columns:
            raise DataError(f"{where}: no column {c!r} ({what}); columns are: {_preview(frame.columns)}")


def _preview(columns: Sequence[object], n: int = 12) -> str:
    cols = [str(c) for c in columns]
    return ", ".join(cols[:n]) + (f", … ({len(cols)} in all)" if len(cols) > n else "")


def declare_wide(
    frame: pd.DataFrame, tasks: Sequence[Task], features: Sequence[str] | None = None, path: str = ""
) -> DataSpec:
    """Each task's target is the column named like the task; an empty cell means no label for that task."""
    where = path or "data"
    _check_columns(frame, [t.name for t in tasks], where, "a task target")
    if features is not None:
        _check_columns(frame, features, where, "a feature")
        overlap = sorted(set(features) & {t.name for t in tasks})
        if overlap:
            raise ConfigError(f"--features: column {overlap[0]!r} is also a task target")
    source = Source("data", frame, list(features) if features is not None else None, None, path)
    return DataSpec(
        tasks=list(tasks),
        sources={"data": source},
        task_source={t.name: "data" for t in tasks},
        target_column={t.name: t.name for t in tasks},
    )


def declare_long(
    frame: pd.DataFrame,
    task_column: str,
    target: str,
    kind: str = "regression",
    features: Sequence[str] | None = None,
    path: str = "",
    tasks: Sequence[Task] | None = None,
) -> DataSpec:
    """Every distinct value of ``task_column`` is a task of kind ``kind`` owning its rows; ``target`` is read there.

    The target can be neither the task-id column nor a feature, nor can the task-id column be a feature.
    ``tasks`` (optional) overrides the per-task settings (weight, loss, metric) of tasks named by their id.
    """
    where = path or "data"
    if target == task_column:
        raise ConfigError(f"--target {target!r} is also the --task-column; the task id cannot be the target")
    _check_columns(frame, [task_column], where, "--task-column")
    _check_columns(frame, [target], where, "--target")
    if features is not None:
        _check_columns(frame, features, where, "a feature")
        if target in features:
            raise ConfigError(f"--features: column {target!r} is the --target")
        if task_column in features:
            raise ConfigError(f"--features: column {task_column!r} is the task-id column (--task-column)")
    ids = frame[task_column]
    if ids.isna().any():
        row = int(ids.isna().to_numpy().nonzero()[0][0])
        raise DataError(f"{where}: column {task_column!r} (task id) is empty at row {row}")
    given = {t.name: t for t in tasks or ()}
    values = sorted(ids.unique(), key=_natural_key)
    declared: list[Task] = []
    task_rows: dict[str, tuple[str, object]] = {}
    for v in values:
        name = str(v)
        declared.append(given.pop(name) if name in given else Task(name, kind))
        task_rows[name] = (task_column, v)
    if given:
        unknown = next(iter(given))
        raise DataError(f"{where}: task {unknown!r} has no rows in column {task_column!r}")
    source = Source("data", frame, list(features) if features is not None else None, None, path)
    return DataSpec(
        tasks=declared,
        sources={"data": source},
        task_source={t.name: "data" for t in declared},
        target_column={t.name: target for t in declared},
        task_rows=task_rows,
    )


def _natural_key(v: object) -> tuple[int, float, str]:
    try:
        return (0, float(v), "")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return (1, 0.0, str(v))


@dataclass(frozen=True)
class TaskFile:
    """One task's own data set: its file, its target column, its features, and an image shape if any."""

    path: str
    target: str
    features: tuple[str, ...] | None = None
    image_shape: tuple[int, int, int] | None = None


def declare_per_task(
    tasks: Sequence[Task], files: dict[str, TaskFile], frames: dict[str, pd.DataFrame] | None = None
) -> DataSpec:
    """Each task reads its own table (``files[task]``); tasks may have different inputs."""
    missing = [t.name for t in tasks if t.name not in files]
    if missing:
        raise ConfigError(f"task {missing[0]!r}: no data file given for it (per-task data sets need one per task)")
    sources: dict[str, Source] = {}
    for t in tasks:
        f = files[t.name]
        frame = frames[t.name] if frames is not None else read_table(f.path)
        _check_columns(frame, [f.target], f.path, f"the target of task {t.name!r}")
        if f.features is not None:
            _check_columns(frame, f.features, f.path, "a feature")
            if f.target in f.features:
                raise ConfigError(f"task {t.name!r}: column {f.target!r} of {f.path} is both its target and a feature")
        feats = list(f.features) if f.features is not None else None
        sources[t.name] = Source(t.name, frame, feats, f.image_shape, f.path)
    return DataSpec(
        tasks=list(tasks),
        sources=sources,
        task_source={t.name: t.name for t in tasks},
        target_column={t.name: files[t.name].target for t in tasks},
    )
