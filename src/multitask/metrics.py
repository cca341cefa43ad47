"""Per-task metrics, ``metric(y_true, prediction) -> float``, each with its direction ``higher_is_better``.

``prediction`` is what :meth:`multitask.tasks.Task.activate` gives: values for regression, the positive
class probability for binary tasks, class (or label) probabilities ``(n, k)`` otherwise. A metric that is
undefined on the given rows (AUC with one class present) is ``nan``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import metrics as skm

MetricFn = Callable[[np.ndarray, np.ndarray], float]


def _direction(higher_is_better: bool) -> Callable[[MetricFn], MetricFn]:
    def mark(fn: MetricFn) -> MetricFn:
        fn.higher_is_better = higher_is_better  # type: ignore[attr-defined]
        return fn

    return mark


@_direction(False)
def rmse(y_true: np.ndarray, pred: np.ndarray) -> float:
    """Root mean squared error √(mean (y − ŷ)²); lower is better."""
    return float(np.sqrt(np.mean((np.asarray(y_true, float) - np.asarray(pred, float)) ** 2)))


@_direction(False)
def mae(y_true: np.ndarray, pred: np.ndarray) -> float:
    """Mean absolute error mean |y − ŷ|; lower is better."""
    return float(skm.mean_absolute_error(y_true, pred))


@_direction(True)
def r2(y_true: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination 1 − SS_res / SS_tot; higher is better."""
    if len(y_true) < 2:
        return float("nan")
    return float(skm.r2_score(y_true, pred))


@_direction(True)
def explained_variance(y_true: np.ndarray, pred: np.ndarray) -> float:
    """Explained variance 1 − Var(y − ŷ) / Var(y); higher is better."""
    if len(y_true) < 2:
        return float("nan")
    return float(skm.explained_variance_score(y_true, pred))


@_direction(True)
def auc(y_true: np.ndarray, pred: np.ndarray) -> float:
    """Area under the ROC curve of the positive-class probability; nan with one class present."""
    if len(np.unique(y_true)) < 2:
        return float("nan")
    return float(skm.roc_auc_score(y_true, pred))


def _labels(pred: np.ndarray) -> Any:
    pred = np.asarray(pred)
    return pred.argmax(axis=1) if pred.ndim == 2 else (pred >= 0.5).astype(int)


@_direction(True)
def accuracy(y_true: np.ndarray, pred: np.ndarray) -> float:
    """Share of rows whose predicted class (argmax, or probability ≥ 0.5) is the true one."""
    return float(skm.accuracy_score(np.asarray(y_true).astype(int), _labels(pred)))


@_direction(True)
def f1(y_true: np.ndarray, pred: np.ndarray) -> float:
    """F1 of the positive class at threshold 0.5."""
    return float(skm.f1_score(np.asarray(y_true).astype(int), _labels(pred), zero_division=0.0))


@_direction(True)
def recall(y_true: np.ndarray, pred: np.ndarray) -> float:
    """Recall of the positive class at threshold 0.5."""
    return float(skm.recall_score(np.asarray(y_true).astype(int), _labels(pred), zero_division=0.0))


@_direction(True)
def macro_f1(y_true: np.ndarray, pred: np.ndarray) -> float:
    """F1 averaged over classes (multiclass) or labels (multilabel, threshold 0.5), unweighted."""
    y = np.asarray(y_true).astype(int)
    p = (np.asarray(pred) >= 0.5).astype(int) if y.ndim == 2 else _labels(pred)
    return float(skm.f1_score(y, p, average="macro", zero_division=0.0))


@_direction(True)
def micro_f1(y_true: np.ndarray, pred: np.ndarray) -> float:
    """F1 over all (row, label) decisions pooled, threshold 0.5."""
    y = np.asarray(y_true).astype(int)
    p = (np.asarray(pred) >= 0.5).astype(int) if y.ndim == 2 else _labels(pred)
    return float(skm.f1_score(y, p, average="micro", zero_division=0.0))
