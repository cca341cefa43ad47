"""Train every registered architecture for two epochs; under torchrun rank 0 saves the weights to argv[1]."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from test_contract import build, case, data

from multitask.registry import MODELS
from multitask.train import TrainConfig, fit, is_main_process


def run_all() -> dict[str, dict[str, torch.Tensor]]:
    """``{architecture: its weights after training}``; the same in one process as under torchrun."""
    results = {}
    for name in MODELS.names():
        tasks, _, _ = case(name)
        model = build(name)
        config = TrainConfig(
            epochs=2, batch_size=32, optimizer="sgd", lr=0.05, patience=None, threads=1, progress=False
        )
        trained = fit(model, tasks, data(name, 96, 0), data(name, 48, 1), config).model
        results[name] = {k: v.detach().cpu() for k, v in trained.state_dict().items()}
    return results


if __name__ == "__main__":
    out = run_all()
    if is_main_process():
        torch.save(out, sys.argv[1])
