"""Deep hard-sharing MTL against single-task models of the same architecture and budget, on real data.

    python -m benchmarks.deep_mtl_vs_stl school [--splits 1-10] [--data-dir ../shared/data]
    python -m benchmarks.deep_mtl_vs_stl census [--seeds 0,1,2] [--data-dir ../shared/data]

School: the 10 fixed splits (75/25 within each school); each model holds out 20% of its training part for
early stopping and is scored on the split's test part: mean over the 139 schools of the per-school RMSE, and
explained variance 1 − Var(y − ŷ)/Var(y) over all test rows (as in the MTL literature on School; the mean of
per-school explained variances is reported too). Run directories already finished under ``--runs`` are only
scored again. Census-income (the shared UCI "test" partition, 99,762 rows): per seed, 20% of the rows
are a test part, the model holds out 20% of the rest for early stopping; AUC per task on the test part.
Prints a JSON summary and writes it to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multitask import models
from multitask.config import RunConfig
from multitask.data.spec import BuiltinData, DataSpec
from multitask.data.split import split_spec
from multitask.datasets import census_income, school
from multitask.runs import load_run, train
from multitask.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"

SCHOOL_TRAIN = TrainConfig(epochs=100, batch_size=64, lr=1e-3, weight_decay=1e-4, optimizer="adamw", patience=10,
                           threads=1, progress=False)
CENSUS_TRAIN = TrainConfig(epochs=10, batch_size=512, lr=1e-3, patience=3, threads=1, progress=False)


def _mean(result: dict[str, dict[str, float]], metric: str) -> float:
    return float(np.nanmean([m[metric] for m in result.values()]))


def pooled_explained_variance(run_dir: Path, test: DataSpec) -> tuple[float, float]:
    """``1 − Var(y − ŷ) / Var(y)`` over all test rows of all tasks, for the MTL model and the STL models."""
    run = load_run(run_dir)
    pre = run.preprocessor
    arrays = pre.transform(test)
    tasks = test.tasks
    mtl = run.predictor(arrays)
    meta = json.loads((run_dir / "run.json").read_text())
    ys, mtl_res, stl_res = [], [], []
    for task in tasks:
        mask = arrays.masks[task.name]
        y = pre.to_original(task.name, arrays.targets[task.name][mask].astype(np.float64))
        where = run_dir / "baseline" / "stl" / meta["task_dirs"][task.name]
        single = models.family(meta["model"]).load(meta["model"], where, [task], pre)
        stl = single.predict(arrays.only_tasks([task.name]))[task.name]
        ys.append(y)
        mtl_res.append(y - pre.to_original(task.name, mtl[task.name][mask].astype(np.float64)))
        stl_res.append(y - pre.to_original(task.name, stl[mask].astype(np.float64)))
    var = float(np.var(np.concatenate(ys)))
    return 1 - float(np.var(np.concatenate(mtl_res))) / var, 1 - float(np.var(np.concatenate(stl_res))) / var


def run_school(splits: list[int], data_dir: Path, out: Path) -> dict[str, Any]:
    rows = []
    for k in splits:
        t0 = time.perf_counter()
        data = school(data_dir, split=k)
        assert data.test is not None
        cfg = RunConfig(dataset="school", train=SCHOOL_TRAIN, model_options={"hidden": [64, 32], "dropout": 0.1},
                        baseline="stl", out=str(out / f"school_{k}"))
        r = train(cfg, data=data, resume=True)  # an already finished run is only scored again
        assert r.baseline is not None
        mtl_ev, stl_ev = pooled_explained_variance(out / f"school_{k}", data.test)
        row = {
            "split": k,
            "mtl_rmse": _mean(r.metrics, "rmse"), "stl_rmse": _mean(r.baseline, "rmse"),
            "mtl_explained_variance": mtl_ev, "stl_explained_variance": stl_ev,
            "mtl_per_school_explained_variance": _mean(r.metrics, "explained_variance"),
            "stl_per_school_explained_variance": _mean(r.baseline, "explained_variance"),
            "delta_m": r.delta_m, "seconds": round(time.perf_counter() - t0, 1),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return {"benchmark": "school", "splits": rows, "summary": _summary(rows)}


def run_census(seeds: list[int], data_dir: Path, out: Path) -> dict[str, Any]:
    rows = []
    full = census_income(data_dir, download=False)
    for seed in seeds:
        t0 = time.perf_counter()
        train_part, test_part = split_spec(full.train, 0.2, seed=1000 + seed)
        data = BuiltinData("census-income", train_part, test_part, full.description)
        cfg = RunConfig(dataset="census-income", train=CENSUS_TRAIN.model_copy(update={"seed": seed}),
                        model_options={"hidden": [128, 64]}, baseline="stl", out=str(out / f"census_{seed}"))
        r = train(cfg, data=data)
        assert r.baseline is not None
        row = {"seed": seed, "delta_m": r.delta_m, "seconds": round(time.perf_counter() - t0, 1)}
        for task in ("income", "never_married"):
            row[f"mtl_auc_{task}"] = r.metrics[task]["auc"]
            row[f"stl_auc_{task}"] = r.baseline[task]["auc"]
        print(json.dumps(row), flush=True)
        rows.append(row)
    return {"benchmark": "census", "seeds": rows, "summary": _summary(rows)}


def _summary(rows: list[dict[str, Any]]) -> dict[str, str]:
    keys = [k for k in rows[0] if k not in ("split", "seed")]
    return {k: f"{np.mean([r[k] for r in rows]):.4f} ± {np.std([r[k] for r in rows]):.4f}" for k in keys}


def _ints(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["school", "census"])
    parser.add_argument("--splits", type=_ints, default=list(range(1, 11)))
    parser.add_argument("--seeds", type=_ints, default=[0, 1, 2])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--runs", type=Path, default=Path("/tmp/multitask-bench"))
    a = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    result = run_school(a.splits, a.data_dir, a.runs) if a.which == "school" else run_census(a.seeds, a.data_dir, a.runs)
    print(json.dumps(result["summary"], indent=1))
    RESULTS.mkdir(exist_ok=True)
    parts = a.splits if a.which == "school" else a.seeds
    (RESULTS / f"deep_{a.which}_{parts[0]}-{parts[-1]}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
