"""Cross-stitch networks and MTAN: the papers' formulas, per-task sources, empty batches, refusals."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from multitask import Task
from multitask.errors import ConfigError
from multitask.nn import InputSpec
from multitask.nn._cross_stitch import CrossStitch, stitch_init
from multitask.nn._mtan import MTAN
from multitask.train import TrainConfig, fit, validation_losses

TASKS = [Task("r", "regression"), Task("c", "multiclass"), Task("img", "binary")]
SOURCE = {"r": "tab", "c": "tab", "img": "pix"}
INPUTS = {"tab": InputSpec(dim=5), "pix": InputSpec(image_shape=(2, 9, 7))}
SIZES = {"c": 4}


def _inputs(n_tab: int = 6, n_pix: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"tab": torch.randn(n_tab, 5, generator=g), "pix": torch.randn(n_pix, 2, 9, 7, generator=g)}


def _stitch(**options: object) -> CrossStitch:
    torch.manual_seed(0)
    return CrossStitch(INPUTS, TASKS, SOURCE, SIZES, **options)  # type: ignore[arg-type]


# ---- cross-stitch ------------------------------------------------------------------------------------------
def test_stitch_init_is_the_papers_convex_combination() -> None:
    alpha = stitch_init(3, 0.9)
    torch.testing.assert_close(alpha.diagonal(), torch.full((3,), 0.9))
    torch.testing.assert_close(alpha[0, 1:], torch.full((2,), 0.05))
    torch.testing.assert_close(alpha.sum(dim=1), torch.ones(3))
    torch.testing.assert_close(stitch_init(1, 0.9), torch.ones(1, 1))
    model = _stitch(hidden=[8, 4, 3])
    assert len(model.alphas()) == 3 and all(a.shape == (3, 3) for a in model.alphas())


def test_cross_stitch_forward_is_the_papers_mixing_by_hand() -> None:
    """``x̃_t = Σ_s α_ts h_s`` after every layer, column ``t`` feeds task ``t``'s head (checked by hand)."""
    model = _stitch(hidden=[8, 6])
    with torch.no_grad():
        for unit in model.units:
            unit.add_(0.2 * torch.randn_like(unit))  # a non-symmetric mixing
    x = _inputs()
    model.eval()
    out = model(x)
    a1, a2 = model.alphas()
    for source, tasks in (("tab", ["r", "c"]), ("pix", ["img"])):
        encoded = [enc[enc.source_keys[source]](x[source]) for enc in model.encoders]  # type: ignore[index]
        h1 = torch.stack(encoded, dim=1)
        mixed1 = torch.einsum("ts,nsd->ntd", a1, h1)
        h2 = torch.stack([model.layers[0][i](mixed1[:, i]) for i in range(3)], dim=1)  # type: ignore[index]
        mixed2 = torch.einsum("ts,nsd->ntd", a2, h2)
        for name in tasks:
            t = model.column[name]
            expected = model.task_heads._linear(name)(mixed2[:, t])
            expected = expected.squeeze(-1) if name != "c" else expected
            torch.testing.assert_close(out[name], expected)


def test_identity_units_make_independent_columns_and_mixing_makes_them_shared() -> None:
    """With ``α = I`` task ``r``'s loss reaches only column ``r``; with the 0.9/0.1 start it reaches every
    column: why the columns are :meth:`shared_parameters`."""
    for self_weight, others_reached in ((1.0, False), (0.9, True)):
        model = _stitch(self_weight=self_weight)
        model(_inputs())["r"].pow(2).sum().backward()
        for i, encoders in enumerate(model.encoders):
            grad = encoders.s0[0].weight.grad  # type: ignore[union-attr,index]
            reached = grad is not None and bool(grad.abs().sum() > 0)
            assert reached == (i == 0 or others_reached), (self_weight, i)
    shared = {id(p) for p in model.shared_parameters()}
    assert {id(u) for u in model.units} <= shared
    assert {id(p) for p in model.encoders.parameters()} <= shared


@pytest.mark.parametrize("empty", ["tab", "pix"])
def test_cross_stitch_per_task_sources_and_empty_sources(empty: str) -> None:
    x = _inputs(**{f"n_{empty}": 0})
    out = _stitch()(x)
    assert out["r"].shape == (x["tab"].shape[0],) and out["c"].shape == (x["tab"].shape[0], 4)
    assert out["img"].shape == (x["pix"].shape[0],)
    rep = _stitch(hidden=[8, 6]).representation(x)
    assert rep["tab"].shape == (x["tab"].shape[0], 3, 6) and rep["pix"].shape == (x["pix"].shape[0], 3, 6)


def test_cross_stitch_refuses_too_many_columns_and_bad_options() -> None:
    many = [Task(f"t{i}", "regression") for i in range(5)]
    with pytest.raises(ConfigError, match="max_columns=4"):
        CrossStitch({"x": InputSpec(dim=2)}, many, {t.name: "x" for t in many}, max_columns=4)
    CrossStitch({"x": InputSpec(dim=2)}, many, {t.name: "x" for t in many}, max_columns=5)
    for bad in (1.5, -0.1, True, float("nan")):
        with pytest.raises(ConfigError, match="self_weight"):
            _stitch(self_weight=bad)
    with pytest.raises(ConfigError, match="max_columns"):
        _stitch(max_columns=0)


# ---- MTAN --------------------------------------------------------------------------------------------------
IMG_TASKS = [Task("a", "multiclass"), Task("b", "regression"), Task("c", "binary")]
IMG_SOURCE = {"a": "x", "b": "x", "c": "y"}
IMG_INPUTS = {"x": InputSpec(image_shape=(1, 12, 12)), "y": InputSpec(image_shape=(3, 7, 9))}


def _mtan(**options: object) -> MTAN:
    torch.manual_seed(0)
    return MTAN(IMG_INPUTS, IMG_TASKS, IMG_SOURCE, {"a": 3}, **options)  # type: ignore[arg-type]


def _images(n_x: int = 4, n_y: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return {"x": torch.randn(n_x, 1, 12, 12, generator=g), "y": torch.randn(n_y, 3, 7, 9, generator=g)}


def test_mtan_representation_is_the_shared_blocks() -> None:
    rep = _mtan(channels=[4, 6, 5]).representation(_images())
    sizes = {"x": [(12, 12), (6, 6), (3, 3)], "y": [(7, 9), (4, 5), (2, 3)]}
    for source, key, n in (("x", "s0", 4), ("y", "s1", 2)):
        for b, (c, hw) in enumerate(zip([4, 6, 5], sizes[source], strict=True), start=1):
            assert rep[f"{key}.u{b}"].shape == (n, c, *hw)
            assert rep[f"{key}.p{b}"].shape == (n, c, *hw)


def _set_mask(model: MTAN, task: int, value: float) -> None:
    """Make task ``task``'s attention masks constant: ``sigmoid(value)`` everywhere."""
    with torch.no_grad():
        for h in model.attention[task].h:  # type: ignore[union-attr]
            assert isinstance(h, nn.Conv2d)
            h.weight.zero_()
            h.bias.fill_(value)  # type: ignore[union-attr]


def test_mtan_attention_masks_select_from_the_shared_features() -> None:
    """``â_B = a_B ⊙ p_B``: a mask of ones gives the head the pooled shared ``p_B``; of zeros, nothing."""
    model = _mtan(channels=[4, 6])
    model.eval()
    x = _images()
    _set_mask(model, 0, 50.0)  # a = 1: task a reads p_B itself
    _set_mask(model, 1, -50.0)  # a = 0: task b reads zeros, its output is its head's bias
    out = model(x)
    p_last = model.representation(x)["s0.p2"]
    expected = model.task_heads._linear("a")(model.readout(p_last))
    torch.testing.assert_close(out["a"], expected)
    torch.testing.assert_close(out["b"], model.task_heads._linear("b").bias.expand(4), atol=1e-6, rtol=0)
    masks = []  # the first block's mask is sigmoid(h(g(u_1))), between 0 and 1
    attention = model.attention[2]
    u1 = model.representation(x)["s1.u1"]
    masks.append(torch.sigmoid(attention.h[0](attention.g[0](u1))))  # type: ignore[index,operator]
    assert bool(((masks[0] > 0) & (masks[0] < 1)).all())


def test_mtan_task_parameters_are_its_attention_and_head() -> None:
    model = _mtan(channels=[4, 6])
    out = model(_images())
    out["b"].sum().backward()
    own = model.task_parameters()
    assert all(p.grad is None for p in own["a"]) and all(p.grad is None for p in own["c"])
    assert all(p.grad is not None for p in own["b"])
    assert {id(p) for p in model.attention[1].parameters()} <= {id(p) for p in own["b"]}
    shared = {id(p) for p in model.shared_parameters()}
    assert shared == {id(p) for p in model.encoders.parameters()}


@pytest.mark.parametrize("empty", ["x", "y"])
def test_mtan_empty_sources(empty: str) -> None:
    x = _images(**{f"n_{empty}": 0})
    out = _mtan(channels=[4, 6])(x)
    assert out["a"].shape == (x["x"].shape[0], 3) and out["b"].shape == (x["x"].shape[0],)
    assert out["c"].shape == (x["y"].shape[0],)


def test_mtan_refuses_tabular_inputs_and_bad_options() -> None:
    with pytest.raises(ConfigError, match="'tab' is not images"):
        MTAN(INPUTS, TASKS, SOURCE, SIZES)
    for bad in ([], [0, 4], [4, 2.5], 16):
        with pytest.raises(ConfigError, match="channels"):
            _mtan(channels=bad)
    with pytest.raises(ConfigError, match="pool"):
        _mtan(pool=0)


def test_mtan_learns_where_each_task_looks() -> None:
    """Task ``top`` is the sign of the top half's mean, ``bottom`` of the bottom half's: attention over shared
    maps separates them (the MultiMNIST setting in miniature)."""
    from multitask.data.arrays import Arrays

    tasks = [Task("top", "binary"), Task("bottom", "binary")]

    def halves(n: int, seed: int) -> Arrays:
        x = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
        top, bottom = x[:, 0, :4].mean(dim=(1, 2)), x[:, 0, 4:].mean(dim=(1, 2))
        targets = {"top": (top > 0).float().numpy(), "bottom": (bottom > 0).float().numpy()}
        masks = {t.name: torch.ones(n, dtype=torch.bool).numpy() for t in tasks}
        return Arrays({"s": x.numpy()}, targets, masks, {"top": "s", "bottom": "s"})

    train, valid = halves(240, 0), halves(80, 1)
    torch.manual_seed(0)
    model = MTAN({"s": InputSpec(image_shape=(1, 8, 8))}, tasks, {"top": "s", "bottom": "s"}, channels=[8, 8])
    before = validation_losses(model, tasks, valid)
    config = TrainConfig(epochs=12, batch_size=32, lr=3e-3, progress=False, patience=None, threads=1)
    after = validation_losses(fit(model, tasks, train, valid, config).model, tasks, valid)
    assert all(after[t.name] < 0.7 * before[t.name] for t in tasks), (before, after)  # type: ignore[operator]
