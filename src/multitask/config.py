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

import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from multitask.errors import ConfigError
from multitask.registry import DATASETS
from multitask.tasks import KINDS, Task, parse_task
from multitask.train.config import TrainConfig

#: the model name that chooses among candidates by validation
AUTO = "auto"
#: options of the training loop that every family reads (the others are the deep family's)
_ANY_FAMILY_TRAIN = {"seed", "threads", "progress"}


class TaskConfig(BaseModel):
    """A task: its name and kind; per-task data sets also name the task's file and target column."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: str | None = None
    weight: float = 1.0
    loss: str = ""
    metric: str = ""
    data: str | None = None  # per-task data sets: this task's own file
    target: str | None = None  # per-task data sets: the target column in that file (default: the task name)
    features: list[str] | None = None
    image_shape: tuple[int, int, int] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a task needs a non-empty name")
        return v

    @field_validator("weight")
    @classmethod
    def _weight(cls, v: float) -> float:
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"must be a finite number >= 0, got {v}")
        return v

    def task(self, default_kind: str | None = None) -> Task:
        """The task; ``default_kind`` is the long form's ``task_kind`` (elsewhere every task states its kind)."""
        kind = self.kind or default_kind
        if kind is None:
            raise ConfigError(
                f"task {self.name!r}: no kind given; declare it as NAME:KIND, KIND one of {', '.join(KINDS)}"
            )
        return Task(self.name, kind, self.weight, self.loss, self.metric)


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
    """Long form: the kind of every task (wide and per-task tasks state theirs: NAME:KIND)."""
    features: list[str] | None = None
    """Feature columns; default: every column that is not a target or task id."""
    sep: str | None = None
    """CSV separator; default: detected from the file (comma, semicolon, tab or bar)."""
    valid_fraction: float = 0.2
    """Share of each task's rows held out for validation and early stopping."""
    poolable: StrictBool = False
    """Wide form: the task columns measure one quantity, so a pooled model (--baseline pooled) makes sense."""
    # -- model
    model: str = "hard-sharing"
    """A deep architecture, linear:NAME or gbdt:NAME (see `multitask list`)."""
    model_options: dict[str, Any] = Field(default_factory=dict)
    """Options of the model: architecture (hidden, dropout, ...), linear estimator (alpha, ...) or gbdt."""
    cv: StrictInt | None = None
    """Linear models: choose regularization by K-fold cross-validation."""
    search: StrictInt | None = None
    """Tune the model's options with this many Optuna trials, scored on validation (see docs/selection.md)."""
    groups: str | list[list[str]] | None = None
    """Train one model per group of tasks: auto (groups chosen from task affinity measured on the training rows), a JSON file of groups (multitask group --output), or a list of lists of task names."""
    group_options: dict[str, Any] = Field(default_factory=dict)
    """Options of groups auto: measure, k, every, epochs, model, lookahead_lr, beam_width (see docs/affinity.md)."""
    # -- training and comparison
    train: TrainConfig = Field(default_factory=TrainConfig)
    """Training options (the table below); deep models read them all, other families only seed and threads."""
    baseline: list[Literal["stl", "pooled", "gbdt"]] = Field(default_factory=list)
    """Baselines to compare with, each reported with delta_m: stl (one model per task), pooled, gbdt."""
    out: str | None = None
    """The run directory: new or empty, or an existing run with --resume or --overwrite."""
    track: list[str] = Field(default_factory=list)
    """Send the run to experiment trackers: mlflow, tensorboard (see docs/tracking.md)."""
    tracking_uri: str | None = None
    """MLflow's tracking URI (default: MLflow's own, sqlite:///mlflow.db); TensorBoard writes in RUN_DIR/tensorboard."""
    overwrite: StrictBool = False
    """Replace the run already in --out (all of it)."""
    engine: Literal["memory", "spark"] = "memory"
    """Where linear models are fitted: memory (NumPy), or spark (Apache Spark, extra multitask[spark]; docs/spark.md)."""
    spark_master: str | None = None
    """--engine spark: the Spark master URL, e.g. spark://host:7077 (default local[2])."""

    def __init__(self, **options: Any) -> None:
        try:
            super().__init__(**options)
        except ValidationError as e:
            raise ConfigError(_flat_errors(e)) from None

    @field_validator("tasks", mode="before")
    @classmethod
    def _tasks_from_strings(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [_task_entry(x) for x in v]
        return v

    @field_validator("baseline", mode="before")
    @classmethod
    def _baselines(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str):
            v = [b.strip() for b in v.split(",") if b.strip()]
        if isinstance(v, list) and len(set(map(str, v))) != len(v):
            raise ValueError(f"a baseline is named twice in {v}")
        return v

    @field_validator("track", mode="before")
    @classmethod
    def _trackers(cls, v: Any) -> Any:
        from multitask.registry import TRACKERS

        if v is None:
            return []
        if isinstance(v, str):
            v = [t.strip() for t in v.split(",") if t.strip()]
        if isinstance(v, list):
            for name in v:
                TRACKERS.entry(str(name))
            if len(set(map(str, v))) != len(v):
                raise ValueError(f"a tracker is named twice in {v}")
        return v

    @field_validator("valid_fraction")
    @classmethod
    def _fraction(cls, v: float) -> float:
        if not 0.0 < v < 1.0:
            raise ValueError(f"must be strictly between 0 and 1, got {v}")
        return v

    @field_validator("cv")
    @classmethod
    def _folds(cls, v: int | None) -> int | None:
        if v is not None and not 2 <= v <= 1000:
            raise ValueError(f"must be a number of folds from 2 to 1000, got {v}")
        return v

    @field_validator("sep")
    @classmethod
    def _sep(cls, v: str | None) -> str | None:
        if v is not None and (len(v) != 1 or v in "\"\n\r"):
            raise ValueError(f"must be one character such as ',' ';' or a tab, got {v!r}")
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
        from multitask.models import check_name

        return v if v == AUTO else check_name(v)

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, v: str | None) -> str | None:
        if v is not None:
            DATASETS.entry(v)
        return v

    @model_validator(mode="after")
    def _options_apply(self) -> RunConfig:
        """Every option given takes effect: those that do not apply to the layout or the model are refused."""
        from multitask.models import family_name

        given = self.model_fields_set
        if self.dataset is not None:
            bad = [k for k in ("data", "tasks", "task_column", "target", "features", "task_kind", "sep") if k in given
                   and getattr(self, k) not in (None, [])]
            if bad:
                raise ValueError(f"option {bad[0]!r} does not apply to a built-in --dataset (it declares its own tasks)")
        else:
            if "dataset_options" in given and self.dataset_options:
                raise ValueError("option 'dataset_options' needs --dataset")
            if "data_dir" in given and self.data_dir is not None:
                raise ValueError("option 'data_dir' needs --dataset")
        long_form = self.task_column is not None or self.target is not None
        if self.per_task:
            bad = [k for k in ("data", "task_column", "target", "features") if getattr(self, k) is not None]
            if bad:
                raise ValueError(f"option {bad[0]!r} does not apply to per-task data sets (each task names its own)")
        elif not long_form and "task_kind" in given and self.dataset is None:
            raise ValueError("option 'task_kind' applies to long form (--task-column/--target); "
                             "in wide form give each task's kind as NAME:KIND")
        if self.poolable and long_form:
            raise ValueError("option 'poolable' is for wide form; long-form tasks are always poolable")
        if self.search is not None and not 1 <= self.search <= 100_000:
            raise ValueError(f"option 'search' must be a number of trials from 1 to 100000, got {self.search}")
        if self.engine == "spark" and (self.model == AUTO or family_name(self.model) != "linear"):
            raise ValueError(f"option 'engine': spark trains linear models (linear:NAME), not {self.model!r}")
        if self.spark_master is not None and self.engine != "spark":
            raise ValueError("option 'spark_master' needs --engine spark")
        if self.model == AUTO:
            if self.model_options:
                raise ValueError("option 'model_options' does not apply to --model auto (each candidate has its own)")
            return self
        family = family_name(self.model)
        if self.cv is not None and family != "linear":
            raise ValueError(f"option 'cv' applies to linear models, not {self.model!r}")
        if family != "deep":
            allowed = _ANY_FAMILY_TRAIN | ({"monitor"} if self.search is not None else set())
            extra = sorted(set(self.train.model_fields_set) - allowed, key=lambda k: (k != "primary", k))
            if extra:
                raise ValueError(f"option 'train.{extra[0]}' applies to deep models, not {self.model!r}")
        return self

    @model_validator(mode="after")
    def _groups_apply(self) -> RunConfig:
        """``groups`` names the partition of one model's tasks: not with a model chosen among candidates."""
        if self.groups is not None and (self.model == AUTO or self.search is not None):
            raise ValueError("option 'groups' does not apply to --model auto or --search (train by groups a model "
                             "you name)")
        if self.groups is not None and isinstance(self.groups, str) and not self.groups.strip():
            raise ValueError("option 'groups': give auto, a JSON file of groups, or a list of lists of task names")
        if self.group_options and self.groups is None:
            raise ValueError("option 'group_options' needs --groups auto")
        return self

    @property
    def per_task(self) -> bool:
        return any(t.data is not None for t in self.tasks)


def _task_entry(x: Any) -> Any:
    """``"NAME:KIND"`` → ``{name, kind}``; a bare ``"NAME"`` has no kind (required in wide form, the long
    form's ``task_kind`` otherwise)."""
    if isinstance(x, str):
        if ":" not in x:
            return {"name": x}
        t = parse_task(x)
        return {"name": t.name, "kind": t.kind}
    return x


def _flat_errors(e: ValidationError) -> str:
    """The first problem on one line, naming the option: ``option 'valid_fraction': must be …``."""
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"unknown option {where!r}"
    if msg.startswith(("train option", "unknown train option")):
        return msg
    return f"option {where!r}: {msg}" if where else msg


def _as_flags(message: str) -> str:
    """Option names as the command line spells them: ``option 'train.lr'`` → ``--lr``."""
    def flag(match: re.Match[str]) -> str:
        name = match.group(1)
        return "--" + _FLAGS.get(name, name).replace("_", "-")

    return re.sub(r"(?:train )?option '(?:train\.)?([a-z_]+)'", flag, message)


#: options whose flag is not their name
_FLAGS = {"tasks": "task", "dataset_options": "dataset_option", "model_options": "model_option",
          "group_options": "group_option"}


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key repeated in one mapping (plain YAML keeps the last silently)."""


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"key {key!r} appears twice (line {key_node.start_mark.line + 1}); give each option once")
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> RunConfig:
    """The run configuration from a YAML file (optional) with ``overrides`` (flags) applied on top."""
    data: dict[str, Any] = {}
    source = "command line"
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            loaded = yaml.load(p.read_text(), Loader=_UniqueKeyLoader)
        except FileNotFoundError:
            raise ConfigError(f"{p}: no such config file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{p}: cannot read the config file ({e})") from None
        except ConfigError as e:
            raise ConfigError(f"{p}: {e}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: a config file must be a mapping of option: value, got {type(loaded).__name__}")
        data = loaded
    train_overrides = overrides.pop("train", {})
    option_overrides = overrides.pop("model_options", None) or {}
    merged = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    if option_overrides:  # --model-option, --hidden, --dropout add to the file's model_options
        found = data.get("model_options")
        file_options: dict[str, Any] = found if isinstance(found, dict) else {}
        same_model = overrides.get("model") in (None, data.get("model"))
        merged["model_options"] = {**(file_options if same_model else {}), **option_overrides}
    if train_overrides:
        merged["train"] = {**(merged.get("train") or {}), **{k: v for k, v in train_overrides.items() if v is not None}}
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as e:
        message = _flat_errors(e)
    except ConfigError as e:
        message = str(e)
    raise ConfigError(_as_flags(message) if path is None else f"{source}: {message}")
