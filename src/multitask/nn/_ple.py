"""Progressive layered extraction (PLE) and its one-level form, customized gate control (CGC).

Tang, H., Liu, J., Zhao, M. & Gong, X. (2020). Progressive layered extraction (PLE): a novel multi-task
learning model for personalized recommendations. RecSys 2020, 269-278.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from multitask.nn._base import Architecture, InputEncoders, InputSpec, TaskHeads
from multitask.nn._experts import Experts, SoftmaxGate, UsageMeter, check_count, check_widths, mix
from multitask.nn._mlp import MLP, check_activation, check_dropout, check_norm
from multitask.tasks import Task

__all__ = ["CGC", "PLE", "ExtractionLevel"]


class ExtractionLevel(nn.Module):
    """One extraction level: shared experts, each task's own experts and gate, and (but at the last level) the
    shared gate.

    Task ``t``'s gate mixes its own ``K`` experts and the ``S`` shared ones (in that order),
    ``z_t' = Σ softmax(W_t z_t) · [E_t(z_t); E_s(z_s)]``; the shared gate mixes every expert of the level,
    every task's and the shared ones, ``z_s' = Σ softmax(W_s z_s) · [E_1(z_1); …; E_T(z_T); E_s(z_s)]``.
    """

    def __init__(
        self,
        tasks: int,
        d_in: int,
        shared: int,
        own: int,
        hidden: Sequence[int],
        activation: str,
        norm: str,
        dropout: float,
        shared_gate: bool,
    ) -> None:
        super().__init__()
        self.shared_experts = Experts(shared, d_in, hidden, activation, norm, dropout)
        self.task_experts = nn.ModuleList(Experts(own, d_in, hidden, activation, norm, dropout) for _ in range(tasks))
        self.task_gates = nn.ModuleList(SoftmaxGate(d_in, own + shared) for _ in range(tasks))
        self.shared_gate = SoftmaxGate(d_in, tasks * own + shared) if shared_gate else None


class PLE(Architecture):
    """Progressive layered extraction: levels of shared and task-specific experts, gated per task and shared.

    Level ``l`` (of ``levels``) holds ``shared_experts`` experts reading the shared stream ``z_s`` and, per
    task, ``task_experts`` experts reading the task's stream ``z_t``; each expert is dense blocks ``d ->
    expert_hidden[0] -> ... -> expert_hidden[-1]``. Task ``t``'s gate, ``softmax(W_t z_t)``, mixes its own
    and the shared experts into ``z_t`` of the next level; at every level but the last a shared gate,
    ``softmax(W_s z_s)``, mixes ALL experts of the level (every task's and the shared ones) into the next
    ``z_s`` (Tang et al., RecSys 2020, eq. 5-6). At level 1 every stream is the encoded input (each source
    encoded to ``expert_hidden[0]`` features by its own encoder; the rows of all sources pass the experts
    together). The last level's task gates feed each task's tower (dense blocks ``expert_hidden[-1] ->
    tower_hidden…``, ``[]``: none) and head (:class:`~multitask.nn.TaskHeads`).

    Which parameters are whose (a parameter is shared when more than one task's loss depends on it):

    * task ``t``'s: its experts at the last level and its gates at the last two levels (the gate of level
      ``L − 1`` feeds only task ``t``'s last-level experts and gate), its tower and head;
    * shared: the encoders, every shared expert and shared gate, the task experts below the last level and the
      task gates below level ``L − 1`` (through the shared gates, they reach every task).

    :meth:`representation` is what the task parts read, per source (positional key ``s0``, ``s1``, …), for
    the tasks reading that source in their order: ``"s0.inputs"`` ``(n, T_s, d)``, each task's stream at
    level ``max(L − 1, 1)``; for ``L ≥ 2`` ``"s0.experts"`` ``(n, T_s·K + S, d)``, the outputs of those tasks'
    experts and the shared experts at level ``L − 1``; ``"s0.shared"`` ``(n, S, d)``, the shared experts at
    the last level. Each is a tensor of its own that only the task parts read.

    :meth:`gate_usage`: each task's last-level gate weights, own experts first then the shared ones, averaged
    over the rows of the last forward pass. Defaults: ``levels=2``, ``shared_experts=2``, ``task_experts=2``,
    ``expert_hidden=(64,)``, ``tower_hidden=(32,)``, ``activation="relu"``, ``norm="none"``, ``dropout=0.0``,
    ``head="auto"``.
    """

    name = "ple"
    tuned: ClassVar[dict[str, tuple[int | str, ...]]] = {"shared_experts": (1, 2, 4), "task_experts": (1, 2), "levels": (1, 2, 3)}

    def __init__(
        self,
        inputs: dict[str, InputSpec],
        tasks: list[Task],
        task_source: dict[str, str],
        output_sizes: dict[str, int] | None = None,
        levels: int = 2,
        shared_experts: int = 2,
        task_experts: int = 2,
        expert_hidden: Sequence[int] = (64,),
        tower_hidden: Sequence[int] = (32,),
        activation: str = "relu",
        norm: str = "none",
        dropout: float = 0.0,
        head: str = "auto",
        head_penalty: float = 1e-3,
        task_embedding: int = 8,
    ) -> None:
        super().__init__(inputs, tasks, task_source, output_sizes)
        self.levels = check_count("levels", levels, 1, 16)
        self.shared_experts = check_count("shared_experts", shared_experts)
        self.task_experts = check_count("task_experts", task_experts)
        self.expert_hidden = check_widths("expert_hidden", expert_hidden)
        self.tower_hidden = check_widths("tower_hidden", tower_hidden, allow_empty=True)
        self.dropout = check_dropout(dropout)
        check_activation(activation)
        check_norm(norm)
        self.activation, self.norm = activation, norm
        self.head, self.head_penalty, self.task_embedding = head, head_penalty, task_embedding
        width, d = self.expert_hidden[0], self.expert_hidden[-1]
        self.encoders = InputEncoders(self.inputs, width, activation, norm, self.dropout)
        self.source_keys = self.encoders.source_keys
        count = len(self.tasks)
        self.extraction = nn.ModuleList(
            ExtractionLevel(
                count, width if level == 0 else d, self.shared_experts, self.task_experts, self.expert_hidden,
                activation, norm, self.dropout, shared_gate=level < self.levels - 1,
            )
            for level in range(self.levels)
        )
        towers = (d, *self.tower_hidden)
        self.towers = nn.ModuleList(MLP(towers, activation, norm, self.dropout) for _ in self.tasks)
        self.task_heads = TaskHeads(self.tasks, towers[-1], self.output_sizes, head, head_penalty, task_embedding)
        self.meter = UsageMeter([t.name for t in self.tasks], self.task_experts + self.shared_experts)
        #: the positions of the tasks reading each source, and each task's position among them
        self.source_tasks = {s: [i for i, t in enumerate(self.tasks) if self.task_source[t.name] == s] for s in inputs}
        self.local_index = [self.source_tasks[self.task_source[t.name]].index(i) for i, t in enumerate(self.tasks)]

    # ---- forward, split in two so that balancing methods can work on the representation -------------------
    def representation(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every level's shared part, up to what the task parts read (see the class docstring)."""
        sources = list(self.source_keys)
        encoded = self.encoders(inputs)
        sizes = [encoded[s].shape[0] for s in sources]
        h = torch.cat([encoded[s] for s in sources], dim=0)
        tasks, last = len(self.tasks), self.levels - 1
        streams, shared_stream = [h] * tasks, h
        boundary: torch.Tensor | None = None
        for index, level in enumerate(self.extraction[:-1]):
            assert isinstance(level, ExtractionLevel) and level.shared_gate is not None
            own = [experts(z) for experts, z in zip(level.task_experts, streams, strict=True)]
            shared = level.shared_experts(shared_stream)
            pooled = torch.cat([*own, shared], dim=1)
            if index == last - 1:  # the task gates of level L - 1 belong to the task parts
                boundary = pooled
            else:
                streams = [
                    mix(gate(z), torch.cat([mine, shared], dim=1))
                    for gate, z, mine in zip(level.task_gates, streams, own, strict=True)
                ]
            shared_stream = mix(level.shared_gate(shared_stream), pooled)
        inputs_at = torch.stack(streams, dim=1)  # the task streams at level max(L - 1, 1)
        top = self.extraction[-1]
        assert isinstance(top, ExtractionLevel)
        top_shared = top.shared_experts(shared_stream)
        out: dict[str, torch.Tensor] = {}
        k, s = self.task_experts, self.shared_experts
        start = 0
        for source, n in zip(sources, sizes, strict=True):
            key, rows, mine = self.source_keys[source], slice(start, start + n), self.source_tasks[source]
            out[f"{key}.inputs"] = inputs_at[rows][:, mine]
            if boundary is not None:
                columns = [t * k + j for t in mine for j in range(k)] + [tasks * k + j for j in range(s)]
                out[f"{key}.experts"] = boundary[rows][:, columns]
            out[f"{key}.shared"] = top_shared[rows]
            start += n
        return out

    def heads(self, representation: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each task's part: its gate of level ``L − 1`` (``L ≥ 2``), its last-level experts and gate, tower, head."""
        k, s = self.task_experts, self.shared_experts
        top = self.extraction[-1]
        assert isinstance(top, ExtractionLevel)
        features = {}
        for i, task in enumerate(self.tasks):
            key, j = self.source_keys[self.task_source[task.name]], self.local_index[i]
            z = representation[f"{key}.inputs"][:, j]
            if self.levels > 1:
                below = self.extraction[-2]
                assert isinstance(below, ExtractionLevel)
                pooled = representation[f"{key}.experts"]
                experts = torch.cat([pooled[:, j * k : (j + 1) * k], pooled[:, pooled.shape[1] - s :]], dim=1)
                z = mix(below.task_gates[i](z), experts)
            weights = top.task_gates[i](z)
            self.meter.record(task.name, weights)
            experts = torch.cat([top.task_experts[i](z), representation[f"{key}.shared"]], dim=1)
            features[task.name] = self.towers[i](mix(weights, experts))
        return self.task_heads(features)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{task: output}`` on the rows of each task's source."""
        return self.heads(self.representation(inputs))

    # ---- which parameters are shared ----------------------------------------------------------------------
    def _levels(self) -> list[ExtractionLevel]:
        return [level for level in self.extraction if isinstance(level, ExtractionLevel)]

    def shared_parameters(self) -> list[nn.Parameter]:
        """Encoders, shared experts and gates, task experts below the last level, task gates below level L − 1."""
        params = [*self.encoders.parameters()]
        for index, level in enumerate(self._levels()):
            params += level.shared_experts.parameters()
            if level.shared_gate is not None:
                params += level.shared_gate.parameters()
            if index < self.levels - 1:
                params += level.task_experts.parameters()
            if index < self.levels - 2:
                params += level.task_gates.parameters()
        return [*params, *self.task_heads.shared_parameters()]

    def task_parameters(self) -> dict[str, list[nn.Parameter]]:
        """Each task's last-level experts, gates of the last two levels, tower and head."""
        levels, heads = self._levels(), self.task_heads.task_parameters()
        out = {}
        for i, task in enumerate(self.tasks):
            params = [*levels[-1].task_experts[i].parameters(), *levels[-1].task_gates[i].parameters()]
            if self.levels > 1:
                params += levels[-2].task_gates[i].parameters()
            out[task.name] = [*params, *self.towers[i].parameters(), *heads[task.name]]
        return out

    def gate_usage(self) -> dict[str, torch.Tensor]:
        """``{task: (task_experts + shared_experts,)}``: the task's last-level gate weights (own experts first),
        averaged over the rows of the last forward pass."""
        return self.meter.get(next(self.parameters()).device)


class CGC(PLE):
    """Customized gate control: PLE with one level, task and shared experts mixed by each task's gate only.

    ``y_t = h_t(Σ softmax(W_t x) · [E_t(x); E_s(x)])`` (Tang et al., RecSys 2020, eq. 1-4): there is no
    shared gate (it only feeds a next level). Task ``t``'s experts, gate, tower and head are its own; the
    encoders and shared experts are shared. :meth:`representation`: per source ``"s0.inputs"`` (the encoded
    rows, once per task reading the source) and ``"s0.shared"`` (the shared experts' outputs). Defaults as
    :class:`PLE`'s.
    """

    name = "cgc"
    tuned: ClassVar[dict[str, tuple[int | str, ...]]] = {"shared_experts": (1, 2, 4), "task_experts": (1, 2)}

    def __init__(
        self,
        inputs: dict[str, InputSpec],
        tasks: list[Task],
        task_source: dict[str, str],
        output_sizes: dict[str, int] | None = None,
        shared_experts: int = 2,
        task_experts: int = 2,
        expert_hidden: Sequence[int] = (64,),
        tower_hidden: Sequence[int] = (32,),
        activation: str = "relu",
        norm: str = "none",
        dropout: float = 0.0,
        head: str = "auto",
        head_penalty: float = 1e-3,
        task_embedding: int = 8,
    ) -> None:
        super().__init__(
            inputs, tasks, task_source, output_sizes, 1, shared_experts, task_experts, expert_hidden, tower_hidden,
            activation, norm, dropout, head, head_penalty, task_embedding,
        )
