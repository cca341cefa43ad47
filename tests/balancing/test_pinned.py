"""Each method's numbers on fixed inputs, worked out by hand from the paper's formula (stated per test)."""

from __future__ import annotations

import math

import pytest
import torch

from multitask.balancing import (
    MGDA,
    CAGrad,
    DynamicWeightAverage,
    GeometricMean,
    PCGrad,
    RandomWeights,
    StaticWeights,
    Uncertainty,
    step_seed,
)


def _losses(*values: float) -> dict[str, torch.Tensor]:
    return {f"t{i}": torch.tensor(v, dtype=torch.float64) for i, v in enumerate(values)}


def test_static() -> None:
    # 1·2 + 0.5·3 by hand
    assert float(StaticWeights({"t0": 1.0, "t1": 0.5}).combine(_losses(2.0, 3.0))) == 3.5


def test_uncertainty() -> None:
    # Kendall et al. (2018) as exp(−s) L + s: s = (0, log 2), L = (1, 4) -> 1 + 0 + 4/2 + log 2 by hand
    method = Uncertainty(["t0", "t1"])
    with torch.no_grad():
        method.log_vars.copy_(torch.tensor([0.0, math.log(2.0)]))
    assert float(method.combine(_losses(1.0, 4.0)).detach()) == pytest_approx(3.0 + math.log(2.0))
    torch.testing.assert_close(method.weights_, torch.tensor([1.0, 0.5], dtype=torch.float64))


def test_dwa() -> None:
    # Liu et al. (2019), eq. 1: means (1, 1) then (0.5, 1) -> r = (0.5, 1), τ = 2:
    # λ = 2·(e^0.25, e^0.5) / (e^0.25 + e^0.5) = (2 / (1 + e^0.25), 2 / (1 + e^−0.25)) = (0.875647, 1.124353)
    method = DynamicWeightAverage(["t0", "t1"], temperature=2.0)
    assert float(method.combine(_losses(1.0, 1.0))) == 2.0  # no history: λ = 1
    method.end_epoch({"t0": 1.0, "t1": 1.0})
    assert float(method.combine(_losses(1.0, 1.0))) == 2.0  # one epoch: λ = 1
    method.end_epoch({"t0": 0.5, "t1": 1.0})
    method.combine(_losses(1.0, 1.0))
    expected = torch.tensor([2 / (1 + math.exp(0.25)), 2 / (1 + math.exp(-0.25))], dtype=torch.float64)
    torch.testing.assert_close(method.weights_, expected)
    torch.testing.assert_close(method.weights_, torch.tensor([0.875647, 1.124353], dtype=torch.float64),
                               rtol=0, atol=1e-6)


def test_rlw() -> None:
    # Lin et al. (2022): λ = softmax(z), z the standard normal draw of the step's generator
    method = RandomWeights(["t0", "t1", "t2"])
    method.begin_step(3, 1, 4)
    total = method.combine(_losses(1.0, 10.0, 100.0))
    z = torch.randn(3, generator=torch.Generator().manual_seed(step_seed(3, 1, 4)), dtype=torch.float64)
    weights = torch.exp(z) / torch.exp(z).sum()
    assert float(total) == pytest_approx(float(weights @ torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)))


def test_gls() -> None:
    # Chennupati et al. (2019): (1·4)^(1/2) = 2; ∂L/∂L_t = L / (T L_t) = (1, 0.25) by hand
    method = GeometricMean(["t0", "t1"])
    assert float(method.combine(_losses(1.0, 4.0))) == pytest_approx(2.0)
    torch.testing.assert_close(method.weights_, torch.tensor([1.0, 0.25], dtype=torch.float64))
    # a task with loss 0 (no labels in the batch) is left out
    assert float(method.combine(_losses(0.0, 4.0))) == pytest_approx(4.0)


def test_mgda() -> None:
    # Sener & Koltun (2018), two tasks in closed form: w_1 = g_2·(g_2 − g_1) / ‖g_1 − g_2‖².
    # g_1 = (2, 0), g_2 = (0, 1): w_1 = 1/5, d = (0.4, 0.8) by hand
    method = MGDA(["t0", "t1"])
    d = method.combine_gradients(torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64), _losses(1.0, 1.0))
    torch.testing.assert_close(d, torch.tensor([0.4, 0.8], dtype=torch.float64))
    torch.testing.assert_close(method.weights_, torch.tensor([0.2, 0.8], dtype=torch.float64))


def test_pcgrad() -> None:
    # Yu et al. (2020), Alg. 1, two tasks: g_1 = (1, 0), g_2 = (−1, 1), g_1·g_2 = −1:
    # g_1' = g_1 + g_2 / 2 = (0.5, 0.5), g_2' = g_2 + g_1 = (0, 1), d = (0.5, 1.5) by hand
    method = PCGrad(["t0", "t1"])
    method.begin_step(0, 0, 1)
    d = method.combine_gradients(torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64), _losses(1.0, 1.0))
    torch.testing.assert_close(d, torch.tensor([0.5, 1.5], dtype=torch.float64))
    torch.testing.assert_close(method.weights_, torch.tensor([2.0, 1.5], dtype=torch.float64))


def test_cagrad() -> None:
    # Liu et al. (2021), Alg. 1: g_1 = (1, 0), g_2 = (0, 1), c = 0.5: g0 = (0.5, 0.5); by symmetry w = (1/2, 1/2),
    # g_w = g0, so d = g0 + c ‖g0‖ g0 / ‖g0‖ = 1.5 g0 = (0.75, 0.75); implied weights 1/2 + 0.5 · 1/2 by hand
    method = CAGrad(["t0", "t1"], c=0.5)
    d = method.combine_gradients(torch.eye(2, dtype=torch.float64), _losses(1.0, 1.0))
    torch.testing.assert_close(d, torch.tensor([0.75, 0.75], dtype=torch.float64))
    torch.testing.assert_close(method.weights_, torch.tensor([0.75, 0.75], dtype=torch.float64))
    # c = 0: the mean gradient
    d = CAGrad(["t0", "t1"], c=0.0).combine_gradients(torch.tensor([[2.0, 0.0], [0.0, 4.0]]), _losses(1.0, 1.0))
    torch.testing.assert_close(d, torch.tensor([1.0, 2.0]))


def pytest_approx(value: float) -> object:
    return pytest.approx(value, rel=1e-6)
