"""``multitask select``: the subset of the other tasks that helps one target task most.

    multitask select --dataset synthetic --target a1 --subsets 6 --out sel
    multitask select --data scores.csv --task math:regression --task reading:regression --task art:binary \\
        --target math --affinity aff/affinity_lookahead.csv --model linear:low-rank

Scores each other task by its affinity to the target (measured on the training part, or read from
``--affinity``), samples subsets with ``P(S) ∝ exp(Σ_{t∈S} s_t)``, trains the target with each distinct
subset and with none, and prints them best first with the gain over the target alone. With ``--out`` writes
``select.json`` (the whole record), ``select.csv`` (one row per evaluated subset) and, when measured, the
affinity matrix as ``affinity_MEASURE.csv``. See :mod:`multitask.affinity` and docs/affinity.md.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from multitask.errors import ConfigError

#: the files ``--out`` receives
OUTPUTS = ("select.json", "select.csv")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``select`` to the command line's subcommands."""
    from multitask.affinity import MEASURES
    from multitask.cli import _doc, _model_names, add_data_arguments

    c: argparse.ArgumentParser = subparsers.add_parser(
        "select", help="choose auxiliary tasks for one target task (sampled by affinity, scored by training)",
        conflict_handler="resolve")  # --target names the task here; the long form's target column is --target-column
    add_data_arguments(c.add_argument_group("data"))
    c.add_argument("--target", required=True, metavar="TASK", help="the task to improve")
    c.add_argument("--target-column", help=_doc("target"))
    c.add_argument("--subsets", type=int, default=8, metavar="N",
                   help="distinct subsets of the other tasks to evaluate besides the target alone (default 8)")
    c.add_argument("--measure", default="lookahead", choices=MEASURES,
                   help="the affinity measured on the training part (default lookahead)")
    c.add_argument("--affinity", type=Path, metavar="CSV",
                   help="read the affinity matrix (as `multitask affinity` writes it) instead of measuring it")
    c.add_argument("--scale", type=float, default=2.0, metavar="S",
                   help="s_t = S * affinity / largest |affinity|; 0 samples uniformly (default 2)")
    c.add_argument("--every", type=int, default=10, metavar="K", help="measure the affinity every K steps (default 10)")
    m = c.add_argument_group("model (any family)")
    m.add_argument("--model", metavar="MODEL", help=f"one of: {', '.join(_model_names())}")
    m.add_argument("--model-option", action="append", metavar="KEY=VALUE", help=_doc("model_options"))
    o = c.add_argument_group("training")
    for flag, name, kind in (("--epochs", "epochs", int), ("--batch-size", "batch_size", int), ("--lr", "lr", float),
                             ("--seed", "seed", int)):
        o.add_argument(flag, type=kind, help=_doc(name, train=True))
    r = c.add_argument_group("run")
    r.add_argument("--config", help="YAML file with the data, model and training options (flags override it)")
    r.add_argument("--out", type=Path, help="folder for select.json, select.csv (and the measured affinity)")
    r.add_argument("--overwrite", action="store_true", help="replace a selection already in --out")
    return c


def run(a: argparse.Namespace, console: Any) -> int:
    """Run ``multitask select``: print the evaluated subsets best first; write the record with ``--out``."""
    from multitask._cli_group import read_affinity
    from multitask.affinity import select_auxiliary
    from multitask.cli import _key_values, data_overrides
    from multitask.config import load_config

    out: Path | None = a.out
    if out is not None:
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out}: is a file, not a folder")
        taken = [name for name in OUTPUTS if (out / name).exists()]
        if taken and not a.overwrite:
            raise ConfigError(f"--out {out}: holds a selection already ({taken[0]}); choose another folder or "
                              "give --overwrite")
    train: dict[str, Any] = {"epochs": a.epochs, "batch_size": a.batch_size, "lr": a.lr, "seed": a.seed,
                             "progress": False}
    overrides: dict[str, Any] = {**data_overrides(a, target="target_column"), "model": a.model, "train": train}
    if a.model_option:
        overrides["model_options"] = _key_values(a.model_option, "--model-option")
    cfg = load_config(a.config, overrides)
    if cfg.model == "auto":
        raise ConfigError("--model auto: select trains one model per subset; name the model")
    matrix = read_affinity(a.affinity) if a.affinity is not None else None
    selection = select_auxiliary(cfg, a.target, subsets=a.subsets, measure=a.measure, affinity=matrix,
                                 scale=a.scale, every=a.every)
    print_selection(selection, console)
    if out is not None:
        write_selection(selection, out)
        if a.affinity is None and selection.matrix is not None:
            from multitask.affinity import write_csv

            write_csv(selection.matrix[1], selection.matrix[0], out / f"affinity_{a.measure}.csv")
        console.print(f"record written to {out / OUTPUTS[0]} and {out / OUTPUTS[1]}", markup=False)
    return 0


def write_selection(selection: Any, out: Path) -> None:
    """``select.json`` (everything) and ``select.csv`` (one row per evaluated subset), each written atomically."""
    import pandas as pd

    from multitask._rundir import atomic_replace, strict_json, write_text

    out.mkdir(parents=True, exist_ok=True)
    write_text(out / OUTPUTS[0], strict_json(selection.to_json()) + "\n")
    rows = [{"subset": " ".join(r.subset), "size": len(r.subset), "probability": r.probability, "draws": r.draws,
             selection.metric: r.value, "gain": r.gain, "seconds": r.seconds} for r in selection.records]
    frame = pd.DataFrame(rows)
    atomic_replace(out / OUTPUTS[1], lambda tmp: frame.to_csv(tmp, index=False))


def print_selection(selection: Any, console: Any) -> None:
    """The relatedness of each other task, then the evaluated subsets best first, then the best one's gain."""
    from rich.markup import escape
    from rich.table import Table

    def fmt(v: float | None) -> str:
        return "—" if v is None or not math.isfinite(v) else f"{v:.4g}"

    scores = Table(title=f"relatedness to {escape(selection.target)} ({escape(selection.measure)})")
    for column in ("task", "s_t", "p_t"):
        scores.add_column(column, justify="left" if column == "task" else "right")
    for t, s in sorted(selection.scores.items(), key=lambda kv: -kv[1]):
        scores.add_row(escape(t), fmt(s), fmt(selection.probabilities[t]))
    console.print(scores)
    arrow = "↑" if selection.higher_is_better else "↓"
    table = Table(title=f"{escape(selection.target)} trained with each subset (validation {selection.metric} {arrow})")
    for column in ("auxiliary tasks", "P(S)", "draws", selection.metric, "gain", "seconds"):
        table.add_column(column, justify="left" if column == "auxiliary tasks" else "right")
    sign = 1.0 if selection.higher_is_better else -1.0
    ranked = sorted(selection.records, key=lambda r: -(sign * r.value) if r.value is not None else math.inf)
    for r in ranked:
        table.add_row(escape(", ".join(r.subset) or "(target alone)"), f"{r.probability:.3g}", str(r.draws),
                      fmt(r.value), fmt(r.gain), f"{r.seconds:.2f}")
    console.print(table)
    best = selection.best
    if best.subset:
        gain = selection.relative_gain
        console.print(f"best: {selection.target} + {', '.join(best.subset)}: {selection.metric} {fmt(best.value)} "
                      f"vs {fmt(selection.alone.value)} alone (gain {fmt(best.gain)}"
                      + (f", {gain:+.2f} %)" if gain is not None else ")"), markup=False)
    else:
        console.print(f"best: {selection.target} alone ({selection.metric} {fmt(best.value)}): no evaluated subset "
                      "of the other tasks helps it", markup=False)
