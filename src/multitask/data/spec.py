"""Tasks declared over the tables a user has, before any preprocessing.

Three layouts, one description:

* wide: one source; task ``t`` reads target column ``target_column[t]`` (a missing value is no label);
* long: one source with a task-id column; task ``t`` owns the rows where ``task_rows[t] = (column, value)``
  matches, and reads the shared target column on them;
* per-task: one source per task (its own file, possibly with other features or images).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from multitask.errors import ConfigError, DataError
from multitask.tasks import Task


@dataclass
class Source:
    """One input table: its frame, its feature columns, and, for images, the shape of the pixel columns."""

    name: str
    frame: pd.DataFrame
    features: list[str] | None = None  # None: every column not used as a target or task id
    image_shape: tuple[int, int, int] | None = None  # (C, H, W): features are pixels in C-order
    path: str = ""  # where the frame came from, for messages


@dataclass
class DataSpec:
    """Tasks over sources: which source and target column each task reads (and, in long form, which rows)."""

    tasks: list[Task]
    sources: dict[str, Source]
    task_source: dict[str, str]
    target_column: dict[str, str]
    task_rows: dict[str, tuple[str, object]] = field(default_factory=dict)
    labelled: bool = True  # False for data to predict on: target columns may be absent

    def __post_init__(self) -> None:
        names = [t.name for t in self.tasks]
        if not names:
            raise ConfigError("no tasks declared: give --task NAME:KIND, or --task-column with --target")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"task {dupes[0]!r} is declared twice")
        for t in names:
            source = self.task_source.get(t)
            if source not in self.sources:
                raise ConfigError(f"task {t!r}: no data source {source!r}")
            src = self.sources[source]
            col = self.target_column.get(t)
            if col is None:
                raise ConfigError(f"task {t!r}: no target column declared")
            if self.labelled and col not in src.frame.columns:
                where = src.path or f"source {source!r}"
                raise DataError(f"{where}: no column {col!r} (the target of task {t!r})")
            if t in self.task_rows:
                id_col = self.task_rows[t][0]
                if id_col not in src.frame.columns:
                    raise DataError(f"{src.path or source}: no task-id column {id_col!r}")
        for source, src in self.sources.items():
            if src.features is None:
                continue
            for c in sorted(self.non_feature_columns(source) & set(src.features)):
                where = src.path or f"source {source!r}"
                raise ConfigError(f"{where}: column {c!r} is both a feature and a task target or task id")

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise ConfigError(f"unknown task {name!r}; tasks: {', '.join(self.task_names)}")

    def rows_of(self, task: str) -> np.ndarray:
        """Boolean mask over the rows of the task's source: those that belong to the task (all, except in long form)."""
        source = self.task_source[task]
        frame = self.sources[source].frame
        if task not in self.task_rows:
            return np.ones(len(frame), dtype=bool)
        column, value = self.task_rows[task]
        if column not in frame.columns:
            raise DataError(f"{self.sources[source].path or f'source {source!r}'}: no task-id column {column!r}")
        return np.asarray(frame[column].astype(object).map(str) == str(value), dtype=bool)

    def labelled_rows(self, task: str) -> np.ndarray:
        """Boolean mask over the rows of the task's source: the task's rows with a target value (none when the
        target column is absent, as in data to predict on)."""
        frame = self.sources[self.task_source[task]].frame
        column = self.target_column[task]
        if column not in frame.columns:
            return np.zeros(len(frame), dtype=bool)
        return self.rows_of(task) & frame[column].notna().to_numpy()

    def non_feature_columns(self, source: str) -> set[str]:
        cols = {c for t, c in self.target_column.items() if self.task_source[t] == source}
        cols |= {r[0] for t, r in self.task_rows.items() if self.task_source[t] == source}
        return cols

    def feature_columns(self, source: str) -> list[str]:
        src = self.sources[source]
        if src.features is not None:
            return list(src.features)
        excluded = self.non_feature_columns(source)
        return [c for c in src.frame.columns if c not in excluded]

    def with_frames(
        self, frames: dict[str, pd.DataFrame], paths: dict[str, str] | None = None, labelled: bool = True
    ) -> DataSpec:
        """The same declaration over other frames (a test file, or data to predict on: ``labelled=False``)."""
        paths = paths or {}
        sources = {
            name: Source(name, frames[name], src.features, src.image_shape, paths.get(name, src.path))
            for name, src in self.sources.items()
        }
        return DataSpec(
            list(self.tasks), sources, dict(self.task_source), dict(self.target_column), dict(self.task_rows), labelled
        )


@dataclass
class BuiltinData:
    """A built-in data set: its training part, its test part when the source fixes one, and a description."""

    name: str
    train: DataSpec
    test: DataSpec | None
    description: str


def declaration(spec: DataSpec) -> dict[str, Any]:
    """The spec without its frames, as JSON-safe data (saved in a run; see :func:`from_declaration`)."""
    return {
        "tasks": [t.to_dict() for t in spec.tasks],
        "task_source": dict(spec.task_source),
        "target_column": dict(spec.target_column),
        "task_rows": {t: [c, str(v)] for t, (c, v) in spec.task_rows.items()},
        "sources": {
            name: {
                "features": spec.feature_columns(name),
                "image_shape": list(src.image_shape) if src.image_shape else None,
                "path": src.path,
            }
            for name, src in spec.sources.items()
        },
    }


def from_declaration(
    d: dict[str, Any], frames: dict[str, pd.DataFrame], paths: dict[str, str] | None = None, labelled: bool = True
) -> DataSpec:
    """A spec with a saved declaration over new frames (one per source name)."""
    paths = paths or {}
    missing = [s for s in d["sources"] if s not in frames]
    if missing:
        raise ConfigError(f"no data given for source {missing[0]!r} (the model was trained with it)")
    sources = {
        name: Source(
            name,
            frames[name],
            list(s["features"]),
            tuple(s["image_shape"]) if s.get("image_shape") else None,
            paths.get(name, ""),
        )
        for name, s in d["sources"].items()
    }
    return DataSpec(
        tasks=[Task.from_dict(t) for t in d["tasks"]],
        sources=sources,
        task_source=dict(d["task_source"]),
        target_column=dict(d["target_column"]),
        task_rows={t: (c, v) for t, (c, v) in d["task_rows"].items()},
        labelled=labelled,
    )
