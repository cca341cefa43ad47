"""Train a small model with a run directory, slowly enough to be killed mid-run (see test_resume.py).

    python tests/train/resume_script.py RUN_DIR [--resume]

Writes RUN_DIR/final.pt (final weights and history) when training ends.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from multitask import Task
from multitask.data.arrays import Arrays
from multitask.nn import HardSharing, InputSpec
from multitask.train import TrainConfig, fit

TASKS = [Task("r", "regression"), Task("b", "binary")]
CONFIG = TrainConfig(
    epochs=8,
    batch_size=8,
    lr=3e-3,
    schedule="cosine",
    sampling="temperature",
    patience=None,
    seed=3,
    threads=1,
    progress=False,
)


def make_data() -> tuple[Arrays, Arrays]:
    rng = np.random.default_rng(1)
    n, d = 1500, 12
    x = rng.normal(size=(n, d)).astype(np.float32)
    r = (x @ rng.normal(size=d)).astype(np.float32)
    b = (x[:, 0] * x[:, 1] > 0).astype(np.float32)
    masks = {"r": rng.random(n) < 0.8, "b": rng.random(n) < 0.4}
    targets = {
        "r": np.where(masks["r"], r, 0).astype(np.float32),
        "b": np.where(masks["b"], b, 0).astype(np.float32),
    }
    data = Arrays({"s": x}, targets, masks, {"r": "s", "b": "s"})
    return data.subset({"s": np.arange(1200)}), data.subset({"s": np.arange(1200, n)})


def main(run_dir: Path, resume: bool) -> None:
    train, valid = make_data()
    torch.manual_seed(CONFIG.seed)
    model = HardSharing({"s": InputSpec(dim=12)}, TASKS, {"r": "s", "b": "s"}, hidden=(64, 32), dropout=0.2)
    result = fit(model, TASKS, train, valid, CONFIG, run_dir=run_dir, resume=resume)
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in result.history]
    torch.save(
        {"state": result.model.state_dict(), "history": history, "best_epoch": result.best_epoch},
        run_dir / "final.pt",
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--resume" in sys.argv[2:])
