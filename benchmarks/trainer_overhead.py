"""The trainer's overhead against a hand-written PyTorch loop: same model, data, batch size and steps.

    python benchmarks/trainer_overhead.py            # 50k rows, 20 features, 3 tasks, batch 256, 3 epochs

Three timings, each the median of ``--repeats`` runs in this one process:

* ``hand``: a plain loop over shuffled index batches (tensors indexed directly, masked per-task mean losses,
  summed, backward, Adam step);
* ``fit``: :func:`multitask.train.fit` with progress off, no validation, no run directory;
* ``fit+ckpt``: the same with a run directory (``log.jsonl`` and an fsync'ed ``checkpoint.pt`` every epoch,
  ``model.pt`` at the end).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from multitask import Task
from multitask.data.arrays import Arrays
from multitask.data.sampling import steps_per_epoch
from multitask.nn import HardSharing, InputSpec
from multitask.train import TrainConfig, fit

TASKS = [Task("r", "regression"), Task("b", "binary"), Task("c", "multiclass")]


def make_data(rows: int, features: int) -> Arrays:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    y = {
        "r": (x @ rng.normal(size=features)).astype(np.float32),
        "b": (x[:, 0] > 0).astype(np.float32),
        "c": np.digitize(x[:, 1], [-0.5, 0.5]).astype(np.int64),
    }
    masks = {t: rng.random(rows) < 0.8 for t in y}
    targets = {t: np.where(masks[t], v, 0).astype(v.dtype) for t, v in y.items()}
    return Arrays({"s": x}, targets, masks, {t: "s" for t in y})


def make_model(features: int) -> HardSharing:
    torch.manual_seed(0)
    return HardSharing({"s": InputSpec(dim=features)}, TASKS, {t.name: "s" for t in TASKS}, {"c": 3})


def hand_loop(data: Arrays, batch_size: int, epochs: int, lr: float) -> float:
    model = make_model(data.inputs["s"].shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x = torch.from_numpy(data.inputs["s"])
    y = {t: torch.from_numpy(v) for t, v in data.targets.items()}
    m = {t: torch.from_numpy(v) for t, v in data.masks.items()}
    labelled = torch.from_numpy(np.flatnonzero(np.any([data.masks[t.name] for t in TASKS], axis=0)))
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = labelled[torch.randperm(len(labelled), generator=g)]
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            out = model({"s": x[idx]})
            total = torch.zeros(())
            for t in TASKS:
                mask = m[t.name][idx]
                total = total + t.loss_fn(out[t.name][mask], y[t.name][idx][mask]).sum() / max(
                    int(mask.sum()), 1
                )
            opt.zero_grad()
            total.backward()
            opt.step()
    return time.perf_counter() - start


def trainer(data: Arrays, batch_size: int, epochs: int, lr: float, run_dir: Path | None) -> float:
    model = make_model(data.inputs["s"].shape[1])
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=None, progress=False)
    start = time.perf_counter()
    fit(model, TASKS, data, None, config, run_dir=run_dir)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: least noise)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = make_data(args.rows, args.features)
    steps = args.epochs * steps_per_epoch(data, args.batch_size)
    times: dict[str, list[float]] = {"hand": [], "fit": [], "fit+ckpt": []}
    for _ in range(args.repeats):  # interleaved, so that drifting machine load hits all three alike
        times["hand"].append(hand_loop(data, args.batch_size, args.epochs, 1e-3))
        times["fit"].append(trainer(data, args.batch_size, args.epochs, 1e-3, None))
        with tempfile.TemporaryDirectory() as tmp:
            times["fit+ckpt"].append(trainer(data, args.batch_size, args.epochs, 1e-3, Path(tmp)))
    hand = statistics.median(times["hand"])
    print(
        f"{args.rows} rows x {args.features} features, 3 tasks, batch {args.batch_size}, {steps} steps, "
        f"{args.threads} thread(s), median of {args.repeats}"
    )
    print("| loop | seconds | ms/step | ratio to hand loop |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"| {name} | {t:.2f} | {1000 * t / steps:.2f} | {t / hand:.2f} |")


if __name__ == "__main__":
    main()
