"""Reading files: separators, repeated and nested columns; declaring tasks whose target is also a feature."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from multitask.data.preprocess import Preprocessor
from multitask.data.reading import TaskFile, declare_long, declare_per_task, declare_wide, read_table
from multitask.data.spec import DataSpec, Source
from multitask.errors import ConfigError, DataError
from multitask.tasks import Task
from tests.conftest import make_long

EXPECTED = pd.DataFrame({"x": [1.5, 2.0, -3.0], "name": ["a b", "c,d", "e"], "y": [1, 0, 1]})


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_separator_is_detected(tmp_path: Path, sep: str) -> None:
    path = tmp_path / "d.csv"
    EXPECTED.to_csv(path, sep=sep, index=False)
    pd.testing.assert_frame_equal(read_table(path), EXPECTED, check_dtype=False)


def test_semicolon_file_is_not_one_column(tmp_path: Path) -> None:
    """The file that used to be read as one column named 'x;name;y'."""
    path = tmp_path / "d.csv"
    path.write_text("x;name;y\n1.5;a;1\n2;b;0\n")
    frame = read_table(path)
    assert list(frame.columns) == ["x", "name", "y"]
    assert frame["x"].tolist() == [1.5, 2.0]


def test_separator_inside_quotes_does_not_fool_the_detection(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('x,note,y\n1,"a;b;c",0\n2,"d;e;f",1\n3,"g;h;i",0\n')
    assert list(read_table(path).columns) == ["x", "note", "y"]


def test_compressed_semicolon_file(tmp_path: Path) -> None:
    path = tmp_path / "d.csv.gz"
    with gzip.open(path, "wt") as f:
        EXPECTED.to_csv(f, sep=";", index=False)
    pd.testing.assert_frame_equal(read_table(path), EXPECTED, check_dtype=False)


def test_tsv_is_tab_separated_and_one_column_files_read(tmp_path: Path) -> None:
    (tmp_path / "d.tsv").write_text("a,b\tc\n1,2\t3\n")
    assert list(read_table(tmp_path / "d.tsv").columns) == ["a,b", "c"]
    (tmp_path / "one.csv").write_text("y\n1\n2\n")
    assert read_table(tmp_path / "one.csv")["y"].tolist() == [1, 2]


def test_explicit_separator_wins(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    path.write_text("a;b,c\n1;2,3\n4;5,6\n")
    assert list(read_table(path, sep=",").columns) == ["a;b", "c"]
    assert list(read_table(path, sep=";").columns) == ["a", "b,c"]
    (tmp_path / "t.txt").write_text("a\tb\n1\t2\n")
    assert list(read_table(tmp_path / "t.txt", sep="\\t").columns) == ["a", "b"]


def test_separator_must_be_one_character(tmp_path: Path) -> None:
    EXPECTED.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(ConfigError, match="--sep must be one character, got '::'"):
        read_table(tmp_path / "d.csv", sep="::")


@pytest.mark.parametrize("sep", [",", ";"])
def test_repeated_column_name_is_refused(tmp_path: Path, sep: str) -> None:
    path = tmp_path / "dup.csv"
    path.write_text(sep.join(["x", "y", "z", "y"]) + "\n" + sep.join("1234") + "\n")
    with pytest.raises(DataError, match=r"dup\.csv: column 'y' appears more than once in the header"):
        read_table(path)


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_a_file_not_in_utf8_is_named_with_the_fix(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes("größe,été\n1.5,2\n".encode(encoding))
    with pytest.raises(DataError, match=r"export\.csv: is not UTF-8 text \(byte 0x[0-9a-f]{2} cannot be decoded\); "
                                        r"save it as UTF-8"):
        read_table(path)


def test_repeated_parquet_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, 4])], names=["y", "y"]), path)
    with pytest.raises(DataError, match=r"dup\.parquet: column 'y' appears more than once"):
        read_table(path)


_PARQUET_FRAMES = {
    "mixed": pd.DataFrame({"a": np.arange(5, dtype=np.float32), "s": list("abcde"), "i": [1, 2, None, 4, 5],
                           "b": [True, False, None, True, False]}),
    "int-names": pd.DataFrame(np.arange(12).reshape(4, 3)),
    "index": pd.DataFrame({"a": [1.0, 2.0, 3.0]}, index=pd.Index([10, 10, 12], name="id")),
    "categorical": pd.DataFrame({"a": [1.0, 2.0, 3.0], "c": pd.Categorical(["x", "y", "x"])}, index=["r1", "r2", "r3"]),
    "dates": pd.DataFrame({"t": pd.date_range("2020-01-01", periods=3, tz="UTC"), "y": [1, 2, 3]}),
    "named-columns": pd.DataFrame({"a": [1, 2]}).rename_axis(columns="cols"),
    "range": pd.DataFrame({"a": [1, 2, 3]}, index=pd.RangeIndex(5, 8)),
}


@pytest.mark.parametrize("row_group_size", [None, 2])
@pytest.mark.parametrize("name", list(_PARQUET_FRAMES))
def test_parquet_is_read_as_pandas_reads_it(tmp_path: Path, name: str, row_group_size: int | None) -> None:
    """Read column by column, a Parquet file gives the frame of pd.read_parquet: dtypes, index, column names."""
    path = tmp_path / "d.parquet"
    frame = _PARQUET_FRAMES[name].copy()
    frame.attrs = {"source": name}
    frame.to_parquet(path, row_group_size=row_group_size)
    got, expected = read_table(path), pd.read_parquet(path)
    pd.testing.assert_frame_equal(got, expected, check_column_type=True, check_index_type=True)
    assert got.attrs == expected.attrs == {"source": name}


def test_unnamed_columns_are_not_repeats(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(",x,\n1,2,3\n")
    assert read_table(tmp_path / "d.csv")["x"].tolist() == [2]


@pytest.mark.parametrize(
    ("column", "values"),
    [("tags", [[1, 2], [3]]), ("point", [{"a": 1, "b": 2.0}, {"a": 3, "b": 4.0}])],
    ids=["list", "struct"],
)
def test_nested_parquet_column_is_refused(tmp_path: Path, column: str, values: list[object]) -> None:
    path = tmp_path / "n.parquet"
    pq.write_table(pa.table({"x": [1.0, 2.0], column: values, "y": [0.5, 1.5]}), path)
    with pytest.raises(DataError, match=rf"n\.parquet: column '{column}' holds nested values .* at row 0"):
        read_table(path)


def test_nested_cells_in_a_frame_are_refused_as_features() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "v": ["a", ["b", "c"], "d"], "y": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError, match=r"f\.csv: column 'v' holds nested values \(list at row 1\)"):
        Preprocessor.fit(declare_wide(frame, [Task("y", "regression")], path="f.csv"))


def test_long_target_cannot_be_the_task_column() -> None:
    with pytest.raises(ConfigError, match="--target 'group' is also the --task-column"):
        declare_long(make_long(), "group", "group")


@pytest.mark.parametrize(
    ("features", "message"),
    [(["a", "y"], "--features: column 'y' is the --target"),
     (["a", "group"], "--features: column 'group' is the task-id column")],
)
def test_long_features_cannot_hold_the_target_or_task_column(features: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        declare_long(make_long(), "group", "y", features=features)


def test_wide_features_cannot_hold_a_target() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "y": [0.0, 1.0]})
    with pytest.raises(ConfigError, match="--features: column 'y' is also a task target"):
        declare_wide(frame, [Task("y", "regression")], features=["x", "y"])


def test_per_task_target_cannot_be_a_feature() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "y": [0.0, 1.0]})
    with pytest.raises(ConfigError, match=r"task 't': column 'y' of t\.csv is both its target and a feature"):
        declare_per_task([Task("t", "regression")], {"t": TaskFile("t.csv", "y", ("x", "y"))}, frames={"t": frame})


def test_any_spec_refuses_a_target_among_its_features() -> None:
    frame = pd.DataFrame({"x": np.arange(4.0), "y": np.arange(4.0)})
    with pytest.raises(ConfigError, match=r"s\.csv: column 'y' is both a feature and a task target"):
        DataSpec(
            tasks=[Task("y", "regression")],
            sources={"s": Source("s", frame, ["x", "y"], path="s.csv")},
            task_source={"y": "s"},
            target_column={"y": "y"},
        )


def test_rows_of_and_labelled_rows() -> None:
    frame = pd.DataFrame({"g": ["a", "b", "a", "b"], "x": np.arange(4.0), "y": [1.0, np.nan, np.nan, 2.0]})
    spec = declare_long(frame, "g", "y")
    np.testing.assert_array_equal(spec.rows_of("a"), [True, False, True, False])
    np.testing.assert_array_equal(spec.labelled_rows("a"), [True, False, False, False])
    np.testing.assert_array_equal(spec.labelled_rows("b"), [False, False, False, True])
    unlabelled = spec.with_frames({"data": frame.drop(columns=["y"])}, labelled=False)
    np.testing.assert_array_equal(unlabelled.rows_of("b"), [False, True, False, True])
    assert not unlabelled.labelled_rows("b").any()
