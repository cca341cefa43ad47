"""One booster for all tasks of an objective, the task id a categorical feature."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb

from multitask.gbdt._base import GBDTMTL
from multitask.gbdt._boosting import TaskModel, boost, part, stack
from multitask.gbdt._data import Problem


def boost_pooled(estimator: GBDTMTL, problem: Problem, seed: int) -> tuple[list[lgb.Booster], list[TaskModel]]:
    """Per group of tasks with the same objective (and class count), one booster on their stacked rows
    ``[x, t]``, each task starting from its own constant; early-stopped on the group's stacked validation rows."""
    constants = [obj.constant(task.y, k)
                 for obj, k, task in zip(problem.objectives, problem.n_classes, problem.tasks, strict=True)]
    models = [TaskModel(c) for c in constants]
    groups: dict[tuple[str, int], list[int]] = {}
    for t, (obj, k) in enumerate(zip(problem.objectives, problem.n_classes, strict=True)):
        groups.setdefault((obj.name, k), []).append(t)
    boosters: list[lgb.Booster] = []
    for members in groups.values():
        obj, k = problem.objectives[members[0]], problem.n_classes[members[0]]
        tasks = [problem.tasks[t] for t in members]
        train = stack([part(problem.X, task.rows, t, task.y, constants[t])
                       for t, task in zip(members, tasks, strict=True)])
        if len(train.y) < 2 or obj.single_class(train.y):
            continue
        valid = None
        if problem.early_stopping:
            valid = stack([part(problem.X_val, task.val_rows, t, task.y_val, constants[t])
                           for t, task in zip(members, tasks, strict=True)])
        booster = boost(estimator._lgb_params(obj, k, seed), obj, train, valid, estimator.n_estimators,
                        estimator.early_stopping_rounds, categorical=True)
        if booster is not None:
            boosters.append(booster)
            for t in members:
                models[t] = TaskModel(constants[t], ((len(boosters) - 1, t),))
    return boosters, models


class GBDTPooled(GBDTMTL):
    """Pooled boosted trees: ``F_t(x) = c_t + Σ_m f_m(x, t)``, one booster for every task, ``t`` a categorical feature.

    Gradient boosting (Friedman, Ann. Statist. 2001) with LightGBM (Ke et al., NeurIPS 2017) on the rows of
    all tasks stacked (a row labelled for several tasks appears once per task, with each task's id), each
    task starting from its own constant ``c_t``. Trees may split on the task id, so tasks share what they
    have in common and differ where the data say so; early stopping watches the stacked validation rows.

    Tasks pool with the tasks of the same objective; multiclass tasks pool only with tasks of the same class
    count, other multiclass tasks get a booster of their own. A group with fewer than 2 training rows, or
    with one class only, keeps the constants alone. Parameters and attributes as in :class:`GBDTIndependent`
    (``boosters_`` holds one booster per group).
    """

    def __init__(self, objective: Any = "regression", *, n_classes: Any = None, n_estimators: int = 500,
                 learning_rate: float = 0.05,
                 num_leaves: int = 31, min_child_samples: int = 20, subsample: float = 1.0,
                 colsample_bytree: float = 1.0, reg_lambda: float = 0.0, early_stopping_rounds: int | None = 50,
                 validation_fraction: float | None = 0.1, random_state: int | None = 0,
                 n_jobs: int | None = 1) -> None:
        self.objective = objective
        self.n_classes = n_classes
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _boost(self, problem: Problem, seed: int) -> tuple[list[lgb.Booster], list[TaskModel]]:
        return boost_pooled(self, problem, seed)
