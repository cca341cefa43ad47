"""Encoding parts of a table by row positions (how a run encodes its training and validation parts) gives the
arrays of encoding copies of those parts, to the last bit, also while the table is freed column by column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import multitask.data.preprocess as preprocess
from multitask.data.arrays import Arrays
from multitask.data.preprocess import Preprocessor
from multitask.data.reading import TaskFile, declare_long, declare_per_task, declare_wide
from multitask.data.spec import DataSpec
from multitask.data.split import split_rows, split_spec
from multitask.tasks import Task
from tests.conftest import make_long, make_wide


def _wide() -> DataSpec:
    frame = make_wide(300)
    frame["shade"] = pd.Categorical(np.where(frame["x1"] > 0, "dark", None), categories=["dark", "light"])
    frame["code"] = pd.Series(np.where(frame["x2"] > 0, "a", "b"), dtype="string")
    frame.loc[::7, "color"] = None
    frame["mixed"] = pd.Series([1, 1.0, "1", None][i % 4] for i in range(len(frame)))  # objects: 1 and 1.0 differ
    tasks = [Task("y1", "regression"), Task("y2", "binary"), Task("cls", "multiclass")]
    return declare_wide(frame, tasks, path="wide.csv")


def _long() -> DataSpec:
    return declare_long(make_long(), "group", "y", path="long.csv")


def _per_task(tmp_path) -> DataSpec:  # type: ignore[no-untyped-def]
    frames = {"a": make_wide(80), "b": make_wide(50, seed=2)}
    features = ("x0", "x1", "color")
    files = {"a": TaskFile("a.csv", "y1", features), "b": TaskFile("b.csv", "y2", features)}
    return declare_per_task([Task("a", "regression"), Task("b", "binary")], files, frames)


def _reference(pre: Preprocessor, spec: DataSpec) -> dict[str, np.ndarray]:
    """Features encoded row by row in the plainest way, apart from the library's code."""
    out = {}
    for name, codec in pre.sources.items():
        frame = spec.sources[name].frame
        x = np.zeros((len(frame), codec.width), dtype=np.float32)
        j = 0
        for col in codec.columns:
            if codec.image_shape is not None:
                x[:, j] = (frame[col.name].to_numpy(dtype=np.float64) / codec.image_scale).astype(np.float32)
            elif col.kind == "numeric":
                x[:, j] = ((frame[col.name].to_numpy(dtype=np.float64) - col.mean) / col.std).astype(np.float32)
            else:
                for r, v in enumerate(frame[col.name]):
                    label = "(missing)" if pd.isna(v) else str(v)
                    if label in col.categories:
                        x[r, j + col.categories.index(label)] = 1.0
            j += col.width
        out[name] = x if codec.image_shape is None else x.reshape(len(frame), *codec.image_shape)
    return out


def _images(tmp_path) -> DataSpec:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(rng.integers(0, 256, (90, 18)), columns=[f"p{i}" for i in range(18)])
    frame["label"] = rng.integers(0, 3, 90)
    files = {"digit": TaskFile("digits.csv", "label", image_shape=(2, 3, 3))}
    return declare_per_task([Task("digit", "multiclass")], files, {"digit": frame})


def _assert_same(a: Arrays, b: Arrays) -> None:
    assert a.task_source == b.task_source
    for got, expected in [(a.inputs, b.inputs), (a.targets, b.targets), (a.masks, b.masks)]:
        assert list(got) == list(expected)
        for k in got:
            assert got[k].dtype == expected[k].dtype and got[k].flags.c_contiguous
            np.testing.assert_array_equal(got[k], expected[k], strict=True)


@pytest.mark.parametrize("block_bytes", [1 << 23, 100])
@pytest.mark.parametrize("release", [False, True])
@pytest.mark.parametrize("make", [_wide, _long, _per_task, _images], ids=["wide", "long", "per-task", "images"])
def test_parts_encode_as_copies_of_the_parts(make, release: bool, block_bytes: int, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(preprocess, "_BLOCK_BYTES", block_bytes)  # 100: a block per row or few
    spec = make(tmp_path) if make in (_per_task, _images) else make()
    train, valid = split_spec(spec, 0.25, 3)
    expected = Preprocessor.fit(train)
    expected_parts = [expected.transform(train), expected.transform(valid)]

    train_rows, valid_rows = split_rows(spec, 0.25, 3)
    pre = Preprocessor.fit(spec, train_rows)
    assert pre.to_dict() == expected.to_dict()
    columns = {n: list(s.frame.columns) for n, s in spec.sources.items()}
    parts = pre.transform_parts(spec, [train_rows, valid_rows], release=release)
    for got, want, part in zip(parts, expected_parts, [train, valid], strict=True):
        _assert_same(got, want)
        for name, x in _reference(expected, part).items():
            np.testing.assert_array_equal(got.inputs[name], x, strict=True)
    for name, src in spec.sources.items():
        features = set(pre.sources[name].features)
        kept = [c for c in columns[name] if not (release and c in features)]
        assert list(src.frame.columns) == kept  # released: the feature columns are gone, the others stay


def test_transform_of_rows_is_transform_of_their_copy() -> None:
    spec = _wide()
    pre = Preprocessor.fit(spec)
    rows = {"data": np.array([5, 0, 7, 7, 299])}
    _assert_same(pre.transform(spec, rows), pre.transform(spec.with_frames({"data": spec.sources["data"].frame.iloc[rows["data"]]})))


def test_split_rows_is_split_spec() -> None:
    spec = _long()
    train, valid = split_spec(spec, 0.3, 5)
    train_rows, valid_rows = split_rows(spec, 0.3, 5)
    frame = spec.sources["data"].frame
    pd.testing.assert_frame_equal(train.sources["data"].frame, frame.iloc[train_rows["data"]])
    pd.testing.assert_frame_equal(valid.sources["data"].frame, frame.iloc[valid_rows["data"]])
    rest, _ = split_rows(spec, 0.3, 6)  # a split among some rows: positions stay those of the whole table
    sub_train, sub_valid = split_rows(spec, 0.3, 5, rest)
    inner_train, _ = split_spec(spec.with_frames({"data": frame.iloc[rest["data"]]}), 0.3, 5)
    pd.testing.assert_frame_equal(frame.iloc[sub_train["data"]], inner_train.sources["data"].frame)
    assert set(sub_train["data"]) | set(sub_valid["data"]) == set(rest["data"])


@pytest.mark.parametrize("hold_out_test", [False, True])
@pytest.mark.parametrize("with_test_file", [False, True])
def test_prepare_of_a_file_is_prepare_of_its_table(tmp_path, hold_out_test: bool, with_test_file: bool) -> None:  # type: ignore[no-untyped-def]
    """The run's parts encoded from a Parquet file freed as it is encoded are those of the same table kept."""
    from multitask.config import load_config
    from multitask.data.spec import BuiltinData
    from multitask.runs import prepare

    frame = make_wide(500)
    frame.to_parquet(tmp_path / "d.parquet")
    make_wide(60, seed=5).to_parquet(tmp_path / "t.parquet")
    options = {"data": str(tmp_path / "d.parquet"), "tasks": ["y1:regression", "y2:binary", "cls:multiclass"]}
    if with_test_file:
        options["test_data"] = str(tmp_path / "t.parquet")
    cfg = load_config(None, options)
    kept = declare_wide(frame, [Task("y1", "regression"), Task("y2", "binary"), Task("cls", "multiclass")],
                        path=str(tmp_path / "d.parquet"))
    from_file = prepare(cfg, hold_out_test=hold_out_test)
    from_table = prepare(cfg, BuiltinData("d", kept, None, "d"), hold_out_test=hold_out_test)
    assert list(kept.sources["data"].frame.columns) == list(frame.columns)  # a given table is not freed
    assert from_file.pre.to_dict() == from_table.pre.to_dict()
    assert from_file.evaluated_on == from_table.evaluated_on
    _assert_same(from_file.train, from_table.train)
    _assert_same(from_file.valid, from_table.valid)
    assert (from_file.test is None) == (from_table.test is None) == (not hold_out_test and not with_test_file)
    if from_file.test is not None and from_table.test is not None:
        _assert_same(from_file.test, from_table.test)
