"""Pooled network: one MLP and one output layer for every task, plus a per-task output bias.

``f_t(x) = W · mlp(x) + b + c_t``: every parameter is shared but the intercept ``c_t``. The deep member of the
``--baseline pooled`` comparison (its linear analogue is ``linear:pooled``); it makes sense when the tasks
predict the same quantity (long-form groups such as schools), and needs tasks of one kind and output size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from multitask.errors import ConfigError
from multitask.nn._base import Architecture, InputSpec
from multitask.nn._embedding import EmbeddingEncoder
from multitask.nn._mlp import MLP, check_activation, check_dropout, check_hidden, check_norm, dense
from multitask.tasks import Task


class PooledMLP(Architecture):
    """One network for all tasks: ``f_t(x) = head(trunk(encoder(x))) + c_t``; only the bias ``c_t`` is per task."""

    name = "pooled-mlp"
    task_kinds = ("regression", "binary", "multiclass", "multilabel")

    def __init__(
        self,
        inputs: dict[str, InputSpec],
        tasks: list[Task],
        task_source: dict[str, str],
        output_sizes: dict[str, int] | None = None,
        hidden: Sequence[int] = (128, 64),
        dropout: float = 0.0,
        activation: str = "relu",
        norm: str = "none",
    ) -> None:
        super().__init__(inputs, tasks, task_source, output_sizes)
        hidden = check_hidden(hidden)
        dropout = check_dropout(dropout)
        if not tasks:
            raise ConfigError("a model needs at least one task")
        check_activation(activation)
        check_norm(norm)
        sources = {task_source[t.name] for t in tasks}
        if len(sources) != 1 or len(inputs) != 1 or next(iter(sources)) not in inputs:
            raise ConfigError("a pooled network needs every task on one table of features")
        spec = next(iter(inputs.values()))
        if spec.dim is None:
            raise ConfigError("a pooled network takes tabular features, not images")
        sizes = {t.name: int((output_sizes or {}).get(t.name, 1)) for t in tasks}
        kinds = {t.kind for t in tasks}
        if len(kinds) != 1 or len(set(sizes.values())) != 1:
            raise ConfigError("a pooled network needs tasks of one kind and one output size")
        self.inputs = dict(inputs)
        self.tasks = list(tasks)
        self.task_source = {t.name: task_source[t.name] for t in tasks}
        self.output_sizes = sizes
        self.hidden, self.dropout, self.activation, self.norm = hidden, float(dropout), activation, norm
        self._scalar = next(iter(kinds)) in ("regression", "binary")
        width = next(iter(sizes.values()))
        self.encoder = (
            EmbeddingEncoder(spec.dim, spec.categories, hidden[0], activation, norm, dropout)
            if spec.categories
            else dense(spec.dim, hidden[0], activation, norm, dropout)
        )
        self.trunk = MLP(hidden, activation, norm, dropout)
        self.head = nn.Linear(hidden[-1], width)
        self.task_bias = nn.Parameter(torch.zeros(len(tasks), width))

    def representation(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The shared representation of the one source: ``(n, hidden[-1])``."""
        source = next(iter(self.inputs))
        return {source: self.trunk(self.encoder(inputs[source]))}

    def heads(self, representation: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each task's output: the shared head's plus the task's bias."""
        shared = self.head(next(iter(representation.values())))
        out = {}
        for i, t in enumerate(self.tasks):
            value = shared + self.task_bias[i]
            out[t.name] = value[:, 0] if self._scalar else value
        return out

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.heads(self.representation(inputs))

    def shared_parameters(self) -> list[nn.Parameter]:
        """Every parameter but the per-task biases."""
        return [*self.encoder.parameters(), *self.trunk.parameters(), *self.head.parameters()]

    def task_parameters(self) -> dict[str, list[nn.Parameter]]:
        """The per-task biases are rows of one tensor, listed under every task."""
        return {t.name: [self.task_bias] for t in self.tasks}
