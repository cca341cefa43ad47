"""What every linear formulation shares: data forms, losses, the FISTA fit, prediction and scoring.

A formulation is a subclass that says which parameters are its regularization strengths, where they reach
their limits on given data (:meth:`LinearMTL._scales`, see :mod:`multitask.linear._scale`) and builds its
penalty (:meth:`LinearMTL._penalty`); formulations that alternate with a closed-form step (clustered,
task relationship) override :meth:`LinearMTL._solve` and still call the same solver for ``W``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import ClassifierTags, RegressorTags, Tags
from sklearn.utils._available_if import available_if
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from multitask.errors import ConfigError, DataError
from multitask.linear._backend import ArrayBackend, Backend, Centered, Counted, can_restrict
from multitask.linear._data import TaskTargets, encode_binary, resolve_losses, split_targets, task_index
from multitask.linear._losses import Loss, get_loss
from multitask.linear._penalties import Penalty
from multitask.linear._scale import ScaleInputs
from multitask.linear._solver import DivergedError, SolverResult, fista
from multitask.linear._working_set import applies, feature_metric, working_set_fista

Array = NDArray[np.float64]
#: below this many multiply-adds per loss evaluation the solver runs BLAS on one thread
_SMALL_WORK = 2e7
#: ``working_set="auto"`` uses a working set from this many features, on backends that can restrict their
#: columns (measured: docs/benchmarks.md, "Working sets: when working_set="auto" switches on")
WORKING_SET_MIN_FEATURES = 500
WORKING_SET_CHOICES = (True, False, "auto")


def _loss_names(loss: object) -> list[str]:
    if isinstance(loss, str):
        return [loss]
    if isinstance(loss, Mapping):
        return [str(v) for v in loss.values()]
    if isinstance(loss, Sequence | np.ndarray):
        return [str(v) for v in loss]
    return []


def _has_classification(estimator: LinearMTL) -> bool:
    names = _loss_names(estimator.loss)
    return any(name in ("logistic", "squared_hinge") for name in names)


@dataclass(frozen=True)
class _Problem:
    """A fit's inputs once checked: tasks, losses, encoded targets, the column means and the backend."""

    data: TaskTargets
    losses: list[Loss]
    targets: list[Array]
    classes: list[Array | None]
    mean: Array
    backend: Centered


class LinearMTL(BaseEstimator):
    """Base of the linear multi-task estimators: ``min_{W, b} sum_t L_t(w_t, b_t) + Ω(W)``.

    ``L_t`` is the mean loss of task ``t`` over its labelled rows; subclasses define ``Ω``.
    """

    #: names of the parameters that set regularization strengths (what cross-validation tunes)
    regularization_params: ClassVar[tuple[str, ...]] = ()
    #: the default grid over :attr:`regularization_params`, in units of :meth:`regularization_scale`; its
    #: smallest and largest values bound :meth:`search_space`
    param_grid: ClassVar[dict[str, tuple[float, ...]]] = {}
    #: number of parts W is split into (W = P + Q has two)
    _n_blocks: ClassVar[int] = 1

    coef_: Array
    intercept_: Array
    _coef_parts: Array
    loss: Any
    fit_intercept: bool
    tol: float
    max_iter: int
    warm_start: bool
    #: formulations whose penalty is a sum over features take ``working_set`` in ``__init__``
    working_set: bool | str = False

    # ---- the search space ------------------------------------------------------------------------------
    @classmethod
    def search_space(cls) -> dict[str, tuple[float, float]]:
        """Log-uniform range ``(low, high)`` of each regularization parameter, in units of its scale.

        ``high`` (times :meth:`regularization_scale`) is the strength at which the penalty reaches its
        limit (``W = 0``, or pooled tasks); ``low`` is effectively unregularized. The range is the span of
        :attr:`param_grid`.
        """
        return {name: (min(values), max(values)) for name, values in cls.param_grid.items()}

    def regularization_scale(self, X: Any, y: Any, tasks: Any = None) -> dict[str, float]:
        """Per regularization parameter, the strength at which its penalty reaches its limit on this data.

        For a norm, the smallest strength giving ``W = 0``: the dual norm of the loss gradient at ``W = 0``
        (intercepts fitted). For a quadratic penalty, the strength whose curvature is 1000 times the loss's,
        which puts ``W`` within about 1e-3 of its limit (0, or the pooled solution for a coupling). 1 for a
        dimensionless parameter, and where the data give no scale (constant features). Uses the
        estimator's ``loss``, ``fit_intercept`` and structure (``adjacency``), not its strengths.
        """
        X = check_array(X, accept_sparse="csr", dtype=np.float64)
        problem = self._prepare(X, y, tasks)
        intercept = (np.array([loss.best_constant(t) for loss, t in zip(problem.losses, problem.targets, strict=True)])
                     if self.fit_intercept else np.zeros(len(problem.targets)))
        inputs = ScaleInputs(X, problem.data.rows, problem.targets, problem.losses, problem.backend, intercept,
                             self.fit_intercept)
        scales = self._scales(inputs)
        return {name: float(value) if np.isfinite(value) and value > 0 else 1.0 for name, value in scales.items()}

    def search_bounds(self, X: Any, y: Any, tasks: Any = None) -> dict[str, tuple[float, float]]:
        """:meth:`search_space` times :meth:`regularization_scale`: the range to search on this data."""
        scale = self.regularization_scale(X, y, tasks)
        return {name: (low * scale[name], high * scale[name]) for name, (low, high) in self.search_space().items()}

    def default_param_grid(self, X: Any, y: Any, tasks: Any = None) -> dict[str, list[float]]:
        """:attr:`param_grid` times :meth:`regularization_scale`, ready for :class:`~multitask.linear.MultiTaskCV`."""
        scale = self.regularization_scale(X, y, tasks)
        return {name: [value * scale[name] for value in values] for name, values in self.param_grid.items()}

    # ---- what a formulation provides --------------------------------------------------------------------
    def _penalty(self, n_tasks: int) -> Penalty:
        """The penalty on the stack of parts ``(n_blocks, n_tasks, n_features)``."""
        raise NotImplementedError

    def _scales(self, inputs: ScaleInputs) -> dict[str, float]:
        """Each regularization parameter's limit strength (see :meth:`regularization_scale`)."""
        raise NotImplementedError

    def _solve(self, backend: Backend, coef: Array, intercept: Array) -> SolverResult:
        penalty = self._penalty(backend.n_tasks)
        ws = self.working_set
        if isinstance(ws, str):  # "auto"
            on = backend.n_features >= WORKING_SET_MIN_FEATURES and can_restrict(backend)
        else:
            on = bool(ws)
        if on and applies(penalty):
            return working_set_fista(backend, penalty, coef, intercept,  # type: ignore[arg-type]
                                     fit_intercept=self.fit_intercept, tol=self.tol, max_iter=self.max_iter)
        return fista(backend, penalty, coef, intercept, fit_intercept=self.fit_intercept, tol=self.tol,
                     max_iter=self.max_iter, metric=feature_metric(backend, penalty, coef.shape[0]))

    def _set_parts(self, coef: Array) -> None:
        """Store the parts of a decomposed W under their names (nothing for a single part)."""

    def _check_params(self) -> None:
        for name in self.regularization_params:
            value = getattr(self, name)
            if not isinstance(value, int | float | np.number) or not value >= 0:
                raise ConfigError(f"{name}: must be a non-negative number, got {value!r}")
        if not (isinstance(self.tol, int | float) and self.tol > 0):
            raise ConfigError(f"tol: must be a positive number, got {self.tol!r}")
        if not (isinstance(self.max_iter, int | np.integer) and self.max_iter >= 1):
            raise ConfigError(f"max_iter: must be a positive integer, got {self.max_iter!r}")
        for name in ("fit_intercept", "warm_start"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise ConfigError(f"{name}: must be true or false, got {getattr(self, name)!r}")
        if not (isinstance(self.working_set, bool | np.bool_) or self.working_set == "auto"):
            raise ConfigError(f"working_set: must be true, false or 'auto', got {self.working_set!r}")

    # ---- fit --------------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, tasks: Any = None) -> LinearMTL:
        """Fit on wide ``y`` (n, T) with NaN for missing labels, or long ``y`` (n,) with ``tasks``, or one task.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
        y : array-like of shape (n_samples, n_tasks) or (n_samples,)
            Wide targets (NaN = missing label), or one target per row.
        tasks : array-like of shape (n_samples,), default=None
            The task of each row when ``y`` is 1-D (long form); None for a single task.

        Returns
        -------
        self : the fitted estimator.
        """
        self._check_params()
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=True)
        # overflow shows as non-finite values, reported by DivergedError rather than as numpy warnings
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            problem = self._prepare(X, y, tasks)
        target_means = np.array([float(np.mean(t)) for t in problem.targets])
        return self._fit_backend(problem.backend, problem.mean, problem.data.labels, problem.losses, problem.classes,
                                 target_means)

    def _fit_backend(self, backend: Backend, mean: Array, labels: Any, losses: list[Loss],
                     classes: list[Array | None], target_means: Array) -> LinearMTL:
        """Solve on ``backend`` (the centred loss: features minus ``mean``); the rest of :meth:`fit`.

        What any backend needs besides its loss: the task ``labels``, their losses and classes, and the mean
        of each task's encoded targets (the intercepts start at their best constants).
        """
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            n_tasks, n_features = len(labels), backend.n_features
            shape = (self._n_blocks, n_tasks, n_features)
            if self.warm_start and getattr(self, "_coef_parts", np.empty(0)).shape == shape:
                coef0, intercept0 = self._coef_parts, self.intercept_ + self.coef_ @ mean
            else:
                coef0 = np.zeros(shape)
                intercept0 = self._initial_intercept([np.array([m]) for m in target_means], losses)
            # small evaluations run faster on one BLAS thread (threads cost more than they save, worse when busy)
            small = getattr(backend, "work", float("inf")) < _SMALL_WORK
            counted = Counted(backend)
            with threadpool_limits(limits=1, user_api="blas") if small else nullcontext():
                result = self._solve(counted, coef0, intercept0)
            result.intercept = result.intercept - result.coef.sum(axis=0) @ mean
        if not (np.isfinite(result.coef).all() and np.isfinite(result.intercept).all()):
            raise DivergedError("the fitted coefficients are")
        if not result.converged:
            warnings.warn(ConvergenceWarning(
                f"{type(self).__name__} did not converge (max_iter={self.max_iter}, tol={self.tol}); "
                "increase max_iter or tol, or standardize the features"), stacklevel=3)
        self._coef_parts = result.coef
        self.coef_ = result.coef.sum(axis=0)
        self.intercept_ = result.intercept
        self.tasks_ = labels
        self.n_tasks_ = n_tasks
        self.losses_ = [loss.name for loss in losses]
        self.task_classes_ = classes
        self.n_iter_ = result.n_iter
        self.n_passes_ = counted.passes
        self.n_restricted_passes_ = counted.restricted_passes
        self.objective_ = np.asarray(result.objective)
        self._set_parts(result.coef)
        return self

    def _prepare(self, X: Any, y: Any, tasks: Any) -> _Problem:
        data = split_targets(y, tasks, X.shape[0])
        losses = resolve_losses(self.loss, data.labels)
        targets, classes = encode_binary(data, losses)
        mean = np.asarray(X.mean(axis=0)).ravel() if self.fit_intercept else np.zeros(X.shape[1])
        return _Problem(data, losses, targets, classes, mean, Centered(ArrayBackend(X, data.rows, targets, losses), mean))

    def _initial_intercept(self, targets: list[Array], losses: list[Loss]) -> Array:
        if not self.fit_intercept:
            return np.zeros(len(targets))
        return np.array([loss.best_constant(y) for y, loss in zip(targets, losses, strict=True)])

    # ---- predict ----------------------------------------------------------------------------------------
    def _scores(self, X: Any, tasks: Any) -> tuple[Array, NDArray[np.intp] | None]:
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=False)
        if tasks is None:
            return np.asarray(X @ self.coef_.T) + self.intercept_, None
        index = task_index(self.tasks_, tasks, X.shape[0])
        scores = np.empty(X.shape[0])
        for t in np.unique(index):
            rows = np.flatnonzero(index == t)
            scores[rows] = np.asarray(X[rows] @ self.coef_[t]).ravel() + self.intercept_[t]
        return scores, index

    @staticmethod
    def _shape(values: Array) -> Array:
        return values[:, 0] if values.ndim == 2 and values.shape[1] == 1 else values

    @available_if(_has_classification)
    def decision_function(self, X: Any, tasks: Any = None) -> Array:
        """Linear scores ``X W^T + b``: (n, T), or (n,) for one task or when ``tasks`` gives each row's task."""
        return self._shape(self._scores(X, tasks)[0])

    def predict(self, X: Any, tasks: Any = None) -> Array:
        """Predictions: the score for regression tasks, the predicted class for classification tasks.

        Shape (n, T) without ``tasks`` ((n,) for a single task); with ``tasks``, one value per row for its task.
        """
        scores, index = self._scores(X, tasks)
        if index is None:
            out = scores.copy()
            for t, classes in enumerate(self.task_classes_):
                if classes is not None:
                    out[:, t] = classes[(scores[:, t] > 0).astype(int)]
            return self._shape(out)
        out = scores.copy()
        for t, classes in enumerate(self.task_classes_):
            if classes is not None:
                rows = index == t
                out[rows] = classes[(scores[rows] > 0).astype(int)]
        return out

    @available_if(_has_classification)
    def predict_proba(self, X: Any, tasks: Any = None) -> Array:
        """Probability of the positive (larger) class for logistic tasks; NaN for other tasks.

        Shape (n, 2) for a single task (like scikit-learn), (n, T) for several, (n,) with ``tasks``.
        """
        scores, index = self._scores(X, tasks)
        proba = np.full(scores.shape, np.nan)
        logistic = np.array([name == "logistic" for name in self.losses_])
        if not logistic.any():
            raise ConfigError("predict_proba: only tasks with loss='logistic' give probabilities")
        if index is None:
            proba[:, logistic] = 1.0 / (1.0 + np.exp(-scores[:, logistic]))
            if self.n_tasks_ == 1:
                return np.column_stack([1.0 - proba[:, 0], proba[:, 0]])
            return proba
        rows = logistic[index]
        proba[rows] = 1.0 / (1.0 + np.exp(-scores[rows]))
        return proba

    def score(self, X: Any, y: Any, tasks: Any = None) -> float:
        """Mean over tasks of R^2 (regression tasks) or accuracy (classification tasks) on the labelled rows."""
        check_is_fitted(self)
        n_samples = X.shape[0] if hasattr(X, "shape") else len(X)
        data = split_targets(y, tasks, n_samples)
        if data.form == "long":
            index = task_index(self.tasks_, data.labels, len(data.labels))
        else:
            if len(data.labels) != self.n_tasks_:
                raise DataError(f"y has {len(data.labels)} task columns but the model has {self.n_tasks_} tasks")
            index = np.arange(self.n_tasks_)
        if data.form == "long":
            predictions = self.predict(X, tasks)
        else:
            predictions = self.predict(X).reshape(n_samples, -1)
        per_task = []
        for t, rows, target in zip(index, data.rows, data.targets, strict=True):
            pred = predictions[rows] if data.form == "long" else predictions[rows, t]
            if self.task_classes_[t] is not None:
                per_task.append(float(np.mean(pred == target)))
                continue
            total = float(np.sum((target - target.mean()) ** 2))
            if total > 0:
                per_task.append(1.0 - float(np.sum((target - pred) ** 2)) / total)
        return float(np.mean(per_task)) if per_task else float("nan")

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        kinds = set()
        for name in _loss_names(self.loss):
            try:
                kinds.add(get_loss(name).kind)
            except ConfigError:
                kinds.add("unknown")
        if kinds == {"regression"}:
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
        elif kinds == {"binary"}:
            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags(multi_class=False)
        return tags

