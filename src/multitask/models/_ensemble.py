"""The ensemble family: per task, a weighted average of other models' predictions (``ensemble:average``).

``--model auto`` builds one by Caruana's greedy selection (see :mod:`multitask.selection`); it can also be
given by hand::

    model: ensemble:average
    model_options:
      members: [linear:trace-norm, {model: gbdt:multitask, model_options: {num_leaves: 8}}]
      weights: {math: [0.75, 0.25]}     # per task, one weight per member; a task left out: equal weights

A member is a model name, or ``{model, model_options, train}`` where ``train`` holds the training options
that differ from the run's. Files in the run directory: ``ensemble.json`` (the members, their options and
each task's weights; strict JSON) and ``members/NNN/`` with member ``NNN``'s own files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from multitask._rundir import strict_json, write_text
from multitask.data.arrays import Arrays
from multitask.data.preprocess import Preprocessor
from multitask.errors import CheckpointError, ConfigError
from multitask.models._base import Model, Param, Predictions
from multitask.tasks import Task
from multitask.train import is_main_process

if TYPE_CHECKING:
    from typing import Self

    from multitask.config import RunConfig

ENSEMBLE_FILE = "ensemble.json"
ENSEMBLE_FORMAT = "multitask-ensemble/1"
MEMBERS_DIR = "members"


def average(predictions: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Per-task weighted average of the members' predictions: ``Σ_m w_m p_m / Σ_m w_m``.

    Predictions are values (regression) or probabilities (classification), so the average of probabilities
    is again a probability.
    """
    w = np.asarray(weights, dtype=np.float64)
    total = np.zeros(np.shape(predictions[0]), dtype=np.float64)
    for p, wm in zip(predictions, w, strict=True):
        if wm > 0:
            total += wm * np.asarray(p, dtype=np.float64)
    return total / w.sum()


def member_dir(run_dir: Path, index: int) -> Path:
    return run_dir / MEMBERS_DIR / f"{index:03d}"


def _member(spec: Any, where: str) -> dict[str, Any]:
    """A member as ``{model, model_options, train}`` from a name or a mapping."""
    from multitask.models import check_name, family_name

    if isinstance(spec, str):
        spec = {"model": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("model"), str):
        raise ConfigError(f"{where}: a member is a model name or {{model, model_options, train}}, got {spec!r}")
    unknown = sorted(set(spec) - {"model", "model_options", "train"})
    if unknown:
        raise ConfigError(f"{where}: unknown member option {unknown[0]!r} (model, model_options, train)")
    name = check_name(spec["model"])
    if family_name(name) == "ensemble":
        raise ConfigError(f"{where}: an ensemble's member cannot be an ensemble ({name!r})")
    for key in ("model_options", "train"):
        if not isinstance(spec.get(key, {}), dict):
            raise ConfigError(f"{where}: member {name!r}: {key} must be a mapping, got {spec[key]!r}")
    return {"model": name, "model_options": dict(spec.get("model_options", {})), "train": dict(spec.get("train", {}))}


class Ensemble:
    """Per task, a weighted average of member models' predictions (weights from Caruana's selection)."""

    family: ClassVar[str] = "ensemble"
    #: members that early-stop get the validation rows; the others are fitted on the training rows only
    uses_validation: ClassVar[bool] = True

    def __init__(self, name: str, configs: Sequence[RunConfig], weights: dict[str, list[float]] | None = None) -> None:
        self.name = name
        self.configs = list(configs)
        self.weights = {t: list(w) for t, w in (weights or {}).items()}

    @classmethod
    def from_config(cls, cfg: RunConfig) -> Self:
        options = dict(cfg.model_options)
        where = f"model_options for {cfg.model}"
        unknown = sorted(set(options) - {"members", "weights"})
        if unknown:
            raise ConfigError(f"{where}: unknown option {unknown[0]!r} (members, weights)")
        specs = options.get("members")
        if not isinstance(specs, list) or not specs:
            raise ConfigError(f"{where}: give members, a non-empty list of model names or {{model, model_options}}")
        weights = options.get("weights", {})
        if not isinstance(weights, dict):
            raise ConfigError(f"{where}: weights must map each task to one weight per member, got {weights!r}")
        base = cfg.train.model_dump()
        configs = []
        for spec in (_member(s, where) for s in specs):
            unknown = sorted(set(spec["train"]) - set(base))
            if unknown:
                raise ConfigError(f"{where}: member {spec['model']!r}: unknown train option {unknown[0]!r}")
            train = cfg.train.model_copy(update=spec["train"]) if spec["train"] else cfg.train
            configs.append(cfg.model_copy(update={"model": spec["model"], "model_options": spec["model_options"],
                                                  "cv": None, "train": train}))
        return cls(cfg.model, configs, weights)

    def members(self) -> list[dict[str, Any]]:
        """The members as ``{model, model_options, train}`` (``train``: every training option)."""
        return [{"model": c.model, "model_options": c.model_options, "train": c.train.model_dump(mode="json")}
                for c in self.configs]

    def task_weights(self, task: str) -> list[float]:
        """The weights of ``task``'s average, one per member (equal weights when none were given)."""
        return self.weights.get(task, [1.0] * len(self.configs))

    def check(self, tasks: Sequence[Task], pre: Preprocessor) -> None:
        from multitask.models import make

        where = f"model_options for {self.name}"
        for task, w in self.weights.items():
            if not isinstance(w, list) or len(w) != len(self.configs):
                raise ConfigError(f"{where}: weights of task {task!r} must be a list of {len(self.configs)} numbers")
            if not all(isinstance(v, int | float) and math.isfinite(v) and v >= 0 for v in w) or sum(w) <= 0:
                raise ConfigError(f"{where}: weights of task {task!r} must be finite, >= 0 and not all 0, got {w}")
        for cfg in self.configs:
            make(cfg).check(tasks, pre)

    def fit(
        self,
        tasks: Sequence[Task],
        pre: Preprocessor,
        train: Arrays,
        valid: Arrays,
        run_dir: Path | None = None,
        *,
        resume: bool = False,
    ) -> Self:
        from multitask.models import make

        self.check(tasks, pre)
        fitted: list[Model] = []
        for i, cfg in enumerate(self.configs):
            model = make(cfg)
            where = member_dir(run_dir, i) if run_dir is not None else None
            fitted.append(model.fit(tasks, pre, train, valid, where, resume=resume))
        self.members_ = fitted
        self.tasks_ = list(tasks)
        return self

    def predict(self, data: Arrays) -> Predictions:
        """Each task's per-task weighted average of the members' predictions (probabilities for classes)."""
        outputs = [m.predict(data) for m in self.members_]
        return {t.name: average([o[t.name] for o in outputs], self.task_weights(t.name)) for t in self.tasks_}

    def save(self, run_dir: Path) -> None:
        for i, model in enumerate(self.members_):
            where = member_dir(run_dir, i)
            if is_main_process():
                where.mkdir(parents=True, exist_ok=True)
            model.save(where)
        if is_main_process():
            weights = {t.name: self.task_weights(t.name) for t in self.tasks_}
            write_text(run_dir / ENSEMBLE_FILE, strict_json({
                "format": ENSEMBLE_FORMAT, "model": self.name, "members": self.members(), "weights": weights,
            }))

    @classmethod
    def load(cls, name: str, run_dir: Path, tasks: Sequence[Task], pre: Preprocessor) -> Self:
        from multitask.models import family
        from multitask.train import TrainConfig

        path = run_dir / ENSEMBLE_FILE
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise CheckpointError(f"{path}: no such file (the run has no ensemble)") from None
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{path}: corrupted ({e})") from None
        if not isinstance(d, dict) or d.get("format") != ENSEMBLE_FORMAT:
            raise CheckpointError(f"{path}: not written by multitask (format {ENSEMBLE_FORMAT!r} expected)")
        members, weights = d.get("members"), d.get("weights")
        if not isinstance(members, list) or not members or not isinstance(weights, dict):
            raise CheckpointError(f"{path}: field 'members' or 'weights' is missing or invalid")
        missing = [t.name for t in tasks if not isinstance(weights.get(t.name), list)
                   or len(weights[t.name]) != len(members)]
        if missing:
            raise CheckpointError(f"{path}: no weights of {len(members)} members for task {missing[0]!r}")
        fitted: list[Model] = []
        try:
            specs = [_member(m, str(path)) for m in members]
        except ConfigError as e:
            raise CheckpointError(str(e)) from None
        for i, spec in enumerate(specs):
            fitted.append(family(spec["model"]).load(spec["model"], member_dir(run_dir, i), tasks, pre))
        from multitask.config import RunConfig

        configs = [RunConfig.model_construct(model=s["model"], model_options=s["model_options"],
                                             train=TrainConfig.model_construct(**s["train"])) for s in specs]
        model = cls(name, configs, {t.name: [float(v) for v in weights[t.name]] for t in tasks})
        model.members_, model.tasks_ = fitted, list(tasks)
        return model

    @classmethod
    def search_space(cls, name: str, tasks: Sequence[Task]) -> list[Param]:
        """Nothing: the members and their weights come from model selection (``--model auto``)."""
        return []

    @classmethod
    def pooled(cls, name: str) -> str:
        """The pooled reference of an ensemble: pooled gradient-boosted trees (any tabular task kind)."""
        return "gbdt:pooled"
