"""Smooth Tchebycheff scalarization (Lin, Zhang, Yang, Liu, Wang & Zhang, 2024)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task

#: the ε inside the logarithms (the authors' multi-task code uses 1e-20)
_EPS = 1e-20


class STCH(Balancing):
    """``L = T μ log Σ_t exp(f_t / μ)``, ``f_t = log(L_t / N_t + ε)``, after ``L = Σ_t log(L_t + ε)`` (STCH).

    Lin, Zhang, Yang, Liu, Wang & Zhang, "Smooth Tchebycheff scalarization for multi-objective optimization",
    ICML 2024: ``g_μ(x | λ) = μ log Σ_t exp(λ_t (f_t(x) − z*_t) / μ)``, a smooth upper bound of the weighted
    Tchebycheff ``max_t λ_t (f_t − z*_t)`` that tends to it as ``μ → 0``. As in the authors' multi-task code
    (their STCH_MTL release, also in LibMTL), the objectives are the log-normalized losses
    ``f_t = log(L_t / N_t + ε)``, the preference is ``λ_t = 1`` and the ideal point ``z* = 0`` (a loss at
    ``N_t``), and the result is multiplied by ``T``. The normalizing (nadir) point ``N_t`` is task ``t``'s
    mean training loss in the last warm-up epoch (handed over by the trainer through :meth:`end_epoch`);
    during the ``warmup_epochs`` first epochs the loss is ``Σ_t log(L_t + ε)``. A task without labels in that
    epoch takes its ``N_t`` from the next epoch in which it has some, and STCH starts once every task has one.
    ``N`` and the epoch count are buffers. The scalarization is torchjd's
    :class:`~torchjd.scalarization.STCH` (``λ = 1``, ``z* = 0``, computed with the largest term factored out).

    The weight of ``L_t`` in the gradient (logged) is ``1 / (L_t + ε)`` in the warm-up and
    ``T softmax(f / μ)_t / (L_t + ε N_t)`` after: the worst-off task, relative to ``N``, gets the most. A task
    whose loss is exactly 0 in a step (no labelled rows) gets weight 0.

    Args:
        tasks: the tasks, in the order of the losses.
        mu: the smoothing ``μ`` > 0, default 1.0 (LibMTL's default; the paper tries 0.01 to 1).
        warmup_epochs: epochs of ``Σ_t log L_t`` before STCH, default 5 (LibMTL's ``STCH_warmup_epoch=4``
            trains epochs 0 to 4 that way and takes ``N`` from epoch 4). 0 is not allowed: ``N`` must come
            from an epoch.
    """

    def __init__(self, tasks: Sequence[Task | str], mu: float = 1.0, warmup_epochs: int = 5) -> None:
        super().__init__(task_names(list(tasks)))
        if not (math.isfinite(mu) and mu > 0):
            raise ValueError(f"mu must be finite and > 0, got {mu}")
        if warmup_epochs < 1:
            raise ValueError(
                f"warmup_epochs must be >= 1 (the nadir point is an epoch's mean loss), got {warmup_epochs}"
            )
        self.mu = float(mu)
        self.warmup_epochs = int(warmup_epochs)
        t = len(self.tasks)
        #: the nadir point N (T,): mean training losses of the last warm-up epoch; NaN: not yet known
        self.register_buffer("nadir", torch.full((t,), math.nan, dtype=torch.float64))
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.int64))
        #: whether every N_t is known, so that STCH is on
        self.register_buffer("active", torch.zeros((), dtype=torch.bool))
        self.nadir: torch.Tensor
        self.epochs_seen: torch.Tensor
        self.active: torch.Tensor

    def end_epoch(self, mean_losses: dict[str, float | None]) -> None:
        """Count the epoch; from the last warm-up epoch on, fill in the unknown ``N_t`` with its mean loss."""
        self.epochs_seen.add_(1)
        if int(self.epochs_seen) < self.warmup_epochs or bool(self.active):
            return
        means = torch.tensor(
            [_or_nan(mean_losses.get(t)) for t in self.tasks], dtype=torch.float64, device=self.nadir.device
        )
        usable = self.nadir.isnan() & means.isfinite() & (means > 0)
        self.nadir.copy_(torch.where(usable, means, self.nadir))
        self.active.fill_(bool(self.nadir.isfinite().all()))

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """``Σ_t log(L_t + ε)`` in the warm-up, then ``T μ log Σ_t exp(log(L_t / N_t + ε) / μ)``."""
        stacked = self._stack(losses)
        device, dtype = stacked.device, stacked.dtype
        values = stacked.detach().to(torch.float64)
        present = values != 0
        active = self.active.to(device)  # both branches are computed: no host sync per step
        nadir = torch.nan_to_num(self.nadir.to(device), nan=1.0)
        f = torch.log(stacked / nadir.to(dtype) + _EPS)
        p = torch.softmax(f.detach().to(torch.float64) / self.mu, dim=0)
        t = len(self.tasks)
        weights = torch.where(active, t * p / (values + _EPS * nadir), 1.0 / (values + _EPS))
        self.weights_ = torch.where(present, weights, 0.0)
        # imported when used: torchjd loads cvxpy and scipy, which a run without it does not need
        from torchjd.scalarization import STCH as _TorchjdSTCH

        smooth = t * _TorchjdSTCH(self.mu, weights=torch.ones_like(f))(f)
        return torch.where(active, smooth, torch.log(stacked + _EPS).sum())


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)
