"""Adaptive Information Transfer Multi-task (AITM) model for sequential conversion steps.

Xi, D., Chen, Z., Yan, P., Zhang, Y., Zhu, Y., Zhuang, F., & Chen, Y. (2021). Modeling the sequential
dependence among audience multi-step conversions with multi-task learning in targeted display advertising.
KDD 2021, 3745-3755. arXiv:2105.08489.

Steps ``t = 1..T`` of a funnel (impression → click → … → purchase), each a binary task labelled on every
impression. Step ``t`` reads its own tower's output ``q_t`` and what step ``t − 1`` passes on, ``p_{t−1} =
g_{t−1}(z_{t−1})``; an attention over the two decides how much to take from each (the Adaptive Information
Transfer module). A calibrator penalizes a later step predicted likelier than the one before it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from multitask.errors import ConfigError
from multitask.nn._base import Architecture, InputEncoders, InputSpec, TaskHeads
from multitask.nn._esmm import funnel_sequence
from multitask.nn._mlp import MLP, check_activation, check_dropout, check_norm, dense
from multitask.nn._shared_bottom import Towers, check_widths
from multitask.tasks import Task

__all__ = ["AITM", "InformationTransfer"]


class InformationTransfer(nn.Module):
    """The AIT module: ``z_t = Σ_{u ∈ {p_{t−1}, q_t}} w_u h_1(u)``, ``w = softmax_u(⟨h_2(u), h_3(u)⟩ / √d)``.

    ``h_1, h_2, h_3`` are linear maps ``d -> d``. :meth:`forward` returns ``z_t`` ``(n, d)`` and the weights
    ``(n, 2)`` (column 0: the transferred information ``p_{t−1}``, column 1: the step's own ``q_t``).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.value, self.query, self.key = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, transferred: torch.Tensor, own: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = torch.stack([transferred, own], dim=1)  # (n, 2, d)
        weights = torch.softmax((self.query(u) * self.key(u)).sum(-1) * self.scale, dim=1)  # (n, 2)
        return (weights.unsqueeze(-1) * self.value(u)).sum(1), weights


class AITM(Architecture):
    """AITM: ``ŷ_t = σ(head_t(z_t))``, ``z_t = AIT(g_{t−1}(z_{t−1}), q_t)``: each funnel step reads the one before.

    ``z_1 = q_1``; ``q_t = tower_t(bottom(encoder(x)))``.

    Binary tasks in funnel order (option ``sequence``, default: the tasks in their order; 2 or more), each
    labelled on every impression (1 where the impression reached the step). Per step ``t``:

    * tower ``q_t``: dense blocks ``bottom_hidden[-1] -> tower_hidden[0] -> ... -> tower_hidden[-1] = d``
      over the shared bottom (encoder per source, then ``bottom_hidden``: the paper's shared embedding);
    * for ``t ≥ 2`` the transfer ``g_{t−1}``: ``Linear(d, d) -> activation -> dropout``, and the AIT module
      (:class:`InformationTransfer`);
    * the task head over ``z_t`` (:class:`~multitask.nn.TaskHeads`: ``head``, ``head_penalty``,
      ``task_embedding``).

    The behavioral expectation calibrator is the model's :meth:`penalty`, added to the training loss once
    per step: ``calibration · mean_rows Σ_{t=2}^{T} max(ŷ_t − ŷ_{t−1}, 0)`` over the rows of the last forward
    pass (plus the heads' penalty). :meth:`gate_usage` is the mean attention weight of each step ``t ≥ 2`` on
    ``[transferred, own]``, logged by the trainer under "gates".

    :meth:`representation` is the bottom's output. Shared parameters: the encoders and the bottom (and the
    group heads of ``head="shared"``/``"embedding"``); step ``t`` owns its tower, its transfer ``g_{t−1}``,
    its AIT module and its head (later steps' losses reach them too, through the transfer). Defaults:
    ``sequence=None``, ``calibration=0.6`` (the paper's α), ``bottom_hidden=(64,)``, ``tower_hidden=(64, 32)``,
    ``dropout=0.0``, ``activation="relu"``, ``norm="none"``, ``head="auto"``, ``head_penalty=1e-3``,
    ``task_embedding=8``.
    """

    name = "aitm"
    task_kinds = ("binary",)

    def __init__(
        self,
        inputs: dict[str, InputSpec],
        tasks: list[Task],
        task_source: dict[str, str],
        output_sizes: dict[str, int] | None = None,
        sequence: Sequence[str] | None = None,
        calibration: float = 0.6,
        bottom_hidden: Sequence[int] = (64,),
        tower_hidden: Sequence[int] = (64, 32),
        dropout: float = 0.0,
        activation: str = "relu",
        norm: str = "none",
        head: str = "auto",
        head_penalty: float = 1e-3,
        task_embedding: int = 8,
    ) -> None:
        super().__init__(inputs, tasks, task_source, output_sizes)
        self.order = funnel_sequence("aitm", self.tasks, self.task_source, sequence)
        if isinstance(calibration, bool) or not isinstance(calibration, int | float) or not (
            math.isfinite(calibration) and calibration >= 0
        ):
            raise ConfigError(f"aitm: option calibration must be a finite number >= 0, got {calibration!r}")
        bottom = check_widths(bottom_hidden, "bottom_hidden")
        towers = check_widths(tower_hidden, "tower_hidden")
        check_activation(activation)
        check_norm(norm)
        self.sequence, self.calibration = sequence, calibration
        self.bottom_hidden, self.tower_hidden = bottom_hidden, tower_hidden
        self.dropout, self.activation, self.norm = check_dropout(dropout), activation, norm
        self.head, self.head_penalty, self.task_embedding = head, head_penalty, task_embedding
        self.source = self.task_source[self.order[0]]
        d = towers[-1]
        self.encoders = InputEncoders(self.inputs, bottom[0], activation, norm, self.dropout)
        self.bottom = MLP(bottom, activation, norm, self.dropout)
        self.towers = Towers(self.order, bottom[-1], towers, activation, norm, self.dropout)
        steps = {name: self.towers.keys[name] for name in self.order[1:]}  # keyed like the towers: t1, t2, …
        self.transfer = nn.ModuleDict({k: dense(d, d, activation, "none", self.dropout) for k in steps.values()})
        self.ait = nn.ModuleDict({k: InformationTransfer(d) for k in steps.values()})
        self.task_heads = TaskHeads(self.tasks, d, self.output_sizes, head, head_penalty, task_embedding)
        self._excess: torch.Tensor | None = None  # Σ_t max(ŷ_t − ŷ_{t−1}, 0) per row, last forward with grad
        self._usage: dict[str, torch.Tensor] = {}

    def representation(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The bottom's output ``bottom(encoder_s(x_s))`` of every source: ``(n_s, bottom_hidden[-1])``."""
        return self.encoders.encode_together(inputs, self.bottom)

    def heads(self, representation: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{task: logit ŷ_t}`` (in the order of the tasks); keeps what :meth:`penalty` needs."""
        x = representation[self.source]
        q = self.towers(dict.fromkeys(self.order, x))
        z = {self.order[0]: q[self.order[0]]}
        rows = torch.sym_max(x.shape[0], 1)  # symbolic under export: no fixed batch size
        usage: dict[str, torch.Tensor] = {}
        for before, step in zip(self.order, self.order[1:], strict=False):
            key = self.towers.keys[step]
            z[step], weights = self.ait[key](self.transfer[key](z[before]), q[step])
            usage[step] = weights.detach().sum(0) / rows
        logits = self.task_heads(z)
        p = torch.stack([torch.sigmoid(logits[name]) for name in self.order], dim=1)  # (n, T)
        excess = torch.relu(p[:, 1:] - p[:, :-1]).sum(1)
        if torch.is_grad_enabled():
            self._excess = excess
        self._usage = usage
        return {t.name: logits[t.name] for t in self.tasks}

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{task: logit ŷ_t}`` on every impression."""
        return self.heads(self.representation(inputs))

    def calibration_penalty(self) -> torch.Tensor | None:
        """``calibration · mean_rows Σ_{t≥2} max(ŷ_t − ŷ_{t−1}, 0)`` of the last forward pass with gradients."""
        if self._excess is None:
            return None
        excess = self._excess
        return self.calibration * excess.sum() / max(int(excess.shape[0]), 1)

    def penalty(self) -> torch.Tensor | None:
        """The calibrator (:meth:`calibration_penalty`) plus the heads' penalty; consumed once per step."""
        terms = [t for t in (self.calibration_penalty(), self.task_heads.penalty()) if t is not None]
        self._excess = None
        if not terms:
            return None
        return terms[0] if len(terms) == 1 else terms[0] + terms[1].to(terms[0].device)

    def gate_usage(self) -> dict[str, torch.Tensor] | None:
        """``{step t ≥ 2: mean attention weight on [transferred p_{t−1}, own q_t]}`` of the last forward pass."""
        return dict(self._usage) if self._usage else None

    def shared_parameters(self) -> list[nn.Parameter]:
        """The input encoders, the bottom, and shared group heads."""
        return [*self.encoders.parameters(), *self.bottom.parameters(), *self.task_heads.shared_parameters()]

    def task_parameters(self) -> dict[str, list[nn.Parameter]]:
        """Step ``t``'s tower, transfer ``g_{t−1}``, AIT module and head."""
        heads = self.task_heads.task_parameters()
        own: dict[str, list[nn.Parameter]] = {}
        for name in self.order:
            key = self.towers.keys[name]
            extra = [*self.transfer[key].parameters(), *self.ait[key].parameters()] if key in self.ait else []
            own[name] = [*self.towers.tower(name).parameters(), *extra, *heads[name]]
        return {t.name: own[t.name] for t in self.tasks}
