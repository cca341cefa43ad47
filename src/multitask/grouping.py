"""All-in-one, grouped and single-task models on the same split: does training by groups pay?

    multitask group --dataset synthetic --epochs 5 --output groups.json
    multitask group --data scores.csv --task math:regression --task art:regression --affinity aff.csv

:func:`compare_groups` fits three models of the configured family on one split (the data's own test part, or
a test part of ``valid_fraction`` of each task's rows held out first, as ``multitask compare`` does):

* **all-in-one**: one model of all the tasks;
* **grouped**: one model per group (:class:`multitask.models._grouped.Grouped`), the groups given, or chosen
  by ``auto`` from task affinity measured on the training rows only;
* **single-task**: one model per task (the groups of one task each), the reference of delta_m.

Each is scored on the test part; the per-model summary (each deciding metric's mean over tasks, delta_m
against single-task, tasks won and lost) comes from :func:`multitask.compare.leaderboard_rows`, and delta_m of
the grouped model against the all-in-one model is added.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from multitask import models
from multitask.compare import leaderboard_rows
from multitask.config import RunConfig
from multitask.data.spec import BuiltinData
from multitask.evaluate import Metrics, delta_m
from multitask.models._grouped import Groups, canonical, check_partition, grouped_class
from multitask.runs import fit_and_score, prepare
from multitask.tasks import Task

log = logging.getLogger(__name__)

__all__ = ["ALL_IN_ONE", "GROUPED", "SINGLE_TASK", "GroupComparison", "compare_groups"]

ALL_IN_ONE, GROUPED, SINGLE_TASK = "all-in-one", "grouped", "single-task"


@dataclass
class GroupComparison:
    """What :func:`compare_groups` measured.

    ``metrics[model]`` is ``{task: {metric: value}}`` on the test part for each of :data:`ALL_IN_ONE`,
    :data:`GROUPED` and :data:`SINGLE_TASK`; ``rows`` the leaderboard (one row per model, best first);
    ``results`` one row per model and task; ``delta_m[(model, reference)]`` in percent.
    """

    tasks: list[Task]
    groups: Groups
    metrics: dict[str, Metrics]
    rows: list[dict[str, Any]]
    results: pd.DataFrame
    delta_m: dict[tuple[str, str], float | None]
    evaluated_on: str
    model: str
    chosen: dict[str, Any] = field(default_factory=dict)  # how auto chose the groups: measure, score, affinity
    seconds: dict[str, float] = field(default_factory=dict)

    def group_of(self, task: str) -> int:
        """The 1-based number of ``task``'s group."""
        return next(i for i, g in enumerate(self.groups, 1) if task in g)

    def task_rows(self) -> list[dict[str, Any]]:
        """One row per task: its group, deciding metric and each model's value of it."""
        return [{"task": t.name, "group": self.group_of(t.name), "metric": t.metric,
                 "higher_is_better": t.higher_is_better,
                 **{m: self.metrics[m][t.name][t.metric] for m in (SINGLE_TASK, ALL_IN_ONE, GROUPED)}}
                for t in self.tasks]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model, "evaluated_on": self.evaluated_on, "groups": self.groups, **self.chosen,
            "delta_m": {f"{m} vs {r}": v for (m, r), v in self.delta_m.items()},
            "tasks": self.task_rows(), "leaderboard": self.rows, "fit_seconds": self.seconds,
        }


def compare_groups(cfg: RunConfig, groups: str | Groups = "auto", data: BuiltinData | None = None, *,
                   source: str = "groups") -> GroupComparison:
    """Fit the all-in-one, grouped and single-task models of ``cfg`` on one split and score them.

    ``groups`` is ``"auto"`` (``cfg.group_options`` are its options), a JSON file of groups, or the groups
    themselves (``source`` names where they came from, in messages); ``data`` (optional) the already loaded
    data set that ``cfg.dataset`` names.
    """
    base = cfg.model_copy(update={"groups": None, "group_options": {}, "out": None})
    grouped_cfg = cfg.model_copy(update={"groups": groups, "group_options": cfg.group_options if groups == "auto" else {}})
    p = prepare(base, data, hold_out_test=True)
    names = [t.name for t in p.tasks]
    if not isinstance(groups, str):
        check_partition(groups, names, source)
    grouped = grouped_class(cfg.model).from_config(grouped_cfg)
    plan = {
        SINGLE_TASK: models.make(base.model_copy(update={"groups": [[n] for n in names]})),
        ALL_IN_ONE: models.make(base),
        GROUPED: grouped,
    }
    for model in plan.values():  # every option checked before anything is fitted
        model.check(p.tasks, p.pre)
    metrics: dict[str, Metrics] = {}
    seconds: dict[str, float] = {}
    for label in (GROUPED, ALL_IN_ONE, SINGLE_TASK):
        start = time.perf_counter()
        metrics[label] = fit_and_score(plan[label], p, None)[0]
        seconds[label] = time.perf_counter() - start
        log.info("group comparison: %s fitted in %.1f s", label, seconds[label])
    chosen_groups = canonical(grouped.groups_, names)
    chosen = dict(grouped.chosen_)
    results = pd.DataFrame([
        {"model": label, "split": "given" if not p.test_held_out else "held-out", "seed": 0, "task": t.name,
         "kind": t.kind, "deciding": t.metric, "higher_is_better": t.higher_is_better,
         "fit_seconds": seconds[label], "group": next(i for i, g in enumerate(chosen_groups, 1) if t.name in g),
         **metrics[label][t.name]}
        for label in (SINGLE_TASK, ALL_IN_ONE, GROUPED) for t in p.tasks
    ])
    rows = leaderboard_rows(results, [GROUPED, ALL_IN_ONE, SINGLE_TASK], SINGLE_TASK, None)
    deltas = {(m, r): delta_m(p.tasks, metrics[m], metrics[r])
              for m, r in ((GROUPED, SINGLE_TASK), (ALL_IN_ONE, SINGLE_TASK), (GROUPED, ALL_IN_ONE))}
    return GroupComparison(p.tasks, chosen_groups, metrics, rows, results, deltas, p.evaluated_on, cfg.model,
                           chosen, seconds)
