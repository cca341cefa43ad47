"""Fitting a :mod:`multitask.linear` estimator on preprocessed data, for ``multitask train --model linear:NAME``.

Regression tasks use the squared loss (on standardized targets), binary tasks the logistic loss; other
kinds are not linear-model tasks. The fitted model is saved as ``linear.npz`` (coefficients, intercepts and
losses; loaded without pickle). A task's prediction is ``x·w_t + b_t``, passed through the logistic
function for classification losses: a probability for the logistic loss; for ``squared_hinge`` (chosen with
``model_options: {loss: squared_hinge}``) a monotone score in (0, 1), not a calibrated probability, whose
0.5 threshold is the hinge model's decision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from multitask.config import RunConfig
from multitask.data.arrays import Arrays
from multitask.data.preprocess import Preprocessor
from multitask.errors import CheckpointError, ConfigError
from multitask.evaluate import Predictions
from multitask.registry import LINEAR
from multitask.tasks import Task

KIND_LOSS = {"regression": "squared", "binary": "logistic"}


def _features(arrays: Arrays, pre: Preprocessor) -> np.ndarray:
    if len(arrays.inputs) != 1:
        raise ConfigError("linear models need all tasks on one table of features, not one data set per task")
    source, x = next(iter(arrays.inputs.items()))
    if pre.sources[source].image_shape is not None:
        raise ConfigError("linear models take tabular features, not images")
    return x.astype(np.float64)


def wide_targets(arrays: Arrays, tasks: list[Task]) -> np.ndarray:
    """``(n, T)`` targets with NaN where a task has no label."""
    first = arrays.task_source[tasks[0].name]
    y = np.full((arrays.n_rows(first), len(tasks)), np.nan)
    for j, t in enumerate(tasks):
        mask = arrays.masks[t.name]
        y[mask, j] = arrays.targets[t.name][mask]
    return y


def estimator_for(cfg: RunConfig, tasks: list[Task]) -> Any:
    """The configured estimator with one loss per task."""
    name = cfg.model.removeprefix("linear:")
    bad = [t for t in tasks if t.kind not in KIND_LOSS]
    if bad:
        raise ConfigError(
            f"task {bad[0].name!r} is {bad[0].kind}; linear models fit regression and binary tasks"
        )
    losses = [KIND_LOSS[t.kind] for t in tasks]
    options = dict(cfg.model_options)
    if "loss" in options:
        losses = [options.pop("loss")] * len(tasks) if isinstance(options["loss"], str) else list(options.pop("loss"))
    cls = LINEAR.get(name)
    try:
        return cls(loss=losses, **options)
    except TypeError as e:
        raise ConfigError(f"model_options for linear:{name}: {e}") from None


def fit_linear(
    cfg: RunConfig, tasks: list[Task], pre: Preprocessor, tr: Arrays, va: Arrays
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Fit on the training part; returns ``(coef (T, d), intercept (T,), losses)``."""
    x = _features(tr, pre)
    y = wide_targets(tr, tasks)
    est = estimator_for(cfg, tasks)
    if cfg.cv is not None:
        from multitask.linear import cross_validate_params

        est = cross_validate_params(est, x, y, cv=cfg.cv)
    else:
        est.fit(x, y)
    losses = est.get_params()["loss"]
    losses = [losses] * len(tasks) if isinstance(losses, str) else list(losses)
    return np.asarray(est.coef_, dtype=np.float64), np.asarray(est.intercept_, dtype=np.float64), losses


def predict_linear(coef: np.ndarray, intercept: np.ndarray, losses: Any, tasks: list[Task], arrays: Arrays) -> Predictions:
    """Each task's prediction on every row: ``x·w_t + b_t``, or its logistic for classification losses."""
    source = next(iter(arrays.inputs))
    z = arrays.inputs[source].astype(np.float64) @ coef.T + intercept
    out: Predictions = {}
    for j, t in enumerate(tasks):
        out[t.name] = z[:, j] if str(losses[j]) == "squared" else 1.0 / (1.0 + np.exp(-z[:, j]))
    return out


def load_linear(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    try:
        with np.load(path, allow_pickle=False) as f:
            return f["coef"], f["intercept"], [str(s) for s in f["losses"]]
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file (the run has no linear model)") from None
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: corrupted or not a multitask linear model ({e})") from None
