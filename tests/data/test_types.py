"""Columns are what their values say, numbers stay finite, and a classification task has two classes or more."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multitask.data.preprocess import Preprocessor
from multitask.data.reading import declare_wide, read_table
from multitask.errors import DataError
from multitask.tasks import Task
from tests.conftest import make_wide

TASKS = [Task("y1", "regression"), Task("y2", "binary")]


def _fit(frame: pd.DataFrame, path: str = "d.csv", tasks: list[Task] | None = None) -> Preprocessor:
    return Preprocessor.fit(declare_wide(frame, tasks or TASKS, features=["x0", "x1", "color"], path=path))


def _strict_json(path: Path) -> object:
    def refuse(constant: str) -> float:
        raise AssertionError(f"{path} holds {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


# ---- a stray string in a numeric column ---------------------------------------------------------------------
def test_stray_string_in_a_numeric_training_column_is_an_error(tmp_path: Path) -> None:
    frame = make_wide(50)
    frame["x1"] = frame["x1"].astype(object)
    frame.loc[13, "x1"] = "unknown"
    frame.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(DataError) as e:
        _fit(read_table(tmp_path / "train.csv"), str(tmp_path / "train.csv"))
    message = str(e.value)
    for needle in ("train.csv", "feature column 'x1'", "'unknown'", "row 13", "drop the column"):
        assert needle in message, (needle, message)
    assert "\n" not in message


def test_the_same_cell_in_predict_data_is_an_error_too(tmp_path: Path) -> None:
    spec = declare_wide(make_wide(50), TASKS, features=["x0", "x1", "color"], path="train.csv")
    pre = Preprocessor.fit(spec)
    new = make_wide(10, seed=1).drop(columns=["y1", "y2"])
    new["x1"] = new["x1"].astype(object)
    new.loc[4, "x1"] = "unknown"
    with pytest.raises(DataError, match=r"new\.csv: column 'x1' has non-numeric value 'unknown' at row 4"):
        pre.transform(spec.with_frames({"data": new}, {"data": "new.csv"}, labelled=False))


@pytest.mark.parametrize(
    "values",
    [
        ["red", "green", "blue", "red"],  # strings
        ["01", "02", "10", "02"],  # strings that all look like numbers: the dtype says they are strings
        ["a", "b", "3", "4"],  # numbers are not the majority
        pd.Categorical(["1", "2", "x", "2"]),  # declared categorical
    ],
    ids=["strings", "numeric-strings", "half-numbers", "category"],
)
def test_string_columns_stay_categorical(values: object) -> None:
    frame = pd.DataFrame({"x0": [0.1, 0.2, 0.3, 0.4], "x1": [1.0, 2.0, 3.0, 4.0], "color": values,
                          "y1": [1.0, 2.0, 3.0, 4.0], "y2": [0, 1, 0, 1]})
    pre = _fit(frame)
    color = pre.sources["data"].columns[2]
    assert color.kind == "categorical"
    assert len(color.categories) == len(set(map(str, values)))  # type: ignore[call-overload]


def test_mostly_numbers_with_empty_cells_names_the_text_not_the_gap() -> None:
    frame = pd.DataFrame({"x0": [0.1, 0.2, 0.3, 0.4, 0.5], "x1": [1.0, 2.0, 3.0, 4.0, 5.0],
                          "color": ["1.5", None, "2", "n.a.", "3"], "y1": np.arange(5.0), "y2": [0, 1, 0, 1, 0]})
    with pytest.raises(DataError, match=r"d\.csv: feature column 'color' holds numbers, but 'n\.a\.' at row 3"):
        _fit(frame)


# ---- numbers stay finite -------------------------------------------------------------------------------------
def test_huge_feature_is_an_error_naming_file_column_and_row(tmp_path: Path) -> None:
    frame = make_wide(50)
    frame.loc[21, "x0"] = 1e300
    frame.to_csv(tmp_path / "big.csv", index=False)
    with pytest.raises(DataError) as e:
        _fit(read_table(tmp_path / "big.csv"), str(tmp_path / "big.csv"))
    message = str(e.value)
    for needle in ("big.csv", "feature column 'x0'", "too large to standardize", "1e+300", "row 21"):
        assert needle in message, (needle, message)


def test_huge_regression_target_is_an_error_naming_the_row() -> None:
    frame = make_wide(50)
    frame.loc[8, "y1"] = -1e300
    with pytest.raises(DataError, match=r"d\.csv: task 'y1' \(regression\): column 'y1' has values too large .* row 8"):
        _fit(frame)


def test_inf_regression_target_names_the_row() -> None:
    frame = make_wide(50)
    frame.loc[9, "y1"] = np.inf
    with pytest.raises(DataError, match=r"d\.csv: task 'y1' \(regression\): column 'y1' has inf at row 9"):
        _fit(frame)


def test_huge_value_in_new_data_is_an_error_not_an_inf_input() -> None:
    spec = declare_wide(make_wide(50), TASKS, features=["x0", "x1", "color"], path="train.csv")
    pre = Preprocessor.fit(spec)
    new = make_wide(10, seed=1)
    new.loc[6, "x0"] = 1e300
    with pytest.raises(DataError, match=r"new\.csv: feature column 'x0' has value 1e\+300 at row 6, too large"):
        pre.transform(spec.with_frames({"data": new}, {"data": "new.csv"}, labelled=False))
    new = make_wide(10, seed=1)
    new.loc[2, "y1"] = 1e300
    with pytest.raises(DataError, match=r"new\.csv: task 'y1' \(regression\): column 'y1' has value 1e\+300 at row 2"):
        pre.transform(spec.with_frames({"data": new}, {"data": "new.csv"}))


def test_infinite_class_label_is_an_error() -> None:
    frame = make_wide(50)
    frame["y2"] = frame["y2"].astype(float)
    frame.loc[5, "y2"] = np.inf
    with pytest.raises(DataError, match=r"d\.csv: task 'y2' \(binary\): column 'y2' has inf at row 5"):
        _fit(frame)


@settings(max_examples=60, deadline=None)
@given(
    column=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=2, max_size=12),
    target=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=2, max_size=12),
)
def test_saved_preprocessing_is_strict_json_and_inputs_are_finite(
    tmp_path_factory: pytest.TempPathFactory, column: list[float], target: list[float]
) -> None:
    n = min(len(column), len(target))
    frame = pd.DataFrame({"x0": column[:n], "x1": np.zeros(n), "color": "c", "y1": target[:n], "y2": np.arange(n) % 2})
    spec = declare_wide(frame, TASKS, features=["x0", "x1", "color"], path="d.csv")
    try:
        pre = Preprocessor.fit(spec)
        arrays = pre.transform(spec)
    except DataError as e:
        assert "too large to standardize" in str(e)
        return
    path = tmp_path_factory.mktemp("pre") / "preprocessing.json"
    pre.save(path)
    _strict_json(path)
    assert np.isfinite(arrays.inputs["data"]).all()
    assert np.isfinite(arrays.targets["y1"]).all()


# ---- binary tasks have two classes ---------------------------------------------------------------------------
@pytest.mark.parametrize(("values", "shown"), [([0] * 6, "0"), (["yes"] * 6, "'yes'"), ([True] * 6, "1")])
def test_binary_task_with_one_class_is_an_error(values: list[object], shown: str) -> None:
    frame = pd.DataFrame({"x0": np.arange(6.0), "x1": np.ones(6), "color": "c", "y1": np.arange(6.0), "y2": values})
    with pytest.raises(DataError) as e:
        _fit(frame)
    assert f"d.csv: task 'y2' (binary): column 'y2' has only one class, {shown}, in the training part" in str(e.value)


@pytest.mark.parametrize("values", [[0, 1, 1, 0], [False, True, True, False], [0.0, 1.0, 0.0, 1.0]])
def test_binary_zero_one_columns_keep_classes_0_1(values: list[object]) -> None:
    frame = pd.DataFrame({"x0": np.arange(4.0), "x1": np.ones(4), "color": "c", "y1": np.arange(4.0), "y2": values})
    assert _fit(frame).targets["y2"].classes == [0, 1]


def test_multiclass_with_one_class_is_an_error() -> None:
    frame = pd.DataFrame({"x0": np.arange(4.0), "x1": np.ones(4), "color": "c", "y1": np.arange(4.0), "k": "a"})
    with pytest.raises(DataError, match=r"task 'k' \(multiclass\): column 'k' has only one class, 'a'"):
        _fit(frame, tasks=[Task("k", "multiclass")])
