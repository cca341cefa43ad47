"""Auto-Lambda (Liu, Davison & Johns, 2022): task weights that follow the primary tasks' validation loss."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from multitask.balancing._base import Balancing, Lookahead, task_names
from multitask.tasks import Task

#: Adam's betas and eps for the weights (torch.optim.Adam's defaults, which the authors' code uses)
_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


def hypergradient(objective: Lookahead, weights: torch.Tensor, primary: torch.Tensor, alpha: float) -> torch.Tensor:
    """``h_t = ∂/∂λ_t Σ_{p ∈ P} L_p^val(θ − α Σ_s λ_s ∇_θ L_s^train(θ))`` (T,), exactly, by autograd.

    By the chain rule ``h_t = −α ∇_θ L_t^train(θ) · ∇L_P^val(θ')``: how much one SGD step along task ``t``'s
    gradient lowers the primary tasks' validation loss. ``primary`` is a 0/1 mask (T,) of the tasks in ``P``.
    The derivative goes through the gradient of the training loss (a double backward pass); the authors'
    code approximates the same product by finite differences of the training loss around ``θ``.
    """
    theta = {name: p.detach().requires_grad_(True) for name, p in objective.parameters.items()}
    lam = weights.detach().clone().requires_grad_(True)
    train = objective.train(theta)
    total = (lam.to(train.dtype) * train).sum()
    grads = torch.autograd.grad(total, list(theta.values()), create_graph=True, allow_unused=True)
    moved = {
        name: p - alpha * g.to(p.dtype) if g is not None else p
        for (name, p), g in zip(theta.items(), grads, strict=True)
    }
    valid = objective.valid(moved)
    meta = (primary.to(valid.device, valid.dtype) * valid).sum()
    if not meta.requires_grad:
        return torch.zeros_like(lam)
    (h,) = torch.autograd.grad(meta, lam, allow_unused=True)
    return torch.zeros_like(lam) if h is None else h.detach()


class AutoLambda(Balancing):
    """``L = Σ_t λ_t L_t``, ``λ`` learned from the primary tasks' validation loss after a lookahead step (Auto-λ).

    Liu, Davison & Johns, "Auto-Lambda: Disentangling dynamic task relationships", TMLR 2022. Before each
    step (every ``every`` steps), with ``θ`` the model's parameters, ``L_t`` the task losses of the step's
    training batch and ``L_P^val`` the sum of the primary tasks' losses on a validation batch:

    ``θ'(λ) = θ − α Σ_t λ_t ∇_θ L_t(θ)`` (a virtual SGD step; ``α``: the optimizer's learning rate),
    ``h_t = ∂ L_P^val(θ'(λ)) / ∂λ_t = −α ∇_θ L_t(θ) · ∇_θ' L_P^val(θ')`` (:func:`hypergradient`, exact),

    then one Adam step on ``λ`` with ``h`` and ``λ ← max(λ, 0)``. An auxiliary task whose gradient lowers the
    primary tasks' validation loss gains weight; one that raises it loses weight. Every task's weight is
    learned, the primary tasks' too, as in the paper. With no ``primary`` every task is primary: the
    paper's multi-task setting. The lookahead is evaluated in evaluation mode (no dropout noise) on the task
    losses alone (a model's own penalty, such as AITM's calibration term, is left out of it); the validation
    batch holds rows labelled for a primary task.

    Departures from the authors' code: ``λ`` is kept ≥ 0 (a negative weight would train a task's loss
    upward); the virtual step is plain SGD (their code adds SGD's momentum and weight decay); the meta data
    are the run's validation part (their code draws the meta batches from a second pass over the training
    set); the default initial weight is 1 (the static weights' start) rather than their 0.1, and the
    default learning rate of ``λ`` 1e-3 rather than their 1e-4 (3e-4 on CIFAR-100), for runs of tens of
    epochs rather than hundreds. ``λ``, Adam's moments and the step count are buffers: a resumed run
    continues the same weights.

    Args:
        tasks: the tasks, in the order of the losses.
        primary: the task (or tasks) whose validation loss the weights serve; default: every task.
        lr: Adam's learning rate for ``λ``, default 1e-3.
        init: the initial weight of every task, default 1.0.
        alpha: the virtual step's size ``α``; default: the optimizer's learning rate in that step.
        every: update ``λ`` every this many steps, default 1 (each update costs about three backward passes).
    """

    needs_validation = True

    def __init__(
        self,
        tasks: Sequence[Task | str],
        primary: str | Sequence[str] | None = None,
        lr: float = 1e-3,
        init: float = 1.0,
        alpha: float | None = None,
        every: int = 1,
    ) -> None:
        super().__init__(task_names(list(tasks)))
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"lr must be finite and >= 0, got {lr}")
        if not (math.isfinite(init) and init >= 0):
            raise ValueError(f"init must be finite and >= 0, got {init}")
        if alpha is not None and not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha must be None or finite and > 0, got {alpha}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an integer >= 1, got {every!r}")
        chosen = list(self.tasks) if primary is None else [primary] if isinstance(primary, str) else list(primary)
        unknown = [p for p in chosen if p not in self.tasks]
        if unknown or not chosen:
            raise ValueError(f"primary task {unknown[0] if unknown else ''!r} is not one of the tasks: "
                             f"{', '.join(self.tasks[:10])}")
        self.primary = [t for t in self.tasks if t in chosen]
        self.lr, self.init, self.alpha, self.every = float(lr), float(init), alpha, every
        t = len(self.tasks)
        self.register_buffer("lambdas", torch.full((t,), float(init), dtype=torch.float64))
        self.register_buffer("exp_avg", torch.zeros(t, dtype=torch.float64))
        self.register_buffer("exp_avg_sq", torch.zeros(t, dtype=torch.float64))
        self.register_buffer("adam_steps", torch.zeros((), dtype=torch.int64))
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))
        self.lambdas: torch.Tensor
        self.exp_avg: torch.Tensor
        self.exp_avg_sq: torch.Tensor
        self.adam_steps: torch.Tensor
        self.calls: torch.Tensor

    def validation_tasks(self) -> list[str]:
        return list(self.primary)

    def primary_mask(self) -> torch.Tensor:
        """1 for a primary task, 0 for an auxiliary one (T,)."""
        return torch.tensor([float(t in self.primary) for t in self.tasks], dtype=torch.float64)

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """``Σ_t λ_t L_t``."""
        stacked = self._stack(losses)
        self.weights_ = self.lambdas.detach().clone()
        return (self.lambdas.to(stacked.device, stacked.dtype) * stacked).sum()

    def look_ahead(self, objective: Lookahead) -> None:
        """One Adam step on ``λ`` along the hypergradient of this step (every ``every`` calls)."""
        self.calls.add_(1)
        if (int(self.calls) - 1) % self.every:
            return
        alpha = self.alpha if self.alpha is not None else objective.lr
        grad = hypergradient(objective, self.lambdas, self.primary_mask(), alpha).to(self.lambdas)
        if not bool(grad.isfinite().all()):
            return  # a lookahead that diverged says nothing about the weights; the step itself is checked
        self.adam_steps.add_(1)
        b1, b2 = _BETAS
        self.exp_avg.mul_(b1).add_(grad, alpha=1 - b1)
        self.exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        k = self.adam_steps.to(torch.float64)
        denom = (self.exp_avg_sq / (1 - b2**k)).sqrt() + _ADAM_EPS
        self.lambdas.sub_(self.lr * (self.exp_avg / (1 - b1**k)) / denom).clamp_(min=0.0)
