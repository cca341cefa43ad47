"""Properties every registered balancer must have, checked over the whole BALANCERS list for T = 2, 3, 10, 40."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from multitask.balancing import MGDA, Balancing, CAGrad, cagrad_weights, min_norm_weights, pcgrad_coefficients
from multitask.registry import BALANCERS

NAMES = BALANCERS.names()
SIZES = (2, 3, 10, 40)
P = 7  # shared parameters


def _build(name: str, t: int) -> Balancing:
    method = BALANCERS.get(name)([f"t{i}" for i in range(t)])
    assert isinstance(method, Balancing)
    return method


def _is_gradient(method: Balancing) -> bool:
    return method.needs != "losses"


def _apply(
    method: Balancing, jacobian: torch.Tensor, loss_values: torch.Tensor, at: tuple[int, int, int] = (0, 0, 1)
) -> torch.Tensor:
    """A loss weighting's gradient w.r.t. the losses (T,), or a gradient method's direction (P,)."""
    method.begin_step(*at)
    losses_leaf = loss_values.clone().requires_grad_(True)
    losses = dict(zip(method.tasks, losses_leaf.unbind(), strict=True))
    if _is_gradient(method):
        return method.combine_gradients(jacobian, losses).detach()  # type: ignore[attr-defined, no-any-return]
    total = method.combine(losses)  # type: ignore[attr-defined]
    (grad,) = torch.autograd.grad(total, losses_leaf)
    return grad


def _inputs(t: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    jacobian = torch.randn(t, P, generator=g, dtype=torch.float64)
    losses = torch.rand(t, generator=g, dtype=torch.float64) + 0.1
    return jacobian, losses


@pytest.mark.parametrize("t", SIZES)
@pytest.mark.parametrize("name", NAMES)
def test_finite_output_of_the_right_shape(name: str, t: int) -> None:
    method = _build(name, t)
    jacobian, losses = _inputs(t)
    out = _apply(method, jacobian, losses)
    assert out.shape == ((P,) if _is_gradient(method) else (t,))
    assert bool(out.isfinite().all())
    assert method.weights_ is not None and method.weights_.shape == (t,)


@pytest.mark.parametrize("t", SIZES)
@pytest.mark.parametrize("name", NAMES)
def test_weights_are_non_negative(name: str, t: int) -> None:
    method = _build(name, t)
    if not method.nonnegative:
        pytest.skip(f"{name} does not promise non-negative weights")
    for seed in range(5):
        _apply(method, *_inputs(t, seed))
        assert method.weights_ is not None and bool((method.weights_ >= 0).all()), method.weights_


@pytest.mark.parametrize("t", SIZES)
@pytest.mark.parametrize("name", NAMES)
def test_permuting_the_tasks_permutes_the_result(name: str, t: int) -> None:
    if BALANCERS.get(name).__dict__.get("stochastic", False) and not (name == "pcgrad" and t == 2):
        pytest.skip("a stochastic method permutes its result only in law")  # pcgrad with 2 tasks has no order
    jacobian, losses = _inputs(t, seed=3)
    perm = torch.randperm(t, generator=torch.Generator().manual_seed(1))
    a = _apply(_build(name, t), jacobian, losses)
    b = _apply(_build(name, t), jacobian[perm], losses[perm])
    expected = a if a.shape == (P,) else a[perm]
    torch.testing.assert_close(b, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("t", SIZES)
@pytest.mark.parametrize("name", NAMES)
def test_identical_gradients_give_the_equal_weighting_direction(name: str, t: int) -> None:
    method = _build(name, t)
    if not _is_gradient(method):
        pytest.skip("a loss weighting sees no gradients")
    g = torch.randn(P, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    d = _apply(method, g.expand(t, P).clone(), torch.ones(t, dtype=torch.float64))
    scale = float(d @ g) / float(g @ g)
    assert scale > 0
    torch.testing.assert_close(d, scale * g)


@pytest.mark.parametrize("t", SIZES)
@pytest.mark.parametrize("name", NAMES)
def test_a_checkpoint_round_trip_reproduces_the_next_step(name: str, t: int) -> None:
    method = _build(name, t)
    for p in method.parameters():  # learned state away from its initial value
        with torch.no_grad():
            p.copy_(torch.linspace(-1, 1, p.numel()).view_as(p))
    for epoch in range(3):
        method.end_epoch({task: 1.0 / (epoch + 1 + i) for i, task in enumerate(method.tasks)})
    again = _build(name, t)
    again.load_state_dict(method.state_dict())
    jacobian, losses = _inputs(t, seed=4)
    torch.testing.assert_close(_apply(again, jacobian, losses), _apply(method, jacobian, losses), rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_draws_follow_seed_epoch_and_step(name: str) -> None:
    jacobian, losses = _inputs(10, seed=5)
    jacobian[1::2] = -jacobian[::2] + 0.1 * jacobian[1::2]  # conflicts, so that pcgrad's order matters

    def at(seed: int, epoch: int, step: int) -> torch.Tensor:
        return _apply(_build(name, 10), jacobian, losses, at=(seed, epoch, step))

    first = at(0, 0, 1)
    torch.testing.assert_close(at(0, 0, 1), first, rtol=0, atol=0)
    others = [at(0, 0, 2), at(0, 1, 1), at(1, 0, 1)]
    if BALANCERS.get(name).__dict__.get("stochastic", False):
        assert all(not torch.equal(other, first) for other in others)
    else:
        assert all(torch.equal(other, first) for other in others)


def _brute_force_min_norm(jacobian: torch.Tensor) -> float:
    """min ‖wᵀJ‖² over the simplex, by solving the equality-constrained QP on every face."""
    g = jacobian @ jacobian.T
    t = g.shape[0]
    best = math.inf
    for size in range(1, t + 1):
        for face in itertools.combinations(range(t), size):
            sub = g[list(face)][:, list(face)]
            ones = torch.ones(size, dtype=torch.float64)
            try:
                w = torch.linalg.solve(sub, ones)
            except RuntimeError:
                continue
            if float(w.sum()) <= 0:
                continue
            w = w / w.sum()
            if bool((w >= -1e-12).all()):
                best = min(best, float(w @ sub @ w))
    return best


@pytest.mark.parametrize("t", (2, 3))
@pytest.mark.parametrize("seed", range(10))
def test_mgda_is_the_min_norm_point_of_the_convex_hull(t: int, seed: int) -> None:
    jacobian, losses = _inputs(t, seed)
    method = MGDA([f"t{i}" for i in range(t)])
    d = _apply(method, jacobian, losses)
    assert method.weights_ is not None
    assert float(method.weights_.sum()) == pytest.approx(1.0) and bool((method.weights_ >= 0).all())
    assert float(d @ d) == pytest.approx(_brute_force_min_norm(jacobian), rel=1e-7, abs=1e-10)


@pytest.mark.parametrize("seed", range(10))
def test_pcgrad_leaves_no_conflict_between_two_projected_gradients(seed: int) -> None:
    jacobian, _ = _inputs(2, seed)
    jacobian[1] = -jacobian[0] + 0.5 * jacobian[1]  # conflicting
    gramian = jacobian @ jacobian.T
    projected = pcgrad_coefficients(gramian, torch.Generator().manual_seed(0)) @ jacobian
    assert float(projected[0] @ jacobian[1]) >= -1e-12
    assert float(projected[1] @ jacobian[0]) >= -1e-12


@pytest.mark.parametrize("t", SIZES)
def test_pcgrad_without_conflicts_is_the_sum(t: int) -> None:
    jacobian = torch.rand(t, P, generator=torch.Generator().manual_seed(t), dtype=torch.float64)  # all ≥ 0
    a = pcgrad_coefficients(jacobian @ jacobian.T, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, torch.eye(t, dtype=torch.float64))


def test_min_norm_of_zero_gradients_is_equal_weights() -> None:
    torch.testing.assert_close(min_norm_weights(torch.zeros(3, 3)), torch.full((3,), 1 / 3, dtype=torch.float64))


def _cagrad_objective(w: torch.Tensor, gramian: torch.Tensor, c: float) -> torch.Tensor:
    """``wᵀ G 1 / T + c ‖g₀‖ √(wᵀ G w)`` for a batch of weight rows ``w`` (N, T)."""
    t = gramian.shape[0]
    radius = c * math.sqrt(float(gramian.sum())) / t
    quad = ((w @ gramian) * w).sum(dim=1).clamp(min=0)
    return w @ gramian.sum(dim=1) / t + radius * quad.sqrt()


@pytest.mark.parametrize("t", (2, 3))
@pytest.mark.parametrize("seed", range(6))
def test_cagrad_weights_minimize_its_inner_problem_and_d_maximizes_the_worst_task(t: int, seed: int) -> None:
    jacobian, losses = _inputs(t, seed)
    gramian = jacobian @ jacobian.T
    c = 0.5
    steps = 2001 if t == 2 else 801
    grid = torch.linspace(0, 1, steps, dtype=torch.float64)
    if t == 2:
        candidates = torch.stack([grid, 1 - grid], dim=1)
    else:
        a, b = torch.meshgrid(grid, grid, indexing="ij")
        keep = (a + b) <= 1
        candidates = torch.stack([a[keep], b[keep], 1 - a[keep] - b[keep]], dim=1)
    brute = float(_cagrad_objective(candidates, gramian, c).min())
    w = cagrad_weights(gramian, c)
    assert bool((w >= 0).all()) and float(w.sum()) == pytest.approx(1.0)
    assert float(_cagrad_objective(w[None], gramian, c)[0]) <= brute + 1e-9
    # the primal: d lies in the ball around g0 and no grid point of the dual does better than its worst task
    method = CAGrad([f"t{i}" for i in range(t)], c=c)
    d = _apply(method, jacobian, losses)
    g0 = jacobian.mean(dim=0)
    assert float((d - g0).norm()) <= c * float(g0.norm()) * (1 + 1e-9)
    assert float((jacobian @ d).min()) == pytest.approx(float(_cagrad_objective(w[None], gramian, c)[0]), rel=1e-6)
