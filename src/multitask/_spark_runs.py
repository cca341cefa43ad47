"""``multitask train --engine spark`` and ``multitask predict --engine spark``: linear models on Apache Spark.

Training reads ``--data`` (Parquet or CSV, a file or a folder; wide or long form) with Spark, fits the
preprocessing on Spark (:mod:`multitask.data._spark_preprocess`) and the linear model with
:func:`~multitask.linear._spark.fit_spark`, on every row of ``--data``. The run directory has the files of an
in-memory run (``run.json``, ``preprocessing.json``, ``linear.npz``), so ``multitask evaluate`` and
``predict`` work on it in memory too; ``metrics.json`` records the fit (objective, iterations, passes over
the data) and no metrics: evaluate on held-out data with ``multitask evaluate``. Nothing is written before
the fit has succeeded. Prediction on Spark writes a Parquet folder with the columns of in-memory predict.
"""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from multitask import models
from multitask._names import task_dirs
from multitask._rundir import (
    RUN_FILE,
    RUN_FORMAT,
    is_run,
    mark_complete,
    mark_incomplete,
    prepare_out,
    strict_json,
    write_text,
)
from multitask.config import RunConfig
from multitask.data._spark import SparkTable, check_columns, read_frame, spark_session
from multitask.data._spark_preprocess import CodecEncoder, fit_preprocessor
from multitask.data.reading import _natural_key
from multitask.data.spec import DataSpec, Source, declaration
from multitask.errors import ConfigError, DataError
from multitask.models._base import name_tasks
from multitask.models._linear import Linear
from multitask.tasks import Task

#: options of an in-memory run that a Spark run does not have
_NOT_ON_SPARK = {"cv": "--cv", "search": "--search", "test_data": "--test-data", "dataset": "--dataset",
                 "baseline": "--baseline", "valid_fraction": "--valid-fraction"}


@dataclass
class SparkRunResult:
    """What a Spark training run did: its directory, tasks and the fit's summary (``metrics.json``'s ``fit``)."""

    run_dir: Path
    tasks: list[Task]
    model: str
    fit: dict[str, Any]


def check_config(cfg: RunConfig) -> None:
    """ConfigError unless ``cfg`` is a run the Spark engine trains: a linear model on one file."""
    family = models.family_name(cfg.model) if cfg.model != "auto" else "auto"
    if family != "linear":
        raise ConfigError(f"--engine spark trains linear models (linear:NAME); {cfg.model!r} is a {family} model, "
                          "trained in memory (--engine memory)")
    for key, flag in _NOT_ON_SPARK.items():
        if key in cfg.model_fields_set and getattr(cfg, key) not in (None, [], False):
            raise ConfigError(f"{flag} does not apply to --engine spark (the model is fitted on every row of --data; "
                              "evaluate it with `multitask evaluate` on held-out data)")
    if cfg.per_task:
        raise ConfigError("--engine spark reads one table (--data), not one data set per task")
    for bad, flag in ((bool(cfg.track), "--track"), (cfg.groups is not None, "--groups"),
                      (cfg.train.stream, "--stream"), (cfg.train.primary is not None, "--primary")):
        if bad:
            raise ConfigError(f"{flag} does not apply to --engine spark (a Spark run fits one linear model and "
                              "reports its fit, not per-epoch or per-task metrics)")
    if cfg.data is None:
        raise ConfigError("--engine spark needs --data FILE (Parquet or CSV, a file or a folder of files)")
    if cfg.model_options.get("strength_units", "absolute") != "absolute":
        raise ConfigError("model_options strength_units: scale is not available with --engine spark; "
                          "give absolute strengths")


def _declare(cfg: RunConfig, frame: Any, where: str, run_job: Any) -> DataSpec:
    """The run's tasks and columns, as in memory (long form: the distinct task ids, in natural order)."""
    from pyspark.sql import functions as F

    given = {t.name: t for t in cfg.tasks}
    empty = pd.DataFrame(columns=frame.columns)
    source = Source("data", empty, list(cfg.features) if cfg.features is not None else None, None, str(cfg.data))
    if cfg.task_column is not None or cfg.target is not None:
        if cfg.task_column is None or cfg.target is None:
            raise ConfigError("long form needs both --task-column and --target")
        check_columns(frame, [cfg.task_column], where, "--task-column")
        check_columns(frame, [cfg.target], where, "--target")
        nulls = run_job(lambda: frame.where(F.col(cfg.task_column).isNull()).limit(1).count())
        if nulls:
            raise DataError(f"{where}: column {cfg.task_column!r} (task id) is null in some rows; every row needs a task")
        ids = run_job(lambda: [r[0] for r in frame.select(cfg.task_column).distinct().collect()])
        tasks, task_rows = [], {}
        for v in sorted(ids, key=_natural_key):
            name = str(v)
            tasks.append(given.pop(name).task(cfg.task_kind) if name in given else Task(name, cfg.task_kind))
            task_rows[name] = (cfg.task_column, v)
        if given:
            raise DataError(f"{where}: task {next(iter(given))!r} has no rows in column {cfg.task_column!r}")
        return DataSpec(tasks, {"data": source}, {t.name: "data" for t in tasks},
                        {t.name: cfg.target for t in tasks}, task_rows)
    if not cfg.tasks:
        raise ConfigError("no tasks: give --task NAME:KIND for each target column (or --task-column/--target)")
    tasks = [t.task() for t in cfg.tasks]
    check_columns(frame, [t.name for t in tasks], where, "a task target")
    return DataSpec(tasks, {"data": source}, {t.name: "data" for t in tasks}, {t.name: t.name for t in tasks})


def train(cfg: RunConfig, overwrite: bool = False) -> SparkRunResult:
    """Train ``cfg``'s linear model on Spark (master ``cfg.spark_master``) and write the run directory."""
    from multitask.linear._spark import fit_spark

    check_config(cfg)
    out = prepare_out(cfg.out, resume=False, overwrite=overwrite or cfg.overwrite, inputs=[str(cfg.data)])
    spark = spark_session(cfg.spark_master)
    frame, where, path = read_frame(spark, str(cfg.data), cfg.sep)
    probe = SparkTable(frame, "wide", [], 0, lambda b: {}, [], where, path)
    spec = _declare(cfg, frame, where, probe.run_job)
    features = spec.feature_columns("data")
    check_columns(frame, features, where, "a feature")
    if not features:
        raise DataError(f"{where}: no feature columns left after the targets and task id")
    tasks = spec.tasks
    pre = fit_preprocessor(frame, where, features, tasks, spec.target_column, spec.task_rows, probe.run_job)
    model = Linear(cfg.model, cfg.model_options)
    model.check(tasks, pre)
    names = tuple(t.name for t in tasks)
    task_column = next(iter(spec.task_rows.values()))[0] if spec.task_rows else None
    target_columns = (spec.target_column[names[0]],) if task_column else tuple(spec.target_column[n] for n in names)
    encoder = CodecEncoder(pre.sources["data"], pre.targets, names, target_columns, task_column)
    columns = [*features, *dict.fromkeys([*target_columns, *([task_column] if task_column else [])])]
    table = SparkTable(frame.select(*columns), "long" if task_column else "wide", columns,
                       pre.sources["data"].width, encoder, [], where, path,
                       target_columns[0] if task_column else None, task_column,
                       [] if task_column else list(target_columns), list(names) if task_column else None)
    table.feature_names = _encoded_names(pre)
    estimator = model._estimator(tasks)
    start = time.perf_counter()
    try:
        fit_spark(estimator, table)
    except DataError as e:
        raise name_tasks(e, tasks) from None
    seconds = time.perf_counter() - start
    model.losses_ = [str(v) for v in estimator.losses_]
    model.coef_ = np.asarray(estimator.coef_, dtype=np.float64)
    model.intercept_ = np.asarray(estimator.intercept_, dtype=np.float64)
    model.tasks_ = list(tasks)
    fit = {"engine": "spark", "master": spark.sparkContext.master, "passes": int(estimator.spark_passes_),
           "restricted_passes": int(estimator.spark_restricted_passes_),
           "iterations": int(estimator.n_iter_), "objective": float(estimator.objective_[-1]),
           "seconds": seconds}
    # everything succeeded: now the run directory is written, marked incomplete until metrics.json
    mark_incomplete(out)
    write_text(out / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
    write_text(out / RUN_FILE, strict_json({
        "format": RUN_FORMAT, "model": cfg.model, "family": "linear", "model_options": cfg.model_options,
        "declaration": declaration(spec), "task_dirs": task_dirs(spec.task_names), "baselines": {},
    }))
    write_text(out / "preprocessing.json", strict_json(pre.to_dict()))
    model.save(out)
    write_text(out / "metrics.json", strict_json({
        "model": cfg.model, "evaluated_on": None, "tasks": {}, "mean": {}, "baselines": {},
        "not_evaluated": {"*": "trained on Spark on every row of --data: evaluate with `multitask evaluate`"},
        "fit": fit,
    }))
    mark_complete(out)
    return SparkRunResult(out, list(tasks), cfg.model, fit)


def _encoded_names(pre: Any) -> list[str]:
    names: list[str] = []
    for col in pre.sources["data"].columns:
        names += [col.name] if col.kind == "numeric" else [f"{col.name}={c}" for c in col.categories]
    return names


# ---- prediction ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Predictor:
    """Arrow batches of input rows → Arrow batches of predictions (the columns of in-memory predict)."""

    encoder: CodecEncoder
    pre: Any
    coef: np.ndarray
    intercept: np.ndarray
    losses: tuple[str, ...]
    task_names: tuple[str, ...]
    task_column: str | None

    def __call__(self, batches: Any) -> Any:
        import pyarrow as pa

        from multitask.data._spark import labels

        for batch in batches:
            X = self.encoder.features_of(batch)
            z = X @ self.coef.T + self.intercept
            p = np.column_stack([z[:, j] if loss == "squared" else 1.0 / (1.0 + np.exp(-z[:, j]))
                                 for j, loss in enumerate(self.losses)]) if len(self.losses) else z
            decoded = {t: self.pre.decode(t, p[:, j])[t] for j, t in enumerate(self.task_names)}
            if self.task_column is None:
                yield pa.RecordBatch.from_pydict({t: decoded[t] for t in self.task_names})
                continue
            ids, _ = labels(batch.column(self.task_column))
            lookup = {name: k for k, name in enumerate(self.task_names)}
            own = np.fromiter((lookup.get(str(v), -1) for v in ids.tolist()), dtype=np.intp, count=len(ids))
            unknown = np.flatnonzero(own < 0)
            if len(unknown):
                raise DataError(f"task id {ids[unknown[0]]!r} in column {self.task_column!r} is not a task the "
                                "model was trained on")
            values = np.column_stack([decoded[t] for t in self.task_names])[np.arange(len(own)), own] \
                if len(own) else np.zeros(0)
            yield pa.RecordBatch.from_arrays([batch.column(self.task_column), pa.array(values, pa.float64())],
                                             names=[self.task_column, "prediction"])


def predict(run_dir: str | Path, data: str, output: str, master: str | None = None,
            sep: str | None = None) -> tuple[Path, int]:
    """Predict with a trained linear run on Spark; write a Parquet folder ``output`` (replaced in one step)."""
    from pyspark.sql.types import DoubleType, StructField, StructType

    from multitask.runs import load_run

    run = load_run(run_dir)
    meta_model = run.declaration
    model = Linear.load(_model_name(Path(run_dir)), Path(run_dir), run.tasks, run.preprocessor)
    out = Path(output)
    if out.resolve() == Path(data).resolve():
        raise ConfigError(f"--output {out}: is the input {data}; write predictions elsewhere")
    for parent in [out.resolve().parent, *out.resolve().parent.parents]:
        if is_run(parent):
            raise ConfigError(f"--output {out}: is inside the run directory {parent}; write predictions elsewhere")
    if not out.resolve().parent.is_dir():
        raise ConfigError(f"--output {out}: folder {out.parent} does not exist")
    if out.exists() and not (out.is_dir() and (out / "_SUCCESS").exists()):
        raise ConfigError(f"--output {out}: exists and is not a Parquet folder of earlier predictions; "
                          "remove it or give a new name")
    spark = spark_session(master)
    frame, where, path = read_frame(spark, data, sep)
    source = meta_model["sources"]["data"]
    features = list(source["features"])
    check_columns(frame, features, where, "a feature the model was trained with")
    task_rows = meta_model["task_rows"]
    task_column = next(iter(task_rows.values()))[0] if task_rows else None
    if task_column is not None:
        check_columns(frame, [task_column], where, "the task-id column")
    names = tuple(t.name for t in run.tasks)
    encoder = CodecEncoder(run.preprocessor.sources["data"], run.preprocessor.targets, names, (), task_column)
    predictor = _Predictor(encoder, run.preprocessor, model.coef_, model.intercept_, tuple(model.losses_), names,
                           task_column)
    if task_column is None:
        schema = StructType([StructField(t, DoubleType()) for t in names])
        selected = frame.select(*features)
    else:
        schema = StructType([frame.schema[task_column], StructField("prediction", DoubleType())])
        selected = frame.select(*dict.fromkeys([*features, task_column]))
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    probe = SparkTable(frame, "wide", [], 0, lambda b: {}, [], where, path)
    try:
        probe.run_job(lambda: selected.mapInArrow(predictor, schema).write.parquet(str(tmp)))
        rows = probe.run_job(lambda: spark.read.parquet(str(tmp)).count())
        old = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.old") if out.exists() else None
        if old is not None:
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out, int(rows)


def _model_name(run_dir: Path) -> str:
    import json

    name = json.loads((run_dir / RUN_FILE).read_text())["model"]
    if models.family_name(name) != "linear":
        raise ConfigError(f"--engine spark predicts with linear models; the run in {run_dir} is {name!r}")
    return str(name)

