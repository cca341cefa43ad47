"""Streaming: pieces of Parquet and CSV files, the hash split, one-pass preprocessing, windows, resumption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from multitask import Task
from multitask.cli import main
from multitask.data.preprocess import Preprocessor
from multitask.data.reading import declare_wide
from multitask.data.sampling import Proportional, Uniform
from multitask.data.spec import DataSpec
from multitask.data.stream_fit import Moments, fit_stream
from multitask.data.streaming import Position, Stream, Table, is_valid_row
from multitask.errors import DataError
from multitask.nn import HardSharing, InputSpec
from multitask.train import TrainConfig, fit
from tests.conftest import make_wide

TASKS = [Task("y1", "regression"), Task("y2", "binary"), Task("cls", "multiclass")]
N = 1200


def _frame() -> pd.DataFrame:
    frame = make_wide(N, seed=4)
    frame.insert(0, "rid", np.arange(N, dtype=np.float64))  # a feature that says which row it is
    return frame


def _spec_of(frame: pd.DataFrame, where: str) -> DataSpec:
    return declare_wide(frame, TASKS, None, where)


@pytest.fixture
def parquet(tmp_path: Path) -> Path:
    path = tmp_path / "wide.parquet"
    pq.write_table(pa.Table.from_pandas(_frame(), preserve_index=False), path, row_group_size=150)
    return path


def _streams(path: Path, buffer: int = 256, chunk_rows: int = 150) -> tuple[Preprocessor, Stream, Stream]:
    return fit_stream(Table(path, chunk_rows=chunk_rows), _spec_of, 0.25, 7, buffer)


def _ids(arrays, pre: Preprocessor, rows: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    col = pre.sources["data"].columns[0]
    return np.rint(arrays.inputs["data"][rows, 0].astype(np.float64) * col.std + col.mean).astype(int)


def test_pieces_are_row_groups_and_csv_chunks(parquet: Path, tmp_path: Path) -> None:
    table = Table(parquet)
    assert [p.rows for p in table.pieces] == [150] * 8 and table.n_rows == N
    csv = tmp_path / "wide.csv"
    _frame().to_csv(csv, index=False)
    chunks = Table(csv, chunk_rows=500)
    assert [p.rows for p in chunks.pieces] == [500, 500, 200]
    read = pd.concat(f for _, f in chunks.read(chunks.pieces[1:]))
    assert read.index[0] == 500 and len(read) == 700


def test_one_pass_fit_equals_the_in_memory_fit_on_the_training_rows(parquet: Path) -> None:
    pre, train, valid = _streams(parquet)
    frame = _frame()
    in_valid = is_valid_row(np.arange(N), 0.25, 7)
    expected = Preprocessor.fit(_spec_of(frame.iloc[np.flatnonzero(~in_valid)], "x"))
    for got, want in zip(pre.sources["data"].columns, expected.sources["data"].columns, strict=True):
        assert (got.name, got.kind, got.categories) == (want.name, want.kind, want.categories)
        assert got.mean == pytest.approx(want.mean, rel=1e-12, abs=1e-12)
        assert got.std == pytest.approx(want.std, rel=1e-12)
    for task in ("y1", "y2", "cls"):
        got_t, want_t = pre.targets[task], expected.targets[task]
        assert got_t.classes == want_t.classes and got_t.kind == want_t.kind
        assert got_t.mean == pytest.approx(want_t.mean, rel=1e-12) and got_t.std == pytest.approx(want_t.std, rel=1e-12)
    assert train.n_rows + valid.n_rows == N  # every row is labelled by some task here
    assert valid.n_rows == int(in_valid.sum()) and 0.2 < valid.n_rows / N < 0.3


def test_moments_combine_like_numpy() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, 1000)
    m = Moments()
    for part in np.array_split(x, 7):
        m.add(part)
    assert m.mean_std("f", "c") == pytest.approx((x.mean(), x.std()), rel=1e-12)


def test_proportional_stream_yields_every_training_row_once_per_epoch_in_windows(parquet: Path) -> None:
    pre, train, _ = _streams(parquet)
    seen = []
    steps = 0
    for data, rows in train.batches(Proportional(), 64, epoch=0, seed=1):
        assert data.n_rows("data") <= 256  # one window in memory, never the table
        seen.extend(_ids(data, pre, rows["data"]))
        steps += 1
    assert steps == train.steps_per_epoch(64)
    in_valid = is_valid_row(np.arange(N), 0.25, 7)
    assert sorted(seen) == list(np.flatnonzero(~in_valid))
    again = [i for d, r in train.batches(Proportional(), 64, epoch=0, seed=1) for i in _ids(d, pre, r["data"])]
    other = [i for d, r in train.batches(Proportional(), 64, epoch=1, seed=1) for i in _ids(d, pre, r["data"])]
    assert again == seen and other != seen


def test_per_task_samplers_draw_inside_each_window(parquet: Path) -> None:
    _, train, _ = _streams(parquet)
    batches = list(train.batches(Uniform(), 30, epoch=0, seed=1))
    assert len(batches) == train.steps_per_epoch(30)
    for data, rows in batches:
        assert len(rows["data"]) == 30 and rows["data"].max() < data.n_rows("data")


def test_a_position_skips_the_windows_before_it(parquet: Path) -> None:
    pre, train, _ = _streams(parquet)
    full, positions = [], []
    for data, rows in train.batches(Proportional(), 64, epoch=2, seed=1):
        full.append(_ids(data, pre, rows["data"]).tolist())
        positions.append((train.position, train.window_step))
    k = 7
    start, skip = positions[k]
    assert start is not None and start.window >= 1
    assert Position.from_dict(start.to_dict()) == start
    rest = [_ids(d, pre, r["data"]).tolist() for d, r in train.batches(Proportional(), 64, 2, 1, start)]
    assert rest[skip - 1:] == full[k:]


def _fit(train: Stream, valid: Stream, pre: Preprocessor, run_dir: Path, sampler=None, resume=False):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = HardSharing(InputSpec.of_sources(pre.input_shapes()), TASKS, train.task_source, pre.output_sizes(), hidden=[16])
    config = TrainConfig(epochs=2, batch_size=32, patience=None, seed=5, progress=False, threads=1, checkpoint_every=5,
                         stream=True, shuffle_buffer=256)
    return fit(model, TASKS, train, valid, config, run_dir=run_dir, resume=resume, sampler=sampler)


class _Stop(Exception):
    pass


class _StopAfter:
    """Proportional sampling that fails after ``n`` batches in all (a run killed mid-epoch)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def batches(self, data, batch_size, epoch, seed):  # type: ignore[no-untyped-def]
        for rows in Proportional().batches(data, batch_size, epoch, seed):
            if self.n == 0:
                raise _Stop
            self.n -= 1
            yield rows


def test_resume_within_an_epoch_continues_from_the_saved_position(parquet: Path, tmp_path: Path) -> None:
    pre, train, valid = _streams(parquet)
    steps = train.steps_per_epoch(32)
    full = _fit(train, valid, pre, tmp_path / "full")
    stop_at = steps + 12  # within the second epoch, two steps after a checkpoint (every 5 steps)
    with pytest.raises(_Stop):
        _fit(train, valid, pre, tmp_path / "killed", sampler=_StopAfter(stop_at))
    ckpt = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["partial"]["step"] == 10
    position = Position.from_dict(ckpt["partial"]["position"])
    read: list[int] = []
    original = Table._read_row_group

    def spy(self: Table, piece):  # type: ignore[no-untyped-def]
        read.append(self.pieces.index(piece))
        return original(self, piece)

    Table._read_row_group = spy  # type: ignore[method-assign]
    try:
        resumed = _fit(train, valid, pre, tmp_path / "killed", resume=True)
    finally:
        Table._read_row_group = original  # type: ignore[method-assign]
    assert read[0] == train.order(1)[position.piece]  # reading starts at the saved piece, not before it
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert [r["train"] for r in full.history] == [r["train"] for r in resumed.history]


def test_files_with_different_schemas_are_refused_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    frame = _frame()
    pq.write_table(pa.Table.from_pandas(frame.iloc[:600], preserve_index=False), folder / "a.parquet")
    other = frame.iloc[600:].assign(x0=frame["x0"].iloc[600:].astype(str))
    pq.write_table(pa.Table.from_pandas(other, preserve_index=False), folder / "b.parquet")
    with pytest.raises(DataError, match=r"b\.parquet: its schema differs from .*a\.parquet's: column 'x0' is double"):
        Table(folder)


def _corrupt(path: Path, group: int) -> None:
    offset = pq.ParquetFile(path).metadata.row_group(group).column(1).data_page_offset
    data = bytearray(path.read_bytes())
    data[offset : offset + 40] = b"\xff" * 40
    path.write_bytes(bytes(data))


def test_a_corrupted_row_group_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pandas(_frame(), preserve_index=False), path, row_group_size=400, compression="none")
    _corrupt(path, 2)
    with pytest.raises(DataError, match=r"bad\.parquet \(row group 2\): cannot be read"):
        fit_stream(Table(path), _spec_of, 0.2, 0)


TRAIN = ["train", "--task", "y1:regression", "--task", "y2:binary", "--task", "cls:multiclass", "--quiet",
         "--stream", "--epochs", "2", "--batch-size", "64", "--shuffle-buffer", "300", "--threads", "1"]


def test_cli_bad_input_exits_2_and_writes_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pandas(_frame(), preserve_index=False), path, row_group_size=400, compression="none")
    _corrupt(path, 1)
    out = tmp_path / "run"
    assert main([*TRAIN, "--data", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"multitask: error: {path} (row group 1): cannot be read: ")
    assert not out.exists() or not any(out.iterdir())


def test_cli_streams_csv_and_the_run_evaluates_like_any_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    csv = tmp_path / "wide.csv"
    _frame().to_csv(csv, index=False)
    out = tmp_path / "run"
    assert main([*TRAIN, "--data", str(csv), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tasks"]["y2"]["auc"] > 0.8
    assert not (out / "INCOMPLETE").exists()
    assert main(["evaluate", "--run", str(out), "--data", str(csv)]) == 0
