"""Learning to branch: each node picks its parent in the layer below through a Gumbel-softmax relaxed choice.

Guo, P., Lee, C.-Y. & Ulbricht, D. (2020). Learning to branch for multi-task learning. ICML 2020, PMLR 119.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from multitask.errors import ConfigError
from multitask.nn._base import Architecture, InputEncoders, InputSpec, TaskHeads
from multitask.nn._mlp import MLP, check_activation, check_dropout, check_hidden, check_norm, dense
from multitask.tasks import Task

__all__ = ["LearnedTree"]


def _check_branches(branches: object, n_hidden: int) -> tuple[int, ...]:
    """Nodes per branching layer: a list as given, or one int repeated over every layer between root and tasks."""
    if isinstance(branches, int) and not isinstance(branches, bool):
        values: Any = [branches] * max(n_hidden - 2, 0)
    else:
        values = branches
    if not isinstance(values, list | tuple) or any(
        isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in values
    ):
        raise ConfigError(f"branches must be a positive whole number or a list of them, e.g. [2, 4]; got {branches!r}")
    if len(values) + 2 > n_hidden:
        raise ConfigError(
            f"branches={list(values)!r} has {len(values)} branching layer(s) and needs at least {len(values) + 2} "
            f"hidden layers (a shared first layer, one per branching layer, one per task); hidden has {n_hidden}"
        )
    return tuple(values)


def _check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


class LearnedTree(Architecture):
    """Learned branching (Guo et al., ICML 2020): node ``j`` of layer ``l`` reads ``Σ_i z_ij y_i^{(l-1)}``, ``z_j ~
    GumbelSoftmax(θ_j, τ)``; the tasks are the leaves; evaluation uses the argmax parents ``argmax_i θ_ij``.

    With ``hidden = [h_1, ..., h_L]`` and ``branches = [N_1, ..., N_B]`` (``B <= L - 2``):

    * layer 0, the root, shared by every task: the input encoders (``-> h_1``) and the dense blocks
      ``h_1 -> ... -> h_{L-B-1}`` (``trunk``);
    * layers ``1..B``: ``N_l`` nodes, each a dense block ``h_{L-B+l-2} -> h_{L-B+l-1}``; layer ``B + 1``: one node
      per task (``h_{L-1} -> h_L``), then the task's head (:class:`~multitask.nn.TaskHeads`);
    * node ``j`` of layer ``l`` has logits ``θ_j`` over the ``N_{l-1}`` nodes of layer ``l - 1`` (``N_0 = 1``) and
      reads ``Σ_i z_ij y_i`` with ``z_j = softmax((θ_j + g_j) / τ)``, ``g_ij ~ Gumbel(0, 1)`` drawn once per forward
      pass from torch's global random state (which the trainer seeds per epoch);
    * the temperature anneals geometrically with the training forward passes that build a graph, ``s`` (a
      buffer, so that resuming goes on where it stopped; one per step, or one or two per micro-batch under
      gradient accumulation, whose replayed pass sees the clock one tick later):
      ``τ_s = τ_0 (τ_f / τ_0)^{min(s / S, 1)}`` (``temperature``, ``final_temperature``, ``anneal_steps``);
    * in evaluation ``z_j`` is one-hot at ``argmax θ_j``: a fixed tree, deterministic, what a saved and loaded
      model predicts with. :meth:`learned_tree` writes that tree as the option ``tree`` of the ``tree``
      architecture (same ``hidden``) to retrain it, as the paper does.

    An int ``branches`` puts that many nodes in each of the ``L - 2`` layers between the root and the tasks.
    Defaults: ``branches=2``, ``hidden=(128, 64, 32)``, ``temperature=5.0``, ``final_temperature=0.1``,
    ``anneal_steps=1000``. :meth:`representation` is the root's output; the shared parameters are the root,
    the nodes of layers ``1..B`` and their logits; each task's own are its node, its logits and its head.
    """

    name = "learned-tree"
    steps: torch.Tensor

    def __init__(
        self,
        inputs: dict[str, InputSpec],
        tasks: list[Task],
        task_source: dict[str, str],
        output_sizes: dict[str, int] | None = None,
        branches: int | Sequence[int] = 2,
        hidden: Sequence[int] = (128, 64, 32),
        temperature: float = 5.0,
        final_temperature: float = 0.1,
        anneal_steps: int = 1000,
        dropout: float = 0.0,
        activation: str = "relu",
        norm: str = "none",
        head: str = "auto",
        head_penalty: float = 1e-3,
        task_embedding: int = 8,
    ) -> None:
        super().__init__(inputs, tasks, task_source, output_sizes)
        self.branches, self.hidden = branches, check_hidden(hidden)
        self.temperature = _check_positive("temperature", temperature)
        self.final_temperature = _check_positive("final_temperature", final_temperature)
        if isinstance(anneal_steps, bool) or not isinstance(anneal_steps, int) or anneal_steps < 0:
            raise ConfigError(f"anneal_steps must be a whole number >= 0, got {anneal_steps!r}")
        self.anneal_steps = anneal_steps
        self.dropout = check_dropout(dropout)
        check_activation(activation)
        check_norm(norm)
        self.activation, self.norm = activation, norm
        self.head, self.head_penalty, self.task_embedding = head, head_penalty, task_embedding
        nodes = _check_branches(branches, len(self.hidden))
        h, root = self.hidden, len(self.hidden) - len(nodes) - 1
        self.encoders = InputEncoders(self.inputs, h[0], activation, norm, self.dropout)
        self.trunk = MLP(h[:root], activation, norm, self.dropout)
        self.layers = nn.ModuleList(
            nn.ModuleList(dense(h[root + i - 1], h[root + i], activation, norm, self.dropout) for _ in range(n))
            for i, n in enumerate(nodes)
        )
        self.logits = nn.ParameterList(
            nn.Parameter(torch.zeros(n, parents)) for n, parents in zip(nodes, (1, *nodes), strict=False)
        )
        self.keys = {t.name: f"t{i}" for i, t in enumerate(self.tasks)}
        self.task_nodes = nn.ModuleDict({k: dense(h[-2], h[-1], activation, norm, self.dropout) for k in self.keys.values()})
        last = nodes[-1] if nodes else 1
        self.task_logits = nn.ParameterDict({k: nn.Parameter(torch.zeros(last)) for k in self.keys.values()})
        self.task_heads = TaskHeads(self.tasks, h[-1], self.output_sizes, head, head_penalty, task_embedding)
        #: training forward passes that built a graph so far (the temperature's clock)
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    # ---- the relaxed choice of parents ---------------------------------------------------------------------------
    def current_temperature(self) -> float:
        """``τ_s = τ_0 (τ_f / τ_0)^{min(s / S, 1)}`` at the current step count ``s``."""
        return float(self._temperature())

    def _temperature(self) -> torch.Tensor:
        """:meth:`current_temperature` as a 0-d tensor on the model's device (no synchronisation)."""
        progress = (self.steps.double() / max(self.anneal_steps, 1)).clamp(max=1.0)
        if self.anneal_steps == 0:
            progress = torch.ones_like(progress)
        return (self.temperature * (self.final_temperature / self.temperature) ** progress).float()

    def _choice(self, logits: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
        """``softmax((θ + g) / τ)`` row by row in training, ``one_hot(argmax θ)`` in evaluation: ``(children, parents)``."""
        if not self.training:
            return nn.functional.one_hot(logits.argmax(dim=1), logits.shape[1]).to(logits.dtype)
        exponential = torch.empty_like(logits).exponential_().clamp_min(torch.finfo(logits.dtype).tiny)
        return torch.softmax((logits - exponential.log()) / temperature.to(logits.dtype), dim=1)

    # ---- forward -------------------------------------------------------------------------------------------------
    def representation(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The root's output ``trunk(encoder_s(x_s))`` of every source: what all tasks share."""
        return self.encoders.encode_together(inputs, self.trunk)

    def heads(self, representation: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The branching layers on every row (sources together), then each task's node and head on its source's."""
        temperature = self._temperature()
        if self.training and torch.is_grad_enabled():
            self.steps += 1
        sources = list(representation)
        sizes = [representation[s].shape[0] for s in sources]
        y = torch.cat([representation[s] for s in sources]).unsqueeze(0)  # (nodes, rows, width): the root
        for logits, layer in zip(self.logits, self.layers, strict=True):
            mixed = torch.einsum("cp,pnh->cnh", self._choice(logits, temperature), y)
            assert isinstance(layer, nn.ModuleList)
            y = torch.stack([node(part) for part, node in zip(mixed.unbind(0), layer, strict=True)])
        z = self._choice(torch.stack([self.task_logits[self.keys[t.name]] for t in self.tasks]), temperature)
        per_source = dict(zip(sources, torch.split(y, sizes, dim=1), strict=True))
        features: dict[str, torch.Tensor] = {}
        for s in sources:
            index = [i for i, t in enumerate(self.tasks) if self.task_source[t.name] == s]
            if not index:
                continue
            parts = torch.einsum("cp,pnh->cnh", z[index], per_source[s]).unbind(0)  # unbind: one gradient copy
            for part, i in zip(parts, index, strict=True):
                name = self.tasks[i].name
                features[name] = self.task_nodes[self.keys[name]](part)
        return self.task_heads(features)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{task: output}`` on the rows of each task's source."""
        return self.heads(self.representation(inputs))

    # ---- the tree found --------------------------------------------------------------------------------------
    def learned_tree(self) -> list[Any]:
        """The argmax tree as the option ``tree`` of the ``tree`` architecture (same ``hidden``): each node that
        leads to a task is a list, each task a list of one name (its own last block); unused nodes are left out.

        E.g. ``[[["a"], ["b"]], [["c"]]]``: after the root, ``a`` and ``b`` share a node, ``c`` has the other.
        """
        parents = [logits.detach().argmax(dim=1).tolist() for logits in self.logits]
        task_parent = {t.name: int(self.task_logits[self.keys[t.name]].detach().argmax()) for t in self.tasks}

        def below(layer: int, node: int) -> list[Any]:  # the subtree of node ``node`` of layer ``layer``
            if layer == len(parents):
                return [[t.name] for t in self.tasks if task_parent[t.name] == node]
            children = [below(layer + 1, c) for c, p in enumerate(parents[layer]) if p == node]
            return [c for c in children if c]

        return below(0, 0)

    # ---- which parameters are shared ----------------------------------------------------------------------
    def shared_parameters(self) -> list[nn.Parameter]:
        """The encoders, the trunk, the nodes of the branching layers and their logits, shared heads."""
        return [
            *self.encoders.parameters(),
            *self.trunk.parameters(),
            *self.layers.parameters(),
            *self.logits.parameters(),
            *self.task_heads.shared_parameters(),
        ]

    def task_parameters(self) -> dict[str, list[nn.Parameter]]:
        """Each task's head (or deviation, or embedding), its node and the logits of its parent choice."""
        own = self.task_heads.task_parameters()
        for t in self.tasks:
            key = self.keys[t.name]
            own[t.name].extend([*self.task_nodes[key].parameters(), self.task_logits[key]])
        return own
