"""What every registered balancing method shares: explicit state, step and epoch hooks, its last weights.

A method is an ``nn.Module`` built as ``cls(tasks, **options)``. Learnable weights are its parameters (the
trainer gives them to the optimizer), other state lives in buffers: ``state_dict()`` carries both into the
checkpoint. The trainer calls :meth:`Balancing.begin_step` before each step and :meth:`Balancing.end_epoch`
after each epoch; both do nothing by default. A stochastic method draws only from :meth:`generator`, which
``begin_step`` seeds from ``(seed, epoch, step)`` as the samplers do, so a resumed run draws the same
numbers as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from multitask.tasks import Task

#: keeps a balancer's random stream apart from the samplers' streams of the same (seed, epoch)
_STREAM = 0x62616C


def step_seed(seed: int, epoch: int, step: int) -> int:
    """The seed of a balancer's draws in one step: a hash of ``(seed, epoch, step)``."""
    return int(np.random.SeedSequence([seed, epoch, step, _STREAM]).generate_state(1)[0])


class Balancing(nn.Module):
    """Base of the registered methods: no-op ``begin_step``/``end_epoch``; ``weights_`` holds the last weights."""

    #: whether the method draws random numbers (then permuting tasks permutes its result only in law)
    stochastic: ClassVar[bool] = False

    def __init__(self, tasks: list[str]) -> None:
        super().__init__()
        if not tasks:
            raise ValueError("no tasks to balance")
        self.tasks = list(tasks)
        #: the task weights of the last step (implied weights for gradient methods), detached, shape (T,)
        self.weights_: torch.Tensor | None = None
        self._generator = torch.Generator().manual_seed(step_seed(0, 0, 0))

    def begin_step(self, seed: int, epoch: int, step: int) -> None:
        """Seed :meth:`generator` from ``(seed, epoch, step)``; called by the trainer before each step."""
        self._generator.manual_seed(step_seed(seed, epoch, step))

    def end_epoch(self, mean_losses: dict[str, float | None]) -> None:
        """Called by the trainer after each epoch with each task's mean training loss; does nothing here."""
        return None

    def generator(self) -> torch.Generator:
        """The CPU generator that every random draw of the method uses."""
        return self._generator

    def _stack(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """The losses as one (T,) tensor in the order of ``self.tasks``."""
        if list(losses) != self.tasks:
            raise ValueError(f"losses of tasks {list(losses)} given to a balancer of tasks {self.tasks}")
        return torch.stack(list(losses.values()))


def task_names(tasks: Sequence[Task | str]) -> list[str]:
    """Names of ``tasks`` given as Task records or as names."""
    return [t if isinstance(t, str) else t.name for t in tasks]
