"""HardSharing: output shapes per kind, empty sources, the shared/task parameter split, rebuilding."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from multitask import Task
from multitask.errors import ConfigError
from multitask.nn import ACTIVATIONS, NORMS, HardSharing, InputSpec, build_model
from multitask.train import load_model, save_model

TASKS = [
    Task("r", "regression"),
    Task("b", "binary"),
    Task("c", "multiclass"),
    Task("m", "multilabel"),
    Task("img", "multiclass"),
]
SOURCE = {"r": "tab", "b": "tab", "c": "tab", "m": "other", "img": "pix"}
INPUTS = {"tab": InputSpec(dim=6), "other": InputSpec(dim=3), "pix": InputSpec(image_shape=(2, 12, 10))}
SIZES = {"c": 4, "m": 5, "img": 3}


def _model(**kwargs: object) -> HardSharing:
    torch.manual_seed(0)
    return HardSharing(INPUTS, TASKS, SOURCE, SIZES, **kwargs)  # type: ignore[arg-type]


def _inputs(n_tab: int = 7, n_other: int = 4, n_pix: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "tab": torch.randn(n_tab, 6, generator=g),
        "other": torch.randn(n_other, 3, generator=g),
        "pix": torch.randn(n_pix, 2, 12, 10, generator=g),
    }


def test_output_shape_per_kind() -> None:
    out = _model()(_inputs())
    assert out["r"].shape == (7,) and out["b"].shape == (7,)
    assert out["c"].shape == (7, 4)
    assert out["m"].shape == (4, 5)
    assert out["img"].shape == (5, 3)
    for task in TASKS:  # the shapes the task's loss expects (tasks.py table)
        target = (
            torch.zeros(out[task.name].shape[0], dtype=torch.int64)
            if task.kind == "multiclass"
            else torch.zeros_like(out[task.name])
        )
        assert task.loss_fn(out[task.name], target).shape == (out[task.name].shape[0],)


@pytest.mark.parametrize("empty", ["tab", "other", "pix"])
def test_a_source_without_rows_still_reaches_every_parameter(empty: str) -> None:
    model = _model(norm="batch")
    model.train()
    sizes = {"n_tab": 7, "n_other": 4, "n_pix": 5}
    sizes[f"n_{empty}"] = 0
    out = model(_inputs(**sizes))
    for task, source in SOURCE.items():
        assert out[task].shape[0] == (0 if source == empty else sizes[f"n_{source}"])
    sum(o.sum() for o in out.values()).backward()  # type: ignore[union-attr]
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} is not in the graph"
        assert torch.isfinite(p.grad).all()
    for name, p in model.encoders[model.source_keys[empty]].named_parameters():
        assert torch.count_nonzero(p.grad) == 0, name


def test_shared_and_task_parameters_partition_all_parameters() -> None:
    model = _model()
    shared = [id(p) for p in model.shared_parameters()]
    per_task = model.task_parameters()
    assert list(per_task) == [t.name for t in TASKS]
    own = [id(p) for ps in per_task.values() for p in ps]
    everything = [id(p) for p in model.parameters()]
    assert len(set(shared)) == len(shared) and len(set(own)) == len(own)
    assert not set(shared) & set(own)
    assert sorted(shared + own) == sorted(everything)
    # a task's parameters only move that task's output (one-output heads are applied as one product, so
    # another task's head is in the graph with a zero gradient)
    out = model(_inputs())
    grads = torch.autograd.grad(out["r"].sum(), per_task["b"], allow_unused=True, retain_graph=True)
    assert all(g is None or not g.any() for g in grads)
    own_grads = torch.autograd.grad(out["r"].sum(), per_task["r"])
    assert all(g.any() for g in own_grads)


def test_forward_is_heads_of_representation() -> None:
    model = _model().eval()
    x = _inputs()
    rep = model.representation(x)
    assert {s: r.shape for s, r in rep.items()} == {"tab": (7, 64), "other": (4, 64), "pix": (5, 64)}
    for task, out in model.heads(rep).items():
        torch.testing.assert_close(out, model(x)[task])


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize("norm", NORMS)
def test_every_activation_and_norm(activation: str, norm: str) -> None:
    model = _model(hidden=(16, 8, 4), dropout=0.1, activation=activation, norm=norm)
    out = model(_inputs())
    assert all(torch.isfinite(o).all() for o in out.values())
    assert model.trunk[0][0].out_features == 8  # type: ignore[index]


def test_one_hidden_layer_has_no_trunk() -> None:
    model = _model(hidden=(10,))
    assert len(model.trunk) == 0
    assert model(_inputs())["c"].shape == (7, 4)


def test_model_config_rebuilds_the_same_module() -> None:
    model = _model(hidden=(12, 6), dropout=0.25, activation="gelu", norm="layer")
    config = json.loads(json.dumps(model.model_config()))  # JSON-serializable as it is
    rebuilt = build_model(config)
    assert isinstance(rebuilt, HardSharing)
    assert rebuilt.model_config() == model.model_config()
    rebuilt.load_state_dict(model.state_dict())
    x = _inputs()
    model.eval(), rebuilt.eval()
    for task, out in model(x).items():
        torch.testing.assert_close(rebuilt(x)[task], out)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"activation": "swish"}, "activation 'swish'"),
        ({"norm": "group"}, "norm 'group'"),
        ({"hidden": ()}, "hidden"),
        ({"dropout": 1.0}, "dropout"),
        ({"output_sizes": {"c": 4, "m": 5}}, "task 'img'"),
        ({"output_sizes": {**SIZES, "r": 2}}, "task 'r'"),
        ({"task_source": {**SOURCE, "b": "nowhere"}}, "task 'b': no input 'nowhere'"),
    ],
)
def test_invalid_options_name_the_option(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"inputs": INPUTS, "tasks": TASKS, "task_source": SOURCE, "output_sizes": SIZES}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        HardSharing(**args)  # type: ignore[arg-type]


def test_input_spec_needs_exactly_one_kind() -> None:
    with pytest.raises(ConfigError):
        InputSpec()
    with pytest.raises(ConfigError):
        InputSpec(dim=3, image_shape=(1, 2, 2))
    assert InputSpec.from_dict(InputSpec(image_shape=(1, 4, 4)).to_dict()) == InputSpec(image_shape=(1, 4, 4))


def test_build_model_rejects_unknown_or_incomplete_descriptions() -> None:
    with pytest.raises(ConfigError, match="unknown model 'no-such-model'"):
        build_model({"model": "no-such-model"})
    with pytest.raises(ConfigError, match="'model'"):
        build_model({})
    with pytest.raises(ConfigError, match="incomplete or invalid: missing a required argument: 'tasks'"):
        build_model({"model": "hard-sharing", "inputs": {}})
    config = _model().model_config()
    with pytest.raises(ConfigError, match="unexpected keyword argument 'hiddn'"):
        build_model({**config, "hiddn": [4]})
    with pytest.raises(ConfigError, match=r"an input is \{'dim': D\}"):
        build_model({**config, "inputs": {"tab": {"size": 3}}})
    # the optional arguments may be left out: the constructor's defaults apply
    default = build_model({k: config[k] for k in ("model", "inputs", "tasks", "task_source", "output_sizes")})
    assert isinstance(default, HardSharing) and default.hidden == (128, 64)


def test_build_model_lets_errors_inside_the_constructor_surface(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the names of the entries are checked up front: a bug while building is not "invalid"."""

    def broken(cls: type, config: dict[str, object]) -> HardSharing:
        raise TypeError("a bug")

    monkeypatch.setattr(HardSharing, "from_config", classmethod(broken))
    with pytest.raises(TypeError, match="a bug"):
        build_model(_model().model_config())


def test_duplicate_task_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="task 'r' is given twice"):
        HardSharing(INPUTS, [*TASKS, Task("r", "binary")], SOURCE, SIZES)


def test_batch_norm_takes_a_one_row_batch_in_training() -> None:
    model = _model(norm="batch").train()
    out = model(_inputs(n_tab=1, n_other=1, n_pix=1))
    assert all(o.shape[0] == 1 and torch.isfinite(o).all() for o in out.values())
    sum(o.sum() for o in out.values()).backward()  # type: ignore[union-attr]


#: names torch cannot take as module names, names that look like numbers, long and unicode names
_AWKWARD = ["income.gt50k", "a/b", "..", ".", "1.0", " ", "été à Zürich", "x" * 300, "t0", "s1", "task_heads"]
_NAMES = st.one_of(st.sampled_from(_AWKWARD), st.text(min_size=1, max_size=40))


@settings(max_examples=30, deadline=None)
@given(
    names=st.lists(_NAMES, min_size=1, max_size=4, unique=True),
    sources=st.lists(_NAMES, min_size=1, max_size=2, unique=True),
    data=st.data(),
)
def test_any_task_and_source_names_build_run_and_round_trip(
    names: list[str], sources: list[str], data: st.DataObject
) -> None:
    kinds = ["regression", "binary", "multiclass", "multilabel"]
    tasks = [Task(name, kinds[i % 4]) for i, name in enumerate(names)]
    task_source = {name: data.draw(st.sampled_from(sources)) for name in names}
    inputs = {s: InputSpec(dim=3) for s in sources}
    sizes = {t.name: 3 for t in tasks if t.kind in ("multiclass", "multilabel")}
    torch.manual_seed(0)
    model = HardSharing(inputs, tasks, task_source, sizes, hidden=(4,)).eval()
    x = {s: torch.randn(5, 3) for s in sources}
    out = model(x)
    assert list(out) == names
    assert list(model.task_parameters()) == names
    shared = {id(p) for p in model.shared_parameters()}
    own = {id(p) for ps in model.task_parameters().values() for p in ps}
    assert shared | own == {id(p) for p in model.parameters()} and not shared & own

    with tempfile.TemporaryDirectory() as run_dir:
        save_model(model, Path(run_dir))
        loaded = load_model(Path(run_dir))
    assert isinstance(loaded, HardSharing)
    assert loaded.model_config() == model.model_config()
    again = loaded(x)
    for name in names:
        torch.testing.assert_close(again[name], out[name], rtol=0, atol=0)


def test_a_version_1_state_dict_keyed_by_name_still_loads() -> None:
    """Files written before heads and encoders were keyed by position."""
    model = _model().eval()
    keys = {v: k for k, v in {**model.source_keys, **model.head_keys}.items()}
    old = {}
    for key, value in model.state_dict().items():
        parts = key.split(".", 2)
        if parts[0] in ("encoders", "task_heads"):
            parts[1] = keys[parts[1]]
        old[".".join(parts)] = value
    assert "task_heads.img.weight" in old and "encoders.pix.features.0.weight" in old
    torch.manual_seed(1)
    fresh = HardSharing(INPUTS, TASKS, SOURCE, SIZES)
    fresh.load_state_dict(fresh.state_dict_from_v1(old))
    fresh.eval()
    x = _inputs()
    for task, out in model(x).items():
        torch.testing.assert_close(fresh(x)[task], out)
