"""Numeric multi-task data after preprocessing, and the batches the trainer feeds to a model.

Data come in one or more *sources* (input tables). Every task reads exactly one source; a source may feed
several tasks (one wide table feeds all of them; with per-task data sets each task has its own source).
A missing label is ``False`` in the task's mask, never a made-up value: masked rows hold 0 in ``targets``
and are excluded from losses and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Arrays:
    """Preprocessed data.

    inputs:      source -> ``(n_s, d_s)`` float32 features, or ``(n_s, C, H, W)`` float32 images
    targets:     task -> ``(n_s,)`` float32 (regression, binary), ``(n_s,)`` int64 (multiclass),
                 ``(n_s, k)`` float32 (multilabel), over the rows of the task's source
    masks:       task -> ``(n_s,)`` bool, True where the task has a label
    task_source: task -> name of the source it reads
    """

    inputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    task_source: dict[str, str]

    @property
    def sources(self) -> list[str]:
        return list(self.inputs)

    def n_rows(self, source: str) -> int:
        return int(self.inputs[source].shape[0])

    def n_labelled(self, task: str) -> int:
        return int(self.masks[task].sum())

    def tasks_of(self, source: str) -> list[str]:
        return [t for t, s in self.task_source.items() if s == source]

    def take(self, rows: dict[str, np.ndarray]) -> Batch:
        """The batch made of ``rows[source]`` (row indices) of every source; a source left out gets 0 rows."""
        inputs: dict[str, torch.Tensor] = {}
        for source, x in self.inputs.items():
            idx = rows.get(source, np.zeros(0, dtype=np.int64))
            inputs[source] = torch.from_numpy(np.ascontiguousarray(x[idx]))
        targets: dict[str, torch.Tensor] = {}
        masks: dict[str, torch.Tensor] = {}
        for task, source in self.task_source.items():
            idx = rows.get(source, np.zeros(0, dtype=np.int64))
            targets[task] = torch.from_numpy(np.ascontiguousarray(self.targets[task][idx]))
            masks[task] = torch.from_numpy(np.ascontiguousarray(self.masks[task][idx]))
        return Batch(inputs=inputs, targets=targets, masks=masks)

    def subset(self, rows: dict[str, np.ndarray]) -> Arrays:
        """The same data restricted to ``rows[source]`` of every source (for splits)."""
        return Arrays(
            inputs={s: x[rows[s]] for s, x in self.inputs.items()},
            targets={t: y[rows[self.task_source[t]]] for t, y in self.targets.items()},
            masks={t: m[rows[self.task_source[t]]] for t, m in self.masks.items()},
            task_source=dict(self.task_source),
        )

    def concat(self, other: Arrays) -> Arrays:
        """The rows of ``self`` followed by those of ``other`` (same sources and tasks), source by source."""
        return Arrays(
            inputs={s: np.concatenate([x, other.inputs[s]]) for s, x in self.inputs.items()},
            targets={t: np.concatenate([y, other.targets[t]]) for t, y in self.targets.items()},
            masks={t: np.concatenate([m, other.masks[t]]) for t, m in self.masks.items()},
            task_source=dict(self.task_source),
        )

    def only_tasks(self, tasks: list[str]) -> Arrays:
        """The data that the given tasks need (used to train single-task baselines)."""
        sources = {self.task_source[t] for t in tasks}
        return Arrays(
            inputs={s: x for s, x in self.inputs.items() if s in sources},
            targets={t: self.targets[t] for t in tasks},
            masks={t: self.masks[t] for t in tasks},
            task_source={t: self.task_source[t] for t in tasks},
        )


@dataclass
class Batch:
    """One training step's data: ``inputs[source]``, ``targets[task]``, ``masks[task]`` as tensors."""

    inputs: dict[str, torch.Tensor]
    targets: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            inputs={k: v.to(device) for k, v in self.inputs.items()},
            targets={k: v.to(device) for k, v in self.targets.items()},
            masks={k: v.to(device) for k, v in self.masks.items()},
        )
