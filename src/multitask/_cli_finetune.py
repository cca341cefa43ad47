"""``multitask finetune``: add a task to a trained deep run (see :mod:`multitask.finetune`).

    multitask finetune --run runs/census --task occupation:multiclass --data occupation.csv --out runs/occ
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``finetune`` to the command line's subcommands."""
    from multitask.cli import _doc

    f: argparse.ArgumentParser = subparsers.add_parser(
        "finetune", help="add a new task to a trained deep run (a new head on its shared part)")
    f.add_argument("--run", required=True, help="the deep run directory to start from")
    f.add_argument("--task", required=True, metavar="NAME:KIND", help="the new task, e.g. churn:binary")
    f.add_argument("--data", required=True, help="CSV or Parquet file with the run's features and the task's target")
    f.add_argument("--target", metavar="COLUMN", help="the task's target column (default: the task's name; "
                   "long form: the run's target column)")
    f.add_argument("--out", required=True, help="the new run directory (new or empty)")
    f.add_argument("--freeze-shared", action="store_true",
                   help="train only the new parameters: the old tasks' predictions stay exactly the run's")
    f.add_argument("--epochs", type=int, help=_doc("epochs", train=True))
    f.add_argument("--lr", type=float, help=_doc("lr", train=True))
    f.add_argument("--valid-fraction", type=float, default=0.2, help=_doc("valid_fraction"))
    f.add_argument("--sep", help=_doc("sep"))
    f.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    return f


def run(a: argparse.Namespace, console: Any) -> int:
    """Fine-tune, print the new task's metrics against training it alone; 0 on success."""

    from rich.table import Table

    from multitask.cli import _fmt
    from multitask.finetune import finetune, run_training
    from multitask.tasks import parse_task
    from multitask.train import is_main_process

    task = parse_task(a.task)
    train = run_training(a.run, epochs=a.epochs, lr=a.lr, progress=False if a.quiet else None)
    result = finetune(a.run, task, a.data, a.out, target=a.target, freeze_shared=a.freeze_shared, train=train,
                      valid_fraction=a.valid_fraction, sep=a.sep, overwrite=a.overwrite)
    if not is_main_process():
        return 0
    table = Table(title=f"{task.name} on the shared part of {a.run}" + (" (frozen)" if a.freeze_shared else ""))
    table.add_column("metric")
    table.add_column("fine-tuned", justify="right")
    table.add_column("alone", justify="right")
    for metric, value in result.metrics[task.name].items():
        table.add_row(metric, _fmt(value), _fmt(result.alone[task.name].get(metric)))
    console.print(table)
    if result.delta_m is not None:
        console.print(f"delta_m against the task alone: {result.delta_m:+.2f}%", markup=False)
    console.print(f"run written to {result.run_dir}", markup=False)
    return 0
