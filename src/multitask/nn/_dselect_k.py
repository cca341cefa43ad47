"""DSelect-k: MMoE whose task gates are differentiable top-k selectors built on a binary encoding of the experts.

Hazimeh, H., Zhao, Z., Chowdhery, A., Sathiamoorthy, M., Chen, Y., Mazumder, R., Hong, L. & Chi, E. H. (2021).
DSelect-k: differentiable selection in the mixture of experts with applications to multi-task learning.
NeurIPS 2021.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import ClassVar

import torch
from torch import nn

from multitask.errors import ConfigError
from multitask.nn._base import InputSpec
from multitask.nn._experts import check_count
from multitask.nn._mmoe import MultiGate
from multitask.tasks import Task

__all__ = ["DSelectGate", "DSelectK", "smooth_step"]

#: where a selector's weights are taken (option ``routing``)
ROUTINGS = ("example", "task")
#: inside the logarithm of the entropy, as in the authors' implementation
EPSILON = 1e-6


def smooth_step(t: torch.Tensor, gamma: float) -> torch.Tensor:
    """``S(t) = 0`` for ``t ≤ -γ/2``, ``1`` for ``t ≥ γ/2``, else ``-2t³/γ³ + 3t/(2γ) + 1/2``.

    Continuously differentiable; the cubic is 0 and 1 at ``∓γ/2`` with zero slope, so clamping ``t`` to
    ``[-γ/2, γ/2]`` and evaluating the cubic gives the same values and gradients (zero outside).
    """
    c = t.clamp(-gamma / 2, gamma / 2)
    return -2.0 / gamma**3 * c**3 + 3.0 / (2.0 * gamma) * c + 0.5


class DSelectGate(nn.Module):
    """``q = Σ_{i=1}^k softmax(α)_i r(z^{(i)})``: at most ``k`` of ``E`` experts once the selectors saturate.

    Selector ``i`` has ``m = ⌈log₂ E⌉`` logits ``z^{(i)}``; its weight on expert ``l`` (binary digits
    ``b_j(l)``) is ``r(z)_l = Π_j S(z_j)^{b_j(l)} (1 − S(z_j))^{1 − b_j(l)}``, with ``S`` the smooth step of
    width ``γ``. ``r`` sums to 1 over the ``2^m`` codes; when every ``S(z_j)`` is 0 or 1 it is one expert.
    ``routing="task"``: ``α`` and ``z`` are parameters of the gate (static, the same for every row);
    ``"example"``: linear maps of the gate's input (per-example gating). Initialisation as the authors':
    ``z`` (weights and biases) uniform in ``±γ/100``, ``α`` uniform in ``±0.05``.

    :meth:`penalty`: ``λ Σ_i H(r(z^{(i)}))`` (entropy, pushes each selector to one expert) and, when ``E`` is
    not a power of 2, ``Σ_i 1 / Σ_{l<E} r(z^{(i)})_l`` (keeps selectors off the codes of no expert; the
    weights then sum to 1 once the selectors saturate, to at least ``E / 2^m`` before); per-example terms are
    averaged over the rows of the last forward pass.
    """

    codes: torch.Tensor
    z_map: nn.Linear
    alpha_map: nn.Linear
    z: nn.Parameter
    alpha: nn.Parameter

    def __init__(self, d_in: int, experts: int, k: int, gamma: float, entropy: float, routing: str) -> None:
        super().__init__()
        self.reads_input = routing == "example"
        self.k, self.gamma, self.entropy = k, gamma, entropy
        self.bits = math.ceil(math.log2(experts)) if experts > 1 else 0
        self.power_of_two = experts == 2**self.bits
        codes = [[(e >> (self.bits - 1 - j)) & 1 for j in range(self.bits)] for e in range(experts)]
        self.register_buffer("codes", torch.tensor(codes, dtype=torch.float32).reshape(experts, self.bits), False)
        if self.reads_input:
            self.alpha_map = _uniform(nn.Linear(d_in, k), 0.05)
            if self.bits:  # one expert: no code to choose
                self.z_map = _uniform(nn.Linear(d_in, k * self.bits), gamma / 100)
        else:
            self.alpha = nn.Parameter(torch.empty(k).uniform_(-0.05, 0.05))
            if self.bits:
                self.z = nn.Parameter(torch.empty(k, self.bits).uniform_(-gamma / 100, gamma / 100))
        #: the selectors ``r`` of the last forward pass, ``(n, k, E)`` (example routing), for :meth:`penalty`
        self.last_selectors: torch.Tensor | None = None

    def selectors(self, rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(softmax(α), r)``: ``(k,)`` and ``(k, E)`` (task routing) or ``(n, k)`` and ``(n, k, E)``."""
        if self.reads_input:
            assert rows is not None, "a per-example gate needs the rows it routes"
            alpha = self.alpha_map(rows)
            z = self.z_map(rows).reshape(rows.shape[0], self.k, self.bits) if self.bits else alpha[..., None][..., :0]
        else:
            alpha = self.alpha
            z = self.z if self.bits else alpha[:, None][:, :0]
        s = smooth_step(z, self.gamma).unsqueeze(-2)  # (..., k, 1, m)
        codes = self.codes.to(s.dtype)
        r = (codes * s + (1 - codes) * (1 - s)).prod(dim=-1)  # (..., k, E)
        return torch.softmax(alpha, dim=-1), r

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        """The mixture weights ``(n, E)`` of the ``n`` rows (``rows`` is read only for its length under task
        routing)."""
        weights, r = self.selectors(rows)
        q = (weights.unsqueeze(-1) * r).sum(dim=-2)
        if not self.reads_input:
            return q.expand(rows.shape[0], -1)
        self.last_selectors = r
        return q

    def penalty(self) -> torch.Tensor | None:
        """``λ Σ_i H(r^{(i)})`` (+ ``Σ_i 1/Σ_l r^{(i)}_l`` if ``E`` is not a power of 2), mean over rows."""
        if self.reads_input:
            r = self.last_selectors
            if r is None or r.shape[0] == 0:
                return None
        else:
            r = self.selectors()[1]
        total = -(r * torch.log(r + EPSILON)).sum(dim=-1).sum(dim=-1) * self.entropy
        if not self.power_of_two:
            total = total + (1.0 / r.sum(dim=-1)).sum(dim=-1)
        return total.mean() if total.dim() else total


class DSelectK(MultiGate):
    """MMoE with DSelect-k gates: ``y_t = h_t(Σ_e q_t(x)_e f_e(x))``, each ``q_t`` using at most ``k`` experts.

    The experts, towers, heads and sources are those of :class:`~multitask.nn._mmoe.MMoE`; task ``t``'s gate
    is a :class:`DSelectGate` (``k`` single-expert selectors, smooth step of width ``gamma``, entropy weight
    ``entropy``, ``routing`` "example" (per-example gates, linear in the encoded input) or "task" (one
    weight vector per task)). With saturated selectors the gate is a point of the simplex with at most ``k``
    non-zeros, and every such point is reachable (``k ≥ E``: the whole simplex); :meth:`penalty` adds the
    gates' regularizers to the heads' penalty. :meth:`representation`: per source the experts' outputs and,
    for example routing, the encoded rows; shared parameters: encoders and experts (and shared heads); each
    task's: its gate, tower and head.

    Defaults: ``experts=4``, ``k=2``, ``gamma=1.0``, ``entropy=1e-6`` (the authors' default), ``routing=
    "example"``, ``expert_hidden=(64,)``, ``tower_hidden=(32,)``, ``activation="relu"``, ``norm="none"``,
    ``dropout=0.0``, ``head="auto"``.
    """

    name = "dselect-k"
    tuned: ClassVar[dict[str, tuple[int | str, ...]]] = {"experts": (4, 8), "k": (1, 2)}

    def __init__(
        self,
        inputs: dict[str, InputSpec],
        tasks: list[Task],
        task_source: dict[str, str],
        output_sizes: dict[str, int] | None = None,
        experts: int = 4,
        k: int = 2,
        gamma: float = 1.0,
        entropy: float = 1e-6,
        routing: str = "example",
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
        self.k = check_count("k", k)
        if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not 0 < gamma < math.inf:
            raise ConfigError(f"gamma (the smooth step's width) must be a positive number, got {gamma!r}")
        if isinstance(entropy, bool) or not isinstance(entropy, int | float) or not 0 <= entropy < math.inf:
            raise ConfigError(f"entropy (the selectors' entropy weight) must be a number ≥ 0, got {entropy!r}")
        if routing not in ROUTINGS:
            raise ConfigError(f"routing must be one of {', '.join(ROUTINGS)}, got {routing!r}")
        self.gamma, self.entropy, self.routing = gamma, entropy, routing
        gate = partial(DSelectGate, k=self.k, gamma=float(gamma), entropy=float(entropy), routing=routing)
        self._build(
            experts, expert_hidden, tower_hidden, activation, norm, dropout, head, head_penalty, task_embedding, gate
        )


def _uniform(layer: nn.Linear, bound: float) -> nn.Linear:
    """``layer`` with weights and bias drawn uniformly in ``[-bound, bound]``."""
    nn.init.uniform_(layer.weight, -bound, bound)
    nn.init.uniform_(layer.bias, -bound, bound)
    return layer
