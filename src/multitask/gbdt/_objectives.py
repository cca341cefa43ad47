"""Per-task boosting objectives: what LightGBM minimizes, the constant a task starts from, and its prediction.

A task's model is a raw score ``F_t(x)`` of width 1 (regression, binary) or ``k`` (multiclass): a constant
plus the sum of its trees. :meth:`Objective.natural` maps it to the task's prediction: the value, the
positive-class probability ``σ(F)``, or the class probabilities ``softmax(F)``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from multitask.errors import ConfigError, DataError

Array = NDArray[np.float64]
#: probabilities of the constant model are kept in [EPS, 1 - EPS] so that its raw score stays finite
EPS = 1e-6


class Objective:
    """One task's loss and link: LightGBM's ``objective``/``metric``, the constant start and the prediction."""

    name: ClassVar[str]
    metric: ClassVar[str]  # LightGBM's name of the mean loss, used for early stopping
    is_classification: ClassVar[bool] = True

    def check(self, y: Array, task: object) -> Array:
        """``y`` if it holds valid labels for this objective, else a :class:`DataError` naming ``task``."""
        return y

    def n_classes(self, y: Array) -> int:
        """Number of classes for labels ``y`` (1 for regression)."""
        return 1

    def constant(self, y: Array, n_classes: int) -> Array:
        """The raw score ``(width,)`` of the best constant model: mean, log-odds or log class priors."""
        raise NotImplementedError

    def natural(self, raw: Array) -> Array:
        """The prediction from raw scores ``(n, width)``: ``(n,)`` value or probability, ``(n, k)`` probabilities."""
        raise NotImplementedError

    def point(self, natural: Array) -> Array:
        """One number per row (the column of a wide ``predict``): value, probability or class code."""
        return natural

    def loss(self, y: Array, raw: Array) -> float:
        """The mean loss of raw scores ``(n, width)`` on labels ``y``, as LightGBM's :attr:`metric` computes it."""
        raise NotImplementedError

    def score(self, y: Array, natural: Array) -> float | None:
        """Accuracy (classification) or R² (regression; None when ``y`` is constant)."""
        predicted = np.argmax(natural, axis=1) if natural.ndim == 2 else (natural > 0.5).astype(np.float64)
        return float(np.mean(predicted == y))

    def single_class(self, y: Array) -> bool:
        """True when trees have nothing to learn beyond the constant (one class only)."""
        return len(np.unique(y)) < 2


class Regression(Objective):
    """Squared error ``(F − y)² / 2`` (LightGBM ``"regression"``); predicts the value ``F``."""

    name = "regression"
    metric = "l2"
    is_classification = False

    def constant(self, y: Array, n_classes: int) -> Array:
        return np.array([float(np.mean(y))])

    def natural(self, raw: Array) -> Array:
        return raw[:, 0].copy()

    def loss(self, y: Array, raw: Array) -> float:
        return float(np.mean((raw[:, 0] - y) ** 2))

    def score(self, y: Array, natural: Array) -> float | None:
        total = float(np.sum((y - y.mean()) ** 2))
        return 1.0 - float(np.sum((y - natural) ** 2)) / total if total > 0 else None

    def single_class(self, y: Array) -> bool:
        return False


class Binary(Objective):
    """Log loss on labels 0/1 (LightGBM ``"binary"``); predicts the positive-class probability ``σ(F)``."""

    name = "binary"
    metric = "binary_logloss"

    def check(self, y: Array, task: object) -> Array:
        bad = np.setdiff1d(np.unique(y), [0.0, 1.0])
        if len(bad):
            raise DataError(f"task {task!r}: objective 'binary' needs labels 0/1, found {bad[:5].tolist()}")
        return y

    def n_classes(self, y: Array) -> int:
        return 2

    def constant(self, y: Array, n_classes: int) -> Array:
        p = float(np.clip(np.mean(y), EPS, 1 - EPS))
        return np.array([np.log(p / (1 - p))])

    def natural(self, raw: Array) -> Array:
        return 1.0 / (1.0 + np.exp(-raw[:, 0]))

    def loss(self, y: Array, raw: Array) -> float:
        z = raw[:, 0]
        return float(np.mean(np.logaddexp(0.0, z) - y * z))


class Multiclass(Objective):
    """Softmax cross-entropy on class codes 0..k−1 (LightGBM ``"multiclass"``); predicts ``softmax(F)``.

    ``k`` is one more than the largest code seen (training and validation labels), at least 2.
    """

    name = "multiclass"
    metric = "multi_logloss"

    def check(self, y: Array, task: object) -> Array:
        bad = y[(y < 0) | (y != np.floor(y))]
        if len(bad):
            raise DataError(f"task {task!r}: objective 'multiclass' needs integer class codes >= 0, "
                            f"found {np.unique(bad)[:5].tolist()}")
        return y

    def n_classes(self, y: Array) -> int:
        return max(int(y.max()) + 1, 2) if len(y) else 2

    def constant(self, y: Array, n_classes: int) -> Array:
        prior = np.bincount(y.astype(np.intp), minlength=n_classes) / len(y)
        return np.log(np.clip(prior, EPS, 1.0))

    def natural(self, raw: Array) -> Array:
        z = np.exp(raw - raw.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def point(self, natural: Array) -> Array:
        return np.argmax(natural, axis=1).astype(np.float64)

    def loss(self, y: Array, raw: Array) -> float:
        shifted = raw - raw.max(axis=1, keepdims=True)
        log_z = np.log(np.exp(shifted).sum(axis=1))
        return float(np.mean(log_z - shifted[np.arange(len(y)), y.astype(np.intp)]))


#: the objectives by name
OBJECTIVES: dict[str, Objective] = {o.name: o for o in (Regression(), Binary(), Multiclass())}


def get_objective(name: object) -> Objective:
    """The objective called ``name``; a :class:`ConfigError` listing the choices otherwise."""
    if isinstance(name, str) and name in OBJECTIVES:
        return OBJECTIVES[name]
    raise ConfigError(f"objective: unknown objective {name!r}; choose one of: {', '.join(OBJECTIVES)}")
