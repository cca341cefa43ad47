"""The loss of every linear formulation summed on Apache Spark's executors; the solver stays on the driver.

:class:`SparkBackend` answers the :class:`~multitask.linear._backend.Backend` protocol over an RDD of
blocks (a few thousand rows each, NumPy arrays): each evaluation is one Spark job whose partitions return
``(loss, ∇W, ∇b)`` of their rows, summed with ``treeAggregate``. The proximal step, the formulations and the
one FISTA are those of the in-memory fit. Squared-loss tasks need no job at all after the first pass:
:func:`fit_spark` sums, per task, ``G_t = A_tᵀA_t``, ``A_tᵀy_t`` and ``||y_t||²`` (``A_t = [X_t, 1]``) over
the data once, and their loss is the quadratic form of these sufficient statistics.

    table = SparkTable.long(df, features=["x1", "x2"], target="y", task_column="school")
    fit_spark(Lasso(alpha=0.01), table)   # then predict in memory, or on Spark (multitask predict --engine spark)

Passes over the data: one for the statistics (task counts, classes, the feature means, the Gram matrices),
then one per loss evaluation for the tasks whose loss is not squared (none when every task is squared);
:attr:`SparkBackend.passes` counts them. With a working set (:mod:`multitask.linear._working_set`), the
inner solves run on :meth:`SparkBackend.restrict`: jobs over the working set's columns only, persisted once
per working set, counted apart (:attr:`SparkBackend.restricted_passes`); only the checks of optimality
between working sets are full passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from multitask.errors import DataError
from multitask.linear._backend import _GRAM_MAX_FEATURES, Centered, Curvature, _BatchedGram
from multitask.linear._data import SMOOTHING, resolve_losses
from multitask.linear._losses import LOSSES, Loss

if TYPE_CHECKING:
    from multitask.data._spark import SparkTable
    from multitask.linear._base import LinearMTL

Array = NDArray[np.float64]
Block = dict[str, Any]


# ---- the statistics pass ----------------------------------------------------------------------------------
@dataclass
class TaskStats:
    """One task's sums over its labelled rows: count, targets, distinct values (up to 3), Gram statistics."""

    count: int = 0
    sum_y: float = 0.0
    values: set[float] = field(default_factory=set)
    gram: Array | None = None  # A_tᵀA_t, A_t = [X_t, 1]
    cross: Array | None = None  # A_tᵀy_t
    yy: float = 0.0
    nonfinite_y: int = 0

    def add(self, other: TaskStats) -> TaskStats:
        self.count += other.count
        self.sum_y += other.sum_y
        self.values |= other.values
        if len(self.values) > 3:
            self.values = set(sorted(self.values)[:3])
        self.nonfinite_y += other.nonfinite_y
        self.yy += other.yy
        if other.gram is not None:
            self.gram = other.gram if self.gram is None else self.gram + other.gram
            self.cross = other.cross if self.cross is None or other.cross is None else self.cross + other.cross
        return self


@dataclass
class TableStats:
    """Sums over every row: row count, feature sums, non-finite features per column, null task ids; per task."""

    rows: int = 0
    sum_x: Array | None = None
    nonfinite_x: NDArray[np.int64] | None = None
    null_tasks: int = 0
    tasks: dict[Any, TaskStats] = field(default_factory=dict)

    def add(self, other: TableStats) -> TableStats:
        self.rows += other.rows
        self.null_tasks += other.null_tasks
        if other.sum_x is not None:
            self.sum_x = other.sum_x if self.sum_x is None else self.sum_x + other.sum_x
            assert other.nonfinite_x is not None
            self.nonfinite_x = other.nonfinite_x if self.nonfinite_x is None else self.nonfinite_x + other.nonfinite_x
        for label, s in other.tasks.items():
            self.tasks[label] = self.tasks[label].add(s) if label in self.tasks else s
        return self


def _task_stats(X: Array, y: Array, gram: bool, A: Array | None = None, full: Array | None = None) -> TaskStats:
    """Sums over the labelled rows (``y`` not NaN) of one task; ``A``/``full``: ``[X, 1]`` and its Gram if known."""
    infinite = np.isinf(y)
    labelled = ~np.isnan(y) & ~infinite
    s = TaskStats(count=int(labelled.sum()), nonfinite_y=int(infinite.sum()))
    if not labelled.all():
        X, y, A, full = X[labelled], y[labelled], None, None
    s.sum_y = float(y.sum())
    s.values = set(np.unique(y)[:3].tolist())
    if gram:
        A = A if A is not None else np.hstack([X, np.ones((len(X), 1))])
        s.gram = full if full is not None else A.T @ A
        s.cross, s.yy = A.T @ y, float(y @ y)
    return s


def block_stats(block: Block, gram: bool) -> TableStats:
    """The statistics of one block (long: ``task``, ``X``, ``y``; wide: ``X``, ``Y`` with NaN = missing)."""
    X = block["X"]
    out = TableStats(rows=len(X), sum_x=X.sum(axis=0), nonfinite_x=(~np.isfinite(X)).sum(axis=0).astype(np.int64))
    if "Y" in block:
        Y = block["Y"]
        A = np.hstack([X, np.ones((len(X), 1))]) if gram else None
        full = A.T @ A if A is not None else None
        for j in range(Y.shape[1]):
            out.tasks[j] = _task_stats(X, Y[:, j], gram, A, full)
        return out
    task, y = block["task"], block["y"]
    present = block["task_valid"]
    out.null_tasks = int((~present).sum())
    if not present.all():
        task, X, y = task[present], X[present], y[present]
    labels, inverse = np.unique(task, return_inverse=True)
    for k, label in enumerate(labels.tolist()):
        rows = inverse == k
        out.tasks[label] = _task_stats(X[rows], y[rows], gram)
    return out


# ---- the blocks the distributed loss is evaluated on -------------------------------------------------------
@dataclass(frozen=True)
class _Indexing:
    """How raw blocks become evaluation blocks: distributed tasks' local index and target encoding."""

    lookup: dict[Any, int]  # raw task label (long) or column (wide) -> local index
    scale: Array  # encoded y = scale * y + shift (classes to 0/1; one-class smoothing)
    shift: Array
    loss_names: tuple[str, ...]  # per local task


def index_block(block: Block, ix: _Indexing) -> Block:
    """Keep the labelled rows of distributed tasks, with local task indices and encoded targets."""
    X = block["X"]
    if "Y" in block:
        columns = sorted(ix.lookup, key=ix.lookup.__getitem__)
        Y = block["Y"][:, columns]
        mask = np.isfinite(Y)
        keep = mask.any(axis=1)
        Y = np.where(mask, Y * ix.scale + ix.shift, 0.0)[keep]
        return {"X": X[keep], "Y": Y, "mask": mask[keep]}
    known = np.fromiter((ix.lookup.get(t, -1) for t in block["task"].tolist()), dtype=np.intp, count=len(X))
    keep = block["task_valid"] & (known >= 0) & np.isfinite(block["y"])
    order = np.flatnonzero(keep)
    order = order[np.argsort(known[order], kind="stable")]
    task = known[order]
    y = block["y"][order] * ix.scale[task] + ix.shift[task]
    tasks, starts = np.unique(task, return_index=True)
    names = np.array(ix.loss_names)[task] if len(task) else np.array([], dtype=str)
    by_loss = {name: np.flatnonzero(names == name) for name in set(names.tolist())}
    return {"X": X[order], "y": y, "task": task, "tasks": tasks, "starts": starts, "by_loss": by_loss}


def evaluate_block(block: Block, W: Array, b: Array, inv_count: Array, loss_names: tuple[str, ...],
                   grad: bool) -> tuple[float, Array, Array]:
    """``(sum of weighted losses, ∇W, ∇b)`` of one evaluation block (zeros where a task has no rows)."""
    X = block["X"]
    gW, gb = np.zeros_like(W), np.zeros_like(b)
    value = 0.0
    if len(X) == 0:
        return value, gW, gb
    if "Y" in block:
        Z = X @ W.T + b
        weight = block["mask"] * inv_count
        dZ = np.zeros_like(Z)
        for name in set(loss_names):
            cols = [j for j, n in enumerate(loss_names) if n == name]
            loss = LOSSES[name]
            value += float(np.sum(weight[:, cols] * loss.values(Z[:, cols], block["Y"][:, cols])))
            if grad:
                dZ[:, cols] = weight[:, cols] * loss.derivative(Z[:, cols], block["Y"][:, cols])
        if grad:
            gW, gb = dZ.T @ X, dZ.sum(axis=0)
        return value, gW, gb
    task, y = block["task"], block["y"]
    z = np.einsum("ij,ij->i", X, W[task]) + b[task]
    weight = inv_count[task]
    dz = np.empty_like(z)
    for name, rows in block["by_loss"].items():
        loss = LOSSES[name]
        value += float(weight[rows] @ loss.values(z[rows], y[rows]))
        if grad:
            dz[rows] = weight[rows] * loss.derivative(z[rows], y[rows])
    if grad:
        gW[block["tasks"]] = np.add.reduceat(X * dz[:, None], block["starts"], axis=0)
        gb[block["tasks"]] = np.add.reduceat(dz, block["starts"])
    return value, gW, gb


def _add(a: tuple[float, Array, Array], b: tuple[float, Array, Array]) -> tuple[float, Array, Array]:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


def block_gram(block: Block, n_local: int) -> tuple[Array, Array, Array]:
    """Per distributed task of an evaluation block: ``A_tᵀA_t``, ``A_tᵀy_t`` and ``||y_t||²``, ``A_t = [X_t, 1]``."""
    X = block["X"]
    k = X.shape[1] + 1
    gram, cross, yy = np.zeros((n_local, k, k)), np.zeros((n_local, k)), np.zeros(n_local)
    if len(X) == 0:
        return gram, cross, yy
    A = np.hstack([X, np.ones((len(X), 1))])
    if "Y" in block:
        parts = [(j, block["mask"][:, j], block["Y"][:, j]) for j in range(n_local)]
        segments = [(j, rows, y[rows]) for j, rows, y in parts]
    else:
        ends = np.append(block["starts"][1:], len(X))
        segments = [(int(t), slice(a, e), block["y"][a:e])
                    for t, a, e in zip(block["tasks"], block["starts"], ends, strict=True)]
    for j, rows, y in segments:
        At = A[rows]
        gram[j], cross[j], yy[j] = At.T @ At, At.T @ y, y @ y
    return gram, cross, yy


def block_curvature(block: Block, n_local: int, bounds: Array) -> tuple[Array, Array, Array]:
    """Per distributed task of an evaluation block: ``Σ c w x²``, ``Σ c w x`` (per feature) and ``Σ c w``, where
    ``w`` is a row's weight in its task's mean loss (0 where unlabelled) and ``c`` the task loss's curvature bound
    (the parts of :class:`~multitask.linear._backend.Curvature`, before dividing by the row counts)."""
    X = block["X"]
    d = X.shape[1]
    coef, cross, intercept = np.zeros((n_local, d)), np.zeros((n_local, d)), np.zeros(n_local)
    if len(X) == 0:
        return coef, cross, intercept
    if "Y" in block:
        weight = block["mask"] * bounds  # (rows, n_local)
        return ((X * X).T @ weight).T, (X.T @ weight).T, weight.sum(axis=0)
    ends = np.append(block["starts"][1:], len(X))
    for t, a, e in zip(block["tasks"], block["starts"], ends, strict=True):
        rows = X[a:e]
        coef[t] = bounds[t] * np.einsum("ij,ij->j", rows, rows)
        cross[t], intercept[t] = bounds[t] * rows.sum(axis=0), bounds[t] * (e - a)
    return coef, cross, intercept


# ---- the backend --------------------------------------------------------------------------------------------
def select_columns(block: Block, features: NDArray[np.intp]) -> Block:
    """An evaluation block with the columns ``features`` of its ``X`` only (rows, targets and tasks as they are)."""
    return {**block, "X": np.ascontiguousarray(block["X"][:, features])}


class SparkBackend:
    """Sum over tasks of each task's mean loss: Gram statistics on the driver, the other tasks on Spark.

    ``gram`` serves the squared-loss tasks with no pass over the data; ``blocks`` (an RDD of evaluation
    blocks, see :func:`index_block`) holds the rows of the ``distributed`` tasks, whose loss and gradient
    are one ``treeAggregate`` job per evaluation. ``passes`` counts the jobs run so far over every column,
    ``restricted_passes`` those over the columns of a working set (evaluations of :meth:`restrict`'s backends).
    """

    #: :meth:`restrict` is cheaper than a full pass (the working-set solver may use it)
    can_restrict = True

    def __init__(self, n_tasks: int, n_features: int, gram: _BatchedGram | None, blocks: Any,
                 distributed: NDArray[np.intp], inv_count: Array, loss_names: tuple[str, ...],
                 run_job: Callable[[Callable[[], Any]], Any], depth: int = 2, storage_level: Any = None,
                 parent: SparkBackend | None = None, gram_max_features: int = 0) -> None:
        self.n_tasks, self.n_features = n_tasks, n_features
        self.gram, self.blocks, self.distributed = gram, blocks, distributed
        self.inv_count, self.loss_names, self.depth = inv_count, loss_names, depth
        self._run, self._level, self._parent = run_job, storage_level, parent
        #: :meth:`restrict` turns distributed squared-loss tasks into Gram statistics up to this many columns
        self.gram_max_features = gram_max_features
        self.passes = self.restricted_passes = 0
        self._cached: Any = None  # the RDD of the latest working set's columns, persisted
        self._last: SparkBackend | None = None  # the backend of the latest working set
        #: the columns of the parent's ``X`` that this backend's are (all of them for a full backend)
        self.features: NDArray[np.intp] | None = None
        self.work = float(len(gram.tasks) * (n_features + 1) ** 2) if gram is not None else 0.0

    def _distributed(self, W: Array, b: Array, grad: bool) -> tuple[float, Array, Array]:
        Wd, bd = W[self.distributed], b[self.distributed]
        inv, names = self.inv_count, self.loss_names
        zero = (0.0, np.zeros_like(Wd), np.zeros_like(bd))

        def part(block: Block) -> tuple[float, Array, Array]:
            return evaluate_block(block, Wd, bd, inv, names, grad)

        return self._aggregate(part, zero)

    def _aggregate(self, part: Callable[[Block], Any], zero: Any) -> Any:
        """One job over the distributed tasks' blocks, summing ``part`` of each: a pass over every column for a
        full backend, a restricted pass (counted on the full one) for a working set's."""
        if self._parent is None:
            self.passes += 1
        else:
            self._parent.restricted_passes += 1
        return self._run(lambda: self.blocks.map(part).treeAggregate(zero, _add, _add, depth=self.depth))

    def _evaluate(self, W: Array, b: Array, grad: bool) -> tuple[float, Array, Array]:
        value, grad_W, grad_b = 0.0, np.zeros_like(W), np.zeros_like(b)
        if self.gram is not None:
            v, gW, gb = self.gram.evaluate(W, b, grad)
            value += v
            if grad:
                assert gW is not None and gb is not None
                grad_W[self.gram.tasks], grad_b[self.gram.tasks] = gW, gb
        if len(self.distributed):
            v, gW, gb = self._distributed(W, b, grad)
            value += v
            grad_W[self.distributed], grad_b[self.distributed] = gW, gb
        return value, grad_W, grad_b

    def loss(self, W: Array, b: Array) -> float:
        return self._evaluate(W, b, grad=False)[0]

    def loss_and_grad(self, W: Array, b: Array) -> tuple[float, Array, Array]:
        return self._evaluate(W, b, grad=True)

    def curvature(self) -> Curvature:
        """The :class:`~multitask.linear._backend.Curvature` of every task (what the solver's per-feature steps
        come from): Gram tasks' on the driver, the distributed tasks' in one job over their rows."""
        coef, cross = np.zeros((self.n_tasks, self.n_features)), np.zeros((self.n_tasks, self.n_features))
        intercept = np.zeros(self.n_tasks)
        if self.gram is not None:
            found = self.gram.curvature()
            coef[self.gram.tasks], cross[self.gram.tasks], intercept[self.gram.tasks] = (
                found.coef, found.cross, found.intercept)
        if len(self.distributed):
            n_local = len(self.distributed)
            bounds = np.array([LOSSES[name].curvature_bound for name in self.loss_names]) * self.inv_count

            def part(block: Block) -> tuple[Array, Array, Array]:
                return block_curvature(block, n_local, bounds)

            zero = (np.zeros((n_local, self.n_features)), np.zeros((n_local, self.n_features)), np.zeros(n_local))
            C, X1, c = self._aggregate(part, zero)
            coef[self.distributed], cross[self.distributed], intercept[self.distributed] = C, X1, c
        return Curvature(coef, cross, intercept)

    def restrict(self, features: NDArray[np.intp]) -> SparkBackend:
        """The same rows and tasks on the columns ``features`` only: what a working-set solver runs on.

        Squared-loss tasks with Gram statistics take their rows and columns on the driver. The distributed
        tasks' blocks are cut to these columns and persisted, so the jobs of the restricted backend read
        ``len(features)`` columns of each row (the first one reads the full blocks once to make the cut);
        the blocks of the previous working set are dropped then, and the last ones by :meth:`close`. When
        every distributed task has the squared loss (too many features for Gram statistics of all columns,
        but not of these), one job sums their Gram statistics on these columns instead, and the restricted
        backend runs no job.
        """
        features = np.asarray(features, dtype=np.intp)
        root = self._parent if self._parent is not None else self
        last = root._last
        if self is root and last is not None and last.features is not None and np.array_equal(last.features, features):
            return last  # the same working set again (solved to a tighter tolerance)
        gram = self.gram.restrict(features) if self.gram is not None else None
        blocks, distributed = None, self.distributed
        if len(distributed) and set(self.loss_names) == {"squared"} and len(features) + 1 <= self.gram_max_features:
            # squared loss only: one job for the Gram statistics of these columns, then no job at all
            n_local = len(distributed)

            def part(block: Block) -> tuple[Array, Array, Array]:
                return block_gram(select_columns(block, features), n_local)

            k = len(features) + 1
            zero = (np.zeros((n_local, k, k)), np.zeros((n_local, k)), np.zeros(n_local))
            root.restricted_passes += 1
            G, C, yy = self._run(lambda: self.blocks.map(part).treeAggregate(zero, _add, _add, depth=self.depth))
            both = [g for g in (gram, _BatchedGram(distributed, G, C, yy, self.inv_count)) if g is not None]
            gram = _BatchedGram(*(np.concatenate([getattr(g, name) for g in both])
                                  for name in ("tasks", "gram", "cross", "yy", "weights")))
            distributed = distributed[:0]
        elif len(distributed):
            root.close()
            blocks = self.blocks.map(lambda blk: select_columns(blk, features))
            if self._level is not None:
                blocks = blocks.persist(self._level)
            root._cached = blocks
        out = SparkBackend(self.n_tasks, len(features), gram, blocks, distributed, self.inv_count, self.loss_names,
                           self._run, self.depth, self._level, root, self.gram_max_features)
        out.features = features
        if self is root:
            root._last = out
        return out

    def close(self) -> None:
        """Drop the persisted blocks of the latest working set (the full blocks are the caller's)."""
        if self._cached is not None:
            self._cached.unpersist()
            self._cached = None
        self._last = None


# ---- fitting an estimator on a Spark table -------------------------------------------------------------------
def _encoding(ref: str, stats: TaskStats, loss: Loss, where: str) -> tuple[float, float, Array | None]:
    """``(scale, shift, classes)`` of one task's targets: what :func:`~multitask.linear._data.encode_binary` does.

    ``ref`` names the task in messages (``task 'a' (column 'y')``).
    """
    if not loss.is_classification:
        return 1.0, 0.0, None
    values = sorted(stats.values)
    if len(values) > 2:
        raise DataError(f"{where}: {ref}: loss {loss.name!r} needs two classes, found more "
                        f"({values[:3]}...)")
    if len(values) == 2:
        lo, hi = values
        return 1.0 / (hi - lo), -lo / (hi - lo), np.array(values)
    only = float(values[0])
    classes = np.array([0.0, 1.0]) if only in (0.0, 1.0) else np.array([only, only])
    positive = only != 0.0
    if loss.name == "logistic":
        share = (stats.count + SMOOTHING) / (stats.count + 2 * SMOOTHING)
        return 0.0, share if positive else 1.0 - share, classes
    return 0.0, float(positive), classes


def fit_spark(estimator: LinearMTL, table: SparkTable, *, sufficient_statistics: bool = True) -> LinearMTL:
    """Fit ``estimator`` (any :mod:`multitask.linear` formulation) on a Spark table; returns it, fitted.

    The same problem as ``estimator.fit(X, y, tasks)`` in memory (long form: ``tasks`` are the task column;
    wide form: one target column per task, a null or NaN target is a missing label; long form: a row whose
    target is null is unlabelled). Tasks are sorted by label (long form) or in the order of the target
    columns (wide form). Besides the usual fitted attributes, ``spark_passes_`` is the number of Spark jobs
    over all the columns the fit ran (the statistics pass included), and ``spark_restricted_passes_`` the
    number over the columns of a working set only (``working_set``: see :mod:`multitask.linear._working_set`;
    ``"auto"`` turns it on from 500 features, as in memory).
    """
    estimator._check_params()
    single_loss = isinstance(estimator.loss, str)
    need_gram = (sufficient_statistics and table.width + 1 <= _GRAM_MAX_FEATURES
                 and (not single_loss or estimator.loss == "squared"))
    blocks = table.blocks()
    stats: TableStats = table.run_job(lambda: blocks.map(lambda blk: block_stats(blk, need_gram))
                                      .treeAggregate(TableStats(), TableStats.add, TableStats.add, depth=2))
    passes = 1
    where = table.where
    if stats.null_tasks:
        raise DataError(f"{where}: column {table.task_column!r} (task id) is null in {stats.null_tasks} rows; "
                        "every row needs a task")
    if stats.rows == 0 or stats.sum_x is None:
        raise DataError(f"{where}: no rows")
    assert stats.nonfinite_x is not None
    bad = np.flatnonzero(stats.nonfinite_x)
    if len(bad):
        raise DataError(f"{where}: feature {table.feature_name(int(bad[0]))!r} is null, NaN or infinite in "
                        f"{int(stats.nonfinite_x[bad[0]])} rows (features are never imputed)")
    if table.form == "wide":
        keys: list[Any] = list(range(len(table.targets)))
        labels = np.asarray(table.targets)
        about = [f"task {c!r} (column {c!r})" for c in table.targets]
    else:
        keys = sorted(stats.tasks)
        if not keys:
            raise DataError(f"{where}: no labelled rows in column {table.target!r}")
        names = table.task_names
        labels = np.asarray([names[k] for k in keys] if names is not None else keys)
        about = [f"task {label!r} (column {table.target!r})" for label in labels.tolist()]
    task_stats = [stats.tasks[k] if k in stats.tasks else TaskStats() for k in keys]
    for ref, s in zip(about, task_stats, strict=True):
        if s.count == 0 and not s.nonfinite_y:
            raise DataError(f"{where}: {ref} has no labelled rows")
        if s.nonfinite_y:
            raise DataError(f"{where}: {ref}: the target is infinite in {s.nonfinite_y} rows")
    losses = resolve_losses(estimator.loss, labels)
    encodings = [_encoding(ref, s, loss, where) for ref, s, loss in zip(about, task_stats, losses, strict=True)]
    classes = [e[2] for e in encodings]
    counts = np.array([s.count for s in task_stats], dtype=np.float64)
    target_means = np.array([e[0] * s.sum_y / s.count + e[1] for e, s in zip(encodings, task_stats, strict=True)])
    n_tasks, n_features = len(keys), table.width
    gram_tasks = [t for t, (loss, s) in enumerate(zip(losses, task_stats, strict=True))
                  if loss.name == "squared" and s.gram is not None]
    gram = None
    if gram_tasks:
        gram = _BatchedGram(np.asarray(gram_tasks, dtype=np.intp),
                            np.stack([task_stats[t].gram for t in gram_tasks]),  # type: ignore[misc]
                            np.vstack([task_stats[t].cross for t in gram_tasks]),  # type: ignore[misc]
                            np.array([task_stats[t].yy for t in gram_tasks]), 1.0 / counts[gram_tasks])
    distributed = np.asarray([t for t in range(n_tasks) if t not in set(gram_tasks)], dtype=np.intp)
    ix = _Indexing({keys[t]: j for j, t in enumerate(distributed)},
                   np.array([encodings[t][0] for t in distributed]), np.array([encodings[t][1] for t in distributed]),
                   tuple(losses[t].name for t in distributed))
    evaluation = None
    if len(distributed):
        evaluation = blocks.map(lambda blk: index_block(blk, ix)).persist(table.storage_level())
    backend = SparkBackend(n_tasks, n_features, gram, evaluation, distributed, 1.0 / counts[distributed],
                           ix.loss_names, table.run_job, storage_level=table.storage_level(),
                           gram_max_features=_GRAM_MAX_FEATURES if sufficient_statistics else 0)
    mean = stats.sum_x / stats.rows if estimator.fit_intercept else np.zeros(n_features)
    try:
        estimator._fit_backend(Centered(backend, mean), mean, labels, losses, classes, target_means)
    finally:
        backend.close()
        if evaluation is not None:
            evaluation.unpersist()
    estimator.n_features_in_ = n_features
    estimator.spark_passes_ = passes + backend.passes
    estimator.spark_restricted_passes_ = backend.restricted_passes
    return estimator
