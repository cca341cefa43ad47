"""The single-task baseline: one booster per task on that task's labelled rows."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb

from multitask.gbdt._base import GBDTMTL
from multitask.gbdt._boosting import TaskModel, boost, part
from multitask.gbdt._data import Problem


class GBDTIndependent(GBDTMTL):
    """Independent boosted trees: per task ``F_t(x) = c_t + Σ_m f_tm(x)``, trees fitted on task ``t`` alone.

    Gradient boosting (Friedman, Ann. Statist. 2001) with LightGBM (Ke et al., NeurIPS 2017), one booster per
    task on its labelled rows, early-stopped on that task's validation rows; the tasks share nothing. ``c_t``
    is the task's best constant (mean, log-odds, log class priors). A task with fewer than 2 training rows,
    or with one class only, keeps ``c_t`` alone.

    Parameters
    ----------
    objective : str, sequence of str or mapping, default="regression"
        ``"regression"`` (squared error), ``"binary"`` (log loss, labels 0/1) or ``"multiclass"`` (softmax,
        class codes 0..k−1); one name for all tasks, one per task (in the order of :attr:`tasks_`), or
        ``{task: name}``.
    n_classes : int, sequence or mapping, default=None
        Class count of the multiclass tasks (one for all, one per task, or ``{task: k}``; None entries and
        other tasks ignored). None: one more than the largest class code seen in training or validation
        labels (at least 2), so give it when a task's labels may miss its last classes.
    n_estimators : int, default=500
        Maximum number of boosting rounds.
    learning_rate : float, default=0.05
        Shrinkage of every tree.
    num_leaves : int, default=31
        Maximum leaves per tree.
    min_child_samples : int, default=20
        Minimum rows in a leaf (and on each side of a task-id split). A task with fewer rows gets no split:
        its trees are constant.
    subsample : float, default=1.0
        Share of the training rows drawn (without replacement) for each tree.
    colsample_bytree : float, default=1.0
        Share of the features drawn for each tree.
    reg_lambda : float, default=0.0
        L2 penalty on leaf values.
    early_stopping_rounds : int or None, default=50
        Stop when the validation loss has not improved for this many rounds and keep the best round (none
        when no round beats the starting scores); None: no early stopping.
    validation_fraction : float or None, default=0.1
        Without ``eval_set``, hold out ``floor(validation_fraction * n_t)`` random labelled rows of every
        task ``t`` (at least one kept for training) for early stopping; held-out rows are not trained on.
        None: no early stopping.
    random_state : int or None, default=0
        Seeds the held-out rows and LightGBM's sampling; fits are deterministic. None: a fresh seed.
    n_jobs : int or None, default=1
        LightGBM threads; None or -1: all cores.

    Attributes
    ----------
    tasks_ : ndarray of shape (n_tasks,)
        Task labels: sorted task ids (long form), column names or 0..T−1 (wide form).
    n_tasks_ : int
    objectives_ : list of str
    n_classes_ : list of (int or None)
        Classes of each classification task (2 for binary), None for regression tasks.
    boosters_ : list of lightgbm.Booster
        The fitted boosters, holding only the trees kept after early stopping.
    task_models_ : list of TaskModel
        Per task its constant raw score and the boosters (indices into :attr:`boosters_`) added to it.
    best_iterations_ : ndarray of shape (n_tasks,)
        Number of boosting rounds that predict each task (0: the constant alone).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined when ``X`` has string column names.
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
        boosters: list[lgb.Booster] = []
        models: list[TaskModel] = []
        for obj, k, task in zip(problem.objectives, problem.n_classes, problem.tasks, strict=True):
            constant = obj.constant(task.y, k)
            models.append(TaskModel(constant))
            if len(task.y) < 2 or obj.single_class(task.y):
                continue
            train = part(problem.X, task.rows, None, task.y, constant)
            valid = part(problem.X_val, task.val_rows, None, task.y_val, constant) if problem.early_stopping else None
            booster = boost(self._lgb_params(obj, k, seed), obj, train, valid, self.n_estimators,
                            self.early_stopping_rounds, categorical=False)
            if booster is not None:
                boosters.append(booster)
                models[-1] = TaskModel(constant, ((len(boosters) - 1, None),))
        return boosters, models
