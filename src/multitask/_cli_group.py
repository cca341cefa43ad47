"""``multitask group``: the partition of the tasks into groups that maximizes within-group affinity, and
whether training by those groups pays.

    multitask group --affinity runs/aff/affinity_lookahead.csv
    multitask group --affinity runs/aff/affinity_gradient.csv --groups 2 --output groups.json
    multitask group --dataset synthetic --epochs 5 --measure lookahead --output leaderboard.json
    multitask group --data scores.csv --task math:regression --task art:regression --affinity aff.csv

With ``--affinity`` alone, reads a T × T affinity matrix (a CSV as ``multitask affinity`` writes it: task names
as the header and the first column, ``A[i, j]`` how much task ``i`` helps task ``j``), chooses the groups by
:func:`multitask.affinity.best_partition` (exact up to 12 tasks, beam search beyond; see docs/affinity.md),
prints them, and writes them as JSON with ``--output``.

With data options, also fits the all-in-one, grouped and single-task models of ``--model`` on one split
(:func:`multitask.grouping.compare_groups`), the groups from ``--affinity`` or, without it, measured on the
training rows (``--measure``), and prints the per-task table with delta_m; ``--output`` writes it as JSON (the
groups too, so that ``multitask train --groups`` reads the file) or as CSV (one row per model and task).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from multitask.errors import ConfigError, DataError

#: the data options: any of them given makes ``group`` fit and compare models
_DATA_OPTIONS = ("data", "dataset", "config", "task", "task_column")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``group`` to the command line's subcommands."""
    from multitask.affinity import MEASURES
    from multitask.cli import _doc, _model_names, add_data_arguments

    g: argparse.ArgumentParser = subparsers.add_parser(
        "group", help="choose groups of tasks to train together (from an affinity matrix, or measured on data) "
                      "and compare them with all-in-one and single-task models")
    g.add_argument("--affinity", type=Path, metavar="CSV",
                   help="a T x T affinity matrix: task names as header and first column")
    g.add_argument("--groups", type=int, metavar="K", help="exactly K groups (default: the best number)")
    g.add_argument("--beam-width", type=int, default=16, metavar="W",
                   help="beam width of the search above 12 tasks (default 16)")
    g.add_argument("--output", type=Path, metavar="FILE",
                   help="write the groups (JSON); with data options the comparison too: FILE.json or FILE.csv")
    c = g.add_argument_group("comparing on data (all-in-one, grouped and single-task models on one split)")
    c.add_argument("--measure", choices=MEASURES, default="lookahead",
                   help="without --affinity: the affinity measured on the training rows (default lookahead)")
    c.add_argument("--every", type=int, default=10, metavar="K", help="measure every K training steps (default 10)")
    add_data_arguments(c)
    c.add_argument("--model", metavar="MODEL", help=f"the model of every group: one of {', '.join(_model_names()[:-1])}")
    c.add_argument("--model-option", action="append", metavar="KEY=VALUE", help=_doc("model_options"))
    for flag, name, kind in (("--epochs", "epochs", int), ("--batch-size", "batch_size", int), ("--lr", "lr", float),
                             ("--patience", "patience", int), ("--seed", "seed", int), ("--threads", "threads", int)):
        c.add_argument(flag, type=kind, help=_doc(name, train=True))
    c.add_argument("--config", help="YAML file with the data, model and training options (flags override it)")
    return g


def read_affinity(path: Path) -> tuple[list[str], np.ndarray]:
    """Task names and the matrix of an affinity CSV; DataError naming the file when it is not one."""
    import pandas as pd

    from multitask.affinity import read_csv

    try:
        frame = read_csv(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise DataError(f"{path}: not an affinity matrix CSV ({str(e).splitlines()[0]})") from None
    rows = [str(r) for r in frame.index]
    columns = [str(c) for c in frame.columns]
    if rows != columns:
        raise DataError(f"{path}: the header {columns[:5]} and the first column {rows[:5]} must name the same tasks")
    try:
        matrix = frame.to_numpy(dtype=float)
    except ValueError as e:
        raise DataError(f"{path}: a value is not a number ({e})") from None
    return rows, matrix


def _partition(args: argparse.Namespace) -> tuple[list[str], list[list[str]], Any]:
    from multitask.affinity import best_partition, partition_names

    tasks, matrix = read_affinity(args.affinity)
    try:
        partition = best_partition(matrix, args.groups, beam_width=args.beam_width)
    except ValueError as e:
        raise ConfigError(f"{args.affinity}: {e}") from None
    return tasks, partition_names(partition, tasks), partition


def run(args: argparse.Namespace, console: Any) -> int:
    """Choose and print the groups (and with data options, compare them); 0 on success (errors raise, and
    the CLI exits 2)."""
    from rich.table import Table

    if any(getattr(args, k) for k in _DATA_OPTIONS):
        return _compare(args, console)
    if args.affinity is None:
        raise ConfigError("group: give --affinity CSV (a matrix from multitask affinity), or data options "
                          "(--data/--dataset/--config) to measure affinity and compare the groups")
    if args.output is not None and args.output.suffix.lower() != ".json":
        raise ConfigError(f"--output {args.output}: the groups are written as JSON; give a .json file")
    tasks, groups, partition = _partition(args)
    table = Table(title=f"{len(groups)} group(s) of {len(tasks)} tasks, score {partition.score:.4g} "
                        f"({partition.method} search)")
    table.add_column("group")
    table.add_column("tasks")
    for i, names in enumerate(groups, 1):
        table.add_row(str(i), ", ".join(names))
    console.print(table)
    if args.output is not None:
        payload = {"groups": groups, "score": partition.score if math.isfinite(partition.score) else None,
                   "method": partition.method, "affinity": str(args.affinity)}
        _write(args.output, json.dumps(payload, indent=2, allow_nan=False) + "\n")
    return 0


def _write(path: Path, text: str) -> None:
    from multitask._rundir import write_text

    if path.is_dir():
        raise ConfigError(f"--output {path}: is a folder; give a file name")
    if not path.parent.exists():
        raise ConfigError(f"--output {path}: folder {path.parent} does not exist")
    write_text(path, text)


def _compare(args: argparse.Namespace, console: Any) -> int:
    """Fit the all-in-one, grouped and single-task models and print the per-task table and delta_m."""
    from multitask._rundir import atomic_replace, strict_json
    from multitask.cli import _key_values, data_overrides
    from multitask.config import load_config
    from multitask.grouping import compare_groups

    if args.output is not None and args.output.suffix.lower() not in (".json", ".csv"):
        raise ConfigError(f"--output {args.output}: give a .json file (groups and comparison) or a .csv file "
                          "(one row per model and task)")
    if args.every < 1:
        raise ConfigError(f"--every {args.every}: must be at least 1")
    overrides: dict[str, Any] = {
        **data_overrides(args), "model": args.model,
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "patience": args.patience,
                  "seed": args.seed, "threads": args.threads, "progress": False},
    }
    if args.model_option:
        overrides["model_options"] = _key_values(args.model_option, "--model-option")
    if args.affinity is None:
        overrides["groups"] = "auto"
        overrides["group_options"] = {"measure": args.measure, "every": args.every, "k": args.groups,
                                      "beam_width": args.beam_width}
    cfg = load_config(args.config, overrides)
    groups: Any = "auto"
    if args.affinity is not None:
        groups = _partition(args)[1]
    result = compare_groups(cfg, groups, source=f"--affinity {args.affinity}")
    if args.affinity is not None:
        result.chosen = {"affinity_file": str(args.affinity), **result.chosen}
    print_comparison(result, console)
    if args.output is not None:
        if args.output.suffix.lower() == ".json":
            _write(args.output, strict_json(result.to_json()) + "\n")
        else:
            _write(args.output, "")  # checks the path before the atomic replace
            atomic_replace(args.output, lambda tmp: result.results.to_csv(tmp, index=False))
        console.print(f"written to {args.output}", markup=False)
    return 0


def print_comparison(result: Any, console: Any) -> None:
    """The groups, the per-task table (each model's deciding metric) and delta_m of each model."""
    from rich.markup import escape
    from rich.table import Table

    from multitask.grouping import ALL_IN_ONE, GROUPED, SINGLE_TASK

    def fmt(v: float | None) -> str:
        return "—" if v is None or not math.isfinite(v) else f"{v:.4g}"

    how = (f"from {result.chosen['affinity_file']}" if "affinity_file" in result.chosen else
           f"{result.chosen.get('measure', '')} affinity on the training rows")
    console.print(f"{len(result.groups)} groups ({how}): "
                  + " | ".join(", ".join(g) for g in result.groups), markup=False)
    table = Table(title=f"{escape(result.model)}: single-task, all-in-one and grouped ({result.evaluated_on} part)")
    for column in ("task", "group", "metric", SINGLE_TASK, ALL_IN_ONE, GROUPED, "best"):
        table.add_column(column, justify="right" if column in ("group", SINGLE_TASK, ALL_IN_ONE, GROUPED) else "left")
    for row in result.task_rows()[:40]:
        values = {m: row[m] for m in (SINGLE_TASK, ALL_IN_ONE, GROUPED)}
        defined = {m: v for m, v in values.items() if v is not None and math.isfinite(v)}
        top = (max if row["higher_is_better"] else min)(defined.values()) if defined else None
        best = " = ".join(m for m, v in defined.items() if v == top) if top is not None else "—"
        table.add_row(escape(row["task"]), str(row["group"]), f"{row['metric']} ({'↑' if row['higher_is_better'] else '↓'})",
                      *(fmt(values[m]) for m in (SINGLE_TASK, ALL_IN_ONE, GROUPED)), best)
    console.print(table)
    if len(result.tasks) > 40:
        console.print(f"… {len(result.tasks) - 40} more tasks (--output writes them all)")
    for (model, reference), value in result.delta_m.items():
        console.print(f"delta_m of {model} vs {reference} = {fmt(value)} %", markup=False)
    seconds = ", ".join(f"{m} {s:.1f} s" for m, s in result.seconds.items())
    console.print(f"fit time: {seconds}", markup=False)
