"""Choosing a model by its score on rows it was not fitted on: ``--search N`` and ``--model auto``.

    multitask train --data scores.csv --task math:regression --model linear:l21 --search 20 --out runs/a
    multitask train --data scores.csv --task math:regression --model auto --out runs/b

**Score.** Per task, the *relative skill* of the predictions against a constant predictor fitted on the same
training rows (the mean; the class or label frequencies):

.. math::  s_t = \\max\\big(-1,\\; 1 - L_t / L^{\\mathrm{const}}_t\\big)

where :math:`L_t` is the mean loss over the task's scored rows: squared error (regression), log loss
(binary), cross-entropy (multiclass), mean log loss over labels (multilabel); probabilities are clipped to
``[1e-6, 1 - 1e-6]``. A perfect model scores 1, the constant 0; the floor -1 keeps one hopeless task from
swamping the others. The score is ``Σ_t w_t s_t / Σ_t w_t`` over the tasks where :math:`s_t` is defined
(scored rows, :math:`L^{\\mathrm{const}}_t > 0`), ``w_t`` the task weights. It does not change when a
target is rescaled, and tasks of different kinds are on one scale.

**Rows.** With fewer than :data:`CV_ROWS` labelled rows per task on average (training and validation parts
together), 3-fold cross-validation over both parts (folds stratified by task; a task keeps at least one
training row in every fold, so a task with one labelled row is never scored); otherwise models are fitted on
the training part and scored on the validation part. The run's reported metrics come from a test part that
no model selection has seen (:func:`multitask.runs.prepare` holds one out).

**auto.** The candidates of :data:`CANDIDATES` that apply to the tasks, each with its defaults (or with
``--search N`` trials each); then, per task, Caruana's greedy ensemble selection over the candidates'
held-out predictions, kept when it scores higher than the best single candidate (see docs/selection.md).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from multitask import models
from multitask._rundir import strict_json, write_text
from multitask.config import AUTO, RunConfig
from multitask.data.arrays import Arrays
from multitask.data.preprocess import Preprocessor
from multitask.errors import CheckpointError, ConfigError, MultitaskError, TrainingDivergedError
from multitask.models import Model, Param, Predictions
from multitask.runs import Prepared
from multitask.tasks import Task
from multitask.train import is_main_process
from multitask.train._checkpoint import atomic_write

log = logging.getLogger(__name__)

__all__ = [
    "CANDIDATES",
    "ScoringPlan",
    "Selection",
    "caruana",
    "relative_skill",
    "row_losses",
    "scoring_plan",
    "select",
]

def _auto_architectures() -> tuple[str, ...]:
    """The deep architectures that ask to be ``auto`` candidates (class attribute ``auto = True``)."""
    from multitask.registry import MODELS

    return tuple(name for name in MODELS.names() if getattr(MODELS.get(name), "auto", False))


#: ``--model auto``'s candidates, in order (a name whose family is not installed, or that does not fit the
#: tasks, is skipped): linear models and trees here; a deep architecture joins by setting ``auto = True``
CANDIDATES: tuple[str, ...] = (
    "linear:pooled",
    "linear:independent",
    "linear:mean-regularized",
    "linear:trace-norm",
    "gbdt:multitask",
    *_auto_architectures(),
)
#: below this mean number of labelled rows per task, models are scored by K-fold cross-validation
CV_ROWS = 2_000
#: folds of that cross-validation
FOLDS = 3
#: rounds of Caruana's greedy ensemble selection (with replacement)
ENSEMBLE_ROUNDS = 20
#: deep trials scored on the validation part are pruned (Optuna's median rule) once this many trials have
#: finished, and never before this epoch
PRUNE_AFTER_TRIALS = 3
PRUNE_AFTER_EPOCHS = 3
#: the model name of an ensemble built by ``--model auto``
ENSEMBLE = "ensemble:average"
#: probabilities are clipped to [EPS, 1 - EPS] in log losses
EPS = 1e-6
#: the lowest relative skill a task counts with
SKILL_FLOOR = -1.0
SELECTION_FILE = "selection.csv"
PREDICTIONS_DIR = "selection"
COLUMNS = ("number", "model", "options", "params", "score", "seconds", "status")

#: what a failed trial raises (anything else is a bug and stops the search)
_FAILURES = (MultitaskError, ArithmeticError, np.linalg.LinAlgError)


@dataclass
class Selection:
    """What selection chose, and how every candidate or trial scored.

    ``cfg`` is the chosen configuration (model name and options) that the run then fits on its training and
    validation parts and reports on its test part; ``leaderboard`` has one row per candidate or trial:
    ``number, model, options, score, seconds, status`` (``"ok"``, ``"failed: why"``, ``"skipped: why"``);
    ``model`` is the chosen ensemble (also described by ``cfg``), or None for a single model.
    """

    cfg: RunConfig
    leaderboard: list[dict[str, Any]]
    model: Model | None = None


# ---- the score ------------------------------------------------------------------------------------------------
def row_losses(task: Task, y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per-row loss of the score: squared error, log loss, cross-entropy, or mean log loss over labels."""
    y = np.asarray(y)
    pred = np.asarray(pred, dtype=np.float64)
    if task.kind == "regression":
        return np.asarray((pred - y.astype(np.float64)) ** 2)
    p = np.clip(pred, EPS, 1.0 - EPS)
    if task.kind == "multiclass":
        return np.asarray(-np.log(p[np.arange(len(y)), y.astype(np.int64)]))
    y = y.astype(np.float64)
    loss = -(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))
    return np.asarray(loss.mean(axis=1) if loss.ndim == 2 else loss)


def constant_prediction(task: Task, y: np.ndarray, size: int) -> np.ndarray:
    """What the constant predictor fitted on ``y`` predicts for every row: the mean, or class frequencies."""
    if task.kind == "multiclass":
        return np.bincount(np.asarray(y, dtype=np.int64), minlength=size) / max(len(y), 1)
    return np.asarray(np.mean(np.asarray(y, dtype=np.float64), axis=0))


def relative_skill(loss: float, constant_loss: float | None) -> float | None:
    """``max(-1, 1 - loss / constant_loss)``; None where the constant's loss is 0 or unknown."""
    if constant_loss is None or not constant_loss > 0 or not math.isfinite(loss):
        return None
    return max(SKILL_FLOOR, 1.0 - loss / constant_loss)


def weighted_score(tasks: list[Task], skills: dict[str, float | None]) -> float | None:
    """``Σ_t w_t s_t / Σ_t w_t`` over the tasks with a skill (unweighted if those weights are all 0)."""
    defined = [(t.weight, s) for t in tasks if (s := skills.get(t.name)) is not None]
    if not defined:
        return None
    total = sum(w for w, _ in defined)
    if total <= 0:
        return float(np.mean([s for _, s in defined]))
    return float(sum(w * s for w, s in defined) / total)


# ---- which rows score a model -------------------------------------------------------------------------------------
class _Fitter(Protocol):
    """What a scoring plan fits: a :class:`~multitask.models.Model`, or the constant reference."""

    uses_validation: ClassVar[bool]

    def fit(self, tasks: Sequence[Task], pre: Preprocessor, train: Arrays, valid: Arrays) -> Any: ...

    def predict(self, data: Arrays) -> Predictions: ...


@dataclass(frozen=True)
class Fold:
    """One fit: ``train``/``valid`` for a model that learns from validation rows, ``fit`` (both) for one that
    does not; it predicts ``rows`` (per source) of the plan's pool."""

    fit: Arrays
    train: Arrays
    valid: Arrays
    rows: dict[str, np.ndarray]


@dataclass
class ScoringPlan:
    """The rows that score models (``pool``), the fits that predict them, and each task's scored rows."""

    tasks: list[Task]
    pre: Preprocessor
    pool: Arrays
    folds: list[Fold]
    method: str
    scored: dict[str, np.ndarray] = field(default_factory=dict)  # task -> rows of its source in the pool
    targets: dict[str, np.ndarray] = field(default_factory=dict)  # task -> targets on those rows
    constant_loss: dict[str, float | None] = field(default_factory=dict)
    monitor: str | None = None  # the one task that decides (--monitor); None: the weighted mean over tasks

    def predictions(self, make: Callable[[], _Fitter]) -> Predictions:
        """Each task's predictions on its scored rows, every row predicted by a model not fitted on it."""
        out: dict[str, np.ndarray] = {}
        position = {t.name: self._positions(t.name) for t in self.tasks}
        for fold in self.folds:
            model = make()
            model.fit(self.tasks, self.pre, fold.train if model.uses_validation else fold.fit, fold.valid)
            pred = model.predict(self.pool.subset(fold.rows))
            for t in self.tasks:
                where = position[t.name][fold.rows[self.pool.task_source[t.name]]]
                keep = where >= 0
                values = np.asarray(pred[t.name], dtype=np.float64)[keep]
                if not np.isfinite(values).all():
                    raise TrainingDivergedError(f"task {t.name!r}: the model predicts non-finite values")
                if t.name not in out:
                    out[t.name] = np.full((len(self.scored[t.name]), *values.shape[1:]), np.nan)
                out[t.name][where[keep]] = values
        return out

    def skills(self, predictions: Predictions) -> dict[str, float | None]:
        """Each task's relative skill on its scored rows."""
        out: dict[str, float | None] = {}
        for t in self.tasks:
            y = self.targets[t.name]
            if len(y) == 0:
                out[t.name] = None
                continue
            out[t.name] = relative_skill(float(row_losses(t, y, predictions[t.name]).mean()),
                                         self.constant_loss[t.name])
        return out

    def score(self, predictions: Predictions) -> float | None:
        """The weighted mean over tasks of the relative skill (module docstring), or the monitored task's
        skill alone; None if no task is scored."""
        skills = self.skills(predictions)
        if self.monitor is not None:
            return skills.get(self.monitor)
        return weighted_score(self.tasks, skills)

    def score_on(self, predictions: Predictions, rows: dict[str, np.ndarray] | None = None) -> float | None:
        """:meth:`score` on a subset of each task's scored rows (``rows[task]``: a boolean mask over them)."""
        if rows is None:
            return self.score(predictions)
        skills: dict[str, float | None] = {}
        for t in self.tasks:
            keep = rows[t.name]
            y = self.targets[t.name][keep]
            skills[t.name] = (relative_skill(float(row_losses(t, y, predictions[t.name][keep]).mean()),
                                             self.constant_loss[t.name]) if len(y) else None)
        if self.monitor is not None:
            return skills.get(self.monitor)
        return weighted_score(self.tasks, skills)

    def _positions(self, task: str) -> np.ndarray:
        pos = np.full(self.pool.n_rows(self.pool.task_source[task]), -1, dtype=np.int64)
        pos[self.scored[task]] = np.arange(len(self.scored[task]))
        return pos


def _parts(arrays: Arrays, source: str, k: int, rng: np.random.Generator) -> np.ndarray:
    """Part ``0..k-1`` of each row, stratified by task (a row goes with the first task that labels it); -1:
    a row in no part (unlabelled, or moved out so that each task has a labelled row outside every part)."""
    n = arrays.n_rows(source)
    tasks = arrays.tasks_of(source)
    group = np.full(n, -1, dtype=np.int64)
    for i, t in enumerate(tasks):
        group[(group == -1) & arrays.masks[t]] = i
    part = np.full(n, -1, dtype=np.int64)
    for g in np.unique(group[group >= 0]):
        rows = rng.permutation(np.flatnonzero(group == g))
        part[rows] = (np.arange(len(rows)) + rng.integers(k)) % k
    for t in tasks:
        labelled = arrays.masks[t]
        for j in range(k):
            if not (labelled & (part != j)).any():
                inside = np.flatnonzero(labelled & (part == j))
                if len(inside):
                    part[rng.choice(inside)] = -1
    return part


def scoring_plan(p: Prepared, seed: int = 0, valid_fraction: float = 0.2, folds: int = FOLDS,
                 monitor: str | None = None) -> ScoringPlan:
    """How models are scored on ``p``: K-fold cross-validation over training and validation parts together
    when tasks have fewer than :data:`CV_ROWS` labelled rows on average, else the validation part."""
    both = p.train.concat(p.valid)
    tasks = p.tasks
    per_task = float(np.mean([both.n_labelled(t.name) for t in tasks]))
    if per_task < CV_ROWS:
        rng = np.random.default_rng([seed, 17])
        part = {s: _parts(both, s, folds, rng) for s in both.sources}
        inner_parts = max(2, round(1.0 / valid_fraction))
        fold_list = []
        for k in range(folds):
            fit = both.subset({s: np.flatnonzero(part[s] != k) for s in both.sources})
            inner = {s: _parts(fit, s, inner_parts, rng) for s in fit.sources}
            fold_list.append(Fold(
                fit=fit,
                train=fit.subset({s: np.flatnonzero(inner[s] != 0) for s in fit.sources}),
                valid=fit.subset({s: np.flatnonzero(inner[s] == 0) for s in fit.sources}),
                rows={s: np.flatnonzero(part[s] == k) for s in both.sources},
            ))
        plan = ScoringPlan(tasks, p.pre, both, fold_list,
                           f"{folds}-fold cross-validation ({per_task:.0f} labelled rows per task on average)")
    else:
        rows = {s: np.arange(p.valid.n_rows(s)) for s in p.valid.sources}
        plan = ScoringPlan(tasks, p.pre, p.valid, [Fold(p.train, p.train, p.valid, rows)],
                           f"the validation part ({per_task:.0f} labelled rows per task on average)")
    sizes = p.pre.output_sizes()
    for t in tasks:
        source = plan.pool.task_source[t.name]
        covered = np.zeros(plan.pool.n_rows(source), dtype=bool)
        for fold in plan.folds:
            covered[fold.rows[source]] = True
        scored = np.flatnonzero(plan.pool.masks[t.name] & covered)
        plan.scored[t.name] = scored
        plan.targets[t.name] = plan.pool.targets[t.name][scored]
    constant = plan.predictions(lambda: _Constant(sizes))
    for t in tasks:
        y = plan.targets[t.name]
        plan.constant_loss[t.name] = float(row_losses(t, y, constant[t.name]).mean()) if len(y) else None
    if monitor is not None:
        if monitor not in plan.scored:
            raise ConfigError(f"--monitor {monitor!r}: no such task; tasks: {', '.join(t.name for t in tasks[:10])}")
        plan.monitor = monitor
    return plan


class _Constant:
    """The reference of the score: per task, the mean target (or class frequencies) of the training rows."""

    uses_validation: ClassVar[bool] = False

    def __init__(self, sizes: dict[str, int]) -> None:
        self.sizes = sizes

    def fit(self, tasks: Sequence[Task], pre: Preprocessor, train: Arrays, valid: Arrays) -> _Constant:
        self.value_ = {t.name: constant_prediction(t, train.targets[t.name][train.masks[t.name]], self.sizes[t.name])
                       for t in tasks}
        self.tasks_ = list(tasks)
        return self

    def predict(self, data: Arrays) -> Predictions:
        out = {}
        for t in self.tasks_:
            n = data.n_rows(data.task_source[t.name])
            out[t.name] = np.broadcast_to(self.value_[t.name], (n, *np.shape(self.value_[t.name]))).copy()
        return out


# ---- the ensemble --------------------------------------------------------------------------------------------
def greedy_weights(task: Task, y: np.ndarray, preds: list[np.ndarray], rounds: int = ENSEMBLE_ROUNDS) -> np.ndarray:
    """Caruana's greedy ensemble selection (with replacement) for one task: the members' weights.

    Each round adds the member whose inclusion gives the average with the lowest loss of the score on ``y``;
    the weights are the counts of the best round. The first round takes the best member alone, so the
    ensemble is never worse than any member on these rows.

    References:
        Caruana, Niculescu-Mizil, Crew & Ksikes, "Ensemble selection from libraries of models", ICML 2004.
    """
    counts = np.zeros(len(preds))
    total = np.zeros_like(preds[0])
    best, best_counts = math.inf, counts
    for r in range(1, rounds + 1):
        losses = [float(row_losses(task, y, (total + q) / r).mean()) for q in preds]
        j = int(np.argmin(losses))
        counts = counts.copy()
        counts[j] += 1
        total = total + preds[j]
        if losses[j] < best:
            best, best_counts = losses[j], counts
    return np.asarray(best_counts / best_counts.sum())


def caruana(plan: ScoringPlan, members: list[Predictions], rounds: int = ENSEMBLE_ROUNDS,
            fallback: int = 0) -> dict[str, list[float]]:
    """Per task, :func:`greedy_weights` over the members' held-out predictions on all scored rows; a task
    without scored rows takes member ``fallback`` alone."""
    weights: dict[str, list[float]] = {}
    for t in plan.tasks:
        y = plan.targets[t.name]
        if len(y) == 0:
            weights[t.name] = [1.0 if i == fallback else 0.0 for i in range(len(members))]
        else:
            weights[t.name] = greedy_weights(t, y, [m[t.name] for m in members], rounds).tolist()
    return weights


def shared_weights(plan: ScoringPlan, members: list[Predictions], rows: dict[str, np.ndarray] | None = None,
                   rounds: int = ENSEMBLE_ROUNDS) -> np.ndarray:
    """Caruana's greedy selection with one weight vector for every task, chosen on the score over all tasks
    (on ``rows`` of each task when given): a few weights fitted on all rows, where per-task weights fitted on
    a small task's few rows would chase noise."""
    counts = np.zeros(len(members))
    total = {t.name: np.zeros_like(members[0][t.name], dtype=np.float64) for t in plan.tasks}
    best, best_counts = -math.inf, counts
    for r in range(1, rounds + 1):
        scores = []
        for m in members:
            score = plan.score_on({t: (total[t] + m[t]) / r for t in total}, rows)
            scores.append(-math.inf if score is None else score)
        j = int(np.argmax(scores))
        counts = counts.copy()
        counts[j] += 1
        total = {t: total[t] + members[j][t] for t in total}
        if scores[j] > best:
            best, best_counts = scores[j], counts
    if not best_counts.any():
        best_counts = np.eye(len(members))[0]
    return np.asarray(best_counts / best_counts.sum())


def crossfit_shared(plan: ScoringPlan, members: list[Predictions], seed: int = 0, folds: int = FOLDS,
                    rounds: int = ENSEMBLE_ROUNDS) -> Predictions:
    """:func:`shared_weights`' ensemble on each scored row with the weights chosen on the other parts of every
    task's rows: its honest score, as :func:`crossfit_ensemble` is for per-task weights."""
    rng = np.random.default_rng([seed, 31])
    part = {t.name: rng.permutation(len(plan.targets[t.name])) % folds for t in plan.tasks}
    out: Predictions = {t.name: np.array(members[0][t.name], dtype=np.float64, copy=True) for t in plan.tasks}
    for j in range(folds):
        w = shared_weights(plan, members, {t: p != j for t, p in part.items()}, rounds)
        for t in plan.tasks:
            inside = part[t.name] == j
            out[t.name][inside] = sum(wm * m[t.name][inside] for wm, m in zip(w, members, strict=True))
    return out


def crossfit_ensemble(plan: ScoringPlan, members: list[Predictions], seed: int = 0, folds: int = FOLDS,
                      rounds: int = ENSEMBLE_ROUNDS, fallback: int = 0) -> Predictions:
    """The ensemble's predictions on each scored row with weights chosen on the task's other rows (K parts):
    an honest estimate of the ensemble's score, where :func:`caruana`'s own rows would flatter it."""
    rng = np.random.default_rng([seed, 29])
    out: Predictions = {}
    for t in plan.tasks:
        y = plan.targets[t.name]
        preds = [m[t.name] for m in members]
        out[t.name] = np.array(preds[fallback], dtype=np.float64, copy=True)
        part = rng.permutation(len(y)) % folds
        for j in range(folds):
            inside, outside = part == j, part != j
            if not inside.any() or not outside.any():
                continue
            w = greedy_weights(t, y[outside], [q[outside] for q in preds], rounds)
            out[t.name][inside] = sum(wm * q[inside] for wm, q in zip(w, preds, strict=True))
    return out


# ---- the record: selection.csv and saved held-out predictions --------------------------------------------------------
class _Record:
    """The rows of ``selection.csv`` (rewritten atomically after each trial) and, for ``auto``, each trial's
    held-out predictions in ``selection/NNNN.npz`` (what the ensemble is built from after a resume)."""

    def __init__(self, out: Path | None, tasks: list[Task], resume: bool) -> None:
        self.out = out
        self.tasks = tasks
        self.rows: list[dict[str, Any]] = []
        self.previous: list[dict[str, Any]] = []
        if out is not None and resume and (out / SELECTION_FILE).is_file():
            self.previous = [r for r in _read_csv(out / SELECTION_FILE) if r["model"] != ENSEMBLE]

    def earlier(self, model: str) -> list[dict[str, Any]]:
        """The rows of ``model`` written by the run being resumed, in order (taken out of the pending list)."""
        mine = [r for r in self.previous if r["model"] == model]
        self.previous = [r for r in self.previous if r["model"] != model]
        return mine

    def add(self, row: dict[str, Any], predictions: Predictions | None = None) -> dict[str, Any]:
        row = {"number": len(self.rows), **{k: v for k, v in row.items() if k != "number"}}
        if self.out is not None and is_main_process():
            if predictions is not None:
                self._save_predictions(row["number"], predictions)
        self.rows.append(row)
        self.write()
        return row

    def keep(self, row: dict[str, Any]) -> dict[str, Any]:
        """A row of the resumed run, renumbered (its saved predictions move with it)."""
        old, new = row["number"], len(self.rows)
        if self.out is not None and old != new and is_main_process():
            src = self._predictions_path(old)
            if src.is_file():
                src.replace(self._predictions_path(new))
        row = {**row, "number": new}
        self.rows.append(row)
        return row

    def load_predictions(self, number: int) -> Predictions | None:
        if self.out is None:
            return None
        path = self._predictions_path(number)
        try:
            with np.load(path, allow_pickle=False) as f:
                return {t.name: np.asarray(f[f"t{i}"]) for i, t in enumerate(self.tasks)}
        except (OSError, KeyError, ValueError):
            return None

    def write(self) -> None:
        if self.out is None or not is_main_process():
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({
                **r,
                "options": strict_json(r["options"], indent=None),
                "params": strict_json(r.get("params", {}), indent=None),
                "score": "" if r["score"] is None else repr(float(r["score"])),
                "seconds": f"{r['seconds']:.3f}",
            })
        self.out.mkdir(parents=True, exist_ok=True)
        write_text(self.out / SELECTION_FILE, buf.getvalue())

    def _predictions_path(self, number: int) -> Path:
        assert self.out is not None
        return self.out / PREDICTIONS_DIR / f"{number:04d}.npz"

    def _save_predictions(self, number: int, predictions: Predictions) -> None:
        path = self._predictions_path(number)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        arrays: dict[str, Any] = {f"t{i}": predictions[t.name] for i, t in enumerate(self.tasks)}
        np.savez(buf, **arrays)
        atomic_write(path, lambda f: f.write(buf.getvalue()))


def _read_csv(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``selection.csv``; CheckpointError naming the row that cannot be read."""
    rows = []
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise CheckpointError(f"{path}: not a selection file (columns {', '.join(COLUMNS)} expected)")
            for i, r in enumerate(reader, start=2):
                try:
                    rows.append({
                        "number": int(r["number"]),
                        "model": r["model"],
                        "options": json.loads(r["options"]),
                        "params": json.loads(r["params"]),
                        "score": float(r["score"]) if r["score"] else None,
                        "seconds": float(r["seconds"]),
                        "status": r["status"],
                    })
                except (TypeError, ValueError) as e:
                    raise CheckpointError(f"{path}: line {i} cannot be read ({e})") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CheckpointError(f"{path}: cannot be read ({e})") from None
    return rows


# ---- trials ------------------------------------------------------------------------------------------------------
def apply(cfg: RunConfig, options: dict[str, Any]) -> RunConfig:
    """``cfg`` with ``{"model_options.NAME": value, "train.NAME": value}`` set."""
    model_options, train = dict(cfg.model_options), {}
    for path, value in options.items():
        where, _, key = path.partition(".")
        if where == "model_options" and key:
            model_options[key] = value
        elif where == "train" and key:
            if key not in type(cfg.train).model_fields:
                raise ConfigError(f"search space of {cfg.model}: unknown train option {key!r}")
            train[key] = value
        else:
            raise ConfigError(f"search space of {cfg.model}: {path!r} is neither model_options.NAME nor train.NAME")
    return cfg.model_copy(update={"model_options": model_options, "train": cfg.train.model_copy(update=train)})


@dataclass
class _Outcome:
    score: float | None
    seconds: float
    status: str
    predictions: Predictions | None = None


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _evaluate(cfg: RunConfig, plan: ScoringPlan, trial: Any = None) -> _Outcome:
    """Fit ``cfg``'s model on each fold and score it; a MultitaskError or non-finite output is a failure.

    With an Optuna ``trial`` and one fold (the validation part), a model that reports per epoch (deep) reports
    its validation loss, and the trial is pruned when the pruner says so (status ``pruned``).
    """
    import optuna

    quiet = cfg.model_copy(update={"train": cfg.train.model_copy(update={"progress": False})})
    start = time.perf_counter()

    def make() -> Model:
        model = _checked(quiet, plan)
        if trial is not None and len(plan.folds) == 1 and hasattr(model, "on_epoch"):
            model.on_epoch = lambda epoch, loss: _report(trial, epoch, loss)
        return model

    try:
        predictions = plan.predictions(make)
    except optuna.TrialPruned as e:
        return _Outcome(None, time.perf_counter() - start, f"pruned: {_one_line(e)}")
    except _FAILURES as e:
        return _Outcome(None, time.perf_counter() - start, f"failed: {_one_line(e)}")
    score = plan.score(predictions)
    seconds = time.perf_counter() - start
    if score is None:
        return _Outcome(None, seconds, "failed: no task has labelled rows to score on")
    return _Outcome(score, seconds, "ok", predictions)


def _report(trial: Any, epoch: int, loss: float | None) -> None:
    """Report an epoch's validation loss to ``trial`` (negated: the study maximizes); prune when told to."""
    import optuna

    if loss is None:
        return
    trial.report(-loss, epoch)
    if trial.should_prune():
        raise optuna.TrialPruned(f"validation loss {loss:.4g} at epoch {epoch} is worse than the median trial's")


def _checked(cfg: RunConfig, plan: ScoringPlan) -> Model:
    model = models.make(cfg)
    model.check(plan.tasks, plan.pre)
    return model


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's own logger at WARNING (trials are logged here), restored afterwards."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def _distribution(p: Param) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if p.choices is not None:
        return CategoricalDistribution(p.choices)
    if p.low is None or p.high is None:
        raise ConfigError(f"search space: {p.path!r} has neither a range nor choices")
    if p.integer:
        return IntDistribution(int(p.low), int(p.high), log=p.log)
    return FloatDistribution(float(p.low), float(p.high), log=p.log)


@dataclass
class _Best:
    """The best row of one candidate so far, with its configuration and held-out predictions."""

    row: dict[str, Any] | None = None
    cfg: RunConfig | None = None
    predictions: Predictions | None = None

    def offer(self, row: dict[str, Any], cfg: RunConfig, predictions: Predictions | None) -> None:
        if row["score"] is not None and (self.row is None or row["score"] > self.row["score"]):
            self.row, self.cfg, self.predictions = row, cfg, predictions


def _run_candidate(cfg: RunConfig, trials: int | None, plan: ScoringPlan, record: _Record,
                   keep_predictions: bool) -> _Best:
    """``cfg``'s model with its options (``trials`` None), or ``trials`` Optuna trials over its search space."""
    best = _Best()
    earlier = record.earlier(cfg.model)
    if trials is None:
        if earlier:
            row = record.keep(earlier[0])
            best.offer(row, apply(cfg, row["options"]), _restore(row, cfg, plan, record, keep_predictions))
            return best
        outcome = _evaluate(cfg, plan)
        row = record.add(_row(cfg.model, {}, {}, outcome), outcome.predictions if keep_predictions else None)
        _log(row)
        best.offer(row, cfg, outcome.predictions)
        return best
    import optuna
    from optuna.samplers import TPESampler
    from optuna.trial import TrialState, create_trial

    space = models.family(cfg.model).search_space(cfg.model, plan.tasks)
    if not space:
        raise ConfigError(f"--search: model {cfg.model!r} has no options to search")
    dists = {p.path: _distribution(p) for p in space}
    decode = {p.path: p.decode for p in space}
    with _quiet_optuna():
        study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(
            n_startup_trials=PRUNE_AFTER_TRIALS, n_warmup_steps=PRUNE_AFTER_EPOCHS))
        for row in earlier[:trials]:
            row = record.keep(row)
            try:
                study.add_trial(create_trial(
                    params=row["params"], distributions=dists,
                    state=TrialState.COMPLETE if row["score"] is not None else TrialState.FAIL, value=row["score"],
                ))
            except ValueError as e:
                raise CheckpointError(f"{SELECTION_FILE}: trial {row['number']} of {cfg.model} does not fit "
                                      f"its search space ({_one_line(e)}); train into a new --out") from None
            best.offer(row, apply(cfg, row["options"]), None)
        if best.row is not None and keep_predictions:
            assert best.cfg is not None
            best.predictions = _restore(best.row, best.cfg, plan, record, True)
        for k in range(len(study.trials), trials):
            study.sampler = TPESampler(seed=int(np.random.SeedSequence([cfg.train.seed, k]).generate_state(1)[0]))
            trial = study.ask(fixed_distributions=dists)
            options = {path: decode[path](value) for path, value in trial.params.items()}
            tcfg = apply(cfg, options)
            outcome = _evaluate(tcfg, plan, trial)
            if outcome.score is not None:
                study.tell(trial, outcome.score)
            else:
                study.tell(trial, state=TrialState.PRUNED if outcome.status.startswith("pruned") else TrialState.FAIL)
            row = record.add(_row(cfg.model, options, trial.params, outcome),
                             outcome.predictions if keep_predictions else None)
            _log(row)
            best.offer(row, tcfg, outcome.predictions)
    return best


def _restore(row: dict[str, Any], cfg: RunConfig, plan: ScoringPlan, record: _Record,
             keep_predictions: bool) -> Predictions | None:
    """The held-out predictions of a row of the resumed run: saved, else fitted again (deterministic)."""
    if not keep_predictions or row["score"] is None:
        return None
    saved = record.load_predictions(row["number"])
    if saved is not None and all(saved[t.name].shape[:1] == plan.scored[t.name].shape for t in plan.tasks):
        return saved
    outcome = _evaluate(apply(cfg, row["options"]), plan)
    if outcome.predictions is not None and record.out is not None and is_main_process():
        record._save_predictions(row["number"], outcome.predictions)
    return outcome.predictions


def _row(model: str, options: dict[str, Any], params: dict[str, Any], outcome: _Outcome) -> dict[str, Any]:
    return {"model": model, "options": options, "params": params, "score": outcome.score,
            "seconds": outcome.seconds, "status": outcome.status}


def _log(row: dict[str, Any]) -> None:
    score = "—" if row["score"] is None else f"{row['score']:.4f}"
    options = strict_json(row["options"], indent=None)
    log.info("selection %d: %s %s score %s (%.1f s) %s", row["number"], row["model"],
             options if len(options) <= 200 else options[:199] + "…", score, row["seconds"], row["status"])


# ---- select ---------------------------------------------------------------------------------------------------
def not_applicable(cfg: RunConfig, p: Prepared) -> str | None:
    """Why a candidate of ``auto`` does not apply to the tasks (None when it does)."""
    from multitask.runs import check_poolable

    try:
        family = models.family(cfg.model)
        family.from_config(cfg).check(p.tasks, p.pre)
        if family.pooled(cfg.model) == cfg.model:
            check_poolable(cfg, p)
    except (MultitaskError, ImportError) as e:
        return _one_line(e).removeprefix("--baseline pooled: ")
    return None


def select(cfg: RunConfig, p: Prepared, out: Path | None, *, resume: bool) -> Selection:
    """Choose the model (``cfg.model == "auto"``) or its options (``cfg.search`` trials) by the score above.

    Writes ``out/selection.csv`` after every trial; with ``resume``, the trials already there are not run
    again. Raises ConfigError when every candidate or trial fails, naming the first failure.
    """
    plan = scoring_plan(p, cfg.train.seed, cfg.valid_fraction, monitor=cfg.train.monitor)
    log.info("selection: models are scored by %s", plan.method)
    record = _Record(out, p.tasks, resume)
    if cfg.model != AUTO:
        best = _run_candidate(cfg, cfg.search, plan, record, keep_predictions=False)
        if best.cfg is None:
            raise ConfigError(f"--search: every trial of {cfg.model} failed; the first: {record.rows[0]['status']}")
        return Selection(best.cfg, record.rows)

    bests: list[_Best] = []
    for name in CANDIDATES:
        ccfg = cfg.model_copy(update={"model": name, "model_options": {}, "cv": None})
        why = not_applicable(ccfg, p)
        if why is None:
            bests.append(_run_candidate(ccfg, cfg.search, plan, record, keep_predictions=True))
            continue
        log.info("selection: %s skipped: %s", name, why)
        record.earlier(name)  # a resumed run's row for it is written again
        record.add({"model": name, "options": {}, "params": {}, "score": None, "seconds": 0.0,
                    "status": f"skipped: {why}"})
    scored = [b for b in bests if b.row is not None]
    if not scored:
        tried = [r for r in record.rows if not r["status"].startswith("skipped")]
        if not tried:
            raise ConfigError("--model auto: no candidate fits these tasks; "
                              + "; ".join(f"{r['model']}: {r['status']}" for r in record.rows))
        raise ConfigError(f"--model auto: every candidate failed; the first: {tried[0]['model']}: {tried[0]['status']}")
    scored.sort(key=lambda b: -b.row["score"])  # type: ignore[index]
    top = scored[0]
    assert top.cfg is not None and top.row is not None
    chosen = Selection(top.cfg, record.rows)
    with_predictions = [b for b in scored if b.predictions is not None]
    if len(with_predictions) >= 2:
        ensemble = _ensemble(cfg, plan, with_predictions, record)
        if ensemble is not None:
            return ensemble
    log.info("selection: chose %s (score %.4f)", top.cfg.model, top.row["score"])
    return chosen


def _ensemble(cfg: RunConfig, plan: ScoringPlan, bests: list[_Best], record: _Record) -> Selection | None:
    """Caruana's ensemble of the candidates' best configurations (``bests``, best first), recorded as one more
    row; its score is :func:`crossfit_ensemble`'s. None when it does not beat the best single candidate."""
    from multitask.models._ensemble import Ensemble

    start = time.perf_counter()
    held_out = [b.predictions for b in bests if b.predictions is not None]
    # per-task weights, or one weight vector for all tasks: whichever scores better on rows it was not chosen on
    per_task = caruana(plan, held_out)
    per_task_score = plan.score(crossfit_ensemble(plan, held_out, cfg.train.seed))
    shared = shared_weights(plan, held_out).tolist()
    shared_score = plan.score(crossfit_shared(plan, held_out, cfg.train.seed))
    if shared_score is not None and (per_task_score is None or shared_score >= per_task_score):
        weights, how = {t.name: shared for t in plan.tasks}, "shared"
    else:
        weights, how = per_task, "per task"
    used = [i for i in range(len(held_out)) if any(w[i] > 0 for w in weights.values())]
    if len(used) < 2:
        return None  # every task takes the same single model: nothing to ensemble
    members: list[dict[str, Any]] = []
    base = cfg.train.model_dump()
    for i in used:
        bcfg = bests[i].cfg
        assert bcfg is not None
        train = {k: v for k, v in bcfg.train.model_dump(mode="json").items() if v != base[k] and k != "progress"}
        members.append({"model": bcfg.model, "model_options": bcfg.model_options, "train": train})
    weights = {t: [w[i] for i in used] for t, w in weights.items()}
    score = shared_score if how == "shared" else per_task_score
    log.info("selection: ensemble weights %s (cross-fitted score %s)", how, score)
    options = {"model_options.members": members, "model_options.weights": weights}
    ecfg = apply(cfg.model_copy(update={"model": ENSEMBLE, "model_options": {}, "cv": None}), options)
    row = record.add({"model": ENSEMBLE, "options": options, "params": {}, "score": score,
                      "seconds": time.perf_counter() - start, "status": "ok"})
    _log(row)
    best_single = max(b.row["score"] for b in bests if b.row is not None)
    if score is None or score <= best_single:
        log.info("selection: the ensemble (%s) does not beat the best single model (%.4f)",
                 "—" if score is None else f"{score:.4f}", best_single)
        return None
    log.info("selection: chose the ensemble of %s (score %.4f)", ", ".join(m["model"] for m in members), score)
    return Selection(ecfg, record.rows, Ensemble.from_config(ecfg))
