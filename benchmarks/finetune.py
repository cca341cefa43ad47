"""Fine-tuning a held-out task on a trained run's shared part, against training the task alone (SARCOS).

    python -m benchmarks.finetune [--rows 50,200,0] [--seeds 0,1,2] [--data-dir ../shared/data]

SARCOS split 1 (long form, one task per joint): a hard-sharing run is trained on joints 1-6; joint 7 is the
new task, given ``n`` of its training rows (0: all of them). ``multitask.finetune`` adds its head (``frozen``:
only the head learns; ``tuned``: the shared part learns too) and trains the same architecture on joint 7 alone
for comparison. Every model is scored on joint 7's rows of the split's test part (RMSE in newton-metres).
Prints a markdown table and writes JSON to ``benchmarks/results/finetune.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from multitask import models
from multitask.config import RunConfig
from multitask.datasets import sarcos
from multitask.finetune import finetune
from multitask.runs import load_run, predict, train
from multitask.tasks import Task
from multitask.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
TRAIN = TrainConfig(epochs=60, batch_size=64, lr=3e-3, patience=8, threads=1, progress=False)


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - p) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="50,200,0")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--out", default="/tmp/multitask-bench-finetune")
    args = parser.parse_args()
    out = Path(args.out)
    data = sarcos(args.data_dir, split=1, download=False)
    assert data.test is not None
    frame = data.train.sources["sarcos"].frame
    test = data.test.sources["sarcos"].frame
    features = data.train.feature_columns("sarcos")
    columns = [*features, "joint", "torque"]
    frame, test = frame[columns].assign(joint=frame["joint"].astype(str)), test[columns].assign(
        joint=test["joint"].astype(str))
    out.mkdir(parents=True, exist_ok=True)
    old, new, held = frame[frame["joint"] != "7"], frame[frame["joint"] == "7"], test[test["joint"] == "7"]
    old.to_csv(out / "old.csv", index=False)
    held.to_csv(out / "test7.csv", index=False)
    rows: list[dict[str, object]] = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        cfg = TRAIN.model_copy(update={"seed": seed})
        base = out / f"base-{seed}"
        t0 = time.perf_counter()
        train(RunConfig(data=str(out / "old.csv"), task_column="joint", target="torque", out=str(base),
                        train=cfg.model_dump(), overwrite=True))
        base_seconds = time.perf_counter() - t0
        for n in [int(r) for r in args.rows.split(",")]:
            part = new.sample(n=n, random_state=seed) if 0 < n < len(new) else new
            path = out / f"new-{seed}-{n}.csv"
            part.to_csv(path, index=False)
            for frozen in (True, False):
                where = out / f"ft-{seed}-{n}-{'frozen' if frozen else 'tuned'}"
                t0 = time.perf_counter()
                finetune(base, Task("7", "regression"), path, where, freeze_shared=frozen, train=cfg,
                         overwrite=True)
                seconds = time.perf_counter() - t0
                tuned = predict(where, str(out / "test7.csv"))["prediction"].to_numpy(dtype=float)
                run = load_run(where)
                alone = models.family("hard-sharing").load("hard-sharing", where / "baseline" / "alone",
                                                          [Task("7", "regression")], run.preprocessor)
                arrays = run.preprocessor.transform(_spec(run, out / "test7.csv"))
                alone_pred = run.preprocessor.to_original("7", alone.predict(arrays)["7"])
                y = held["torque"].to_numpy(dtype=float)
                rows.append({"seed": seed, "rows": len(part), "frozen": frozen, "finetuned_rmse": _rmse(y, tuned),
                             "alone_rmse": _rmse(y, np.asarray(alone_pred, dtype=float).ravel()),
                             "seconds": seconds, "base_seconds": base_seconds})
                print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    summary = table.groupby(["rows", "frozen"]).agg(
        finetuned=("finetuned_rmse", "mean"), finetuned_sd=("finetuned_rmse", "std"),
        alone=("alone_rmse", "mean"), alone_sd=("alone_rmse", "std"), seconds=("seconds", "mean")).reset_index()
    print("| joint-7 rows | shared part | fine-tuned RMSE | alone RMSE | seconds (both) |")
    print("|---:|---|---:|---:|---:|")
    for r in summary.itertuples():
        print(f"| {r.rows} | {'frozen' if r.frozen else 'tuned'} | {r.finetuned:.3f} ± {r.finetuned_sd:.3f} | "
              f"{r.alone:.3f} ± {r.alone_sd:.3f} | {r.seconds:.1f} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "finetune.json").write_text(json.dumps(rows, indent=1))


def _spec(run, path: Path):  # type: ignore[no-untyped-def]
    from multitask.data.reading import read_table
    from multitask.data.spec import from_declaration

    source = next(iter(run.declaration["sources"]))
    return from_declaration(run.declaration, {source: read_table(str(path))}, labelled=False)


if __name__ == "__main__":
    main()
