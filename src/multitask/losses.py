"""Per-row losses, ``loss(output, target) -> (n,)``; the trainer masks missing labels and averages."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error (y - ŷ)²."""
    return (output - target) ** 2


def huber(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Huber loss with δ = 1 (on standardized targets): quadratic near 0, linear beyond."""
    return F.huber_loss(output, target, reduction="none", delta=1.0)


def bce(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on a logit: −y log σ(z) − (1 − y) log(1 − σ(z))."""
    return F.binary_cross_entropy_with_logits(output, target, reduction="none")


def ce(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of class logits (n, k) against class indices (n,): −log softmax(z)_y."""
    return F.cross_entropy(output, target, reduction="none")


def multilabel_bce(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy per label, averaged over the k labels of a row."""
    return F.binary_cross_entropy_with_logits(output, target, reduction="none").mean(dim=-1)
