"""The ``multitask`` command line; every choice it offers comes from :mod:`multitask.registry`.

    multitask train --data scores.csv --task math:regression --task passed:binary --out runs/a --baseline stl
    multitask train --data school.csv --task-column school --target score --out runs/school
    multitask evaluate --run runs/a --data test.csv
    multitask predict --run runs/a --data new.csv --output predictions.csv
    multitask list
    multitask demo

Bad input ends with one line ``multitask: error: …`` naming the file, column, task or option, and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from multitask import (
    _cli_affinity,
    _cli_compare,
    _cli_export,
    _cli_finetune,
    _cli_group,
    _cli_pareto,
    _cli_report,
    _cli_select,
)
from multitask.errors import ConfigError, MultitaskError
from multitask.registry import ALL, BALANCERS, OPTIMIZERS, SAMPLERS, SCHEDULES
from multitask.tasks import KINDS


def _key_values(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _columns(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _model_names() -> list[str]:
    from multitask.config import AUTO
    from multitask.models import names

    return [*names(), AUTO]


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument ends like every other error: one line, exit status 2.

    Prefixes of long options are not accepted (``--out`` is not ``--output``): an option that is not spelled
    out is an error. Subcommands' parsers are of this class too (argparse builds them with the parent's class).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:
        raise ConfigError(f"{self.prog}: {message}")


def _doc(field: str, train: bool = False) -> str:
    """A flag's help: the description of its config field (one source for the docs, `list` and `--help`)."""
    from multitask.config import RunConfig
    from multitask.train.config import TrainConfig

    model = TrainConfig if train else RunConfig
    return (model.model_fields[field].description or "").replace("%", "%%")


def data_overrides(a: argparse.Namespace, target: str = "target") -> dict[str, Any]:
    """The run options of :func:`add_data_arguments`' flags (``--dataset-option`` parsed); ``target`` names the
    argument holding the long form's target column, where a command gives ``--target`` another meaning."""
    overrides: dict[str, Any] = {
        "data": a.data, "test_data": a.test_data, "dataset": a.dataset, "data_dir": a.data_dir, "tasks": a.task,
        "task_column": a.task_column, "target": getattr(a, target),
        "task_kind": a.task_kind, "features": a.features, "sep": a.sep, "valid_fraction": a.valid_fraction,
        "poolable": a.poolable,
    }
    if a.dataset_option:
        overrides["dataset_options"] = _key_values(a.dataset_option, "--dataset-option")
    return overrides


def add_data_arguments(d: Any) -> None:
    """The data options (files, built-in data sets, task declarations), shared by ``train`` and ``compare``."""
    d.add_argument("--data", help=_doc("data"))
    d.add_argument("--test-data", help=_doc("test_data"))
    d.add_argument("--dataset", help=_doc("dataset"))
    d.add_argument("--dataset-option", action="append", metavar="KEY=VALUE", help=_doc("dataset_options"))
    d.add_argument("--data-dir", help=_doc("data_dir"))
    d.add_argument("--task", action="append", metavar="NAME:KIND",
                   help=f"a task (wide form); KIND is required, one of {', '.join(KINDS)}")
    d.add_argument("--task-column", help=_doc("task_column"))
    d.add_argument("--target", help=_doc("target"))
    d.add_argument("--task-kind", choices=KINDS, help=_doc("task_kind"))
    d.add_argument("--features", type=_columns, help="comma-separated; " + _doc("features"))
    d.add_argument("--sep", help=_doc("sep"))
    d.add_argument("--valid-fraction", type=float, help=_doc("valid_fraction"))
    d.add_argument("--poolable", action="store_true", default=None, help=_doc("poolable"))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="multitask", description="Multi-task learning: train, evaluate, predict.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train one model on all tasks (optionally single-task baselines too)")
    add_data_arguments(t.add_argument_group("data"))
    m = t.add_argument_group("model")
    m.add_argument("--model", choices=_model_names(), metavar="MODEL", help=f"one of: {', '.join(_model_names())}")
    m.add_argument("--hidden", type=_ints, help="layer widths, e.g. 128,64")
    m.add_argument("--dropout", type=float, help="dropout probability after each hidden layer")
    m.add_argument("--model-option", action="append", metavar="KEY=VALUE", help=_doc("model_options"))
    m.add_argument("--cv", type=int, metavar="K", help=_doc("cv"))
    m.add_argument("--search", type=int, metavar="N", help=_doc("search"))
    m.add_argument("--groups", metavar="auto|FILE.json", help=_doc("groups"))
    m.add_argument("--group-option", action="append", metavar="KEY=VALUE", help=_doc("group_options"))
    o = t.add_argument_group("training")
    o.add_argument("--epochs", type=int, help=_doc("epochs", train=True))
    o.add_argument("--batch-size", type=int, help=_doc("batch_size", train=True))
    o.add_argument("--accumulate", type=int, help=_doc("accumulate", train=True))
    o.add_argument("--lr", type=float, help=_doc("lr", train=True))
    o.add_argument("--optimizer", choices=OPTIMIZERS.names(), help=_doc("optimizer", train=True))
    o.add_argument("--schedule", choices=SCHEDULES.names(), help=_doc("schedule", train=True))
    o.add_argument("--sampling", choices=SAMPLERS.names(), help=_doc("sampling", train=True))
    o.add_argument("--temperature", type=float, help=_doc("temperature", train=True))
    o.add_argument("--balancer", choices=BALANCERS.names(), help=_doc("balancer", train=True))
    o.add_argument("--balancer-option", action="append", metavar="KEY=VALUE",
                   help=_doc("balancer_options", train=True))
    o.add_argument("--patience", type=int, help=_doc("patience", train=True))
    o.add_argument("--monitor", metavar="TASK", help=_doc("monitor", train=True))
    o.add_argument("--primary", metavar="TASK", help=_doc("primary", train=True))
    o.add_argument("--seed", type=int, help=_doc("seed", train=True))
    o.add_argument("--threads", type=int, help=_doc("threads", train=True))
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    o.add_argument("--precision", choices=("fp32", "bf16"), help=_doc("precision", train=True))
    o.add_argument("--stream", action="store_true", default=None, help=_doc("stream", train=True))
    o.add_argument("--shuffle-buffer", type=int, metavar="ROWS", help=_doc("shuffle_buffer", train=True))
    o.add_argument("--checkpoint-every", type=int, metavar="STEPS", help=_doc("checkpoint_every", train=True))
    r = t.add_argument_group("run")
    r.add_argument("--config", help="YAML file with any of these options (flags override it)")
    r.add_argument("--out", help=_doc("out"))
    r.add_argument("--baseline", type=_columns, metavar="stl,pooled,gbdt", help=_doc("baseline"))
    r.add_argument("--resume", action="store_true", help="continue a killed run in --out from its checkpoint")
    r.add_argument("--overwrite", action="store_true", default=None, help=_doc("overwrite"))
    r.add_argument("--track", type=_columns, action="extend", metavar="mlflow,tensorboard", help=_doc("track"))
    r.add_argument("--tracking-uri", metavar="URI", help=_doc("tracking_uri"))
    r.add_argument("--report", action="store_true", help="also write OUT/report.html (see `multitask report`)")
    r.add_argument("--engine", choices=("memory", "spark"), help=_doc("engine"))
    r.add_argument("--spark-master", metavar="URL", help=_doc("spark_master"))

    e = sub.add_parser("evaluate", help="per-task metrics of a trained run on labelled data")
    e.add_argument("--run", required=True, help="run directory written by `multitask train`")
    e.add_argument("--data", required=True, action="append", help="FILE, or TASK=FILE per task for per-task runs")
    e.add_argument("--sep", help=_doc("sep"))
    e.add_argument("--json", action="store_true", help="print the metrics as JSON (for scripts) instead of a table")

    p = sub.add_parser("predict", help="predictions of a trained run, one column per task")
    p.add_argument("--run", required=True)
    p.add_argument("--data", required=True, action="append", help="FILE, or TASK=FILE per task for per-task runs")
    p.add_argument("--sep", help=_doc("sep"))
    p.add_argument("--output", required=True,
                   help="CSV file to write (never an input file or a file inside a run directory); "
                        "with --engine spark, a Parquet folder")
    p.add_argument("--engine", choices=("memory", "spark"), default="memory",
                   help="memory (default), or spark: predict on Apache Spark (linear runs), writing Parquet")
    p.add_argument("--spark-master", metavar="URL", help=_doc("spark_master"))

    _cli_compare.add_parser(sub)
    _cli_affinity.add_affinity_parser(sub)
    _cli_group.add_parser(sub)
    _cli_finetune.add_parser(sub)
    _cli_pareto.add_parser(sub)
    _cli_export.add_parser(sub)
    _cli_select.add_parser(sub)
    _cli_report.add_parser(sub)
    sub.add_parser("list", help="the models, data sets and options that exist")
    demo = sub.add_parser("demo", help="train on built-in data and compare with single-task models")
    demo.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    demo.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    return parser


def _train_overrides(a: argparse.Namespace) -> dict[str, Any]:
    model_options = _key_values(a.model_option, "--model-option")
    if a.hidden is not None:
        model_options["hidden"] = a.hidden
    if a.dropout is not None:
        model_options["dropout"] = a.dropout
    overrides: dict[str, Any] = {
        **data_overrides(a),
        "overwrite": a.overwrite,
        "model": a.model,
        "cv": a.cv,
        "search": a.search,
        "groups": a.groups,
        "out": a.out,
        "baseline": a.baseline,
        "track": a.track,
        "tracking_uri": a.tracking_uri,
        "engine": a.engine,
        "spark_master": a.spark_master,
        "train": {
            "epochs": a.epochs,
            "batch_size": a.batch_size,
            "accumulate": a.accumulate,
            "lr": a.lr,
            "optimizer": a.optimizer,
            "schedule": a.schedule,
            "sampling": a.sampling,
            "temperature": a.temperature,
            "balancer": a.balancer,
            "patience": a.patience,
            "monitor": a.monitor,
            "primary": a.primary,
            "seed": a.seed,
            "threads": a.threads,
            "progress": False if a.quiet else None,
            "precision": a.precision,
            "stream": a.stream,
            "shuffle_buffer": a.shuffle_buffer,
            "checkpoint_every": a.checkpoint_every,
        },
    }
    if model_options:
        overrides["model_options"] = model_options
    if a.group_option:
        overrides["group_options"] = _key_values(a.group_option, "--group-option")
    if a.balancer_option:
        overrides["train"]["balancer_options"] = _key_values(a.balancer_option, "--balancer-option")
    return overrides


def _fmt(v: float | None) -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.4g}"


#: how each baseline is named in the table
_BASELINE_TITLES = {"stl": "single-task", "pooled": "pooled", "gbdt": "GBDT per task"}
#: at most this many task rows are printed (the run's metrics.json has them all)
_MAX_ROWS = 40


def escape(text: str) -> str:
    """``text`` shown as it is in a rich table (a name such as ``[b]`` is not markup)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def print_selection(rows: list[dict[str, Any]], console: Any) -> None:
    """The candidates or trials that chose the model, best first (the whole list is in selection.csv)."""
    from rich.table import Table

    table = Table(title="model selection (score: skill over a constant predictor on held-out rows; higher is better)")
    for column in ("#", "model", "score", "seconds", "status"):
        table.add_column(column, justify="right" if column in ("#", "score", "seconds") else "left")
    ranked = sorted(rows, key=lambda r: -(r["score"] if isinstance(r.get("score"), float) and math.isfinite(r["score"])
                                           else -math.inf))
    for r in ranked[:15]:
        table.add_row(str(r.get("number", "")), escape(str(r.get("model", ""))), _fmt(r.get("score")),
                      _fmt(r.get("seconds")), escape(str(r.get("status", ""))))
    console.print(table)
    if len(ranked) > 15:
        console.print(f"… {len(ranked) - 15} more in selection.csv")


def print_comparison(result: Any, console: Any) -> None:
    """The per-task table: each task's deciding metric for the model and each baseline, then delta_m."""
    from rich.table import Table

    if result.selection:
        print_selection(result.selection, console)

    name = escape(result.model or "model")
    parts = ("valid", "test", "held-out")  # evaluate names its data files instead
    where = f"{result.evaluated_on} part" if result.evaluated_on in parts else escape(result.evaluated_on)
    table = Table(title=f"{name} vs baselines ({where})" if result.baselines else f"{name} ({where})")
    table.add_column("task")
    table.add_column("metric")
    table.add_column(name, justify="right")
    for kind in result.baselines:
        table.add_column(_BASELINE_TITLES.get(kind, kind), justify="right")
    if result.baselines:
        table.add_column("best", justify="center")
    for task in result.tasks[:_MAX_ROWS]:
        value = result.metrics[task.name][task.metric]
        row = [escape(task.name), f"{task.metric} ({'↑' if task.higher_is_better else '↓'})", _fmt(value)]
        if value is None:
            row[2] = "not evaluated"
        scores = {"model": value}
        for kind, b in result.baselines.items():
            scores[kind] = b.metrics[task.name][task.metric]
            row.append(_fmt(scores[kind]))
        if result.baselines:
            defined = {k: v for k, v in scores.items() if v is not None and math.isfinite(v)}
            best = (max if task.higher_is_better else min)(defined, key=defined.__getitem__) if defined else "—"
            title = name if best == "model" else _BASELINE_TITLES.get(best, best)
            row.append("=" if len(set(defined.values())) == 1 and len(defined) > 1 else title)
        table.add_row(*row)
    console.print(table)
    if len(result.tasks) > _MAX_ROWS:
        rest = f"in {result.run_dir / 'metrics.json'}" if result.evaluated_on in parts else "with --json"
        console.print(f"… {len(result.tasks) - _MAX_ROWS} more tasks {rest}", markup=False)
    if getattr(result, "auxiliary", None):
        from multitask._auxiliary import print_auxiliary

        print_auxiliary(result.auxiliary, console)
    for task, why in list(result.notes.items())[:5]:
        console.print(f"task {task}: {why}", markup=False)
    for kind, b in result.baselines.items():
        n = len(result.tasks)
        over = f"over {b.delta_m_tasks} of {n} tasks" if b.delta_m_tasks < n else f"over {n} tasks"
        console.print(f"delta_m vs {_BASELINE_TITLES.get(kind, kind)} ({escape(b.model)}) = {_fmt(b.delta_m)} %  "
                      f"(mean relative gain of {result.model or 'the model'}, {over})")


def _cmd_train(a: argparse.Namespace, console: Any) -> int:
    from multitask.config import load_config
    from multitask.runs import train
    from multitask.train import is_main_process

    cfg = load_config(a.config, _train_overrides(a))
    if cfg.engine == "spark":
        from multitask import _spark_runs

        if a.resume:
            raise ConfigError("--resume does not apply to --engine spark (a Spark fit keeps no checkpoint)")
        if a.report:
            raise ConfigError("--report does not apply to --engine spark (the run holds no held-out predictions; "
                              "run `multitask evaluate` on held-out data)")
        done = _spark_runs.train(cfg)
        console.print(f"{escape(done.model)} fitted on Spark ({done.fit['master']}): {done.fit['iterations']} "
                      f"iterations, {done.fit['passes']} passes over the data, {done.fit['seconds']:.1f} s")
        console.print(f"run written to {done.run_dir}", markup=False)
        return 0
    result = train(cfg, resume=a.resume)
    if is_main_process():
        print_comparison(result, console)
        if cfg.groups is not None:
            from multitask.models._grouped import read_run_groups

            groups = read_run_groups(result.run_dir)
            console.print(f"trained by {len(groups)} groups: " + " | ".join(", ".join(g) for g in groups), markup=False)
        console.print(f"run written to {result.run_dir}", markup=False)
        if a.report:
            _cli_report.run(argparse.Namespace(run=result.run_dir, output=None, affinity=None, compare=None,
                                               max_tasks=_cli_report.MAX_TASKS), console)
    return 0


def _cmd_evaluate(a: argparse.Namespace, console: Any) -> int:
    from multitask._rundir import strict_json
    from multitask.runs import RunResult, evaluate, load_run

    run = load_run(a.run)
    notes: dict[str, str] = {}
    metrics = evaluate(run, list(a.data), sep=a.sep, notes=notes)
    if a.json:
        console.print_json(strict_json(metrics))
        return 0
    files = ", ".join(a.data)
    print_comparison(RunResult(run.run_dir, run.tasks, metrics, run.model_name, evaluated_on=files, notes=notes), console)
    return 0


def _cmd_predict(a: argparse.Namespace, console: Any) -> int:
    from multitask._rundir import check_output
    from multitask.runs import data_files, load_run, predict, write_predictions

    if a.engine == "spark":
        from multitask import _spark_runs

        if len(a.data) != 1:
            raise ConfigError("--engine spark predicts on one --data FILE or folder")
        written, n = _spark_runs.predict(a.run, a.data[0], a.output, a.spark_master, a.sep)
        console.print(f"{n} rows of predictions written to {written} (Parquet)", markup=False)
        return 0
    if a.spark_master is not None:
        raise ConfigError("--spark-master needs --engine spark")
    run = load_run(a.run)
    data = data_files(a.data, list(run.declaration["sources"]))
    inputs = [data] if isinstance(data, str) else list(data.values())
    check_output(a.output, inputs, Path(a.run))  # before the work, so that a bad --output fails fast
    frame = predict(run, data, sep=a.sep)
    out = write_predictions(frame, a.output, inputs, a.run)
    console.print(f"{len(frame)} rows of predictions written to {out}", markup=False)
    return 0


def _cmd_list(a: argparse.Namespace, console: Any) -> int:
    from rich.table import Table

    from multitask._docs import option_rows

    for title, registry in ALL.items():
        table = Table(title=title, title_justify="left")
        table.add_column("name")
        table.add_column("what it is")
        for name in registry.names():
            table.add_row(name, registry.entry(name).summary)
        console.print(table)
    for title, rows in option_rows().items():
        table = Table(title=title, title_justify="left")
        for column in ("option", "default", "what it is"):
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    return 0


def _cmd_demo(a: argparse.Namespace, console: Any) -> int:
    from multitask.demo import run_demo

    result, note = run_demo(Path(a.out), overwrite=a.overwrite)
    console.print(note, markup=False)
    print_comparison(result, console)
    console.print(f"run written to {result.run_dir}", markup=False)
    return 0


COMMANDS = {
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "predict": _cmd_predict,
    "compare": _cli_compare.run,
    "affinity": _cli_affinity.run_affinity,
    "group": _cli_group.run,
    "finetune": _cli_finetune.run,
    "pareto": _cli_pareto.run,
    "export": _cli_export.run,
    "select": _cli_select.run,
    "report": _cli_report.run,
    "list": _cmd_list,
    "demo": _cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console

    try:
        args = build_parser().parse_args(argv)
    except MultitaskError as e:
        return _fail(str(e))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    console = Console()
    try:
        return COMMANDS[args.command](args, console)
    except MultitaskError as e:
        return _fail(str(e))
    except OSError as e:  # an output the user named cannot be written: permission, a folder, a name too long
        where = f"{e.filename}: " if e.filename else ""
        return _fail(f"{where}{e.strerror or e}")
    except KeyboardInterrupt:
        print("multitask: interrupted", file=sys.stderr)
        return 130


def _fail(message: str) -> int:
    """Print one line ``multitask: error: …`` and return exit status 2."""
    text = " ".join(line.strip() for line in message.splitlines() if line.strip())
    print(f"multitask: error: {text}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
