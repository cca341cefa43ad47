"""Preprocessor.decode: a model's predictions as the user's columns, in the target's units and labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multitask.data.preprocess import Preprocessor
from multitask.data.reading import declare_wide
from multitask.errors import ConfigError
from multitask.tasks import KINDS, Task

FRAME = pd.DataFrame(
    {
        "x": [0.0, 1.0, 2.0, 3.0],
        "price": [10.0, 20.0, 30.0, 40.0],
        "churn": ["no", "yes", "no", "yes"],
        "size": ["S", "M", "L", "M"],
        "tags": ["a|b", "b", "c", "a|c"],
    }
)
TASKS = [Task("price", "regression"), Task("churn", "binary"), Task("size", "multiclass"), Task("tags", "multilabel")]
PRE = Preprocessor.fit(declare_wide(FRAME, TASKS, features=["x"]))


def test_regression_in_original_units() -> None:
    out = PRE.decode("price", np.array([0.0, 1.0, -1.0], dtype=np.float32))
    codec = PRE.targets["price"]
    assert list(out) == ["price"]
    np.testing.assert_allclose(out["price"], [25.0, 25.0 + codec.std, 25.0 - codec.std])
    assert out["price"].dtype == np.float64


def test_binary_is_the_positive_class_probability() -> None:
    out = PRE.decode("churn", np.array([0.25, 0.75], dtype=np.float32))
    assert list(out) == ["churn"]
    np.testing.assert_allclose(out["churn"], [0.25, 0.75])


def test_multiclass_gives_the_class_and_one_probability_per_class() -> None:
    prob = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=np.float32)  # classes L, M, S
    out = PRE.decode("size", prob)
    assert list(out) == ["size", "size:L", "size:M", "size:S"]
    assert out["size"].dtype == object
    assert out["size"].tolist() == ["L", "S"]
    np.testing.assert_allclose(out["size:S"], [0.1, 0.6], rtol=1e-6)


def test_multilabel_gives_the_label_set_and_one_probability_per_label() -> None:
    prob = np.array([[0.9, 0.5, 0.1], [0.2, 0.4, 0.3], [0.6, 0.1, 0.99]], dtype=np.float32)  # labels a, b, c
    out = PRE.decode("tags", prob)
    assert list(out) == ["tags", "tags:a", "tags:b", "tags:c"]
    assert out["tags"].dtype == object
    assert out["tags"].tolist() == ["a|b", "", "a|c"]  # 0.5 counts as chosen
    np.testing.assert_allclose(out["tags:c"], [0.1, 0.3, 0.99], rtol=1e-6)


def test_multiclass_numeric_classes_are_the_labels_given() -> None:
    frame = pd.DataFrame({"x": np.arange(6.0), "digit": [3, 7, 9, 3, 7, 9]})
    pre = Preprocessor.fit(declare_wide(frame, [Task("digit", "multiclass")]))
    out = pre.decode("digit", np.eye(3, dtype=np.float32)[[2, 0]])
    assert out["digit"].tolist() == [9, 3]
    assert list(out)[1:] == ["digit:3", "digit:7", "digit:9"]


@pytest.mark.parametrize("task", [t.name for t in TASKS])
def test_primary_column_holds_one_value_per_row(task: str) -> None:
    assert {t.kind for t in TASKS} == set(KINDS)
    n_out = PRE.output_sizes()[task]
    prediction = np.full((5, n_out), 0.5, dtype=np.float32) if n_out > 1 else np.zeros(5, dtype=np.float32)
    out = PRE.decode(task, prediction)
    assert PRE.primary_column(task) == task
    assert PRE.primary_column(task) in out
    assert all(len(v) == 5 for v in out.values())


def test_unknown_task_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        PRE.decode("nope", np.zeros(2))
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        PRE.primary_column("nope")
