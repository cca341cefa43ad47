"""What the three boosted estimators share: parameters, data forms, prediction, scoring and saving.

An estimator is a subclass that builds the boosters of a fitted :class:`~multitask.gbdt._data.Problem`
(:meth:`GBDTMTL._boost`); everything else is here.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator
from sklearn.utils import RegressorTags, Tags
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from multitask.errors import ConfigError, DataError
from multitask.gbdt._boosting import TaskModel, raw_score
from multitask.gbdt._data import Matrix, Problem, as_csr, make_problem
from multitask.gbdt._objectives import Array, Objective, get_objective
from multitask.linear._data import split_targets, task_index

if TYPE_CHECKING:
    from typing import Self

#: version of the layout written by :meth:`GBDTMTL.to_dict`
FORMAT = "multitask.gbdt/1"


def _objective_names(objective: object) -> list[object]:
    if isinstance(objective, str):
        return [objective]
    if isinstance(objective, dict):
        return list(objective.values())
    if isinstance(objective, list | tuple | np.ndarray):
        return list(objective)
    return []


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


class GBDTMTL(BaseEstimator):
    """Base of the multi-task boosted-tree estimators: per task ``F_t(x) = c_t + Σ_m f_m(x[, t])``.

    ``c_t`` is the task's best constant (mean, log-odds or log class priors of its training labels) and the
    trees ``f_m`` are LightGBM boosters; subclasses decide which trees each task shares.
    """

    objective: Any
    n_classes: Any
    n_estimators: int
    learning_rate: float
    num_leaves: int
    min_child_samples: int
    subsample: float
    colsample_bytree: float
    reg_lambda: float
    early_stopping_rounds: int | None
    validation_fraction: float | None
    random_state: int | None
    n_jobs: int | None

    boosters_: list[lgb.Booster]
    task_models_: list[TaskModel]
    tasks_: NDArray[Any]
    objectives_: list[str]
    n_classes_: list[int | None]

    # ---- what an estimator provides ---------------------------------------------------------------------
    def _boost(self, problem: Problem, seed: int) -> tuple[list[lgb.Booster], list[TaskModel]]:
        """The boosters and each task's model."""
        raise NotImplementedError

    def _check_params(self) -> None:
        positive_ints = ("n_estimators", "num_leaves", "min_child_samples")
        for name in positive_ints:
            value = getattr(self, name)
            if not (_is_int(value) and value >= (2 if name == "num_leaves" else 1)):
                least = 2 if name == "num_leaves" else 1
                raise ConfigError(f"{name}: must be an integer >= {least}, got {value!r}")
        if not (_is_real(self.learning_rate) and self.learning_rate > 0):
            raise ConfigError(f"learning_rate: must be a positive number, got {self.learning_rate!r}")
        for name in ("subsample", "colsample_bytree"):
            value = getattr(self, name)
            if not (_is_real(value) and 0 < value <= 1):
                raise ConfigError(f"{name}: must be in (0, 1], got {value!r}")
        if not (_is_real(self.reg_lambda) and self.reg_lambda >= 0):
            raise ConfigError(f"reg_lambda: must be a non-negative number, got {self.reg_lambda!r}")
        if self.early_stopping_rounds is not None and not (_is_int(self.early_stopping_rounds)
                                                           and self.early_stopping_rounds >= 1):
            raise ConfigError(f"early_stopping_rounds: must be None or an integer >= 1, "
                              f"got {self.early_stopping_rounds!r}")
        fraction = self.validation_fraction
        if fraction is not None and not (_is_real(fraction) and 0 < fraction < 1):
            raise ConfigError(f"validation_fraction: must be None or in (0, 1), got {fraction!r}")
        if self.random_state is not None and not (_is_int(self.random_state) and self.random_state >= 0):
            raise ConfigError(f"random_state: must be None or an integer >= 0, got {self.random_state!r}")
        if self.n_jobs is not None and not (_is_int(self.n_jobs) and self.n_jobs != 0):
            raise ConfigError(f"n_jobs: must be None or a non-zero integer (-1: all cores), got {self.n_jobs!r}")

    def _num_threads(self) -> int:
        """LightGBM's ``num_threads``: 0 (OpenMP's default, all cores) for ``n_jobs`` None or negative."""
        return 0 if self.n_jobs is None or self.n_jobs < 0 else int(self.n_jobs)

    def _lgb_params(self, objective: Objective, n_classes: int, seed: int, learning_rate: float | None = None
                    ) -> dict[str, Any]:
        """LightGBM parameters of a booster for ``objective``: quiet, deterministic, seeded."""
        params: dict[str, Any] = {
            "objective": objective.name, "metric": objective.metric,
            "learning_rate": float(self.learning_rate if learning_rate is None else learning_rate),
            "num_leaves": int(self.num_leaves), "min_data_in_leaf": int(self.min_child_samples),
            # a task-id split needs as many rows per side as any split, not LightGBM's 100
            "min_data_per_group": int(self.min_child_samples),
            "lambda_l2": float(self.reg_lambda), "feature_fraction": float(self.colsample_bytree),
            "bagging_fraction": float(self.subsample), "bagging_freq": 1 if self.subsample < 1 else 0,
            "boost_from_average": False, "seed": seed, "deterministic": True, "force_row_wise": True,
            "num_threads": self._num_threads(), "verbosity": -1,
        }
        if objective.name == "multiclass":
            params["num_class"] = n_classes
        return params

    # ---- fit --------------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, tasks: Any = None, *, eval_set: Any = None) -> Self:
        """Boost on wide ``y`` (n, T) with NaN for missing labels, or long ``y`` (n,) with ``tasks``, or one task.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Features; NaN is a missing value, which LightGBM routes at each split.
        y : array-like of shape (n_samples, n_tasks) or (n_samples,)
            Wide targets (NaN = missing label, never imputed), or one target per row.
        tasks : array-like of shape (n_samples,), default=None
            The task of each row when ``y`` is 1-D (long form); None for a single task.
        eval_set : tuple, default=None
            ``(X_val, y_val)`` or ``(X_val, y_val, tasks_val)``: validation rows for early stopping, used
            instead of holding out ``validation_fraction`` of the training rows.

        Returns
        -------
        self : the fitted estimator.
        """
        self._check_params()
        X = as_csr(validate_data(self, X, accept_sparse="csr", dtype=np.float64, ensure_all_finite="allow-nan"))
        data = split_targets(y, tasks, X.shape[0])
        validation = None
        if eval_set is not None:
            if not isinstance(eval_set, tuple | list) or len(eval_set) not in (2, 3):
                raise DataError("eval_set: expected (X_val, y_val) or (X_val, y_val, tasks_val)")
            X_val = as_csr(validate_data(self, eval_set[0], accept_sparse="csr", dtype=np.float64,
                                         ensure_all_finite="allow-nan", reset=False))
            validation = (X_val, eval_set[1], eval_set[2] if len(eval_set) == 3 else None)
        seed = (int(self.random_state) if self.random_state is not None
                else int(check_random_state(None).randint(np.iinfo(np.int32).max)))
        problem = make_problem(X, data, self.objective, self.n_classes, validation, self.validation_fraction,
                               self.early_stopping_rounds, seed)
        self.tasks_ = data.labels
        self.n_tasks_ = len(data.labels)
        self.objectives_ = [obj.name for obj in problem.objectives]
        self.n_classes_ = [k if obj.is_classification else None
                           for obj, k in zip(problem.objectives, problem.n_classes, strict=True)]
        self._set_ensemble(*self._boost(problem, seed))
        return self

    def _set_ensemble(self, boosters: list[lgb.Booster], task_models: list[TaskModel]) -> None:
        self.boosters_ = boosters
        self.task_models_ = task_models
        self.best_iterations_ = np.array([sum(boosters[i].current_iteration() for i, _ in model.stages)
                                          for model in task_models], dtype=np.int64)

    # ---- predict ----------------------------------------------------------------------------------------
    def _validate(self, X: Any) -> Matrix:
        check_is_fitted(self)
        return as_csr(validate_data(self, X, accept_sparse="csr", dtype=np.float64, ensure_all_finite="allow-nan",
                                    reset=False))

    def _natural(self, X: Matrix, t: int) -> Array:
        raw = raw_score(self.boosters_, self.task_models_[t], X, self._num_threads())
        return get_objective(self.objectives_[t]).natural(raw)

    def predict_task(self, X: Any, task: Any) -> Array:
        """Task ``task``'s prediction on every row: the value (regression), the positive-class probability
        (binary), or the class probabilities (multiclass, shape (n, k)).

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
        task : a task label, as in :attr:`tasks_` (the column index for a wide NumPy ``y``)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        X = self._validate(X)
        return self._natural(X, int(task_index(self.tasks_, [task], 1)[0]))

    def predict(self, X: Any, tasks: Any = None) -> Array:
        """Predictions: the value (regression), the positive-class probability (binary), the class code (multiclass).

        Shape (n, T) without ``tasks`` ((n,) for a single task); with ``tasks``, one value per row for its task.
        """
        X = self._validate(X)
        if tasks is None:
            out = np.column_stack([get_objective(name).point(self._natural(X, t))
                                   for t, name in enumerate(self.objectives_)])
            return out[:, 0] if self.n_tasks_ == 1 else out
        index = task_index(self.tasks_, tasks, X.shape[0])
        out = np.empty(X.shape[0])
        for t in np.unique(index):
            rows = np.flatnonzero(index == t)
            out[rows] = get_objective(self.objectives_[t]).point(self._natural(X[rows], int(t)))
        return out

    def score(self, X: Any, y: Any, tasks: Any = None) -> float:
        """Mean over tasks of R² (regression tasks) or accuracy (classification tasks) on the labelled rows.

        Binary tasks are decided at probability 0.5, multiclass tasks by the most probable class; a regression
        task whose labels are constant has no R² and is left out.
        """
        X = self._validate(X)
        data = split_targets(y, tasks, X.shape[0])
        if data.form == "long":
            index = task_index(self.tasks_, data.labels, len(data.labels))
        elif len(data.labels) != self.n_tasks_:
            raise DataError(f"y has {len(data.labels)} task columns but the model has {self.n_tasks_} tasks")
        else:
            index = np.arange(self.n_tasks_)
        per_task = []
        for t, rows, target in zip(index, data.rows, data.targets, strict=True):
            value = get_objective(self.objectives_[t]).score(target, self._natural(X[rows], int(t)))
            if value is not None:
                per_task.append(value)
        return float(np.mean(per_task)) if per_task else float("nan")

    # ---- saving without pickle --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fitted model as JSON-safe data: parameters, tasks, objectives, constants and LightGBM model strings.

        ``objective`` and ``n_classes`` are saved as one value per task unless they are a single one. Rebuild with :meth:`from_dict`.
        """
        check_is_fitted(self)
        params = {k: v.item() if isinstance(v, np.generic) else v for k, v in self.get_params().items()}
        if not isinstance(params["objective"], str):
            params["objective"] = list(self.objectives_)
        if params["n_classes"] is not None and not isinstance(params["n_classes"], int):
            params["n_classes"] = list(self.n_classes_)
        return {
            "format": FORMAT,
            "estimator": type(self).__name__,
            "params": params,
            "tasks": self.tasks_.tolist(),
            "objectives": list(self.objectives_),
            "n_classes": list(self.n_classes_),
            "n_features_in": int(self.n_features_in_),
            "feature_names_in": self.feature_names_in_.tolist() if hasattr(self, "feature_names_in_") else None,
            "task_models": [{"constant": m.constant.tolist(), "stages": [[i, code] for i, code in m.stages]}
                            for m in self.task_models_],
            "boosters": [b.model_to_string() for b in self.boosters_],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        """A predicting estimator from the output of :meth:`to_dict` (a :class:`ConfigError` if it is not one
        of this class)."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ConfigError(f"from_dict: not a saved multitask GBDT model (expected format {FORMAT!r})")
        if d.get("estimator") != cls.__name__:
            raise ConfigError(f"from_dict: the data is a {d.get('estimator')!r}, not a {cls.__name__!r}")
        try:
            model = cls(**d["params"])
            model.tasks_ = np.asarray(d["tasks"])
            model.n_tasks_ = len(model.tasks_)
            model.objectives_ = [get_objective(name).name for name in d["objectives"]]
            model.n_classes_ = list(d["n_classes"])
            model.n_features_in_ = int(d["n_features_in"])
            if d["feature_names_in"] is not None:
                model.feature_names_in_ = np.asarray(d["feature_names_in"], dtype=object)
            task_models = [TaskModel(np.asarray(m["constant"], dtype=np.float64),
                                     tuple((int(i), None if code is None else int(code)) for i, code in m["stages"]))
                           for m in d["task_models"]]
            boosters = [lgb.Booster(model_str=text) for text in d["boosters"]]
        except (KeyError, TypeError, ValueError, lgb.basic.LightGBMError) as err:
            raise ConfigError(f"from_dict: incomplete or corrupted {cls.__name__} data ({err})") from None
        model._set_ensemble(boosters, task_models)
        return model

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = True
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        if _objective_names(self.objective) and all(n == "regression" for n in _objective_names(self.objective)):
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
        return tags

