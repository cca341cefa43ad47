"""Shared trees, then per-task trees boosted from the shared model's scores."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray

from multitask.errors import ConfigError
from multitask.gbdt._base import GBDTMTL, _is_int, _is_real
from multitask.gbdt._boosting import TaskModel, boost, part, raw_score
from multitask.gbdt._data import Problem
from multitask.gbdt._pooled import boost_pooled


class GBDTMultiTask(GBDTMTL):
    """Two-stage multi-task boosting: ``F_t(x) = c_t + Σ_m f_m(x, t) + Σ_j g_tj(x)``, shared then per-task trees.

    Stage 1 is :class:`GBDTPooled`: trees ``f_m`` on every task's stacked rows, the task id a categorical
    feature, early-stopped on the stacked validation rows. Stage 2 continues boosting each task on its own
    rows from stage 1's scores (LightGBM's ``init_score``): trees ``g_tj``, at most ``task_rounds`` of them
    with their own ``task_learning_rate``, early-stopped on the task's validation rows. The per-task trees
    fit what the shared model misses, the boosting analogue of mean-regularized multi-task learning
    (Evgeniou & Pontil, KDD 2004); cf. multi-task GBDT (Zhang & Li, CIKM 2019). With ``task_rounds=0`` this
    is :class:`GBDTPooled`.

    A task keeps stage 1 alone when it has fewer than ``min_task_rows`` training rows or one class only, or,
    when early stopping is on, no validation rows (nothing would stop its trees from fitting noise).

    Parameters
    ----------
    task_rounds : int, default=200
        Maximum number of per-task rounds (0: no stage 2).
    task_learning_rate : float, default=0.05
        Shrinkage of the per-task trees.
    min_task_rows : int, default=10
        Fewest training rows for a task to get per-task trees.
    others
        As in :class:`GBDTIndependent`.

    Attributes
    ----------
    task_iterations_ : ndarray of shape (n_tasks,)
        Per-task (stage 2) rounds kept for each task; ``best_iterations_`` counts both stages.
    others
        As in :class:`GBDTIndependent` (``boosters_``: one per objective group, then one per task that has
        per-task trees).
    """

    def __init__(self, objective: Any = "regression", *, n_classes: Any = None, n_estimators: int = 500,
                 learning_rate: float = 0.05,
                 task_rounds: int = 200, task_learning_rate: float = 0.05, min_task_rows: int = 10,
                 num_leaves: int = 31, min_child_samples: int = 20, subsample: float = 1.0,
                 colsample_bytree: float = 1.0, reg_lambda: float = 0.0, early_stopping_rounds: int | None = 50,
                 validation_fraction: float | None = 0.1, random_state: int | None = 0,
                 n_jobs: int | None = 1) -> None:
        self.objective = objective
        self.n_classes = n_classes
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.task_rounds = task_rounds
        self.task_learning_rate = task_learning_rate
        self.min_task_rows = min_task_rows
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _check_params(self) -> None:
        super()._check_params()
        if not (_is_int(self.task_rounds) and self.task_rounds >= 0):
            raise ConfigError(f"task_rounds: must be an integer >= 0, got {self.task_rounds!r}")
        if not (_is_real(self.task_learning_rate) and self.task_learning_rate > 0):
            raise ConfigError(f"task_learning_rate: must be a positive number, got {self.task_learning_rate!r}")
        if not (_is_int(self.min_task_rows) and self.min_task_rows >= 1):
            raise ConfigError(f"min_task_rows: must be an integer >= 1, got {self.min_task_rows!r}")

    def _boost(self, problem: Problem, seed: int) -> tuple[list[lgb.Booster], list[TaskModel]]:
        boosters, models = boost_pooled(self, problem, seed)
        threads = self._num_threads()
        for t, (obj, k, task) in enumerate(zip(problem.objectives, problem.n_classes, problem.tasks, strict=True)):
            if (self.task_rounds == 0 or len(task.y) < self.min_task_rows or obj.single_class(task.y)
                    or (problem.early_stopping and len(task.val_rows) == 0)):
                continue
            start = raw_score(boosters, models[t], problem.X[task.rows], threads)
            train = part(problem.X, task.rows, None, task.y, start)
            valid = None
            if problem.early_stopping:
                val_start = raw_score(boosters, models[t], problem.X_val[task.val_rows], threads)
                valid = part(problem.X_val, task.val_rows, None, task.y_val, val_start)
            booster = boost(self._lgb_params(obj, k, seed, self.task_learning_rate), obj, train, valid,
                            self.task_rounds, self.early_stopping_rounds, categorical=False)
            if booster is not None:
                boosters.append(booster)
                models[t] = TaskModel(models[t].constant, (*models[t].stages, (len(boosters) - 1, None)))
        return boosters, models

    def _set_ensemble(self, boosters: list[lgb.Booster], task_models: list[TaskModel]) -> None:
        super()._set_ensemble(boosters, task_models)
        self.task_iterations_: NDArray[np.int64] = np.array(
            [sum(boosters[i].current_iteration() for i, code in m.stages if code is None) for m in task_models],
            dtype=np.int64)
