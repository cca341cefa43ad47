"""Learning-rate schedules, stepped once per epoch: ``schedule(optimizer, epochs) -> LRScheduler``."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler, StepLR


def _one(epoch: int) -> float:
    return 1.0


def constant(optimizer: Optimizer, epochs: int) -> LRScheduler:
    """Constant learning rate: lr_e = lr."""
    return LambdaLR(optimizer, _one)


def cosine(optimizer: Optimizer, epochs: int) -> LRScheduler:
    """Cosine decay to 0 over the run: lr_e = lr · (1 + cos(π e / epochs)) / 2 (Loshchilov & Hutter, 2017)."""
    return CosineAnnealingLR(optimizer, T_max=max(1, epochs))


def step(optimizer: Optimizer, epochs: int) -> LRScheduler:
    """Step decay: lr × 0.1 after each third of the run (lr_e = lr · 0.1^⌊e / ⌈epochs/3⌉⌋)."""
    return StepLR(optimizer, step_size=max(1, -(-epochs // 3)), gamma=0.1)
