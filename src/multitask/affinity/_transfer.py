r"""Transfer gain: how much training with task ``i`` changes task ``j``'s validation metric, pair by pair.

For every task ``j`` a model of the configured family is trained on ``j`` alone, and for every pair of tasks
``{i, j}`` one model is trained on the two together, all on the same split and preprocessing
(:func:`multitask.runs.prepare`), each a normal fit of the model family (:func:`multitask.runs.fit_and_score`)
scored on the validation part. With ``M_j^{ij}`` task ``j``'s deciding metric in the pair's model and
``M_j^{j}`` in its own,

.. math::

    A_{ij} = s_j \, \frac{M_j^{ij} - M_j^{j}}{|M_j^{j}|}, \qquad s_j = +1 \text{ if higher is better, else } -1,

the relative change (a fraction; ``100 A_ij`` is task ``j``'s term of delta_m) signed so that ``A_ij > 0``
means task ``i`` helps task ``j``. Not symmetric (row ``i``: the helping task, column ``j``: the task
measured); ``A_jj = 0`` (a task with itself is the task alone); NaN where a metric is undefined.

``T`` single-task and ``T (T - 1) / 2`` pair runs, ``T (T + 1) / 2`` trainings in all: the ground truth that
cheaper measures approximate, affordable for a few tasks (at most ``max_tasks``, default 10, unless raised).
Runs are independent and are spread over ``n_jobs`` processes (joblib); each run is seeded by the
configuration, so the result does not depend on ``n_jobs``.

References:
    Standley, Zamir, Chen, Guibas, Malik & Savarese, "Which tasks should be learned together in multi-task
    learning?", ICML 2020.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np

from multitask.errors import ConfigError
from multitask.evaluate import Metrics, delta_terms

if TYPE_CHECKING:
    from multitask.config import RunConfig
    from multitask.data.spec import BuiltinData
    from multitask.runs import Prepared

log = logging.getLogger(__name__)

#: the most tasks transfer gain runs for unless ``max_tasks`` is raised: T (T + 1) / 2 trainings (55 for 10)
MAX_TASKS = 10


@dataclass
class TransferResult:
    """Transfer gain ``matrix`` (T × T, row ``i`` helps column ``j``) with what it was computed from.

    ``metric[j]`` is task ``j``'s deciding metric, ``alone[j]`` its value for ``j`` trained alone,
    ``together[(i, j)]`` (``i < j``, task names) both tasks' values in the pair's model; ``run_seconds``
    the fitting time of each training (``(tasks,)`` → seconds), ``seconds`` the wall time of all of them.
    """

    tasks: list[str]
    matrix: np.ndarray
    metric: dict[str, str]
    alone: dict[str, float | None]
    together: dict[tuple[str, str], dict[str, float | None]]
    run_seconds: dict[tuple[str, ...], float] = field(default_factory=dict)
    seconds: float = 0.0
    n_jobs: int = 1

    @property
    def runs(self) -> int:
        """The number of trainings: ``T (T + 1) / 2``."""
        return len(self.run_seconds)

    @property
    def single_seconds(self) -> float:
        """The mean fitting time of a single-task training."""
        single = [s for k, s in self.run_seconds.items() if len(k) == 1]
        return float(np.mean(single)) if single else float("nan")


def _subset_config(cfg: RunConfig, tasks: Sequence[str]) -> RunConfig:
    """``cfg`` for a model of ``tasks`` only: early stopping follows the monitored task only if it is one of them."""
    monitor = getattr(cfg.train, "monitor", None)
    if monitor is None or monitor in tasks:
        return cfg
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"monitor": None})})


def _fit(cfg: RunConfig, p: Prepared, tasks: tuple[str, ...]) -> tuple[tuple[str, ...], Metrics, float]:
    """One training of the configured model on ``tasks``: its validation metrics and fitting time."""
    from multitask import models
    from multitask.runs import fit_and_score

    model = models.make(_subset_config(cfg, tasks))
    start = time.perf_counter()
    metrics, _ = fit_and_score(model, p.only(tasks), None)
    return tasks, metrics, time.perf_counter() - start


def _check_n_jobs(n_jobs: int) -> int:
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer) or n_jobs == 0 or n_jobs < -1:
        raise ConfigError(f"--jobs {n_jobs!r}: must be a positive number of processes, or -1 for one per CPU")
    return int(n_jobs)


def transfer_gain(
    cfg: RunConfig,
    data: BuiltinData | None = None,
    *,
    n_jobs: int = 1,
    max_tasks: int = MAX_TASKS,
) -> TransferResult:
    """Train the configured model on each task alone and on each pair of tasks, and return the transfer gain
    (see the module docstring) measured on the validation part.

    Args:
        cfg: the run configuration: data, model (any family: deep, ``linear:*``, ``gbdt:*``) and training.
        data: the already loaded data set that ``cfg.dataset`` names (optional).
        n_jobs: processes training runs in parallel (joblib; -1: one per CPU), default 1.
        max_tasks: refuse more tasks than this (the number of trainings grows as ``T²``), default 10.
    """
    from joblib import Parallel, delayed

    from multitask import models
    from multitask.affinity._measures import check_single_process
    from multitask.config import AUTO
    from multitask.runs import prepare

    check_single_process("transfer gain")
    n_jobs = _check_n_jobs(n_jobs)
    if isinstance(max_tasks, bool) or not isinstance(max_tasks, int | np.integer) or max_tasks < 2:
        raise ConfigError(f"--max-tasks {max_tasks!r}: must be an integer of at least 2")
    if cfg.model == AUTO or cfg.search is not None:
        raise ConfigError("transfer gain trains one given model per pair: choose a --model (not auto) without --search")
    p = replace(prepare(cfg, data, hold_out_test=False), test=None)  # every run is scored on the validation part
    names = [t.name for t in p.tasks]
    t = len(names)
    if t < 2:
        raise ConfigError(f"transfer gain needs at least 2 tasks, got {t}")
    if t > max_tasks:
        raise ConfigError(f"transfer gain trains T (T + 1) / 2 models, {t * (t + 1) // 2} for these {t} tasks: "
                          f"more than max_tasks={max_tasks} tasks allows; raise it (--max-tasks {t}) "
                          "to run them all, or choose fewer tasks")
    models.make(cfg).check(p.tasks, p.pre)  # every option and task kind, before anything is trained
    subsets = [(n,) for n in names] + list(combinations(names, 2))
    start = time.perf_counter()
    log.info("transfer gain: %d trainings of %s on %d processes", len(subsets), cfg.model, n_jobs)
    # max_nbytes=None: the workers get their own writable copies of the data (torch refuses read-only memmaps)
    done = Parallel(n_jobs=n_jobs, max_nbytes=None)(delayed(_fit)(cfg, p, s) for s in subsets)
    seconds = time.perf_counter() - start
    metrics = {s: m for s, m, _ in done}
    by_task = {task.name: task for task in p.tasks}
    metric = {n: by_task[n].metric for n in names}
    alone = {n: metrics[(n,)][n][metric[n]] for n in names}
    together = {(a, b): {n: metrics[(a, b)][n][metric[n]] for n in (a, b)} for a, b in combinations(names, 2)}
    matrix = np.zeros((t, t))
    for a, b in combinations(names, 2):
        for helper, helped in ((a, b), (b, a)):  # s (M - B) / |B|, as delta_m's term; NaN where undefined
            term = delta_terms([by_task[helped]], metrics[(a, b)], metrics[(helped,)])
            matrix[names.index(helper), names.index(helped)] = term.get(helped, float("nan"))
    return TransferResult(names, matrix, metric, alone, together, {s: sec for s, _, sec in done}, seconds, n_jobs)
