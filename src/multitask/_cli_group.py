"""``multitask group``: the partition of the tasks into groups that maximizes within-group affinity.

    multitask group --affinity runs/aff/affinity_lookahead.csv
    multitask group --affinity runs/aff/affinity_gradient.csv --groups 2 --output groups.json

Reads a T × T affinity matrix (a CSV as ``multitask affinity`` writes it: task names as the header and the
first column, ``A[i, j]`` how much task ``i`` helps task ``j``), chooses the groups by
:func:`multitask.affinity.best_partition` (exact up to 12 tasks, beam search beyond; see docs/affinity.md),
prints them, and writes them as JSON with ``--output``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from multitask.errors import ConfigError, DataError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``group`` to the command line's subcommands."""
    g: argparse.ArgumentParser = subparsers.add_parser(
        "group", help="choose groups of tasks to train together from an affinity matrix (multitask affinity)"
    )
    g.add_argument("--affinity", required=True, type=Path, metavar="CSV",
                   help="a T x T affinity matrix: task names as header and first column")
    g.add_argument("--groups", type=int, metavar="K", help="exactly K groups (default: the best number)")
    g.add_argument("--beam-width", type=int, default=16, metavar="W",
                   help="beam width of the search above 12 tasks (default 16)")
    g.add_argument("--output", type=Path, metavar="JSON", help="write the groups, their score and method here")
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


def run(args: argparse.Namespace, console: Any) -> int:
    """Choose and print the groups; 0 on success (errors raise, and the CLI exits 2)."""
    from rich.table import Table

    from multitask.affinity import best_partition, partition_names

    tasks, matrix = read_affinity(args.affinity)
    try:
        partition = best_partition(matrix, args.groups, beam_width=args.beam_width)
    except ValueError as e:
        raise ConfigError(f"{args.affinity}: {e}") from None
    groups = partition_names(partition, tasks)
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
        args.output.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    return 0
