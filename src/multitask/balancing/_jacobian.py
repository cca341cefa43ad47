"""Per-task gradients in one batched backward pass, and what the logs say about them.

:func:`task_jacobian` is what the trainer (and the task-affinity tools) use to get the gradients of T task
losses with respect to some tensors: one backward pass vectorized over the T tasks
(``torch.autograd.grad(..., is_grads_batched=True)``) instead of T passes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

log = logging.getLogger(__name__)

_warned_loop = False


def task_jacobian(
    losses: torch.Tensor, inputs: Sequence[torch.Tensor], retain_graph: bool = True, batched: bool = True
) -> torch.Tensor:
    """``J`` (T × P): row ``t`` is the gradient of ``losses[t]`` w.r.t. ``inputs``, flattened and concatenated.

    One backward pass batched over the tasks (the rows of the identity as grad_outputs), or with
    ``batched=False`` one pass per task: faster where the graph between the losses and ``inputs`` is a few
    small operations (the heads, for the representation), whose vectorization costs more than it saves.
    An input that a loss does not reach gets zeros. Where an operation of the graph has no batching rule, the rows are
    computed by one backward pass per task instead (same numbers, slower; warned about once).

    Memory: the result holds ``T · P`` numbers (T = 40 tasks and a 3-million-parameter shared part: 480 MB in
    float32), plus the batched backward's intermediate gradients, T times those of one backward pass.
    """
    if losses.dim() != 1:
        raise ValueError(f"task_jacobian takes a vector of task losses, got shape {tuple(losses.shape)}")
    t = int(losses.shape[0])
    inputs = list(inputs)
    eye = torch.eye(t, dtype=losses.dtype, device=losses.device)
    if not batched:
        return _one_task_at_a_time(losses, inputs, retain_graph)
    try:
        grads = torch.autograd.grad(
            losses,
            inputs,
            grad_outputs=eye,
            retain_graph=retain_graph,
            is_grads_batched=True,
            allow_unused=True,
        )
        rows = [
            (g if g is not None else torch.zeros((t, *x.shape), dtype=x.dtype, device=x.device)).reshape(
                t, -1
            )
            for g, x in zip(grads, inputs, strict=True)
        ]
        return torch.cat(rows, dim=1)
    except RuntimeError as e:
        if "batching rule" not in str(e).lower() and "vmap" not in str(e).lower():
            raise
        global _warned_loop
        if not _warned_loop:
            log.warning(
                "the per-task gradients are computed one task at a time (%s): slower, same numbers", e
            )
            _warned_loop = True
    return _one_task_at_a_time(losses, inputs, retain_graph)


def _one_task_at_a_time(losses: torch.Tensor, inputs: list[torch.Tensor], retain_graph: bool) -> torch.Tensor:
    t = int(losses.shape[0])
    out = []
    for i in range(t):
        grads = torch.autograd.grad(
            losses[i], inputs, retain_graph=True if i < t - 1 else retain_graph, allow_unused=True
        )
        out.append(
            torch.cat(
                [
                    (g if g is not None else torch.zeros_like(x)).reshape(-1)
                    for g, x in zip(grads, inputs, strict=True)
                ]
            )
        )
    return torch.stack(out)


def mean_pairwise_cosine(gramian: torch.Tensor) -> torch.Tensor:
    """The mean of ``cos(g_i, g_j) = G_ij / sqrt(G_ii G_jj)`` over pairs ``i < j`` of non-zero gradients.

    A 0-d tensor on the Gramian's device, NaN when fewer than two task gradients are non-zero (one task,
    or tasks without labels in the batch). Negative values mean conflicting task gradients.
    """
    g = gramian.double()
    norms = g.diagonal().clamp(min=0).sqrt()
    t = g.shape[0]
    upper = torch.triu(torch.ones(t, t, dtype=torch.bool, device=g.device), diagonal=1)
    valid = upper & (norms[:, None] > 0) & (norms[None, :] > 0)
    cos = g / (norms[:, None] * norms[None, :]).clamp(min=torch.finfo(torch.float64).tiny)
    count = valid.sum()
    return torch.where(valid, cos, 0.0).sum() / count.clamp(min=1) + torch.where(count > 0, 0.0, float("nan"))
