"""Embeddings of categorical columns: the size rule, InputSpec's description, the encoder, every architecture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from multitask import Task
from multitask.data.arrays import Arrays
from multitask.errors import ConfigError
from multitask.nn import HardSharing, InputSpec, build_model
from multitask.nn._embedding import Category, EmbeddingEncoder, embedding_size
from multitask.registry import MODELS
from multitask.train import TrainConfig, fit, load_model, save_model

#: 2 numeric features, a column of 3 levels at 2..4, 1 numeric, a column of 4 levels at 6..9
DIM = 10
COLUMNS = [("colour", 2, 3), ("city", 6, 4)]


def one_hot_rows(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rows in the layout of COLUMNS: numeric noise, and each column's code (0: all-zero block) one-hot."""
    x = rng.normal(size=(len(codes), DIM)).astype(np.float32)
    for b, (_, position, levels) in enumerate(COLUMNS):
        x[:, position : position + levels] = 0.0
        seen = codes[:, b] > 0
        x[np.flatnonzero(seen), position + codes[seen, b] - 1] = 1.0
    return x


@pytest.mark.parametrize(("levels", "size"), [(1, 2), (2, 3), (10, 6), (100, 21), (10**6, 600)])
def test_embedding_size_rule_is_fastai_with_the_unknown_code(levels: int, size: int) -> None:
    assert embedding_size(levels) == size == min(600, round(1.6 * (levels + 1) ** 0.56))


def test_per_column_size_overrides_the_rule() -> None:
    spec = InputSpec.tabular(DIM, COLUMNS, {"city": 7})
    assert [(c.column, c.size) for c in spec.categories] == [("colour", embedding_size(3)), ("city", 7)]
    encoder = EmbeddingEncoder(DIM, spec.categories, 16, "relu", "none", 0.0)
    assert [tuple(e.weight.shape) for e in encoder.embeddings] == [(4, embedding_size(3)), (5, 7)]
    first = encoder.dense[0]
    assert isinstance(first, torch.nn.Linear) and first.in_features == 3 + embedding_size(3) + 7


@pytest.mark.parametrize("sizes", [{"town": 3}, {"city": 0}, {"city": 601}, {"city": 2.5}, ["city"]])
def test_bad_embedding_sizes_name_the_option(sizes: object) -> None:
    with pytest.raises(ConfigError, match="embedding_sizes"):
        InputSpec.of_sources({"s": DIM}, {"s": COLUMNS}, sizes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("categories", "message"),
    [
        ([("a", 8, 3)], "beyond the input's 10 features"),
        ([("a", 0, 3), ("b", 2, 2)], "overlap at feature 2"),
        ([("a", 0, 2), ("a", 4, 2)], "named twice"),
        ([("a", 0, 0)], "levels must be"),
    ],
)
def test_bad_layouts_are_refused(categories: list[tuple[str, int, int]], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        InputSpec.tabular(DIM, categories)


def test_images_take_no_categories() -> None:
    with pytest.raises(ConfigError, match="tabular inputs, not images"):
        InputSpec(image_shape=(1, 4, 4), categories=(Category("a", 0, 2),))


def test_description_round_trips_through_json_and_old_descriptions_load() -> None:
    import json

    spec = InputSpec.tabular(DIM, COLUMNS, {"city": 7})
    again = InputSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.to_dict() == spec.to_dict()
    assert InputSpec.from_dict({"dim": 4}) == InputSpec(dim=4)
    assert InputSpec(dim=4).to_dict() == {"dim": 4}  # without categories: the description of before
    old = {"model": "hard-sharing", "inputs": {"x": {"dim": 4}}, "tasks": [{"name": "t", "kind": "binary"}],
           "task_source": {"t": "x"}, "output_sizes": {"t": 1}, "hidden": [8], "dropout": 0.0,
           "activation": "relu", "norm": "none"}
    model = build_model(old)
    assert "encoders.s0.0.weight" in model.state_dict()  # the weights' names of before: old model.pt files load


def test_codes_of_one_hot_blocks_and_the_unknown_level() -> None:
    spec = InputSpec.tabular(DIM, COLUMNS)
    encoder = EmbeddingEncoder(DIM, spec.categories, 8, "relu", "none", 0.0)
    codes = np.array([[1, 4], [3, 0], [0, 2], [2, 1]])
    x = torch.from_numpy(one_hot_rows(codes, np.random.default_rng(0)))
    assert encoder.codes(x).tolist() == codes.tolist()
    # the unknown level (an all-zero block) is the zero vector, which training never moves
    encoder(x).sum().backward()
    for emb in encoder.embeddings:
        assert torch.count_nonzero(emb.weight[0]) == 0
        assert emb.weight.grad is not None and torch.count_nonzero(emb.weight.grad[0]) == 0


def category_problem(n: int, seed: int) -> Arrays:
    """A binary target that only the city says: cities 1 and 3 are positive, 2 and 4 negative."""
    rng = np.random.default_rng(seed)
    codes = np.stack([rng.integers(0, 4, n), rng.integers(1, 5, n)], axis=1)
    y = np.isin(codes[:, 1], [1, 3]).astype(np.float32)
    x = one_hot_rows(codes, rng)
    return Arrays({"x": x}, {"t": y}, {"t": np.ones(n, dtype=bool)}, {"t": "x"})


def test_a_model_with_embeddings_learns_what_the_category_says(tmp_path: Path) -> None:
    tasks = [Task("t", "binary")]
    torch.manual_seed(0)
    net = HardSharing({"x": InputSpec.tabular(DIM, COLUMNS)}, tasks, {"t": "x"}, hidden=[16])
    train, valid = category_problem(512, 0), category_problem(256, 1)
    result = fit(net, tasks, train, valid, TrainConfig(epochs=30, batch_size=64, lr=1e-2, progress=False))
    model = result.model
    model.eval()
    x = torch.from_numpy(valid.inputs["x"])
    with torch.no_grad():
        p = torch.sigmoid(model({"x": x})["t"])
    accuracy = float(((p > 0.5).float().numpy() == valid.targets["t"]).mean())
    assert accuracy > 0.98
    # saved and loaded: the same description and the same predictions
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.inputs == model.inputs  # type: ignore[union-attr]
    with torch.no_grad():
        torch.testing.assert_close(torch.sigmoid(loaded({"x": x})["t"]), p, rtol=0, atol=0)


def architecture_case(name: str) -> tuple[list[Task], dict[str, int]]:
    kinds = getattr(MODELS.get(name), "task_kinds", None)
    kind = kinds[0] if kinds else "binary"
    tasks = [Task(f"t{i}", kind) for i in range(2)]
    return tasks, {t.name: 1 if kind in ("regression", "binary") else 3 for t in tasks}


@pytest.mark.parametrize("name", MODELS.names())
def test_every_architecture_takes_categorical_columns(name: str) -> None:
    if getattr(MODELS.get(name), "image_only", False):
        pytest.skip(f"{name} reads images only")
    tasks, sizes = architecture_case(name)
    spec = InputSpec.tabular(DIM, COLUMNS, {"city": 3})
    torch.manual_seed(0)
    model = MODELS.get(name)({"s": spec}, tasks, {t.name: "s" for t in tasks}, sizes)
    x = torch.from_numpy(one_hot_rows(np.array([[1, 4], [3, 0], [0, 2]]), np.random.default_rng(0)))
    model.eval()
    out = model({"s": x})
    assert all(v.shape[0] == 3 and bool(torch.isfinite(v).all()) for v in out.values())
    assert all(v.shape[0] == 0 for v in model({"s": x[:0]}).values())
    rebuilt = build_model(model.model_config())  # type: ignore[operator]
    assert rebuilt.inputs["s"] == spec  # type: ignore[index]
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    for t in tasks:
        torch.testing.assert_close(rebuilt({"s": x})[t.name], out[t.name])


def test_the_pooled_network_embeds_categorical_columns_too() -> None:
    from multitask.nn._embedding import EmbeddingEncoder
    from multitask.nn._pooled import PooledMLP

    tasks = [Task("a", "regression"), Task("b", "regression")]
    model = PooledMLP({"s": InputSpec.tabular(6, [("city", 2, 3)])}, tasks, {"a": "s", "b": "s"})
    assert isinstance(model.encoder, EmbeddingEncoder)
    assert model({"s": torch.randn(4, 6)})["a"].shape == (4,)
