"""Every model, and ``--model auto``, on the same splits of School, SARCOS and census-income.

    python -m benchmarks.compare school [--splits 1-10] [--models linear:trace-norm,gbdt:multitask,auto]
    python -m benchmarks.compare sarcos [--splits 1-10] [--search 20]
    python -m benchmarks.compare census [--splits 3]

School and SARCOS: their 10 fixed splits (School 75/25 within each school; SARCOS 684/217 rows per joint);
each model holds out 20% of a split's training part for early stopping and selection and is scored on the
split's test part. Census-income (99,762 rows of the UCI "test" partition): 3 random splits, one per seed,
each holding out 20% of every task's rows as its test part. Every model of ``multitask list`` (but the
ensemble, which ``auto`` builds) with its defaults, plus ``auto``; the STL and pooled references are added
by :func:`multitask.compare.compare`. Data are read from ``--data-dir`` (default ``$MULTITASK_DATA``, else
``../shared/data``); ``leaderboard.csv``, ``results.csv`` and ``leaderboard.png`` go to
``benchmarks/results/compare_NAME/``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from multitask import models
from multitask._cli_compare import print_leaderboard
from multitask.compare import Splits, compare, split_ids
from multitask.config import AUTO, RunConfig

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MULTITASK_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "benchmarks" / "results"

#: per data set: the built-in data set, its options, its splits and the deep models' training options
SETTINGS: dict[str, dict[str, Any]] = {
    "school": {
        "dataset": "school", "splits": "1-10",
        "train": {"epochs": 100, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4, "optimizer": "adamw",
                  "patience": 10},
    },
    "sarcos": {
        "dataset": "sarcos", "splits": "1-10",
        "train": {"epochs": 100, "batch_size": 64, "lr": 1e-3, "patience": 10},
    },
    "census": {
        "dataset": "census-income", "splits": "3",
        "train": {"epochs": 10, "batch_size": 512, "lr": 1e-3, "patience": 3},
    },
}


def default_models() -> list[str]:
    """Every model a user can name (but ensembles, which auto builds), then auto."""
    return [n for n in models.names() if models.family_name(n) != "ensemble"] + [AUTO]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=list(SETTINGS))
    parser.add_argument("--models", help="comma-separated model names (default: every model, then auto)")
    parser.add_argument("--splits", help="split numbers (school, sarcos: 1-10) or a number of random splits (census: 3)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per split (default 1)")
    parser.add_argument("--search", type=int, help="Optuna trials per model and split (default: none, defaults)")
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, help="default benchmarks/results/compare_NAME")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every fit and selection trial")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if args.verbose:
        for name in ("multitask.compare", "multitask.selection"):
            logging.getLogger(name).setLevel(logging.INFO)

    settings = SETTINGS[args.which]
    base = RunConfig(dataset=settings["dataset"], data_dir=str(args.data_dir),
                     train={**settings["train"], "threads": 1, "progress": False})
    text = args.splits or settings["splits"]
    splits: Splits = split_ids(text) if args.which != "census" else int(text)
    names = [m.strip() for m in args.models.split(",")] if args.models else default_models()
    out = args.out or RESULTS / f"compare_{args.which}"
    start = time.perf_counter()
    board = compare(names, base, splits, args.seeds, out, search=args.search)
    console = Console(width=160)
    print_leaderboard(board, console)
    console.print(f"{args.which}: {len(names)} models, splits {text}, {args.seeds} seed(s): "
                  f"{time.perf_counter() - start:.0f} s; files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
