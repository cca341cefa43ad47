"""What a task is: a name, a kind, its loss and metrics, a static weight and the metric that decides "better".

A task's kind fixes the shape of its model output and targets:

============  ==================  =====================  ==================================
kind          model output        target                 prediction (``Task.activate``)
============  ==================  =====================  ==================================
regression    ``(n,)`` value      ``(n,)`` float         the value
binary        ``(n,)`` logit      ``(n,)`` 0/1 float     probability of the positive class
multiclass    ``(n, k)`` logits   ``(n,)`` class index   ``(n, k)`` class probabilities
multilabel    ``(n, k)`` logits   ``(n, k)`` 0/1 float   ``(n, k)`` label probabilities
============  ==================  =====================  ==================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

import torch

from multitask.errors import ConfigError
from multitask.registry import LOSSES, METRICS

TaskKind = Literal["regression", "binary", "multiclass", "multilabel"]
KINDS: tuple[str, ...] = get_args(TaskKind)

#: losses allowed for each kind; the first is the default
KIND_LOSSES: dict[str, tuple[str, ...]] = {
    "regression": ("mse", "huber"),
    "binary": ("bce",),
    "multiclass": ("ce",),
    "multilabel": ("multilabel-bce",),
}
#: metrics reported for each kind; the first is the default deciding metric
KIND_METRICS: dict[str, tuple[str, ...]] = {
    "regression": ("rmse", "mae", "r2", "explained_variance"),
    "binary": ("auc", "accuracy", "f1", "recall"),
    "multiclass": ("accuracy", "macro_f1"),
    "multilabel": ("micro_f1", "macro_f1"),
}


@dataclass(frozen=True)
class Task:
    """One prediction target: ``Task("income", "binary")``; loss and deciding metric default by kind."""

    name: str
    kind: str
    weight: float = 1.0
    loss: str = ""
    metric: str = ""
    metrics: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("a task needs a non-empty name")
        if self.kind not in KINDS:
            raise ConfigError(f"task {self.name!r}: unknown task kind {self.kind!r}; choose one of: {', '.join(KINDS)}")
        if not (0.0 <= self.weight < float("inf")):
            raise ConfigError(f"task {self.name!r}: weight must be a finite number >= 0, got {self.weight}")
        loss = self.loss or KIND_LOSSES[self.kind][0]
        if loss not in KIND_LOSSES[self.kind]:
            allowed = ", ".join(KIND_LOSSES[self.kind])
            raise ConfigError(f"task {self.name!r}: loss {loss!r} does not fit a {self.kind} task; use {allowed}")
        metrics = self.metrics or KIND_METRICS[self.kind]
        for m in metrics:
            if m not in METRICS:
                raise ConfigError(f"task {self.name!r}: unknown metric {m!r}; choose one of: {', '.join(METRICS)}")
        metric = self.metric or metrics[0]
        if metric not in METRICS:
            raise ConfigError(f"task {self.name!r}: unknown metric {metric!r}; choose one of: {', '.join(METRICS)}")
        if metric not in metrics:
            metrics = (*metrics, metric)
        object.__setattr__(self, "loss", loss)
        object.__setattr__(self, "metric", metric)
        object.__setattr__(self, "metrics", tuple(metrics))

    @property
    def higher_is_better(self) -> bool:
        """Direction of the deciding metric."""
        return bool(METRICS.get(self.metric).higher_is_better)

    def loss_fn(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-row loss, shape ``(n,)``; masking and averaging are the trainer's."""
        fn = LOSSES.get(self.loss)
        return fn(output, target)

    def activate(self, output: torch.Tensor) -> torch.Tensor:
        """Model output to prediction: the value, or probabilities for classification kinds."""
        if self.kind == "regression":
            return output
        if self.kind == "multiclass":
            return torch.softmax(output, dim=-1)
        return torch.sigmoid(output)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "weight": self.weight,
            "loss": self.loss,
            "metric": self.metric,
            "metrics": list(self.metrics),
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Task:
        return cls(
            name=str(d["name"]),
            kind=str(d["kind"]),
            weight=float(d.get("weight", 1.0)),  # type: ignore[arg-type]
            loss=str(d.get("loss", "")),
            metric=str(d.get("metric", "")),
            metrics=tuple(d.get("metrics", ())),  # type: ignore[arg-type]
        )


def parse_task(spec: str) -> Task:
    """``"NAME:KIND"`` (as given to ``--task``) to a :class:`Task`; the kind is required."""
    name, sep, kind = spec.rpartition(":")
    if not sep:
        raise ConfigError(f"--task {spec!r}: give the task's kind, NAME:KIND, KIND one of {', '.join(KINDS)}")
    if not name:
        raise ConfigError(f"--task {spec!r}: expected NAME:KIND, e.g. income:binary")
    return Task(name=name, kind=kind)
