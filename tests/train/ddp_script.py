"""Train a small HardSharing on generated data; run under torchrun or as one process.

    torchrun --standalone --nproc_per_node=2 tests/train/ddp_script.py OUT.pt
    python tests/train/ddp_script.py OUT.pt

Rank 0 writes the final weights and the per-task validation losses to OUT.pt (used by test_distributed.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from multitask import Task
from multitask.data.arrays import Arrays
from multitask.nn import HardSharing, InputSpec
from multitask.registry import BALANCERS
from multitask.train import TrainConfig, fit, is_main_process, validation_losses

TASKS = [Task("r", "regression"), Task("b", "binary"), Task("c", "multiclass"), Task("small", "regression")]
SOURCE = {"r": "wide", "b": "wide", "c": "wide", "small": "own"}


def make_data(seed: int = 0) -> tuple[Arrays, Arrays]:
    """A wide table (3 tasks, missing labels) and a small second source with its own task."""
    rng = np.random.default_rng(seed)
    n, d, n2, d2 = 600, 8, 90, 5
    x = rng.normal(size=(n, d)).astype(np.float32)
    x2 = rng.normal(size=(n2, d2)).astype(np.float32)
    y = {
        "r": (x @ rng.normal(size=d)).astype(np.float32),
        "b": (x[:, 0] + x[:, 1] > 0).astype(np.float32),
        "c": np.digitize(x[:, 2], [-0.5, 0.5]).astype(np.int64),
        "small": (np.sin(x2[:, 0]) + x2[:, 1]).astype(np.float32),
    }
    masks = {t: rng.random(len(v)) < 0.7 for t, v in y.items()}
    targets = {t: np.where(masks[t], v, 0).astype(v.dtype) for t, v in y.items()}
    data = Arrays({"wide": x, "own": x2}, targets, masks, dict(SOURCE))
    train = data.subset({"wide": np.arange(480), "own": np.arange(70)})
    valid = data.subset({"wide": np.arange(480, 600), "own": np.arange(70, 90)})
    return train, valid


def make_model() -> HardSharing:
    torch.manual_seed(0)
    return HardSharing(
        {"wide": InputSpec(dim=8), "own": InputSpec(dim=5)},
        TASKS,
        SOURCE,
        {"c": 3},
        hidden=(32, 16),
        dropout=0.0,  # dropout masks are drawn per rank: with dropout DDP is not the same run
        norm="layer",
    )


class UnitGradients:
    """Sum of the per-task gradients scaled to unit norm: a direction that needs the global Jacobian."""

    def combine_gradients(self, jacobian: torch.Tensor, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return (jacobian / jacobian.norm(dim=1, keepdim=True).clamp_min(1e-12)).sum(dim=0)


#: registered balancers that must also give the single-process result under torchrun
REGISTERED = ("mgda", "mgda-ub", "pcgrad", "upgrad", "uncertainty", "dwa", "famo")
#: every other registered balancer: one epoch each, same check (not those that look ahead on validation batches,
#: Auto-Lambda: they refuse torchrun with a ConfigError, tested in tests/balancing/test_auto_lambda.py)
OTHERS = tuple(n for n in BALANCERS.names()
               if n not in ("static", *REGISTERED) and not BALANCERS.get(n).needs_validation)


def train_once(
    balancer: UnitGradients | None, run_dir: Path | None, name: str = "static", epochs: int = 3
) -> dict[str, torch.Tensor]:
    train, valid = make_data()
    model = make_model()
    config = TrainConfig(
        epochs=epochs,
        batch_size=40,
        optimizer="sgd",
        lr=0.05,
        momentum=0.9,
        sampling="temperature",
        patience=None,
        threads=1,
        progress=False,
        balancer=name,
    )
    result = fit(model, TASKS, train, valid, config, run_dir=run_dir, balancer=balancer)
    losses = validation_losses(result.model, TASKS, valid)
    return {
        "state": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
        "valid": torch.tensor([losses[t.name] for t in TASKS], dtype=torch.float64),
        "history_valid": torch.tensor(
            [[h["valid"][t.name] for t in TASKS] for h in result.history], dtype=torch.float64
        ),
    }


def run(out: Path, run_dir: Path | None = None) -> None:
    """Train with the default balancer (writing ``run_dir``), a gradient balancer and registered ones; save all."""
    static = train_once(None, run_dir)
    gradient = train_once(UnitGradients(), None)
    registered = {name: train_once(None, None, name) for name in REGISTERED}
    registered.update({name: train_once(None, None, name, epochs=1) for name in OTHERS})
    if is_main_process():
        torch.save({"static": static, "gradient": gradient, **registered}, out)


if __name__ == "__main__":
    run(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
