"""Add a task to a trained deep run: a new head (or gate) on the trained shared part, and the comparison with
training the new task alone.

    multitask finetune --run runs/census --task occupation:multiclass --data occupation.csv --out runs/census+occ
    multitask finetune --run runs/census --task churn:binary --data churn.csv --out runs/churn --freeze-shared

The new task's file has the run's feature columns and the task's target column (``--target``, default the task's
name; in long form the run's target and task-id columns, the task's rows marked with its name). Its rows are
split into training and validation parts as in ``multitask train``; the target's encoding is fitted on the
training part, the features keep the run's encodings.

The network is rebuilt with the old tasks and the new one and takes every trained weight of the run; the
parameters that are new (the new task's head, its gate or task-specific experts) start from the architecture's
initialization. Only the new task's loss is trained. With ``--freeze-shared`` only the new parameters learn, so
the old tasks' predictions stay exactly those of the run; without it the shared part learns too (the old
tasks' heads stay frozen, but their predictions move with the shared part: ``metrics.json`` says so).

The same architecture with the same options and training budget is trained on the new task alone, on the same
split, for the comparison: ``metrics.json`` holds both and delta_m of the fine-tuned model against it. The
output is an ordinary run directory: ``multitask predict`` and ``multitask evaluate`` see every old task and
the new one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import yaml

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
from multitask.data.preprocess import Preprocessor
from multitask.data.reading import read_table
from multitask.data.spec import from_declaration
from multitask.data.split import split_spec
from multitask.errors import ConfigError
from multitask.evaluate import Metrics, delta_m, delta_terms, mean_over_tasks, task_metrics
from multitask.models._deep import Deep
from multitask.models._grouped import GROUPS_FILE
from multitask.tasks import Task
from multitask.train import TrainConfig, fit, is_main_process
from multitask.train._checkpoint import load_model

__all__ = ["FinetuneResult", "finetune", "run_training"]


@dataclass
class FinetuneResult:
    """The new task's metrics fine-tuned and trained alone, and delta_m of the first against the second."""

    run_dir: Path
    task: Task
    metrics: Metrics
    alone: Metrics
    delta_m: float | None
    new_parameters: list[str] = field(default_factory=list)
    trained_parameters: int = 0

    def to_json(self, source: Path, freeze_shared: bool, old_tasks: list[str]) -> dict[str, Any]:
        moved = "" if freeze_shared else "the shared part was fine-tuned: predictions differ from "
        note = f"not evaluated by finetune ({moved or 'unchanged from '}{source})"
        return {
            "model": self.run_dir.name,
            "evaluated_on": "valid",
            "tasks": self.metrics,
            "mean": mean_over_tasks(self.metrics),
            "not_evaluated": {t: note for t in old_tasks},
            "baselines": {
                "alone": {
                    "model": "the same architecture on the new task alone",
                    "tasks": self.alone,
                    "mean": mean_over_tasks(self.alone),
                    "delta_m": self.delta_m,
                    "delta_m_tasks": 1 if self.delta_m is not None else 0,
                }
            },
            "finetune": {
                "from": str(source),
                "task": self.task.to_dict(),
                "freeze_shared": freeze_shared,
                "new_parameters": self.new_parameters,
                "trained_parameters": self.trained_parameters,
            },
        }


def _evaluating(module: torch.nn.Module, _: Any) -> None:
    """A forward pre-hook: the module runs in evaluation mode, whatever mode its network is in."""
    module.train(False)


def run_training(run_dir: str | Path, **changes: Any) -> TrainConfig:
    """The training options a run was trained with (its ``config.yaml``), with ``changes`` (None: kept)."""
    path = Path(run_dir) / "config.yaml"
    saved = (yaml.safe_load(path.read_text()) or {}).get("train") or {} if path.is_file() else {}
    return TrainConfig(**{**saved, **{k: v for k, v in changes.items() if v is not None}})


def _run_meta(run_dir: Path) -> dict[str, Any]:
    from multitask.runs import load_run

    load_run(run_dir)  # every file of the run checked
    meta: dict[str, Any] = json.loads((run_dir / RUN_FILE).read_text())
    if (run_dir / GROUPS_FILE).is_file():
        raise ConfigError(
            f"--run {run_dir}: a run trained by groups (one model per group, in {run_dir / 'groups'}); "
            "finetune adds a head to one network: train a new run with the task included instead"
        )
    if meta.get("family") != "deep":
        raise ConfigError(
            f"--run {run_dir}: finetune adds a head to a deep network; this run is {meta.get('family')} "
            f"({meta.get('model')}): train a new run with the task included instead"
        )
    return meta


def _new_declaration(decl: dict[str, Any], task: Task, target: str | None) -> dict[str, Any]:
    """The run's declaration for the new task alone (same source and features)."""
    if len(decl["sources"]) != 1:
        raise ConfigError(
            f"finetune: the run has one data set per task ({', '.join(decl['sources'])}); adding a task needs "
            "a run over one table (wide or long form)"
        )
    source = next(iter(decl["sources"]))
    task_rows: dict[str, list[str]] = {}
    if decl["task_rows"]:  # long form: the run's task-id and target columns, the task's rows by its name
        id_column = next(iter(decl["task_rows"].values()))[0]
        task_rows = {task.name: [id_column, task.name]}
        column = target or next(iter(decl["target_column"].values()))
    else:
        column = target or task.name
    return {
        "tasks": [task.to_dict()],
        "task_source": {task.name: source},
        "target_column": {task.name: column},
        "task_rows": task_rows,
        "sources": decl["sources"],
    }


def finetune(
    run_dir: str | Path,
    task: Task,
    data: str | Path,
    out: str | Path,
    *,
    target: str | None = None,
    freeze_shared: bool = False,
    train: TrainConfig | None = None,
    valid_fraction: float = 0.2,
    sep: str | None = None,
    overwrite: bool = False,
) -> FinetuneResult:
    """Train ``task`` (from ``data``) on the shared part of the deep run in ``run_dir``; write the run to ``out``.

    ``train`` defaults to the run's own training options. See the module docstring.
    """
    source_dir = Path(run_dir)
    meta = _run_meta(source_dir)
    old_pre = Preprocessor.load(source_dir / "preprocessing.json")
    decl = meta["declaration"]
    old_tasks = [Task.from_dict(t) for t in decl["tasks"]]
    if task.name in {t.name for t in old_tasks}:
        raise ConfigError(f"--task {task.name}: the run already has a task {task.name!r}")
    if train is None:
        train = run_training(source_dir)
    # one task is trained: the run's primary task, monitored task and balancing method concern the old tasks
    train = train.model_copy(update={"primary": None, "monitor": None, "balancer": "static", "balancer_options": {}})
    new_decl = _new_declaration(decl, task, target)
    if Path(out).resolve() == source_dir.resolve():  # before --overwrite could remove it
        raise ConfigError(f"--out {out}: is the run being fine-tuned; give a new folder")
    out_dir = prepare_out(str(out), resume=False, overwrite=overwrite, inputs=[str(data)])

    source = next(iter(new_decl["sources"]))
    spec = from_declaration(new_decl, {source: read_table(str(data), sep=sep)}, {source: str(data)})
    train_spec, valid_spec = split_spec(spec, valid_fraction, train.seed)
    fitted = Preprocessor.fit(train_spec)
    pre = Preprocessor(old_pre.sources, {**old_pre.targets, task.name: fitted.targets[task.name]})
    tr, va = pre.transform(train_spec), pre.transform(valid_spec)

    options = dict(meta.get("model_options") or {})
    deep = Deep(meta["model"], options, train)
    all_tasks = [*old_tasks, task]
    task_source = {t: source for t in [x.name for x in all_tasks]}
    torch.manual_seed(train.seed)
    net = deep._build(all_tasks, pre, task_source)
    old = load_model(source_dir)
    try:
        missing, unexpected = net.load_state_dict(old.state_dict(), strict=False)
    except RuntimeError as e:
        shapes = "; ".join(line.strip() for line in str(e).splitlines()[1:3])
        raise ConfigError(
            f"finetune: in {meta['model']!r} the trained part depends on the number of tasks ({shapes}); "
            "a task cannot be added to it (with head=shared or head=embedding, use head=separate)"
        ) from None
    if unexpected:
        raise ConfigError(f"finetune: {meta['model']!r} rebuilt with the new task lacks trained weights "
                          f"{', '.join(unexpected[:3])}")
    new = set(missing)
    shared = {id(p) for p in cast(Any, net).shared_parameters()}  # every architecture has them (contract tests)
    trained = 0
    for name, p in net.named_parameters():
        p.requires_grad_(name in new or (not freeze_shared and id(p) in shared))
        trained += p.numel() if p.requires_grad else 0
    if trained == 0:
        raise ConfigError(f"finetune: {meta['model']!r} has no parameter for the new task to learn")
    for module in net.modules():  # frozen batch norm keeps its running statistics (and uses them) in training
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and not any(
                p.requires_grad for p in module.parameters()):
            module.register_forward_pre_hook(_evaluating)

    if is_main_process():
        mark_incomplete(out_dir)
    fitted_net = fit(net, [task], tr, va, train, run_dir=out_dir).model
    tuned = Deep(meta["model"], options, train)
    tuned.net_, tuned.tasks_ = fitted_net, all_tasks
    metrics = task_metrics([task], va, tuned.predict(va), pre)

    single = Deep(meta["model"], options, train)
    single.fit([task], pre, tr, va, out_dir / "baseline" / "alone")
    if is_main_process():
        single.save(out_dir / "baseline" / "alone")
    alone = task_metrics([task], va, single.predict(va), pre)
    terms = delta_terms([task], metrics, alone)
    result = FinetuneResult(out_dir, task, metrics, alone, delta_m([task], metrics, alone) if terms else None,
                            sorted(new), trained)

    if is_main_process():
        declaration = {
            "tasks": [t.to_dict() for t in all_tasks],
            "task_source": {**decl["task_source"], **new_decl["task_source"]},
            "target_column": {**decl["target_column"], **new_decl["target_column"]},
            "task_rows": {**decl["task_rows"], **new_decl["task_rows"]},
            "sources": decl["sources"],
        }
        write_text(out_dir / RUN_FILE, strict_json({
            "format": RUN_FORMAT,
            "model": meta["model"],
            "family": "deep",
            "model_options": options,
            "declaration": declaration,
            "task_dirs": task_dirs([t.name for t in all_tasks]),
            "baselines": {},
            "finetuned_from": str(source_dir),
        }))
        write_text(out_dir / "preprocessing.json", strict_json(pre.to_dict()))
        write_text(out_dir / "config.yaml", yaml.safe_dump({
            "finetune": {"run": str(source_dir), "task": task.to_dict(), "data": str(data), "target": target,
                         "freeze_shared": freeze_shared, "valid_fraction": valid_fraction},
            "train": train.model_dump(mode="json"),
        }, sort_keys=False, allow_unicode=True))
        write_text(out_dir / "metrics.json",
                   strict_json(result.to_json(source_dir, freeze_shared, [t.name for t in old_tasks])))
        mark_complete(out_dir)
    return result
