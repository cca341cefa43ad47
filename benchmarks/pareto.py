"""Front of trade-offs on census-income: one preference-conditioned model against fixed-weight runs.

    python -m benchmarks.pareto [--points 11] [--fixed 5] [--epochs 5] [--seeds 0,1,2] [--data-dir ../shared/data]

Per seed: ``multitask.pareto.pareto`` trains one hard-sharing model conditioned on the task weights (a Dirichlet
draw per step, α = 1, λ = 0) and evaluates it at ``--points`` weightings; then ``--fixed`` ordinary models, one
per weighting. Both sets of validation-loss points are scored by hypervolume against one reference point per
seed (the worst loss of each task over both sets, padded by 10 % of its range). Prints a markdown table and
writes JSON to ``benchmarks/results/pareto_census.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from multitask.config import RunConfig
from multitask.pareto import pareto

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=11)
    parser.add_argument("--fixed", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--out", default="/tmp/multitask-bench-pareto")
    args = parser.parse_args()
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        cfg = RunConfig(dataset="census-income", data_dir=args.data_dir,
                        train={"epochs": args.epochs, "batch_size": 512, "lr": 1e-3, "patience": 3, "seed": seed,
                               "threads": 1, "progress": False})
        result = pareto(cfg, Path(args.out) / f"seed{seed}", points=args.points, fixed=args.fixed, overwrite=True)
        rows.append({"seed": seed, **{f"hv_{k}": v for k, v in result.hypervolume.items()},
                     **{f"seconds_{k}": v for k, v in result.seconds.items()},
                     "on_front": {m: int(result.points[(result.points["method"] == m)]["front"].sum())
                                  for m in result.hypervolume}})
        print(rows[-1], flush=True)
    hv_c, hv_f = (np.array([r[f"hv_{m}"] for r in rows]) for m in ("conditioned", "fixed"))
    s_c, s_f = (np.array([r[f"seconds_{m}"] for r in rows]) for m in ("conditioned", "fixed"))
    print("| method | models trained | hypervolume (mean ± sd) | ratio to fixed | training s |")
    print("|---|---:|---:|---:|---:|")
    print(f"| conditioned ({args.points} weightings) | 1 | {hv_c.mean():.4g} ± {hv_c.std(ddof=1):.2g} | "
          f"{(hv_c / hv_f).mean():.3f} | {s_c.mean():.0f} |")
    print(f"| fixed weights | {args.fixed} | {hv_f.mean():.4g} ± {hv_f.std(ddof=1):.2g} | 1 | {s_f.mean():.0f} |")
    results = REPO / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "pareto_census.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
