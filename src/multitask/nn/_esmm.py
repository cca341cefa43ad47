"""Entire Space Multi-task Model (ESMM): pCTCVR = pCTR × pCVR, both losses over every impression.

Ma, X., Zhao, L., Huang, G., Wang, Z., Hu, Z., Zhu, X., & Gai, K. (2018). Entire space multi-task model: an
effective approach for estimating post-click conversion rate. SIGIR 2018, 1137-1140.

A conversion rate model trained on clicked impressions only sees a biased sample (the rows a click selected)
and few of them; at serving time it scores every impression. ESMM never fits pCVR to clicked rows directly:
it learns ``pCTR = P(click | x)`` and ``pCTCVR = P(click, conversion | x) = pCTR · pCVR`` over all
impressions, with pCVR the output of its own tower, so the CVR tower is trained over the entire space.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from multitask.errors import ConfigError
from multitask.nn._base import Architecture, InputEncoders, InputSpec, TaskHeads
from multitask.nn._mlp import MLP, check_activation, check_dropout, check_norm
from multitask.nn._shared_bottom import Towers, check_widths
from multitask.tasks import Task

__all__ = ["ESMM", "funnel_sequence", "product_logit"]


def funnel_sequence(
    model: str, tasks: Sequence[Task], task_source: dict[str, str], sequence: object, count: int | None = None
) -> list[str]:
    """The task names in funnel order (option ``sequence``; None: the tasks in their order), after checks.

    Every task must be binary and listed once, all must read one source (the same impressions), and there
    must be ``count`` of them (at least 2 when ``count`` is None). Raises ConfigError naming ``sequence``.
    """
    names = [t.name for t in tasks]
    wanted = f"exactly {count}" if count is not None else "2 or more"
    if (count is not None and len(names) != count) or len(names) < 2:
        raise ConfigError(
            f"{model}: option sequence orders {wanted} binary tasks (the steps of a funnel), "
            f"got {len(names)} task(s): {', '.join(names)}"
        )
    for t in tasks:
        if t.kind != "binary":
            raise ConfigError(
                f"{model}: option sequence orders binary tasks (funnel steps: 1 if the impression reached "
                f"the step); task {t.name!r} is {t.kind}"
            )
    if sequence is None:
        order = names
    else:
        if not isinstance(sequence, list | tuple) or sorted(map(str, sequence)) != sorted(names) or not all(
            isinstance(s, str) for s in sequence
        ):
            raise ConfigError(
                f"{model}: option sequence must list every task once, in funnel order "
                f"(e.g. {names!r}); got {sequence!r}"
            )
        order = list(sequence)
    sources = {task_source[n] for n in order}
    if len(sources) != 1:
        where = ", ".join(f"{n!r} reads {task_source[n]!r}" for n in order)
        raise ConfigError(
            f"{model}: the tasks of option sequence are steps of the same impressions and must read one "
            f"source; {where}"
        )
    return order


def product_logit(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``logit(σ(a) σ(b))`` computed in log space, finite for all finite ``a``, ``b``.

    ``log p = log σ(a) + log σ(b)`` and ``log(1 − p) = log((1 − σ(a)) + σ(a)(1 − σ(b)))
    = logaddexp(log σ(−a), log σ(a) + log σ(−b))``: no ``1 − p`` is formed, so nothing cancels when
    ``p → 1`` and nothing underflows when ``p → 0``.
    """
    log_p = F.logsigmoid(a) + F.logsigmoid(b)
    log_q = torch.logaddexp(F.logsigmoid(-a), F.logsigmoid(a) + F.logsigmoid(-b))
    return log_p - log_q


class ESMM(Architecture):
    """ESMM: task 1 is ``logit pCTR``, task 2 ``logit pCTCVR = logit(pCTR · pCVR)``, both over every impression.

    Two binary tasks in funnel order (option ``sequence``, default: the tasks in their order), both labelled
    on every impression: the click, then click-and-conversion (1 only where the impression was clicked and
    converted; conversion is never observed without a click). The trainer's losses are then
    ``L = BCE(y_click, pCTR) + BCE(y_click·y_conversion, pCTR · pCVR)`` over all impressions, as in the paper.

    * encoder per source and a shared bottom ``bottom_hidden`` (the paper's shared embedding);
    * a CTR tower and a CVR tower, dense blocks ``bottom_hidden[-1] -> tower_hidden[0] -> ... ->
      tower_hidden[-1]``, each ending in its task's head (:class:`~multitask.nn.TaskHeads`: ``head``,
      ``head_penalty``, ``task_embedding``), which give the logits of pCTR and of pCVR;
    * the second task's output combines them: ``logit(σ(l_ctr) σ(l_cvr))``, in log space (:func:`product_logit`).

    The conversion rate given a click, pCVR, is no output of the trainer: :meth:`cvr` returns it
    (``model.eval(); model.cvr({source: x})``), and ``pCTCVR / pCTR`` equals it. Predictions for the second
    task (``multitask predict``) are pCTCVR, the probability that an impression is clicked and converts.

    :meth:`representation` is the bottom's output. Shared parameters: the encoders and the bottom (and the
    group heads of ``head="shared"``/``"embedding"``); the click task owns the CTR tower and head, the
    conversion task the CVR tower and head (the conversion loss reaches the CTR tower too, through the
    product: that is the model). Defaults: ``sequence=None``, ``bottom_hidden=(64,)``,
    ``tower_hidden=(64, 32)``, ``dropout=0.0``, ``activation="relu"``, ``norm="none"``, ``head="auto"``,
    ``head_penalty=1e-3``, ``task_embedding=8``.
    """

    name = "esmm"
    task_kinds = ("binary",)
    #: ESMM is a two-step funnel: the contract tests build it with this many tasks
    task_count = 2

    def __init__(
        self,
        inputs: dict[str, InputSpec],
        tasks: list[Task],
        task_source: dict[str, str],
        output_sizes: dict[str, int] | None = None,
        sequence: Sequence[str] | None = None,
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
        self.click, self.conversion = funnel_sequence("esmm", self.tasks, self.task_source, sequence, count=2)
        bottom = check_widths(bottom_hidden, "bottom_hidden")
        towers = check_widths(tower_hidden, "tower_hidden")
        check_activation(activation)
        check_norm(norm)
        self.sequence, self.bottom_hidden, self.tower_hidden = sequence, bottom_hidden, tower_hidden
        self.dropout, self.activation, self.norm = check_dropout(dropout), activation, norm
        self.head, self.head_penalty, self.task_embedding = head, head_penalty, task_embedding
        self.source = self.task_source[self.click]
        self.encoders = InputEncoders(self.inputs, bottom[0], activation, norm, self.dropout)
        self.bottom = MLP(bottom, activation, norm, self.dropout)
        self.towers = Towers([self.click, self.conversion], bottom[-1], towers, activation, norm, self.dropout)
        self.task_heads = TaskHeads(self.tasks, towers[-1], self.output_sizes, head, head_penalty, task_embedding)

    def representation(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The bottom's output ``bottom(encoder_s(x_s))`` of every source: ``(n_s, bottom_hidden[-1])``."""
        return self.encoders.encode_together(inputs, self.bottom)

    def tower_logits(self, representation: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logit pCTR, logit pCVR)``, each ``(n,)``: the two towers and their heads."""
        z = representation[self.source]
        logits = self.task_heads(self.towers({self.click: z, self.conversion: z}))
        return logits[self.click], logits[self.conversion]

    def heads(self, representation: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{click: logit pCTR, conversion: logit(pCTR · pCVR)}`` (in the order of the tasks)."""
        ctr, cvr = self.tower_logits(representation)
        out = {self.click: ctr, self.conversion: product_logit(ctr, cvr)}
        return {t.name: out[t.name] for t in self.tasks}

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{task: logit}`` on every impression: pCTR for the first step, pCTCVR for the second."""
        return self.heads(self.representation(inputs))

    def cvr(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``pCVR = P(conversion | click, x)`` of every impression, ``(n,)`` probabilities (the CVR tower)."""
        return torch.sigmoid(self.tower_logits(self.representation(inputs))[1])

    def shared_parameters(self) -> list[nn.Parameter]:
        """The input encoders, the bottom, and shared group heads."""
        return [*self.encoders.parameters(), *self.bottom.parameters(), *self.task_heads.shared_parameters()]

    def task_parameters(self) -> dict[str, list[nn.Parameter]]:
        """The click task's CTR tower and head; the conversion task's CVR tower and head."""
        heads = self.task_heads.task_parameters()
        return {t.name: [*self.towers.tower(t.name).parameters(), *heads[t.name]] for t in self.tasks}
