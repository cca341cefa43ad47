"""IMTL-L, FAMO, STCH, GradNorm, DB-MTL and MoCo: shared properties, pinned values, state, short training runs."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import pytest
import torch
from torch import nn
from torchjd.scalarization import FAMO as TorchjdFAMO
from torchjd.scalarization import STCH as TorchjdSTCH

from multitask.balancing._base import Balancing
from multitask.balancing._db_mtl import DBMTL
from multitask.balancing._famo import FAMO
from multitask.balancing._gradnorm import GradNorm
from multitask.balancing._imtl_l import IMTLL
from multitask.balancing._moco import MoCo
from multitask.balancing._stch import STCH

P = 6  # shared parameters
SIZES = (2, 3, 10, 40)
#: name -> factory of a method for T tasks; STCH with a one-epoch warm-up so that the runs below reach STCH
FACTORIES: dict[str, Callable[[list[str]], Balancing]] = {
    "imtl-l": IMTLL,
    "famo": FAMO,
    "stch": lambda tasks: STCH(tasks, mu=0.5, warmup_epochs=1),
    "gradnorm": GradNorm,
    "db-mtl": DBMTL,
    "moco": MoCo,
}
NAMES = list(FACTORIES)

Step = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # J (T, P), losses (T,), losses after the step (T,)


def _tasks(t: int) -> list[str]:
    return [f"t{i}" for i in range(t)]


def _steps(t: int, n: int = 4, seed: int = 0) -> list[Step]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        losses = torch.rand(t, generator=g, dtype=torch.float64) + 0.1
        after = losses * (0.5 + 0.5 * torch.rand(t, generator=g, dtype=torch.float64))
        out.append((torch.randn(t, P, generator=g, dtype=torch.float64), losses, after))
    return out


def _step(method: Balancing, optimizer: torch.optim.Optimizer | None, k: int, step: Step) -> torch.Tensor:
    """One step in the trainer's order; a loss weighting's gradient w.r.t. the losses, or the direction."""
    jacobian, values, after = step
    if optimizer is not None:
        optimizer.zero_grad()
    method.begin_step(0, 0, k)
    if method.needs == "losses":
        leaf = values.clone().requires_grad_(True)
        method.combine(dict(zip(method.tasks, leaf.unbind(), strict=True))).backward()
        assert leaf.grad is not None
        out = leaf.grad
    else:
        out = method.combine_gradients(jacobian, dict(zip(method.tasks, values.unbind(), strict=True)))
    if optimizer is not None:
        optimizer.step()
    method.after_step(after if method.needs_losses_after_step else None)
    method.end_epoch(dict(zip(method.tasks, values.tolist(), strict=True)))  # every step is an epoch here
    return out.detach()


def _run(method: Balancing, steps: list[Step]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Outputs and logged weights of each step; learnable weights are trained by SGD."""
    params = method.optimized_parameters()
    optimizer = torch.optim.SGD(params, lr=0.1) if params else None
    out = []
    for k, step in enumerate(steps, 1):
        result = _step(method, optimizer, k, step)
        assert method.weights_ is not None
        out.append((result, method.weights_.detach().clone()))
    return out


# ---- shared properties ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", SIZES)
@pytest.mark.parametrize("name", NAMES)
def test_finite_output_of_the_right_shape_and_non_negative_weights(name: str, t: int) -> None:
    method = FACTORIES[name](_tasks(t))
    for out, weights in _run(method, _steps(t)):
        assert out.shape == ((t,) if method.needs == "losses" else (P,))
        assert weights.shape == (t,)
        assert bool(out.isfinite().all()) and bool(weights.isfinite().all())
        assert bool((weights >= 0).all())
        if method.needs == "losses":  # the logged weights are the gradient w.r.t. the losses
            torch.testing.assert_close(out, weights.to(out.dtype), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("t", SIZES)
@pytest.mark.parametrize("name", NAMES)
def test_permutation_equivariance(name: str, t: int) -> None:
    steps = _steps(t, seed=1)
    perm = torch.randperm(t, generator=torch.Generator().manual_seed(t))
    permuted = [(j[perm], losses[perm], after[perm]) for j, losses, after in steps]
    plain = _run(FACTORIES[name](_tasks(t)), steps)
    shuffled = _run(FACTORIES[name](_tasks(t)), permuted)
    for (out, weights), (out_p, weights_p) in zip(plain, shuffled, strict=True):
        # float32 learnable weights (IMTL-L, GradNorm): sums in another order round differently
        torch.testing.assert_close(weights_p, weights[perm], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out_p, out[perm] if out.shape == (t,) else out, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("t", SIZES)
@pytest.mark.parametrize("name", NAMES)
def test_identical_tasks_are_weighted_equally(name: str, t: int) -> None:
    """Equal weights; a direction that is a non-negative multiple of the one-task method's on the same data."""
    g = torch.Generator().manual_seed(2)
    rows, steps = [], []
    for _ in range(3):
        row, loss = (
            torch.randn(1, P, generator=g, dtype=torch.float64),
            float(torch.rand(1, generator=g)) + 0.1,
        )
        rows.append(
            (row, torch.tensor([loss], dtype=torch.float64), torch.tensor([loss / 2], dtype=torch.float64))
        )
        steps.append(
            (row.expand(t, P), torch.full((t,), loss, dtype=torch.float64), torch.full((t,), loss / 2))
        )
    alone = _run(FACTORIES[name](_tasks(1)), rows)
    for (out, weights), (out_1, _) in zip(_run(FACTORIES[name](_tasks(t)), steps), alone, strict=True):
        torch.testing.assert_close(weights, weights.mean().expand(t))
        if out.shape == (P,):
            coefficient = out @ out_1 / (out_1 @ out_1)
            assert float(coefficient) > 0
            torch.testing.assert_close(out, coefficient * out_1)


@pytest.mark.parametrize("name", NAMES)
def test_zero_losses_and_zero_gradients_give_no_nan(name: str) -> None:
    steps = _steps(4, n=4, seed=3)
    for k, (jacobian, losses, after) in enumerate(steps):
        jacobian[0] = 0.0  # task 0: no labels in any batch (loss 0, gradient 0)
        losses[0] = after[0] = 0.0
        jacobian[1] = 0.0  # task 1: labels, but a zero gradient
        if k == 2:  # a step in which no task has labels
            jacobian.zero_()
            losses.zero_()
            after.zero_()
    for out, weights in _run(FACTORIES[name](_tasks(4)), steps):
        assert bool(out.isfinite().all()) and bool(weights.isfinite().all())
        assert bool((weights >= 0).all())


@pytest.mark.parametrize("name", NAMES)
def test_one_task(name: str) -> None:
    for out, weights in _run(FACTORIES[name](_tasks(1)), _steps(1)):
        assert bool(out.isfinite().all()) and bool(weights.isfinite().all())


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_continues_identically(name: str) -> None:
    t = 3
    steps = _steps(t, n=5, seed=4)
    method = FACTORIES[name](_tasks(t))
    _run(method, steps[:3])
    resumed = FACTORIES[name](_tasks(t))
    resumed.load_state_dict(copy.deepcopy(method.state_dict()))
    for (out, weights), (out_r, weights_r) in zip(
        _run(method, steps[3:]), _run(resumed, steps[3:]), strict=True
    ):
        assert torch.equal(out, out_r) and torch.equal(weights, weights_r)


# ---- documented properties -----------------------------------------------------------------------------------
def test_famo_gives_more_weight_to_the_task_whose_loss_fell_less() -> None:
    method = FAMO(_tasks(3))
    losses = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    method.combine(dict(zip(method.tasks, losses.unbind(), strict=True)))
    method.after_step(torch.tensor([0.5, 0.9, 0.99], dtype=torch.float64))  # task 2 fell least
    method.combine(dict(zip(method.tasks, losses.unbind(), strict=True)))
    assert method.weights_ is not None
    w = method.weights_.tolist()
    assert w[2] > w[1] > w[0]


@pytest.mark.parametrize("alpha", [0.0, 1.5])
def test_gradnorm_moves_the_weighted_gradient_norms_toward_their_targets(alpha: float) -> None:
    method = GradNorm(_tasks(3), alpha=alpha)
    optimizer = torch.optim.SGD(method.optimized_parameters(), lr=0.005)
    gramian = torch.diag(torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64))
    first = torch.ones(3, dtype=torch.float64)
    losses = torch.tensor([0.5, 1.0, 0.25], dtype=torch.float64)
    rates = (losses / first) / (losses / first).mean()

    def norms() -> torch.Tensor:
        return method.loss_weights.detach().double() * gramian.diagonal().sqrt()

    def gap() -> float:  # L_grad, GradNorm's eq. 2
        return float((norms() - norms().mean() * rates**alpha).abs().sum())

    start = gap() if alpha == 0 else 5.4464296265498895  # w = 1 after the first step, which sets L(0)
    for values in [first] + [losses] * 400:
        optimizer.zero_grad()
        method.weigh(gramian, values)
        optimizer.step()
        method.after_step(None)
    # the targets' mean is Ḡ mean(r^α) ≠ Ḡ for α > 0: L_grad cannot reach 0 then, only its minimum
    # (up to the oscillation of SGD on |·|, about lr ‖g_t‖ per task)
    assert gap() < 0.15 * start
    if alpha == 0:  # equal norms
        assert float(norms().max() / norms().min()) < 1.05
    else:  # the slowest task (largest r_t) gets the largest norm, the fastest the smallest
        assert torch.equal(torch.argsort(norms()), torch.argsort(rates))
    assert math.isclose(float(method.loss_weights.detach().sum()), 3.0, rel_tol=1e-6)


def test_moco_keeps_lambda_on_the_simplex() -> None:
    method = MoCo(_tasks(5), gamma=5.0, rho=0.1)
    for jacobian, losses, _ in _steps(5, n=30, seed=5):
        method.combine_gradients(jacobian * 10, dict(zip(method.tasks, losses.unbind(), strict=True)))
        assert bool((method.lambdas >= 0).all())
        assert math.isclose(float(method.lambdas.sum()), 1.0, rel_tol=1e-12)


def test_db_mtl_scaled_gradients_have_equal_norms_at_the_first_step() -> None:
    method = DBMTL(_tasks(4))
    jacobian, losses, _ = _steps(4, n=1, seed=6)[0]
    jacobian = jacobian * torch.tensor([[1.0], [10.0], [0.1], [3.0]], dtype=torch.float64)
    method.combine_gradients(jacobian, dict(zip(method.tasks, losses.unbind(), strict=True)))
    assert method.weights_ is not None
    scaled = (method.weights_.unsqueeze(1) * method.ema).norm(dim=1)
    torch.testing.assert_close(scaled, scaled.max().expand(4))


# ---- pinned values -----------------------------------------------------------------------------------------------
def _losses(method: Balancing, values: list[float]) -> dict[str, torch.Tensor]:
    return dict(zip(method.tasks, torch.tensor(values, dtype=torch.float64).unbind(), strict=True))


def test_imtl_l_pinned() -> None:
    method = IMTLL(_tasks(3))
    with torch.no_grad():
        method.scalarizer.log_scale.copy_(torch.tensor([0.1, -0.2, 0.3]))
    # Σ_t e^{s_t} L_t − s_t (IMTL paper, section 3.2)
    assert math.isclose(
        float(method.combine(_losses(method, [2.0, 0.5, 1.0])).detach()), 3.7695660202662893, rel_tol=1e-6
    )
    # a task without labels (loss 0) is left out, its −s_t too
    assert math.isclose(
        float(method.combine(_losses(method, [2.0, 0.0, 1.0])).detach()),
        3.7695660202662893 - (math.exp(-0.2) * 0.5 + 0.2),
        rel_tol=1e-6,
    )


def test_famo_pinned_and_equal_to_torchjd() -> None:
    method = FAMO(_tasks(3))
    # c Σ z_t log(L_t + ε), z = 1/3, c = (Σ z_t / (L_t + ε))⁻¹ (Algorithm 2)
    value = method.combine(_losses(method, [1.0, 2.0, 4.0]))
    assert math.isclose(float(value), 1.1882523284432271, rel_tol=1e-9)
    assert method.weights_ is not None
    torch.testing.assert_close(method.weights_, torch.tensor([4 / 7, 2 / 7, 1 / 7], dtype=torch.float64))
    # the first Adam step moves each logit by lr against the sign of z ⊙ (δ − zᵀδ)
    method.after_step(torch.tensor([0.5, 1.5, 3.9], dtype=torch.float64))
    torch.testing.assert_close(
        method.logits,
        torch.tensor([-0.024999997903650966, 0.0249999842768314, 0.024999997581149003], dtype=torch.float64),
    )
    # several steps: the same values and logits as torchjd's FAMO
    ours, theirs = FAMO(_tasks(3), lr=0.05, gamma=0.01), TorchjdFAMO(3, lr=0.05, weight_decay=0.01).double()
    for _, losses, after in _steps(3, n=6, seed=7):
        torch.testing.assert_close(ours.combine(_losses(ours, losses.tolist())), theirs(losses))
        ours.after_step(after)
        theirs.update(after)
        torch.testing.assert_close(ours.logits, theirs._w.detach())


def test_stch_pinned_and_equal_to_torchjd() -> None:
    method = STCH(_tasks(3), mu=0.5, warmup_epochs=1)
    # the warm-up: Σ_t log(L_t + ε)
    warm = method.combine(_losses(method, [0.5, 3.0, 4.0]))
    assert math.isclose(float(warm), math.log(0.5 * 3.0 * 4.0), rel_tol=1e-12)
    method.end_epoch({"t0": 1.0, "t1": 2.0, "t2": 4.0})  # the nadir point N
    # T μ log Σ_t exp(log(L_t / N_t) / μ) = 1.5 log(0.25 + 2.25 + 1)
    value = method.combine(_losses(method, [0.5, 3.0, 4.0]))
    assert math.isclose(float(value), 1.5 * math.log(3.5), rel_tol=1e-9)
    assert method.weights_ is not None
    expected = 3 * torch.tensor([0.25, 2.25, 1.0], dtype=torch.float64) / 3.5 / torch.tensor([0.5, 3.0, 4.0])
    torch.testing.assert_close(method.weights_, expected)
    f = torch.log(torch.tensor([0.5, 3.0, 4.0], dtype=torch.float64) / torch.tensor([1.0, 2.0, 4.0]))
    reference = 3 * TorchjdSTCH(0.5, weights=torch.ones(3, dtype=torch.float64))(f)
    assert math.isclose(float(value), float(reference), rel_tol=1e-9)


def test_stch_waits_for_every_task_to_have_a_nadir() -> None:
    method = STCH(_tasks(2), warmup_epochs=1)
    method.end_epoch({"t0": 1.0, "t1": None})
    assert not bool(method.active)
    method.end_epoch({"t0": 5.0, "t1": 2.0})
    assert bool(method.active)
    torch.testing.assert_close(method.nadir, torch.tensor([1.0, 2.0], dtype=torch.float64))


def test_gradnorm_pinned() -> None:
    method = GradNorm(_tasks(3))
    gramian = torch.tensor([[1.0, 0.5, 0.0], [0.5, 4.0, 1.0], [0.0, 1.0, 9.0]], dtype=torch.float64)
    # first step: L(0) = L, r = 1, target = mean norm = 2; ∂L_grad/∂w_t = sign(w_t‖g_t‖ − target) ‖g_t‖
    method.weigh(gramian, torch.ones(3, dtype=torch.float64))
    assert method.loss_weights.grad is not None
    torch.testing.assert_close(method.loss_weights.grad, torch.tensor([-1.0, 0.0, 3.0]))
    # L̃ = (0.5, 1, 0.25), r = L̃ / mean(L̃), target = 2 r^1.5 ≈ (1.59, 4.49, 0.56) (eq. 1-2)
    method.weigh(gramian, torch.tensor([0.5, 1.0, 0.25], dtype=torch.float64))
    torch.testing.assert_close(method.loss_weights.grad, torch.tensor([-1.0, -2.0, 3.0]))
    with torch.no_grad():
        method.loss_weights.copy_(torch.tensor([-1.0, 2.0, 4.0]))
    method.after_step(None)  # clipped at 1e-6, rescaled to sum T
    torch.testing.assert_close(method.loss_weights.detach(), 3 * torch.tensor([1e-6, 2.0, 4.0]) / (6 + 1e-6))


def test_db_mtl_pinned() -> None:
    method = DBMTL(_tasks(2))  # β = 0.9, σ = 0
    # ĝ = 0.1 ∇L / L; scales max‖ĝ‖ / ‖ĝ_t‖ (Algorithm 1)
    d = method.combine_gradients(
        torch.tensor([[3.0, 4.0], [0.0, 1.0]], dtype=torch.float64), _losses(method, [2.0, 0.5])
    )
    torch.testing.assert_close(d, torch.tensor([0.15, 0.45], dtype=torch.float64))
    assert method.weights_ is not None
    torch.testing.assert_close(method.weights_, torch.tensor([1.0, 1.25], dtype=torch.float64))
    d = method.combine_gradients(
        torch.tensor([[0.0, 2.0], [1.0, 0.0]], dtype=torch.float64), _losses(method, [1.0, 1.0])
    )
    torch.testing.assert_close(d, torch.tensor([0.3308442048904784, 0.7325195635926653], dtype=torch.float64))
    torch.testing.assert_close(method.weights_, torch.tensor([1.0, 1.9584420752392038], dtype=torch.float64))


def test_moco_pinned() -> None:
    jacobians = [
        torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64),
        torch.tensor([[0.0, 1.0], [1.0, 1.0]], dtype=torch.float64),
    ]
    # Algorithm 1 with constant steps: y ← y − 0.5 (y − g), λ ← Π_Δ(λ − 0.1 Y Yᵀ λ), d = Yᵀλ
    plain = MoCo(_tasks(2), beta_sigma=0.0, gamma_sigma=0.0, normalize=False)
    expected = [
        ([0.259375, 0.48125], [0.51875, 0.48125]),
        ([0.3645263671875, 0.729052734375], [0.54189453125, 0.45810546875]),
    ]
    for jacobian, (d, lambdas) in zip(jacobians, expected, strict=True):
        out = plain.combine_gradients(jacobian, _losses(plain, [1.0, 1.0]))
        torch.testing.assert_close(out, torch.tensor(d, dtype=torch.float64))
        torch.testing.assert_close(plain.lambdas, torch.tensor(lambdas, dtype=torch.float64))
    # the defaults (decaying steps, g_t rescaled to norm L_t) and ρ = 0.5
    method = MoCo(_tasks(2), rho=0.5)
    expected = [
        ([0.4812499956250001, 0.259374998484375], [0.4812500004375, 0.5187499995625]),
        ([0.6979156159800758, 0.7112500244206864], [0.5029712483018757, 0.49702875169812427]),
    ]
    for jacobian, losses, (d, lambdas) in zip(jacobians, ([2.0, 1.0], [1.0, 3.0]), expected, strict=True):
        out = method.combine_gradients(jacobian, _losses(method, losses))
        torch.testing.assert_close(out, torch.tensor(d, dtype=torch.float64))
        torch.testing.assert_close(method.lambdas, torch.tensor(lambdas, dtype=torch.float64))


# ---- short training runs in the trainer's order -------------------------------------------------------------------
def _toy() -> tuple[torch.Tensor, dict[str, torch.Tensor], nn.Module, nn.ModuleDict]:
    torch.manual_seed(0)
    x = torch.randn(128, 4)
    targets = {"a": x[:, 0], "b": 3 * (x[:, 1] - x[:, 0])}  # different scales
    trunk = nn.Sequential(nn.Linear(4, 16), nn.ReLU())
    heads = nn.ModuleDict({t: nn.Linear(16, 1) for t in targets})
    return x, targets, trunk, heads


def _task_losses(
    x: torch.Tensor, targets: dict[str, torch.Tensor], trunk: nn.Module, heads: nn.ModuleDict
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    shared = trunk(x)
    return shared, {t: nn.functional.mse_loss(heads[t](shared).squeeze(1), y) for t, y in targets.items()}


def test_famo_trains_a_toy_model() -> None:
    x, targets, trunk, heads = _toy()
    method = FAMO(list(targets))
    optimizer = torch.optim.Adam(
        [*trunk.parameters(), *heads.parameters(), *method.optimized_parameters()], lr=1e-2
    )
    first = {t: float(v.detach()) for t, v in _task_losses(x, targets, trunk, heads)[1].items()}
    for step in range(1, 151):
        optimizer.zero_grad()
        method.begin_step(0, 0, step)
        method.combine(_task_losses(x, targets, trunk, heads)[1]).backward()
        optimizer.step()
        with torch.no_grad():
            method.after_step(torch.stack(list(_task_losses(x, targets, trunk, heads)[1].values())))
    last = _task_losses(x, targets, trunk, heads)[1]
    assert all(float(last[t].detach()) < 0.5 * first[t] for t in targets)


def test_gradnorm_trains_a_toy_model() -> None:
    x, targets, trunk, heads = _toy()
    method = GradNorm(list(targets))  # of="representation"
    optimizer = torch.optim.Adam(
        [*trunk.parameters(), *heads.parameters(), *method.optimized_parameters()], lr=1e-2
    )
    first = {t: float(v.detach()) for t, v in _task_losses(x, targets, trunk, heads)[1].items()}
    for step in range(1, 151):
        optimizer.zero_grad()
        method.begin_step(0, 0, step)
        shared, losses = _task_losses(x, targets, trunk, heads)
        rows = [
            torch.autograd.grad(loss, shared, retain_graph=True)[0].reshape(-1) for loss in losses.values()
        ]
        jacobian = torch.stack(rows).double()
        values = torch.stack(list(losses.values())).detach()
        weights = method.weigh(jacobian @ jacobian.T, values.double())
        (weights.to(values.dtype) * torch.stack(list(losses.values()))).sum().backward()
        optimizer.step()
        method.after_step(None)
    last = _task_losses(x, targets, trunk, heads)[1]
    assert all(float(last[t].detach()) < 0.5 * first[t] for t in targets)
    assert math.isclose(float(method.loss_weights.detach().sum()), 2.0, rel_tol=1e-5)
