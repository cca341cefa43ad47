"""Shared-bottom network: a shared bottom MLP, then one tower MLP and one head per task.

Caruana, R. (1997). Multitask learning. Machine Learning, 28(1), 41-75 — in the form recommender systems use
it (the "shared-bottom" baseline of MMoE, ESMM, PLE, AITM): the tasks share the lower layers and each has a
deeper task-specific tower, rather than a single linear head on a shared trunk (``hard-sharing``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from multitask.errors import ConfigError
from multitask.nn._base import Architecture, InputEncoders, InputSpec, TaskHeads
from multitask.nn._mlp import MAX_WIDTH, MLP, check_activation, check_dropout, check_norm
from multitask.tasks import Task

__all__ = ["SharedBottom", "Towers", "check_widths"]


def check_widths(value: object, option: str) -> tuple[int, ...]:
    """``value`` as a tuple of layer widths, or ConfigError naming ``option``: whole numbers in [1, 16384]."""
    if (
        not isinstance(value, list | tuple)
        or not value
        or any(isinstance(h, bool) or not isinstance(h, int) or not 1 <= h <= MAX_WIDTH for h in value)
    ):
        raise ConfigError(f"{option} must be one or more layer widths in [1, {MAX_WIDTH}], e.g. [64, 32]; got {value!r}")
    return tuple(value)


class Towers(nn.Module):
    """One MLP per task, ``in_dim -> hidden[0] -> ... -> hidden[-1]``: ``{task: (n, d)} -> {task: (n, hidden[-1])}``.

    Modules are keyed by position (``t0``, ``t1``, … in the order of ``names``), so that any task name works.
    """

    def __init__(
        self, names: Sequence[str], in_dim: int, hidden: Sequence[int], activation: str, norm: str, dropout: float
    ) -> None:
        super().__init__()
        self.keys = {name: f"t{i}" for i, name in enumerate(names)}
        self.towers = nn.ModuleDict(
            {key: MLP((in_dim, *hidden), activation, norm, dropout) for key in self.keys.values()}
        )

    def tower(self, name: str) -> nn.Module:
        """The tower of task ``name``."""
        return self.towers[self.keys[name]]

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: self.tower(name)(x) for name, x in features.items()}


class SharedBottom(Architecture):
    """Shared bottom, task towers: ``head_t(tower_t(bottom(encoder_s(x))))`` for task ``t`` reading source ``s``.

    * encoder per source: ``Linear(d_s, bottom_hidden[0]) -> norm -> activation -> dropout`` (images: a small
      conv net ending in the same block);
    * shared bottom: dense blocks ``bottom_hidden[0] -> ... -> bottom_hidden[-1]``;
    * one tower per task: dense blocks ``bottom_hidden[-1] -> tower_hidden[0] -> ... -> tower_hidden[-1]``;
    * task heads over ``tower_hidden[-1]`` features (:class:`~multitask.nn.TaskHeads`: ``head``,
      ``head_penalty``, ``task_embedding``).

    :meth:`representation` is the bottom's output per source. Shared parameters: the encoders, the bottom
    (and the group heads of ``head="shared"``/``"embedding"``); each task's own: its tower and head.

    Defaults: ``bottom_hidden=(128, 64)``, ``tower_hidden=(32,)``, ``dropout=0.0``, ``activation="relu"``,
    ``norm="none"``, ``head="auto"``, ``head_penalty=1e-3``, ``task_embedding=8``.
    """

    name = "shared-bottom"

    def __init__(
        self,
        inputs: dict[str, InputSpec],
        tasks: list[Task],
        task_source: dict[str, str],
        output_sizes: dict[str, int] | None = None,
        bottom_hidden: Sequence[int] = (128, 64),
        tower_hidden: Sequence[int] = (32,),
        dropout: float = 0.0,
        activation: str = "relu",
        norm: str = "none",
        head: str = "auto",
        head_penalty: float = 1e-3,
        task_embedding: int = 8,
    ) -> None:
        super().__init__(inputs, tasks, task_source, output_sizes)
        bottom = check_widths(bottom_hidden, "bottom_hidden")
        towers = check_widths(tower_hidden, "tower_hidden")
        check_activation(activation)
        check_norm(norm)
        self.bottom_hidden, self.tower_hidden = bottom_hidden, tower_hidden
        self.dropout, self.activation, self.norm = check_dropout(dropout), activation, norm
        self.head, self.head_penalty, self.task_embedding = head, head_penalty, task_embedding
        self.encoders = InputEncoders(self.inputs, bottom[0], activation, norm, self.dropout)
        self.bottom = MLP(bottom, activation, norm, self.dropout)
        self.towers = Towers([t.name for t in self.tasks], bottom[-1], towers, activation, norm, self.dropout)
        self.task_heads = TaskHeads(self.tasks, towers[-1], self.output_sizes, head, head_penalty, task_embedding)

    def representation(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The bottom's output ``bottom(encoder_s(x_s))`` of every source: ``(n_s, bottom_hidden[-1])``."""
        return self.encoders.encode_together(inputs, self.bottom)

    def heads(self, representation: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``head_t(tower_t(z_s))`` of each task on the rows of its source."""
        towers = self.towers({t.name: representation[self.task_source[t.name]] for t in self.tasks})
        return self.task_heads(towers)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{task: output}`` on the rows of each task's source."""
        return self.heads(self.representation(inputs))

    def shared_parameters(self) -> list[nn.Parameter]:
        """The input encoders, the bottom, and shared group heads."""
        return [*self.encoders.parameters(), *self.bottom.parameters(), *self.task_heads.shared_parameters()]

    def task_parameters(self) -> dict[str, list[nn.Parameter]]:
        """Each task's tower and own head parameters."""
        heads = self.task_heads.task_parameters()
        return {t.name: [*self.towers.tower(t.name).parameters(), *heads[t.name]] for t in self.tasks}
