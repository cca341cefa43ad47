"""Auxiliary tasks for one target on SARCOS: ``select``'s best subset, the target alone, all tasks, ``--primary``.

    python -m benchmarks.auxiliary                                  # target torque_1, split 1, seeds 0
    python -m benchmarks.auxiliary --target torque_3 --seeds 0,1,2 --subsets 6 --epochs 30

For each seed, on SARCOS's fixed split (Zhang & Li's, about 550 training + 140 validation rows per joint after
the 20 % validation hold-out, 217 test rows per joint; each joint's rows are its own, long form), a
``hard-sharing`` network (hidden 128-64, batch 128, Adam 1e-3, early stopping on the target's validation loss
with patience 10) is trained through the library's own verbs:

1. ``select``: :func:`multitask.affinity.select_auxiliary` measures the lookahead affinity on the training part,
   samples ``--subsets`` subsets of the other six joints with ``P(S) ∝ exp(Σ s_t)`` and scores each (and the
   target alone) on the validation part;
2. on the test part, the target's RMSE when trained
   * alone, and alone for ``T`` (7) times the epochs (an epoch is one pass over the labelled rows, so alone the
     target takes a seventh of the all-task run's optimizer steps per epoch),
   * with ``select``'s best subset (equal weights),
   * with all tasks, equal weights (``--primary TARGET --balancer static``: early stopping on the target),
   * with all tasks and ``--primary TARGET`` (auto-lambda).

Each line's time is wall seconds on whatever machine runs it. Results: printed as a Markdown table and written
to ``benchmarks/results/auxiliary/sarcos_TARGET.json``. The data are read from ``$MULTITASK_DATA`` (or
``--data-dir``), never downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from multitask import models
from multitask.affinity import select_auxiliary
from multitask.config import RunConfig
from multitask.registry import DATASETS
from multitask.runs import Prepared, fit_and_score, prepare

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "auxiliary"


def config(data_dir: str, split: int, seed: int, epochs: int, **train: Any) -> RunConfig:
    return RunConfig(
        dataset="sarcos", data_dir=data_dir, dataset_options={"split": split}, model="hard-sharing",
        model_options={"hidden": [128, 64]},
        train={"epochs": epochs, "batch_size": 128, "lr": 1e-3, "patience": 10, "seed": seed, "progress": False,
               "threads": 1, **train},
    )


def test_rmse(cfg: RunConfig, p: Prepared, target: str, tasks: list[str]) -> tuple[float, float]:
    """The target's test RMSE after training ``tasks`` (the target among them) with ``cfg``, and the seconds."""
    part = p.only(tasks)
    start = time.perf_counter()
    metrics, _ = fit_and_score(models.make(cfg), part, None)
    return float(metrics[target]["rmse"]), time.perf_counter() - start


def run_seed(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    data = DATASETS.get("sarcos")(data_dir=args.data_dir, split=args.split)
    target = args.target
    plain = config(args.data_dir, args.split, seed, args.epochs)
    start = time.perf_counter()
    selection = select_auxiliary(plain, target, subsets=args.subsets, measure="lookahead", every=args.every,
                                 data=data)
    select_seconds = time.perf_counter() - start
    p = prepare(plain, data)
    assert p.test is not None and p.evaluated_on == "test"
    names = [t.name for t in p.tasks]
    monitored = config(args.data_dir, args.split, seed, args.epochs, monitor=target)
    rows: dict[str, tuple[float, float]] = {
        "target alone": test_rmse(monitored, p, target, [target]),
        # an epoch is a pass over the labelled rows: alone, the target gets 1/T of the all-task run's steps
        "target alone, T × the epochs": test_rmse(
            config(args.data_dir, args.split, seed, args.epochs * len(names), monitor=target), p, target, [target]),
        "target + select's best": test_rmse(monitored, p, target, [target, *selection.best.subset]),
        "all tasks, equal weights": test_rmse(
            config(args.data_dir, args.split, seed, args.epochs, primary=target, balancer="static"), p, target, names),
        "all tasks, --primary (auto-lambda)": test_rmse(
            config(args.data_dir, args.split, seed, args.epochs, primary=target), p, target, names),
    }
    return {
        "seed": seed,
        "selection": selection.to_json(),
        "select_seconds": select_seconds,
        "test_rmse": {k: v for k, (v, _) in rows.items()},
        "seconds": {k: s for k, (_, s) in rows.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="torque_1")
    parser.add_argument("--split", type=int, default=1)
    parser.add_argument("--seeds", default="0", help="comma-separated")
    parser.add_argument("--subsets", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--every", type=int, default=10, help="measure the affinity every K steps")
    parser.add_argument("--data-dir", default=os.environ.get("MULTITASK_DATA", str(REPO.parent / "shared" / "data")))
    args = parser.parse_args()
    if not Path(args.data_dir, "sarcos").is_dir():
        print(f"skipped: no SARCOS under {args.data_dir}")
        return 0
    torch.set_num_threads(1)
    results = [run_seed(args, int(s)) for s in args.seeds.split(",") if s.strip()]
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"sarcos_{args.target}.json"
    path.write_text(json.dumps({"args": vars(args), "runs": results}, indent=1) + "\n")

    print(f"SARCOS split {args.split}, target {args.target}, seeds {args.seeds}: test RMSE of the target")
    print()
    print("| trained with | test RMSE (mean over seeds) | per seed | seconds (mean) |")
    print("|---|---|---|---|")
    for key in results[0]["test_rmse"]:
        values = [r["test_rmse"][key] for r in results]
        seconds = statistics.mean(r["seconds"][key] for r in results)
        print(f"| {key} | {statistics.mean(values):.4f} | {', '.join(f'{v:.4f}' for v in values)} | {seconds:.0f} |")
    print()
    for r in results:
        sel = r["selection"]
        best = sel["best"]
        subsets = "; ".join(f"{{{', '.join(s['subset']) or '∅'}}} {s['value']:.4f}" for s in sel["subsets"])
        print(f"seed {r['seed']}: select ({r['select_seconds']:.0f} s): best {{{', '.join(best['subset']) or '∅'}}}, "
              f"validation RMSE {best['value']:.4f} vs {sel['subsets'][0]['value']:.4f} alone; "
              f"p_t {json.dumps({k: round(v, 2) for k, v in sel['probabilities'].items()})}; evaluated: {subsets}")
    print(f"\nwritten to {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
