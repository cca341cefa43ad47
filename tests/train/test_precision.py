"""``precision="bf16"``: forward passes in bfloat16 under autocast, weights and updates in float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from multitask import Task
from multitask.data.arrays import Arrays
from multitask.errors import ConfigError
from multitask.nn import HardSharing, InputSpec
from multitask.train import TrainConfig, fit
from multitask.train._balancer import as_balancing
from multitask.train._distributed import Distributed
from multitask.train._step import Stepper
from multitask.train._trainer import make_balancer

TASKS = [Task("r", "regression"), Task("b", "binary")]


def _data(n: int = 256) -> Arrays:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    targets = {"r": (x @ rng.normal(size=6)).astype(np.float32), "b": (x[:, 0] > 0).astype(np.float32)}
    return Arrays({"s": x}, targets, {t: np.ones(n, dtype=bool) for t in targets}, {t: "s" for t in targets})


def _model() -> HardSharing:
    torch.manual_seed(0)
    return HardSharing({"s": InputSpec(dim=6)}, TASKS, {"r": "s", "b": "s"}, {}, hidden=[16])


@pytest.mark.parametrize("balancer", ["static", "mgda"])
def test_bf16_runs_the_forward_pass_in_bfloat16_and_keeps_float32_weights(balancer: str) -> None:
    data = _data()
    losses, grads = {}, {}
    for precision in ("fp32", "bf16"):
        model = _model()
        dtypes: list[torch.dtype] = []
        linear = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
        hook = linear.register_forward_hook(lambda m, i, o, seen=dtypes: seen.append(o.dtype))
        method = as_balancing(make_balancer(TrainConfig(balancer=balancer), TASKS), ["r", "b"])
        stepper = Stepper(model, method, TASKS, Distributed(), precision=precision)
        losses[precision] = stepper.step([data.take({"s": np.arange(64)})], {"r": 64, "b": 64}, lambda v: None)
        hook.remove()
        grads[precision] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        assert set(dtypes) == {torch.bfloat16 if precision == "bf16" else torch.float32}
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert all(p.grad is None or p.grad.dtype == torch.float32 for p in model.parameters())
    assert losses["fp32"].dtype == losses["bf16"].dtype
    assert not torch.equal(losses["fp32"], losses["bf16"])  # bfloat16 rounding shows
    assert torch.allclose(losses["fp32"], losses["bf16"], rtol=0.05, atol=0.05)
    assert torch.allclose(grads["fp32"], grads["bf16"], rtol=0.1, atol=0.05)


def test_bf16_training_reaches_the_fp32_losses() -> None:
    data = _data(512)
    config = dict(epochs=5, batch_size=64, patience=None, progress=False, threads=1, lr=3e-3)
    fp32 = fit(_model(), TASKS, data, data, TrainConfig(**config))
    bf16 = fit(_model(), TASKS, data, data, TrainConfig(**config, precision="bf16"))
    for t in ("r", "b"):
        a, b = fp32.history[-1]["valid"][t], bf16.history[-1]["valid"][t]
        assert b == pytest.approx(a, rel=0.15, abs=0.02) and a != b


def test_an_unknown_precision_is_refused() -> None:
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp16")
    with pytest.raises(ConfigError, match="precision"):
        Stepper(_model(), as_balancing(make_balancer(TrainConfig(), TASKS), ["r", "b"]), TASKS, Distributed(), precision="fp8")
