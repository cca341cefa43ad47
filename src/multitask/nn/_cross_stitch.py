"""Cross-stitch networks: one column per task, mixed after every layer by learned linear units.

Misra, I., Shrivastava, A., Gupta, A. & Hebert, M. (2016). Cross-stitch networks for multi-task learning.
CVPR 2016, 3994-4003.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from multitask.errors import ConfigError
from multitask.nn._base import Architecture, InputEncoders, InputSpec, TaskHeads
from multitask.nn._mlp import check_activation, check_dropout, check_hidden, check_norm, dense
from multitask.tasks import Task

__all__ = ["CrossStitch", "stitch_init"]


def stitch_init(columns: int, self_weight: float) -> torch.Tensor:
    """The initial ``(T, T)`` unit: ``self_weight`` on the diagonal, ``(1 − self_weight) / (T − 1)`` elsewhere.

    Every row sums to 1 (a convex combination, the paper's (α_S, α_D) = (0.9, 0.1) for two tasks); one
    column is ``[[1]]``.
    """
    if columns == 1:
        return torch.ones(1, 1)
    alpha = torch.full((columns, columns), (1.0 - self_weight) / (columns - 1))
    alpha.fill_diagonal_(self_weight)
    return alpha


class CrossStitch(Architecture):
    """Cross-stitch network: ``x̃_t^l = Σ_s α^l_{ts} h_s^l`` feeds layer ``l + 1`` of column ``t``.

    One column per task (separate networks, as in the paper): its own input encoders (one per source,
    width ``hidden[0]``, :class:`~multitask.nn.InputEncoders`) and dense blocks ``hidden[0] -> ... ->
    hidden[-1]``. After each of the ``len(hidden)`` layers of the columns (the encoder, then each dense block)
    a cross-stitch unit, a learned ``(T, T)`` matrix ``α^l``, mixes the columns' activations row by row:
    the next input of column ``t`` is ``Σ_s α^l_{ts} h_s^l``. Task ``t``'s head
    (:class:`~multitask.nn.TaskHeads`) reads column ``t`` after the last unit. ``α`` starts at
    ``self_weight`` on the diagonal and ``(1 − self_weight)/(T − 1)`` elsewhere (the paper's best
    initialisation, 0.9/0.1). Rows of every source pass every column together, so tasks on different sources
    still mix (a source's encoder in column ``s`` serves task ``t`` through ``α_{ts}``).

    * :meth:`representation`: the columns' last-layer activations before the last unit, stacked, per
      source ``(n_s, T, hidden[-1])``; :meth:`heads` applies the last unit and each task's head. There is no
      single shared representation in a cross-stitch network; this is what every task's output reads.
    * :meth:`shared_parameters`: every column and every unit. A column's weights reach every task through
      the off-diagonal ``α``, so their gradient depends on more than one task's loss — what gradient
      balancing means by shared. :meth:`task_parameters`: each task's head.

    A column per task costs ``T`` networks: more than ``max_columns`` tasks (default 16) is refused; use an
    architecture that shares one network (``hard-sharing``, the many-task ``head`` forms) instead.
    Defaults: ``hidden=(128, 64)``, ``dropout=0.0``, ``activation="relu"``, ``norm="none"``,
    ``self_weight=0.9``, ``max_columns=16``.

    Differences from the paper: the units sit after the input encoder and each dense layer (for images, after
    the conv encoder's projection, not after each conv/pool layer), and ``α`` is one matrix per unit (not
    per channel) trained at the common learning rate (the paper scales it up by 10²–10³).
    """

    name = "cross-stitch"

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
        self_weight: float = 0.9,
        max_columns: int = 16,
        head: str = "auto",
        head_penalty: float = 1e-3,
        task_embedding: int = 8,
    ) -> None:
        super().__init__(inputs, tasks, task_source, output_sizes)
        self.hidden = check_hidden(hidden)
        self.dropout = check_dropout(dropout)
        check_activation(activation)
        check_norm(norm)
        if isinstance(self_weight, bool) or not isinstance(self_weight, int | float) or not (
            math.isfinite(self_weight) and 0.0 <= self_weight <= 1.0
        ):
            raise ConfigError(f"self_weight must be a number in [0, 1], got {self_weight!r}")
        if isinstance(max_columns, bool) or not isinstance(max_columns, int) or max_columns < 1:
            raise ConfigError(f"max_columns must be a whole number >= 1, got {max_columns!r}")
        if len(self.tasks) > max_columns:
            raise ConfigError(
                f"cross-stitch builds one network per task: {len(self.tasks)} tasks exceed "
                f"max_columns={max_columns}; use hard-sharing (with head='shared' or 'embedding' for many "
                "tasks) or raise max_columns"
            )
        self.activation, self.norm = activation, norm
        self.self_weight, self.max_columns = self_weight, max_columns
        self.head, self.head_penalty, self.task_embedding = head, head_penalty, task_embedding
        n = len(self.tasks)
        self.encoders = nn.ModuleList(
            InputEncoders(self.inputs, self.hidden[0], activation, norm, self.dropout) for _ in range(n)
        )
        self.layers = nn.ModuleList(
            nn.ModuleList(dense(a, b, activation, norm, self.dropout) for _ in range(n))
            for a, b in itertools.pairwise(self.hidden)
        )
        self.units = nn.ParameterList(
            nn.Parameter(stitch_init(n, float(self_weight))) for _ in range(len(self.hidden))
        )
        self.task_heads = TaskHeads(self.tasks, self.hidden[-1], self.output_sizes, head, head_penalty, task_embedding)
        self.column = {t.name: i for i, t in enumerate(self.tasks)}

    def representation(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every column's last-layer activations, before the last unit: per source ``(n_s, T, hidden[-1])``.

        All sources' rows pass the columns as one batch (the same row order in every column), so a source
        with 0 rows costs nothing.
        """
        sources = list(self.inputs)
        columns = []
        for encoders in self.encoders:
            assert isinstance(encoders, InputEncoders)
            columns.append(torch.cat([encoders[encoders.source_keys[s]](inputs[s]) for s in sources], dim=0))
        h = torch.stack(columns, dim=1)  # (N, T, hidden[0])
        for unit, layer in zip(self.units, self.layers, strict=False):
            mixed = torch.einsum("ts,nsd->ntd", unit, h)
            assert isinstance(layer, nn.ModuleList)
            h = torch.stack([block(mixed[:, i]) for i, block in enumerate(layer)], dim=1)
        sizes = [inputs[s].shape[0] for s in sources]
        return dict(zip(sources, torch.split(h, sizes, dim=0), strict=True))

    def heads(self, representation: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Task ``t``'s output from ``Σ_s α^L_{ts} h_s`` (the last unit) on the rows of its source."""
        last = self.units[-1]
        mixed = {s: torch.einsum("ts,nsd->ntd", last, h) for s, h in representation.items()}
        features = {t.name: mixed[self.task_source[t.name]][:, self.column[t.name]] for t in self.tasks}
        return self.task_heads(features)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{task: output}`` on the rows of each task's source."""
        return self.heads(self.representation(inputs))

    def alphas(self) -> list[torch.Tensor]:
        """The cross-stitch units ``α^1, …, α^L`` (detached ``(T, T)``; row ``t`` mixes into column ``t``)."""
        return [unit.detach() for unit in self.units]

    def shared_parameters(self) -> list[nn.Parameter]:
        """The columns, the cross-stitch units and shared heads: each reaches more than one task's loss."""
        return [
            *self.encoders.parameters(),
            *self.layers.parameters(),
            *self.units.parameters(),
            *self.task_heads.shared_parameters(),
        ]

    def task_parameters(self) -> dict[str, list[nn.Parameter]]:
        """Each task's own head (or its head's deviation or embedding)."""
        return self.task_heads.task_parameters()
