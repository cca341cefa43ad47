"""Training on tables larger than memory: files read piece by piece, never whole.

A :class:`Table` is one or more Parquet or CSV files read in *pieces*: a Parquet file's row groups (through
pyarrow), a CSV file's chunks of :data:`CSV_CHUNK_ROWS` rows. A folder stands for the ``.parquet``/``.pq``
(or ``.csv``) files in it, in name order. Parquet files must share one schema; a file whose schema differs,
or a row group that cannot be decoded, is a :class:`~multitask.errors.DataError` naming the file (and the
row group).

**The split.** Row ``i`` (its number over all files, in order) is a validation row when
``h(seed, i) < valid_fraction``, with ``h`` a 64-bit hash mapped to ``[0, 1)``: every row is assigned alone,
without reading the others, the same way in every pass (unlike the in-memory split, it is not stratified by
task: each task keeps ``valid_fraction`` of its rows in expectation).

**Preprocessing** is fitted in one pass over the training rows (:func:`fit_stream`): the same encodings as
:meth:`Preprocessor.fit <multitask.data.preprocess.Preprocessor.fit>` (means and standard deviations
combined chunk by chunk, categories and classes as sets).

**Batches** (:meth:`Stream.batches`): in each epoch the pieces are read in an order drawn from
``(seed, epoch)`` (Parquet; CSV files are read front to back), their labelled training rows go through a
*window* of ``shuffle_buffer`` rows, and the run's sampler (:mod:`multitask.data.sampling`) draws each
window's batches exactly as it would over an in-memory table of those rows: ``proportional`` yields every
labelled row once per epoch; ``uniform``, ``temperature`` and ``round-robin`` apply their per-task shares
inside the window. Memory holds one window and one piece, whatever the number of rows. Everything is a pure
function of ``(seed, epoch)``: a resumed run reads the same batches, and a :class:`Position` (epoch, window,
piece and offset in it) lets it start reading where the checkpoint was taken.

**Under torchrun** (a :class:`Stream` with ``world_size > 1``) each process reads only its own pieces. In
each epoch the piece order is dealt to the processes (:func:`deal`: the same on every rank, balanced by
training rows; CSV files: :func:`split` into contiguous runs, the same every epoch), each process fills its
own windows and draws ``batch_size / world_size`` rows a step (:meth:`Stream.local_batch`), and every
process takes the same number of steps, those of the smallest share (:meth:`Stream.steps_per_epoch`): the
batches past it on the larger shares are left out of that epoch (a different subset each epoch, since the
order is reshuffled). The one-pass fit, the validation losses and the metrics read contiguous runs of
pieces (:func:`split`) and combine the processes' parts in piece order, which gives what one process
computes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from multitask.data.arrays import Arrays
from multitask.data.preprocess import Preprocessor
from multitask.data.reading import _check_unique, _sniff_separator, check_flat
from multitask.data.sampling import Rows, Sampler
from multitask.data.spec import DataSpec
from multitask.errors import ConfigError, DataError

log = logging.getLogger(__name__)

_PARQUET = (".parquet", ".pq")
_CSV = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
#: rows per piece of a CSV file
CSV_CHUNK_ROWS = 65_536
#: the default window (``shuffle_buffer``) in rows
SHUFFLE_BUFFER = 65_536


# ---- files and pieces ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Piece:
    """One readable part of a file: a Parquet row group or a CSV chunk."""

    file: int  # position of the file in Table.paths
    index: int  # row group (Parquet) or chunk (CSV) number within the file
    start: int  # its first row's number within the file
    rows: int
    first: int  # its first row's number over all files


class Table:
    """Parquet or CSV files read piece by piece (:class:`Piece`); see the module docstring."""

    def __init__(self, data: str | Path, sep: str | None = None, chunk_rows: int = CSV_CHUNK_ROWS) -> None:
        self.paths = _files(Path(data))
        self.parquet = self.paths[0].name.lower().endswith(_PARQUET)
        self.chunk_rows = chunk_rows
        self.sep = sep
        self.pieces: list[Piece] = []
        if self.parquet:
            self._open_parquet()
        else:
            if sep is not None and len("\t" if sep == "\\t" else sep) != 1:
                raise ConfigError(f"--sep must be one character, got {sep!r}")
            self._seps = [
                ("\t" if sep == "\\t" else sep) if sep else ("\t" if ".tsv" in p.name.lower() else _sniff_separator(p))
                for p in self.paths
            ]
            self._count_csv()

    @property
    def n_rows(self) -> int:
        return sum(p.rows for p in self.pieces)

    def where(self, piece: Piece) -> str:
        """The piece for messages: ``file (row group 3)`` or ``file (rows 65536-131071)``."""
        path = self.paths[piece.file]
        if self.parquet:
            return f"{path} (row group {piece.index})"
        return f"{path} (rows {piece.start}-{piece.start + piece.rows - 1})"

    def columns(self) -> pd.DataFrame:
        """An empty frame with the files' columns (to declare tasks on)."""
        if self.parquet:
            import pyarrow.parquet as pq

            return pq.read_schema(self.paths[0]).empty_table().to_pandas()
        return pd.read_csv(self.paths[0], sep=self._seps[0], nrows=0)

    def read(self, pieces: list[Piece]) -> Iterator[tuple[Piece, pd.DataFrame]]:
        """Each piece's rows (index: the row number within its file), in the order given.

        CSV pieces must come in file order (a CSV file is read front to back, from the first piece asked for).
        """
        if self.parquet:
            for piece in pieces:
                yield piece, self._read_row_group(piece)
            return
        i = 0
        while i < len(pieces):
            file = pieces[i].file
            run = [pieces[i]]
            while i + len(run) < len(pieces) and pieces[i + len(run)].file == file:
                run.append(pieces[i + len(run)])
            yield from self._read_csv(run)
            i += len(run)

    # ---- Parquet -----------------------------------------------------------------------------------------------
    def _open_parquet(self) -> None:
        import pyarrow.parquet as pq

        schema = None
        first = 0
        for f, path in enumerate(self.paths):
            if not path.name.lower().endswith(_PARQUET):
                raise DataError(f"{path}: not a Parquet file, but {self.paths[0]} is; give files of one format")
            try:
                meta = pq.ParquetFile(path).metadata
                this = pq.read_schema(path)
            except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
                raise DataError(f"{path}: cannot be read as Parquet: {str(e).splitlines()[0]}") from None
            _check_unique(this.names, path)
            if schema is None:
                schema = this
            elif not this.equals(schema):
                raise DataError(f"{path}: its schema differs from {self.paths[0]}'s: {_schema_difference(schema, this)}")
            for g in range(meta.num_row_groups):
                rows = meta.row_group(g).num_rows
                start = sum(p.rows for p in self.pieces if p.file == f)
                self.pieces.append(Piece(f, g, start, rows, first))
                first += rows

    def _read_row_group(self, piece: Piece) -> pd.DataFrame:
        import pyarrow.parquet as pq

        path = self.paths[piece.file]
        try:
            frame = pq.ParquetFile(path).read_row_group(piece.index).to_pandas()
        except (OSError, ValueError) as e:
            raise DataError(f"{self.where(piece)}: cannot be read: {str(e).splitlines()[0]}") from None
        if len(frame) != piece.rows:
            raise DataError(f"{self.where(piece)}: holds {len(frame)} rows, its metadata says {piece.rows}")
        frame.index = pd.RangeIndex(piece.start, piece.start + len(frame))
        check_flat(frame, self.where(piece))
        return frame

    # ---- CSV ---------------------------------------------------------------------------------------------------
    def _count_csv(self) -> None:
        first = 0
        header = None
        for f, path in enumerate(self.paths):
            if not path.name.lower().endswith(_CSV) and path.name.lower().endswith(_PARQUET):
                raise DataError(f"{path}: a Parquet file, but {self.paths[0]} is CSV; give files of one format")
            names = list(pd.read_csv(path, sep=self._seps[f], header=None, nrows=1, dtype=str).iloc[0])
            _check_unique(names, path)
            if header is None:
                header = names
            elif names != header:
                raise DataError(f"{path}: its columns differ from {self.paths[0]}'s ({_list_difference(header, names)})")
            start = 0
            for k, chunk in enumerate(self._chunks(f, 0)):
                self.pieces.append(Piece(f, k, start, len(chunk), first))
                start += len(chunk)
                first += len(chunk)

    def _chunks(self, file: int, skip: int) -> Iterator[pd.DataFrame]:
        path = self.paths[file]
        try:
            reader = pd.read_csv(path, sep=self._seps[file], chunksize=self.chunk_rows,
                                 skiprows=range(1, skip + 1) if skip else None)
            with reader:
                yield from reader
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot be read as CSV: {str(e).splitlines()[0]}") from None

    def _read_csv(self, run: list[Piece]) -> Iterator[tuple[Piece, pd.DataFrame]]:
        wanted = {p.start: p for p in run}
        for chunk in self._chunks(run[0].file, run[0].start):
            start = run[0].start + int(chunk.index[0])
            if start > run[-1].start:
                return
            piece = wanted.get(start)
            if piece is None:
                continue
            chunk.index = pd.RangeIndex(start, start + len(chunk))
            check_flat(chunk, self.where(piece))
            yield piece, chunk


def _files(data: Path) -> list[Path]:
    if not data.exists():
        raise DataError(f"{data}: no such file or folder")
    if data.is_file():
        return [data]
    files = sorted(p for p in data.iterdir() if p.is_file() and p.name.lower().endswith(_PARQUET))
    files = files or sorted(p for p in data.iterdir() if p.is_file() and p.name.lower().endswith(_CSV))
    if not files:
        raise DataError(f"{data}: a folder with no .parquet, .pq or .csv file in it")
    return files


def _schema_difference(a: Any, b: Any) -> str:
    if a.names != b.names:
        return _list_difference(list(a.names), list(b.names))
    for name in a.names:
        if not a.field(name).type.equals(b.field(name).type):
            return f"column {name!r} is {a.field(name).type} there and {b.field(name).type} here"
    return "the metadata differs"


def _list_difference(a: list[str], b: list[str]) -> str:
    missing = [c for c in a if c not in b]
    extra = [c for c in b if c not in a]
    if missing:
        return f"column {missing[0]!r} is missing"
    if extra:
        return f"column {extra[0]!r} is extra"
    return "the columns come in another order"


# ---- the split ---------------------------------------------------------------------------------------------------
def row_hash(rows: np.ndarray, seed: int) -> np.ndarray:
    """``h(seed, i)`` in ``[0, 1)`` for each row number ``i``: splitmix64 of ``i`` mixed with the seed."""
    with np.errstate(over="ignore"):
        z = rows.astype(np.uint64) + np.uint64((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def is_valid_row(rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Which row numbers are validation rows: ``h(seed, i) < fraction``."""
    return row_hash(rows, seed) < fraction


# ---- sharding between processes ---------------------------------------------------------------------------------
class Group(Protocol):
    """The processes of a torchrun job, as the streams see them (:class:`multitask.train.Distributed`)."""

    @property
    def rank(self) -> int: ...

    @property
    def world_size(self) -> int: ...

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        ...


def deal(rows: Sequence[int], order: Sequence[int], world_size: int) -> list[list[int]]:
    """Each process's pieces: the pieces of ``order`` dealt to ``world_size`` processes, balanced by ``rows``.

    Largest first: the pieces are taken by decreasing ``rows[i]`` (ties: earlier in ``order`` first), each
    going to the process with the fewest rows so far (ties: the lowest rank), so the processes' totals differ
    by at most the largest piece's rows. Each process keeps its pieces in ``order``'s order. A pure function
    of its arguments: every rank computes every rank's share.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    place = {piece: k for k, piece in enumerate(order)}
    totals = [0] * world_size
    owner: dict[int, int] = {}
    for piece in sorted(order, key=lambda i: (-rows[i], place[i])):
        rank = min(range(world_size), key=lambda r: (totals[r], r))
        owner[piece] = rank
        totals[rank] += rows[piece]
    return [[piece for piece in order if owner[piece] == rank] for rank in range(world_size)]


def split(rows: Sequence[int], world_size: int) -> list[list[int]]:
    """Pieces ``0 … n-1`` cut into ``world_size`` contiguous runs of about equal ``rows``.

    Piece ``i`` goes to process ``⌊W · (c_i - rows_i / 2) / total⌋`` with ``c_i`` the rows up to and with it
    (its middle row's place in the total); a run can be empty when one piece spans more than a share.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    total, seen, runs = sum(rows), 0, [[] for _ in range(world_size)]  # type: int, int, list[list[int]]
    for i, n in enumerate(rows):
        middle = (seen + n / 2) / total if total else (i + 0.5) / len(rows)
        runs[min(int(world_size * middle), world_size - 1)].append(i)
        seen += n
    return runs


def _steps(rows: int, window: int, batch_size: int) -> int:
    """Batches of ``rows`` rows read in windows of ``window`` rows: ``ceil(rows / batch_size)`` per window."""
    full, rest = divmod(rows, window)
    return full * math.ceil(window / batch_size) + math.ceil(rest / batch_size)


# ---- positions in a stream --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Position:
    """Where an epoch's reading stands at the start of a window.

    ``window``: windows already read in the epoch; ``piece``: position in the epoch's piece order of the
    piece the window starts in; ``offset``: training rows of that piece already used by earlier windows.
    """

    epoch: int
    window: int = 0
    piece: int = 0
    offset: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "window": self.window, "piece": self.piece, "offset": self.offset}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Position:
        return cls(int(d["epoch"]), int(d["window"]), int(d["piece"]), int(d["offset"]))


# ---- a stream of preprocessed rows ----------------------------------------------------------------------------
@dataclass
class Stream:
    """The labelled rows of one part (``"train"``, ``"valid"``, or ``"all"`` rows) of a :class:`Table`,
    preprocessed piece by piece.

    ``spec_of(frame, where)`` declares the tasks over one piece; ``rows`` holds, per piece, how many of its
    rows belong to this part and carry a label (counted by :func:`fit_stream`).
    """

    table: Table
    spec_of: Callable[[pd.DataFrame, str], DataSpec]
    pre: Preprocessor
    part: str
    fraction: float
    seed: int
    rows: list[int]
    labelled: dict[str, int]
    task_source: dict[str, str]
    shuffle_buffer: int = SHUFFLE_BUFFER
    #: this process and the number of processes that share the pieces (see the module docstring)
    rank: int = 0
    world_size: int = 1
    #: where the window being read began, and the steps of it handed out (None between epochs)
    position: Position | None = field(default=None, repr=False)
    window_step: int = field(default=0, repr=False)

    @property
    def n_rows(self) -> int:
        return sum(self.rows)

    def n_labelled(self, task: str) -> int:
        return self.labelled[task]

    # ---- reading ---------------------------------------------------------------------------------------------
    def chunk(self, piece: Piece, frame: pd.DataFrame, labelled_only: bool = True) -> Arrays:
        """The rows of ``frame`` (piece ``piece``) in this part, preprocessed (only labelled ones by default)."""
        if self.part != "all":
            numbers = piece.first + np.arange(len(frame), dtype=np.int64)
            mine = is_valid_row(numbers, self.fraction, self.seed)
            frame = frame.iloc[np.flatnonzero(~mine if self.part == "train" else mine)]
        arrays = self.pre.transform(self.spec_of(frame, self.table.where(piece)))
        if labelled_only:
            source = next(iter(arrays.sources))
            any_label = np.zeros(arrays.n_rows(source), dtype=bool)
            for m in arrays.masks.values():
                any_label |= m
            if not any_label.all():
                arrays = arrays.subset({source: np.flatnonzero(any_label)})
        return arrays

    def chunks(self, labelled_only: bool = True) -> Iterator[Arrays]:
        """This part's rows, piece by piece in file order (for validation losses and metrics); under torchrun
        this process's run of pieces (:meth:`evaluated`)."""
        for _, chunk in self.numbered_chunks(labelled_only):
            yield chunk

    def numbered_chunks(self, labelled_only: bool = True) -> Iterator[tuple[int, Arrays]]:
        """``(piece number, its rows)`` of :meth:`chunks`, so that the processes' parts can be put in order."""
        mine = self.evaluated()
        for i, (piece, frame) in zip(mine, self.table.read([self.table.pieces[i] for i in mine]), strict=True):
            yield i, self.chunk(piece, frame, labelled_only)

    def evaluated(self) -> list[int]:
        """The pieces this process reads for validation and metrics: all of them, or its contiguous run of
        them under torchrun (:func:`split` by rows)."""
        return split([p.rows for p in self.table.pieces], self.world_size)[self.rank]

    def _epoch_order(self, epoch: int) -> list[int]:
        n = len(self.table.pieces)
        if not self.table.parquet:
            return list(range(n))
        return [int(i) for i in np.random.default_rng([self.seed, epoch, 0x5EED]).permutation(n)]

    def shares(self, epoch: int) -> list[list[int]]:
        """Every process's pieces in ``epoch``, in its reading order: the epoch's order dealt by
        :func:`deal` (Parquet) or cut by :func:`split` (CSV), balanced by this part's rows."""
        order = self._epoch_order(epoch)
        if self.world_size == 1:
            return [order]
        if not self.table.parquet:
            return split(self.rows, self.world_size)
        return deal(self.rows, order, self.world_size)

    def order(self, epoch: int) -> list[int]:
        """This process's piece order in ``epoch`` (indices into ``table.pieces``): drawn from ``(seed, epoch)``
        for Parquet (then dealt between processes under torchrun)."""
        return self.shares(epoch)[self.rank]

    def local_batch(self, batch_size: int, rank: int | None = None) -> int:
        """Rows a step of process ``rank`` (default: this one) draws: ``batch_size`` split between processes."""
        rank = self.rank if rank is None else rank
        if batch_size < self.world_size:
            raise ConfigError(
                f"--batch-size {batch_size} is smaller than the {self.world_size} processes: each process draws "
                "its own rows of every step under torchrun --stream; give a batch size of at least the processes"
            )
        return batch_size // self.world_size + (rank < batch_size % self.world_size)

    def steps_per_epoch(self, batch_size: int, epoch: int = 0) -> int:
        """Batches per epoch: ``ceil(rows / batch_size)`` for each window; under torchrun the fewest of any
        process (every process takes that many steps)."""
        if self.world_size == 1:
            return _steps(self.n_rows, self.shuffle_buffer, batch_size)
        shares = self.shares(epoch)
        totals = [sum(self.rows[i] for i in share) for share in shares]
        if min(totals) == 0:
            empty = totals.index(0)
            raise DataError(
                f"{self.table.paths[0]}: process {empty} of {self.world_size} gets no labelled training rows in "
                f"epoch {epoch + 1} ({len(self.table.pieces)} pieces in all): under torchrun --stream each process "
                "reads its own row groups; write the data in more, smaller row groups (or files), or start fewer "
                "processes (--nproc_per_node)"
            )
        return min(
            _steps(total, self.shuffle_buffer, self.local_batch(batch_size, rank)) for rank, total in enumerate(totals)
        )

    def batches(
        self, sampler: Sampler, batch_size: int, epoch: int, seed: int, start: Position | None = None
    ) -> Iterator[tuple[Arrays, Rows]]:
        """``(window, rows)`` for each step of the epoch; ``self.position`` is where the current window began.

        ``start`` (a :class:`Position` of this epoch) skips the windows before it without reading their pieces.
        Under torchrun: this process's pieces (:meth:`order`) and :meth:`local_batch` rows a step, to the end of
        its share; the trainer stops every process at :meth:`steps_per_epoch`.
        """
        order = self.order(epoch)
        batch_size = self.local_batch(batch_size)
        with_counts = getattr(sampler, "with_counts", None)
        if self.world_size > 1 and callable(with_counts):
            sampler = with_counts(self.labelled)  # the same task shares on every process: the global counts
        position = start if start is not None else Position(epoch)
        if position.epoch != epoch:
            raise ValueError(f"position of epoch {position.epoch} given for epoch {epoch}")
        window, parts, held = position.window, [], 0
        begin = (position.piece, position.offset)  # where the window being filled began
        pos, offset = position.piece, position.offset
        wanted = [self.table.pieces[i] for i in order[position.piece :]]
        for piece, frame in self.table.read(wanted):
            rows = self.chunk(piece, frame)
            if offset:
                rows = _tail(rows, offset)
            while held + _n(rows) >= self.shuffle_buffer:
                take = self.shuffle_buffer - held
                parts.append(_head(rows, take))
                rows, offset = _tail(rows, take), offset + take
                self.position = Position(epoch, window, *begin)
                yield from self._window(_concat(parts), sampler, batch_size, epoch, seed, window)
                window, parts, held, begin = window + 1, [], 0, (pos, offset)
            if _n(rows):
                parts.append(rows)
                held += _n(rows)
            pos, offset = pos + 1, 0
            if not held:
                begin = (pos, 0)
        if held:
            self.position = Position(epoch, window, *begin)
            yield from self._window(_concat(parts), sampler, batch_size, epoch, seed, window)
        self.position = None

    def _window(
        self, data: Arrays, sampler: Sampler, batch_size: int, epoch: int, seed: int, window: int
    ) -> Iterator[tuple[Arrays, Rows]]:
        mine = [self.rank] if self.world_size > 1 else []  # each process's windows draw apart
        salt = int(np.random.SeedSequence([seed, epoch, window, *mine]).generate_state(1)[0])
        self.window_step = 0
        for rows in sampler.batches(data, batch_size, epoch, salt):
            self.window_step += 1  # the steps of this window handed out so far
            yield data, rows


def _n(a: Arrays) -> int:
    return a.n_rows(next(iter(a.sources)))


def _head(a: Arrays, k: int) -> Arrays:
    return a.subset({s: np.arange(min(k, a.n_rows(s))) for s in a.sources})


def _tail(a: Arrays, k: int) -> Arrays:
    return a.subset({s: np.arange(min(k, a.n_rows(s)), a.n_rows(s)) for s in a.sources})


def _concat(parts: list[Arrays]) -> Arrays:
    if len(parts) == 1:
        return parts[0]
    return Arrays(
        inputs={s: np.concatenate([p.inputs[s] for p in parts]) for s in parts[0].inputs},
        targets={t: np.concatenate([p.targets[t] for p in parts]) for t in parts[0].targets},
        masks={t: np.concatenate([p.masks[t] for p in parts]) for t in parts[0].masks},
        task_source=dict(parts[0].task_source),
    )

