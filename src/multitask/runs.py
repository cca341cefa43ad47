"""The verbs behind the command line: :func:`train`, :func:`evaluate`, :func:`predict`.

A run directory holds everything needed to evaluate and predict later, with no pickled objects:

============================  ===========================================================================
``config.yaml``               the resolved run configuration
``run.json``                  the task declaration (tasks, sources, target columns, features) and model
``preprocessing.json``        the fitted feature and target encodings
``model.json`` / ``model.pt`` a deep model's architecture and best weights (``linear.npz`` for linear)
``checkpoint.pt``             the last epoch's training state (``--resume`` continues from it)
``log.jsonl``                 one line per epoch: per-task losses, learning rate, time
``metrics.json``              ``{"tasks": …, "baseline": …, "delta_m": …}``
``baseline/<task>/``          each single-task baseline, laid out the same way
============================  ===========================================================================
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from multitask.config import RunConfig
from multitask.data.arrays import Arrays
from multitask.data.preprocess import Preprocessor
from multitask.data.reading import TaskFile, declare_long, declare_per_task, declare_wide, read_table
from multitask.data.spec import BuiltinData, DataSpec, declaration, from_declaration
from multitask.data.split import split_spec
from multitask.errors import CheckpointError, ConfigError, DataError
from multitask.evaluate import Predictions, delta_m, mean_over_tasks, predict_model, task_metrics
from multitask.nn import InputSpec
from multitask.registry import DATASETS, MODELS
from multitask.tasks import Task
from multitask.train import fit, load_model
from multitask.train._checkpoint import atomic_write

log = logging.getLogger(__name__)
RUN_FORMAT = "multitask-run/1"


@dataclass
class RunResult:
    """What :func:`train` measured: per-task metrics, the baseline's, and delta_m."""

    run_dir: Path
    tasks: list[Task]
    metrics: dict[str, dict[str, float]]
    baseline: dict[str, dict[str, float]] | None = None
    delta_m: float | None = None
    evaluated_on: str = "valid"
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tasks": self.metrics, "mean": mean_over_tasks(self.metrics), "evaluated_on": self.evaluated_on}
        if self.baseline is not None:
            out["baseline"] = self.baseline
            out["baseline_mean"] = mean_over_tasks(self.baseline)
            out["delta_m"] = self.delta_m
        return out


# ---- data ---------------------------------------------------------------------------------------------------
def load_data(cfg: RunConfig) -> tuple[DataSpec, DataSpec | None, str]:
    """``(training spec, test spec or None, description)`` from the data options of ``cfg``."""
    tasks = [t.task() for t in cfg.tasks]
    if cfg.dataset is not None:
        loader = DATASETS.get(cfg.dataset)
        options = dict(cfg.dataset_options)
        if cfg.data_dir is not None:
            if "data_dir" not in inspect.signature(loader).parameters:
                raise ConfigError(f"--data-dir: data set {cfg.dataset!r} is generated and reads no files")
            options["data_dir"] = cfg.data_dir
        try:
            data = loader(**options)
        except TypeError as e:
            raise ConfigError(f"dataset_options for {cfg.dataset!r}: {e}") from None
        test = _test_spec(data.train, cfg.test_data) if cfg.test_data is not None else data.test
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
    frame = read_table(cfg.data)
    if cfg.task_column is not None or cfg.target is not None:
        if cfg.task_column is None or cfg.target is None:
            raise ConfigError("long form needs both --task-column and --target")
        spec = declare_long(frame, cfg.task_column, cfg.target, cfg.task_kind, cfg.features, cfg.data, tasks)
    else:
        if not tasks:
            raise ConfigError("no tasks: give --task NAME:KIND for each target column (or --task-column/--target)")
        spec = declare_wide(frame, tasks, cfg.features, cfg.data)
    test = _test_spec(spec, cfg.test_data) if cfg.test_data is not None else None
    return spec, test, str(cfg.data)


def _test_spec(spec: DataSpec, path: str) -> DataSpec:
    """The training declaration over a test file (one-table layouts only)."""
    if len(spec.sources) != 1:
        raise ConfigError("--test-data takes one file, but these tasks read several data sets")
    source = next(iter(spec.sources))
    return spec.with_frames({source: read_table(path)}, {source: path})


# ---- training -----------------------------------------------------------------------------------------------
def train(cfg: RunConfig, resume: bool = False, data: BuiltinData | None = None) -> RunResult:
    """Train the configured model on all tasks (and, with ``baseline="stl"``, one model per task); write the run.

    ``data`` (optional) is the already loaded data set that ``cfg.dataset`` names.
    """
    if cfg.out is None:
        raise ConfigError("--out RUN_DIR is required")
    out = Path(cfg.out)
    if data is not None:
        spec, test, description = data.train, data.test, data.description
    else:
        spec, test, description = load_data(cfg)
    train_spec, valid_spec = split_spec(spec, cfg.valid_fraction, cfg.train.seed)
    pre = Preprocessor.fit(train_spec)
    tr, va = pre.transform(train_spec), pre.transform(valid_spec)
    te = pre.transform(test) if test is not None else None
    eval_arrays, evaluated_on = (te, "test") if te is not None else (va, "valid")
    if resume:
        _check_resumable(out, cfg)
        if not (out / "checkpoint.pt").exists():
            log.warning("--resume: no checkpoint in %s, training from the start", out)
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        _write_text(out / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
        _write_text(out / "run.json", json.dumps({"format": RUN_FORMAT, "model": cfg.model, "declaration": declaration(spec)}, indent=1))
        _write_text(out / "preprocessing.json", json.dumps(pre.to_dict(), indent=1))

    fit_one = _fit_linear if cfg.is_linear else _fit_deep
    predictions = fit_one(cfg, spec.tasks, pre, tr, va, eval_arrays, out, resume)
    metrics = task_metrics(spec.tasks, eval_arrays, predictions, pre)
    result = RunResult(out, spec.tasks, metrics, evaluated_on=evaluated_on, description=description)

    if cfg.baseline == "stl":
        baseline: dict[str, dict[str, float]] = {}
        for task in spec.tasks:
            sub = [task.name]
            eval_one = eval_arrays.only_tasks(sub)
            single = fit_one(
                cfg, [task], pre, tr.only_tasks(sub), va.only_tasks(sub), eval_one,
                out / "baseline" / _safe(task.name), resume,
            )
            baseline.update(task_metrics([task], eval_one, single, pre))
        result.baseline = baseline
        result.delta_m = delta_m(spec.tasks, metrics, baseline)
    if is_main_process():
        _write_text(out / "metrics.json", json.dumps(result.to_json(), indent=1, allow_nan=True))
    return result


#: options that may differ when a run is resumed (they do not change its result)
_RESUMABLE = {"out", "train.progress", "train.threads"}


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
    changed = [k for k in sorted(set(now) | set(saved)) if k not in _RESUMABLE and now.get(k) != saved.get(k)]
    if changed:
        raise ConfigError(
            f"--resume: the run in {out} was started with other options ({', '.join(changed)}); "
            "resume it with the same options or train into a new --out"
        )


def _fit_deep(
    cfg: RunConfig, tasks: list[Task], pre: Preprocessor, tr: Arrays, va: Arrays, ev: Arrays, out: Path, resume: bool
) -> Predictions:
    done = out / "model.pt"
    if resume and done.exists() and (out / "model.json").exists():
        model = load_model(out)
        return predict_model(model, tasks, ev)
    shapes = pre.input_shapes()
    inputs = {
        s: InputSpec(image_shape=v) if isinstance(v, tuple) else InputSpec(dim=v)
        for s, v in shapes.items()
        if s in tr.inputs
    }
    sizes = pre.output_sizes()
    torch.manual_seed(cfg.train.seed)
    cls = MODELS.get(cfg.model)
    try:
        model = cls(
            inputs=inputs,
            tasks=tasks,
            task_source={t.name: tr.task_source[t.name] for t in tasks},
            output_sizes={t.name: sizes[t.name] for t in tasks},
            **cfg.model_options,
        )
    except TypeError as e:
        raise ConfigError(f"model_options for {cfg.model!r}: {e}") from None
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
    result = fit(model, tasks, tr, va, cfg.train, run_dir=out, resume=resume)  # also writes model.pt/.json
    return predict_model(result.model, tasks, ev)


def _fit_linear(
    cfg: RunConfig, tasks: list[Task], pre: Preprocessor, tr: Arrays, va: Arrays, ev: Arrays, out: Path, resume: bool
) -> Predictions:
    from multitask._linear_run import fit_linear, predict_linear

    coef, intercept, losses = fit_linear(cfg, tasks, pre, tr, va)
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        buf = _npz_bytes(coef=coef, intercept=intercept, losses=np.asarray(losses))
        atomic_write(out / "linear.npz", lambda f: f.write(buf))
    return predict_linear(coef, intercept, losses, tasks, ev)


# ---- evaluate and predict ---------------------------------------------------------------------------------
@dataclass
class LoadedRun:
    """A trained run: its declaration, preprocessing and a predictor of every task's output."""

    run_dir: Path
    declaration: dict[str, Any]
    preprocessor: Preprocessor
    tasks: list[Task]
    predictor: Callable[[Arrays], Predictions]


def load_run(run_dir: str | Path) -> LoadedRun:
    """Read a run directory written by :func:`train` (no unpickling)."""
    d = Path(run_dir)
    if not d.is_dir():
        raise CheckpointError(f"{d}: no such run directory")
    try:
        meta = json.loads((d / "run.json").read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{d}: not a run directory (no run.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{d / 'run.json'}: corrupted ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != RUN_FORMAT:
        raise CheckpointError(f"{d / 'run.json'}: not written by multitask (format {RUN_FORMAT!r} expected)")
    decl = meta["declaration"]
    pre = Preprocessor.load(d / "preprocessing.json")
    tasks = [Task.from_dict(t) for t in decl["tasks"]]
    if str(meta["model"]).startswith("linear:"):
        from multitask._linear_run import load_linear, predict_linear

        coef, intercept, losses = load_linear(d / "linear.npz")
        return LoadedRun(d, decl, pre, tasks, lambda a: predict_linear(coef, intercept, losses, tasks, a))
    model = load_model(d)
    return LoadedRun(d, decl, pre, tasks, lambda a: predict_model(model, tasks, a))


def _frames_for(run: LoadedRun, data: str | dict[str, str]) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    sources = list(run.declaration["sources"])
    if isinstance(data, str):
        if len(sources) != 1:
            raise ConfigError(
                f"this run has one data set per task ({', '.join(sources)}): give --data TASK=FILE for each"
            )
        data = {sources[0]: data}
    unknown = [s for s in data if s not in sources]
    if unknown:
        raise ConfigError(f"--data {unknown[0]}=…: the run has no task or source {unknown[0]!r}")
    return {s: read_table(p) for s, p in data.items()}, dict(data)


def evaluate(run_dir: str | Path, data: str | dict[str, str]) -> dict[str, dict[str, float]]:
    """Per-task metrics of a trained run on labelled data (the same layout it was trained on)."""
    run = load_run(run_dir)
    frames, paths = _frames_for(run, data)
    spec = from_declaration(run.declaration, frames, paths)
    _check_task_ids(spec)
    arrays = run.preprocessor.transform(spec)
    return task_metrics(run.tasks, arrays, run.predictor(arrays), run.preprocessor)


def predict(run_dir: str | Path, data: str | dict[str, str]) -> pd.DataFrame:
    """Predictions for every row: one column per task (the value, or for a binary task the positive
    class probability); multiclass tasks add the predicted class and a ``TASK:CLASS`` probability column per
    class, multilabel tasks a ``TASK:LABEL`` probability per label. In long form, one ``prediction`` column
    holds each row's own task's prediction; with one data set per task, rows are stacked with a ``task`` column.
    """
    run = load_run(run_dir)
    frames, paths = _frames_for(run, data)
    spec = from_declaration(run.declaration, frames, paths, labelled=False)
    _check_task_ids(spec)
    arrays = run.preprocessor.transform(spec)
    preds = run.predictor(arrays)
    pieces = []
    for source, frame in frames.items():
        cols: dict[str, Any] = {}
        tasks = [t for t in run.tasks if spec.task_source[t.name] == source]
        for t in tasks:
            cols.update(_prediction_columns(t, run.preprocessor, preds[t.name]))
        out = pd.DataFrame(cols, index=frame.index)
        if spec.task_rows:  # long form: each row's own task
            column = next(iter(spec.task_rows.values()))[0]
            own = np.full(len(frame), np.nan)
            for t in tasks:
                rows = arrays.masks[t.name]
                own[rows] = np.asarray(out[t.name], dtype=float)[rows]
            out = pd.DataFrame({column: frame[column].to_numpy(), "prediction": own}, index=frame.index)
        if len(frames) > 1:
            out.insert(0, "task", source)
            out.insert(1, "row", np.arange(len(frame)))
        pieces.append(out)
    return pd.concat(pieces, ignore_index=len(pieces) > 1)


def _prediction_columns(task: Task, pre: Preprocessor, pred: np.ndarray) -> dict[str, Any]:
    codec = pre.targets[task.name]
    if task.kind == "regression":
        return {task.name: pre.to_original(task.name, pred.astype(np.float64))}
    if task.kind == "binary":
        return {task.name: pred.astype(np.float64)}
    cols: dict[str, Any] = {}
    if task.kind == "multiclass":
        cols[task.name] = np.asarray(codec.classes, dtype=object)[pred.argmax(axis=1)]
    for j, c in enumerate(codec.classes):
        cols[f"{task.name}:{c}"] = pred[:, j].astype(np.float64)
    return cols


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


# ---- small helpers ----------------------------------------------------------------------------------------
def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "task"


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def is_main_process() -> bool:
    """False on the ranks other than 0 under torchrun: only rank 0 writes the run directory."""
    return int(os.environ.get("RANK", "0")) == 0


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()

