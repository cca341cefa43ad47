"""Recommender architectures against their papers: shared-bottom, ESMM (entire-space CTCVR), AITM (calibrator).

The contract (shapes, parameters, description, learning, balancers, torchrun) is tests/nn/test_contract.py.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

from multitask import Task
from multitask.data.arrays import Arrays
from multitask.datasets._funnel import funnel, funnel_rates
from multitask.errors import ConfigError
from multitask.metrics import auc
from multitask.nn import InputSpec, build_model
from multitask.nn._aitm import AITM
from multitask.nn._esmm import ESMM, product_logit
from multitask.nn._shared_bottom import SharedBottom
from multitask.train import TrainConfig, fit
from multitask.train._losses import task_loss_sums

INPUTS = {"s": InputSpec(dim=5)}


def binary(*names: str) -> list[Task]:
    return [Task(n, "binary") for n in names]


def esmm(**options: Any) -> ESMM:
    torch.manual_seed(0)
    return ESMM(INPUTS, binary("click", "buy"), {"click": "s", "buy": "s"}, **options)


def aitm(names: tuple[str, ...] = ("click", "apply", "approve"), **options: Any) -> AITM:
    """An AITM whose later steps start likelier than the earlier ones (head biases -1, 0, 1, ...)."""
    torch.manual_seed(0)
    model = AITM(INPUTS, binary(*names), dict.fromkeys(names, "s"), **options)
    if model.task_heads.mode == "separate":
        with torch.no_grad():
            for i, name in enumerate(names):
                model.task_heads._linear(name).bias.fill_(i - 1.0)
    return model


def rows(n: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    return {"s": torch.from_numpy(np.random.default_rng(seed).normal(size=(n, 5)).astype(np.float32))}


# ---- ESMM ---------------------------------------------------------------------------------------------------
def test_product_logit_is_the_logit_of_the_product_and_stays_finite() -> None:
    a = torch.tensor([-200.0, -30.0, -3.0, 0.0, 2.5, 30.0, 200.0], dtype=torch.float64)
    a, b = torch.meshgrid(a, a, indexing="ij")
    exact = torch.logit(torch.sigmoid(a) * torch.sigmoid(b))
    moderate = (a.abs() <= 30) & (b.abs() <= 30) & ((a < 30) | (b < 30))  # 1 - p representable in float64
    torch.testing.assert_close(product_logit(a, b)[moderate], exact[moderate], rtol=1e-9, atol=1e-9)
    # both near certain: 1 - p = e^-a + e^-b, so the logit is -log(e^-a + e^-b), lost by the naive formula
    big = torch.tensor([40.0, 60.0], dtype=torch.float32)
    torch.testing.assert_close(product_logit(big[:1], big[:1]), torch.tensor([40.0 - float(np.log(2))]), rtol=1e-6, atol=1e-4)
    torch.testing.assert_close(product_logit(big[:1], big[1:]), torch.tensor([40.0]), rtol=1e-6, atol=1e-4)
    x = (30 * torch.randn(200, 2)).requires_grad_(True)
    y = product_logit(x[:, 0], x[:, 1])
    y.sum().backward()
    assert bool(torch.isfinite(y).all()) and x.grad is not None and bool(torch.isfinite(x.grad).all())


def test_esmm_ctcvr_is_ctr_times_cvr() -> None:
    model = esmm().double().eval()
    x = {"s": rows()["s"].double()}
    out = model(x)
    p_ctr, p_ctcvr = torch.sigmoid(out["click"]), torch.sigmoid(out["buy"])
    torch.testing.assert_close(p_ctcvr, p_ctr * model.cvr(x), rtol=1e-12, atol=1e-15)
    assert bool((p_ctcvr <= p_ctr).all())


def test_esmm_sequence_picks_which_task_is_the_click() -> None:
    model = esmm(sequence=["buy", "click"]).double().eval()
    x = {"s": rows()["s"].double()}
    out = model(x)
    assert list(out) == ["click", "buy"]  # outputs keep the order of the tasks
    torch.testing.assert_close(torch.sigmoid(out["click"]), torch.sigmoid(out["buy"]) * model.cvr(x))
    assert model.task_source[model.click] == "s" and model.click == "buy"


def test_esmm_conversion_loss_trains_the_cvr_tower_on_impressions_that_were_not_clicked() -> None:
    model = esmm()
    tasks = model.tasks
    x = rows(32)
    zeros = torch.zeros(32)
    everywhere = torch.ones(32, dtype=torch.bool)
    losses = task_loss_sums(tasks, model(x), {"click": zeros, "buy": zeros}, {"click": everywhere, "buy": everywhere})
    cvr_tower = model.task_parameters()["buy"]
    grads = torch.autograd.grad(losses["buy"], cvr_tower, retain_graph=True)
    assert all(bool(g.abs().sum() > 0) for g in grads)  # no row was clicked: all the CVR gradient is from them
    # pCVR itself is never fitted to a label: its gradient only arrives through pCTR · pCVR
    ctr_tower = model.towers.tower("click").parameters()
    assert all(bool(g.abs().sum() > 0) for g in torch.autograd.grad(losses["buy"], list(ctr_tower)))


def funnel_arrays(n: int, seed: int) -> tuple[Arrays, np.ndarray]:
    spec = funnel(n, n_features=8, n_test=0, seed=seed).train
    frame = spec.sources["impressions"].frame
    x = frame[[f"x{i}" for i in range(8)]].to_numpy(np.float32)
    targets = {t: frame[t].to_numpy(np.float32) for t in ("click", "conversion")}
    masks = {t: np.ones(n, dtype=bool) for t in targets}
    return Arrays({"s": x}, targets, masks, dict.fromkeys(targets, "s")), x.copy()


def test_esmm_learns_the_conversion_rate_of_unclicked_impressions() -> None:
    train, _ = funnel_arrays(6000, 0)
    valid, x_valid = funnel_arrays(2000, 1)
    torch.manual_seed(0)
    model = ESMM({"s": InputSpec(dim=8)}, binary("click", "conversion"), {"click": "s", "conversion": "s"},
                 bottom_hidden=[32], tower_hidden=[32])
    config = TrainConfig(epochs=15, batch_size=256, lr=5e-3, progress=False, patience=None, threads=1)
    fitted = fit(model, model.tasks, train, valid, config).model
    assert isinstance(fitted, ESMM)
    fitted.eval()
    with torch.no_grad():
        p_cvr = fitted.cvr({"s": torch.from_numpy(x_valid)}).numpy()
    _, true_cvr = funnel_rates(x_valid.astype(np.float64))
    # the CVR tower was never given a conversion label, only the click-and-convert one of every impression
    assert np.corrcoef(p_cvr, true_cvr)[0, 1] > 0.6
    rng = np.random.default_rng(2)
    assert auc((rng.random(true_cvr.shape) < true_cvr).astype(float), p_cvr) > 0.65


@pytest.mark.parametrize(
    ("names", "kinds", "sequence", "message"),
    [
        (("a", "b", "c"), "binary", None, "exactly 2"),
        (("a",), "binary", None, "exactly 2"),
        (("a", "b"), "regression", None, "is regression"),
        (("a", "b"), "binary", ["a", "x"], "every task once"),
        (("a", "b"), "binary", ["a", "a"], "every task once"),
        (("a", "b"), "binary", "ab", "every task once"),
        (("a", "b"), "binary", ["a"], "every task once"),
    ],
)
def test_esmm_refuses_what_is_not_a_two_step_funnel(
    names: tuple[str, ...], kinds: str, sequence: Any, message: str
) -> None:
    tasks = [Task(n, kinds) for n in names]
    with pytest.raises(ConfigError, match="sequence") as error:
        ESMM(INPUTS, tasks, dict.fromkeys(names, "s"), sequence=sequence)
    assert message in str(error.value)


def test_funnel_steps_must_read_one_source() -> None:
    inputs = {"s": InputSpec(dim=5), "t": InputSpec(dim=3)}
    with pytest.raises(ConfigError, match=r"sequence.*one source"):
        ESMM(inputs, binary("a", "b"), {"a": "s", "b": "t"})
    with pytest.raises(ConfigError, match=r"sequence.*one source"):
        AITM(inputs, binary("a", "b"), {"a": "s", "b": "t"})


def test_esmm_description_keeps_the_sequence() -> None:
    model = esmm(sequence=("buy", "click"), tower_hidden=[16])
    config = json.loads(json.dumps(model.model_config()))
    assert config["sequence"] == ["buy", "click"] and config["tower_hidden"] == [16]
    rebuilt = build_model(config)
    assert isinstance(rebuilt, ESMM) and rebuilt.click == "buy"


# ---- AITM ---------------------------------------------------------------------------------------------------
def test_aitm_penalty_is_the_calibrator_over_the_sequence() -> None:
    model = aitm(calibration=0.6)
    out = model(rows())
    p = torch.stack([torch.sigmoid(out[n]) for n in ("click", "apply", "approve")], dim=1)
    expected = 0.6 * (torch.relu(p[:, 1] - p[:, 0]) + torch.relu(p[:, 2] - p[:, 1])).mean()
    penalty = model.penalty()
    assert penalty is not None and float(penalty.detach()) > 0
    torch.testing.assert_close(penalty, expected)
    assert model.penalty() is None  # consumed: once per step


def test_aitm_penalty_follows_the_declared_order() -> None:
    model = aitm(sequence=["approve", "click", "apply"])
    out = model(rows())
    p = torch.stack([torch.sigmoid(out[n]) for n in ("approve", "click", "apply")], dim=1)
    expected = 0.6 * torch.relu(p[:, 1:] - p[:, :-1]).sum(1).mean()
    torch.testing.assert_close(model.penalty(), expected)


def test_aitm_calibrator_pushes_later_steps_below_earlier_ones() -> None:
    model = aitm(calibration=1.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    x = rows(128)
    model(x)
    start = float(model.penalty().detach())  # type: ignore[union-attr]
    for _ in range(30):
        optimizer.zero_grad()
        model(x)
        penalty = model.penalty()
        assert penalty is not None
        penalty.backward()
        optimizer.step()
    model(x)
    assert float(model.penalty().detach()) < 0.2 * start  # type: ignore[union-attr]


def test_aitm_penalty_adds_the_shared_heads_penalty_and_none_without_gradients() -> None:
    model = aitm(calibration=0.0, head="shared", head_penalty=0.5)
    with torch.no_grad():
        for v in model.task_heads.deviation.values():
            v.fill_(1.0)
    heads = model.task_heads.penalty()
    assert heads is not None and float(heads.detach()) > 0
    model(rows())
    torch.testing.assert_close(model.penalty(), heads)
    with torch.no_grad():
        model(rows())
    torch.testing.assert_close(model.penalty(), heads)  # a forward without gradients keeps no calibrator term


def test_aitm_penalty_of_an_empty_batch_is_zero() -> None:
    model = aitm()
    out = model({"s": torch.zeros(0, 5)})
    assert all(v.shape == (0,) for v in out.values())
    assert float(model.penalty().detach()) == 0.0  # type: ignore[union-attr]


def test_aitm_information_flows_forward_only() -> None:
    model = aitm().eval()
    x = rows()
    before = model(x)
    with torch.no_grad():
        for p in model.towers.tower("approve").parameters():
            p.add_(1.0)
    after = model(x)
    torch.testing.assert_close(after["click"], before["click"])
    torch.testing.assert_close(after["apply"], before["apply"])
    assert not torch.allclose(after["approve"], before["approve"])
    with torch.no_grad():
        for p in model.towers.tower("click").parameters():
            p.add_(0.5)
    again = model(x)
    assert not torch.allclose(again["apply"], after["apply"])  # the click step's tower reaches the next step


def test_aitm_gate_usage_is_the_attention_of_each_later_step() -> None:
    model = aitm()
    model(rows())
    usage = model.gate_usage()
    assert usage is not None and list(usage) == ["apply", "approve"]
    for weights in usage.values():
        assert weights.shape == (2,) and not weights.requires_grad
        torch.testing.assert_close(weights.sum(), torch.tensor(1.0))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"calibration": -0.1}, "calibration"),
        ({"calibration": float("nan")}, "calibration"),
        ({"calibration": True}, "calibration"),
        ({"sequence": ["click", "apply"]}, "sequence"),
        ({"tower_hidden": []}, "tower_hidden"),
        ({"bottom_hidden": [0]}, "bottom_hidden"),
    ],
)
def test_aitm_refuses_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        aitm(**options)


def test_aitm_needs_two_binary_steps() -> None:
    with pytest.raises(ConfigError, match=r"sequence.*2 or more"):
        aitm(names=("click",))
    with pytest.raises(ConfigError, match=r"sequence.*multiclass"):
        AITM(INPUTS, [Task("a", "binary"), Task("b", "multiclass")], {"a": "s", "b": "s"}, {"b": 3})


# ---- shared-bottom ------------------------------------------------------------------------------------------
def test_shared_bottom_towers_read_the_bottom_of_their_own_source() -> None:
    inputs = {"s": InputSpec(dim=5), "t": InputSpec(dim=3)}
    tasks = [Task("r", "regression"), Task("m", "multiclass")]
    torch.manual_seed(0)
    model = SharedBottom(inputs, tasks, {"r": "s", "m": "t"}, {"m": 4}, bottom_hidden=[16, 8], tower_hidden=[6])
    x = {"s": torch.randn(7, 5), "t": torch.randn(3, 3)}
    rep = model.representation(x)
    assert rep["s"].shape == (7, 8) and rep["t"].shape == (3, 8)
    out = model(x)
    assert out["r"].shape == (7,) and out["m"].shape == (3, 4)
    expected = model.task_heads({"m": model.towers.tower("m")(rep["t"]), "r": model.towers.tower("r")(rep["s"])})
    torch.testing.assert_close(out["m"], expected["m"])
    own = {id(p) for p in model.towers.tower("m").parameters()}
    assert own <= {id(p) for p in model.task_parameters()["m"]}


@pytest.mark.parametrize("option", ["bottom_hidden", "tower_hidden"])
@pytest.mark.parametrize("value", [[], [0], [2.5], "64", [True]])
def test_shared_bottom_refuses_bad_widths_naming_the_option(option: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=option):
        SharedBottom(INPUTS, binary("a"), {"a": "s"}, **{option: value})


# ---- the generated funnel -----------------------------------------------------------------------------------
def test_funnel_converts_only_after_a_click_and_selects_on_x2() -> None:
    data = funnel(20_000, seed=3)
    assert data.test is not None and len(data.test.sources["impressions"].frame) == 5_000
    frame = data.train.sources["impressions"].frame
    click, conversion = frame["click"].to_numpy() == 1, frame["conversion"].to_numpy() == 1
    assert not (conversion & ~click).any()
    assert 0.07 < click.mean() < 0.13 and 0.008 < conversion.mean() < 0.018
    assert frame["x2"][click].mean() > 0.3  # clicked rows are a biased sample: x2 raises clicks ...
    _, p_cvr = funnel_rates(frame[[f"x{i}" for i in range(16)]].to_numpy())
    assert np.corrcoef(frame["x2"], p_cvr)[0, 1] < -0.2  # ... and lowers conversion given a click
    with pytest.raises(ConfigError, match="n_features"):
        funnel(100, n_features=4)
