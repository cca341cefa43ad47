"""``multitask affinity``: which tasks help each other.

    multitask affinity --data scores.csv --task math:regression --task reading:regression --out aff
    multitask affinity --dataset school --model hard-sharing --measure lookahead --every 5 --out aff
    multitask affinity --dataset sarcos --model linear:mean-regularized --measure transfer --jobs 2 --out aff
    multitask affinity --dataset synthetic --measure clustered --model linear:clustered \
        --model-option n_clusters=3 --out aff

Writes ``OUT/affinity_MEASURE.csv`` (tasks × tasks) and ``OUT/affinity_MEASURE.png`` (a heatmap in cluster
order) for each measure, and prints each matrix; ``clustered`` also writes ``OUT/clusters.json``. See
:mod:`multitask.affinity`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from multitask._rundir import strict_json, write_text
from multitask.errors import ConfigError

#: where ``--measure clustered`` writes each task's cluster
CLUSTERS_FILE = "clusters.json"


def _outputs(measure: str) -> tuple[str, str]:
    return f"affinity_{measure}.csv", f"affinity_{measure}.png"


def add_affinity_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``affinity`` to the command line's subcommands."""
    from multitask.affinity import DEEP_MEASURES, MAX_TASKS, MEASURES
    from multitask.cli import _columns, _doc, _model_names, add_data_arguments

    c: argparse.ArgumentParser = subparsers.add_parser(
        "affinity", help="task affinity: gradient cosines and TAG lookahead while a deep model trains, pairwise "
                         "transfer gain, a linear model's task correlation (mtrl) or clusters (clustered)")
    c.add_argument("--measure", type=_columns, default=list(DEEP_MEASURES), metavar="MEASURE,...",
                   help=f"comma-separated, of: {', '.join(MEASURES)} (default: {','.join(DEEP_MEASURES)})")
    c.add_argument("--every", type=int, default=10, metavar="K", help="measure every K training steps (default 10)")
    c.add_argument("--lookahead-lr", type=float, metavar="LR",
                   help="the lookahead's SGD step size (default: the training --lr)")
    c.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="transfer: trainings run in N processes at once (-1: one per CPU; default 1)")
    c.add_argument("--max-tasks", type=int, default=MAX_TASKS, metavar="T",
                   help=f"transfer: refuse more than T tasks, T (T + 1) / 2 trainings (default {MAX_TASKS})")
    add_data_arguments(c.add_argument_group("data"))
    m = c.add_argument_group("model (deep for gradient and lookahead; any for transfer; for mtrl and clustered, "
                             "--model linear:mtrl or linear:clustered gives their --model-option)")
    m.add_argument("--model", metavar="MODEL", help=f"one of: {', '.join(_model_names())}")
    m.add_argument("--model-option", action="append", metavar="KEY=VALUE", help=_doc("model_options"))
    o = c.add_argument_group("training")
    for flag, name, kind in (("--epochs", "epochs", int), ("--batch-size", "batch_size", int), ("--lr", "lr", float),
                             ("--seed", "seed", int)):
        o.add_argument(flag, type=kind, help=_doc(name, train=True))
    r = c.add_argument_group("run")
    r.add_argument("--config", help="YAML file with the data, model and training options (flags override it)")
    r.add_argument("--out", required=True, help="folder for affinity_MEASURE.csv and affinity_MEASURE.png "
                                                "(and clusters.json)")
    return c


def run_affinity(a: argparse.Namespace, console: Any) -> int:
    """Run ``multitask affinity``: write each measure's CSV and heatmap, print each matrix."""
    from multitask.affinity import (
        DEEP_MEASURES,
        LINEAR_MEASURES,
        MEASURES,
        affinity,
        linear_affinity,
        plot_heatmap,
        transfer_gain,
        write_csv,
    )
    from multitask.affinity._measures import check_single_process
    from multitask.cli import _key_values, data_overrides
    from multitask.config import load_config

    measures = list(dict.fromkeys(a.measure))
    unknown = [m for m in measures if m not in MEASURES]
    if unknown or not measures:
        raise ConfigError(f"--measure {','.join(a.measure)}: each must be one of {', '.join(MEASURES)}")
    if a.every < 1:
        raise ConfigError(f"--every {a.every}: must be at least 1")
    if a.jobs == 0 or a.jobs < -1:
        raise ConfigError(f"--jobs {a.jobs}: must be a positive number of processes, or -1 for one per CPU")
    if a.max_tasks < 2:
        raise ConfigError(f"--max-tasks {a.max_tasks}: must be at least 2")
    check_single_process("multitask affinity")
    out = Path(a.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")
    overrides: dict[str, Any] = {
        **data_overrides(a), "model": a.model,
        "train": {"epochs": a.epochs, "batch_size": a.batch_size, "lr": a.lr, "seed": a.seed, "progress": False},
    }
    if a.model_option:
        overrides["model_options"] = _key_values(a.model_option, "--model-option")
    cfg = load_config(a.config, overrides)
    deep = [m for m in measures if m in DEEP_MEASURES]
    notes: list[str] = []

    def emit(measure: str, tasks: list[str], matrix: Any, title: str) -> None:
        """Write and print one measure's matrix as soon as it is known (a later failure keeps it)."""
        out.mkdir(parents=True, exist_ok=True)
        csv, png = (out / name for name in _outputs(measure))
        write_csv(matrix, tasks, csv)
        order = plot_heatmap(matrix, tasks, png, title)
        print_matrix(matrix, tasks, order, f"{title} (row i: {_row(measure)}; column j: affected task)", console)
        console.print(f"{measure}: {csv}, {png}", markup=False)

    if deep:  # one training gives both
        result = affinity(cfg, deep, every=a.every, lr=a.lookahead_lr)
        for measure in deep:
            emit(measure, result.tasks, result.matrices[measure], f"{measure} affinity ({result.steps} steps)")
        notes.append(f"{result.steps} steps measured; measuring took {result.measure_seconds:.2g} s of "
                     f"{result.seconds:.2g} s ({100 * result.overhead:.0f}% on top of training)")
    for measure in (m for m in measures if m in LINEAR_MEASURES):
        linear = linear_affinity(cfg, measure)
        emit(measure, linear.tasks, linear.matrix, f"{measure} affinity ({linear.model})")
        notes.append(f"{measure}: {linear.model} fitted in {linear.seconds:.2g} s")
        if linear.clusters is not None:
            path = out / CLUSTERS_FILE
            write_text(path, strict_json({"model": linear.model, "options": linear.options,
                                          "clusters": dict(zip(linear.tasks, linear.clusters, strict=True)),
                                          "groups": linear.groups()}) + "\n")
            for k, group in enumerate(linear.groups()):
                console.print(f"cluster {k}: {', '.join(group)}", markup=False)
            console.print(f"clustered: {path}", markup=False)
    if "transfer" in measures:
        gain = transfer_gain(cfg, n_jobs=a.jobs, max_tasks=a.max_tasks)
        emit("transfer", gain.tasks, gain.matrix, f"transfer gain ({cfg.model})")
        notes.append(f"transfer: {gain.runs} trainings of {cfg.model} in {gain.seconds:.2g} s on {gain.n_jobs} "
                     f"process(es); one single-task training took {gain.single_seconds:.2g} s on average")
    for note in notes:
        console.print(note, markup=False)
    return 0


def _row(measure: str) -> str:
    return {"gradient": "task whose gradient moves", "lookahead": "task whose gradient moves",
            "transfer": "task trained alongside"}.get(measure, "task")


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
