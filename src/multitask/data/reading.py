"""Reading users' files (CSV or Parquet) and declaring tasks over them in the three layouts.

* :func:`declare_wide`: one table, one column per task target;
* :func:`declare_long`: one table with a task-id column and one target column (each task its own rows);
* :func:`declare_per_task`: one table per task, each with its own features (or images).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from multitask.data.spec import DataSpec, Source
from multitask.errors import ConfigError, DataError
from multitask.tasks import Task

_PARQUET = (".parquet", ".pq")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (optionally compressed, ``.tsv`` tab-separated) or Parquet file into a DataFrame."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file")
    if p.is_dir():
        raise DataError(f"{p}: is a folder, expected a CSV or Parquet file")
    name = p.name.lower()
    try:
        if name.endswith(_PARQUET):
            return pd.read_parquet(p)
        sep = "\t" if ".tsv" in name else ","
        return pd.read_csv(p, sep=sep)
    except (OSError, ValueError, ImportError) as e:  # pandas' parser errors are ValueErrors
        kind = "Parquet" if name.endswith(_PARQUET) else "CSV"
        raise DataError(f"{p}: cannot be read as {kind}: {str(e).splitlines()[0]}") from None


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

    ``tasks`` (optional) overrides the per-task settings (weight, loss, metric) of tasks named by their id.
    """
    where = path or "data"
    _check_columns(frame, [task_column], where, "--task-column")
    _check_columns(frame, [target], where, "--target")
    if features is not None:
        _check_columns(frame, features, where, "a feature")
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
        feats = list(f.features) if f.features is not None else None
        sources[t.name] = Source(t.name, frame, feats, f.image_shape, f.path)
    return DataSpec(
        tasks=list(tasks),
        sources=sources,
        task_source={t.name: t.name for t in tasks},
        target_column={t.name: files[t.name].target for t in tasks},
    )
