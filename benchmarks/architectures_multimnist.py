"""Soft-sharing architectures against hard sharing and single-task networks on MultiMNIST (left/right digit).

    MULTITASK_DATA=../shared/data python -m benchmarks.architectures_multimnist [--seeds 0,1,2]
        [--n-images 2000] [--epochs 10]

Per seed: ``--n-images`` MultiMNIST images (pairing seed = the seed), 20% of them a test part; every model
holds out 20% of the rest for early stopping (patience 5) and is scored on the test part: accuracy of the
left and of the right digit. Models, all through :func:`multitask.runs.train` with Adam (lr 1e-3, batch 32,
one thread): hard sharing and single-task hard-sharing networks (one per digit, ``baseline="stl"``),
cross-stitch, MTAN and single-task MTAN networks (channels 16, 32, 32: about the compute of two conv
columns; a 4x4 read-out like the conv encoder of the others), and MMoE when it is registered. Writes ``benchmarks/results/architectures/multimnist.csv`` (one row per seed and model; seconds
are wall-clock, a model's including its single-task networks) and ``multimnist_summary.csv`` (mean
and standard deviation over seeds). Seeds can run in parallel processes (``--seeds 0 --name part0``, …)
and be combined afterwards with ``--merge part0,part1,part2``.
"""

from __future__ import annotations

import argparse
import csv
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multitask.config import RunConfig
from multitask.data.spec import BuiltinData
from multitask.data.split import split_spec
from multitask.datasets import multimnist
from multitask.registry import MODELS
from multitask.runs import train
from multitask.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "architectures"
TASKS = ("left", "right")

#: (label, model, options, with single-task networks of the same architecture: ``baseline="stl"``)
MODELS_RUN: list[tuple[str, str, dict[str, Any], bool]] = [
    ("hard-sharing", "hard-sharing", {}, True),
    ("cross-stitch", "cross-stitch", {}, False),
    ("mtan", "mtan", {"channels": [16, 32, 32], "pool": 4}, True),
    ("mmoe", "mmoe", {}, False),
]


def run_seed(
    seed: int, n_images: int, epochs: int, data_dir: Path | None, runs: Path, only: list[str] | None = None
) -> list[dict[str, Any]]:
    """One row per model (and single-task baseline) for one seed; ``only``: these labels alone."""
    full = multimnist(data_dir, n_images=n_images, seed=seed, download=False)
    fit_part, test_part = split_spec(full.train, 0.2, seed=1000 + seed)
    data = BuiltinData("multimnist", fit_part, test_part, full.description)
    config = TrainConfig(epochs=epochs, batch_size=32, lr=1e-3, patience=5, seed=seed, threads=1, progress=False)
    rows = []
    for label, model, options, stl in MODELS_RUN:
        if model not in MODELS or (only and label not in only):
            continue
        t0 = time.perf_counter()
        cfg = RunConfig(dataset="multimnist", train=config, model=model, model_options=options,
                        baseline=["stl"] if stl else [],
                        out=str(runs / f"{label}_{seed}"), overwrite=True)
        result = train(cfg, data=data)
        seconds = round(time.perf_counter() - t0, 1)
        rows.append(_row(seed, label, result.metrics, seconds))
        if "stl" in result.baselines:
            name = "single-task" if label == "hard-sharing" else f"single-task {label}"
            rows.append(_row(seed, name, result.baselines["stl"].metrics, None))
        print(rows[-1], flush=True)
    return rows


def _row(seed: int, label: str, metrics: Any, seconds: float | None) -> dict[str, Any]:
    row: dict[str, Any] = {"seed": seed, "model": label}
    for task in TASKS:
        row[f"{task}_accuracy"] = round(float(metrics[task]["accuracy"]), 4)
    row["seconds"] = seconds  # wall-clock, with the single-task baseline where there is one
    return row


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds per model."""
    out = []
    for label in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == label]
        row: dict[str, Any] = {"model": label, "seeds": len(mine)}
        for task in TASKS:
            values = np.array([r[f"{task}_accuracy"] for r in mine])
            row[f"{task}_accuracy_mean"] = round(float(values.mean()), 4)
            row[f"{task}_accuracy_std"] = round(float(values.std()), 4)
        out.append(row)
    return out


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path) -> list[dict[str, Any]]:
    """The per-seed rows written by :func:`write_csv` (numbers back as numbers)."""
    with path.open(newline="") as f:
        return [
            {k: (v if k == "model" else None if v == "" else float(v) if "." in v else int(v)) for k, v in r.items()}
            for r in csv.DictReader(f)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    parser.add_argument("--n-images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--data-dir", type=Path, default=None, help="else MULTITASK_DATA")
    parser.add_argument("--runs", type=Path, default=Path("/tmp/multitask-bench/multimnist"))
    parser.add_argument("--name", default="multimnist", help="file name stem of the CSVs")
    parser.add_argument("--only", type=lambda s: s.split(","), default=None, help="run only these models")
    parser.add_argument("--merge", type=lambda s: s.split(","), default=None,
                        help="only combine these earlier --name results (seeds run in parallel) into --name; "
                             "a later file's row replaces an earlier one of the same seed and model")
    a = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    if a.merge:
        merged = {(r["seed"], r["model"]): r for stem in a.merge for r in read_csv(RESULTS / f"{stem}.csv")}
        rows = sorted(merged.values(), key=lambda r: r["seed"])
    else:
        rows = [r for seed in a.seeds for r in run_seed(seed, a.n_images, a.epochs, a.data_dir, a.runs, a.only)]
    write_csv(RESULTS / f"{a.name}.csv", rows)
    summary = summarize(rows)
    write_csv(RESULTS / f"{a.name}_summary.csv", summary)
    for row in summary:
        print(row)


if __name__ == "__main__":
    main()
