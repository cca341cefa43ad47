"""``multitask affinity``: which tasks help each other while a deep model trains.

    multitask affinity --data scores.csv --task math:regression --task reading:regression --out aff
    multitask affinity --dataset school --model hard-sharing --measure lookahead --every 5 --out aff

Writes ``OUT/affinity_MEASURE.csv`` (tasks × tasks) and ``OUT/affinity_MEASURE.png`` (a heatmap in cluster
order) for each measure, and prints each matrix. See :mod:`multitask.affinity`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from multitask.errors import ConfigError


def _outputs(measure: str) -> tuple[str, str]:
    return f"affinity_{measure}.csv", f"affinity_{measure}.png"


def add_affinity_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``affinity`` to the command line's subcommands."""
    from multitask.affinity import MEASURES
    from multitask.cli import _columns, _doc, _model_names, add_data_arguments

    c: argparse.ArgumentParser = subparsers.add_parser(
        "affinity", help="task affinity (gradient cosines, TAG lookahead) measured while a deep model trains")
    c.add_argument("--measure", type=_columns, default=list(MEASURES), metavar="MEASURE,...",
                   help=f"comma-separated, of: {', '.join(MEASURES)} (default: all)")
    c.add_argument("--every", type=int, default=10, metavar="K", help="measure every K training steps (default 10)")
    c.add_argument("--lookahead-lr", type=float, metavar="LR",
                   help="the lookahead's SGD step size (default: the training --lr)")
    add_data_arguments(c.add_argument_group("data"))
    m = c.add_argument_group("model (deep)")
    m.add_argument("--model", metavar="MODEL", help=f"one of: {', '.join(_model_names())}")
    m.add_argument("--model-option", action="append", metavar="KEY=VALUE", help=_doc("model_options"))
    o = c.add_argument_group("training")
    for flag, name, kind in (("--epochs", "epochs", int), ("--batch-size", "batch_size", int), ("--lr", "lr", float),
                             ("--seed", "seed", int)):
        o.add_argument(flag, type=kind, help=_doc(name, train=True))
    r = c.add_argument_group("run")
    r.add_argument("--config", help="YAML file with the data, model and training options (flags override it)")
    r.add_argument("--out", required=True, help="folder for affinity_MEASURE.csv and affinity_MEASURE.png")
    return c


def run_affinity(a: argparse.Namespace, console: Any) -> int:
    """Run ``multitask affinity``: write each measure's CSV and heatmap, print each matrix."""
    from multitask.affinity import MEASURES, affinity, plot_heatmap, write_csv
    from multitask.cli import _key_values
    from multitask.config import load_config

    measures = list(dict.fromkeys(a.measure))
    unknown = [m for m in measures if m not in MEASURES]
    if unknown or not measures:
        raise ConfigError(f"--measure {','.join(a.measure)}: each must be one of {', '.join(MEASURES)}")
    if a.every < 1:
        raise ConfigError(f"--every {a.every}: must be at least 1")
    out = Path(a.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")
    overrides: dict[str, Any] = {
        "data": a.data, "test_data": a.test_data, "dataset": a.dataset, "data_dir": a.data_dir, "tasks": a.task,
        "task_column": a.task_column, "target": a.target, "task_kind": a.task_kind, "features": a.features,
        "sep": a.sep, "valid_fraction": a.valid_fraction, "poolable": a.poolable, "model": a.model,
        "train": {"epochs": a.epochs, "batch_size": a.batch_size, "lr": a.lr, "seed": a.seed, "progress": False},
    }
    if a.dataset_option:
        overrides["dataset_options"] = _key_values(a.dataset_option, "--dataset-option")
    if a.model_option:
        overrides["model_options"] = _key_values(a.model_option, "--model-option")
    cfg = load_config(a.config, overrides)
    result = affinity(cfg, measures, every=a.every, lr=a.lookahead_lr)
    out.mkdir(parents=True, exist_ok=True)
    for measure in measures:
        csv, png = (out / name for name in _outputs(measure))
        matrix = result.matrices[measure]
        write_csv(matrix, result.tasks, csv)
        order = plot_heatmap(matrix, result.tasks, png, f"{measure} affinity ({result.steps} steps)")
        print_matrix(matrix, result.tasks, order, f"{measure} affinity (row i: task whose gradient moves; "
                                                  "column j: affected task)", console)
        console.print(f"{measure}: {csv}, {png}", markup=False)
    console.print(f"{result.steps} steps measured; measuring took {result.measure_seconds:.2g} s of "
                  f"{result.seconds:.2g} s ({100 * result.overhead:.0f}% on top of training)", markup=False)
    return 0


def print_matrix(matrix: Any, tasks: list[str], order: list[int], title: str, console: Any) -> None:
    """The matrix as a table, tasks in ``order``."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    table.add_column("task")
    for j in order:
        table.add_column(escape(tasks[j]), justify="right")
    for i in order:
        cells = [matrix[i, j] for j in order]
        table.add_row(escape(tasks[i]), *("—" if not math.isfinite(v) else f"{v:.3g}" for v in cells))
    console.print(table)
