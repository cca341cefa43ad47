"""What every registered balancing method shares: what it needs, explicit state, hooks, its last weights.

A method is an ``nn.Module`` built as ``cls(tasks, **options)`` that declares what it needs (``needs``):

* ``"losses"``: :meth:`Balancing.combine` maps the task losses to the scalar the trainer backpropagates;
* ``"gramian"``: :meth:`Balancing.weigh` maps the Gram matrix ``G = J Jᵀ`` (T × T) of the per-task
  gradients, and the loss values, to task weights ``w`` (T,); the trainer backpropagates ``Σ_t w_t L_t``
  (``w`` detached), so the shared part receives ``wᵀ J`` and head ``t`` receives ``w_t ∇L_t``;
* ``"jacobian"``: :meth:`Balancing.direction` maps ``J`` (T × P) itself to the shared part's gradient
  (P,), for the methods that are not a weighting (GradDrop, MoCo); the trainer writes it, and head ``t``
  receives ``task.weight · ∇L_t``.

``J`` holds the gradients of the shared parameters (``of="parameters"``, the model's
``shared_parameters()``) or of the shared representation (``of="representation"``, the output of the
model's ``representation()``, every row of the batch): an option of every gradient method.

Learnable weights are parameters (the trainer gives :meth:`Balancing.optimized_parameters` to its
optimizer), other state lives in buffers or in ``get_extra_state``: ``state_dict()`` carries all of it into
the checkpoint. The trainer calls :meth:`Balancing.begin_step` before each step, :meth:`Balancing.after_step`
after the optimizer's step (with the losses recomputed on the same batch when ``needs_losses_after_step``),
and :meth:`Balancing.end_epoch` after each epoch; they do nothing by default. A stochastic method draws only
from :meth:`generator`, which ``begin_step`` seeds from ``(seed, epoch, step)`` as the samplers do, so a
resumed run draws the same numbers as an uninterrupted one.

A method that adapts its weights to a held-out loss (Auto-Lambda) declares ``needs_validation``: before
each step the trainer hands :meth:`Balancing.look_ahead` a :class:`Lookahead`, the step's task losses on the
training batch and on a validation batch, each as a function of the model's parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import nn

from multitask.tasks import Task

#: keeps a balancer's random stream apart from the samplers' streams of the same (seed, epoch)
_STREAM = 0x62616C

Needs = Literal["losses", "gramian", "jacobian"]
Of = Literal["parameters", "representation"]
OF_CHOICES: tuple[str, ...] = ("parameters", "representation")


@dataclass(frozen=True)
class Lookahead:
    """What a ``needs_validation`` method sees before a step: task losses as functions of the parameters.

    ``train(θ)`` and ``valid(θ)`` map ``{name: tensor}`` (the model's trainable parameters, as in
    ``parameters``, or tensors of the same shapes) to the task losses (T,) of this step's training batch and
    of a validation batch (each task's mean over its labelled rows; 0 for a task without labels there), in
    evaluation mode (no dropout noise); ``lr`` is the optimizer's learning rate in this step.
    """

    parameters: dict[str, torch.Tensor]
    train: Callable[[dict[str, torch.Tensor]], torch.Tensor]
    valid: Callable[[dict[str, torch.Tensor]], torch.Tensor]
    lr: float


def step_seed(seed: int, epoch: int, step: int) -> int:
    """The seed of a balancer's draws in one step: a hash of ``(seed, epoch, step)``."""
    return int(np.random.SeedSequence([seed, epoch, step, _STREAM]).generate_state(1)[0])


class Balancing(nn.Module):
    """Base of the registered methods: what they need, no-op hooks, ``weights_`` holds the last weights."""

    #: what the method combines: the losses, the Gramian of the task gradients, or their Jacobian
    needs: ClassVar[Needs] = "losses"
    #: whether the (implied) task weights are never negative (IMTL-G, Aligned-MTL, ConFIG may weigh a task < 0)
    nonnegative: ClassVar[bool] = True
    #: whether the method draws random numbers (then permuting tasks permutes its result only in law)
    stochastic: ClassVar[bool] = False
    #: whether :meth:`after_step` wants the task losses recomputed on the step's batch after the update
    needs_losses_after_step: ClassVar[bool] = False
    #: whether the trainer calls :meth:`look_ahead` before each step (validation data required)
    needs_validation: ClassVar[bool] = False

    def __init__(self, tasks: Sequence[Task | str], of: str = "parameters") -> None:
        super().__init__()
        names = task_names(tasks)
        if not names:
            raise ValueError("no tasks to balance")
        if of not in OF_CHOICES:
            raise ValueError(f"of must be one of {', '.join(OF_CHOICES)}, got {of!r}")
        if of != "parameters" and self.needs == "losses":
            raise ValueError(f"of={of!r}: {type(self).__name__} weighs losses, it takes no task gradients")
        self.tasks = names
        #: where the task gradients are taken: the shared parameters or the shared representation
        self.of: Of = "representation" if of == "representation" else "parameters"
        #: the task weights of the last step (implied weights for a direction), detached, shape (T,)
        self.weights_: torch.Tensor | None = None
        self._generator = torch.Generator().manual_seed(step_seed(0, 0, 0))

    # ---- the three kinds; a method implements the one it declares in ``needs`` ---------------------------------
    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """``needs == "losses"``: the task losses (in task order) -> the scalar to backpropagate."""
        raise NotImplementedError(f"{type(self).__name__} needs {self.needs}, not the losses alone")

    def weigh(self, gramian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """``needs == "gramian"``: ``G = J Jᵀ`` (T × T) and the loss values (T,) -> task weights (T,)."""
        raise NotImplementedError(f"{type(self).__name__} needs {self.needs}, not the Gramian")

    def direction(self, jacobian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """``needs == "jacobian"``: ``J`` (T × P) and the loss values (T,) -> the shared gradient (P,)."""
        raise NotImplementedError(f"{type(self).__name__} needs {self.needs}, not the Jacobian")

    def combine_gradients(
        self, jacobian: torch.Tensor, losses: dict[str, torch.Tensor] | torch.Tensor
    ) -> torch.Tensor:
        """The shared gradient (P,) of a gradient method from ``J``: ``wᵀ J`` for a weighting of the Gramian.

        For a hand-written loop that writes the result to the shared parameters' ``.grad``.
        """
        values = self._values(losses).to(jacobian.device)
        if self.needs == "gramian":
            j = jacobian.double()
            w = self.weigh(j @ j.T, values.double())
            return (w.to(j.device, j.dtype) @ j).to(jacobian.dtype)
        if self.needs == "jacobian":
            return self.direction(jacobian, values)
        raise TypeError(f"{type(self).__name__} weighs losses: call combine(losses)")

    # ---- hooks and state ---------------------------------------------------------------------------------------
    def begin_step(self, seed: int, epoch: int, step: int) -> None:
        """Seed :meth:`generator` from ``(seed, epoch, step)``; called by the trainer before each step."""
        self._generator.manual_seed(step_seed(seed, epoch, step))

    def after_step(self, losses_after: torch.Tensor | None) -> None:
        """Called after the optimizer's step; ``losses_after`` (T,) only when ``needs_losses_after_step``."""
        return None

    def look_ahead(self, objective: Lookahead) -> None:
        """``needs_validation``: called before each step's losses are combined, with :class:`Lookahead`."""
        raise NotImplementedError(f"{type(self).__name__} does not use validation batches")

    def validation_tasks(self) -> list[str]:
        """The tasks whose validation loss :meth:`look_ahead` follows: the validation batches hold their rows."""
        return list(self.tasks)

    def end_epoch(self, mean_losses: dict[str, float | None]) -> None:
        """Called by the trainer after each epoch with each task's mean training loss; does nothing here."""
        return None

    def optimized_parameters(self) -> list[nn.Parameter]:
        """The parameters the run's optimizer trains with the model (uncertainty's log-variances, say)."""
        return list(self.parameters())

    def generator(self) -> torch.Generator:
        """The CPU generator that every random draw of the method uses."""
        return self._generator

    def _stack(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """The losses as one (T,) tensor in the order of ``self.tasks``."""
        if list(losses) != self.tasks:
            raise ValueError(f"losses of tasks {list(losses)} given to a balancer of tasks {self.tasks}")
        return torch.stack(list(losses.values()))

    def _values(self, losses: dict[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """Detached loss values (T,) from a dict in task order or a tensor."""
        stacked = self._stack(losses) if isinstance(losses, dict) else losses
        if stacked.shape != (len(self.tasks),):
            raise ValueError(f"{len(self.tasks)} task losses expected, got shape {tuple(stacked.shape)}")
        return stacked.detach()


def task_names(tasks: Sequence[Task | str]) -> list[str]:
    """Names of ``tasks`` given as Task records or as names."""
    return [t if isinstance(t, str) else t.name for t in tasks]
