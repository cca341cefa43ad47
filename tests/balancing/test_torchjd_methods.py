"""The methods that torchjd also implements: properties, pinned values, agreement with torchjd, state.

Pinned values were computed once and checked against torchjd 0.18's aggregator on the same Jacobian (or
against the paper's equation where the test says so); the ``test_*_agrees_with_torchjd`` tests redo that
check live.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import pytest
import torch
from torchjd import aggregation as tjd

from multitask.balancing import Balancing, min_norm_weights
from multitask.balancing._aligned_mtl import AlignedMTL
from multitask.balancing._config import ConFIG
from multitask.balancing._dualproj import DualProj
from multitask.balancing._excess_mtl import ExcessMTL
from multitask.balancing._fairgrad import FairGrad, fair_weights
from multitask.balancing._graddrop import GradDrop
from multitask.balancing._gradvac import GradVac, gradvac_coefficients
from multitask.balancing._imtl_g import IMTLG
from multitask.balancing._nash_mtl import NashMTL
from multitask.balancing._sdmgrad import SDMGrad
from multitask.balancing._upgrad import UPGrad

METHODS: dict[str, type[Balancing]] = {
    "imtl-g": IMTLG,
    "nash-mtl": NashMTL,
    "aligned-mtl": AlignedMTL,
    "upgrad": UPGrad,
    "dualproj": DualProj,
    "config": ConFIG,
    "fairgrad": FairGrad,
    "sdmgrad": SDMGrad,
    "gradvac": GradVac,
    "graddrop": GradDrop,
    "excessmtl": ExcessMTL,
}
NAMES = list(METHODS)
#: the methods whose weights can be negative (they promise equal projections, not a conic combination)
SIGNED = {"imtl-g", "aligned-mtl", "config"}
STATEFUL = {"nash-mtl": {"update_weights_every": 3}, "sdmgrad": {}, "gradvac": {}, "excessmtl": {}}
SIZES = (2, 3, 10, 40)
P = 50  # shared parameters: more than T, so that the gradients are linearly independent
#: a fixed Jacobian with conflicting rows, for the pinned values
J3 = torch.tensor([[2.0, 1.0, 0.0, -1.0], [-1.5, 0.5, 1.0, 1.0], [-1.0, -1.0, 0.5, 0.5]], dtype=torch.float64)


def _build(name: str, t: int, **options: object) -> Balancing:
    return METHODS[name]([f"t{i}" for i in range(t)], **options)  # type: ignore[arg-type]


def _inputs(t: int, seed: int = 0, p: int = P) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    jacobian = torch.randn(t, p, generator=g, dtype=torch.float64)
    return jacobian, torch.rand(t, generator=g, dtype=torch.float64) + 0.1


def _conflicting(t: int, seed: int = 0, p: int = P) -> torch.Tensor:
    """Rows that pairwise conflict often: a shared part and large opposite private parts."""
    jacobian, _ = _inputs(t, seed, p)
    jacobian[1::2] = -jacobian[::2][: t // 2] + 0.3 * jacobian[1::2]
    return jacobian


def _direction(
    method: Balancing, jacobian: torch.Tensor, at: tuple[int, int, int] = (0, 0, 1)
) -> torch.Tensor:
    method.begin_step(*at)
    return method.combine_gradients(jacobian, torch.ones(jacobian.shape[0], dtype=torch.float64))


def _weights(method: Balancing) -> torch.Tensor:
    assert method.weights_ is not None
    return method.weights_


# ---- shared properties -------------------------------------------------------------------------------------
@pytest.mark.parametrize("t", SIZES)
@pytest.mark.parametrize("name", NAMES)
def test_finite_output_of_the_right_shape(name: str, t: int) -> None:
    for jacobian in (_inputs(t)[0], _conflicting(t), _inputs(t, p=7)[0]):  # p = 7: dependent rows for t > 7
        method = _build(name, t)
        d = _direction(method, jacobian)
        assert d.shape == (jacobian.shape[1],) and d.dtype == torch.float64 and bool(d.isfinite().all())
        assert _weights(method).shape == (t,) and bool(_weights(method).isfinite().all())


@pytest.mark.parametrize("name", NAMES)
def test_zero_gradients_and_a_single_task_give_finite_output(name: str) -> None:
    for t, jacobian in (
        (3, torch.zeros(3, 5, dtype=torch.float64)),
        (1, torch.randn(1, 5, dtype=torch.float64)),
    ):
        method = _build(name, t)
        for step in (1, 2):  # the stateful ones, again on their updated state
            d = _direction(method, jacobian, at=(0, 0, step))
            assert bool(d.isfinite().all()) and bool(_weights(method).isfinite().all())
        if t == 3:
            assert bool((d == 0).all())
    partly = torch.randn(3, 5, dtype=torch.float64)
    partly[1] = 0
    method = _build(name, 3)
    assert bool(_direction(method, partly).isfinite().all()) and bool(_weights(method).isfinite().all())


@pytest.mark.parametrize("t", SIZES)
@pytest.mark.parametrize("name", sorted(set(NAMES) - SIGNED))
def test_weights_are_non_negative(name: str, t: int) -> None:
    method = _build(name, t)
    for seed in range(3):
        _direction(method, _conflicting(t, seed), at=(0, 0, seed))
        assert bool((_weights(method) >= 0).all()), _weights(method)


@pytest.mark.parametrize("t", SIZES)
@pytest.mark.parametrize("name", [n for n in NAMES if not METHODS[n].stochastic])
def test_permuting_the_tasks_permutes_the_weights(name: str, t: int) -> None:
    jacobian = _conflicting(t, seed=3)
    perm = torch.randperm(t, generator=torch.Generator().manual_seed(1))
    a, b = _build(name, t), _build(name, t)
    for step in (1, 2):  # the stateful ones twice
        d_a, d_b = _direction(a, jacobian, (0, 0, step)), _direction(b, jacobian[perm], (0, 0, step))
        torch.testing.assert_close(d_b, d_a, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(_weights(b), _weights(a)[perm], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("t", SIZES)
@pytest.mark.parametrize("name", NAMES)
def test_identical_gradients_give_the_equal_weighting_direction(name: str, t: int) -> None:
    g = torch.randn(P, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    d = _direction(_build(name, t), g.expand(t, P).clone())
    scale = float(d @ g) / float(g @ g)
    assert scale > 0
    torch.testing.assert_close(d, scale * g)


# ---- each method's promise on conflicting gradients --------------------------------------------------------
@pytest.mark.parametrize("t", SIZES)
@pytest.mark.parametrize("name", ["upgrad", "dualproj"])
def test_dual_cone_projections_conflict_with_no_task(name: str, t: int) -> None:
    jacobian = _conflicting(t, seed=t)
    jacobian[0] *= 5  # a dominant task, so that the mean gradient conflicts with task 1
    method = _build(name, t)
    d = _direction(method, jacobian)
    # quadprog solves on G / trace(G) + reg_eps I, so g_t · d ≥ −reg_eps trace(G) w_t (see the docstring)
    slack = 1e-4 * float(torch.trace(jacobian @ jacobian.T)) * _weights(method)
    assert bool((jacobian @ d >= -slack - 1e-9).all()), jacobian @ d
    assert bool((_weights(method) >= 1 / t - 1e-9).all())
    assert float((jacobian @ jacobian.mean(dim=0)).min()) < 0  # the input did conflict


@pytest.mark.parametrize("name", ["upgrad", "dualproj"])
def test_dual_cone_projections_leave_the_mean_of_unconflicting_gradients(name: str) -> None:
    jacobian = torch.rand(4, P, generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # all ≥ 0
    torch.testing.assert_close(_direction(_build(name, 4), jacobian), jacobian.mean(dim=0))


@pytest.mark.parametrize("t", SIZES)
@pytest.mark.parametrize("name", ["imtl-g", "config"])
def test_equal_projections_on_the_unit_task_gradients(name: str, t: int) -> None:
    jacobian = _conflicting(t, seed=t)
    method = _build(name, t)
    d = _direction(method, jacobian)
    projections = jacobian @ d / jacobian.norm(dim=1)
    assert float(projections.min()) > 0
    torch.testing.assert_close(projections, projections.mean().expand(t), rtol=1e-8, atol=0)
    if name == "imtl-g":
        assert float(_weights(method).sum()) == pytest.approx(1.0)
    else:  # ConFIG: ‖d‖ = Σ_t g_t · d̂
        assert float(d.norm()) == pytest.approx(float((jacobian @ d).sum() / d.norm()))


@pytest.mark.parametrize("t", SIZES)
def test_aligned_mtl_weights_equalize_the_aligned_components(t: int) -> None:
    # Senushkin et al. (2023), Algorithm 1: w = B 1/T, B = √λ_min G^(−1/2), so G^(1/2) w = (√λ_min / T) 1
    jacobian = _conflicting(t, seed=t)
    gramian = jacobian @ jacobian.T
    method = _build("aligned-mtl", t)
    _direction(method, jacobian)
    values, vectors = torch.linalg.eigh(gramian)
    root = vectors @ torch.diag(values.sqrt()) @ vectors.T
    expected = (values.min().sqrt() / t).expand(t)
    torch.testing.assert_close(root @ _weights(method), expected, rtol=1e-7, atol=0)


@pytest.mark.parametrize("t", SIZES)
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_fair_weights_solve_the_alpha_fair_condition(t: int, alpha: float) -> None:
    # Ban & Ji (2024), eq. 4: (G w)_t = w_t^(−1/α); Navon et al. (2022): α = 1, (G w)_t = 1 / w_t
    jacobian = _conflicting(t, seed=t)
    gramian = jacobian @ jacobian.T
    methods = [_build("fairgrad", t, alpha=alpha)]
    if alpha == 1.0:
        methods.append(_build("nash-mtl", t, max_norm=0.0))
    for method in methods:
        _direction(method, jacobian)
        w = _weights(method)
        torch.testing.assert_close((gramian @ w) * w ** (1 / alpha), torch.ones_like(w), rtol=0, atol=1e-7)


@pytest.mark.parametrize("scale", [1e-8, 1e-3, 1.0, 1e4])
def test_fair_weights_scale_exactly_with_the_gradients(scale: float) -> None:
    jacobian = _conflicting(3, seed=0)
    base = fair_weights(jacobian @ jacobian.T, 2.0)
    scaled = fair_weights(scale**2 * (jacobian @ jacobian.T), 2.0)
    torch.testing.assert_close(scaled, base * (scale**2) ** (-2 / 3), rtol=1e-9, atol=0)


def test_nash_mtl_clips_the_direction_and_reuses_its_weights() -> None:
    method = NashMTL(["t0", "t1", "t2"], update_weights_every=2)
    first = _direction(method, _conflicting(3, seed=0))
    assert float(first.norm()) == pytest.approx(1.0)  # ‖d‖ = √3 > max_norm = 1 before the clipping
    solved = method.solved.clone()
    _direction(method, _conflicting(3, seed=1))
    torch.testing.assert_close(method.solved, solved, rtol=0, atol=0)  # the second step reuses them
    _direction(method, _conflicting(3, seed=2))
    assert not torch.equal(method.solved, solved)


def test_sdmgrad_without_the_pull_is_mgda_and_with_a_large_one_the_mean() -> None:
    # Xiao et al. (2023): λ = 0 is the min-norm point of the hull (MGDA), λ → ∞ the mean gradient
    jacobian = _conflicting(4, seed=0)
    method = _build("sdmgrad", 4, lam=0.0, lr=0.5, n_iter=5000)
    _direction(method, jacobian)
    torch.testing.assert_close(_weights(method), min_norm_weights(jacobian @ jacobian.T), rtol=0, atol=1e-6)
    method = _build("sdmgrad", 4, lam=1e9)
    _direction(method, jacobian)
    equal = torch.full((4,), 0.25, dtype=torch.float64)
    torch.testing.assert_close(_weights(method), equal, rtol=0, atol=1e-8)


def test_gradvac_sets_the_cosine_of_a_conflicting_pair_to_its_target() -> None:
    # Wang et al. (2021): after the correction cos(g_0^GV, g_1) = φ̂_01
    jacobian = _conflicting(2, seed=0)
    targets = torch.full((2, 2), 0.4, dtype=torch.float64)
    c = gradvac_coefficients(jacobian @ jacobian.T, targets, 0.5, 0.0, torch.Generator().manual_seed(0))
    fixed = c @ jacobian
    cosine = torch.nn.functional.cosine_similarity(fixed[0], jacobian[1], dim=0)
    assert float(cosine) == pytest.approx(0.4, abs=1e-10)


def test_graddrop_keeps_one_sign_per_coordinate() -> None:
    # Chen et al. (2020): per coordinate, d is the sum of the positive parts or of the negative parts
    jacobian = _conflicting(5, seed=0)
    positive, negative = jacobian.clamp(min=0).sum(dim=0), jacobian.clamp(max=0).sum(dim=0)
    chose_positive = []
    for step in range(40):
        d = _direction(_build("graddrop", 5), jacobian, at=(0, 0, step))
        assert bool(((d == positive) | (d == negative)).all())
        chose_positive.append(d == positive)
    frequency = torch.stack(chose_positive).double().mean(dim=0)
    purity = 0.5 * (1 + jacobian.sum(dim=0) / jacobian.abs().sum(dim=0))
    assert float((frequency - purity).abs().mean()) < 0.1  # P(keep the positive parts) = purity


# ---- pinned values, and agreement with torchjd -------------------------------------------------------------
PINNED: dict[str, list[float]] = {
    # torchjd 0.18's UPGrad()(J3), DualProj()(J3), IMTLG()(J3), AlignedMTL()(J3), ConFIG()(J3) give the same d
    "upgrad": [0.7428147892, 0.4194869442, 0.7652045481],
    "dualproj": [0.3888046479, 0.3333333333, 0.3333333333],
    "imtl-g": [0.3875242113, 0.1154197833, 0.4970560054],
    "aligned-mtl": [0.3093874283, 0.1454128456, 0.3641846146],
    "config": [1.2040591005, 0.3586156334, 1.5443804269],
    # the paper's equation (G w)_t = w_t^(−1/α), α = 2 (to 1e-10), and torchjd's FairGrad(2.0)(J3) to 2e-9
    "fairgrad": [1.9229336402, 0.6984082486, 2.3920102433],
    # (G w)_t = 1 / w_t, then ‖d‖ clipped to 1; torchjd's NashMTL(3)(J3) gives the same d to 1e-8
    "nash-mtl": [0.9609595211, 0.4223990759, 1.1258528117],
    # torchjd's SDMGradWeighting()(J3 J3ᵀ), first step, to 1e-9 (torchjd pads the scale by 1e-8)
    "sdmgrad": [0.0769230769, 0.2957044834, 0.6273724396],
}


@pytest.mark.parametrize("name", list(PINNED))
def test_pinned_weights(name: str) -> None:
    method = _build(name, 3, **({"alpha": 2.0} if name == "fairgrad" else {}))
    _direction(method, J3)
    expected = torch.tensor(PINNED[name], dtype=torch.float64)
    torch.testing.assert_close(_weights(method), expected, rtol=0, atol=2e-9)


def _quiet(aggregate: Callable[[], torch.Tensor]) -> torch.Tensor:
    """torchjd's NashMTL makes cvxpy warn that its problem is not DPP."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return aggregate()


TORCHJD: dict[str, Callable[[], Callable[[torch.Tensor], torch.Tensor]]] = {
    "upgrad": tjd.UPGrad,
    "dualproj": tjd.DualProj,
    "imtl-g": tjd.IMTLG,
    "aligned-mtl": tjd.AlignedMTL,
    "config": tjd.ConFIG,
    "fairgrad": lambda: tjd.FairGrad(1.0),
}


@pytest.mark.parametrize("t", (2, 3, 10))
@pytest.mark.parametrize("name", list(TORCHJD))
def test_stateless_methods_agree_with_torchjd(name: str, t: int) -> None:
    jacobian = _conflicting(t, seed=t)
    tolerance = 1e-8 if name != "fairgrad" else 1e-6  # scipy's least_squares stops at its own tolerance
    expected = TORCHJD[name]()(jacobian)
    torch.testing.assert_close(_direction(_build(name, t), jacobian), expected, rtol=tolerance, atol=1e-10)


@pytest.mark.parametrize("t", (2, 3, 10))
def test_nash_mtl_agrees_with_torchjd(t: int) -> None:
    jacobian = _conflicting(t, seed=t)
    for max_norm in (0.0, 1.0):
        aggregator = tjd.NashMTL(t, max_norm=max_norm)
        expected = _quiet(lambda aggregator=aggregator: aggregator(jacobian))  # type: ignore[misc]
        ours = _direction(_build("nash-mtl", t, max_norm=max_norm), jacobian)
        # torchjd stops at a residual of 1e-3
        torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-8)


def test_sdmgrad_agrees_with_torchjd_step_after_step() -> None:
    ours, theirs = _build("sdmgrad", 4), tjd.SDMGradWeighting()
    for step in range(4):
        jacobian = _conflicting(4, seed=step)
        _direction(ours, jacobian)
        torch.testing.assert_close(_weights(ours), theirs(jacobian @ jacobian.T), rtol=1e-7, atol=1e-9)


def test_gradvac_agrees_with_torchjd_on_the_same_draws() -> None:
    t = 5
    targets = torch.zeros(t, t, dtype=torch.float64)
    theirs = tjd.GradVacWeighting(beta=0.5, eps=1e-8)
    for step in range(4):
        jacobian = _conflicting(t, seed=step)
        gramian = jacobian @ jacobian.T
        draws = torch.Generator().manual_seed(step)
        ours = gradvac_coefficients(gramian, targets, 0.5, 1e-8, draws).sum(dim=0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(step)  # torchjd draws the same orders from the global generator
            expected = theirs(gramian / torch.diagonal(gramian).mean())  # ours scales G by its mean diagonal
        torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-12)


def test_graddrop_agrees_with_torchjd_on_the_same_draws() -> None:
    for leak in (0.0, 0.3):
        jacobian = _conflicting(4, seed=0)
        method = _build("graddrop", 4, leak=leak)
        method.generator().manual_seed(11)
        ours = method.combine_gradients(jacobian, torch.ones(4, dtype=torch.float64))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(11)  # torchjd draws the same U from the global generator
            expected = tjd.GradDrop(leak=torch.full((4,), leak, dtype=torch.float64))(jacobian)
        torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("warmup", (0, 2))
def test_excessmtl_agrees_with_torchjd_step_after_step(warmup: int) -> None:
    ours = _build("excessmtl", 3, robust_step_size=0.5, n_warmup_steps=warmup)
    theirs = tjd.ExcessMTLWeighting(robust_step_size=0.5, n_warmup_steps=warmup)
    for step in range(5):
        jacobian = _conflicting(3, seed=step, p=8) * (1 + step)
        _direction(ours, jacobian)
        torch.testing.assert_close(_weights(ours), theirs(jacobian), rtol=1e-10, atol=1e-12)


# ---- state and draws ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(STATEFUL))
def test_a_checkpoint_round_trip_reproduces_the_next_steps(name: str) -> None:
    t = 4
    method = _build(name, t, **STATEFUL[name])
    for step in range(1, 3):
        _direction(method, _conflicting(t, seed=step), at=(0, 0, step))
    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    buffer.seek(0)
    again = _build(name, t, **STATEFUL[name])
    again.load_state_dict(torch.load(buffer, weights_only=True))
    for step in range(3, 6):
        jacobian = _conflicting(t, seed=step)
        expected = _direction(method, jacobian, at=(0, 0, step))
        torch.testing.assert_close(_direction(again, jacobian, at=(0, 0, step)), expected, rtol=0, atol=0)
        torch.testing.assert_close(_weights(again), _weights(method), rtol=0, atol=0)
    fresh = _build(name, t, **STATEFUL[name])
    jacobian = _conflicting(t, seed=6)
    differs = not torch.equal(_direction(fresh, jacobian), _direction(method, jacobian))
    assert differs or name == "nash-mtl"  # the state matters (Nash-MTL's only while reusing its weights)


@pytest.mark.parametrize("name", [n for n in NAMES if METHODS[n].stochastic])
def test_draws_follow_seed_epoch_and_step(name: str) -> None:
    jacobian = _conflicting(10, seed=5)

    def at(seed: int, epoch: int, step: int) -> torch.Tensor:
        return _direction(_build(name, 10), jacobian, at=(seed, epoch, step))

    first = at(0, 0, 1)
    torch.testing.assert_close(at(0, 0, 1), first, rtol=0, atol=0)
    assert all(not torch.equal(other, first) for other in (at(0, 0, 2), at(0, 1, 1), at(1, 0, 1)))
    state = torch.random.get_rng_state()
    at(0, 0, 3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator is left alone


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("upgrad", {"reg_eps": -1.0}),
        ("dualproj", {"reg_eps": float("nan")}),
        ("aligned-mtl", {"scale_mode": "max"}),
        ("fairgrad", {"alpha": 0.0}),
        ("nash-mtl", {"max_norm": -1.0}),
        ("nash-mtl", {"update_weights_every": 0}),
        ("sdmgrad", {"momentum": 1.0}),
        ("sdmgrad", {"lam": -0.1}),
        ("gradvac", {"beta": 1.5}),
        ("graddrop", {"leak": 2.0}),
        ("excessmtl", {"robust_step_size": 0.0}),
        ("excessmtl", {"n_warmup_steps": -1}),
    ],
)
def test_bad_options_are_refused_by_name(name: str, options: dict[str, object]) -> None:
    (option,) = options
    with pytest.raises(ValueError, match=option):
        _build(name, 2, **options)
