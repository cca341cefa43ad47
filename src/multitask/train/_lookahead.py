"""Validation batches for a balancing method that follows a held-out loss (``needs_validation``).

Each step draws ``batch_size`` validation rows (of each source, among the rows labelled for one of the
method's :meth:`~multitask.balancing.Balancing.validation_tasks`) from a seed of ``(seed, epoch, step)``, as
the samplers do, so a resumed run sees the same batches; the draw does not touch torch's random state.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from multitask.balancing import Balancing
from multitask.balancing._base import Lookahead
from multitask.data.arrays import Arrays, Batch
from multitask.errors import ConfigError, DataError
from multitask.tasks import Task
from multitask.train._distributed import Distributed
from multitask.train._losses import task_loss_sums

#: keeps the validation draws apart from the samplers' and the balancers' streams
_STREAM = 0x76616C


class ValidationFeed:
    """The :class:`~multitask.balancing.Lookahead` of each step for ``method`` on ``model``."""

    def __init__(self, model: nn.Module, tasks: list[Task], method: Balancing, valid: object,
                 batch_size: int, seed: int, ddp: Distributed) -> None:
        name = type(method).__name__
        if valid is None:
            raise ConfigError(f"balancer {name} adapts its weights to validation batches: give fit validation data")
        if not isinstance(valid, Arrays):
            raise ConfigError(f"balancer {name} draws validation batches from data in memory, not from a stream")
        if ddp.enabled:
            raise ConfigError(f"balancer {name} looks ahead on validation batches and does not run under torchrun")
        focus = method.validation_tasks()
        self.rows = {
            s: np.flatnonzero(np.any([valid.masks[t] for t in focus if valid.task_source[t] == s], axis=0))
            for s in valid.sources if any(valid.task_source[t] == s for t in focus)
        }
        if not any(len(r) for r in self.rows.values()):
            raise DataError(f"balancer {name}: no validation labels for {', '.join(repr(t) for t in focus[:5])}")
        self.model, self.tasks, self.valid = model, tasks, valid
        self.batch_size, self.seed, self.device = batch_size, seed, ddp.device

    def objective(self, batches: list[Batch], count: dict[str, int], lr: float, epoch: int, step: int) -> Lookahead:
        """The step's training losses (its micro-batches, divided by the labelled rows ``count`` of the global
        batch) and a validation batch's, as functions of the parameters."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch, step, _STREAM]))
        rows = {s: np.sort(rng.choice(r, size=min(self.batch_size, len(r)), replace=False))
                for s, r in self.rows.items() if len(r)}
        held_out = self.valid.take(rows).to(self.device)
        held_count = {t.name: int(held_out.masks[t.name].sum()) for t in self.tasks}
        parameters: dict[str, torch.Tensor] = {n: p for n, p in self.model.named_parameters() if p.requires_grad}
        return Lookahead(
            parameters,
            lambda theta: self._losses(theta, batches, count),
            lambda theta: self._losses(theta, [held_out], held_count),
            lr,
        )

    def _losses(self, theta: dict[str, torch.Tensor], batches: list[Batch], count: dict[str, int]) -> torch.Tensor:
        was_training = self.model.training
        self.model.eval()
        try:
            total: torch.Tensor | None = None
            for batch in batches:
                sums = task_loss_sums(self.tasks, functional_call(self.model, theta, (batch.inputs,)),
                                      batch.targets, batch.masks)
                losses = torch.stack([sums[t.name] / max(count[t.name], 1) for t in self.tasks])
                total = losses if total is None else total + losses
            assert total is not None
            return total
        finally:
            self.model.train(was_training)
