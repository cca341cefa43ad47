"""A run's whole configuration: what the command-line flags hold, and what a YAML config file may hold.

Flags override the file. Every field has a flag of the same name (``valid_fraction`` → ``--valid-fraction``);
training options live under ``train:`` (see :class:`multitask.train.TrainConfig`).

Example ``run.yaml`` for per-task data sets (each task its own file, with its own inputs)::

    tasks:
      - {name: digit, kind: multiclass, data: digits.csv, target: label, image_shape: [1, 28, 28]}
      - {name: price, kind: regression, data: houses.parquet, target: price}
    model: hard-sharing
    model_options: {hidden: [128, 64], dropout: 0.1}
    train: {epochs: 30, lr: 0.001, sampling: temperature, temperature: 2.0}
    baseline: stl
    out: runs/example
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from multitask.errors import ConfigError
from multitask.registry import DATASETS, LINEAR, MODELS
from multitask.tasks import KINDS, Task, parse_task
from multitask.train.config import TrainConfig


class TaskConfig(BaseModel):
    """A task: its name and kind; per-task data sets also name the task's file and target column."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: str = "regression"
    weight: float = 1.0
    loss: str = ""
    metric: str = ""
    data: str | None = None  # per-task data sets: this task's own file
    target: str | None = None  # per-task data sets: the target column in that file (default: the task name)
    features: list[str] | None = None
    image_shape: tuple[int, int, int] | None = None

    def task(self) -> Task:
        return Task(self.name, self.kind, self.weight, self.loss, self.metric)


class RunConfig(BaseModel):
    """Everything a training run needs; the defaults are what ``multitask train`` uses."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    # -- data: a user's file (wide or long form), per-task files (in `tasks`), or a built-in data set
    data: str | None = None
    """CSV or Parquet file; wide: one column per task; long: with task_column and target."""
    test_data: str | None = None
    """Evaluate on this file instead of the validation part."""
    dataset: str | None = None
    """A built-in data set (see `multitask list`)."""
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    """Options of the built-in data set, e.g. {split: 1} for school."""
    data_dir: str | None = None
    """Local folder with built-in data sets (else MULTITASK_DATA, then the cache)."""
    tasks: list[TaskConfig] = Field(default_factory=list)
    """The tasks: NAME:KIND strings or {name, kind, weight, loss, metric, data, target, features, image_shape}."""
    task_column: str | None = None
    """Long form: the column naming each row's task."""
    target: str | None = None
    """Long form: the target column."""
    task_kind: str = "regression"
    """Long form: the kind of every task."""
    features: list[str] | None = None
    """Feature columns; default: every column that is not a target or task id."""
    valid_fraction: float = 0.2
    """Share of each task's rows held out for validation and early stopping."""
    # -- model
    model: str = "hard-sharing"
    """A deep architecture, or linear:NAME."""
    model_options: dict[str, Any] = Field(default_factory=dict)
    """Options of the architecture (hidden, dropout, activation, norm) or linear estimator (alpha, ...)."""
    cv: int | None = None
    """Linear models: choose regularization by K-fold cross-validation."""
    # -- training and comparison
    train: TrainConfig = Field(default_factory=TrainConfig)
    """Training options (the table below)."""
    baseline: Literal["stl"] | None = None
    """Also train one single-task model per task; report delta_m."""
    out: str | None = None
    """The run directory."""

    @field_validator("tasks", mode="before")
    @classmethod
    def _tasks_from_strings(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [_task_entry(x) for x in v]
        return v

    @field_validator("task_kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in KINDS:
            raise ValueError(f"unknown task kind {v!r}; choose one of: {', '.join(KINDS)}")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        family, _, name = v.partition(":")
        if family == "linear":
            LINEAR.entry(name)
        else:
            MODELS.entry(v)
        return v

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, v: str | None) -> str | None:
        if v is not None:
            DATASETS.entry(v)
        return v

    @property
    def is_linear(self) -> bool:
        return self.model.startswith("linear:")

    @property
    def per_task(self) -> bool:
        return any(t.data is not None for t in self.tasks)


def _task_entry(x: Any) -> Any:
    if isinstance(x, str):
        t = parse_task(x)
        return {"name": t.name, "kind": t.kind}
    return x


def _flat_errors(e: ValidationError, source: str) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "config"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{source}: option {where!r}: {msg}"


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> RunConfig:
    """The run configuration from a YAML file (optional) with ``overrides`` (flags) applied on top."""
    data: dict[str, Any] = {}
    source = "command line"
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            loaded = yaml.safe_load(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{p}: no such config file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{p}: cannot read the config file ({e})") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: a config file must be a mapping of option: value, got {type(loaded).__name__}")
        data = loaded
    train_overrides = overrides.pop("train", {})
    merged = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    if train_overrides:
        merged["train"] = {**(merged.get("train") or {}), **{k: v for k, v in train_overrides.items() if v is not None}}
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(_flat_errors(e, source)) from None
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
