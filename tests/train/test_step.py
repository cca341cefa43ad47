"""The training step: batched per-task gradients, every kind of balancer, accumulation, representation level."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from multitask import Task
from multitask.balancing import MGDA, Balancing, mean_pairwise_cosine, min_norm_weights, task_jacobian
from multitask.data.arrays import Arrays
from multitask.errors import ConfigError
from multitask.nn import HardSharing, InputSpec
from multitask.registry import BALANCERS
from multitask.train import TrainConfig, fit
from multitask.train._distributed import Distributed
from multitask.train._step import Stepper, split_rows

TASKS = [
    Task("r", "regression"),
    Task("b", "binary", weight=0.5),
    Task("q", "regression"),
    Task("m", "multiclass"),
]


def _data(n: int = 64, seed: int = 0) -> Arrays:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    r = (x @ rng.normal(size=5)).astype(np.float32)
    targets = {
        "r": r,
        "b": (x[:, 0] > 0).astype(np.float32),
        "q": (-r + 0.5 * x[:, 1]).astype(np.float32),
        "m": rng.integers(0, 3, size=n).astype(np.int64),
    }
    masks = {t.name: rng.random(n) < 0.8 for t in TASKS}
    masks["m"][:8] = False  # whole micro-batches without labels of a task
    targets = {k: np.where(masks[k], v, 0).astype(v.dtype) for k, v in targets.items()}
    return Arrays({"s": x}, targets, masks, {t.name: "s" for t in TASKS})


def _model() -> HardSharing:
    torch.manual_seed(0)
    return HardSharing({"s": InputSpec(dim=5)}, TASKS, {t.name: "s" for t in TASKS}, {"m": 3}, hidden=(6, 4))


def _options(name: str) -> list[dict[str, str]]:
    """Each way to run ``name``: at the parameters, and at the representation where it takes ``of``."""
    cls = BALANCERS.get(name)
    if "of" in inspect.signature(cls).parameters:
        return [{"of": "parameters"}, {"of": "representation"}]
    return [{}]


def _grads(name: str, options: dict[str, str], parts: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    data = _data()
    model = _model()
    method = BALANCERS.get(name)(TASKS, **options)
    assert isinstance(method, Balancing)
    stepper = Stepper(model, method, TASKS, Distributed())
    rows = {"s": np.arange(data.n_rows("s"))}
    count = {t.name: int(data.masks[t.name].sum()) for t in TASKS}
    batches = [data.take(part) for part in split_rows(rows, parts)]
    method.begin_step(0, 0, 1)
    values = stepper.step(batches, count, lambda v: None)
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()], values


CASES = [(name, options) for name in BALANCERS.names() for options in _options(name)]


@pytest.mark.parametrize(("name", "options"), CASES, ids=[f"{n}-{o.get('of', '')}" for n, o in CASES])
def test_accumulating_micro_batches_gives_the_one_batch_update(name: str, options: dict[str, str]) -> None:
    whole, values = _grads(name, options, 1)
    split, values_split = _grads(name, options, 4)
    torch.testing.assert_close(values_split, values)
    for a, b in zip(split, whole, strict=True):
        torch.testing.assert_close(a, b, rtol=2e-4, atol=1e-6)
    assert any(float(g.abs().sum()) > 0 for g in whole)


def test_the_batched_jacobian_is_the_per_task_gradients() -> None:
    model = _model()
    data = _data()
    batch = data.take({"s": np.arange(32)})
    out = model(batch.inputs)
    losses = torch.stack([out[t.name].float().pow(2).mean() for t in TASKS])
    shared = model.shared_parameters()
    jacobian = task_jacobian(losses, shared)
    for i in range(len(TASKS)):
        grads = torch.autograd.grad(losses[i], shared, retain_graph=True)
        torch.testing.assert_close(jacobian[i], torch.cat([g.reshape(-1) for g in grads]))


def test_mean_pairwise_cosine() -> None:
    j = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    # pairs among the three non-zero rows: cos 0, -1, 0 -> mean -1/3
    assert float(mean_pairwise_cosine(j @ j.T)) == pytest.approx(-1 / 3)
    assert torch.isnan(mean_pairwise_cosine(torch.ones(1, 1)))


def test_representation_level_mgda_weighs_the_representation_gramian() -> None:
    model = _model()
    data = _data()
    count = {t.name: int(data.masks[t.name].sum()) for t in TASKS}
    rows = {"s": np.arange(data.n_rows("s"))}
    batch = data.take(rows)
    method = MGDA(TASKS, of="representation")
    Stepper(model, method, TASKS, Distributed()).step([batch], count, lambda v: None)
    # by hand: the per-task gradients of the representation, their Gramian, its min-norm weights
    from multitask.train import task_loss_sums

    rep = model.representation(batch.inputs)
    sums = task_loss_sums(TASKS, model.heads(rep), batch.targets, batch.masks)
    losses = torch.stack([sums[t.name] / count[t.name] for t in TASKS])
    jz = task_jacobian(losses, list(rep.values())).double()
    assert method.weights_ is not None
    torch.testing.assert_close(method.weights_, min_norm_weights(jz @ jz.T), rtol=1e-5, atol=1e-8)


def test_representation_level_needs_a_model_with_a_representation() -> None:
    class Plain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(5, 1)

        def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {t.name: self.lin(inputs["s"]).squeeze(1) for t in TASKS}

        def shared_parameters(self) -> list[torch.nn.Parameter]:
            return list(self.parameters())

    with pytest.raises(ConfigError, match="representation"):
        Stepper(Plain(), MGDA(TASKS, of="representation"), TASKS, Distributed())
    Stepper(Plain(), MGDA(TASKS), TASKS, Distributed())  # at the parameters it works


def _fit(tmp_path: Path, balancer: str, **options: object) -> list[dict[str, object]]:
    data = _data(96)
    train, valid = data.subset({"s": np.arange(64)}), data.subset({"s": np.arange(64, 96)})
    config = TrainConfig(
        epochs=2, batch_size=16, progress=False, threads=1, balancer=balancer, balancer_options=options
    )
    fit(_model(), TASKS, train, valid, config, run_dir=tmp_path)
    return [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]


def test_the_log_has_the_mean_cosine_of_the_task_gradients_where_they_were_computed(tmp_path: Path) -> None:
    gradient = _fit(tmp_path / "g", "pcgrad")
    losses = _fit(tmp_path / "l", "dwa")
    assert all(-1.0 <= float(r["cosine"]) <= 1.0 for r in gradient)  # type: ignore[arg-type]
    assert all(r["cosine"] is None for r in losses)


def test_accumulate_is_an_option_with_bounds() -> None:
    assert TrainConfig(accumulate=4, batch_size=16).accumulate == 4
    with pytest.raises(ConfigError, match="accumulate"):
        TrainConfig(accumulate=32, batch_size=16)
    with pytest.raises(ConfigError, match="accumulate"):
        TrainConfig(accumulate=0)


def test_fit_with_accumulation_equals_fit_without(tmp_path: Path) -> None:
    data = _data(96)
    train, valid = data.subset({"s": np.arange(64)}), data.subset({"s": np.arange(64, 96)})
    results = []
    for parts in (1, 4):
        config = TrainConfig(
            epochs=2,
            batch_size=16,
            progress=False,
            threads=1,
            balancer="mgda",
            accumulate=parts,
            patience=None,
        )
        results.append(fit(_model(), TASKS, train, valid, config).model.state_dict())
    for key, value in results[0].items():
        torch.testing.assert_close(results[1][key], value, rtol=1e-4, atol=1e-6)


def test_resume_refuses_another_balancer_object(tmp_path: Path) -> None:
    data = _data(96)
    train, valid = data.subset({"s": np.arange(64)}), data.subset({"s": np.arange(64, 96)})
    config = TrainConfig(epochs=2, batch_size=16, progress=False, threads=1, patience=None)
    fit(_model(), TASKS, train, valid, config, run_dir=tmp_path, balancer=MGDA(TASKS))
    with pytest.raises(ConfigError, match="balancer"):
        fit(
            _model(),
            TASKS,
            train,
            valid,
            config,
            run_dir=tmp_path,
            resume=True,
            balancer=BALANCERS.get("pcgrad")(TASKS),
        )
