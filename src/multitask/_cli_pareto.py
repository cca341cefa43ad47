"""``multitask pareto``: the front of task trade-offs (see :mod:`multitask.pareto`).

    multitask pareto --dataset census --out fronts/census --points 11 --fixed 5
    multitask pareto --data scores.csv --task math:regression --task reading:regression --out fronts/s

Writes ``OUT/front.csv`` (every evaluated point), ``OUT/pareto.json`` (hypervolumes, reference point,
training seconds), ``OUT/pareto.png`` (two or three tasks), the conditioned model in ``OUT/conditioned/`` and
the fixed-weight models in ``OUT/fixed/``.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``pareto`` to the command line's subcommands."""
    from multitask.cli import _doc, _model_names, add_data_arguments

    c: argparse.ArgumentParser = subparsers.add_parser(
        "pareto", help="the front of task trade-offs: one preference-conditioned model against fixed weightings")
    c.add_argument("--points", type=int, default=11, metavar="N",
                   help="preference vectors at which the conditioned model is evaluated (default 11)")
    c.add_argument("--fixed", type=int, default=5, metavar="N",
                   help="fixed-weight models trained for comparison (default 5; 0: none)")
    c.add_argument("--alpha", type=float, default=1.0, help="Dirichlet concentration of the training preferences")
    c.add_argument("--cosine-weight", type=float, default=0.0,
                   help="COSMOS's weight of its cosine term (default 0: conditioned linear scalarization)")
    add_data_arguments(c.add_argument_group("data"))
    m = c.add_argument_group("model (deep)")
    m.add_argument("--model", metavar="MODEL", help=f"one of: {', '.join(_model_names())}")
    m.add_argument("--model-option", action="append", metavar="KEY=VALUE", help=_doc("model_options"))
    o = c.add_argument_group("training")
    for flag, name, kind in (("--epochs", "epochs", int), ("--batch-size", "batch_size", int), ("--lr", "lr", float),
                             ("--patience", "patience", int), ("--seed", "seed", int)):
        o.add_argument(flag, type=kind, help=_doc(name, train=True))
    r = c.add_argument_group("run")
    r.add_argument("--config", help="YAML file with the data, model and training options (flags override it)")
    r.add_argument("--out", required=True, help="folder for the front (new or empty)")
    r.add_argument("--overwrite", action="store_true", help="replace a front already in --out")
    return c


def run(a: argparse.Namespace, console: Any) -> int:
    """Train, evaluate and print the hypervolume of each front."""
    from rich.table import Table

    from multitask.cli import _key_values, data_overrides
    from multitask.config import load_config
    from multitask.pareto import pareto

    overrides: dict[str, Any] = {
        **data_overrides(a), "model": a.model,
        "train": {"epochs": a.epochs, "batch_size": a.batch_size, "lr": a.lr, "patience": a.patience,
                  "seed": a.seed, "progress": False},
    }
    if a.model_option:
        overrides["model_options"] = _key_values(a.model_option, "--model-option")
    cfg = load_config(a.config, overrides)
    result = pareto(cfg, a.out, points=a.points, fixed=a.fixed, alpha=a.alpha, cosine_weight=a.cosine_weight,
                    overwrite=a.overwrite)
    table = Table(title=f"fronts over {len(result.tasks)} tasks (validation losses; reference "
                        f"{', '.join(f'{v:.3g}' for v in result.reference)})")
    for column in ("method", "points", "on the front", "hypervolume", "training s"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for method, volume in result.hypervolume.items():
        part = result.points[result.points["method"] == method]
        table.add_row(method, str(len(part)), str(int(part["front"].sum())), f"{volume:.4g}",
                      f"{result.seconds[method]:.1f}")
    console.print(table)
    console.print(f"front written to {result.out}", markup=False)
    return 0
