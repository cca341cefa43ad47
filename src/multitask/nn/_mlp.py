"""Dense building blocks: ``Linear -> norm -> activation -> dropout``, stacked into an MLP."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from multitask.errors import ConfigError

#: activation functions by name
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
}
#: normalization layers by name (``batch`` makes DDP differ slightly from one process: statistics are per rank)
NORMS: tuple[str, ...] = ("none", "layer", "batch")


def check_activation(name: str) -> None:
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}")


def check_norm(name: str) -> None:
    if name not in NORMS:
        raise ConfigError(f"unknown norm {name!r}; choose one of: {', '.join(NORMS)}")


class BatchNorm(nn.BatchNorm1d):
    """``BatchNorm1d`` that also takes a one-row batch in training (normalized with the running statistics).

    A batch can hold a single row of some source (the last batch of an epoch, a shard under torchrun);
    plain batch norm cannot compute a variance from it and raises.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        return super().forward(x)


def norm_layer(name: str, dim: int) -> nn.Module:
    """The normalization layer called ``name`` over ``dim`` features (identity for ``"none"``)."""
    check_norm(name)
    if name == "layer":
        return nn.LayerNorm(dim)
    if name == "batch":
        return BatchNorm(dim)
    return nn.Identity()


#: the widest hidden layer accepted (a wider one is a typo, not a model that fits in memory)
MAX_WIDTH = 16_384


def check_hidden(hidden: object) -> tuple[int, ...]:
    """``hidden`` as a tuple of layer widths, or ConfigError: a list of whole numbers in [1, 16384]."""
    values = hidden
    if not isinstance(values, list | tuple) or not values:
        raise ConfigError(f"hidden must be one or more layer widths, e.g. [128, 64], got {hidden!r}")
    for h in values:
        if isinstance(h, bool) or not isinstance(h, int) or not 1 <= h <= MAX_WIDTH:
            raise ConfigError(f"hidden must be whole layer widths in [1, {MAX_WIDTH}], got {list(values)!r}")
    return tuple(values)


def check_dropout(dropout: object) -> float:
    """``dropout`` as a float in [0, 1), or ConfigError."""
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be a number in [0, 1), got {dropout!r}")
    return float(dropout)


def dense(d_in: int, d_out: int, activation: str, norm: str, dropout: float) -> nn.Sequential:
    """``Linear(d_in, d_out) -> norm -> activation -> dropout``."""
    check_activation(activation)
    return nn.Sequential(
        nn.Linear(d_in, d_out),
        norm_layer(norm, d_out),
        ACTIVATIONS[activation](),
        nn.Dropout(dropout),
    )


class MLP(nn.Sequential):
    """Dense blocks over ``sizes``: ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` (identity for one size)."""

    def __init__(
        self, sizes: Sequence[int], activation: str = "relu", norm: str = "none", dropout: float = 0.0
    ) -> None:
        super().__init__(*(dense(a, b, activation, norm, dropout) for a, b in itertools.pairwise(sizes)))
