"""What the long-layout data sets (School, SARCOS) share: reading a headerless CSV and declaring its tasks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from multitask.data.spec import DataSpec, Source
from multitask.errors import DataError
from multitask.tasks import Task


def read_headerless(path: Path, columns: Sequence[str], id_column: str) -> pd.DataFrame:
    """A comma-separated file without header, named ``columns``; the task id column as integers."""
    try:
        frame = pd.read_csv(path, header=None, names=list(columns))
        frame[id_column] = frame[id_column].astype("int64")
    except (ValueError, pd.errors.ParserError) as e:
        raise DataError(f"{path}: expected {len(columns)} numeric comma-separated columns ({e})") from e
    return frame


def long_spec(
    source: str,
    frame: pd.DataFrame,
    path: Path,
    features: Sequence[str],
    target: str,
    id_column: str,
    ids: Sequence[int],
    task_name: Callable[[int], str],
) -> DataSpec:
    """Regression task ``task_name(i)`` owns the rows whose ``id_column`` is ``i``, for each ``i`` in ``ids``."""
    tasks = [Task(task_name(i), "regression") for i in ids]
    return DataSpec(
        tasks=tasks,
        sources={source: Source(source, frame, list(features), path=str(path))},
        task_source={t.name: source for t in tasks},
        target_column={t.name: target for t in tasks},
        task_rows={task_name(i): (id_column, i) for i in ids},
    )
