"""Reading tables, declaring tasks, and the saved preprocessing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multitask.data.preprocess import Preprocessor
from multitask.data.reading import TaskFile, declare_long, declare_per_task, declare_wide, read_table
from multitask.data.spec import declaration, from_declaration
from multitask.data.split import split_spec
from multitask.errors import ConfigError, DataError
from multitask.tasks import Task
from tests.conftest import make_long, make_wide


def wide_spec(frame: pd.DataFrame | None = None):  # type: ignore[no-untyped-def]
    frame = make_wide() if frame is None else frame
    tasks = [Task("y1", "regression"), Task("y2", "binary"), Task("cls", "multiclass")]
    return declare_wide(frame, tasks, path="wide.csv")


def test_read_csv_and_parquet_agree(tmp_path: Path) -> None:
    frame = make_wide(50)
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.to_parquet(tmp_path / "a.parquet")
    a, b = read_table(tmp_path / "a.csv"), read_table(tmp_path / "a.parquet")
    pd.testing.assert_frame_equal(a, b, check_dtype=False, check_exact=False)


@pytest.mark.parametrize("name", ["missing.csv", "missing.parquet"])
def test_missing_file_is_named(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataError, match=f"{name}: no such file"):
        read_table(tmp_path / name)


def test_unreadable_parquet_is_named(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"bad\.parquet: cannot be read as Parquet"):
        read_table(tmp_path / "bad.parquet")


def test_unknown_target_column_is_named() -> None:
    with pytest.raises(DataError, match=r"wide\.csv: no column 'nope'"):
        declare_wide(make_wide(), [Task("nope", "regression")], path="wide.csv")


def test_wide_encoding_masks_missing_labels_and_never_imputes() -> None:
    spec = wide_spec()
    arrays = Preprocessor.fit(spec).transform(spec)
    frame = spec.sources["data"].frame
    np.testing.assert_array_equal(arrays.masks["y1"], frame["y1"].notna().to_numpy())
    assert np.all(arrays.targets["y1"][~arrays.masks["y1"]] == 0)
    assert arrays.inputs["data"].shape == (len(frame), 5 + 3)  # 5 numeric + one-hot of 3 colours
    assert arrays.targets["cls"].dtype == np.int64
    np.testing.assert_allclose(arrays.inputs["data"][:, :5].mean(axis=0), 0, atol=1e-5)


def test_regression_targets_are_standardized_and_mapped_back() -> None:
    spec = wide_spec()
    pre = Preprocessor.fit(spec)
    arrays = pre.transform(spec)
    m = arrays.masks["y1"]
    back = pre.to_original("y1", arrays.targets["y1"][m].astype(np.float64))
    np.testing.assert_allclose(back, spec.sources["data"].frame["y1"].to_numpy()[m], rtol=1e-5, atol=1e-5)


def test_unseen_category_encodes_as_zeros() -> None:
    spec = wide_spec()
    pre = Preprocessor.fit(spec)
    other = make_wide(10, seed=1)
    other["color"] = "purple"
    arrays = pre.transform(spec.with_frames({"data": other}))
    assert np.all(arrays.inputs["data"][:, 5:] == 0)


def test_more_than_127_categories() -> None:
    frame = make_wide(400)
    frame["zip"] = [f"z{i % 200}" for i in range(len(frame))]
    spec = wide_spec(frame)
    arrays = Preprocessor.fit(spec).transform(spec)
    assert arrays.inputs["data"].shape[1] == 5 + 3 + 200
    assert np.all(arrays.inputs["data"][:, 8:].sum(axis=1) == 1)


@pytest.mark.parametrize("column", [[f"cust{i:05d}" for i in range(400)],
                                    [f"2021-{1 + i // 28 % 12:02d}-{1 + i % 28:02d} {i % 24}h" for i in range(400)]])
def test_a_column_of_nearly_unique_strings_is_refused(column: list[str]) -> None:
    """An id or a time stamp as text is not a category: one column per row, and nothing about new rows."""
    frame = make_wide(400)
    frame["key"] = column
    frame.loc[:99, "key"] = None  # missing values are not distinct values: 300 in 300 labelled rows
    with pytest.raises(DataError, match=r"wide\.csv: feature column 'key' has 300 distinct values in its 300 "
                                        r"training rows: an id, a date or free text"):
        Preprocessor.fit(wide_spec(frame))
    numbers = make_wide(400)
    numbers["x1"] = numbers["x1"].map(str)  # as read from a file where a row outside this part holds "?"
    with pytest.raises(DataError, match=r"feature column 'x1' holds numbers, but is read as text \(most "
                                        r"likely a cell that is not a number"):
        Preprocessor.fit(wide_spec(numbers))
    few = make_wide(40)
    few["key"] = [f"k{i}" for i in range(40)]  # too few rows to tell: a category
    assert Preprocessor.fit(wide_spec(few)).sources["data"].width == 5 + 3 + 40


def test_binary_with_three_classes_is_refused() -> None:
    frame = make_wide()
    frame.loc[0, "y2"] = 2
    with pytest.raises(DataError, match=r"task 'y2' \(binary\): column 'y2' has 3 classes"):
        Preprocessor.fit(wide_spec(frame))


def test_text_in_regression_target_is_refused() -> None:
    frame = make_wide()
    frame["y1"] = frame["y1"].astype(object)
    frame.loc[3, "y1"] = "abc"
    with pytest.raises(DataError, match=r"task 'y1' \(regression\): column 'y1' has non-numeric value 'abc' at row 3"):
        Preprocessor.fit(wide_spec(frame))


def test_task_without_labels_is_refused() -> None:
    frame = make_wide()
    frame["y1"] = np.nan
    with pytest.raises(DataError, match=r"task 'y1' has no labelled rows in wide\.csv"):
        Preprocessor.fit(wide_spec(frame))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_feature_is_refused(bad: float) -> None:
    frame = make_wide()
    frame.loc[7, "x2"] = bad
    with pytest.raises(DataError, match=r"wide\.csv: feature column 'x2' has (NaN|inf).* at row 7"):
        Preprocessor.fit(wide_spec(frame))


def test_an_empty_feature_column_is_named_as_empty() -> None:
    frame = make_wide()
    frame["blank"] = np.nan
    with pytest.raises(DataError, match=r"wide\.csv: feature column 'blank' is empty in every row; drop it"):
        Preprocessor.fit(wide_spec(frame))


def test_transform_needs_every_training_column() -> None:
    spec = wide_spec()
    pre = Preprocessor.fit(spec)
    other = make_wide(10).drop(columns=["x3"])
    with pytest.raises(DataError, match=r"new\.csv: no column 'x3', which the model was trained with"):
        pre.transform(spec.with_frames({"data": other}, {"data": "new.csv"}, labelled=False))


def test_json_round_trip_gives_identical_arrays() -> None:
    spec = wide_spec()
    pre = Preprocessor.fit(spec)
    again = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    a, b = pre.transform(spec), again.transform(spec)
    np.testing.assert_array_equal(a.inputs["data"], b.inputs["data"])
    for t in a.targets:
        np.testing.assert_array_equal(a.targets[t], b.targets[t])


def test_binary_string_labels_sorted_second_is_positive() -> None:
    frame = make_wide()
    frame["y2"] = np.where(frame["y2"] == 1, "yes", "no")
    spec = wide_spec(frame)
    pre = Preprocessor.fit(spec)
    assert pre.targets["y2"].classes == ["no", "yes"]
    arrays = pre.transform(spec)
    np.testing.assert_array_equal(arrays.targets["y2"], (frame["y2"] == "yes").to_numpy().astype(np.float32))


def test_multilabel_targets() -> None:
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "tags": ["a|b", "b", None, "c|a"]})
    spec = declare_wide(frame, [Task("tags", "multilabel")])
    pre = Preprocessor.fit(spec)
    arrays = pre.transform(spec)
    assert pre.targets["tags"].classes == ["a", "b", "c"]
    np.testing.assert_array_equal(arrays.masks["tags"], [True, True, False, True])
    np.testing.assert_array_equal(arrays.targets["tags"][[0, 1, 3]], [[1, 1, 0], [0, 1, 0], [1, 0, 1]])


def test_long_form_each_task_owns_its_rows() -> None:
    frame = make_long(n_tasks=3, n_per_task=20)
    spec = declare_long(frame, "group", "y")
    assert spec.task_names == ["g0", "g1", "g2"]
    assert spec.feature_columns("data") == ["a", "b", "c", "d"]
    arrays = Preprocessor.fit(spec).transform(spec)
    total = sum(arrays.masks[t].astype(int) for t in spec.task_names)
    assert np.all(total == 1)


def test_long_form_numeric_ids_in_natural_order() -> None:
    frame = pd.DataFrame({"s": [10, 2, 1, 2, 10, 1], "x": range(6), "y": np.arange(6.0)})
    assert declare_long(frame, "s", "y").task_names == ["1", "2", "10"]


def test_per_task_sources_with_images_and_tables() -> None:
    rng = np.random.default_rng(0)
    img = pd.DataFrame(rng.integers(0, 256, (30, 16)), columns=[f"p{i}" for i in range(16)])
    img["label"] = rng.integers(0, 3, 30)
    tab = pd.DataFrame({"u": rng.standard_normal(20), "v": rng.standard_normal(20), "price": rng.standard_normal(20)})
    tasks = [Task("digit", "multiclass"), Task("price", "regression")]
    files = {"digit": TaskFile("img.csv", "label", None, (1, 4, 4)), "price": TaskFile("tab.csv", "price")}
    spec = declare_per_task(tasks, files, frames={"digit": img, "price": tab})
    pre = Preprocessor.fit(spec)
    arrays = pre.transform(spec)
    assert arrays.inputs["digit"].shape == (30, 1, 4, 4)
    assert arrays.inputs["digit"].max() <= 1.0
    assert arrays.inputs["price"].shape == (20, 2)
    assert pre.input_shapes() == {"digit": (1, 4, 4), "price": 2}


def test_per_task_needs_a_file_for_every_task() -> None:
    with pytest.raises(ConfigError, match="task 'b': no data file"):
        declare_per_task([Task("a", "regression"), Task("b", "regression")], {"a": TaskFile("a.csv", "y")}, frames={})


def test_declaration_round_trip() -> None:
    spec = declare_long(make_long(), "group", "y")
    again = from_declaration(json.loads(json.dumps(declaration(spec))), {"data": make_long(seed=1)})
    assert again.task_names == spec.task_names
    assert again.task_rows["g1"] == ("group", "g1")


@settings(max_examples=25, deadline=None)
@given(fraction=st.floats(0.05, 0.6), seed=st.integers(0, 1000))
def test_split_keeps_every_task_in_both_parts(fraction: float, seed: int) -> None:
    spec = declare_long(make_long(n_tasks=5, n_per_task=12), "group", "y")
    train, valid = split_spec(spec, fraction, seed)
    n = len(spec.sources["data"].frame)
    assert len(train.sources["data"].frame) + len(valid.sources["data"].frame) == n
    for part in (train, valid):
        assert set(part.sources["data"].frame["group"]) == set(spec.task_names)


def test_split_is_deterministic() -> None:
    spec = wide_spec()
    a = split_spec(spec, 0.25, 3)[1].sources["data"].frame
    b = split_spec(spec, 0.25, 3)[1].sources["data"].frame
    pd.testing.assert_frame_equal(a, b)


def test_split_fraction_must_be_inside_0_1() -> None:
    with pytest.raises(ConfigError, match="--valid-fraction"):
        split_spec(wide_spec(), 1.0, 0)
