"""One-hot against learned embeddings of the categorical columns, hard-sharing on census-income.

    MULTITASK_DATA=../shared/data .venv/bin/python -m benchmarks.categorical_embeddings [--seeds 0,1,2]

Census-income (the shared UCI "test" partition, 99,762 rows, 39 features of which 33 categorical, two
binary tasks: income > 50K and never married). Per seed, 20% of the rows are a test part; the rest is split
80/20 into training and early-stopping parts (about 64,000 training rows); the same hard-sharing network
(hidden [128, 64], 10 epochs of batch 512, lr 1e-3, patience 3, one thread) is trained with the categorical
columns fed as their one-hot columns (``categorical: onehot``) and as learned embeddings
(``categorical: embedding``, sizes by :func:`multitask.nn._embedding.embedding_size`). AUC per task on the
test part. Writes ``benchmarks/results/architectures/census_embeddings.csv`` (one row per seed, encoding and
task) and ``census_embeddings_summary.csv`` (mean and standard deviation over seeds).
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import numpy as np
import torch

from multitask.config import RunConfig
from multitask.data.spec import BuiltinData
from multitask.data.split import split_spec
from multitask.datasets import census_income
from multitask.evaluate import task_metrics
from multitask.models._deep import Deep
from multitask.nn import HardSharing, InputSpec
from multitask.runs import Prepared, prepare
from multitask.train import TrainConfig, fit

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "architectures"
TRAIN = TrainConfig(epochs=10, batch_size=512, lr=1e-3, patience=3, threads=1, progress=False)
HIDDEN = [128, 64]
ENCODINGS = ("onehot", "embedding")


def run_one(p: Prepared, encoding: str, seed: int, train: TrainConfig = TRAIN) -> dict[str, object]:
    """Train hard-sharing with the categorical columns one-hot or embedded; test AUC per task."""
    source = next(iter(p.pre.sources))
    columns = {source: p.pre.categorical_columns(source)} if encoding == "embedding" else {}
    inputs = InputSpec.of_sources(p.pre.input_shapes(), columns)
    torch.manual_seed(seed)
    net = HardSharing(inputs, p.tasks, dict(p.train.task_source), p.pre.output_sizes(), hidden=HIDDEN)
    t0 = time.perf_counter()
    result = fit(net, p.tasks, p.train, p.valid, train.model_copy(update={"seed": seed}))
    seconds = time.perf_counter() - t0
    model = Deep("hard-sharing")
    model.net_, model.tasks_ = result.model, list(p.tasks)
    metrics = task_metrics(p.tasks, p.evaluation, model.predict(p.evaluation), p.pre)
    return {
        "auc": {t.name: metrics[t.name]["auc"] for t in p.tasks},
        "parameters": sum(w.numel() for w in net.parameters()),
        "best_epoch": result.best_epoch,
        "fit_seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--data-dir", default=os.environ.get("MULTITASK_DATA"))
    parser.add_argument("--epochs", type=int, default=TRAIN.epochs)
    parser.add_argument("--out", default=str(RESULTS / "census_embeddings.csv"))
    args = parser.parse_args()
    train = TRAIN.model_copy(update={"epochs": args.epochs})
    torch.set_num_threads(1)
    full = census_income(args.data_dir, download=False)
    rows: list[dict[str, object]] = []
    for seed in (int(s) for s in args.seeds.split(",")):
        train_part, test_part = split_spec(full.train, 0.2, seed=1000 + seed)
        data = BuiltinData("census-income", train_part, test_part, full.description)
        p = prepare(RunConfig(dataset="census-income", train=train.model_copy(update={"seed": seed})), data)
        for encoding in ENCODINGS:
            r = run_one(p, encoding, seed, train)
            for task, auc in r["auc"].items():  # type: ignore[attr-defined]
                rows.append({"seed": seed, "epochs": args.epochs, "encoding": encoding, "task": task, "auc": auc,
                             "train_rows": p.train.n_rows(next(iter(p.train.inputs))),
                             "input_width": next(iter(p.pre.input_shapes().values())),
                             "parameters": r["parameters"], "best_epoch": r["best_epoch"],
                             "fit_seconds": round(float(r["fit_seconds"]), 1)})  # type: ignore[arg-type]
                print(rows[-1], flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = out.with_name(out.stem + "_summary.csv")
    with summary.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["encoding", "task", "seeds", "auc_mean", "auc_sd", "parameters", "fit_seconds_mean"])
        for encoding in ENCODINGS:
            for task in dict.fromkeys(str(r["task"]) for r in rows):
                mine = [r for r in rows if r["encoding"] == encoding and r["task"] == task]
                auc = np.array([float(r["auc"]) for r in mine])  # type: ignore[arg-type]
                writer.writerow([encoding, task, len(mine), f"{auc.mean():.4f}", f"{auc.std(ddof=1) if len(auc) > 1 else 0:.4f}",
                                 mine[0]["parameters"], f"{np.mean([float(r['fit_seconds']) for r in mine]):.1f}"])  # type: ignore[arg-type]
    print(summary.read_text())


if __name__ == "__main__":
    main()
