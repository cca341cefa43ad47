"""Task losses over the labelled rows of a batch: a masked cell adds exactly 0 to value and gradient."""

from __future__ import annotations

import torch

from multitask.tasks import Task


def masked_loss_sum(
    task: Task, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``Σ loss_t`` over the labelled rows only (masked rows are never computed, so never imputed)."""
    return task.loss_fn(output[mask], target[mask]).sum()


#: per-row losses that act element by element, so that several one-output tasks can share one evaluation
_ELEMENTWISE = frozenset({"mse", "huber", "bce"})


def task_loss_sums(
    tasks: list[Task],
    outputs: dict[str, torch.Tensor],
    targets: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """``{task: Σ loss_t over its labelled rows}``, in task order, as :func:`masked_loss_sum` computes each.

    One-output tasks with the same element-wise loss and batch length are evaluated together: outputs
    stacked into ``(n, k)``, a masked cell given the placeholder target 0 and its loss replaced by 0, so
    that it adds exactly 0 to the value and to the gradient (never imputed). With many tasks (139 schools)
    this is a handful of operations instead of several per task.
    """
    sums: dict[str, torch.Tensor] = {}
    groups: dict[tuple[str, int], list[Task]] = {}
    for t in tasks:
        out = outputs[t.name]
        if t.loss in _ELEMENTWISE and out.dim() == 1:
            groups.setdefault((t.loss, int(out.shape[0])), []).append(t)
        else:
            sums[t.name] = masked_loss_sum(t, out, targets[t.name], masks[t.name])
    for group in groups.values():
        out = torch.stack([outputs[t.name] for t in group], dim=1)
        mask = torch.stack([masks[t.name] for t in group], dim=1)
        target = torch.where(mask, torch.stack([targets[t.name] for t in group], dim=1), 0.0)
        per_cell = torch.where(mask, group[0].loss_fn(out, target), 0.0)
        sums.update(zip((t.name for t in group), per_cell.sum(dim=0).unbind(), strict=True))
    return {t.name: sums[t.name] for t in tasks}
