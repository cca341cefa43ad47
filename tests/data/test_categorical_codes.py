"""The layout of categorical columns that a deep model embeds: positions, levels, codes of unseen levels."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from multitask.data.preprocess import Preprocessor
from multitask.data.reading import declare_wide
from multitask.errors import ConfigError
from multitask.nn import InputSpec
from multitask.nn._embedding import EmbeddingEncoder
from multitask.tasks import Task


def frame(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """Numeric ``a``, categorical ``colour`` (3 levels), numeric ``b``, categorical ``city`` with missing values."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "a": rng.normal(size=n),
        "colour": rng.choice(["red", "green", "blue"], n),
        "b": rng.normal(size=n),
        "city": rng.choice(["Oslo", "Lima", None], n),
        "y": rng.normal(size=n),
    })


def fitted(data: pd.DataFrame) -> tuple[Preprocessor, object]:
    spec = declare_wide(data, [Task("y", "regression")], path="t.csv")
    return Preprocessor.fit(spec), spec


def test_positions_and_levels_follow_the_one_hot_layout() -> None:
    pre, _ = fitted(frame())
    # a | blue green red | b | (missing) Lima Oslo: a missing value seen in training is a level of its own
    assert pre.categorical_columns("data") == [("colour", 1, 3), ("city", 5, 3)]
    assert pre.input_shapes()["data"] == 8
    with pytest.raises(ConfigError, match="unknown source 'nope'"):
        pre.categorical_columns("nope")


def test_unseen_levels_get_the_unknown_code_zero() -> None:
    pre, _ = fitted(frame().dropna())  # no missing city in training
    new = pd.DataFrame({"a": [0.0, 1.0, 2.0], "colour": ["red", "purple", "blue"], "b": [0.0, 0.0, 0.0],
                        "city": ["Lima", "Oslo", None], "y": [1.0, 2.0, 3.0]})
    spec = declare_wide(new, [Task("y", "regression")], path="new.csv")
    x = pre.transform(spec).inputs["data"]
    spec_in = InputSpec.tabular(x.shape[1], pre.categorical_columns("data"))
    codes = EmbeddingEncoder(x.shape[1], spec_in.categories, 4, "relu", "none", 0.0).codes(torch.from_numpy(x))
    # colour levels: blue=1 green=2 red=3; city: Lima=1 Oslo=2; unseen purple and missing city: 0
    assert codes.tolist() == [[3, 1], [0, 2], [1, 0]]


def test_layout_survives_the_saved_preprocessing_and_old_files_load() -> None:
    pre, _ = fitted(frame())
    again = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert again.categorical_columns("data") == pre.categorical_columns("data")
    old = {  # a preprocessing.json as written before categorical layouts were read from it
        "format": "multitask-preprocessing/1",
        "sources": {"data": {"columns": [
            {"name": "a", "kind": "numeric", "mean": 0.5, "std": 2.0, "categories": []},
            {"name": "c", "kind": "categorical", "mean": 0.0, "std": 1.0, "categories": ["x", "y"]},
        ], "image_shape": None, "image_scale": 1.0}},
        "targets": {"y": {"kind": "regression", "classes": [], "mean": 0.0, "std": 1.0}},
    }
    assert Preprocessor.from_dict(old).categorical_columns("data") == [("c", 1, 2)]


def test_sizes_apply_to_the_source_that_has_the_column() -> None:
    shapes = {"left": 5, "right": 4, "pictures": (1, 2, 2)}
    columns = {"left": [("colour", 1, 3)], "right": [("city", 0, 2)], "pictures": []}
    specs = InputSpec.of_sources(shapes, columns, {"city": 9})
    assert [(c.column, c.size) for c in specs["right"].categories] == [("city", 9)]
    assert specs["left"].categories[0].size == 3 and specs["pictures"].image_shape == (1, 2, 2)
    assert InputSpec.of_sources(shapes)["left"] == InputSpec(dim=5)  # no columns: one-hot as it is
