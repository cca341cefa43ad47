"""Per-task metrics, single-task baselines and delta_m: did multi-task learning help, task by task?

delta_m (Maninis et al. 2019; Vandenhende et al. 2021) is the mean relative change of each task's deciding
metric against its single-task baseline, signed so that positive means better:

    delta_m = (100 / T) Σ_t s_t (M_t − B_t) / |B_t|,   s_t = +1 if higher is better for task t, else −1.

(|B_t| equals B_t for the usual positive metrics; it keeps the sign meaningful for a negative baseline R².)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from multitask.data.arrays import Arrays
from multitask.data.preprocess import Preprocessor
from multitask.registry import METRICS
from multitask.tasks import Task

Predictions = dict[str, np.ndarray]


@torch.no_grad()
def predict_model(model: torch.nn.Module, tasks: Sequence[Task], arrays: Arrays, batch_size: int = 4096) -> Predictions:
    """Every task's prediction (``Task.activate`` of the model output) on every row of its source."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks: dict[str, list[np.ndarray]] = {t.name: [] for t in tasks}
    by_name = {t.name: t for t in tasks}
    for source, x in arrays.inputs.items():
        wanted = [t for t in arrays.tasks_of(source) if t in by_name]
        if not wanted:
            continue
        for start in range(0, max(len(x), 1), batch_size):
            inputs = {
                s: torch.from_numpy(np.ascontiguousarray(v[start : start + batch_size] if s == source else v[:0])).to(device)
                for s, v in arrays.inputs.items()
            }
            outputs = model(inputs)
            for t in wanted:
                chunks[t].append(by_name[t].activate(outputs[t]).float().cpu().numpy())
    model.train(was_training)
    return {t: np.concatenate(c) if c else np.zeros(0, dtype=np.float32) for t, c in chunks.items()}


def task_metrics(
    tasks: Sequence[Task], arrays: Arrays, predictions: Predictions, preprocessor: Preprocessor | None = None
) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` over each task's labelled rows (regression in the target's own units)."""
    out: dict[str, dict[str, float]] = {}
    for task in tasks:
        mask = arrays.masks[task.name]
        y = arrays.targets[task.name][mask]
        p = predictions[task.name][mask]
        if preprocessor is not None and task.kind == "regression":
            y = preprocessor.to_original(task.name, y.astype(np.float64))
            p = preprocessor.to_original(task.name, p.astype(np.float64))
        if len(y) == 0:
            out[task.name] = {m: float("nan") for m in task.metrics}
            continue
        out[task.name] = {m: METRICS.get(m)(y, p) for m in task.metrics}
    return out


def delta_m(tasks: Sequence[Task], mtl: dict[str, dict[str, float]], stl: dict[str, dict[str, float]]) -> float:
    """(100/T) Σ_t s_t (M_t − B_t)/B_t over the tasks' deciding metrics; nan if any term is undefined."""
    terms = []
    for task in tasks:
        m, b = mtl[task.name][task.metric], stl[task.name][task.metric]
        if not (math.isfinite(m) and math.isfinite(b)) or b == 0:
            return float("nan")
        sign = 1.0 if task.higher_is_better else -1.0
        terms.append(sign * (m - b) / abs(b))
    return 100.0 * float(np.mean(terms))


def mean_over_tasks(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """The unweighted mean of each metric over the tasks that report it (nan-aware)."""
    names: dict[str, list[float]] = {}
    for per_task in metrics.values():
        for name, value in per_task.items():
            names.setdefault(name, []).append(value)
    return {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in names.items()}

