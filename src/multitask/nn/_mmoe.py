"""Multi-gate mixture of experts: one pool of expert networks, one gate per task mixing them for its tower.

Ma, J., Zhao, Z., Yi, X., Chen, J., Hong, L. & Chi, E. H. (2018). Modeling task relationships in multi-task
learning with multi-gate mixture-of-experts. KDD 2018, 1930-1939.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
from torch import nn

from multitask.nn._base import Architecture, InputEncoders, InputSpec, TaskHeads
from multitask.nn._experts import Experts, SoftmaxGate, UsageMeter, check_count, check_widths, mix
from multitask.nn._mlp import MLP, check_activation, check_dropout, check_norm
from multitask.tasks import Task

__all__ = ["MMoE", "MultiGate"]


class MultiGate(Architecture):
    """One pool of experts shared by every task and one gate per task: the body of MMoE and DSelect-k.

    ``y_t = head_t(tower_t(Σ_e g_t(h)_e f_e(h)))`` with ``h`` the encoded input of task ``t``'s source.
    A subclass's constructor calls :meth:`_build` with a function that makes one task's gate: a module
    ``(n, d) -> (n, E)`` whose rows lie on the simplex, with a class attribute ``reads_input`` (False: the
    gate is a parameter of the task alone and reads only the number of rows) and optionally ``penalty()``.

    Sources: every source is encoded to ``expert_hidden[0]`` features by its own encoder
    (:class:`~multitask.nn.InputEncoders`); the rows of all sources pass the same experts as one batch, so
    tasks reading different sources share the experts; a task's gate and tower see the rows of its source.
    """

    expert_hidden: tuple[int, ...]
    tower_hidden: tuple[int, ...]

    def _build(
        self,
        experts: int,
        expert_hidden: Sequence[int],
        tower_hidden: Sequence[int],
        activation: str,
        norm: str,
        dropout: float,
        head: str,
        head_penalty: float,
        task_embedding: int,
        make_gate: Callable[[int, int], nn.Module],
    ) -> None:
        """Check and keep the common options; build encoders, experts, gates (``make_gate(d, E)``), towers, heads."""
        self.experts = check_count("experts", experts)
        self.expert_hidden = check_widths("expert_hidden", expert_hidden)
        self.tower_hidden = check_widths("tower_hidden", tower_hidden, allow_empty=True)
        self.dropout = check_dropout(dropout)
        check_activation(activation)
        check_norm(norm)
        self.activation, self.norm = activation, norm
        self.head, self.head_penalty, self.task_embedding = head, head_penalty, task_embedding
        width = self.expert_hidden[0]
        self.encoders = InputEncoders(self.inputs, width, activation, norm, self.dropout)
        self.source_keys = self.encoders.source_keys
        self.expert_pool = Experts(self.experts, width, self.expert_hidden, activation, norm, self.dropout)
        self.gates = nn.ModuleList(make_gate(width, self.experts) for _ in self.tasks)
        self.routes_by_input = any(getattr(g, "reads_input", True) for g in self.gates)
        towers = (self.expert_hidden[-1], *self.tower_hidden)
        self.towers = nn.ModuleList(MLP(towers, activation, norm, self.dropout) for _ in self.tasks)
        self.task_heads = TaskHeads(self.tasks, towers[-1], self.output_sizes, head, head_penalty, task_embedding)
        self.meter = UsageMeter([t.name for t in self.tasks], self.experts)

    # ---- forward, split in two so that balancing methods can work on the representation -------------------
    def representation(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per source (positional key ``s0``, ``s1``, …): ``"s0.experts"``, the experts' outputs ``(n_s, E,
        expert_hidden[-1])``, and, where the gates read the input, ``"s0.input"``, the encoded rows
        ``(n_s, expert_hidden[0])`` that the gates read (a tensor of its own: the experts read the encoders'
        output, so the two entries' gradients do not overlap).
        """
        sources = list(self.source_keys)
        encoded = self.encoders(inputs)
        sizes = [encoded[s].shape[0] for s in sources]
        h = torch.cat([encoded[s] for s in sources], dim=0)
        out: dict[str, torch.Tensor] = {}
        parts = zip(sources, self.expert_pool(h).split(sizes), h.split(sizes), strict=True)
        for source, experts, rows in parts:
            key = self.source_keys[source]
            out[f"{key}.experts"] = experts
            if self.routes_by_input:
                out[f"{key}.input"] = rows
        return out

    def heads(self, representation: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each task's output: its gate mixes the experts of its source's rows, then its tower and head."""
        features = {}
        for i, task in enumerate(self.tasks):
            key = self.source_keys[self.task_source[task.name]]
            experts = representation[f"{key}.experts"]
            rows = representation.get(f"{key}.input", experts.new_empty(experts.shape[0], 0))
            weights = self.gates[i](rows)
            self.meter.record(task.name, weights)
            features[task.name] = self.towers[i](mix(weights, experts))
        return self.task_heads(features)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{task: output}`` on the rows of each task's source."""
        return self.heads(self.representation(inputs))

    # ---- which parameters are shared ----------------------------------------------------------------------
    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters used by every task: the input encoders, the experts (and shared heads)."""
        return [*self.encoders.parameters(), *self.expert_pool.parameters(), *self.task_heads.shared_parameters()]

    def task_parameters(self) -> dict[str, list[nn.Parameter]]:
        """Each task's gate, tower and head."""
        heads = self.task_heads.task_parameters()
        return {
            t.name: [*self.gates[i].parameters(), *self.towers[i].parameters(), *heads[t.name]]
            for i, t in enumerate(self.tasks)
        }

    # ---- hooks --------------------------------------------------------------------------------------------
    def gate_usage(self) -> dict[str, torch.Tensor]:
        """``{task: (E,)}``: the task's gate weights averaged over the rows of the last forward pass."""
        device = next(self.parameters()).device
        return self.meter.get(device)

    def penalty(self) -> torch.Tensor | None:
        """The heads' penalty plus every gate's (DSelect-k's entropy); None when there is none."""
        terms = [self.task_heads.penalty()]
        for gate in self.gates:
            penalty = getattr(gate, "penalty", None)
            terms.append(penalty() if callable(penalty) else None)
        present = [t for t in terms if t is not None]
        if not present:
            return None
        total = present[0]
        for term in present[1:]:
            total = total + term.to(total.device)
        return total


class MMoE(MultiGate):
    """Multi-gate mixture of experts: ``y_t = h_t(Σ_e softmax(W_t x)_e f_e(x))`` (Ma et al., KDD 2018).

    * ``experts`` expert networks ``f_e`` shared by all tasks, each dense blocks ``expert_hidden[0] ->
      expert_hidden[0] -> ... -> expert_hidden[-1]`` over the encoded input ``x`` (each source is first
      encoded to ``expert_hidden[0]`` features by its own ``Linear -> norm -> activation -> dropout``, or a
      small conv net for images);
    * one softmax gate per task, ``g_t(x) = softmax(W_t x)`` (a linear map of the encoded input, no bias);
    * one tower per task, dense blocks ``expert_hidden[-1] -> tower_hidden…`` (``[]``: none), then the
      task's head (:class:`~multitask.nn.TaskHeads`: ``head``, ``head_penalty``, ``task_embedding``).

    :meth:`representation`: per source the experts' outputs ``(n, E, d)`` and the encoded rows the gates
    read. Shared parameters: the encoders and the experts (and shared heads); each task's: its gate, tower
    and head. :meth:`gate_usage`: each task's mean gate weight per expert over the last forward pass.
    With one expert the gate is 1 and MMoE is a shared-bottom network with towers.

    Defaults: ``experts=4``, ``expert_hidden=(64,)``, ``tower_hidden=(32,)``, ``activation="relu"``,
    ``norm="none"``, ``dropout=0.0``, ``head="auto"``.
    """

    name = "mmoe"
    tuned: ClassVar[dict[str, tuple[int | str, ...]]] = {"experts": (2, 4, 8)}

    def __init__(
        self,
        inputs: dict[str, InputSpec],
        tasks: list[Task],
        task_source: dict[str, str],
        output_sizes: dict[str, int] | None = None,
        experts: int = 4,
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
        self._build(
            experts, expert_hidden, tower_hidden, activation, norm, dropout, head, head_penalty, task_embedding,
            SoftmaxGate,
        )
