"""Task hierarchies: the declared tree (which tasks share what, refused trees, hard sharing as a special case,
CLI and YAML) and learned branching (Gumbel-softmax choice, annealing clock, argmax tree, grouping found)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from multitask import Task
from multitask.cli import main
from multitask.data.arrays import Arrays
from multitask.errors import ConfigError
from multitask.nn import HardSharing, InputSpec, build_model
from multitask.nn._branching import LearnedTree
from multitask.nn._tree import DeclaredTree, parse_tree
from multitask.train import TrainConfig, fit, load_model, save_model

TASKS = [Task("a", "regression"), Task("b", "binary"), Task("c", "multiclass"), Task("d", "regression")]
SIZES = {"c": 3}
INPUTS = {"x": InputSpec(dim=5), "y": InputSpec(dim=3)}
SOURCE = {"a": "x", "b": "x", "c": "x", "d": "y"}


def _inputs(n_x: int = 6, n_y: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {"x": torch.randn(n_x, 5, generator=g), "y": torch.randn(n_y, 3, generator=g)}


def _tree(tree: Any, hidden: tuple[int, ...] = (16, 8, 4), **options: Any) -> DeclaredTree:
    torch.manual_seed(0)
    return DeclaredTree(INPUTS, TASKS, SOURCE, SIZES, tree=tree, hidden=hidden, **options)


def _ids(params: Any) -> set[int]:
    return {id(p) for p in params}


# ---- declared tree --------------------------------------------------------------------------------------------
def test_depth_two_tree_gives_one_block_per_group_and_level() -> None:
    model = _tree([[["a", "b"], ["c"]], [["d"]]])
    assert model.depth == 2
    assert {g.key: (g.level, g.parent, g.tasks) for g in model.groups} == {
        "n0": (1, None, ("a", "b", "c")),
        "n0_0": (2, "n0", ("a", "b")),
        "n0_1": (2, "n0", ("c",)),
        "n1": (1, None, ("d",)),
        "n1_0": (2, "n1", ("d",)),
    }
    # hidden=[16, 8, 4]: the encoder (16) is the root, level 1 is 16 -> 8, level 2 is 8 -> 4
    assert len(model.trunk) == 0
    assert model.branches.get_submodule("n0.0").weight.shape == (8, 16)
    assert model.branches.get_submodule("n0_0.0").weight.shape == (4, 8)
    assert model.representation(_inputs())["x"].shape == (6, 16)


def test_parameters_shared_by_several_tasks_are_shared_and_a_group_of_one_is_its_tasks() -> None:
    model = _tree([[["a", "b"], ["c"]], [["d"]]])
    shared, own = _ids(model.shared_parameters()), {t: _ids(p) for t, p in model.task_parameters().items()}
    block = {k: _ids(m.parameters()) for k, m in model.branches.items()}
    assert block["n0"] <= shared and block["n0_0"] <= shared
    assert block["n0_1"] <= own["c"] and block["n1"] | block["n1_0"] <= own["d"]
    assert _ids(model.encoders.parameters()) <= shared
    assert not own["a"] & own["b"] and not shared & set().union(*own.values())
    assert shared | set().union(*own.values()) == _ids(model.parameters())


def test_a_tasks_loss_reaches_only_its_path_of_groups() -> None:
    model = _tree([[["a", "b"], ["c"]], [["d"]]])
    model(_inputs())["a"].sum().backward()
    touched = {k for k, m in model.branches.items() if any(p.grad is not None for p in m.parameters())}
    assert touched == {"n0", "n0_0"}


def test_a_task_named_above_the_deepest_level_gets_private_blocks_below() -> None:
    model = _tree([[["a", "b"], ["c"]], "d"])
    assert {g.key: (g.level, g.tasks) for g in model.groups if "d" in g.tasks} == {"n1": (1, ("d",)), "n1_0": (2, ("d",))}
    assert model.leaf["d"] == "n1_0"
    out = model(_inputs())
    assert out["d"].shape == (4,)


def test_a_group_output_is_its_block_on_its_parent() -> None:
    model = _tree([["a", "b", "c"], ["d"]], hidden=(16, 8)).eval()
    x = _inputs()
    root = model.representation(x)
    group = model.branches["n0"](root["x"])
    expected = model.task_heads({"d": model.branches["n1"](root["y"]), **dict.fromkeys("abc", group)})
    out = model(x)
    for t in "abcd":
        torch.testing.assert_close(out[t], expected[t], rtol=0, atol=0)


def test_no_tree_is_hard_sharing_with_the_same_weights() -> None:
    torch.manual_seed(1)
    hard = HardSharing(INPUTS, TASKS, SOURCE, SIZES, hidden=(16, 8, 4)).eval()
    tree = _tree(None).eval()
    assert tree.depth == 0 and set(tree.state_dict()) == set(hard.state_dict())
    tree.load_state_dict(hard.state_dict())
    x = _inputs()
    a, b = hard(x), tree(x)
    for t in a:
        assert torch.equal(a[t], b[t]), t


def test_one_group_of_every_task_is_hard_sharing_with_the_last_layer_moved() -> None:
    torch.manual_seed(1)
    hard = HardSharing(INPUTS, TASKS, SOURCE, SIZES, hidden=(16, 8, 4)).eval()
    tree = _tree([["a", "b", "c", "d"]]).eval()
    state = {k.replace("trunk.1.", "branches.n0."): v for k, v in hard.state_dict().items()}
    tree.load_state_dict(state)
    x = _inputs()
    a, b = hard(x), tree(x)
    for t in a:
        torch.testing.assert_close(a[t], b[t], rtol=0, atol=0)
    assert _ids(tree.branches.parameters()) <= _ids(tree.shared_parameters())


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ([["a", "b"], ["c"]], "'d' missing"),
        ([["a", "b"], ["c", "d", "a"]], "task 'a' appears twice, at tree[0][0] and tree[1][2]"),
        ([["a", "b"], ["c", "d", "e"]], "tree[1][2] is 'e', not a task of the model"),
        ([["a", "b"], [], ["c", "d"]], "the group at tree[1] is empty"),
        ([["a", "b"], ["c", 1.5], ["d"]], "the entry at tree[1][1] is 1.5"),
        ({"a": 1}, "tree must be nested lists of task names"),
        ([[[["a", "b", "c", "d"]]]], "tree has 3 level(s) of groups and needs at least 4 hidden layers"),
    ],
)
def test_invalid_trees_are_refused_naming_what_is_wrong(tree: Any, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        _tree(tree)
    assert message in str(e.value)


def test_whole_number_task_names_are_read_as_strings() -> None:
    depth, groups, leaf = parse_tree([[1, 2], [3]], ["1", "2", "3"], 2)
    assert depth == 1 and [g.tasks for g in groups] == [("1", "2"), ("3",)] and leaf == {"1": "n0", "2": "n0", "3": "n1"}


def test_the_description_keeps_the_tree_and_rebuilds_the_model() -> None:
    tree = [[["a", "b"], ["c"]], [["d"]]]
    model = _tree(tree, head="shared").eval()
    config = json.loads(json.dumps(model.model_config()))
    assert config["tree"] == tree
    rebuilt = build_model(config).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = _inputs()
    for t, v in model(x).items():
        torch.testing.assert_close(rebuilt(x)[t], v)


def test_empty_sources_give_empty_outputs() -> None:
    out = _tree([[["a", "b"], ["c", "d"]]]).eval()(_inputs(n_x=0, n_y=3))
    assert out["a"].shape == (0,) and out["c"].shape == (0, 3) and out["d"].shape == (3,)


def test_the_tree_from_the_command_line_and_a_config_file(wide_csv: Path, tmp_path: Path) -> None:
    common = ["--data", str(wide_csv), "--task", "y1:regression", "--task", "y2:binary", "--task", "cls:multiclass",
              "--model", "tree", "--epochs", "2", "--quiet", "--hidden", "16,8"]
    out = tmp_path / "cli"
    assert main(["train", *common, "--model-option", "tree=[[y1, y2], [cls]]", "--out", str(out)]) == 0
    assert json.loads((out / "model.json").read_text())["tree"] == [["y1", "y2"], ["cls"]]
    config = tmp_path / "run.yaml"
    config.write_text("model_options:\n  tree: [[y1], [y2, cls]]\n  hidden: [16, 8]\n")
    out = tmp_path / "yaml"
    assert main(["train", *common[:-2], "--config", str(config), "--out", str(out)]) == 0
    assert json.loads((out / "model.json").read_text())["tree"] == [["y1"], ["y2", "cls"]]
    assert main(["train", *common, "--model-option", "tree=[[y1, y2]]", "--out", str(tmp_path / "bad")]) == 2


# ---- learned branching --------------------------------------------------------------------------------------
def _learned(**options: Any) -> LearnedTree:
    torch.manual_seed(0)
    options = {"hidden": (16, 8, 8, 4), "branches": [2, 3], **options}
    return LearnedTree(INPUTS, TASKS, SOURCE, SIZES, **options)


def test_layers_nodes_and_parameter_partition() -> None:
    model = _learned()
    assert [len(list(layer.children())) for layer in model.layers] == [2, 3]
    assert [tuple(p.shape) for p in model.logits] == [(2, 1), (3, 2)]
    assert all(p.shape == (3,) for p in model.task_logits.values())
    own = model.task_parameters()
    assert id(model.task_logits["t0"]) in _ids(own["a"]) and _ids(model.task_nodes["t3"].parameters()) <= _ids(own["d"])
    assert _ids(model.layers.parameters()) | _ids(model.logits) <= _ids(model.shared_parameters())
    assert [len(list(layer.children())) for layer in _learned(branches=3, hidden=(16, 8, 8, 8, 4)).layers] == [3, 3, 3]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"branches": [2, 2, 2]}, "needs at least 5 hidden layers"),
        ({"branches": [2, 0]}, "branches must be a positive whole number"),
        ({"temperature": 0.0}, "temperature must be a finite number > 0"),
        ({"final_temperature": float("nan")}, "final_temperature must be"),
        ({"anneal_steps": -1}, "anneal_steps must be a whole number >= 0"),
    ],
)
def test_invalid_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _learned(**options)


def test_gumbel_softmax_draws_follow_the_categorical_distribution() -> None:
    """Gumbel-max: ``argmax_i (θ_i + g_i)`` is drawn with probability ``softmax(θ)_i``; the relaxed draw sums to 1."""
    model = _learned().train()
    probabilities = torch.tensor([0.6, 0.3, 0.1])
    logits = probabilities.log().expand(20_000, 3).contiguous()
    torch.manual_seed(0)
    z = model._choice(logits, torch.tensor(0.5))
    torch.testing.assert_close(z.sum(dim=1), torch.ones(20_000))
    frequency = torch.bincount(z.argmax(dim=1), minlength=3).float() / 20_000
    torch.testing.assert_close(frequency, probabilities, atol=0.015, rtol=0)
    assert torch.equal(model.eval()._choice(logits[:2], torch.tensor(0.5)), torch.tensor([[1.0, 0, 0], [1.0, 0, 0]]))


def test_the_temperature_anneals_with_training_forward_passes_that_build_a_graph() -> None:
    model = _learned(temperature=4.0, final_temperature=0.25, anneal_steps=10).train()
    assert model.current_temperature() == pytest.approx(4.0)
    for _ in range(5):
        model(_inputs())
    with torch.no_grad():
        model(_inputs())
    model.eval()(_inputs())
    assert int(model.steps) == 5
    assert model.current_temperature() == pytest.approx(1.0)  # 4 (1/16)^(1/2)
    model.steps.fill_(50)
    assert model.current_temperature() == pytest.approx(0.25)
    assert "steps" in model.state_dict()


def test_training_noise_comes_from_the_global_random_state_and_evaluation_is_deterministic() -> None:
    model = _learned(anneal_steps=0).train()  # the final temperature from the start
    x = _inputs()
    torch.manual_seed(5)
    first = model(x)["a"]
    torch.manual_seed(5)
    again = model(x)["a"]
    torch.manual_seed(6)
    other = model(x)["a"]
    assert torch.equal(first, again) and not torch.equal(first, other)
    model.eval()
    torch.manual_seed(1)
    e1 = model(x)
    torch.manual_seed(2)
    e2 = model(x)
    assert all(torch.equal(e1[t], e2[t]) for t in e1)


@pytest.mark.parametrize("training", [True, False])
def test_learned_tree_gives_empty_outputs_for_a_source_without_rows(training: bool) -> None:
    out = _learned().train(training)(_inputs(n_x=0, n_y=3))
    assert out["a"].shape == (0,) and out["c"].shape == (0, 3) and out["d"].shape == (3,)


def _force(model: LearnedTree, layer_parents: list[list[int]], task_parents: dict[str, int]) -> None:
    """Set the logits so that the argmax parents are the ones given."""
    with torch.no_grad():
        for logits, parents in zip(model.logits, layer_parents, strict=True):
            logits.zero_()
            logits[torch.arange(len(parents)), torch.tensor(parents)] = 1.0
        for name, parent in task_parents.items():
            model.task_logits[model.keys[name]].zero_()
            model.task_logits[model.keys[name]][parent] = 1.0


def test_learned_tree_is_the_argmax_tree_and_retrains_as_a_declared_tree_with_the_same_function() -> None:
    torch.manual_seed(0)
    model = LearnedTree(INPUTS, TASKS, SOURCE, SIZES, hidden=(16, 8, 4), branches=[3]).eval()
    _force(model, [[0, 0, 0]], {"a": 2, "b": 2, "c": 0, "d": 2})
    tree = model.learned_tree()
    assert tree == [[["c"]], [["a"], ["b"], ["d"]]]  # node 1 of layer 1 leads to no task: left out
    declared = DeclaredTree(INPUTS, TASKS, SOURCE, SIZES, tree=tree, hidden=(16, 8, 4)).eval()
    layer = model.layers.get_submodule
    keys = {"n0": layer("0.0"), "n0_0": model.task_nodes["t2"], "n1": layer("0.2"),
            "n1_0": model.task_nodes["t0"], "n1_1": model.task_nodes["t1"], "n1_2": model.task_nodes["t3"]}
    for key, module in keys.items():
        declared.branches[key].load_state_dict(module.state_dict())
    declared.encoders.load_state_dict(model.encoders.state_dict())
    declared.task_heads.load_state_dict(model.task_heads.state_dict())
    x = _inputs()
    a, b = model(x), declared(x)
    for t in a:
        torch.testing.assert_close(a[t], b[t], rtol=0, atol=0)


def test_a_loaded_model_keeps_the_tree_and_its_predictions(tmp_path: Path) -> None:
    model = _learned()
    _force(model, [[0, 0], [1, 0, 1]], {"a": 0, "b": 2, "c": 0, "d": 1})
    model.steps.fill_(7)
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert isinstance(loaded, LearnedTree)
    assert loaded.learned_tree() == model.learned_tree() == [[[["d"]]], [[["a"], ["c"]], [["b"]]]]
    assert int(loaded.steps) == 7 and not loaded.training
    x = _inputs()
    expected = model.eval()(x)
    for t, v in loaded(x).items():
        assert torch.equal(v, expected[t])


def _groups_data(n: int, seed: int) -> Arrays:
    """Tasks a0, a1 are functions of one projection of features 0-3, b0, b1 of one projection of features 4-7."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    w = np.random.default_rng(7).normal(size=(2, 4))
    pa, pb = x[:, :4] @ w[0] / 2, x[:, 4:] @ w[1] / 2
    targets = {"a0": pa, "a1": np.tanh(2 * pa), "b0": pb, "b1": np.tanh(2 * pb)}
    targets = {k: v.astype(np.float32) for k, v in targets.items()}
    return Arrays({"s": x}, targets, {k: np.ones(n, bool) for k in targets}, {k: "s" for k in targets})


@pytest.mark.parametrize("seed", [0, 1])
def test_learned_branching_groups_tasks_that_read_the_same_features(seed: int) -> None:
    """Two nodes of width 1 after the root: each can carry one projection, so a node per feature group wins."""
    tasks = [Task(k, "regression") for k in ("a0", "a1", "b0", "b1")]
    torch.manual_seed(seed)
    model = LearnedTree({"s": InputSpec(dim=8)}, tasks, {t.name: "s" for t in tasks}, hidden=[32, 1, 8],
                        branches=2, anneal_steps=300, activation="tanh")
    config = TrainConfig(epochs=30, batch_size=64, lr=1e-2, progress=False, patience=None, threads=1, seed=seed)
    result = fit(model, tasks, _groups_data(1024, 0), _groups_data(256, 1), config)
    tree = result.model.learned_tree()  # type: ignore[operator]
    assert sorted(tree) == [[["a0"], ["a1"]], [["b0"], ["b1"]]]


def test_resuming_reproduces_the_noise_and_the_temperature(tmp_path: Path) -> None:
    tasks = [Task(k, "regression") for k in ("a0", "a1", "b0", "b1")]
    train, valid = _groups_data(128, 0), _groups_data(64, 1)

    def model() -> LearnedTree:
        torch.manual_seed(0)
        return LearnedTree({"s": InputSpec(dim=8)}, tasks, {t.name: "s" for t in tasks}, hidden=[8, 4, 4], anneal_steps=10)

    config = TrainConfig(epochs=4, batch_size=32, lr=1e-2, progress=False, patience=None, threads=1)
    straight = fit(model(), tasks, train, valid, config, run_dir=tmp_path / "a").model

    def stop(epoch: int, score: float | None) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(model(), tasks, train, valid, config, run_dir=tmp_path / "b", on_epoch=stop)
    resumed = fit(model(), tasks, train, valid, config, run_dir=tmp_path / "b", resume=True).model
    a, b = straight.state_dict(), resumed.state_dict()
    assert int(a["steps"]) > 0
    for key in a:
        assert torch.equal(a[key], b[key]), key
