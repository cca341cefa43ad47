"""The verbs behind the command line: :func:`train`, :func:`evaluate`, :func:`predict`.

A run directory holds everything needed to evaluate and predict later, with no pickled objects:

============================  ===========================================================================
``config.yaml``               the resolved run configuration
``run.json``                  the task declaration, the model and its family, each task's folder name
``preprocessing.json``        the fitted feature and target encodings
model files                   the family's own: ``model.json``/``model.pt`` (deep), ``linear.npz``, ``gbdt.json``
``checkpoint.pt``             deep models: the last epoch's training state (``--resume`` continues from it)
``log.jsonl``                 deep models: one line per epoch: per-task losses, learning rate, time
``metrics.json``              per-task metrics, their means, each baseline's and delta_m against it
``eval_predictions.npz``      the model's predictions on the evaluated rows, and label counts (for reports)
``baseline/KIND/...``         each baseline's models: ``stl/NNN-task/`` per task, ``pooled/``, ``gbdt/``
``INCOMPLETE``                present from the start of training until ``metrics.json`` is written
============================  ===========================================================================

The model is fitted by its family (:mod:`multitask.models`); nothing here depends on which family it is.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from multitask import models
from multitask._auxiliary import auxiliary_summary
from multitask._names import task_dirs
from multitask._rundir import (
    RUN_FILE,
    RUN_FORMAT,
    atomic_replace,
    check_complete,
    check_output,
    mark_complete,
    mark_incomplete,
    prepare_out,
    strict_json,
    write_text,
)
from multitask.config import AUTO, RunConfig
from multitask.data.arrays import Arrays
from multitask.data.preprocess import Preprocessor
from multitask.data.reading import TaskFile, declare_long, declare_per_task, declare_wide, read_table
from multitask.data.spec import BuiltinData, DataSpec, declaration, from_declaration
from multitask.data.split import split_rows
from multitask.errors import CheckpointError, ConfigError, DataError
from multitask.evaluate import Metrics, delta_m, delta_terms, mean_over_tasks, task_metrics
from multitask.models import Model, Predictions
from multitask.registry import DATASETS
from multitask.report._predictions import PREDICTIONS_FILE, save_predictions
from multitask.tasks import Task
from multitask.train import TrainConfig, is_main_process
from multitask.train._trainer import RESUMABLE_CHANGES
from multitask.train.config import without_primary

log = logging.getLogger(__name__)

__all__ = ["RUN_FORMAT", "BaselineResult", "LoadedRun", "Prepared", "RunResult", "evaluate", "load_run",
           "predict", "prepare", "train"]

#: the baselines a run can be compared with (``--baseline``)
BASELINES = ("stl", "pooled", "gbdt")


@dataclass
class BaselineResult:
    """One baseline's per-task metrics and delta_m of the run's model against it."""

    model: str
    metrics: Metrics
    delta_m: float | None
    delta_m_tasks: int

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "tasks": self.metrics,
            "mean": mean_over_tasks(self.metrics),
            "delta_m": self.delta_m,
            "delta_m_tasks": self.delta_m_tasks,
        }


@dataclass
class RunResult:
    """What :func:`train` measured: per-task metrics, each baseline's, and delta_m against each."""

    run_dir: Path
    tasks: list[Task]
    metrics: Metrics
    model: str = ""
    baselines: dict[str, BaselineResult] = field(default_factory=dict)
    evaluated_on: str = "valid"
    description: str = ""
    notes: dict[str, str] = field(default_factory=dict)
    selection: list[dict[str, Any]] | None = None  # the candidates or trials that chose the model
    auxiliary: dict[str, Any] | None = None  # with a primary task: each task's weight (multitask._auxiliary)

    @property
    def baseline(self) -> Metrics | None:
        """The single-task baseline's metrics (None without ``--baseline stl``)."""
        return self.baselines["stl"].metrics if "stl" in self.baselines else None

    @property
    def delta_m(self) -> float | None:
        """delta_m against the single-task baseline (None without it, or where no task is evaluated)."""
        return self.baselines["stl"].delta_m if "stl" in self.baselines else None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "evaluated_on": self.evaluated_on,
            "tasks": self.metrics,
            "mean": mean_over_tasks(self.metrics),
            "not_evaluated": self.notes,
            "baselines": {k: b.to_json() for k, b in self.baselines.items()},
            **({"selection": self.selection} if self.selection is not None else {}),
            **({"auxiliary": self.auxiliary} if self.auxiliary is not None else {}),
        }


# ---- data ---------------------------------------------------------------------------------------------------
def load_data(cfg: RunConfig) -> tuple[DataSpec, DataSpec | None, str]:
    """``(training spec, test spec or None, description)`` from the data options of ``cfg``."""
    long_form = cfg.task_column is not None
    tasks = [t.task(cfg.task_kind if long_form else None) for t in cfg.tasks]
    if cfg.dataset is not None:
        loader = DATASETS.get(cfg.dataset)
        options = dict(cfg.dataset_options)
        if cfg.data_dir is not None:
            if "data_dir" not in inspect.signature(loader).parameters:
                raise ConfigError(f"--data-dir: data set {cfg.dataset!r} is generated and reads no files")
            options["data_dir"] = cfg.data_dir
        try:
            inspect.signature(loader).bind(**options)
        except TypeError as e:
            raise ConfigError(f"dataset_options for {cfg.dataset!r}: {e}") from None
        data = loader(**options)
        test = _test_spec(data.train, cfg.test_data, cfg.sep) if cfg.test_data is not None else data.test
        return data.train, test, data.description
    if cfg.per_task:
        without = [t.name for t in cfg.tasks if t.data is None]
        if without:
            raise ConfigError(f"task {without[0]!r}: per-task data sets need a data file for every task")
        files = {
            t.name: TaskFile(str(t.data), t.target or t.name, tuple(t.features) if t.features else None, t.image_shape)
            for t in cfg.tasks
        }
        if cfg.test_data is not None:
            raise ConfigError("--test-data takes one file; per-task data sets are validated on --valid-fraction")
        return declare_per_task(tasks, files), None, "per-task data sets"
    if cfg.data is None:
        raise ConfigError("no data: give --data FILE, a built-in --dataset, or per-task files in the config")
    frame = read_table(cfg.data, sep=cfg.sep)
    if cfg.task_column is not None or cfg.target is not None:
        if cfg.task_column is None or cfg.target is None:
            raise ConfigError("long form needs both --task-column and --target")
        spec = declare_long(frame, cfg.task_column, cfg.target, cfg.task_kind, cfg.features, cfg.data, tasks)
    else:
        if not tasks:
            raise ConfigError("no tasks: give --task NAME:KIND for each target column (or --task-column/--target)")
        spec = declare_wide(frame, tasks, cfg.features, cfg.data)
    test = _test_spec(spec, cfg.test_data, cfg.sep) if cfg.test_data is not None else None
    return spec, test, str(cfg.data)


def _test_spec(spec: DataSpec, path: str, sep: str | None = None) -> DataSpec:
    """The training declaration over a test file (one-table layouts only)."""
    if len(spec.sources) != 1:
        raise ConfigError("--test-data takes one file, but these tasks read several data sets")
    source = next(iter(spec.sources))
    return spec.with_frames({source: read_table(path, sep=sep)}, {source: path})


# ---- prepared data: one split, shared by the model, its baselines, search and compare ------------------------
@dataclass(frozen=True)
class Prepared:
    """The data of a run after splitting and preprocessing: what every model of the run is fitted on."""

    spec: DataSpec
    pre: Preprocessor
    train: Arrays
    valid: Arrays
    test: Arrays | None
    description: str
    test_held_out: bool = False  # the test part was held out of the user's training data (model selection)

    @property
    def tasks(self) -> list[Task]:
        return self.spec.tasks

    @property
    def evaluated_on(self) -> str:
        """``"test"`` (given), ``"held-out"`` (kept out of the training data by the run), or ``"valid"``."""
        if self.test is None:
            return "valid"
        return "held-out" if self.test_held_out else "test"

    @property
    def evaluation(self) -> Arrays:
        """The part the reported metrics come from: the test part, else the validation part."""
        return self.test if self.test is not None else self.valid

    def for_model(self, model: Model) -> tuple[Arrays, Arrays]:
        """``(train, valid)`` for ``model``: a model that learns nothing from validation rows gets them for
        training when the metrics come from a separate test part."""
        if self.test is not None and not model.uses_validation:
            return self.train.concat(self.valid), self.valid
        return self.train, self.valid

    def only(self, tasks: Sequence[str]) -> Prepared:
        """The same data restricted to some tasks (single-task baselines)."""
        names = list(tasks)
        return replace(
            self,
            spec=replace(self.spec, tasks=[t for t in self.spec.tasks if t.name in names]),
            train=self.train.only_tasks(names),
            valid=self.valid.only_tasks(names),
            test=self.test.only_tasks(names) if self.test is not None else None,
        )


def prepare(cfg: RunConfig, data: BuiltinData | None = None, *, hold_out_test: bool | None = None) -> Prepared:
    """Read the configured data, hold out the validation part, and fit the preprocessing on the rest.

    When the run chooses among models or options (``--search``, ``--model auto``; or ``hold_out_test``) and
    no test part exists, a test part of ``valid_fraction`` of each task's rows is held out first: the
    reported metrics never come from the rows that chose the model.
    """
    if data is not None:
        spec, test, description = data.train, data.test, data.description
        if cfg.test_data is not None:
            test = _test_spec(spec, cfg.test_data, cfg.sep)
    else:
        spec, test, description = load_data(cfg)
    if hold_out_test is None:
        hold_out_test = cfg.search is not None or cfg.model == AUTO
    held_out = test is None and hold_out_test
    rest, test_rows = split_rows(spec, cfg.valid_fraction, cfg.train.seed + 1) if held_out else (None, None)
    train_rows, valid_rows = split_rows(spec, cfg.valid_fraction, cfg.train.seed, rest)
    pre = Preprocessor.fit(spec, train_rows)
    # a test file read for this run alone is freed as it is encoded, as the training table below
    te = pre.transform_parts(test, [None], release=cfg.test_data is not None)[0] if test is not None else None
    table, spec = spec, spec.with_frames({n: s.frame.iloc[:0].copy() for n, s in spec.sources.items()})
    # the parts are encoded column by column; a table read for this run alone is freed as it is encoded
    parts = pre.transform_parts(table, [train_rows, valid_rows, *([test_rows] if test_rows is not None else [])],
                                release=data is None and cfg.dataset is None)
    del table
    return Prepared(spec, pre, parts[0], parts[1], parts[2] if held_out else te, description, held_out)


def fit_and_score(
    model: Model, p: Prepared, run_dir: Path | None, *, resume: bool = False, notes: dict[str, str] | None = None
) -> tuple[Metrics, Predictions]:
    """Fit ``model`` on ``p`` (saving it in ``run_dir``), then its metrics on the evaluation part."""
    tr, va = p.for_model(model)
    model.fit(p.tasks, p.pre, tr, va, run_dir, resume=resume)
    if run_dir is not None and is_main_process():
        run_dir.mkdir(parents=True, exist_ok=True)
        model.save(run_dir)
    predictions = model.predict(p.evaluation)
    return task_metrics(p.tasks, p.evaluation, predictions, p.pre, notes), predictions


# ---- training -----------------------------------------------------------------------------------------------
def train(cfg: RunConfig, resume: bool = False, data: BuiltinData | None = None, overwrite: bool = False) -> RunResult:
    """Train the configured model on all tasks, and each ``cfg.baseline``; write the run directory.

    ``data`` (optional) is the already loaded data set that ``cfg.dataset`` names. ``--out`` must be new or
    empty, or an existing run continued with ``resume`` or replaced with ``overwrite``. ``cfg.track`` sends
    the run to MLflow or TensorBoard (:mod:`multitask.tracking`).
    """
    from multitask.tracking import RunTracking

    tracking = RunTracking(cfg.track if is_main_process() else [], cfg.tracking_uri)
    try:
        result = _train(cfg, resume, data, overwrite, tracking)
    except BaseException:
        tracking.finish(None)
        raise
    tracking.finish(result.run_dir, result.to_json())
    return result


def _train(cfg: RunConfig, resume: bool, data: BuiltinData | None, overwrite: bool, tracking: Any) -> RunResult:
    if cfg.train.stream:
        from multitask._stream_run import train_streamed

        return train_streamed(cfg, resume, overwrite, tracking)  # type: ignore[return-value]
    if cfg.engine != "memory":  # trained by multitask._spark_runs.train (`multitask train --engine spark`)
        raise ConfigError(f"--engine {cfg.engine}: only `multitask train` fits on Spark; this verb trains in memory")
    if is_main_process():  # the other ranks of a torchrun job write nothing, and must not see rank 0's files
        out = prepare_out(cfg.out, resume=resume, overwrite=overwrite or cfg.overwrite, inputs=_inputs(cfg))
    else:
        out = Path(str(cfg.out))
    if resume:
        _check_resumable(out, cfg)
    p = prepare(cfg, data)
    _check_prediction_columns(p)
    selecting = cfg.model == AUTO or cfg.search is not None
    if not selecting:  # everything is checked before anything is written
        model, baselines = _plan(cfg, p)
    if is_main_process():  # from here on the folder is a run, complete or marked incomplete
        mark_incomplete(out)
        write_text(out / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
    chosen, selection = cfg, None
    if selecting:
        from multitask.selection import select

        selection = select(cfg, p, out, resume=resume)
        chosen = selection.cfg
        model, baselines = _plan(chosen, p, selection.model)
    if tracking.start(out, chosen.model_dump(mode="json"), resume) is not None and hasattr(model, "on_record"):
        model.on_record = tracking.tracking.epoch  # the deep model's epochs, live
    dirs = task_dirs(p.spec.task_names)

    if is_main_process():
        write_text(out / RUN_FILE, strict_json({
            "format": RUN_FORMAT,
            "model": chosen.model,
            "family": models.family_name(chosen.model),
            "model_options": chosen.model_options,
            "declaration": declaration(p.spec),
            "task_dirs": dirs,
            "baselines": {k: b.model for k, b in baselines.items()},
        }))
        write_text(out / "preprocessing.json", strict_json(p.pre.to_dict()))

    notes: dict[str, str] = {}
    metrics, predictions = fit_and_score(model, p, out, resume=resume, notes=notes)
    if is_main_process():
        save_predictions(out / PREDICTIONS_FILE, p, predictions)
    result = RunResult(out, p.tasks, metrics, chosen.model, evaluated_on=p.evaluated_on, description=p.description,
                       notes=notes, selection=selection.leaderboard if selection is not None else None)
    result.auxiliary = auxiliary_summary(out, chosen.train) if is_main_process() else None
    for kind, bcfg in baselines.items():
        where = out / "baseline" / kind
        if kind == "stl":
            base: Metrics = {}
            for task in p.tasks:
                single = models.make(_single_task_config(bcfg, task))
                base.update(fit_and_score(single, p.only([task.name]), where / dirs[task.name], resume=resume)[0])
        else:
            base = fit_and_score(models.make(bcfg), p, where, resume=resume)[0]
        terms = delta_terms(p.tasks, metrics, base)
        result.baselines[kind] = BaselineResult(bcfg.model, base, delta_m(p.tasks, metrics, base), len(terms))
    if is_main_process():
        write_text(out / "metrics.json", strict_json(result.to_json()))
        mark_complete(out)
    return result


def _check_prediction_columns(p: Prepared) -> None:
    """Every column ``predict`` writes belongs to one task (``t:lo`` is class ``lo`` of ``t``, or task ``t:lo``)."""
    owner: dict[str, str] = {}
    for t in p.tasks:
        size = p.pre.output_sizes()[t.name]
        example = np.zeros(1) if t.kind in ("regression", "binary") else np.zeros((1, size))
        for column in p.pre.decode(t.name, example):
            if column in owner:
                raise ConfigError(f"tasks {owner[column]!r} and {t.name!r} would both write the prediction column "
                                  f"{column!r}; rename one of them")
            owner[column] = t.name


def _inputs(cfg: RunConfig) -> list[str]:
    """The files (and data folder) a run reads."""
    groups = cfg.groups if isinstance(cfg.groups, str) and cfg.groups != "auto" else None
    files = [cfg.data, cfg.test_data, cfg.data_dir, groups, *(t.data for t in cfg.tasks)]
    return [f for f in files if f]


def _plan(cfg: RunConfig, p: Prepared, model: Model | None = None) -> tuple[Model, dict[str, RunConfig]]:
    """The model to train and each baseline's configuration, all checked against the tasks."""
    model = model if model is not None else models.make(cfg)
    model.check(p.tasks, p.pre)
    baselines: dict[str, RunConfig] = {str(kind): _baseline_config(cfg, kind, p) for kind in cfg.baseline}
    for kind, bcfg in baselines.items():
        models.make(bcfg).check(p.tasks if kind != "stl" else p.tasks[:1], p.pre)
    return model, baselines


def _baseline_config(cfg: RunConfig, kind: str, p: Prepared) -> RunConfig:
    """The configuration of one baseline, with a training budget at least the model's (docs/cli.md)."""
    if kind == "stl":  # each task alone (not per group); a primary task's baseline is the primary trained alone
        update: dict[str, Any] = {"groups": None, "group_options": {}}
        if cfg.train.primary:
            update["train"] = without_primary(cfg.train)
        return cfg.model_copy(update=update)
    if kind == "gbdt":
        name, options = "gbdt:independent", {}
    else:  # pooled: the same family with every parameter shared but a per-task intercept
        check_poolable(cfg, p)
        name = models.family(cfg.model).pooled(cfg.model)
        accepted = set(inspect.signature(models.member(name)).parameters)
        options = {k: v for k, v in cfg.model_options.items() if k in accepted}
    same_family = models.family_name(name) == models.family_name(cfg.model)
    return cfg.model_copy(update={
        "model": name,
        "model_options": options,
        "groups": None,
        "group_options": {},
        "cv": cfg.cv if same_family else None,
        "train": cfg.train if same_family or models.family_name(name) == "deep" else type(cfg.train)(seed=cfg.train.seed),
    })


def _single_task_config(cfg: RunConfig, task: Task) -> RunConfig:
    """A single-task model's configuration: the run's, monitoring that task alone."""
    if getattr(cfg.train, "monitor", None) in (None, task.name):
        return cfg
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"monitor": None})})


def check_poolable(cfg: RunConfig, p: Prepared) -> None:
    kinds = {t.kind for t in p.tasks}
    sizes = {p.pre.output_sizes()[t.name] for t in p.tasks}
    if len(kinds) > 1 or len(sizes) > 1:
        raise ConfigError(
            "--baseline pooled: a pooled model predicts one quantity for every task, but these tasks are of "
            f"different kinds or sizes ({', '.join(sorted(kinds))})"
        )
    if len(p.spec.sources) > 1:
        raise ConfigError("--baseline pooled: the tasks read different data sets, so no model can pool them")
    if not p.spec.task_rows and not cfg.poolable:
        raise ConfigError(
            "--baseline pooled: in wide form the tasks are different columns; pool them only if they measure the "
            "same quantity, and say so with --poolable"
        )


#: options that may differ when a run is resumed (they do not change its result)
_RESUMABLE = {"out", "overwrite", "track", "tracking_uri", *(f"train.{k}" for k in RESUMABLE_CHANGES)}


def _flat(options: dict[str, Any]) -> dict[str, Any]:
    """``{"train": {"lr": 0.1}}`` → ``{"train.lr": 0.1}`` (one level: the training options)."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key == "train" and isinstance(value, dict):
            out.update({f"train.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def _check_resumable(out: Path, cfg: RunConfig) -> None:
    """``--resume`` continues the run in ``out`` only with the options it was started with."""
    saved_path = out / "config.yaml"
    if not saved_path.exists():
        return
    try:
        saved = _flat(yaml.safe_load(saved_path.read_text()) or {})
    except (yaml.YAMLError, AttributeError) as e:
        raise CheckpointError(f"{saved_path}: corrupted ({str(e).splitlines()[0]})") from None
    now = _flat(cfg.model_dump(mode="json"))
    # a training option the saved run predates had its default then
    saved = {**{f"train.{k}": v for k, v in TrainConfig().model_dump(mode="json").items()}, **saved}
    changed = [k for k in sorted(set(now) | set(saved)) if k not in _RESUMABLE and now.get(k) != saved.get(k)]
    if changed:
        raise ConfigError(
            f"--resume: the run in {out} was started with other options ({', '.join(changed)}); "
            "resume it with the same options or train into a new --out"
        )


# ---- evaluate and predict ---------------------------------------------------------------------------------
@dataclass
class LoadedRun:
    """A trained run: its declaration, preprocessing and a predictor of every task's output."""

    run_dir: Path
    declaration: dict[str, Any]
    preprocessor: Preprocessor
    tasks: list[Task]
    predictor: Callable[[Arrays], Predictions]
    model: Model | None = None  # the fitted model behind ``predictor`` (what export converts)
    model_name: str = ""  # the run's model name (run.json)


def load_run(run_dir: str | Path) -> LoadedRun:
    """Read a run directory written by :func:`train` (no unpickling), its files checked against each other."""
    d = Path(run_dir)
    if not d.is_dir():
        raise CheckpointError(f"{d}: no such run directory")
    path = d / RUN_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{d}: not a run directory (no {RUN_FILE})") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: corrupted ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != RUN_FORMAT:
        raise CheckpointError(f"{path}: not written by multitask (format {RUN_FORMAT!r} expected)")
    check_complete(d)
    decl = _field(meta, "declaration", dict, path)
    name = _field(meta, "model", str, path)
    try:
        models.family(name)  # a model name that exists
        tasks = [Task.from_dict(t) for t in _field(decl, "tasks", list, path)]
        for key in ("task_source", "target_column", "task_rows", "sources"):
            _field(decl, key, dict, path)
        for t in tasks:
            for key in ("task_source", "target_column"):
                if not isinstance(decl[key].get(t.name), str):
                    raise ValueError(f"'{key}' has no entry for task {t.name!r}")
    except (ConfigError, TypeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: field 'declaration' or 'model' is invalid ({e})") from None
    pre = Preprocessor.load(d / "preprocessing.json")
    names = [t.name for t in tasks]
    if sorted(pre.targets) != sorted(names):
        raise CheckpointError(f"{d / 'preprocessing.json'}: field 'targets' has tasks {sorted(pre.targets)[:5]}, "
                              f"but {path} declares {names[:5]}")
    for t in tasks:
        if pre.targets[t.name].kind != t.kind:
            raise CheckpointError(f"{d / 'preprocessing.json'}: task {t.name!r} is {pre.targets[t.name].kind} there, "
                                  f"{t.kind} in {path}")
    if sorted(pre.sources) != sorted(decl["sources"]):
        raise CheckpointError(f"{d / 'preprocessing.json'}: field 'sources' does not match {path}")
    model = models.load(name, d, tasks, pre)
    return LoadedRun(d, decl, pre, tasks, model.predict, model, name)


def _field(meta: dict[str, Any], key: str, kind: type, path: Path) -> Any:
    if not isinstance(meta.get(key), kind):
        raise CheckpointError(f"{path}: field {key!r} is missing or not a {kind.__name__}")
    return meta[key]


def data_files(items: Sequence[str], sources: Sequence[str]) -> str | dict[str, str]:
    """``--data`` values: one FILE, or ``TASK=FILE`` per source (a task name may itself contain ``=``; a file
    that exists is a file, whatever its name)."""
    if len(items) == 1 and (Path(items[0]).is_file() or "=" not in items[0]):
        return items[0]
    out: dict[str, str] = {}
    for item in items:
        known = [s for s in sources if item.startswith(f"{s}=")]
        if known:
            source = max(known, key=len)
            out[source] = item[len(source) + 1:]
            continue
        key, sep, _ = item.partition("=")
        if not sep:
            raise ConfigError(f"--data {item!r}: with several files, give TASK=FILE for each")
        raise ConfigError(f"--data {item!r}: the run has no task or source {key!r}")
    return out


DataFiles = str | dict[str, str] | list[str]


def _frames_for(run: LoadedRun, data: DataFiles, sep: str | None = None) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    sources = list(run.declaration["sources"])
    if isinstance(data, list):
        data = data_files(data, sources)
    if isinstance(data, str):
        if len(sources) != 1:
            raise ConfigError(
                f"this run has one data set per task ({', '.join(sources)}): give --data TASK=FILE for each"
            )
        data = {sources[0]: data}
    unknown = [s for s in data if s not in sources]
    if unknown:
        raise ConfigError(f"--data {unknown[0]}=…: the run has no task or source {unknown[0]!r}")
    return {s: read_table(p, sep=sep) for s, p in data.items()}, dict(data)


def evaluate(run_dir: str | Path | LoadedRun, data: DataFiles, sep: str | None = None,
             notes: dict[str, str] | None = None) -> Metrics:
    """Per-task metrics of a trained run on labelled data (the same layout it was trained on); None where
    a metric is undefined on these rows (``notes``, when given, receives ``{task: why}``). ``run_dir`` may be
    a run already loaded with :func:`load_run`."""
    run = run_dir if isinstance(run_dir, LoadedRun) else load_run(run_dir)
    frames, paths = _frames_for(run, data, sep)
    spec = from_declaration(run.declaration, frames, paths)
    _check_task_ids(spec)
    arrays = run.preprocessor.transform(spec)
    return task_metrics(run.tasks, arrays, run.predictor(arrays), run.preprocessor, notes)


def predict(run_dir: str | Path | LoadedRun, data: DataFiles, sep: str | None = None) -> pd.DataFrame:
    """Predictions for every row: one column per task (the value, or for a binary task the positive
    class probability); multiclass tasks add the predicted class and a ``TASK:CLASS`` probability column per
    class, multilabel tasks the predicted label set and a ``TASK:LABEL`` probability per label. In long form,
    the task-id column and one ``prediction`` column hold each row's own task's prediction (and, for classes,
    its ``prediction:CLASS`` probabilities); with one data set per task, rows are stacked with a ``task`` column.
    ``run_dir`` may be a run already loaded with :func:`load_run`.
    """
    run = run_dir if isinstance(run_dir, LoadedRun) else load_run(run_dir)
    frames, paths = _frames_for(run, data, sep)
    spec = from_declaration(run.declaration, frames, paths, labelled=False)
    _check_task_ids(spec)
    arrays = run.preprocessor.transform(spec)
    preds = run.predictor(arrays)
    pieces = []
    for source, frame in frames.items():
        tasks = [t for t in run.tasks if spec.task_source[t.name] == source]
        if spec.task_rows:  # long form: each row's own task
            column = next(iter(spec.task_rows.values()))[0]
            own: dict[str, Any] = {column: frame[column].to_numpy()}
            for t in tasks:
                rows = arrays.masks[t.name]
                for key, values in run.preprocessor.decode(t.name, preds[t.name]).items():
                    target = "prediction" + key[len(t.name):]
                    if target not in own:
                        own[target] = np.full(len(frame), None if values.dtype == object else np.nan, dtype=values.dtype)
                    own[target][rows] = values[rows]
            out = pd.DataFrame(own, index=frame.index)
        else:
            cols: dict[str, Any] = {}
            owner: dict[str, str] = {}
            for t in tasks:
                for key, values in run.preprocessor.decode(t.name, preds[t.name]).items():
                    if key in owner:
                        raise DataError(f"predict: column {key!r} would hold predictions of task {owner[key]!r} and "
                                        f"of task {t.name!r}; rename one of the tasks")
                    owner[key] = t.name
                    cols[key] = values
            out = pd.DataFrame(cols, index=frame.index)
        if len(frames) > 1:
            out.insert(0, "task", source)
            out.insert(1, "row", np.arange(len(frame)))
        pieces.append(out)
    return pd.concat(pieces, ignore_index=len(pieces) > 1)


def write_predictions(frame: pd.DataFrame, output: str, inputs: list[str], run_dir: str | Path) -> Path:
    """Write ``frame`` as CSV to ``output`` atomically; never over an input file or into a run directory."""
    out = check_output(output, inputs, Path(run_dir))
    atomic_replace(out, lambda tmp: frame.to_csv(tmp, index=False))
    return out


def _check_task_ids(spec: DataSpec) -> None:
    """In long form, every row's task id must be one the model was trained on."""
    if not spec.task_rows:
        return
    column = next(iter(spec.task_rows.values()))[0]
    known = {str(v) for _, v in spec.task_rows.values()}
    source = spec.sources[spec.task_source[spec.task_names[0]]]
    where = source.path or f"source {source.name!r}"
    if column not in source.frame.columns:
        raise DataError(f"{where}: no task-id column {column!r}")
    ids = source.frame[column].astype(object).map(str)
    unknown = ids[~ids.isin(known)]
    if len(unknown):
        raise DataError(
            f"{where}: task id {unknown.iloc[0]!r} in column {column!r} "
            f"(row {unknown.index[0]}) is not a task the model was trained on"
        )
