"""The seam between the trainer and a balancing method: how this step's task losses become one gradient.

The trainer computes one loss per task (mean over the task's labelled rows of the global batch) and hands
them to a balancer of one of two kinds:

* a :class:`Balancer` returns the scalar to backpropagate, ``combine(losses)`` (static or adaptive task
  weights; learnable weights, as in uncertainty weighting, are the balancer's own parameters when it is an
  ``nn.Module``: the trainer adds them to the optimizer and to the checkpoint);
* a :class:`GradientBalancer` receives the Jacobian ``J`` (one row per task: the gradient of that task's loss
  w.r.t. the flattened shared parameters) and returns the direction ``d = combine_gradients(J, losses)`` of
  the shared parameters. The trainer writes ``d`` to their ``.grad``; each head gets
  ``task.weight · ∇ loss_t``.

Either may keep explicit state; if it has ``state_dict()``/``load_state_dict()`` the checkpoint carries it.
The registered methods (:mod:`multitask.balancing`, selected by ``TrainConfig.balancer``) derive from
:class:`~multitask.balancing.Balancing`: the trainer calls their ``begin_step(seed, epoch, step)`` before
each step (stochastic methods seed their draws from it), their ``end_epoch(mean training losses)`` after each
epoch, and logs the epoch mean of their ``weights_`` under "weights" in ``log.jsonl``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from multitask.balancing import Balancing, StaticWeights


@runtime_checkable
class Balancer(Protocol):
    """Task losses of one step -> the scalar the trainer backpropagates."""

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor: ...


@runtime_checkable
class GradientBalancer(Protocol):
    """Per-task gradients of the shared parameters ``J`` (T x P) -> the shared parameters' gradient (P,)."""

    def combine_gradients(self, jacobian: torch.Tensor, losses: dict[str, torch.Tensor]) -> torch.Tensor: ...


class _UserLosses(Balancing):
    """A user's object with ``combine(losses)``, presented to the trainer as a loss weighting."""

    def __init__(self, tasks: list[str], inner: Balancer) -> None:
        super().__init__(tasks)
        self.inner = inner

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.inner.combine(losses)


class _UserDirection(Balancing):
    """A user's object with ``combine_gradients(J, losses)``, presented to the trainer as a Jacobian method."""

    needs = "jacobian"

    def __init__(self, tasks: list[str], inner: GradientBalancer) -> None:
        super().__init__(tasks)
        self.inner = inner

    def direction(self, jacobian: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        return self.inner.combine_gradients(jacobian, dict(zip(self.tasks, losses.unbind(), strict=True)))


def as_balancing(balancer: Balancing | Balancer | GradientBalancer, tasks: list[str]) -> Balancing:
    """``balancer`` itself if registered-style, else a wrapper that declares what the object needs.

    A wrapped object that is an ``nn.Module`` stays a submodule: the optimizer trains its parameters and the
    checkpoint carries its state.
    """
    if isinstance(balancer, Balancing):
        return balancer
    if isinstance(balancer, GradientBalancer):
        return _UserDirection(tasks, balancer)
    if isinstance(balancer, Balancer):
        return _UserLosses(tasks, balancer)
    raise TypeError(
        f"a balancer needs combine(losses) or combine_gradients(jacobian, losses); {type(balancer).__name__} "
        "has neither"
    )


__all__ = ["Balancer", "GradientBalancer", "StaticWeights", "as_balancing"]
