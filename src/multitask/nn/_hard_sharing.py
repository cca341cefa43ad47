"""Hard parameter sharing: per-source input encoders and a shared trunk feed one linear head per task.

Caruana, R. (1997). Multitask learning. Machine Learning, 28(1), 41-75.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from multitask.nn._base import Architecture, InputEncoders, InputSpec, TaskHeads
from multitask.nn._mlp import MLP, check_activation, check_dropout, check_hidden, check_norm
from multitask.tasks import Task

__all__ = ["HardSharing", "InputSpec"]

class HardSharing(Architecture):
    """Hard parameter sharing: ``head_t(trunk(encoder_s(x)))`` for task ``t`` reading source ``s``.

    * encoder per source: tabular ``Linear(d_s, hidden[0]) -> norm -> activation -> dropout``; images a
      small conv net (:class:`~multitask.nn._conv.ConvEncoder`) ending in the same block;
    * shared trunk: dense blocks ``hidden[0] -> hidden[1] -> ... -> hidden[-1]``;
    * one head per task: ``Linear(hidden[-1], output_size)``; regression and binary heads return ``(n,)``,
      multiclass and multilabel ``(n, k)`` — or, with ``head="shared"`` or ``"embedding"``, heads that share
      a group head (:class:`~multitask.nn.TaskHeads`; ``head_penalty``, ``task_embedding``).

    The shared part (:meth:`shared_parameters`) is every encoder and the trunk; the task part
    (:meth:`task_parameters`) is each task's head. A source's encoder only gets gradient from the tasks that
    read it. Defaults: ``hidden=(128, 64)``, ``dropout=0.0``, ``activation="relu"``, ``norm="none"``.

    Any task or source name works (dots, slashes, unicode): modules are keyed by position, the encoder of
    the i-th source is ``encoders.s{i}`` and the head of the i-th task ``task_heads.t{i}``
    (:attr:`source_keys`, :attr:`head_keys`).
    """

    name = "hard-sharing"
    auto = True

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
        head: str = "auto",
        head_penalty: float = 1e-3,
        task_embedding: int = 8,
    ) -> None:
        super().__init__(inputs, tasks, task_source, output_sizes)
        self.hidden = check_hidden(hidden)
        self.dropout = check_dropout(dropout)
        check_activation(activation)
        check_norm(norm)
        self.activation, self.norm = activation, norm
        self.head, self.head_penalty, self.task_embedding = head, head_penalty, task_embedding
        self.encoders = InputEncoders(self.inputs, self.hidden[0], activation, norm, self.dropout)
        self.source_keys = self.encoders.source_keys
        self.trunk = MLP(self.hidden, activation, norm, self.dropout)
        self.task_heads = TaskHeads(self.tasks, self.hidden[-1], self.output_sizes, head, head_penalty, task_embedding)
        self.head_keys = self.task_heads.keys

    # ---- forward, split in two so that balancing methods can work on the representation -------------------
    def representation(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The shared representation ``trunk(encoder_s(x_s))`` of every source: ``(n_s, hidden[-1])``.

        All sources pass the trunk together (one concatenated batch), so a source with 0 rows still costs
        nothing and still connects its encoder to the graph.
        """
        return self.encoders.encode_together(inputs, self.trunk)

    def heads(self, representation: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each task's output on the rows of its source: ``(n,)`` or ``(n, k)`` by kind (see :class:`TaskHeads`)."""
        return self.task_heads({t.name: representation[self.task_source[t.name]] for t in self.tasks})

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{task: output}`` on the rows of each task's source."""
        return self.heads(self.representation(inputs))

    # ---- which parameters are shared ----------------------------------------------------------------------
    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters used by more than one task: the input encoders, the trunk, shared heads."""
        return [*self.encoders.parameters(), *self.trunk.parameters(), *self.task_heads.shared_parameters()]

    def task_parameters(self) -> dict[str, list[nn.Parameter]]:
        """Each task's own parameters (its head, or its head's deviation or embedding)."""
        return self.task_heads.task_parameters()

    def state_dict_from_v1(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``state`` as saved by file version 1 (encoders and heads keyed by name) with today's keys.

        Version 1 could not hold a name with a dot, so ``encoders.NAME.rest`` splits unambiguously.
        """
        renamed = {"encoders": self.source_keys, "task_heads": self.head_keys}
        upgraded: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            parts = key.split(".", 2)
            if len(parts) == 3 and parts[0] in renamed:
                parts[1] = renamed[parts[0]].get(parts[1], parts[1])
            upgraded[".".join(parts)] = value
        return upgraded
