"""The data-dependent part of the objective: sum over tasks of each task's mean loss, and its gradient.

A backend answers ``loss_and_grad(W, b) -> (value, grad_W, grad_b)`` for ``W`` of shape
``(n_tasks, n_features)`` and intercepts ``b`` of shape ``(n_tasks,)``; the solver sees nothing else of the
data. :class:`ArrayBackend` holds NumPy / SciPy arrays in memory; a distributed backend would sum the same
quantities over partitions.

A backend may also answer ``restrict(features)``: the backend of the same rows and targets on the columns
``features`` of ``X`` only, whose evaluations cost a fraction of a full one (what a working-set solver runs
its inner solves on). :func:`restricted` gives it for any backend: the backend's own when it has one,
otherwise evaluations of the full backend with the other columns of ``W`` at zero (each one a full pass).

A backend may also answer ``curvature()``: a :class:`Curvature`, the diagonal (and intercept column) of
``M_t = Aᵀ diag(c_t w_t) A`` with ``A = [X, 1]`` over task ``t``'s rows, ``w_t`` its row weights and ``c_t``
its loss's largest second derivative (:attr:`~multitask.linear._losses.Loss.curvature_bound`). ``M_t`` bounds
the Hessian of task ``t``'s loss in ``(w_t, b_t)`` everywhere, and it costs one pass (sums of ``x_ij^2`` and
``x_ij``, as a gradient sums ``x_ij dz_i``). The solver scales its steps per feature by it
(:func:`curvature`; a backend without it gets the same step for every feature).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from multitask.linear._losses import Loss

Array = NDArray[np.float64]
Matrix = Any  # a dense ndarray or a scipy.sparse CSR matrix / array

#: squared-loss groups use a precomputed Gram matrix when they have more rows than this many features
_GRAM_MAX_FEATURES = 2000


@dataclass(frozen=True)
class Curvature:
    """Per task ``t`` and feature ``j``: ``coef = sum_i c_t w_ti x_ij^2``, ``cross = sum_i c_t w_ti x_ij``;
    ``intercept = sum_i c_t w_ti`` per task (the diagonal and intercept column of the bound ``Aᵀ diag(c w) A``)."""

    coef: Array  # (n_tasks, n_features)
    cross: Array  # (n_tasks, n_features)
    intercept: Array  # (n_tasks,)


def _dense(M: Matrix) -> Array:
    return np.asarray(M.toarray() if sp.issparse(M) else M, dtype=float)


def _squares(X: Matrix) -> Matrix:
    return X.power(2) if sp.issparse(X) else X * X


class Backend(Protocol):
    """Sum over tasks of the mean loss of each task over its labelled rows."""

    n_tasks: int
    n_features: int

    def loss(self, W: Array, b: Array) -> float: ...

    def loss_and_grad(self, W: Array, b: Array) -> tuple[float, Array, Array]: ...


@dataclass
class _RowGroup:
    """Tasks evaluated on the same rows ``X`` (n_r, d): targets ``Y`` (n_r, m), row weights (0 where missing)."""

    tasks: NDArray[np.intp]
    X: Matrix
    Y: Array
    weights: Array
    losses: Sequence[Loss]
    #: ``Xᵀ`` in row-major form when kept (a restricted group's, sliced from the columns of ``X``)
    XT: Matrix | None = None
    #: the columns of each loss: a slice when one loss serves all, so no column is copied
    by_loss: list[tuple[Loss, slice | NDArray[np.intp]]] = field(init=False, repr=False)
    #: the weights as one row when every row has the same (no missing label)
    row_weights: Array | None = field(init=False, repr=False)
    #: ``X`` by columns, kept once a working set has sliced it
    _csc: Matrix | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        names = [loss.name for loss in self.losses]
        if len(set(names)) <= 1:
            self.by_loss = [(self.losses[0], slice(None))] if names else []
        else:
            self.by_loss = [(loss, np.flatnonzero(np.array(names) == loss.name))
                            for loss in {loss.name: loss for loss in self.losses}.values()]
        uniform = len(self.weights) > 0 and bool(np.all(self.weights == self.weights[0]))
        self.row_weights = self.weights[0].copy() if uniform else None

    def evaluate(self, W: Array, b: Array, grad: bool) -> tuple[float, Array | None, Array | None]:
        Z = np.asarray(self.X @ W[self.tasks].T) + b[self.tasks]
        value = 0.0
        dZ = np.empty_like(Z) if grad else Z
        for loss, columns in self.by_loss:
            Zc, Yc = Z[:, columns], self.Y[:, columns]
            if self.row_weights is not None:
                weights = self.row_weights[columns]
                value += float(loss.values(Zc, Yc).sum(axis=0) @ weights)
            else:
                weights = self.weights[:, columns]
                value += float(np.vdot(weights, loss.values(Zc, Yc)))
            if grad:
                dZ[:, columns] = weights * loss.derivative(Zc, Yc)
        if not grad:
            return value, None, None
        XT = self.X.T if self.XT is None else self.XT
        return value, np.asarray(XT @ dZ).T, dZ.sum(axis=0)

    def curvature(self) -> Curvature:
        bound = np.array([loss.curvature_bound for loss in self.losses])
        weights = self.weights * bound  # (n_r, m): c_t w_ti
        XT = self.X.T if self.XT is None else self.XT
        return Curvature(_dense(_squares(XT) @ weights).T, _dense(XT @ weights).T, weights.sum(axis=0))

    def restrict(self, features: NDArray[np.intp]) -> _RowGroup | _GramGroup | _BatchedGram:
        """The columns ``features``; squared-loss tasks through Gram matrices when these are the cheaper."""
        XT = None
        if sp.issparse(self.X):
            if self._csc is None:
                self._csc = self.X.tocsc()
            columns = self._csc[:, features]
            X, XT = columns.tocsr(), columns.T  # the transpose of a CSC matrix is CSR: no copy
        else:
            X = _columns(self.X, features)
        k = len(features) + 1
        nonzeros = X.nnz if sp.issparse(X) else X.size
        if (any(loss.name != "squared" for loss in self.losses) or k > _GRAM_MAX_FEATURES
                or k * k > nonzeros + X.shape[0]):
            return replace(self, X=X, XT=XT)
        if np.all(self.weights == self.weights[0]):  # every task labelled on every row
            return _GramGroup.build(self.tasks, X, self.Y, self.weights[0])
        parts = []
        for j, t in enumerate(self.tasks):
            rows = np.flatnonzero(self.weights[:, j] > 0)
            parts.append(_GramGroup.build(np.array([t]), X[rows], self.Y[rows, j:j + 1], self.weights[rows[:1], j]))
        return _BatchedGram(self.tasks, np.stack([g.gram for g in parts]), np.vstack([g.cross for g in parts]),
                            np.concatenate([g.yy for g in parts]), np.concatenate([g.weights for g in parts]))


@dataclass
class _GramGroup:
    """Squared-loss tasks on the same rows, through ``A = [X, 1]``: ``G = AᵀA``, ``C = YᵀA``, ``yy = ||y||^2``."""

    tasks: NDArray[np.intp]
    gram: Array
    cross: Array
    yy: Array
    weights: Array  # 1 / n_t per task

    @classmethod
    def build(cls, tasks: NDArray[np.intp], X: Matrix, Y: Array, weights: Array) -> _GramGroup:
        n = X.shape[0]
        if sp.issparse(X):
            A = sp.hstack([X, np.ones((n, 1))], format="csr")
            gram = np.asarray((A.T @ A).toarray())
        else:
            A = np.hstack([np.asarray(X), np.ones((n, 1))])
            gram = A.T @ A
        return cls(tasks, gram, np.asarray(A.T @ Y).T, np.einsum("ij,ij->j", Y, Y), weights)

    def evaluate(self, W: Array, b: Array, grad: bool) -> tuple[float, Array | None, Array | None]:
        V = np.hstack([W[self.tasks], b[self.tasks, None]])
        GV = V @ self.gram
        per_task = np.einsum("ij,ij->i", V, GV) - 2.0 * np.einsum("ij,ij->i", V, self.cross) + self.yy
        value = 0.5 * float(self.weights @ per_task)
        if not grad:
            return value, None, None
        G = self.weights[:, None] * (GV - self.cross)
        return value, G[:, :-1], G[:, -1]

    def curvature(self) -> Curvature:  # squared loss: c = 1
        diagonal = np.diag(self.gram)
        w = self.weights[:, None]
        return Curvature(w * diagonal[:-1], w * self.gram[:-1, -1], self.weights * diagonal[-1])

    def restrict(self, features: NDArray[np.intp]) -> _GramGroup:
        keep = np.append(features, self.gram.shape[-1] - 1)  # and the intercept's column
        return replace(self, gram=self.gram[np.ix_(keep, keep)], cross=self.cross[:, keep])


@dataclass
class _BatchedGram:
    """Squared-loss tasks each on its own rows, with one Gram matrix per task: ``G_t = A_tᵀA_t`` stacked."""

    tasks: NDArray[np.intp]
    gram: Array  # (m, d + 1, d + 1)
    cross: Array  # (m, d + 1)
    yy: Array
    weights: Array

    def evaluate(self, W: Array, b: Array, grad: bool) -> tuple[float, Array | None, Array | None]:
        V = np.hstack([W[self.tasks], b[self.tasks, None]])
        GV = np.matmul(self.gram, V[:, :, None])[:, :, 0]
        per_task = np.einsum("ij,ij->i", V, GV) - 2.0 * np.einsum("ij,ij->i", V, self.cross) + self.yy
        value = 0.5 * float(self.weights @ per_task)
        if not grad:
            return value, None, None
        G = self.weights[:, None] * (GV - self.cross)
        return value, G[:, :-1], G[:, -1]

    def curvature(self) -> Curvature:  # squared loss: c = 1
        diagonal = np.diagonal(self.gram, axis1=1, axis2=2)
        w = self.weights[:, None]
        return Curvature(w * diagonal[:, :-1], w * self.gram[:, :-1, -1], self.weights * diagonal[:, -1])

    def restrict(self, features: NDArray[np.intp]) -> _BatchedGram:
        keep = np.append(features, self.gram.shape[-1] - 1)
        return replace(self, gram=self.gram[:, keep[:, None], keep[None, :]], cross=self.cross[:, keep])


@dataclass
class _LongGroup:
    """Tasks each on its own rows, stacked: row ``i`` of ``X`` belongs to task ``owner[i]`` (long form)."""

    tasks: NDArray[np.intp]
    X: Matrix
    owner: NDArray[np.intp]  # global task index of each row
    y: Array
    weights: Array  # 1 / n_t of the row's task
    by_loss: list[tuple[Loss, NDArray[np.intp]]]  # rows of each loss
    indicator: Any  # sparse (m, n_rows): row -> its task's position in ``tasks``

    def evaluate(self, W: Array, b: Array, grad: bool) -> tuple[float, Array | None, Array | None]:
        Wr = W[self.owner]
        if sp.issparse(self.X):
            z = np.asarray(self.X.multiply(Wr).sum(axis=1)).ravel()
        else:
            z = np.einsum("ij,ij->i", self.X, Wr)
        z += b[self.owner]
        value = 0.0
        dz = np.empty_like(z)
        for loss, rows in self.by_loss:
            value += float(self.weights[rows] @ loss.values(z[rows], self.y[rows]))
            if grad:
                dz[rows] = self.weights[rows] * loss.derivative(z[rows], self.y[rows])
        if not grad:
            return value, None, None
        scaled = self.X.multiply(dz[:, None]).tocsr() if sp.issparse(self.X) else self.X * dz[:, None]
        grad_W = self.indicator @ scaled
        return value, np.asarray(grad_W.todense() if sp.issparse(grad_W) else grad_W), self.indicator @ dz

    def curvature(self) -> Curvature:
        weights = self.weights.copy()
        for loss, rows in self.by_loss:
            weights[rows] *= loss.curvature_bound
        rows_to_tasks = sp.csr_array(self.indicator.multiply(weights[None, :]))  # (m, n_rows): c w of each row
        return Curvature(_dense(rows_to_tasks @ _squares(self.X)), _dense(rows_to_tasks @ self.X),
                         np.asarray(rows_to_tasks.sum(axis=1)).ravel())

    def restrict(self, features: NDArray[np.intp]) -> _LongGroup:
        return replace(self, X=_columns(self.X, features))


def _columns(X: Matrix, features: NDArray[np.intp]) -> Matrix:
    """The columns ``features`` of ``X``, in the same format (CSR stays CSR)."""
    if sp.issparse(X):
        return X.tocsc()[:, features].tocsr()
    return np.ascontiguousarray(X[:, features])


class _Embedded:
    """The backend of the columns ``features`` through the full backend: other columns of ``W`` at zero."""

    def __init__(self, backend: Backend, features: NDArray[np.intp]) -> None:
        self.backend, self.features = backend, features
        self.n_tasks, self.n_features = backend.n_tasks, len(features)

    def _full(self, W: Array) -> Array:
        full = np.zeros((W.shape[0], self.backend.n_features))
        full[:, self.features] = W
        return full

    def loss(self, W: Array, b: Array) -> float:
        return self.backend.loss(self._full(W), b)

    def loss_and_grad(self, W: Array, b: Array) -> tuple[float, Array, Array]:
        value, grad_W, grad_b = self.backend.loss_and_grad(self._full(W), b)
        return value, grad_W[:, self.features], grad_b


def can_restrict(backend: Backend) -> bool:
    """Whether ``backend`` has a ``restrict`` of its own (cheaper than a full pass)."""
    return callable(getattr(backend, "restrict", None)) and bool(getattr(backend, "can_restrict", True))


def restricted(backend: Backend, features: NDArray[np.intp]) -> Backend:
    """The backend of the columns ``features``: the backend's own ``restrict`` if it has one, else through it."""
    if can_restrict(backend):
        return backend.restrict(features)  # type: ignore[attr-defined]
    return _Embedded(backend, features)


def curvature(backend: Backend) -> Curvature | None:
    """The backend's :class:`Curvature` when it gives one (``curvature()``), else None."""
    method = getattr(backend, "curvature", None)
    return method() if callable(method) else None


class Counted:
    """A backend that counts its evaluations: ``passes`` over all the data, ``restricted_passes`` over the
    columns of a working set only (evaluations of its :meth:`restrict`; through the full backend, when that
    has no ``restrict`` of its own, they are full passes and counted as such)."""

    def __init__(self, backend: Backend, parent: Counted | None = None) -> None:
        self.backend, self.parent = backend, parent
        self.n_tasks, self.n_features = backend.n_tasks, backend.n_features
        self.work = float(getattr(backend, "work", float("inf")))
        self.passes = self.restricted_passes = 0
        self.can_restrict = can_restrict(backend)

    def _count(self) -> None:
        if self.parent is None:
            self.passes += 1
        else:
            self.parent.restricted_passes += 1

    def loss(self, W: Array, b: Array) -> float:
        self._count()
        return self.backend.loss(W, b)

    def loss_and_grad(self, W: Array, b: Array) -> tuple[float, Array, Array]:
        self._count()
        return self.backend.loss_and_grad(W, b)

    def curvature(self) -> Curvature | None:
        """The wrapped backend's :class:`Curvature` (one pass over the data), None when it has none."""
        found = curvature(self.backend)
        if found is not None:
            self._count()
        return found

    def restrict(self, features: NDArray[np.intp]) -> Backend:
        if self.can_restrict:
            return Counted(restricted(self.backend, features), self if self.parent is None else self.parent)
        return _Embedded(self, features)


class Centered:
    """The backend of ``X - 1 meanᵀ`` given the backend of ``X``: ``z = x·w + (b - mean·w)``.

    The intercept is unpenalized, so centering the features changes only how ``b`` is written, and it
    removes the coupling between ``b`` and ``W`` that makes uncentered problems ill-conditioned.
    """

    def __init__(self, backend: Backend, mean: Array) -> None:
        self.backend, self.mean = backend, mean
        self.n_tasks, self.n_features = backend.n_tasks, backend.n_features
        self.work = float(getattr(backend, "work", float("inf")))
        #: whether :meth:`restrict` is cheaper than a full pass (the wrapped backend has its own)
        self.can_restrict = can_restrict(backend)

    def loss(self, W: Array, b: Array) -> float:
        return self.backend.loss(W, b - W @ self.mean)

    def loss_and_grad(self, W: Array, b: Array) -> tuple[float, Array, Array]:
        value, grad_W, grad_b = self.backend.loss_and_grad(W, b - W @ self.mean)
        return value, grad_W - np.outer(grad_b, self.mean), grad_b

    def curvature(self) -> Curvature | None:
        """The wrapped backend's, for the centred columns ``x - mean``."""
        inner = curvature(self.backend)
        if inner is None:
            return None
        m, c = self.mean[None, :], inner.intercept[:, None]
        coef = np.maximum(inner.coef - 2.0 * m * inner.cross + c * m * m, 0.0)
        return Curvature(coef, inner.cross - c * m, inner.intercept)

    def restrict(self, features: NDArray[np.intp]) -> Backend:
        return Centered(restricted(self.backend, features), self.mean[features])


def _work(group: _RowGroup | _GramGroup | _BatchedGram | _LongGroup, n_features: int) -> float:
    """Approximate multiply-adds of one evaluation of ``group``."""
    if isinstance(group, _GramGroup | _BatchedGram):
        return len(group.tasks) * (n_features + 1) ** 2
    n_rows = group.X.shape[0]
    return 2.0 * n_rows * n_features * (len(group.tasks) if isinstance(group, _RowGroup) else 1)


class ArrayBackend:
    """In-memory backend over ``X`` (dense or CSR) with, per task, row indices into ``X`` and targets.

    Tasks with identical row sets share one product ``X_r W_rᵀ`` (the wide, shared-X case); squared-loss
    groups with more rows than features use a precomputed Gram matrix, so one evaluation costs
    ``O(T d^2)`` instead of ``O(n d T)``. Tasks labelled on at least half of the rows are evaluated on all
    rows with zero weights where the label is missing, so ``X`` is not copied once per task. ``work``
    estimates the multiply-adds of one evaluation.
    """

    def __init__(self, X: Matrix, rows: Sequence[NDArray[np.intp]], targets: Sequence[Array],
                 losses: Sequence[Loss]) -> None:
        n_samples, self.n_features = X.shape
        self.n_tasks = len(rows)
        by_rows: dict[bytes, list[int]] = {}
        masked: list[int] = []
        for t, r in enumerate(rows):
            if len(r) >= n_samples / 2 and len(r) < n_samples:
                masked.append(t)
            else:
                by_rows.setdefault(np.asarray(r, dtype=np.intp).tobytes(), []).append(t)
        self._groups: list[_RowGroup | _GramGroup | _BatchedGram | _LongGroup] = []
        batched: list[int] = []  # squared-loss tasks on their own rows, more rows than features
        stacked: list[int] = []  # other tasks on their own rows
        for members in by_rows.values():
            r = rows[members[0]]
            gram = (all(losses[t].name == "squared" for t in members)
                    and len(r) > self.n_features + 1 and self.n_features <= _GRAM_MAX_FEATURES)
            if len(members) == 1 and len(r) < n_samples:
                (batched if gram else stacked).append(members[0])
                continue
            Xr = X if len(r) == n_samples else X[r]
            tasks = np.asarray(members, dtype=np.intp)
            Y = np.column_stack([targets[t] for t in members])
            weights = np.array([1.0 / len(r)] * len(members))
            if gram:
                self._groups.append(_GramGroup.build(tasks, Xr, Y, weights))
            else:
                self._groups.append(_RowGroup(tasks, Xr, Y, np.tile(weights, (len(r), 1)),
                                              [losses[t] for t in members]))
        if batched:
            parts = [_GramGroup.build(np.array([t]), X[rows[t]], targets[t][:, None], np.array([1.0 / len(rows[t])]))
                     for t in batched]
            self._groups.append(_BatchedGram(np.asarray(batched, dtype=np.intp), np.stack([g.gram for g in parts]),
                                             np.vstack([g.cross for g in parts]), np.concatenate([g.yy for g in parts]),
                                             np.concatenate([g.weights for g in parts])))
        if stacked:
            self._groups.append(self._stack(X, stacked, rows, targets, losses))
        self.work = sum(_work(group, self.n_features) for group in self._groups)
        if masked:
            Y = np.zeros((n_samples, len(masked)))
            weights = np.zeros((n_samples, len(masked)))
            for j, t in enumerate(masked):
                Y[rows[t], j] = targets[t]
                weights[rows[t], j] = 1.0 / len(rows[t])
            self._groups.append(_RowGroup(np.asarray(masked, dtype=np.intp), X, Y, weights,
                                          [losses[t] for t in masked]))

    @staticmethod
    def _stack(X: Matrix, members: list[int], rows: Sequence[NDArray[np.intp]], targets: Sequence[Array],
               losses: Sequence[Loss]) -> _LongGroup:
        all_rows = np.concatenate([rows[t] for t in members])
        owner = np.concatenate([np.full(len(rows[t]), t, dtype=np.intp) for t in members])
        local = np.concatenate([np.full(len(rows[t]), j, dtype=np.intp) for j, t in enumerate(members)])
        weights = np.concatenate([np.full(len(rows[t]), 1.0 / len(rows[t])) for t in members])
        names = np.array([losses[t].name for t in owner]) if len(owner) else np.array([], dtype=str)
        by_loss = [(loss, np.flatnonzero(names == loss.name)) for loss in {losses[t].name: losses[t]
                                                                           for t in members}.values()]
        indicator = sp.csr_array((np.ones(len(owner)), (local, np.arange(len(owner)))),
                                 shape=(len(members), len(owner)))
        return _LongGroup(np.asarray(members, dtype=np.intp), X[all_rows], owner,
                          np.concatenate([targets[t] for t in members]), weights, by_loss, indicator)

    def restrict(self, features: NDArray[np.intp]) -> ArrayBackend:
        """The same rows and targets on the columns ``features`` of ``X``."""
        features = np.asarray(features, dtype=np.intp)
        out = object.__new__(ArrayBackend)
        out.n_tasks, out.n_features = self.n_tasks, len(features)
        out._groups = [group.restrict(features) for group in self._groups]
        out.work = sum(_work(group, out.n_features) for group in out._groups)
        return out

    def curvature(self) -> Curvature:
        """:class:`Curvature` of every task, from its group's rows."""
        coef, cross = np.zeros((self.n_tasks, self.n_features)), np.zeros((self.n_tasks, self.n_features))
        intercept = np.zeros(self.n_tasks)
        for group in self._groups:
            part = group.curvature()
            coef[group.tasks], cross[group.tasks], intercept[group.tasks] = part.coef, part.cross, part.intercept
        return Curvature(coef, cross, intercept)

    def loss(self, W: Array, b: Array) -> float:
        return sum(group.evaluate(W, b, grad=False)[0] for group in self._groups)

    def loss_and_grad(self, W: Array, b: Array) -> tuple[float, Array, Array]:
        value = 0.0
        grad_W = np.zeros_like(W)
        grad_b = np.zeros_like(b)
        for group in self._groups:
            v, gW, gb = group.evaluate(W, b, grad=True)
            value += v
            grad_W[group.tasks] = gW
            grad_b[group.tasks] = gb
        return value, grad_W, grad_b
