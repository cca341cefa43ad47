"""Task losses evaluated together equal each task's own masked loss, and masked cells contribute exactly 0."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from multitask import Task
from multitask.train import masked_loss_sum, task_loss_sums

TASKS = [Task("r1", "regression"), Task("r2", "regression", loss="huber"), Task("b1", "binary"),
         Task("b2", "binary"), Task("c", "multiclass"), Task("r3", "regression")]


def _batch(seed: int, n: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    outputs, targets, masks = {}, {}, {}
    for t in TASKS:
        if t.kind == "multiclass":
            outputs[t.name] = torch.randn(n, 3, generator=g, requires_grad=True)
            targets[t.name] = torch.randint(0, 3, (n,), generator=g)
        else:
            outputs[t.name] = torch.randn(n, generator=g, requires_grad=True)
            targets[t.name] = (torch.rand(n, generator=g) > 0.5).float() if t.kind == "binary" else torch.randn(n, generator=g)
        masks[t.name] = torch.rand(n, generator=g) > 0.4
    return outputs, targets, masks


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 12), junk=st.floats(-1e6, 1e6))
def test_grouped_sums_equal_per_task_sums(seed: int, n: int, junk: float) -> None:
    outputs, targets, masks = _batch(seed, n)
    for t in TASKS:  # a masked cell's target is never read
        if t.kind != "multiclass":
            targets[t.name] = torch.where(masks[t.name], targets[t.name], junk)
    grouped = task_loss_sums(TASKS, outputs, targets, masks)
    assert list(grouped) == [t.name for t in TASKS]
    for t in TASKS:
        alone = masked_loss_sum(t, outputs[t.name], targets[t.name], masks[t.name])
        torch.testing.assert_close(grouped[t.name], alone, rtol=1e-5, atol=1e-6)
        if n:
            g_grouped = torch.autograd.grad(grouped[t.name], outputs[t.name], retain_graph=True)[0]
            g_alone = torch.autograd.grad(alone, outputs[t.name], retain_graph=True)[0]
            torch.testing.assert_close(g_grouped, g_alone, rtol=1e-5, atol=1e-6)
            assert not g_grouped[~masks[t.name]].any()  # masked rows get exactly no gradient
