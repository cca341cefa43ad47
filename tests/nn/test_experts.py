"""Mixtures of experts (MMoE, CGC, PLE, DSelect-k): the papers' equations, gates, the parameter split.

The contract tests (tests/nn/test_contract.py) check shapes, descriptions, learning and balancing; here:
gate weights on the simplex and gate usage, PLE's shared gate at every level but the last (and CGC without
one) against a direct transcription of the paper's equations, each task's parameters reaching only its loss
and each shared one more than one, DSelect-k's smooth step, its selection of at most k experts, and MMoE
with one expert being the shared-bottom network.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from multitask import Task
from multitask.data.arrays import Arrays
from multitask.errors import ConfigError
from multitask.nn import MLP, HardSharing, InputSpec
from multitask.nn._dselect_k import DSelectGate, DSelectK, smooth_step
from multitask.nn._experts import Experts
from multitask.nn._mmoe import MMoE
from multitask.nn._ple import CGC, PLE, ExtractionLevel
from multitask.train import TrainConfig, fit

TASKS = [Task("r", "regression"), Task("b", "binary"), Task("m", "multiclass")]
SIZES = {"m": 3}
ONE = {"s": InputSpec(dim=5)}


def _rows(n: int = 9, d: int = 5, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _build(cls: type, tasks: list[Task] = TASKS, **options: Any) -> Any:
    torch.manual_seed(0)
    return cls(ONE, tasks, {t.name: "s" for t in tasks}, SIZES, **options)


MODELS = [
    (MMoE, {}),
    (CGC, {}),
    (PLE, {}),
    (PLE, {"levels": 3}),
    (DSelectK, {}),
    (DSelectK, {"routing": "task"}),
]
IDS = ["mmoe", "cgc", "ple2", "ple3", "dselect-example", "dselect-task"]


# ---- gates ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cls", "options"), MODELS, ids=IDS)
def test_gate_usage_is_each_tasks_mean_gate_on_the_simplex(cls: type, options: dict[str, Any]) -> None:
    model = _build(cls, **options)
    before = model.gate_usage()
    assert all(torch.allclose(u, torch.full_like(u, 1 / u.numel())) for u in before.values())  # no row yet
    model({"s": _rows()})
    usage = model.gate_usage()
    width = model.task_experts + model.shared_experts if isinstance(model, PLE) else model.experts
    assert list(usage) == [t.name for t in TASKS]
    for u in usage.values():
        assert u.shape == (width,) and not u.requires_grad
        assert float(u.sum()) == pytest.approx(1.0, abs=1e-6) and bool((u >= 0).all())
    assert not all(torch.allclose(u, before[t]) for t, u in usage.items())  # recorded, not the initial value


@pytest.mark.parametrize(("cls", "options"), MODELS, ids=IDS)
def test_a_batch_without_rows_gives_empty_outputs(cls: type, options: dict[str, Any]) -> None:
    model = _build(cls, norm="batch", **options)
    out = model({"s": torch.zeros(0, 5)})
    assert out["r"].shape == (0,) and out["m"].shape == (0, 3)
    assert all(bool(torch.isfinite(u).all()) for u in model.gate_usage().values())


def test_every_gate_row_lies_on_the_simplex() -> None:
    h = _rows(11, 64)
    mmoe, ple = _build(MMoE, experts=5), _build(PLE, levels=3)
    gates = [*mmoe.gates]
    for level in ple.extraction:
        gates += [*level.task_gates, *([level.shared_gate] if level.shared_gate is not None else [])]
    gates += [DSelectGate(64, 8, 3, 1.0, 0.0, routing) for routing in ("example", "task")]
    for gate in gates:
        weights = gate(h)
        assert weights.shape[0] == 11 and bool((weights >= 0).all())
        torch.testing.assert_close(weights.sum(dim=1), torch.ones(11))


def test_a_task_without_rows_keeps_its_last_gate_usage() -> None:
    tasks = [Task("a", "regression"), Task("b", "regression")]
    inputs = {"x": InputSpec(dim=4), "y": InputSpec(dim=3)}
    model = MMoE(inputs, tasks, {"a": "x", "b": "y"})
    model({"x": _rows(5, 4), "y": _rows(6, 3)})
    first = model.gate_usage()
    out = model({"x": _rows(5, 4, seed=2), "y": torch.zeros(0, 3)})
    assert out["b"].shape == (0,)
    second = model.gate_usage()
    torch.testing.assert_close(second["b"], first["b"])
    assert not torch.allclose(second["a"], first["a"])
    assert all(bool(torch.isfinite(u).all()) for u in second.values())


def test_the_trainer_logs_the_epoch_mean_gate_usage(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    targets: dict[str, np.ndarray] = {"r": x[:, 0], "b": (x[:, 1] > 0).astype(np.float32), "m": np.digitize(x[:, 2], [-0.5, 0.5])}
    masks = {t: np.ones(64, bool) for t in targets}
    data = Arrays({"s": x}, targets, masks, {t: "s" for t in targets})
    model = _build(PLE)
    config = TrainConfig(epochs=2, batch_size=32, progress=False, patience=None, threads=1)
    fit(model, TASKS, data, data, config, run_dir=tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    gates = [line["gates"] for line in lines if "gates" in line]
    assert len(gates) == 2
    for epoch in gates:
        assert set(epoch) == {"r", "b", "m"}
        assert all(len(v) == 4 and sum(v) == pytest.approx(1.0, abs=1e-5) for v in epoch.values())


# ---- PLE and CGC: the paper's equations -------------------------------------------------------------------
def _softmax_gate(gate: Any, z: torch.Tensor) -> torch.Tensor:
    """``softmax(W z)`` with the gate's weights ``W``."""
    return torch.softmax(z @ gate.logits.weight.T, dim=-1)


def _ple_by_the_paper(model: PLE, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Tang et al. (2020), eq. 5-6, on every row: task gates mix own + shared experts, the shared gate (all
    levels but the last) mixes every expert; towers and heads after the last level."""
    h = model.encoders({"s": x})["s"]
    streams, shared_stream = [h] * len(model.tasks), h
    levels: list[Any] = list(model.extraction)
    for level in levels:
        own = [level.task_experts[t](streams[t]) for t in range(len(streams))]
        shared = level.shared_experts(shared_stream)
        nxt = [
            torch.einsum("ne,ned->nd", _softmax_gate(level.task_gates[t], streams[t]),
                         torch.cat([own[t], shared], dim=1))
            for t in range(len(streams))
        ]
        if level.shared_gate is not None:
            weights = _softmax_gate(level.shared_gate, shared_stream)
            shared_stream = torch.einsum("ne,ned->nd", weights, torch.cat([*own, shared], dim=1))
        streams = nxt
    features = {t.name: model.towers[i](streams[i]) for i, t in enumerate(model.tasks)}
    return model.task_heads(features)


@pytest.mark.parametrize("levels", [1, 2, 3, 4])
def test_ple_computes_the_papers_equations(levels: int) -> None:
    model = _build(CGC) if levels == 1 else _build(PLE, levels=levels)
    x = _rows()
    out, expected = model({"s": x}), _ple_by_the_paper(model, x)
    for t in TASKS:
        torch.testing.assert_close(out[t.name], expected[t.name])


def test_ple_has_a_shared_gate_over_all_experts_at_every_level_but_the_last() -> None:
    model = _build(PLE, levels=3)
    t, k, s = len(TASKS), model.task_experts, model.shared_experts
    gates = [level.shared_gate for level in model.extraction]
    assert gates[-1] is None
    for gate in gates[:-1]:
        assert gate is not None and gate.logits.out_features == t * k + s
    assert all(level.shared_gate is None for level in _build(CGC).extraction)
    assert len(_build(CGC).extraction) == 1


def _perturbed(model: PLE, level: int, task: int) -> PLE:
    experts: Any = model.extraction[level].task_experts[task]  # type: ignore[index]
    with torch.no_grad():
        for p in experts.parameters():
            p.add_(0.5)
    return model


def test_a_task_expert_reaches_the_next_levels_shared_input_at_every_level_but_the_last() -> None:
    x = {"s": _rows()}
    base = _build(PLE, levels=3).representation(x)
    s = _build(PLE, levels=3).shared_experts
    # level 1: its task experts reach level 2's shared experts only through level 1's shared gate
    after = _perturbed(_build(PLE, levels=3), 0, task=1).representation(x)
    assert not torch.allclose(after["s0.experts"][:, -s:], base["s0.experts"][:, -s:])
    # level 2: its task experts reach level 3's shared experts only through level 2's shared gate
    after = _perturbed(_build(PLE, levels=3), 1, task=1).representation(x)
    torch.testing.assert_close(after["s0.experts"][:, -s:], base["s0.experts"][:, -s:])
    assert not torch.allclose(after["s0.shared"], base["s0.shared"])


def test_in_cgc_a_tasks_experts_reach_only_that_task_and_in_ple_every_task() -> None:
    x = {"s": _rows()}
    for model, others_change in ((_build(CGC), False), (_build(PLE), True)):
        base = model(x)
        changed = _perturbed(model, 0, task=0)(x)
        assert not torch.allclose(changed["r"], base["r"])
        for name in ("b", "m"):
            assert (not torch.allclose(changed[name], base[name])) == others_change, (type(model), name)


# ---- which parameters are whose ---------------------------------------------------------------------------
@pytest.mark.parametrize(("cls", "options"), MODELS, ids=IDS)
def test_task_parameters_reach_only_their_task_and_shared_ones_several(cls: type, options: dict[str, Any]) -> None:
    model = _build(cls, activation="tanh", **options)
    out = model({"s": _rows(16)})
    losses = {"r": out["r"].pow(2).mean(), "b": out["b"].sigmoid().mean(), "m": out["m"].softmax(-1)[:, 0].mean()}
    reaches: dict[int, set[str]] = {}
    params = list(model.parameters())
    for name, loss in losses.items():
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        for p, g in zip(params, grads, strict=True):
            if g is not None and bool((g != 0).any()):
                reaches.setdefault(id(p), set()).add(name)
    for name, own in model.task_parameters().items():
        for p in own:
            assert reaches.get(id(p), set()) == {name}, (name, tuple(p.shape))
    for p in model.shared_parameters():
        assert len(reaches.get(id(p), set())) >= 2, tuple(p.shape)


def test_the_representation_is_what_the_task_parts_read() -> None:
    tasks = [Task("a", "regression"), Task("b", "regression"), Task("c", "binary")]
    inputs = {"x": InputSpec(dim=4), "y": InputSpec(dim=3)}
    source = {"a": "x", "b": "y", "c": "x"}
    model = PLE(inputs, tasks, source, levels=2, shared_experts=3, task_experts=2, expert_hidden=[8, 6])
    rep = model.representation({"x": _rows(5, 4), "y": _rows(7, 3)})
    assert rep["s0.inputs"].shape == (5, 2, 8) and rep["s1.inputs"].shape == (7, 1, 8)
    assert rep["s0.experts"].shape == (5, 2 * 2 + 3, 6) and rep["s1.experts"].shape == (7, 1 * 2 + 3, 6)
    assert rep["s0.shared"].shape == (5, 3, 6)
    mmoe = MMoE(inputs, tasks, source, experts=3, expert_hidden=[8, 6])
    rep = mmoe.representation({"x": _rows(5, 4), "y": _rows(0, 3)})
    assert rep["s0.experts"].shape == (5, 3, 6) and rep["s0.input"].shape == (5, 8)
    assert rep["s1.experts"].shape == (0, 3, 6)
    static = DSelectK(inputs, tasks, source, routing="task").representation({"x": _rows(5, 4), "y": _rows(2, 3)})
    assert set(static) == {"s0.experts", "s1.experts"}  # static gates read no input


@pytest.mark.parametrize("norm", ["none", "layer", "batch"])
def test_the_expert_pool_is_independent_mlps_computed_together(norm: str) -> None:
    torch.manual_seed(0)
    pool = Experts(3, 5, (8, 6), "tanh", norm, 0.0)
    x = _rows(10, 5)
    out = pool(x)
    assert out.shape == (10, 3, 6)
    for e in range(3):
        mlp = MLP((5, 8, 6), "tanh", norm)
        with torch.no_grad():
            for layer in range(2):
                block: Any = mlp[layer]
                norm_layer: Any = pool.norms[layer]
                block[0].weight.copy_(pool.weights[layer][e].T)
                block[0].bias.copy_(pool.biases[layer][e])
                if norm == "layer":
                    block[1].weight.uniform_()  # per-expert affine weights: make them differ
                    norm_layer.weight[e].copy_(block[1].weight)
        torch.testing.assert_close(pool(x)[:, e], mlp(x))


# ---- MMoE -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cls", "options"), [(MMoE, {}), (DSelectK, {"k": 1}), (DSelectK, {"routing": "task"})])
@pytest.mark.parametrize("head", ["separate", "shared"])
def test_with_one_expert_the_mixture_is_the_shared_bottom_network(
    cls: type, options: dict[str, Any], head: str
) -> None:
    inputs = {"x": InputSpec(dim=4), "y": InputSpec(dim=3)}
    tasks = [*TASKS, Task("l", "multilabel")]
    source = {"r": "x", "b": "y", "m": "x", "l": "y"}
    sizes = {"m": 3, "l": 2}
    torch.manual_seed(0)
    mixture = cls(inputs, tasks, source, sizes, experts=1, expert_hidden=[16], tower_hidden=[], head=head, **options)
    shared_bottom = HardSharing(inputs, tasks, source, sizes, hidden=(16, 16), head=head)
    state = {k: v for k, v in mixture.state_dict().items() if k.startswith(("encoders.", "task_heads."))}
    state["trunk.0.0.weight"] = mixture.expert_pool.weights[0][0].detach().T  # the expert's (in, out) as (out, in)
    state["trunk.0.0.bias"] = mixture.expert_pool.biases[0][0].detach()
    shared_bottom.load_state_dict(state)
    x = {"x": _rows(6, 4), "y": _rows(5, 3)}
    a, b = mixture(x), shared_bottom(x)
    exact = options.get("k") == 1 or cls is MMoE  # else the gate is Σ_i softmax(α)_i = 1 up to rounding
    for t in tasks:
        if exact:
            torch.testing.assert_close(a[t.name], b[t.name], rtol=0, atol=0)
        else:
            torch.testing.assert_close(a[t.name], b[t.name])
    assert all(torch.allclose(u, torch.ones(1)) for u in mixture.gate_usage().values())


def test_mmoe_mixes_the_experts_with_each_tasks_softmax_gate() -> None:
    model = _build(MMoE, experts=3)
    x = _rows()
    h = model.encoders({"s": x})["s"]
    pool = model.expert_pool
    experts = torch.stack([torch.relu(h @ pool.weights[0][e] + pool.biases[0][e]) for e in range(3)], dim=1)
    features = {}
    for i, t in enumerate(TASKS):
        weights = torch.softmax(h @ model.gates[i].logits.weight.T, dim=-1)
        features[t.name] = model.towers[i]((weights.unsqueeze(-1) * experts).sum(1))
    expected, out = model.task_heads(features), model({"s": x})
    for t in TASKS:
        torch.testing.assert_close(out[t.name], expected[t.name])


# ---- DSelect-k ----------------------------------------------------------------------------------------------
def test_smooth_step_is_zero_then_a_cubic_then_one_with_continuous_slope() -> None:
    gamma = 2.0
    t = torch.tensor([-5.0, -1.0, -0.5, 0.0, 0.5, 1.0, 5.0], requires_grad=True)
    s = smooth_step(t, gamma)
    expected = [0.0, 0.0, -2 / 8 * -0.125 + 0.75 * -0.5 + 0.5, 0.5, -2 / 8 * 0.125 + 0.75 * 0.5 + 0.5, 1.0, 1.0]
    torch.testing.assert_close(s, torch.tensor(expected))
    (slope,) = torch.autograd.grad(s.sum(), t)
    torch.testing.assert_close(slope[[0, 1, 5, 6]], torch.zeros(4))  # flat at and beyond ±γ/2
    assert float(slope[3]) == pytest.approx(3 / (2 * gamma))
    assert bool((s[1:] >= s[:-1]).all())


def _saturated(gate: DSelectGate, codes: list[int], probabilities: list[float]) -> DSelectGate:
    """Selector i on expert ``codes[i]`` (every smooth step at 0 or 1), selector weights ``probabilities``."""
    with torch.no_grad():
        gate.z.copy_(torch.stack([(gate.codes[c] * 2 - 1) * gate.gamma for c in codes]))
        gate.alpha.copy_(torch.tensor(probabilities).log())
    return gate


def test_saturated_selectors_choose_at_most_k_experts_and_every_k_sparse_mixture_is_reachable() -> None:
    gate = _saturated(DSelectGate(1, 8, 2, 1.0, 0.0, "task"), [5, 2], [0.3, 0.7])
    q = gate(torch.zeros(1, 0))[0]
    torch.testing.assert_close(q, torch.tensor([0, 0, 0.7, 0, 0, 0.3, 0, 0]))
    gate = _saturated(DSelectGate(1, 8, 2, 1.0, 0.0, "task"), [4, 4], [0.5, 0.5])  # both on one expert
    assert int((gate(torch.zeros(1, 0))[0] > 0).sum()) == 1
    # k == experts: the whole simplex (the reformulation is equivalent to the cardinality-constrained one)
    p = [0.1, 0.2, 0.3, 0.4]
    gate = _saturated(DSelectGate(1, 4, 4, 1.0, 0.0, "task"), [0, 1, 2, 3], p)
    torch.testing.assert_close(gate(torch.zeros(1, 0))[0], torch.tensor(p))
    torch.manual_seed(3)
    for _ in range(20):  # random saturated logits: at most k experts
        gate = DSelectGate(1, 8, 3, 1.0, 0.0, "task")
        with torch.no_grad():
            gate.z.copy_(torch.randint(0, 2, gate.z.shape) * 2.0 - 1.0)
        assert int((gate(torch.zeros(1, 0))[0] > 0).sum()) <= 3


def test_dselect_penalty_is_the_selectors_entropy_plus_the_heads_penalty() -> None:
    model = _build(DSelectK, routing="task", entropy=0.01, head="shared", head_penalty=0.1)
    with torch.no_grad():
        for gate in model.gates:
            gate.z.zero_()  # every selector uniform over the 4 experts: entropy log 4 (up to ε)
        for v in model.task_heads.deviation.values():
            v.fill_(1.0)
    heads_penalty, penalty = model.task_heads.penalty(), model.penalty()
    assert heads_penalty is not None and penalty is not None
    heads = float(heads_penalty.detach())
    gates = len(TASKS) * 2 * 0.01 * -4 * 0.25 * math.log(0.25 + 1e-6)
    assert float(penalty.detach()) == pytest.approx(heads + gates, rel=1e-6)
    assert heads > 0
    per_example = _build(DSelectK, entropy=0.01)
    assert per_example.penalty() is None  # no forward pass yet: no selectors
    per_example({"s": _rows()})
    entropy = per_example.penalty()
    assert entropy is not None
    assert float(entropy.detach()) == pytest.approx(len(TASKS) * 2 * 0.01 * math.log(4), rel=1e-2)


def _value(penalty: torch.Tensor | None) -> float:
    assert penalty is not None
    return float(penalty.detach())


def test_dselect_with_experts_not_a_power_of_two_penalizes_the_codes_of_no_expert() -> None:
    gate = DSelectGate(1, 3, 2, 1.0, 0.0, "task")
    with torch.no_grad():
        gate.z.zero_()
    q = gate(torch.zeros(2, 0))
    torch.testing.assert_close(q.sum(1), torch.full((2,), 0.75))  # one code of four reaches no expert
    assert _value(gate.penalty()) == pytest.approx(2 / 0.75)
    _saturated(gate, [0, 2], [0.5, 0.5])
    torch.testing.assert_close(gate(torch.zeros(1, 0)).sum(), torch.tensor(1.0))
    assert _value(gate.penalty()) == pytest.approx(2.0)


def _train(model: DSelectK, steps: int) -> torch.Tensor:
    x = _rows(128, 5)
    y = torch.tanh(x @ torch.randn(5, 3, generator=torch.Generator().manual_seed(2)))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(steps):
        out = model({"s": x})
        loss = sum(((out[t.name] - y[:, i]) ** 2).mean() for i, t in enumerate(model.tasks))
        penalty = model.penalty()
        assert penalty is not None
        optimizer.zero_grad()
        (loss + penalty).backward()
        optimizer.step()
    return x


REGRESSION = [Task("a", "regression"), Task("b", "regression"), Task("c", "regression")]


def test_trained_static_dselect_gates_select_at_most_k_experts_per_task() -> None:
    model = _build(DSelectK, REGRESSION, experts=8, k=2, routing="task", entropy=0.1, expert_hidden=[16],
                   tower_hidden=[])
    _train(model, 100)
    for gate in model.gates:
        steps = smooth_step(gate.z.detach(), gate.gamma)
        assert bool(((steps == 0) | (steps == 1)).all())  # saturated: each selector is one expert
        q = gate(torch.zeros(1, 0))[0].detach()
        assert 1 <= int((q > 0).sum()) <= 2 and float(q.sum()) == pytest.approx(1.0)


def test_trained_per_example_dselect_gates_select_at_most_k_experts_per_row() -> None:
    model = _build(DSelectK, REGRESSION, experts=8, k=2, entropy=0.1, expert_hidden=[16], tower_hidden=[])
    x = _train(model, 100)
    with torch.no_grad():
        h = model.encoders({"s": x})["s"]
        for gate in model.gates:
            steps = smooth_step(gate.z_map(h), gate.gamma)
            saturated = ((steps == 0) | (steps == 1)).all(dim=1)
            assert float(saturated.float().mean()) >= 0.9
            q = gate(h)[saturated]
            assert int((q > 0).sum(dim=1).max()) <= 2
            torch.testing.assert_close(q.sum(dim=1), torch.ones(q.shape[0]))


# ---- options ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cls", "options", "named"),
    [
        (MMoE, {"experts": 0}, "experts"),
        (MMoE, {"expert_hidden": []}, "expert_hidden"),
        (MMoE, {"tower_hidden": [0]}, "tower_hidden"),
        (PLE, {"levels": 0}, "levels"),
        (PLE, {"shared_experts": 0}, "shared_experts"),
        (CGC, {"task_experts": 1.5}, "task_experts"),
        (DSelectK, {"k": 0}, "k"),
        (DSelectK, {"gamma": 0.0}, "gamma"),
        (DSelectK, {"entropy": -1.0}, "entropy"),
        (DSelectK, {"routing": "row"}, "routing"),
    ],
)
def test_bad_options_name_the_option(cls: type, options: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        _build(cls, **options)


def test_cgc_is_ple_with_one_level_and_has_no_levels_option() -> None:
    cgc, ple = _build(CGC), _build(PLE, levels=1)
    assert "levels" not in cgc.model_config() and ple.model_config()["levels"] == 1
    ple.load_state_dict(cgc.state_dict())
    x = {"s": _rows()}
    for t in TASKS:
        torch.testing.assert_close(cgc(x)[t.name], ple(x)[t.name])
    assert isinstance(cgc.extraction[0], ExtractionLevel)
