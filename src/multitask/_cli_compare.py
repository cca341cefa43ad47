"""``multitask compare``: several models on the same splits, with the STL and pooled references.

    multitask compare --dataset school --splits 1-10 --models linear:trace-norm,gbdt:multitask,auto --out cmp
    multitask compare --data scores.csv --task math:regression --splits 5 --models hard-sharing,linear:l21 --out cmp

The leaderboard is printed and written to ``OUT/leaderboard.csv``, with ``OUT/results.csv`` and
``OUT/leaderboard.png`` (see :mod:`multitask.compare`).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from multitask.errors import ConfigError

#: what ``compare`` writes into ``--out``; a folder holding anything else is refused
OUTPUTS = ("leaderboard.csv", "results.csv", "leaderboard.png", "selection")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``compare`` to the command line's subcommands."""
    from multitask.cli import _columns, _doc, add_data_arguments
    from multitask.config import AUTO
    from multitask.models import names

    c: argparse.ArgumentParser = subparsers.add_parser(
        "compare", help="several models on the same splits, with delta_m against STL and pooled references")
    choices = [*names(), AUTO]
    c.add_argument("--models", required=True, type=_columns, metavar="MODEL,MODEL,...",
                   help=f"comma-separated, each one of: {', '.join(choices)}; with options as "
                        "NAME[key=value;key=value], e.g. hard-sharing[head=shared;head_penalty=0.01]")
    c.add_argument("--splits", metavar="SPLITS",
                   help="a built-in data set's fixed splits (school, sarcos), e.g. 1-10 or 1,3,5; for other data, "
                        "a number of random splits stratified by task; default: the data's own test part "
                        "(--test-data), else one random split")
    c.add_argument("--seeds", type=int, default=1, metavar="K", help="repeat each split with K seeds (default 1)")
    c.add_argument("--search", type=int, metavar="N", help="tune each model with N trials on each split")
    c.add_argument("--no-references", action="store_true",
                   help="do not add the STL and pooled references (no delta_m)")
    add_data_arguments(c.add_argument_group("data"))
    o = c.add_argument_group("training (deep models)")
    for flag, name, kind in (("--epochs", "epochs", int), ("--batch-size", "batch_size", int), ("--lr", "lr", float),
                             ("--patience", "patience", int), ("--seed", "seed", int), ("--threads", "threads", int)):
        o.add_argument(flag, type=kind, help=_doc(name, train=True))
    r = c.add_argument_group("run")
    r.add_argument("--config", help="YAML file with the data and training options (flags override it)")
    r.add_argument("--out", required=True, help="folder for leaderboard.csv, results.csv and leaderboard.png")
    return c


def _splits(a: argparse.Namespace, dataset: str | None) -> Any:
    from multitask.compare import has_fixed_splits, split_ids

    if a.splits is None:
        return None
    if has_fixed_splits(dataset):
        return split_ids(a.splits)
    try:
        return int(a.splits)
    except ValueError:
        raise ConfigError(f"--splits {a.splits!r}: give a number of random splits (split numbers such as 1-10 "
                          "name a built-in data set's fixed splits)") from None


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")
    other = sorted(p.name for p in out.iterdir() if p.name not in OUTPUTS) if out.is_dir() else []
    if other:
        raise ConfigError(f"--out {out}: the folder has other files in it ({other[0]}, ...); give a new or empty "
                          "folder, or one that a previous compare wrote")


def run(a: argparse.Namespace, console: Any) -> int:
    """Run ``multitask compare`` and print its leaderboard."""
    from multitask.cli import data_overrides
    from multitask.compare import compare
    from multitask.config import load_config

    overrides: dict[str, Any] = {
        **data_overrides(a),
        "train": {"epochs": a.epochs, "batch_size": a.batch_size, "lr": a.lr, "patience": a.patience,
                  "seed": a.seed, "threads": a.threads, "progress": False},
    }
    base = load_config(a.config, overrides)
    out = Path(a.out)
    _check_out(out)
    board = compare(a.models, base, _splits(a, base.dataset), a.seeds, out, search=a.search,
                    references=not a.no_references)
    print_leaderboard(board, console)
    for what, path in board.files.items():
        console.print(f"{what}: {path}")
    return 0


def _fmt(mean: float | None, sd: float | None = None) -> str:
    if mean is None or not math.isfinite(mean):
        return "—"
    return f"{mean:.4g}" if sd is None else f"{mean:.4g} ± {sd:.2g}"


def print_leaderboard(board: Any, console: Any) -> None:
    """The leaderboard as a table: each deciding metric, delta_m vs STL and pooled, won/lost, seconds."""
    from rich.markup import escape
    from rich.table import Table

    from multitask.registry import METRICS

    table = Table(title="models on the same splits (mean ± sd over splits x seeds)")
    table.add_column("model")
    for m in board.metrics:
        table.add_column(f"{m} ({'↑' if METRICS.get(m).higher_is_better else '↓'})", justify="right")
    table.add_column("Δm vs STL %", justify="right")
    table.add_column("Δm vs pooled %", justify="right")
    table.add_column("won/lost vs STL", justify="right")
    table.add_column("fit s", justify="right")
    for r in board.rows:
        name = escape(r["model"] + {"stl": " (STL)", "pooled": " (pooled)"}.get(r["role"], ""))
        if r["status"] != "ok":
            table.add_row(name, *[""] * len(board.metrics), "", "", "", escape(r["status"]))
            continue
        won = "—" if r["won"] is None else f"{r['won']}/{r['lost']}"
        table.add_row(name, *[_fmt(r[f"{m}_mean"], r[f"{m}_sd"]) for m in board.metrics],
                      _fmt(r["delta_m_stl_mean"], r["delta_m_stl_sd"]),
                      _fmt(r["delta_m_pooled_mean"], r["delta_m_pooled_sd"]), won, f"{r['fit_seconds']:.1f}")
    console.print(table)
    console.print(f"STL: {board.stl or 'none applies'}; pooled: {board.pooled or 'none applies'}")
