"""Synthetic multi-task data with a known task structure: two groups of related tasks and one unrelated task."""

from __future__ import annotations

import numpy as np
import pandas as pd

from multitask.data.spec import BuiltinData, DataSpec, Source
from multitask.errors import ConfigError
from multitask.tasks import Task

#: task name -> (group, kind): group "a" and group "b" share a latent direction each; "unrelated" shares none
TASKS: dict[str, tuple[str, str]] = {
    "a1": ("a", "regression"),
    "a2": ("a", "regression"),
    "a3": ("a", "binary"),
    "b1": ("b", "regression"),
    "b2": ("b", "binary"),
    "unrelated": ("none", "regression"),
}
TASK_NOISE = 0.2  # scale of each task's own part of its weight vector, relative to the shared direction
LABEL_NOISE = 0.1  # standard deviation of the noise added to the linear score


def true_weights(n_features: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """The true weight vector of every task (unit-norm shared directions, see :func:`synthetic`)."""
    rng = np.random.default_rng([seed, 1])
    basis, _ = np.linalg.qr(rng.standard_normal((n_features, 3)))
    shared = {"a": basis[:, 0], "b": basis[:, 1], "none": basis[:, 2]}
    weights: dict[str, np.ndarray] = {}
    for name, (group, _) in TASKS.items():
        own = TASK_NOISE * rng.standard_normal(n_features) / np.sqrt(n_features)
        scale = 1.0 if group == "none" else rng.uniform(0.8, 1.2)
        weights[name] = scale * shared[group] + own
    return weights


def synthetic(
    n_rows: int = 1_000,
    *,
    n_features: int = 20,
    n_test: int | None = None,
    missing: float = 0.2,
    seed: int = 0,
) -> BuiltinData:
    """Synthetic: 6 linear tasks (4 regression, 2 binary) in two related groups plus one unrelated task.

    Generated, needs no files. Inputs ``x0..x{d-1}`` are standard normal. Task ``t`` has a true weight
    vector :math:`w_t = s_t u_{g(t)} + 0.2\\,\\epsilon_t/\\sqrt{d}` where :math:`u_a, u_b, u_c` are orthonormal
    shared directions, :math:`s_t \\sim U(0.8, 1.2)`, and :math:`\\epsilon_t` is standard normal noise:

    * group a: ``a1``, ``a2`` (regression), ``a3`` (binary) share :math:`u_a`;
    * group b: ``b1`` (regression), ``b2`` (binary) share :math:`u_b`;
    * ``unrelated`` (regression) uses :math:`u_c`, orthogonal to both groups.

    A regression target is :math:`x^\\top w_t + 0.1\\,\\eta`; a binary target is 1 where that score is > 0.
    Wide layout: one source ``"table"`` with the inputs and one target column per task, named after it; in
    the training part a fraction ``missing`` of each task's labels is NaN (missing at random, independently
    per task), to exercise masking. The test part (``n_test`` rows, default ``n_rows // 4``) is complete.
    :func:`true_weights` returns the :math:`w_t`.

    Args:
        n_rows: training rows (default 1,000).
        n_features: input dimension ``d`` (default 20, at least 3).
        n_test: test rows (default ``n_rows // 4``; 0 for no test part).
        missing: fraction of missing labels per task in the training part (default 0.2).
        seed: seed of the weights, the inputs, the noise and the missing labels (default 0).
    """
    if n_rows < 1 or n_features < 3:
        raise ConfigError(f"synthetic: need n_rows >= 1 and n_features >= 3, got {n_rows} and {n_features}")
    if not 0.0 <= missing < 1.0:
        raise ConfigError(f"synthetic: missing must be in [0, 1), got {missing}")
    n_test = n_rows // 4 if n_test is None else n_test
    if n_test < 0:
        raise ConfigError(f"synthetic: n_test must be >= 0, got {n_test}")
    weights = true_weights(n_features, seed)
    rng = np.random.default_rng([seed, 2])
    features = [f"x{i}" for i in range(n_features)]
    x = rng.standard_normal((n_rows + n_test, n_features))
    frame = pd.DataFrame(x, columns=features)
    for name, (_, kind) in TASKS.items():
        score = x @ weights[name] + LABEL_NOISE * rng.standard_normal(n_rows + n_test)
        frame[name] = (score > 0).astype(np.float64) if kind == "binary" else score
    train_frame = frame.iloc[:n_rows].reset_index(drop=True)
    for name in TASKS:
        drop = rng.random(n_rows) < missing
        train_frame.loc[drop, name] = np.nan
    tasks = [Task(name, kind) for name, (_, kind) in TASKS.items()]
    train = DataSpec(
        tasks=tasks,
        sources={"table": Source("table", train_frame, features, path="<synthetic>")},
        task_source={name: "table" for name in TASKS},
        target_column={name: name for name in TASKS},
    )
    test = None
    if n_test > 0:
        test = train.with_frames({"table": frame.iloc[n_rows:].reset_index(drop=True)})
    description = (
        f"Synthetic: 6 linear tasks in groups a (a1, a2, a3), b (b1, b2) and one unrelated; "
        f"{n_rows} training rows ({missing:.0%} labels missing per task), {n_test} test rows, seed {seed}"
    )
    return BuiltinData("synthetic", train, test, description)
