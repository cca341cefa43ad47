"""Auxiliary tasks for one target: sample subsets of the other tasks by affinity, keep the one that helps most.

Each other task ``t`` gets a relatedness score ``s_t = scale · a_t / max_u |a_u|`` from ``a_t = A[t, target]``,
the affinity of ``t`` to the target (row: the task whose gradient moves, column: the task affected; a pair
never measured counts 0). Subsets ``S`` of the other tasks are drawn with

    P(S) ∝ exp(Σ_{t ∈ S} s_t) = Π_t exp(s_t · [t ∈ S]) / Π_t (1 + exp(s_t)),

which factorizes: each task is in ``S`` independently with probability ``p_t = exp(s_t) / (1 + exp(s_t)) =
sigmoid(s_t)``, so a subset is one Bernoulli draw per task. The most related task has ``p = sigmoid(scale)``,
the most opposed ``sigmoid(-scale)``; ``scale = 0`` draws uniformly among all subsets. Draws continue until
``subsets`` distinct non-empty subsets are found (or every one is); each is evaluated by training the
target with it (the configured model, any family, through the normal fit path; early stopping on the
target for deep models) and scoring the target's deciding metric on the validation part. The target alone
(``S = ∅``) is always evaluated, as the baseline. The best subset, its gain over the target alone, and the
record of every evaluated subset (its probability, how often it was drawn, the metric, the time) are the
result. Everything follows from ``seed``: the same call gives the same record.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from multitask.errors import ConfigError

if TYPE_CHECKING:
    from multitask.config import RunConfig
    from multitask.data.spec import BuiltinData
    from multitask.runs import Prepared

log = logging.getLogger(__name__)

#: keeps the subset draws apart from the other streams of the same seed
_STREAM = 0x73656C
#: stop drawing after this many draws per wanted subset (when few subsets are likely)
_DRAWS_PER_SUBSET = 200


def relatedness(matrix: np.ndarray, tasks: Sequence[str], target: str, scale: float = 2.0) -> dict[str, float]:
    """``{t: scale · A[t, target] / max_u |A[u, target]|}`` over the tasks other than ``target`` (NaN → 0)."""
    if target not in tasks:
        raise ConfigError(f"target {target!r} is not a task of the affinity matrix; tasks: {', '.join(tasks[:10])}")
    j = list(tasks).index(target)
    column = {t: float(matrix[i, j]) for i, t in enumerate(tasks) if t != target}
    column = {t: v if math.isfinite(v) else 0.0 for t, v in column.items()}
    largest = max((abs(v) for v in column.values()), default=0.0)
    return {t: scale * v / largest if largest > 0 else 0.0 for t, v in column.items()}


def inclusion_probabilities(scores: dict[str, float]) -> dict[str, float]:
    """``p_t = sigmoid(s_t)``: the chance that task ``t`` is in a subset drawn with ``P(S) ∝ exp(Σ_{t∈S} s_t)``."""
    return {t: 1.0 / (1.0 + math.exp(-s)) for t, s in scores.items()}


def subset_probability(subset: Sequence[str], probabilities: dict[str, float]) -> float:
    """``P(S) = Π_{t∈S} p_t · Π_{t∉S} (1 − p_t)`` (equal to ``exp(Σ_{t∈S} s_t) / Π_t (1 + exp(s_t))``)."""
    chosen = set(subset)
    return float(np.prod([p if t in chosen else 1.0 - p for t, p in probabilities.items()]))


def draw_subset(probabilities: dict[str, float], rng: np.random.Generator) -> tuple[str, ...]:
    """One subset drawn with ``P(S) ∝ exp(Σ_{t∈S} s_t)``: task ``t`` is in it with probability ``p_t``, independently."""
    names = list(probabilities)
    inside = rng.random(len(names)) < np.array([probabilities[t] for t in names])
    return tuple(t for t, keep in zip(names, inside, strict=True) if keep)


def draw_subsets(probabilities: dict[str, float], n: int, rng: np.random.Generator,
                 max_draws: int | None = None) -> list[tuple[tuple[str, ...], int]]:
    """Up to ``n`` distinct non-empty subsets in the order first drawn, each with how often it was drawn.

    One draw is a Bernoulli trial per task (in the order of ``probabilities``); drawing stops at ``n`` distinct
    subsets, when every non-empty subset has been found, or after ``max_draws`` draws (default ``200 n``).
    """
    names = list(probabilities)
    possible = 2 ** len(names) - 1
    wanted = min(n, possible)
    limit = max_draws if max_draws is not None else _DRAWS_PER_SUBSET * max(n, 1)
    counts: dict[tuple[str, ...], int] = {}
    draws = 0
    while len(counts) < wanted and draws < limit:
        draws += 1
        chosen = draw_subset(probabilities, rng)
        if chosen:
            counts[chosen] = counts.get(chosen, 0) + 1
    return list(counts.items())


@dataclass
class SubsetScore:
    """One evaluated subset: the target's validation metric when trained with it, and the fit's time."""

    subset: tuple[str, ...]
    probability: float  # P(S) under the sampling distribution (the empty set: the target alone)
    draws: int  # how often the sampler drew it (0 for the target alone, evaluated by default)
    value: float | None  # the target's deciding metric on the validation part; None if undefined
    seconds: float
    gain: float | None = None  # value − the target alone's value, signed so that > 0 is better

    def to_json(self) -> dict[str, Any]:
        return {"subset": list(self.subset), "probability": self.probability, "draws": self.draws,
                "value": self.value, "gain": self.gain, "seconds": self.seconds}


@dataclass
class AuxiliarySelection:
    """The search's record: scores, probabilities, every evaluated subset, and the best one."""

    target: str
    metric: str
    higher_is_better: bool
    measure: str  # the affinity measure, or the CSV the matrix was read from
    scores: dict[str, float]
    probabilities: dict[str, float]
    records: list[SubsetScore] = field(default_factory=list)
    seed: int = 0
    scale: float = 2.0
    #: the affinity matrix the scores come from, ``(tasks, T × T)``, in the run's task order
    matrix: tuple[list[str], np.ndarray] | None = None

    @property
    def alone(self) -> SubsetScore:
        """The target trained alone (the baseline)."""
        return next(r for r in self.records if not r.subset)

    @property
    def best(self) -> SubsetScore:
        """The evaluated subset with the best metric (the target alone when nothing beats it; first of equals)."""
        defined = [r for r in self.records if r.value is not None and math.isfinite(r.value)]
        if not defined:
            return self.alone
        sign = 1.0 if self.higher_is_better else -1.0
        return max(defined, key=lambda r: sign * float(r.value))  # type: ignore[arg-type]

    @property
    def relative_gain(self) -> float | None:
        """The best subset's gain over the target alone in % of the target alone's metric."""
        base, gain = self.alone.value, self.best.gain
        return 100.0 * gain / abs(base) if gain is not None and base else None

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target, "metric": self.metric, "higher_is_better": self.higher_is_better,
            "measure": self.measure, "seed": self.seed, "scale": self.scale,
            "scores": self.scores, "probabilities": self.probabilities,
            "best": self.best.to_json(), "relative_gain": self.relative_gain,
            "subsets": [r.to_json() for r in self.records],
        }


def score_subset(cfg: RunConfig, p: Prepared, target: str, subset: Sequence[str]) -> tuple[float | None, float]:
    """The target's deciding metric on the validation part after training target + ``subset``, and the seconds.

    The configured model is built afresh (any family) and fitted on those tasks; a deep model stops early on
    the target's validation loss.
    """
    from multitask import models
    from multitask.runs import fit_and_score

    task = next(t for t in p.tasks if t.name == target)
    part = replace(p.only([target, *subset]), test=None)  # scored on the validation part
    if models.family_name(cfg.model) == "deep":
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"monitor": target})})
    model = models.make(cfg)
    model.check(part.tasks, part.pre)
    start = time.perf_counter()
    metrics, _ = fit_and_score(model, part, None)
    value = metrics[target][task.metric]
    return (float(value) if value is not None and math.isfinite(value) else None), time.perf_counter() - start


def select_auxiliary(
    cfg: RunConfig,
    target: str,
    *,
    subsets: int = 8,
    measure: str = "lookahead",
    affinity: tuple[list[str], np.ndarray] | None = None,
    scale: float = 2.0,
    seed: int | None = None,
    every: int = 10,
    data: BuiltinData | None = None,
) -> AuxiliarySelection:
    """Choose the subset of the other tasks that most improves ``target`` (see the module docstring).

    ``affinity`` is ``(tasks, matrix)`` read from a CSV; without it the matrix is measured by
    :func:`multitask.affinity.affinity` with ``measure`` on the training part (a separate training run of the
    configured deep model, or of ``hard-sharing`` for another family). ``seed`` (default: the training
    seed) drives the draws; ``subsets`` is how many distinct non-empty subsets are evaluated besides the
    target alone.
    """
    from multitask import models
    from multitask.affinity._measures import MEASURES
    from multitask.affinity._measures import affinity as measure_affinity
    from multitask.runs import prepare

    if subsets < 1:
        raise ConfigError(f"--subsets {subsets}: must be at least 1")
    if not (math.isfinite(scale) and scale >= 0):
        raise ConfigError(f"--scale {scale}: must be finite and >= 0")
    if getattr(cfg.train, "primary", None) not in (None, target):
        raise ConfigError(f"train option 'primary' {cfg.train.primary!r}: the selection is for target {target!r}")
    p = prepare(cfg, data, hold_out_test=False)
    names = [t.name for t in p.tasks]
    if target not in names:
        raise ConfigError(f"--target {target!r}: no such task; tasks are: {', '.join(names[:10])}")
    if len(names) < 2:
        raise ConfigError(f"--target {target!r}: there are no other tasks to choose from")
    if affinity is None:
        if measure not in MEASURES:
            raise ConfigError(f"--measure {measure!r}: must be one of {', '.join(MEASURES)}")
        measured = cfg if models.family_name(cfg.model) == "deep" else \
            cfg.model_copy(update={"model": "hard-sharing", "model_options": {}})
        result = measure_affinity(measured, [measure], every=every, data=data)
        matrix_tasks, matrix, source = result.tasks, result.matrices[measure], measure
    else:
        matrix_tasks, matrix, source = affinity[0], affinity[1], "affinity matrix"
        missing = [t for t in names if t not in matrix_tasks]
        if missing:
            raise ConfigError(f"the affinity matrix has no row for task {missing[0]!r}")
        order = [list(matrix_tasks).index(t) for t in names]
        matrix_tasks, matrix = names, np.asarray(matrix)[np.ix_(order, order)]
    scores = relatedness(matrix, matrix_tasks, target, scale)
    scores = {t: scores[t] for t in names if t != target}
    probabilities = inclusion_probabilities(scores)
    seed = cfg.train.seed if seed is None else seed
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM]))
    drawn = draw_subsets(probabilities, subsets, rng)
    task = next(t for t in p.tasks if t.name == target)
    selection = AuxiliarySelection(target, task.metric, task.higher_is_better, source, scores, probabilities,
                                   seed=seed, scale=scale, matrix=(list(matrix_tasks), np.asarray(matrix)))
    alone = subset_probability((), probabilities)
    for subset, count in [((), 0), *drawn]:
        value, seconds = score_subset(cfg, p, target, subset)
        selection.records.append(SubsetScore(subset, alone if not subset else subset_probability(subset, probabilities),
                                             count, value, seconds))
        log.info("select: %s + {%s}: %s = %s (%.1f s)", target, ", ".join(subset), task.metric, value, seconds)
    base = selection.alone.value
    sign = 1.0 if task.higher_is_better else -1.0
    for r in selection.records:
        r.gain = sign * (r.value - base) + 0.0 if r.value is not None and base is not None else None
    return selection
