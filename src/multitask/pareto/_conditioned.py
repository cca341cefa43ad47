"""One network for a family of trade-offs: the preference vector is an input and weighs the losses (COSMOS)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from multitask.balancing._base import Balancing, task_names
from multitask.tasks import Task


class PreferenceConditioned(nn.Module):
    """An architecture whose every input also carries the preference vector ``r`` (T,).

    Tabular inputs get ``r`` appended as T more columns; images get T more channels, constant over the
    pixels (as in COSMOS). The architecture inside was built for the widened inputs. In training mode the
    model reads ``training_preference``, which :class:`Cosmos` draws before each step; in evaluation mode it
    reads ``preference`` (:meth:`set_preference`; uniform until set), so the trainer's validation losses, and
    its early stopping, are those of the balanced trade-off.
    """

    preference: torch.Tensor

    def __init__(self, inner: nn.Module, tasks: int) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("preference", torch.full((tasks,), 1.0 / tasks))
        self.training_preference: torch.Tensor | None = None

    @property
    def task_source(self) -> dict[str, str]:
        source: dict[str, str] = self.inner.task_source  # type: ignore[assignment]
        return source

    def set_preference(self, preference: Sequence[float] | np.ndarray | torch.Tensor) -> None:
        r = torch.as_tensor(np.asarray(preference, dtype=np.float64), dtype=self.preference.dtype)
        if r.shape != self.preference.shape or not torch.isfinite(r).all() or (r < 0).any():
            raise ValueError(f"a preference is {self.preference.numel()} finite weights >= 0, got {r.tolist()}")
        self.preference.copy_(r.to(self.preference.device))

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        widened = {}
        chosen = self.training_preference if self.training and self.training_preference is not None else self.preference
        for name, x in inputs.items():
            r = chosen.to(x.dtype).to(x.device)
            if x.dim() == 2:
                widened[name] = torch.cat([x, r.expand(len(x), -1)], dim=1)
            else:  # images (N, C, H, W): T constant channels
                planes = r.view(1, -1, 1, 1).expand(x.shape[0], -1, x.shape[2], x.shape[3])
                widened[name] = torch.cat([x, planes], dim=1)
        out: dict[str, torch.Tensor] = self.inner(widened)
        return out

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.inner.shared_parameters())  # type: ignore[operator]

    def task_parameters(self) -> Any:
        return self.inner.task_parameters()  # type: ignore[operator]

    def penalty(self) -> torch.Tensor | None:
        penalty = getattr(self.inner, "penalty", None)
        return penalty() if callable(penalty) else None

    def model_config(self) -> dict[str, Any]:
        """The inside architecture's description, with the number of preference weights."""
        config: dict[str, Any] = self.inner.model_config()  # type: ignore[operator]
        return {"preference_conditioned": config, "preference_size": int(self.preference.numel())}


class Cosmos(Balancing):
    """``L = Σ_t r_t L_t − λ cos(r, L)``, ``r ~ Dir(α)`` drawn each step and fed to the network.

    With ``λ = 0`` (the default) this is linear scalarization conditioned on its weights, trained for all
    weights at once (Dosovitskiy & Djolonga, "You only train once: loss-conditional training of deep
    networks", ICLR 2020): at evaluation, a larger ``r_t`` trades the other tasks' losses for task ``t``'s. With
    ``λ > 0`` it is COSMOS (Ruchte & Grabocka, "Scalable Pareto front approximation for deep multi-objective
    learning", ICDM 2021): the cosine term pulls the loss vector towards the ray ``r`` in loss space, which
    spreads the solutions along the front but, as a direction in loss space, favours the tasks whose ``r_t``
    is small. ``r`` is drawn from the generator seeded by ``(seed, epoch, step)`` (a resumed run draws the
    same) and set on the :class:`PreferenceConditioned` model before the step's forward pass.
    """

    stochastic = True

    def __init__(self, tasks: Sequence[Task | str], model: PreferenceConditioned, alpha: float = 1.0,
                 cosine_weight: float = 0.0) -> None:
        super().__init__(task_names(list(tasks)))
        if not (alpha > 0 and np.isfinite(alpha)):
            raise ValueError(f"alpha must be a finite number > 0, got {alpha}")
        if not (cosine_weight >= 0 and np.isfinite(cosine_weight)):
            raise ValueError(f"cosine_weight must be a finite number >= 0, got {cosine_weight}")
        self.alpha, self.cosine_weight = float(alpha), float(cosine_weight)
        self._model = [model]  # not a submodule: its weights are the model's, not the method's state

    def begin_step(self, seed: int, epoch: int, step: int) -> None:
        super().begin_step(seed, epoch, step)
        # a Dirichlet draw from the step's generator: normalized Gamma(α) variables by inverse transform
        u = torch.rand(len(self.tasks), generator=self.generator(), dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
        g = _gamma_from_uniform(u, self.alpha)
        self._model[0].training_preference = (g / g.sum()).to(self._model[0].preference.dtype)

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """``Σ_t r_t L_t − λ · cos(r, L)`` with this step's ``r``."""
        stacked = self._stack(losses)
        drawn = self._model[0].training_preference
        if drawn is None:
            raise RuntimeError("Cosmos.combine before begin_step: no preference drawn for this step")
        r = drawn.to(stacked.dtype).to(stacked.device)
        self.weights_ = r.detach().double().cpu()
        cosine = torch.nn.functional.cosine_similarity(r, stacked, dim=0, eps=1e-12)
        return (r * stacked).sum() - self.cosine_weight * cosine


def _gamma_from_uniform(u: torch.Tensor, alpha: float) -> torch.Tensor:
    """Gamma(α, 1) quantiles of ``u`` (SciPy's inverse regularized incomplete gamma)."""
    from scipy.special import gammaincinv

    return torch.as_tensor(gammaincinv(alpha, u.numpy()), dtype=torch.float64).clamp_min(1e-300)
