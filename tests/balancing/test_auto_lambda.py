"""Auto-Lambda: the exact hypergradient against finite differences, the direction of its updates, state, options.

The properties shared by every balancer (finite output, permutations, checkpoint round trip, ``fit`` and resume)
are checked for auto-lambda by tests/balancing/test_properties.py and test_fit.py over the BALANCERS list.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from multitask import Task
from multitask.balancing import AutoLambda, Lookahead, hypergradient
from multitask.data.arrays import Arrays
from multitask.errors import ConfigError
from multitask.nn import HardSharing, InputSpec
from multitask.train import TrainConfig, fit
from multitask.train._trainer import make_balancer

TASKS = ["y", "copy", "anti"]


class _Pooled(nn.Module):
    """One tanh network whose single output every task predicts (so the tasks' gradients interact directly)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(3, 4)
        self.out = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.hidden(x))).squeeze(-1)


def _objective(seed: int = 0) -> tuple[_Pooled, Lookahead]:
    """Tasks ``y``, ``copy`` (the same target) and ``anti`` (its negation) on one output; float64."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = _Pooled().double()
    x, xv = torch.randn(32, 3, generator=g, dtype=torch.float64), torch.randn(16, 3, generator=g, dtype=torch.float64)
    w = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    y, yv = torch.sin(x @ w), torch.sin(xv @ w)

    def losses(inputs: torch.Tensor, target: torch.Tensor) -> object:
        def fn(theta: dict[str, torch.Tensor]) -> torch.Tensor:
            out = functional_call(model, theta, (inputs,))
            return torch.stack([((out - target) ** 2).mean(), ((out - target) ** 2).mean(), ((out + target) ** 2).mean()])
        return fn

    params = dict(model.named_parameters())
    return model, Lookahead(params, losses(x, y), losses(xv, yv), lr=0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize("primary", [[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
def test_the_hypergradient_matches_finite_differences(primary: list[float]) -> None:
    _, objective = _objective()
    lam = torch.tensor([0.7, 1.3, 0.4], dtype=torch.float64)
    mask = torch.tensor(primary, dtype=torch.float64)
    alpha = 0.1

    def meta(weights: torch.Tensor) -> float:
        theta = {n: p.detach().requires_grad_(True) for n, p in objective.parameters.items()}
        total = (weights * objective.train(theta)).sum()
        grads = torch.autograd.grad(total, list(theta.values()))
        moved = {n: (p - alpha * g).detach() for (n, p), g in zip(theta.items(), grads, strict=True)}
        return float((mask * objective.valid(moved)).sum())

    eps = 1e-6
    numeric = torch.tensor([(meta(lam + eps * e) - meta(lam - eps * e)) / (2 * eps)
                            for e in torch.eye(3, dtype=torch.float64)], dtype=torch.float64)
    exact = hypergradient(objective, lam, mask, alpha)
    torch.testing.assert_close(exact, numeric, rtol=1e-5, atol=1e-9)
    assert float(exact.abs().max()) > 1e-4  # the check compares non-trivial numbers


def test_the_helpful_task_gains_weight_and_the_harmful_one_loses_it() -> None:
    _, objective = _objective()
    method = AutoLambda(TASKS, primary="y", lr=0.01)
    for _ in range(20):
        method.look_ahead(objective)
    lam = method.lambdas
    assert float(lam[1]) > 1.0 > float(lam[2])  # copy up, anti down
    assert bool((lam >= 0).all())


def test_the_weights_never_go_negative() -> None:
    _, objective = _objective()
    method = AutoLambda(TASKS, primary="y", lr=0.5, init=0.2)
    for _ in range(10):
        method.look_ahead(objective)
    assert float(method.lambdas[2]) == 0.0 and bool((method.lambdas >= 0).all())


def test_combine_is_the_lambda_weighted_sum() -> None:
    method = AutoLambda(TASKS, init=0.5)
    with torch.no_grad():
        method.lambdas.copy_(torch.tensor([0.5, 2.0, 0.0], dtype=torch.float64))
    losses = {"y": torch.tensor(1.0), "copy": torch.tensor(3.0), "anti": torch.tensor(5.0)}
    assert float(method.combine(losses)) == pytest.approx(6.5)
    assert method.weights_ is not None and method.weights_.tolist() == [0.5, 2.0, 0.0]


def test_updates_every_k_calls_only() -> None:
    _, objective = _objective()
    method = AutoLambda(TASKS, primary="y", every=3)
    seen = []
    for _ in range(6):
        method.look_ahead(objective)
        seen.append(method.lambdas.clone())
    assert int(method.adam_steps) == 2
    assert torch.equal(seen[0], seen[1]) and torch.equal(seen[1], seen[2]) and not torch.equal(seen[2], seen[3])


def test_a_state_dict_round_trip_continues_identically() -> None:
    _, objective = _objective()
    method = AutoLambda(TASKS, primary="y", lr=0.01, every=2)
    for _ in range(5):
        method.look_ahead(objective)
    again = AutoLambda(TASKS, primary="y", lr=0.01, every=2)
    again.load_state_dict(method.state_dict())
    for _ in range(3):
        method.look_ahead(objective)
        again.look_ahead(objective)
    assert torch.equal(again.lambdas, method.lambdas) and torch.equal(again.exp_avg_sq, method.exp_avg_sq)


def test_bad_options_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="primary task 'z' is not one of the tasks"):
        AutoLambda(TASKS, primary="z")
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        AutoLambda(TASKS, every=0)
    with pytest.raises(ValueError, match="alpha"):
        AutoLambda(TASKS, alpha=-1.0)
    tasks = [Task(t, "regression") for t in TASKS]
    with pytest.raises(ConfigError, match=r"balancer_options.*'primary'.*not one of the tasks"):
        make_balancer(TrainConfig(balancer="auto-lambda", balancer_options={"primary": "z"}), tasks)


def _problem() -> tuple[list[Task], Arrays, Arrays]:
    rng = np.random.default_rng(0)
    n = 200
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x @ rng.normal(size=4)).astype(np.float32)
    targets = {"y": y, "copy": y + 0.05 * rng.normal(size=n).astype(np.float32),
               "noise": rng.normal(size=n).astype(np.float32)}
    tasks = [Task(t, "regression") for t in targets]
    masks = {t: np.ones(n, dtype=bool) for t in targets}
    data = Arrays({"s": x}, targets, masks, {t: "s" for t in targets})
    return tasks, data.subset({"s": np.arange(150)}), data.subset({"s": np.arange(150, n)})


def _net(tasks: list[Task]) -> HardSharing:
    torch.manual_seed(0)
    return HardSharing({"s": InputSpec(dim=4)}, tasks, {t.name: "s" for t in tasks}, hidden=(8,))


def test_fit_with_a_primary_task_adapts_the_weights(tmp_path: Path) -> None:
    tasks, train, valid = _problem()
    config = TrainConfig(epochs=4, batch_size=32, lr=1e-2, progress=False, threads=1, primary="y",
                         balancer_options={"lr": 0.02})
    result = fit(_net(tasks), tasks, train, valid, config, run_dir=tmp_path)
    last = result.history[-1]["weights"]
    assert last["y"] > 1.0  # the primary's own gradient lowers its validation loss: its weight rises
    assert len({round(w, 9) for w in last.values()}) == 3  # each task's weight moved its own way
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["balancer"]
    assert int(state["adam_steps"]) == 4 * 5  # one update per step: 150 rows in batches of 32


def test_fit_without_validation_data_is_refused() -> None:
    tasks, train, _ = _problem()
    with pytest.raises(ConfigError, match="adapts its weights to validation batches"):
        fit(_net(tasks), tasks, train, None, TrainConfig(epochs=1, progress=False, primary="y"))


def _architectures() -> list[str]:
    from tests.nn.test_contract import NAMES

    return list(NAMES)


@pytest.mark.parametrize("name", _architectures())
def test_the_lookahead_runs_on_every_architecture(name: str) -> None:
    from multitask.train._distributed import Distributed
    from multitask.train._lookahead import ValidationFeed
    from tests.nn.test_contract import build, case, data

    model, (tasks, _, _) = build(name), case(name)
    method = AutoLambda(tasks, primary=tasks[0].name, lr=0.1)
    train, valid = data(name, n=24), data(name, 24, 1)
    feed = ValidationFeed(model, tasks, method, valid, 16, 0, Distributed())
    count = {t.name: int(train.masks[t.name].sum()) for t in tasks}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    method.look_ahead(feed.objective([train.take({"s": np.arange(24)})], count, 0.01, 0, 1))
    assert bool(method.lambdas.isfinite().all()) and not torch.equal(method.lambdas, torch.ones(len(tasks)).double())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is not changed
    assert model.training


class _Stop(Exception):
    pass


def _stop_after_first(epoch: int, score: float | None) -> None:
    if epoch == 1:
        raise _Stop


def test_a_primary_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    tasks, train, valid = _problem()
    config = TrainConfig(epochs=3, batch_size=32, lr=1e-2, progress=False, threads=1, primary="y", patience=None,
                         balancer_options={"lr": 0.05, "every": 2})
    full = fit(_net(tasks), tasks, train, valid, config, run_dir=tmp_path / "full")
    with pytest.raises(_Stop):
        fit(_net(tasks), tasks, train, valid, config, run_dir=tmp_path / "cut", on_epoch=_stop_after_first)
    resumed = fit(_net(tasks), tasks, train, valid, config, run_dir=tmp_path / "cut", resume=True)
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in resumed.history] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in full.history]
    for key, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    saved = [torch.load(tmp_path / d / "checkpoint.pt", weights_only=True)["balancer"] for d in ("full", "cut")]
    assert all(torch.equal(saved[0][k], saved[1][k]) for k in saved[0])
    assert not torch.equal(saved[0]["lambdas"], torch.ones(3, dtype=torch.float64))


def test_torchrun_and_streamed_validation_are_refused() -> None:
    from multitask.train._distributed import Distributed
    from multitask.train._lookahead import ValidationFeed

    model, method = _Pooled(), AutoLambda(TASKS)
    valid = Arrays({"x": np.zeros((4, 3), np.float32)}, {t: np.zeros(4, np.float32) for t in TASKS},
                   {t: np.ones(4, bool) for t in TASKS}, {t: "x" for t in TASKS})
    with pytest.raises(ConfigError, match="does not run under torchrun"):
        ValidationFeed(model, [Task(t, "regression") for t in TASKS], method, valid, 4, 0, Distributed(0, 2))
    with pytest.raises(ConfigError, match="not from a stream"):
        ValidationFeed(model, [Task(t, "regression") for t in TASKS], method, object(), 4, 0, Distributed())
