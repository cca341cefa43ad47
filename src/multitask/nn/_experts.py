"""Pieces of the mixtures of experts (MMoE, CGC/PLE, DSelect-k): expert pools, softmax gates, option checks.

An expert pool applies ``E`` expert MLPs to the same rows, ``(n, d_in) -> (n, E, d)``; a gate maps rows to
mixture weights over experts, ``(n, d_in) -> (n, E)`` (rows on the simplex); :func:`mix` applies them.
:class:`UsageMeter` keeps each task's mean gate weights over the last forward pass (``gate_usage()``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from multitask.errors import ConfigError
from multitask.nn._mlp import ACTIVATIONS, MAX_WIDTH, BatchNorm, check_activation, check_norm

__all__ = ["Experts", "SoftmaxGate", "UsageMeter", "check_count", "check_widths", "mix"]


def check_count(option: str, value: object, minimum: int = 1, maximum: int = 1024) -> int:
    """``value`` as a whole number in ``[minimum, maximum]``, or ConfigError naming ``option``."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ConfigError(f"{option} must be a whole number in [{minimum}, {maximum}], got {value!r}")
    return int(value)


def check_widths(option: str, value: object, allow_empty: bool = False) -> tuple[int, ...]:
    """``value`` as a tuple of layer widths in ``[1, 16384]`` (a list), or ConfigError naming ``option``."""
    if not isinstance(value, list | tuple) or (not value and not allow_empty):
        example = "[] (none) or " if allow_empty else ""
        raise ConfigError(f"{option} must be a list of layer widths, e.g. {example}[64], got {value!r}")
    for width in value:
        if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= MAX_WIDTH:
            raise ConfigError(f"{option} must be whole layer widths in [1, {MAX_WIDTH}], got {list(value)!r}")
    return tuple(value)


class Experts(nn.Module):
    """``E`` expert MLPs over the same rows: ``x (n, d_in) -> [f_1(x), ..., f_E(x)] (n, E, hidden[-1])``.

    Expert ``e`` is dense blocks ``d_in -> hidden[0] -> ... -> hidden[-1]`` (``Linear -> norm -> activation ->
    dropout``, as :class:`~multitask.nn.MLP`) with its own weights. The experts are computed together: layer
    ``l`` holds the weights of every expert, ``(E, d, d')`` (initialised as ``nn.Linear``: uniform in
    ``±1/√d``), and one batched product applies them; ``norm="layer"`` normalises each expert's features,
    ``"batch"`` each feature of each expert (batch norm over the ``E·d'`` features).
    """

    def __init__(
        self, count: int, d_in: int, hidden: Sequence[int], activation: str, norm: str, dropout: float
    ) -> None:
        super().__init__()
        check_activation(activation)
        check_norm(norm)
        self.count, self.out_dim, self.norm = count, int(hidden[-1]), norm
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        self.norms = nn.ModuleList()
        for a, b in itertools.pairwise((d_in, *hidden)):
            bound = 1.0 / math.sqrt(a)
            self.weights.append(nn.Parameter(torch.empty(count, a, b).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(count, b).uniform_(-bound, bound)))
            self.norms.append(_ExpertNorm(norm, count, b))
        self.activation = ACTIVATIONS[activation]()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        z = x
        for layer, (weight, bias, norm) in enumerate(zip(self.weights, self.biases, self.norms, strict=True)):
            if layer == 0:  # every expert reads the same rows: one product with the experts side by side
                flat = weight.permute(1, 0, 2).reshape(weight.shape[1], -1)
                z = (x @ flat).reshape(n, self.count, weight.shape[2])
            else:
                z = torch.einsum("ned,edh->neh", z, weight)
            z = self.drop(self.activation(norm(z + bias)))
        return z


class _ExpertNorm(nn.Module):
    """Normalization of ``(n, E, d)`` expert features, per expert: layer norm over each expert's ``d``
    features with its own affine weights, or batch norm of each of the ``E·d`` features; or none."""

    def __init__(self, norm: str, count: int, dim: int) -> None:
        super().__init__()
        self.kind = norm
        if norm == "layer":
            self.weight = nn.Parameter(torch.ones(count, dim))
            self.bias = nn.Parameter(torch.zeros(count, dim))
        elif norm == "batch":
            self.batch = BatchNorm(count * dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.kind == "layer":
            return F.layer_norm(z, z.shape[-1:]) * self.weight + self.bias
        if self.kind == "batch":
            return self.batch(z.reshape(z.shape[0], z.shape[1] * z.shape[2])).reshape(z.shape)
        return z


class SoftmaxGate(nn.Module):
    """``g(z) = softmax(W z)``: mixture weights over ``experts`` from a linear map of the gate's input.

    No bias, as in the papers' gates (MMoE: ``g^k(x) = softmax(W_gk x)``; PLE: ``w^k(x) = softmax(W^k_g x)``).
    """

    def __init__(self, d_in: int, experts: int) -> None:
        super().__init__()
        self.logits = nn.Linear(d_in, experts, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(z), dim=-1)


def mix(weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """``Σ_e weights[:, e] · experts[:, e]``: ``(n, E)`` weights and ``(n, E, d)`` outputs -> ``(n, d)``."""
    return (weights.to(experts.dtype).unsqueeze(-1) * experts).sum(dim=1)


class UsageMeter:
    """Each task's mean gate weight per expert over the last forward pass that had rows of the task.

    :meth:`record` keeps ``weights.mean(0)`` (detached, on the weights' device) when the batch has rows of
    the task; a batch without them leaves the previous value (the trainer averages over steps, and a shard
    without a task's rows says nothing about its gate). Before any row: uniform weights.
    """

    def __init__(self, tasks: Sequence[str], experts: int) -> None:
        self.tasks, self.experts = list(tasks), experts
        self.usage: dict[str, torch.Tensor] = {}

    def record(self, task: str, weights: torch.Tensor) -> None:
        if weights.shape[0] > 0:
            self.usage[task] = weights.detach().mean(dim=0)

    def get(self, device: torch.device) -> dict[str, torch.Tensor]:
        """``{task: (experts,)}``; uniform weights on ``device`` for a task not seen yet."""
        uniform = torch.full((self.experts,), 1.0 / self.experts, device=device)
        return {t: self.usage.get(t, uniform) for t in self.tasks}
