"""``multitask train --stream``: a deep model trained on a table read piece by piece (see docs/training.md).

The run directory is the same as an in-memory run's (``evaluate`` and ``predict`` read it alike); what
differs is how the data get there: :class:`~multitask.data.streaming.Table` reads the file (or the files of
a folder), :func:`~multitask.data.stream_fit.fit_stream` fits the preprocessing in one pass, the trainer draws
batches from a :class:`~multitask.data.streaming.Stream`, and the metrics are computed from predictions made
piece by piece (only targets and predictions are held, never the features). Everything is read and checked
before anything is written.

Under torchrun every rank reads its own pieces (the streams are sharded, :mod:`multitask.data.streaming`):
the fit's summaries are gathered on every rank, the evaluation part's targets and predictions on rank 0, which
computes the metrics and hands them to the other ranks.
"""

from __future__ import annotations

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
    mark_complete,
    mark_incomplete,
    prepare_out,
    strict_json,
    write_text,
)
from multitask.config import AUTO, RunConfig
from multitask.data.arrays import Arrays
from multitask.data.preprocess import Preprocessor
from multitask.data.reading import declare_wide
from multitask.data.spec import DataSpec, declaration
from multitask.data.stream_fit import fit_stream
from multitask.data.streaming import Stream, Table
from multitask.errors import ConfigError
from multitask.evaluate import Metrics, task_metrics
from multitask.models import Model
from multitask.tasks import Task
from multitask.train import is_main_process
from multitask.train._distributed import Distributed, setup_distributed


def check_streamable(cfg: RunConfig) -> None:
    """Streaming trains one deep model on one wide table; anything else is refused, naming the option."""
    refused = [
        (cfg.data is None, "--stream reads --data FILE (or a folder of Parquet or CSV files)"),
        (cfg.dataset is not None, "--stream reads --data, not a built-in --dataset"),
        (any(t.data for t in cfg.tasks), "--stream reads one table, not per-task data sets"),
        (cfg.task_column is not None or cfg.target is not None, "--stream reads wide tables (one column per task)"),
        (cfg.model == AUTO or cfg.search is not None, "--stream trains one model: no --search or --model auto"),
        (bool(cfg.baseline), "--stream trains one model: no --baseline"),
        (cfg.cv is not None, "--stream trains a deep model: no --cv"),
        (cfg.groups is not None, "--stream trains one model: no --groups"),
        (cfg.train.primary is not None, "--stream: --primary (Auto-Lambda) needs in-memory validation batches"),
    ]
    for bad, message in refused:
        if bad:
            raise ConfigError(message)
    if cfg.model != AUTO and models.family_name(cfg.model) != "deep":
        raise ConfigError(f"--stream trains deep models; {cfg.model!r} is a {models.family_name(cfg.model)} model")


def train_streamed(cfg: RunConfig, resume: bool = False, overwrite: bool = False, tracking: Any = None) -> object:
    """Train ``cfg`` with ``train.stream``; returns the run's :class:`~multitask.runs.RunResult`.

    ``tracking`` (a :class:`multitask.tracking.RunTracking`) is started once the run is checked."""
    from multitask.runs import RunResult, _check_resumable, _inputs

    check_streamable(cfg)
    assert cfg.data is not None
    if is_main_process():
        out = prepare_out(cfg.out, resume=resume, overwrite=overwrite or cfg.overwrite, inputs=_inputs(cfg))
    else:
        out = Path(str(cfg.out))
    if resume:
        _check_resumable(out, cfg)
    tasks = [t.task() for t in cfg.tasks]
    if not tasks:
        raise ConfigError("no tasks: give --task NAME:KIND for each target column")

    def spec_of(frame: pd.DataFrame, where: str) -> DataSpec:
        return declare_wide(frame, tasks, cfg.features, where)

    ddp = setup_distributed()
    table = Table(cfg.data, sep=cfg.sep)
    spec = spec_of(table.columns(), cfg.data)
    pre, train, valid = fit_stream(table, spec_of, cfg.valid_fraction, cfg.train.seed, cfg.train.shuffle_buffer,
                                   group=ddp if ddp.enabled else None)
    if ddp.enabled:
        train.steps_per_epoch(cfg.train.batch_size)  # a process without training rows is refused before writing
    evaluation = valid
    if cfg.test_data is not None:
        test = Table(cfg.test_data, sep=cfg.sep)
        evaluation = Stream(test, lambda f, w: spec_of(f, w), pre, "all", 0.0, 0, [], {}, dict(train.task_source),
                            rank=ddp.rank, world_size=ddp.world_size)
    model = models.make(cfg)
    model.check(tasks, pre)
    if is_main_process():
        mark_incomplete(out)
        write_text(out / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
        write_text(out / RUN_FILE, strict_json({
            "format": RUN_FORMAT,
            "model": cfg.model,
            "family": models.family_name(cfg.model),
            "model_options": cfg.model_options,
            "declaration": declaration(spec),
            "task_dirs": task_dirs(spec.task_names),
            "baselines": {},
        }))
        write_text(out / "preprocessing.json", strict_json(pre.to_dict()))
    if tracking is not None and tracking.start(out, cfg.model_dump(mode="json"), resume) is not None:
        model.on_record = tracking.tracking.epoch  # type: ignore[attr-defined]
    model.fit(tasks, pre, train, valid, out, resume=resume)  # type: ignore[arg-type]
    if is_main_process():
        model.save(out)
    notes: dict[str, str] = {}
    metrics = stream_metrics(model, tasks, evaluation, pre, notes, ddp)
    result = RunResult(out, tasks, metrics, cfg.model, evaluated_on="test" if cfg.test_data else "valid",
                       description=f"{cfg.data} (streamed)", notes=notes)
    if is_main_process():
        write_text(out / "metrics.json", strict_json(result.to_json()))
        mark_complete(out)
    return result


def stream_metrics(
    model: Model,
    tasks: list[Task],
    stream: Stream,
    pre: Preprocessor,
    notes: dict[str, str] | None = None,
    ddp: Distributed | None = None,
) -> Metrics:
    """Per-task metrics over the labelled rows of ``stream``, predicted piece by piece (features never held).

    A stream sharded between ranks: each rank predicts its pieces, rank 0 gathers them in piece order (what one
    process holds), computes the metrics and hands them (and ``notes``) to every rank.
    """
    parts = []  # (piece, {task: targets}, {task: masks}, {task: predictions})
    for index, chunk in stream.numbered_chunks():
        if chunk.n_rows(chunk.sources[0]) == 0:
            continue
        out = model.predict(chunk)
        parts.append((index, {t.name: chunk.targets[t.name] for t in tasks}, {t.name: chunk.masks[t.name] for t in tasks},
                      {t.name: out[t.name] for t in tasks}))
    if stream.world_size == 1:
        return _metrics(tasks, parts, pre, notes)
    assert ddp is not None
    gathered = ddp.gather_object(parts)
    result = None
    if gathered is not None:
        result = (_metrics(tasks, sorted((p for rank in gathered for p in rank), key=lambda p: p[0]), pre, notes), notes)
    metrics, shared_notes = ddp.broadcast_object(result)
    if notes is not None and shared_notes is not None:
        notes.update(shared_notes)
    return metrics


def _metrics(tasks: list[Task], parts: list[Any], pre: Preprocessor, notes: dict[str, str] | None) -> Metrics:
    targets = {t.name: [p[1][t.name] for p in parts] for t in tasks}
    masks = {t.name: [p[2][t.name] for p in parts] for t in tasks}
    predictions = {t.name: [p[3][t.name] for p in parts] for t in tasks}
    n = sum(len(p[2][tasks[0].name]) for p in parts)
    source = next(iter(pre.sources))
    if n == 0:  # as in memory: no labelled rows here, so nothing is evaluated
        if notes is not None:
            notes.update({t.name: "no labelled rows in this part: not evaluated" for t in tasks})
        return {t.name: dict.fromkeys(t.metrics) for t in tasks}
    arrays = Arrays(
        inputs={source: np.zeros((n, 0), dtype=np.float32)},
        targets={t: np.concatenate(v) for t, v in targets.items()},
        masks={t: np.concatenate(v) for t, v in masks.items()},
        task_source={t.name: source for t in tasks},
    )
    return task_metrics(tasks, arrays, {t: np.concatenate(v) for t, v in predictions.items()}, pre, notes)
