"""Per-task metrics, single-task baselines and delta_m: did multi-task learning help, task by task?

delta_m (Maninis et al. 2019; Vandenhende et al. 2021) is the mean relative change of each task's deciding
metric against its single-task baseline, signed so that positive means better:

    delta_m = (100 / T) Σ_t s_t (M_t − B_t) / |B_t|,   s_t = +1 if higher is better for task t, else −1.

(|B_t| equals B_t for the usual positive metrics; it keeps the sign meaningful for a negative baseline R².)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from multitask.data.arrays import Arrays
from multitask.data.preprocess import Preprocessor
from multitask.registry import METRICS
from multitask.tasks import Task

#: ``{task: {metric: value}}``; ``None`` where a metric is undefined (no labelled rows, one class, ...)
Metrics = dict[str, dict[str, float | None]]


def task_metrics(
    tasks: Sequence[Task],
    arrays: Arrays,
    predictions: Mapping[str, np.ndarray],
    preprocessor: Preprocessor | None = None,
    notes: dict[str, str] | None = None,
) -> Metrics:
    """``{task: {metric: value}}`` over each task's labelled rows (regression in the target's own units).

    A metric that is undefined (a task with no labelled rows here, AUC of one class, ...) is ``None``; when
    ``notes`` is given, it receives ``{task: why}`` for each such task.
    """
    out: Metrics = {}
    for task in tasks:
        mask = arrays.masks[task.name]
        y = arrays.targets[task.name][mask]
        p = predictions[task.name][mask]
        if preprocessor is not None and task.kind == "regression":
            y = preprocessor.to_original(task.name, y.astype(np.float64))
            p = preprocessor.to_original(task.name, p.astype(np.float64))
        if len(y) == 0:
            out[task.name] = dict.fromkeys(task.metrics)
            if notes is not None:
                notes[task.name] = "no labelled rows in this part: not evaluated"
            continue
        values = {m: float(METRICS.get(m)(y, p)) for m in task.metrics}
        undefined = [m for m, v in values.items() if not math.isfinite(v)]
        out[task.name] = {m: (v if math.isfinite(v) else None) for m, v in values.items()}
        if undefined and notes is not None:
            why = "one class" if task.kind != "regression" else "a constant target"
            rows = "1 row" if len(y) == 1 else f"{len(y)} rows"
            notes[task.name] = f"{', '.join(undefined)} undefined on these {rows} ({why}, or too few rows)"
    return out


def _defined(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def delta_terms(tasks: Sequence[Task], mtl: Metrics, base: Metrics) -> dict[str, float]:
    """``{task: s_t (M_t − B_t)/|B_t|}`` for the tasks where both deciding metrics are defined and B_t ≠ 0."""
    terms: dict[str, float] = {}
    for task in tasks:
        m, b = mtl[task.name][task.metric], base[task.name][task.metric]
        if _defined(m) and _defined(b) and b != 0:
            assert m is not None and b is not None
            sign = 1.0 if task.higher_is_better else -1.0
            terms[task.name] = sign * (m - b) / abs(b)
    return terms


def delta_m(tasks: Sequence[Task], mtl: Metrics, base: Metrics) -> float | None:
    """(100/T') Σ_t s_t (M_t − B_t)/|B_t| over the T' tasks where both are defined; None if there are none."""
    terms = delta_terms(tasks, mtl, base)
    return 100.0 * float(np.mean(list(terms.values()))) if terms else None


def mean_over_tasks(metrics: Metrics) -> dict[str, float | None]:
    """The unweighted mean of each metric over the tasks where it is defined (None where it is nowhere)."""
    names: dict[str, list[float]] = {}
    for per_task in metrics.values():
        for name, value in per_task.items():
            values = names.setdefault(name, [])
            if _defined(value):
                assert value is not None
                values.append(value)
    return {k: float(np.mean(v)) if v else None for k, v in names.items()}

