"""The training loop: it learns, masks missing labels, stops early, logs, and takes other balancers."""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from multitask import Task
from multitask.data.arrays import Arrays
from multitask.errors import ConfigError, DataError, TrainingDivergedError
from multitask.nn import HardSharing, InputSpec
from multitask.train import (
    CHECKPOINT_FILE,
    LOG_FILE,
    MODEL_CONFIG_FILE,
    MODEL_FILE,
    FitResult,
    StaticWeights,
    TrainConfig,
    fit,
    load_checkpoint,
    masked_loss_sum,
    validation_losses,
)

TASKS = [Task("r", "regression"), Task("b", "binary", weight=0.5)]


def _problem(n: int = 800, seed: int = 0, flip_valid: bool = False) -> tuple[Arrays, Arrays]:
    """y_r = x·w (standardized), y_b = [x0 + x1 > 0]; 30% of labels missing; last 20% for validation."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    r = x @ rng.normal(size=6)
    r = ((r - r.mean()) / r.std()).astype(np.float32)
    b = (x[:, 0] + x[:, 1] > 0).astype(np.float32)
    masks = {"r": rng.random(n) < 0.7, "b": rng.random(n) < 0.7}
    targets = {
        "r": np.where(masks["r"], r, 0).astype(np.float32),
        "b": np.where(masks["b"], b, 0).astype(np.float32),
    }
    data = Arrays({"s": x}, targets, masks, {"r": "s", "b": "s"})
    cut = int(0.8 * n)
    train, valid = data.subset({"s": np.arange(cut)}), data.subset({"s": np.arange(cut, n)})
    if flip_valid:  # validation labels that training makes worse
        valid.targets["r"] = -valid.targets["r"]
        valid.targets["b"] = np.where(valid.masks["b"], 1 - valid.targets["b"], 0).astype(np.float32)
    return train, valid


def _model(tasks: list[Task] = TASKS, **kwargs: object) -> HardSharing:
    torch.manual_seed(0)
    return HardSharing(
        {"s": InputSpec(dim=6)}, tasks, {t.name: "s" for t in tasks}, hidden=(32, 16), **kwargs
    )  # type: ignore[arg-type]


def _config(**kwargs: object) -> TrainConfig:
    options: dict[str, object] = {
        "epochs": 15,
        "batch_size": 32,
        "lr": 3e-3,
        "progress": False,
        "patience": None,
    }
    options["threads"] = 1  # tiny models: more threads only contend with the other test worker
    options.update(kwargs)
    return TrainConfig(**options)


def test_training_learns_the_tasks(tmp_path: Path) -> None:
    train, valid = _problem()
    result = fit(_model(), TASKS, train, valid, _config(), run_dir=tmp_path)
    first, last = result.history[0], result.history[-1]
    assert last["train"]["r"] < 0.2 * first["train"]["r"]
    assert last["valid"]["r"] < 0.05  # of a unit-variance target
    assert last["valid"]["b"] < 0.35  # log 2 = 0.69 is chance
    assert result.best_epoch == 1 + int(np.argmin([h["valid_total"] for h in result.history]))
    assert not result.stopped_early
    # the weighted total the early stopping uses
    assert math.isclose(last["valid_total"], last["valid"]["r"] + 0.5 * last["valid"]["b"])
    # the returned model holds the best epoch's weights
    best = result.history[result.best_epoch - 1]["valid"]
    again = validation_losses(result.model, TASKS, valid)
    assert again == pytest.approx(best, rel=1e-5)
    # one JSON line per epoch
    lines = [_strict_json(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == list(range(1, 16))
    assert set(lines[0]) == {"epoch", "train", "valid", "valid_total", "lr", "weights", "cosine", "seconds"}
    assert lines[0]["weights"] == {t.name: t.weight for t in TASKS}
    assert lines[3]["train"] == pytest.approx(result.history[3]["train"])


def test_early_stopping_restores_the_best_epoch() -> None:
    train, valid = _problem(flip_valid=True)
    result = fit(_model(), TASKS, train, valid, _config(epochs=30, patience=2))
    totals = [h["valid_total"] for h in result.history]
    assert result.stopped_early
    assert len(result.history) == result.best_epoch + 2 < 30
    assert result.best_epoch == 1 + int(np.argmin(totals))
    assert validation_losses(result.model, TASKS, valid) == pytest.approx(
        result.history[result.best_epoch - 1]["valid"], rel=1e-5
    )


def test_without_validation_the_last_epoch_is_kept() -> None:
    train, _ = _problem(n=200)
    result = fit(_model(), TASKS, train, None, _config(epochs=3, patience=1))
    assert result.best_epoch == 3 and not result.stopped_early
    assert all(h["valid"] == {} and h["valid_total"] is None for h in result.history)


def test_same_seed_same_run_and_dropout_is_seeded() -> None:
    train, valid = _problem(n=300)
    a = fit(_model(dropout=0.3), TASKS, train, valid, _config(epochs=2, seed=5))
    b = fit(_model(dropout=0.3), TASKS, train, valid, _config(epochs=2, seed=5))
    c = fit(_model(dropout=0.3), TASKS, train, valid, _config(epochs=2, seed=6))
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("sampling", ["proportional", "uniform", "temperature", "round-robin"])
def test_every_sampler_trains(sampling: str) -> None:
    train, valid = _problem(n=400)
    result = fit(_model(), TASKS, train, valid, _config(epochs=4, sampling=sampling, schedule="cosine"))
    assert result.history[-1]["valid"]["r"] < result.history[0]["valid"]["r"]


def test_per_task_sources_with_images_and_empty_batches() -> None:
    """Round-robin batches hold one source only: the other sources have 0 rows at every step."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    img = rng.normal(size=(40, 1, 8, 8)).astype(np.float32)
    label = (img[:, 0, :4].mean(axis=(1, 2)) > img[:, 0, 4:].mean(axis=(1, 2))).astype(np.int64)
    data = Arrays(
        {"t": x, "i": img},
        {"a": x[:, 0].copy(), "c": label},
        {"a": np.ones(60, dtype=bool), "c": np.ones(40, dtype=bool)},
        {"a": "t", "c": "i"},
    )
    tasks = [Task("a", "regression"), Task("c", "multiclass")]
    torch.manual_seed(0)
    model = HardSharing(
        {"t": InputSpec(dim=3), "i": InputSpec(image_shape=(1, 8, 8))},
        tasks,
        data.task_source,
        {"c": 2},
        hidden=(16,),
    )
    result = fit(model, tasks, data, data, _config(epochs=5, batch_size=10, sampling="round-robin"))
    assert all(math.isfinite(v) for h in result.history for v in h["train"].values())
    assert result.history[-1]["valid"]["a"] < result.history[0]["valid"]["a"]


def test_a_task_without_labels_in_training_contributes_nothing() -> None:
    train, valid = _problem(n=300)
    tasks = [*TASKS, Task("none", "regression")]
    train.targets["none"], train.masks["none"] = np.zeros(240, np.float32), np.zeros(240, bool)
    valid.targets["none"], valid.masks["none"] = np.zeros(60, np.float32), np.zeros(60, bool)
    train.task_source["none"] = valid.task_source["none"] = "s"
    model = _model(tasks)
    head = [p.detach().clone() for p in model.task_parameters()["none"]]
    result = fit(model, tasks, train, valid, _config(epochs=2, optimizer="sgd", lr=0.05))
    assert result.history[-1]["train"]["none"] is None and result.history[-1]["valid"]["none"] is None
    after = result.model.task_parameters()["none"]  # type: ignore[operator]
    for p, before in zip(after, head, strict=True):  # zero gradient, plain sgd: unchanged
        assert torch.equal(p, before)


@pytest.mark.parametrize("kind", ["regression", "binary", "multiclass", "multilabel"])
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 12))
def test_a_masked_target_changes_neither_loss_nor_gradient(kind: str, seed: int, n: int) -> None:
    g = torch.Generator().manual_seed(seed)
    task = Task("t", kind)
    shape = (n, 3) if kind in ("multiclass", "multilabel") else (n,)
    output = torch.randn(shape, generator=g, requires_grad=True)
    mask = torch.rand(n, generator=g) < 0.5

    def target() -> torch.Tensor:
        if kind == "multiclass":
            return torch.randint(0, 3, (n,), generator=g)
        if kind == "regression":
            return 100 * torch.randn(n, generator=g)
        return torch.randint(0, 2, shape, generator=g).float()

    t1, t2 = target(), target()
    t2[mask] = t1[mask]  # the two targets differ only on masked-out rows
    l1 = masked_loss_sum(task, output, t1, mask)
    (g1,) = torch.autograd.grad(l1, output)
    l2 = masked_loss_sum(task, output, t2, mask)
    (g2,) = torch.autograd.grad(l2, output)
    assert torch.equal(l1, l2) and torch.equal(g1, g2)
    assert torch.count_nonzero(g1[~mask]) == 0


class _SumOfGradients:
    """Σ_t w_t ∇L_t written by the trainer as a combined gradient: must match StaticWeights."""

    def __init__(self, weights: list[float]) -> None:
        self.weights = torch.tensor(weights)

    def combine_gradients(self, jacobian: torch.Tensor, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        assert jacobian.shape[0] == len(losses)
        return self.weights @ jacobian


def test_a_gradient_balancer_plugs_in() -> None:
    train, valid = _problem(n=300)
    a = fit(_model(), TASKS, train, valid, _config(epochs=2))
    b = fit(_model(), TASKS, train, valid, _config(epochs=2), balancer=_SumOfGradients([1.0, 0.5]))
    c = fit(_model(), TASKS, train, valid, _config(epochs=2), balancer=_SumOfGradients([1.0, 0.0]))
    for k, v in a.model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[k], v, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(c.model.trunk[0][0].weight, a.model.trunk[0][0].weight)  # type: ignore[index]


class _LearnedWeights(nn.Module):
    """Uncertainty-style weights: L = Σ_t exp(-s_t) L_t + s_t, with learnable s_t."""

    def __init__(self, tasks: list[str]) -> None:
        super().__init__()
        self.tasks = tasks
        self.log_var = nn.Parameter(torch.zeros(len(tasks)))

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack([losses[t] for t in self.tasks])
        return (torch.exp(-self.log_var) * stacked + self.log_var).sum()


def test_learnable_balancer_weights_are_trained_and_checkpointed(tmp_path: Path) -> None:
    train, valid = _problem(n=300)
    balancer = _LearnedWeights(["r", "b"])
    fit(_model(), TASKS, train, valid, _config(epochs=3), run_dir=tmp_path, balancer=balancer)
    assert not torch.equal(balancer.log_var.detach(), torch.zeros(2))
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    torch.testing.assert_close(saved["balancer"]["inner.log_var"], balancer.log_var.detach())


def test_static_weights_combine() -> None:
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(3.0)}
    assert float(StaticWeights({"a": 1.0, "b": 0.5}).combine(losses)) == 3.5


def test_mismatched_tasks_are_named() -> None:
    train, valid = _problem(n=100)
    extra = [*TASKS, Task("x", "regression")]
    with pytest.raises(DataError, match="task 'x': no targets in the training data"):
        fit(_model(), extra, train, valid, _config(epochs=1))
    for data in (train, valid):
        data.targets["x"], data.masks["x"], data.task_source["x"] = data.targets["r"], data.masks["r"], "s"
    with pytest.raises(ConfigError, match="task 'x': the model has no head"):
        fit(_model(), extra, train, valid, _config(epochs=1))


def test_fit_returns_a_fit_result() -> None:
    train, _ = _problem(n=100)
    result = fit(_model(), TASKS, train, None, _config(epochs=1))
    assert isinstance(result, FitResult) and not result.model.training


def test_progress_bar_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    train, _ = _problem(n=100)
    fit(_model(), TASKS, train, None, _config(epochs=2, progress=True))
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err  # rich renders the bars (losses show on refresh)


def test_one_step_follows_the_documented_loss() -> None:
    """One full-batch SGD step moves the weights by -lr · ∇ Σ_t w_t · mean over t's labelled rows of loss_t."""
    train, _ = _problem(n=120)
    model = _model()
    expected = _model()
    batch = train.take({"s": np.arange(train.n_rows("s"))})
    out = expected(batch.inputs)
    total = torch.zeros(())
    for t in TASKS:
        m = batch.masks[t.name]
        total = total + t.weight * t.loss_fn(out[t.name][m], batch.targets[t.name][m]).mean()
    grads = torch.autograd.grad(total, list(expected.parameters()))
    before = [p.detach().clone() for p in expected.parameters()]
    result = fit(model, TASKS, train, None, _config(epochs=1, batch_size=10_000, optimizer="sgd", lr=0.1))
    for p, p0, g in zip(result.model.parameters(), before, grads, strict=True):
        torch.testing.assert_close(p.detach(), p0 - 0.1 * g, rtol=1e-5, atol=1e-7)


def test_masked_targets_never_reach_training() -> None:
    train, valid = _problem(n=300)
    garbage = Arrays(dict(train.inputs), dict(train.targets), dict(train.masks), dict(train.task_source))
    for t in ("r", "b"):
        garbage.targets[t] = np.where(train.masks[t], train.targets[t], 1e6).astype(np.float32)
    a = fit(_model(dropout=0.2), TASKS, train, valid, _config(epochs=2))
    b = fit(_model(dropout=0.2), TASKS, garbage, valid, _config(epochs=2))
    for k, v in a.model.state_dict().items():
        assert torch.equal(b.model.state_dict()[k], v), k
    assert a.history == [{**h, "seconds": a.history[i]["seconds"]} for i, h in enumerate(b.history)]


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not strict JSON")

    return json.loads(text, parse_constant=refuse)


# ---- a run that diverges stops, and never saves weights that no epoch produced ---------------------------------
@pytest.mark.parametrize(
    ("options", "value"),
    [({"optimizer": "sgd", "lr": 1e8}, "inf"), ({"optimizer": "adam", "lr": 1e30}, "nan")],
)
def test_a_diverging_run_raises_naming_the_task_and_epoch(
    tmp_path: Path, options: dict[str, object], value: str
) -> None:
    train, valid = _problem(n=200)
    tasks = [Task("income.gt50k", "regression")]  # the tiny regression problem, under an awkward name
    for data in (train, valid):
        data.targets["income.gt50k"], data.masks["income.gt50k"] = data.targets["r"], data.masks["r"]
        data.task_source["income.gt50k"] = "s"
    with pytest.raises(TrainingDivergedError) as info:
        fit(_model(tasks), tasks, train, valid, _config(epochs=3, **options), run_dir=tmp_path)
    message = str(info.value)
    assert message.startswith(
        f"training diverged: task 'income.gt50k' has a non-finite loss ({value}) at epoch 1, step "
    )
    assert "no epoch completed, so there is no checkpoint" in message and "\n" not in message
    assert not (tmp_path / MODEL_FILE).exists() and not (tmp_path / MODEL_CONFIG_FILE).exists()
    assert not (tmp_path / CHECKPOINT_FILE).exists()
    assert (tmp_path / LOG_FILE).read_text() == ""


class _PoisonAt:
    """Static weights, but the combined loss of the ``step``-th call is multiplied by NaN: the weights
    become NaN in that step."""

    def __init__(self, step: int) -> None:
        self.step, self.calls = step, 0

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        self.calls += 1
        total = torch.stack([losses["r"], 0.5 * losses["b"]]).sum()
        return total * float("nan") if self.calls == self.step else total


@pytest.mark.parametrize("where", ["mid-epoch", "last step"])
def test_a_run_that_diverges_later_keeps_the_last_good_checkpoint(tmp_path: Path, where: str) -> None:
    train, valid = _problem(n=300)  # 240 training rows, batches of 32: 8 steps an epoch
    steps = 8
    poisoned = 2 * steps + 3 if where == "mid-epoch" else 2 * steps  # epoch 3, step 3; or epoch 2's last
    with pytest.raises(TrainingDivergedError) as info:
        fit(_model(), TASKS, train, valid, _config(epochs=5), run_dir=tmp_path, balancer=_PoisonAt(poisoned))
    if where == "mid-epoch":  # the next step's loss is NaN
        good, expected = 2, "task 'r' has a non-finite loss (nan) at epoch 3, step 4"
    else:  # no step left in the epoch to see it: the weights are checked at the end of each epoch
        good, expected = 1, "parameter 'encoders.s0.0.weight' became non-finite in epoch 2"
    checkpoint = tmp_path / CHECKPOINT_FILE
    assert str(info.value) == (
        f"training diverged: {expected}; the last good checkpoint (epoch {good}) is kept in {checkpoint}; "
        "lower the learning rate (lr) or check the targets"
    )
    saved = load_checkpoint(checkpoint)
    assert saved["epoch"] == good and len(saved["history"]) == good
    assert all(torch.isfinite(v).all() for v in saved["model"].values())
    assert len((tmp_path / LOG_FILE).read_text().splitlines()) == good
    assert not (tmp_path / MODEL_FILE).exists()


def test_a_non_finite_validation_loss_is_divergence(tmp_path: Path) -> None:
    train, valid = _problem(n=200)
    valid.targets["r"] = np.where(valid.masks["r"], np.float32(3e38), 0).astype(np.float32)  # squares to inf
    with pytest.raises(
        TrainingDivergedError,
        match=r"^training diverged: task 'r' has a non-finite validation loss \(inf\) after epoch 1; no epoch",
    ):
        fit(_model(), TASKS, train, valid, _config(epochs=3), run_dir=tmp_path)
    assert not (tmp_path / MODEL_FILE).exists() and not (tmp_path / CHECKPOINT_FILE).exists()


def test_a_task_weight_must_be_finite() -> None:
    with pytest.raises(ConfigError, match="task 'b': weight must be a finite number >= 0, got inf"):
        Task("b", "binary", weight=float("inf"))


def test_the_kept_weights_are_a_completed_epochs_never_the_initial_ones() -> None:
    """Validation gets worse from the first epoch on: epoch 1 is the best, and its weights are returned."""
    train, valid = _problem(n=300, flip_valid=True)
    initial = _model().state_dict()
    result = fit(_model(), TASKS, train, valid, _config(epochs=10, patience=2))
    assert result.best_epoch == 1 + int(np.argmin([h["valid_total"] for h in result.history])) >= 1
    assert not all(torch.equal(v, initial[k]) for k, v in result.model.state_dict().items())
    assert validation_losses(result.model, TASKS, valid) == pytest.approx(
        result.history[result.best_epoch - 1]["valid"], rel=1e-5
    )


# ---- tasks without validation labels -----------------------------------------------------------------------
def _without_valid_labels(valid: Arrays, *names: str) -> None:
    for name in names:
        valid.masks[name] = np.zeros_like(valid.masks[name])
        valid.targets[name] = np.zeros_like(valid.targets[name])


def test_no_validation_labels_at_all_is_no_validation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train, valid = _problem(n=200)
    _without_valid_labels(valid, "r", "b")
    with caplog.at_level(logging.WARNING, logger="multitask.train"):
        result = fit(_model(), TASKS, train, valid, _config(epochs=3, patience=1), run_dir=tmp_path)
    assert result.best_epoch == 3 and not result.stopped_early
    assert all(h["valid"] == {"r": None, "b": None} and h["valid_total"] is None for h in result.history)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["no task has validation labels: no early stopping, the last epoch is kept"]
    lines = [_strict_json(x) for x in (tmp_path / LOG_FILE).read_text().splitlines()]
    assert [line["valid_total"] for line in lines] == [None, None, None]
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE)["best_score"] is None


def test_a_task_without_validation_labels_is_named_once(caplog: pytest.LogCaptureFixture) -> None:
    train, valid = _problem(n=200)
    _without_valid_labels(valid, "b")
    with caplog.at_level(logging.WARNING, logger="multitask.train"):
        result = fit(_model(), TASKS, train, valid, _config(epochs=3))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["no validation labels for task 'b': early stopping follows the other tasks"]
    assert all(h["valid_total"] == h["valid"]["r"] for h in result.history)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="multitask.train"):  # a search fits again: said once only
        fit(_model(), TASKS, train, valid, _config(epochs=1))
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


# ---- monitor: early stopping on one task ---------------------------------------------------------------------
@pytest.mark.parametrize("monitor", ["r", "b"])
def test_monitor_follows_one_tasks_validation_loss(tmp_path: Path, monitor: str) -> None:
    """Only b's validation labels are flipped: b gets worse while r improves."""
    train, valid = _problem(n=400)
    valid.targets["b"] = np.where(valid.masks["b"], 1 - valid.targets["b"], 0).astype(np.float32)
    result = fit(
        _model(), TASKS, train, valid, _config(epochs=12, patience=2, monitor=monitor), run_dir=tmp_path
    )
    followed = [h["valid"][monitor] for h in result.history]
    assert result.best_epoch == 1 + int(np.argmin(followed))
    assert result.stopped_early == (monitor == "b")
    assert validation_losses(result.model, TASKS, valid)[monitor] == pytest.approx(
        followed[result.best_epoch - 1], rel=1e-5
    )
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE)["best_score"] == pytest.approx(min(followed))


def test_monitor_must_be_a_task() -> None:
    train, valid = _problem(n=100)
    with pytest.raises(ConfigError, match=r"train option 'monitor': 'income' is not a task; tasks are: r, b"):
        fit(_model(), TASKS, train, valid, _config(epochs=1, monitor="income"))


def test_a_monitored_task_without_validation_labels_keeps_the_last_epoch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    train, valid = _problem(n=200, flip_valid=True)
    _without_valid_labels(valid, "r")
    with caplog.at_level(logging.WARNING, logger="multitask.train"):
        result = fit(_model(), TASKS, train, valid, _config(epochs=4, patience=1, monitor="r"))
    assert result.best_epoch == 4 and not result.stopped_early
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "train option 'monitor': task 'r' has no validation labels: no early stopping, the last epoch is kept"
    ]
