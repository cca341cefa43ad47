"""The GBDT family: a :mod:`multitask.gbdt` estimator (LightGBM) on the preprocessed features.

Regression tasks boost the squared error (on standardized targets), binary tasks the log loss, multiclass
tasks the softmax loss; early stopping uses the run's validation part. The model is saved as ``gbdt.json``
(parameters and LightGBM's own text format for each booster; no pickle).
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from multitask._rundir import strict_json, write_text
from multitask.data.arrays import Arrays
from multitask.data.preprocess import Preprocessor
from multitask.errors import CheckpointError, ConfigError, DataError
from multitask.models._base import Param, Predictions, name_tasks
from multitask.models._linear import check_one_table, features, wide_targets
from multitask.registry import GBDT as MEMBERS
from multitask.tasks import Task
from multitask.train import is_main_process

if TYPE_CHECKING:
    from typing import Self

    from multitask.config import RunConfig

KIND_OBJECTIVE = {"regression": "regression", "binary": "binary", "multiclass": "multiclass"}
GBDT_FILE = "gbdt.json"


class GBDT:
    """Gradient-boosted trees for all tasks (``gbdt:independent``, ``gbdt:pooled`` or ``gbdt:multitask``)."""

    family: ClassVar[str] = "gbdt"
    uses_validation: ClassVar[bool] = True

    def __init__(self, name: str, options: dict[str, Any] | None = None, seed: int = 0, threads: int | None = None) -> None:
        self.name = name
        self.options = dict(options or {})
        self.seed = seed
        self.threads = threads

    @classmethod
    def from_config(cls, cfg: RunConfig) -> Self:
        return cls(cfg.model, cfg.model_options, cfg.train.seed, cfg.train.threads)

    def _estimator(self, tasks: Sequence[Task], pre: Preprocessor) -> Any:
        cls = MEMBERS.get(self.name.removeprefix("gbdt:"))
        options: dict[str, Any] = {"random_state": self.seed, "n_jobs": self.threads or 1, **self.options}
        options["objective"] = [KIND_OBJECTIVE.get(t.kind, t.kind) for t in tasks]
        options["n_classes"] = [pre.output_sizes()[t.name] if t.kind == "multiclass" else None for t in tasks]
        try:
            inspect.signature(cls).bind(**options)
        except TypeError as e:
            raise ConfigError(f"model_options for {self.name}: {e}") from None
        return cls(**options)

    def check(self, tasks: Sequence[Task], pre: Preprocessor) -> None:
        bad = [t for t in tasks if t.kind not in KIND_OBJECTIVE]
        if bad:
            raise ConfigError(
                f"task {bad[0].name!r} is {bad[0].kind}; gradient-boosted trees fit regression, binary and multiclass tasks"
            )
        check_one_table(pre, "gradient-boosted trees")
        try:
            self._estimator(tasks, pre)._check_params()
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
        est = self._estimator(tasks, pre)
        eval_set = None
        if any(valid.n_labelled(t.name) > 0 for t in tasks):
            eval_set = (features(valid, pre), wide_targets(valid, tasks))
        try:
            est.fit(features(train, pre), wide_targets(train, tasks), eval_set=eval_set)
        except DataError as e:
            raise name_tasks(e, tasks) from None
        self.estimator_ = est
        self.tasks_ = list(tasks)
        return self

    def predict(self, data: Arrays) -> Predictions:
        pre_x = next(iter(data.inputs.values())).astype(np.float64)
        return {t.name: self.estimator_.predict_task(pre_x, j) for j, t in enumerate(self.tasks_)}

    def save(self, run_dir: Path) -> None:
        if is_main_process():
            write_text(run_dir / GBDT_FILE, strict_json(self.estimator_.to_dict(), indent=None))

    @classmethod
    def load(cls, name: str, run_dir: Path, tasks: Sequence[Task], pre: Preprocessor) -> Self:
        from multitask.gbdt import from_dict

        path = run_dir / GBDT_FILE
        try:
            d = json.loads(path.read_text())
            est = from_dict(d)
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no such file (the run has no GBDT model)") from None
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{path}: corrupted or not a multitask GBDT model ({e})") from None
        width = next(iter(pre.sources.values())).width if pre.sources else -1
        if est.n_tasks_ != len(tasks) or est.n_features_in_ != width:
            raise CheckpointError(
                f"{path}: a model of {est.n_tasks_} tasks and {est.n_features_in_} features does not fit the run's "
                f"{len(tasks)} tasks and {width} features"
            )
        model = cls(name)
        model.estimator_, model.tasks_ = est, list(tasks)
        return model

    @classmethod
    def search_space(cls, name: str, tasks: Sequence[Task]) -> list[Param]:
        """Leaves, learning rate, minimum rows per leaf and L2 strength; rounds by early stopping."""
        return [
            Param("model_options.num_leaves", 4, 128, log=True, integer=True),
            Param("model_options.learning_rate", 0.01, 0.3, log=True),
            Param("model_options.min_child_samples", 2, 100, log=True, integer=True),
            Param("model_options.reg_lambda", 1e-3, 10.0, log=True),
        ]

    @classmethod
    def pooled(cls, name: str) -> str:
        return "gbdt:pooled"
