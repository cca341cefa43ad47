"""Streams sharded between processes: the dealing of pieces, each rank's rows, equal steps, and the fit,
validation losses and metrics equal to one process's.

The collectives are those of :class:`multitask.train.Distributed` played by threads in this process (each
thread one rank); ``tests/data/test_stream_torchrun.py`` runs the same under torchrun, with training and
resumption.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from multitask import Task
from multitask._stream_run import stream_metrics
from multitask.data.preprocess import Preprocessor
from multitask.data.reading import declare_wide
from multitask.data.sampling import Proportional, Temperature, Uniform
from multitask.data.spec import DataSpec
from multitask.data.stream_fit import fit_stream
from multitask.data.streaming import Stream, Table, deal, is_valid_row, split
from multitask.errors import ConfigError, DataError
from multitask.models._deep import Deep
from multitask.nn import HardSharing, InputSpec
from multitask.train import validation_losses
from tests.conftest import make_wide

TASKS = [Task("y1", "regression"), Task("y2", "binary"), Task("cls", "multiclass")]
N = 1200
#: row groups of unequal sizes: the ranks' shares differ
GROUPS = [300, 150, 150, 200, 100, 200, 100]


def frame() -> pd.DataFrame:
    f = make_wide(N, seed=4)
    f.insert(0, "rid", np.arange(N, dtype=np.float64))  # a feature that says which row it is
    return f


def write_uneven(path: Path, groups: list[int] = GROUPS) -> Path:
    """The table in row groups of ``groups`` rows."""
    table = pa.Table.from_pandas(frame(), preserve_index=False)
    with pq.ParquetWriter(path, table.schema) as writer:
        start = 0
        for n in groups:
            writer.write_table(table.slice(start, n))
            start += n
    return path


def spec_of(f: pd.DataFrame, where: str) -> DataSpec:
    return declare_wide(f, TASKS, None, where)


def ids(data: Any, pre: Preprocessor, rows: np.ndarray) -> np.ndarray:
    col = pre.sources["data"].columns[0]
    return np.rint(data.inputs["data"][rows, 0].astype(np.float64) * col.std + col.mean).astype(int)


@pytest.fixture
def uneven(tmp_path: Path) -> Path:
    return write_uneven(tmp_path / "uneven.parquet")


# ---- ranks played by threads --------------------------------------------------------------------------------------
class Ranks:
    """``world_size`` ranks in threads of this process, with the collectives the streams and the trainer use."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.barrier = threading.Barrier(world_size, timeout=60)
        self.slots: list[Any] = [None] * world_size

    def run(self, fn: Callable[[Rank], Any]) -> list[Any]:
        """``fn(rank)`` on every rank; their results in rank order (an error of any is raised)."""
        results: list[Any] = [None] * self.world_size

        def target(r: int) -> None:
            try:
                results[r] = fn(Rank(self, r))
            except BaseException as e:  # handed back to the test (a rank left waiting times out)
                results[r] = e

        threads = [threading.Thread(target=target, args=(r,)) for r in range(self.world_size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results


@dataclasses.dataclass
class Rank:
    ranks: Ranks
    rank: int
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))

    @property
    def world_size(self) -> int:
        return self.ranks.world_size

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def all_gather_object(self, obj: Any) -> list[Any]:
        self.ranks.slots[self.rank] = obj
        self.ranks.barrier.wait()
        out = list(self.ranks.slots)
        self.ranks.barrier.wait()
        return out

    def gather_object(self, obj: Any) -> list[Any] | None:
        out = self.all_gather_object(obj)
        return out if self.is_main else None

    def broadcast_object(self, obj: Any) -> Any:
        return self.all_gather_object(obj)[0]

    def broadcast(self, tensor: torch.Tensor) -> torch.Tensor:
        raise AssertionError("a sharded stream's validation losses are gathered, not broadcast")


# ---- dealing pieces -------------------------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 500), min_size=1, max_size=40), st.integers(1, 6), st.randoms(use_true_random=False))
def test_deal_gives_every_piece_to_one_rank_balanced_by_rows(rows: list[int], world: int, rnd: Any) -> None:
    order = list(range(len(rows)))
    rnd.shuffle(order)
    shares = deal(rows, order, world)
    assert len(shares) == world
    assert sorted(p for share in shares for p in share) == sorted(order)  # each piece exactly once
    place = {p: k for k, p in enumerate(order)}
    for share in shares:
        assert [place[p] for p in share] == sorted(place[p] for p in share)  # read in the epoch's order
    totals = [sum(rows[p] for p in share) for share in shares]
    assert max(totals) - min(totals) <= max(rows)
    assert deal(rows, order, world) == shares  # every rank computes the same dealing


def test_deal_of_equal_pieces_is_round_robin_over_the_order() -> None:
    assert deal([10] * 7, [3, 0, 6, 1, 5, 2, 4], 3) == [[3, 1, 4], [0, 5], [6, 2]]
    assert deal([300, 150, 150, 200], [0, 1, 2, 3], 2) == [[0, 2], [1, 3]]  # 450 and 350 rows
    with pytest.raises(ValueError, match="world_size"):
        deal([1], [0], 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 500), min_size=1, max_size=40), st.integers(1, 6))
def test_split_cuts_contiguous_runs(rows: list[int], world: int) -> None:
    runs = split(rows, world)
    assert [p for run in runs for p in run] == list(range(len(rows)))
    if len(rows) >= world and len(set(rows)) == 1 and rows[0] > 0:
        assert max(map(len, runs)) - min(map(len, runs)) <= 1


# ---- each rank's batches --------------------------------------------------------------------------------------------
def _shard(stream: Stream, rank: int, world: int) -> Stream:
    return dataclasses.replace(stream, rank=rank, world_size=world)


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_read_disjoint_pieces_and_cover_every_training_row_once_per_epoch(uneven: Path, world: int) -> None:
    pre, train, _ = fit_stream(Table(uneven), spec_of, 0.25, 7, 128)
    expected = np.flatnonzero(~is_valid_row(np.arange(N), 0.25, 7))
    for epoch in range(3):
        shares = [_shard(train, r, world) for r in range(world)]
        assert sorted(p for s in shares for p in s.order(epoch)) == list(range(len(GROUPS)))
        seen, natural = [], []
        for s in shares:
            mine = [i for d, r in s.batches(Proportional(), 64, epoch, 1) for i in ids(d, pre, r["data"])]
            natural.append(sum(1 for _ in s.batches(Proportional(), 64, epoch, 1)))
            rows_of_pieces = {i for p in s.order(epoch) for i in range(*_span(p))}
            assert set(mine) <= rows_of_pieces  # a rank's rows come from its own pieces
            seen.append(mine)
        everything = [i for part in seen for i in part]
        assert sorted(everything) == list(expected)  # disjoint, and every training row once
        steps = {s.steps_per_epoch(64, epoch) for s in shares}
        assert len(steps) == 1  # every rank computes the same number of steps
        assert steps.pop() == min(natural) < max(natural)  # the shares are unequal here: the smallest sets it
    # the dealing follows the epoch's shuffled order
    assert _shard(train, 0, world).order(0) != _shard(train, 0, world).order(1)


def _span(piece: int) -> tuple[int, int]:
    start = sum(GROUPS[:piece])
    return start, start + GROUPS[piece]


def test_each_rank_draws_its_part_of_the_batch(uneven: Path) -> None:
    _, train, _ = fit_stream(Table(uneven), spec_of, 0.25, 7, 128)
    for rank, size in enumerate([22, 21, 21]):
        s = _shard(train, rank, 3)
        assert s.local_batch(64) == size
        assert max(len(r["data"]) for _, r in s.batches(Uniform(), 64, 0, 1)) == size
    with pytest.raises(ConfigError, match="--batch-size 2 is smaller than the 3 processes"):
        _shard(train, 0, 3).local_batch(2)


def test_temperature_draws_with_the_counts_of_the_whole_training_part(uneven: Path) -> None:
    _, train, _ = fit_stream(Table(uneven), spec_of, 0.25, 7, 128)
    sampler = Temperature(2.0)
    window, _ = next(iter(train.batches(sampler, 64, 0, 1)))
    assert sampler.with_counts(train.labelled).probabilities(window) != sampler.probabilities(window)
    counts = np.array([train.labelled[t.name] for t in TASKS], dtype=np.float64) ** 0.5
    assert list(sampler.with_counts(train.labelled).probabilities(window).values()) == pytest.approx(
        list(counts / counts.sum()), rel=1e-12
    )


def test_a_rank_without_training_rows_is_refused(tmp_path: Path) -> None:
    two = write_uneven(tmp_path / "two.parquet", [600, 600])
    _, train, _ = fit_stream(Table(two), spec_of, 0.25, 7, 128)
    with pytest.raises(DataError, match=r"process 2 of 3 gets no labelled training rows .*--nproc_per_node"):
        _shard(train, 0, 3).steps_per_epoch(64)
    got = Ranks(3).run(lambda rank: fit_stream(Table(two), spec_of, 0.25, 7, 128, group=rank))
    for e in got:
        assert isinstance(e, DataError) and "2 of its 2 pieces (row groups, or CSV chunks) hold labelled training " \
            "rows, for 3 processes" in str(e)


# ---- the fit, the validation losses and the metrics: those of one process --------------------------------------------
@pytest.mark.parametrize("world", [2, 3])
def test_the_fit_of_processes_is_that_of_one_process(uneven: Path, tmp_path: Path, world: int) -> None:
    csv = tmp_path / "wide.csv"
    frame().to_csv(csv, index=False)
    for table in (lambda: Table(uneven), lambda: Table(csv, chunk_rows=250)):
        one_pre, one_train, one_valid = fit_stream(table(), spec_of, 0.25, 7, 128)
        got = Ranks(world).run(lambda rank, table=table: fit_stream(table(), spec_of, 0.25, 7, 128, group=rank))
        for rank, (pre, train, valid) in enumerate(got):
            assert pre.to_dict() == one_pre.to_dict()  # to the last bit
            assert (train.rank, train.world_size, valid.rank) == (rank, world, rank)
            assert train.rows == one_train.rows and valid.rows == one_valid.rows
            assert train.labelled == one_train.labelled and valid.labelled == one_valid.labelled


def test_an_error_is_that_of_one_process(tmp_path: Path) -> None:
    bad = frame()
    bad["x1"] = bad["x1"].astype(object)
    bad.loc[1000, "x1"] = "oops"  # text in a numeric column, in the last row group but one
    bad.loc[1100, "x2"] = np.inf
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(DataError) as one:
        fit_stream(Table(path, chunk_rows=200), spec_of, 0.25, 7, 128)
    got = Ranks(2).run(lambda rank: fit_stream(Table(path, chunk_rows=200), spec_of, 0.25, 7, 128, group=rank))
    assert all(isinstance(e, DataError) and str(e) == str(one.value) for e in got), got


def test_validation_losses_and_metrics_of_processes_are_those_of_one_process(uneven: Path) -> None:
    pre, train, valid = fit_stream(Table(uneven), spec_of, 0.25, 7, 128)
    torch.manual_seed(0)
    net = HardSharing(InputSpec.of_sources(pre.input_shapes()), TASKS, train.task_source, pre.output_sizes(), hidden=[16])
    model = Deep("hard-sharing")
    model.net_, model.tasks_ = net, list(TASKS)
    one_losses = validation_losses(net, TASKS, valid, batch_size=50)
    one_notes: dict[str, str] = {}
    one_metrics = stream_metrics(model, TASKS, valid, pre, one_notes)

    def on_rank(rank: Rank) -> tuple[Any, Any, Any]:
        mine = _shard(valid, rank.rank, rank.world_size)
        notes: dict[str, str] = {}
        losses = validation_losses(net, TASKS, mine, rank, batch_size=50)  # type: ignore[arg-type]
        return losses, stream_metrics(model, TASKS, mine, pre, notes, rank), notes  # type: ignore[arg-type]

    for world in (2, 3):
        for losses, metrics, notes in Ranks(world).run(on_rank):
            assert losses == one_losses  # the pieces' sums added in piece order: exactly one process's
            assert metrics == one_metrics and notes == one_notes
    assert all(v is not None for v in one_losses.values())


def test_csv_ranks_read_contiguous_runs_of_chunks_and_cover_every_training_row(tmp_path: Path) -> None:
    csv = tmp_path / "wide.csv"
    frame().to_csv(csv, index=False)
    pre, train, _ = fit_stream(Table(csv, chunk_rows=200), spec_of, 0.25, 7, 128)
    shares = [_shard(train, r, 2) for r in range(2)]
    assert [s.order(0) for s in shares] == [[0, 1, 2], [3, 4, 5]] == [s.order(1) for s in shares]
    drawn = [i for s in shares for d, r in s.batches(Proportional(), 64, 0, 1) for i in ids(d, pre, r["data"])]
    assert sorted(drawn) == list(np.flatnonzero(~is_valid_row(np.arange(N), 0.25, 7)))


def test_a_checkpoint_within_an_epoch_resumes_with_the_processes_that_wrote_it(uneven: Path) -> None:
    from multitask.train._trainer import _check_same_processes

    _, train, _ = fit_stream(Table(uneven), spec_of, 0.25, 7, 128)
    path = Path("run/checkpoint.pt")
    _check_same_processes(None, _shard(train, 0, 2), path)  # the end of an epoch: any number of processes
    _check_same_processes({"step": 3, "position": {}}, train, path)
    with pytest.raises(ConfigError, match=r"of 1 process\(es\); resume it with the same number of processes "
                                          r"\(torchrun --nproc_per_node\), not 2"):
        _check_same_processes({"step": 3, "position": {}}, _shard(train, 0, 2), path)
