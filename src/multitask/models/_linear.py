"""The linear family: a :mod:`multitask.linear` estimator fitted on the preprocessed features.

Regression tasks use the squared loss (on standardized targets), binary tasks the logistic loss; other
kinds are not linear-model tasks. The fitted model is saved as ``linear.npz`` (coefficients, intercepts and
losses; loaded without pickle), with what the solver did: ``n_iter``, ``n_passes`` (evaluations of the loss
over all the training data, one job each on a cluster) and ``n_restricted_passes`` (over a working set's
columns only), also logged at INFO level. A task's prediction is ``x·w_t + b_t``, passed through the logistic
function for classification losses: a probability for the logistic loss; for ``squared_hinge`` (chosen with
``model_options: {loss: squared_hinge}``) a monotone score in (0, 1), not a calibrated probability, whose
0.5 threshold is the hinge model's decision.
"""

from __future__ import annotations

import inspect
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from multitask.data.arrays import Arrays
from multitask.data.preprocess import Preprocessor
from multitask.errors import CheckpointError, ConfigError, DataError
from multitask.models._base import Param, Predictions, name_tasks
from multitask.registry import LINEAR
from multitask.tasks import Task
from multitask.train import is_main_process
from multitask.train._checkpoint import atomic_write

if TYPE_CHECKING:
    from typing import Self

    from multitask.config import RunConfig

log = logging.getLogger(__name__)
KIND_LOSS = {"regression": "squared", "binary": "logistic"}
#: what the solver did in the final fit, saved with the model
SOLVER_INFO = ("n_iter", "n_passes", "n_restricted_passes")
#: ``model_options: {strength_units: scale}`` reads every regularization strength given as a multiple of the
#: strength at which its penalty reaches its limit on the training data (what ``--search`` samples)
STRENGTH_UNITS = ("absolute", "scale")
LINEAR_FILE = "linear.npz"


def check_one_table(pre: Preprocessor, models: str) -> None:
    """ConfigError unless every task reads one table of tabular features (what linear models and trees fit)."""
    if len(pre.sources) != 1:
        raise ConfigError(f"{models} need all tasks on one table of features, not one data set per task")
    if any(c.image_shape is not None for c in pre.sources.values()):
        raise ConfigError(f"{models} take tabular features, not images")


def features(arrays: Arrays, pre: Preprocessor) -> np.ndarray:
    """The one table of features that linear models (and trees) need, as float64."""
    check_one_table(pre, "these models")
    return next(iter(arrays.inputs.values())).astype(np.float64)


def wide_targets(arrays: Arrays, tasks: Sequence[Task]) -> np.ndarray:
    """``(n, T)`` targets with NaN where a task has no label."""
    first = arrays.task_source[tasks[0].name]
    y = np.full((arrays.n_rows(first), len(tasks)), np.nan)
    for j, t in enumerate(tasks):
        mask = arrays.masks[t.name]
        y[mask, j] = arrays.targets[t.name][mask]
    return y


class Linear:
    """A regularized linear multi-task model (``linear:NAME``), optionally tuned by K-fold cross-validation."""

    family: ClassVar[str] = "linear"
    uses_validation: ClassVar[bool] = False

    def __init__(self, name: str, options: dict[str, Any] | None = None, cv: int | None = None) -> None:
        self.name = name
        self.options = dict(options or {})
        self.cv = cv

    @classmethod
    def from_config(cls, cfg: RunConfig) -> Self:
        return cls(cfg.model, cfg.model_options, cfg.cv)

    @property
    def formulation(self) -> str:
        return self.name.removeprefix("linear:")

    def _estimator(self, tasks: Sequence[Task]) -> Any:
        losses: list[str] = [KIND_LOSS.get(t.kind, "") for t in tasks]
        options = dict(self.options)
        units = options.pop("strength_units", "absolute")
        if units not in STRENGTH_UNITS:
            raise ConfigError(f"model_options for {self.name}: strength_units must be one of {', '.join(STRENGTH_UNITS)}, "
                              f"got {units!r}")
        if "loss" in options:
            given = options.pop("loss")
            losses = [given] * len(tasks) if isinstance(given, str) else given
            if not isinstance(losses, list) or len(losses) != len(tasks) or not all(isinstance(x, str) for x in losses):
                raise ConfigError(f"model_options for {self.name}: loss must be a loss name, or one per task "
                                  f"({len(tasks)}), got {given!r}")
        cls = LINEAR.get(self.formulation)
        try:
            inspect.signature(cls).bind(loss=losses, **options)
        except TypeError as e:
            raise ConfigError(f"model_options for {self.name}: {e}") from None
        return cls(loss=losses, **options)

    def check(self, tasks: Sequence[Task], pre: Preprocessor) -> None:
        bad = [t for t in tasks if t.kind not in KIND_LOSS]
        if bad:
            raise ConfigError(f"task {bad[0].name!r} is {bad[0].kind}; linear models fit regression and binary tasks")
        check_one_table(pre, "linear models")
        try:
            self._estimator(tasks)._check_params()
        except ConfigError as e:
            raise ConfigError(f"model_options for {self.name}: {e}") from None

    def fit(
        self,
        tasks: Sequence[Task],
        pre: Preprocessor,
        train: Arrays,
        valid: Arrays,
        run_dir: Path | None = None,
        *,
        resume: bool = False,
    ) -> Self:
        self.check(tasks, pre)
        x = features(train, pre)
        y = wide_targets(train, tasks)
        est = self._estimator(tasks)
        if self.options.get("strength_units") == "scale":  # strengths as multiples of this data's limits
            scale = est.regularization_scale(x, y)
            est.set_params(**{p: getattr(est, p) * scale[p] for p in scale if p in self.options})
        try:
            if self.cv is not None:
                from multitask.linear import cross_validate_params

                est = cross_validate_params(est, x, y, cv=self.cv)
            else:
                est.fit(x, y)
        except DataError as e:
            raise name_tasks(e, tasks) from None
        losses = est.get_params()["loss"]
        self.losses_ = [losses] * len(tasks) if isinstance(losses, str) else [str(v) for v in losses]
        self.coef_ = np.asarray(est.coef_, dtype=np.float64)
        self.intercept_ = np.asarray(est.intercept_, dtype=np.float64)
        self.tasks_ = list(tasks)
        self.solver_ = {name: int(getattr(est, f"{name}_", -1)) for name in SOLVER_INFO}
        log.info("%s: %d solver iterations, %d passes over the data (+ %d over working sets)", self.name,
                 *self.solver_.values())
        return self

    def predict(self, data: Arrays) -> Predictions:
        """Each task's prediction on every row: ``x·w_t + b_t``, or its logistic for classification losses."""
        source = next(iter(data.inputs))
        z = data.inputs[source].astype(np.float64) @ self.coef_.T + self.intercept_
        return {
            t.name: z[:, j] if self.losses_[j] == "squared" else 1.0 / (1.0 + np.exp(-z[:, j]))
            for j, t in enumerate(self.tasks_)
        }

    def save(self, run_dir: Path) -> None:
        if not is_main_process():
            return
        buf = io.BytesIO()
        arrays: dict[str, Any] = {"coef": self.coef_, "intercept": self.intercept_, "losses": np.asarray(self.losses_),
                                  **{name: np.asarray(value) for name, value in getattr(self, "solver_", {}).items()}}
        np.savez(buf, **arrays)
        atomic_write(run_dir / LINEAR_FILE, lambda f: f.write(buf.getvalue()))

    @classmethod
    def load(cls, name: str, run_dir: Path, tasks: Sequence[Task], pre: Preprocessor) -> Self:
        path = run_dir / LINEAR_FILE
        try:
            with np.load(path, allow_pickle=False) as f:
                coef, intercept, losses = f["coef"], f["intercept"], [str(s) for s in f["losses"]]
                solver = {name: int(f[name]) for name in SOLVER_INFO if name in f}
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no such file (the run has no linear model)") from None
        except (OSError, ValueError, KeyError) as e:
            raise CheckpointError(f"{path}: corrupted or not a multitask linear model ({e})") from None
        width = next(iter(pre.sources.values())).width if pre.sources else -1
        if coef.ndim != 2 or coef.shape != (len(tasks), width) or intercept.shape != (len(tasks),) or len(losses) != len(tasks):
            raise CheckpointError(
                f"{path}: coefficients of shape {coef.shape} do not fit the run's {len(tasks)} tasks and {width} features"
            )
        model = cls(name)
        model.coef_, model.intercept_, model.losses_, model.tasks_ = coef, intercept, losses, list(tasks)
        model.solver_ = solver
        return model

    @classmethod
    def search_space(cls, name: str, tasks: Sequence[Task]) -> list[Param]:
        """Each regularization strength, log-uniform from effectively none to the strength at which the
        penalty reaches its limit on the training data (W = 0, or pooled tasks): a search over this range
        cannot do worse on validation than the limits it contains."""
        est = LINEAR.get(name.removeprefix("linear:"))
        return [
            Param("model_options.strength_units", choices=("scale",)),
            *(Param(f"model_options.{p}", low, high, log=True) for p, (low, high) in est.search_space().items()),
        ]

    @classmethod
    def pooled(cls, name: str) -> str:
        return "linear:pooled"
