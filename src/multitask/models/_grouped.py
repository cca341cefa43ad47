"""Training by groups: one model per group of tasks, composed into one model of all the tasks.

    multitask train --dataset synthetic --groups auto --out runs/grouped
    multitask train --data scores.csv --task math:regression --task art:regression --groups groups.json --out g

``groups`` (the run option) is the partition of the tasks:

* ``auto``: measured on the rows the members are fitted on (never a validation part that a member early-stops
  on, never a test part): the task affinity of a deep model's training (:func:`multitask.affinity.affinity`,
  ``lookahead`` by default), then the partition of :func:`multitask.affinity.best_partition`;
* a JSON file: what ``multitask group --output`` writes (``{"groups": [[task, ...], ...], ...}``), a grouped
  run's own ``groups.json``, or a plain list of lists of task names;
* in a config file or from Python, the list of lists itself.

Every task is in exactly one group. Each member is the run's model with the run's options, fitted on its
group's tasks exactly as a single-task baseline is fitted on its one task: the same split, the same
preprocessing, the same training options (a ``monitor`` task outside the group is dropped). Predictions are
the members' own, so the composed model predicts, evaluates and loads like any other.

Options of ``auto`` (``group_options``, ``--group-option KEY=VALUE``): ``measure`` (``lookahead`` or
``gradient``), ``k`` (exactly K groups; default: the best number), ``every`` (measure every K steps, default
10), ``epochs`` (of the measuring run; default: the run's), ``model`` (the deep model that measures; default:
the run's model when it is deep, else ``hard-sharing``), ``model_options`` (its options; default: the run's,
with ``head: shared`` where the architecture has heads and the run leaves them unset), ``lookahead_lr`` and
``beam_width``.

Files in the run directory: ``groups.json`` (the groups, how they were chosen, and for ``auto`` the affinity
matrix; written before the members train, so that ``--resume`` keeps them), ``affinity_MEASURE.csv``
(``auto``) and ``groups/NNN/`` with member ``NNN``'s own files.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
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

log = logging.getLogger(__name__)

AUTO = "auto"
GROUPS_FILE = "groups.json"
GROUPS_FORMAT = "multitask-groups/1"
GROUPS_DIR = "groups"
#: the deep model that measures affinity for a run whose own model is not deep
MEASURING_MODEL = "hard-sharing"
#: ``group_options`` and their defaults
OPTIONS: dict[str, Any] = {"measure": "lookahead", "k": None, "every": 10, "epochs": None, "model": None,
                           "model_options": None, "lookahead_lr": None, "beam_width": 16}
#: the head of the measuring model, where its architecture has a ``head`` option the options leave unset: with
#: one free head per task, the gradients that reach the shared part carry each head's arbitrary sign, so
#: related tasks can look opposed (see "Training by groups" in docs/affinity.md)
MEASURING_HEAD = "shared"

Groups = list[list[str]]


def member_dir(run_dir: Path, index: int) -> Path:
    return run_dir / GROUPS_DIR / f"{index:03d}"


def parse_groups(value: Any, where: str) -> Groups:
    """``value`` as a list of non-empty lists of task names (``{"groups": ...}`` or the list itself)."""
    if isinstance(value, dict):
        if "groups" not in value:
            raise ConfigError(f"{where}: a mapping of groups needs the key 'groups' (a list of lists of task names)")
        value = value["groups"]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected a non-empty list of groups, each a list of task names; got {value!r:.80}")
    groups: Groups = []
    for i, group in enumerate(value, 1):
        if not isinstance(group, list):
            raise ConfigError(f"{where}: group {i} must be a list of task names, got {group!r:.80}")
        if not group:
            raise ConfigError(f"{where}: group {i} is empty; every group needs at least one task")
        bad = [t for t in group if not isinstance(t, str)]
        if bad:
            raise ConfigError(f"{where}: group {i} holds {bad[0]!r}, which is not a task name (a string)")
        groups.append(list(group))
    return groups


def read_groups(path: str | Path) -> Groups:
    """The groups in a JSON file (see the module docstring); ConfigError naming the file when it holds none."""
    where = f"--groups {path}"
    try:
        value = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: is a folder; give a JSON file of groups") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: cannot read the file ({e})") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where}: not valid JSON ({e})") from None
    return parse_groups(value, where)


def check_partition(groups: Groups, tasks: Sequence[str], where: str) -> None:
    """ConfigError unless ``groups`` puts every task of ``tasks`` in exactly one group, and names no other."""
    known = set(tasks)
    seen: dict[str, int] = {}
    for i, group in enumerate(groups, 1):
        for name in group:
            if name not in known:
                shown = ", ".join(list(tasks)[:8]) + (", ..." if len(tasks) > 8 else "")
                raise ConfigError(f"{where}: task {name!r} in group {i} is not a task of this run ({shown})")
            if name in seen:
                where_else = f"groups {seen[name]} and {i}" if seen[name] != i else f"group {i} twice"
                raise ConfigError(f"{where}: task {name!r} is in {where_else}; every task must be in exactly one group")
            seen[name] = i
    missing = [t for t in tasks if t not in seen]
    if missing:
        raise ConfigError(f"{where}: task {missing[0]!r} is in no group; every task must be in exactly one group")


def canonical(groups: Groups, tasks: Sequence[str]) -> Groups:
    """Each group in the order of ``tasks``, the groups ordered by their first task."""
    position = {t: i for i, t in enumerate(tasks)}
    ordered = [sorted(g, key=position.__getitem__) for g in groups]
    return sorted(ordered, key=lambda g: position[g[0]])


def read_run_groups(run_dir: Path) -> Groups:
    """The groups a grouped run was trained by (its ``groups.json``)."""
    path = run_dir / GROUPS_FILE
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file (the run was not trained by groups)") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupted ({e})") from None
    if not isinstance(d, dict) or d.get("format") != GROUPS_FORMAT:
        raise CheckpointError(f"{path}: not written by multitask (format {GROUPS_FORMAT!r} expected)")
    try:
        return parse_groups(d, str(path))
    except ConfigError as e:
        raise CheckpointError(str(e)) from None


def _check_options(options: dict[str, Any], where: str) -> dict[str, Any]:
    from multitask.affinity import MEASURES

    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"{where}: unknown option {unknown[0]!r} ({', '.join(OPTIONS)})")
    merged = {**OPTIONS, **options}
    if merged["measure"] not in MEASURES:
        raise ConfigError(f"{where}: measure must be one of {', '.join(MEASURES)}, got {merged['measure']!r}")
    for key, low in (("k", 1), ("every", 1), ("epochs", 1), ("beam_width", 1)):
        v = merged[key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < low):
            raise ConfigError(f"{where}: {key} must be an integer >= {low}, got {v!r}")
    lr = merged["lookahead_lr"]
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, int | float) or not (math.isfinite(lr) and lr > 0)):
        raise ConfigError(f"{where}: lookahead_lr must be a positive number, got {lr!r}")
    if merged["model_options"] is not None and not isinstance(merged["model_options"], dict):
        raise ConfigError(f"{where}: model_options must be a mapping, got {merged['model_options']!r}")
    if merged["model"] is not None:
        from multitask.models import check_name, family_name

        if not isinstance(merged["model"], str) or family_name(check_name(merged["model"])) != "deep":
            raise ConfigError(f"{where}: model must be a deep model (affinity is measured while one trains), "
                              f"got {merged['model']!r}")
    return merged


class Grouped:
    """One model of the run's family per group of tasks (``--groups auto|FILE``), predicting as one model."""

    family: ClassVar[str] = "grouped"
    #: the members' family's answer (:func:`grouped_class`): members learn from validation rows as they would alone
    uses_validation: ClassVar[bool] = True

    def __init__(self, member: RunConfig, groups: str | Groups, options: dict[str, Any] | None = None,
                 source: str | None = None) -> None:
        self.member = member  # each member's configuration (the run's, without groups)
        self.groups = groups  # "auto", or the groups as given
        self.options = dict(options or {})  # of "auto": OPTIONS
        self.source = source  # the file the groups were read from
        #: called with each epoch's log record of each member (experiment tracking), ``group`` and ``tasks`` added
        self.on_record: Callable[[dict[str, Any]], None] | None = None

    @classmethod
    def from_config(cls, cfg: RunConfig) -> Self:
        """The run's model, one per group: ``cfg`` without its groups is each member's configuration."""
        if cfg.groups is None:
            raise ConfigError("training by groups needs the option 'groups' (auto, a JSON file or a list of lists)")
        groups: str | Groups
        source = cfg.groups if isinstance(cfg.groups, str) and cfg.groups != AUTO else None
        if source is not None:
            groups = read_groups(source)
        elif isinstance(cfg.groups, str):
            groups = AUTO
        else:
            groups = parse_groups(cfg.groups, "option 'groups'")
        if cfg.group_options and groups != AUTO:
            raise ConfigError("option 'group_options' applies to --groups auto (the groups given are used as they are)")
        options = _check_options(dict(cfg.group_options), "option 'group_options'")
        member = cfg.model_copy(update={"groups": None, "group_options": {}})
        return cls(member, groups, options, source)

    @property
    def name(self) -> str:
        return self.member.model

    # ---- configuration of the members and of the measure -------------------------------------------------
    def member_config(self, group: Sequence[str]) -> RunConfig:
        """A member's configuration: the run's, monitoring a task only when it is in the group."""
        cfg = self.member
        monitor = getattr(cfg.train, "monitor", None)
        if monitor is None or monitor in group:
            return cfg
        return cfg.model_copy(update={"train": cfg.train.model_copy(update={"monitor": None})})

    def measuring_config(self) -> RunConfig:
        """The configuration of the deep run that measures affinity (``groups: auto``)."""
        from multitask.models import family_name, member

        cfg = self.member
        deep = family_name(cfg.model) == "deep"
        model = self.options["model"] or (cfg.model if deep else MEASURING_MODEL)
        train = cfg.train if deep else type(cfg.train)(seed=cfg.train.seed, threads=cfg.train.threads)
        # the measures read each task's raw gradient: measured with the tasks' own weights (balancer static)
        epochs = {"epochs": self.options["epochs"]} if self.options["epochs"] is not None else {}
        train = train.model_copy(update={"progress": False, "balancer": "static", "balancer_options": {}, **epochs})
        options = self.options["model_options"]
        if options is None:
            options = dict(cfg.model_options) if model == cfg.model else {}
            if "head" in inspect.signature(member(model)).parameters and "head" not in options:
                options["head"] = MEASURING_HEAD
        return cfg.model_copy(update={"model": model, "model_options": options, "cv": None, "train": train})

    # ---- the Model interface -----------------------------------------------------------------------------
    def check(self, tasks: Sequence[Task], pre: Preprocessor) -> None:
        """The groups against the tasks (each in exactly one group, no other names), then each member."""
        from multitask.models import make

        names = [t.name for t in tasks]
        if self.groups == AUTO:
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                raise ConfigError("--groups auto measures affinity in one process, not under torchrun; choose the "
                                  "groups first (multitask group --output groups.json) and train with --groups groups.json")
            k = self.options["k"]
            if k is not None and k > len(names):
                raise ConfigError(f"--group-option k={k}: more groups than the run's {len(names)} tasks")
            make(self.measuring_config()).check(tasks, pre)
            make(self.member_config(names)).check(tasks, pre)
            return
        groups = self.groups
        assert not isinstance(groups, str)
        check_partition(groups, names, self._where())
        by_name = {t.name: t for t in tasks}
        for group in groups:
            make(self.member_config(group)).check([by_name[n] for n in canonical([group], names)[0]], pre)

    def _where(self) -> str:
        return f"--groups {self.source}" if self.source is not None else "option 'groups'"

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
        names = [t.name for t in tasks]
        self.chosen_: dict[str, Any] = {}
        saved = read_run_groups(run_dir) if resume and run_dir is not None and (run_dir / GROUPS_FILE).exists() else None
        if self.groups == AUTO:
            groups = saved if saved is not None else self._measure(tasks, pre, train, run_dir)
        else:
            assert not isinstance(self.groups, str)
            groups = self.groups
            if saved is not None and canonical(saved, names) != canonical(groups, names):
                raise ConfigError(f"--resume: the run in {run_dir} was trained by other groups ({_show(saved)}); "
                                  "resume it with the same groups or train into a new --out")
        check_partition(groups, names, self._where() if saved is None else f"{run_dir}/{GROUPS_FILE}")
        self.groups_ = canonical(groups, names)
        if saved is not None and run_dir is not None and self.groups == AUTO:
            log.info("resume: the groups of %s", run_dir / GROUPS_FILE)
            self.chosen_ = _saved_details(run_dir)
        if run_dir is not None:
            self._write_groups(run_dir)
        by_name = {t.name: t for t in tasks}
        members: list[Model] = []
        for i, group in enumerate(self.groups_):
            model = make(self.member_config(group))
            where = member_dir(run_dir, i) if run_dir is not None else None
            log.info("group %d of %d: %s", i + 1, len(self.groups_), ", ".join(group))
            if self.on_record is not None and hasattr(model, "on_record"):
                self._track(model, i, where if resume else None)
            members.append(model.fit([by_name[n] for n in group], pre, train.only_tasks(group),
                                     valid.only_tasks(group), where, resume=resume))
        self.members_ = members
        self.tasks_ = list(tasks)
        return self

    def _track(self, member: Any, index: int, resumed: Path | None) -> None:
        """Send member ``index``'s epochs to :attr:`on_record` as ``group`` NNN (with ``tasks``, every task of
        the run): first those it logged before (``resumed``: the member's folder of a resumed run), then each
        new one as it ends."""
        on_record, scope = self.on_record, {"group": f"{index:03d}", "tasks": [n for g in self.groups_ for n in g]}
        assert on_record is not None
        log_file = resumed / "log.jsonl" if resumed is not None else None
        if log_file is not None and log_file.exists():
            for line in log_file.read_text().splitlines():
                if line.strip():
                    on_record({**json.loads(line), **scope})
        member.on_record = lambda record: on_record({**record, **scope})

    def _measure(self, tasks: Sequence[Task], pre: Preprocessor, train: Arrays, run_dir: Path | None) -> Groups:
        """Measure affinity on ``train`` and choose the best partition (``groups: auto``)."""
        from multitask.affinity import affinity, best_partition, partition_names, write_csv

        names = [t.name for t in tasks]
        measure = str(self.options["measure"])
        cfg = self.measuring_config()
        result = affinity(cfg, (measure,), every=int(self.options["every"]), lr=self.options["lookahead_lr"],
                          prepared=(tasks, pre, train))
        matrix = result.matrices[measure]
        off = ~np.eye(len(names), dtype=bool)
        never = np.argwhere(off & ~np.isfinite(matrix))
        if len(never):
            i, j = never[0]
            raise ConfigError(f"--groups auto: the {measure} affinity of tasks {names[i]!r} and {names[j]!r} was never "
                              f"measured (no training batch labelled both); measure more often "
                              "(--group-option every=1) or for longer (--group-option epochs=N)")
        partition = best_partition(matrix, self.options["k"], beam_width=int(self.options["beam_width"]))
        groups = partition_names(partition, names)
        self.chosen_ = {"measure": measure, "measured_with": {"model": cfg.model, "model_options": cfg.model_options,
                                                              "epochs": cfg.train.epochs}, "steps": result.steps,
                        "score": partition.score, "method": partition.method,
                        "affinity": {"tasks": names, "matrix": matrix.tolist()}}
        log.info("groups auto: %s affinity over %d steps; %d groups (score %.4g)", measure, result.steps,
                 len(groups), partition.score)
        if run_dir is not None and is_main_process():
            run_dir.mkdir(parents=True, exist_ok=True)
            write_csv(matrix, names, run_dir / f"affinity_{measure}.csv")
        return groups

    def _write_groups(self, run_dir: Path) -> None:
        if not is_main_process():
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        chosen_by = AUTO if self.groups == AUTO else "given"
        write_text(run_dir / GROUPS_FILE, strict_json({
            "format": GROUPS_FORMAT, "model": self.name, "groups": self.groups_, "chosen_by": chosen_by,
            **({"file": self.source} if self.source is not None else {}), **self.chosen_,
        }))

    def predict(self, data: Arrays) -> Predictions:
        """Every task's prediction, from the member of its group."""
        out: Predictions = {}
        for group, model in zip(self.groups_, self.members_, strict=True):
            out.update(model.predict(data.only_tasks(group)))
        return {t.name: out[t.name] for t in self.tasks_}

    def save(self, run_dir: Path) -> None:
        for i, model in enumerate(self.members_):
            where = member_dir(run_dir, i)
            if is_main_process():
                where.mkdir(parents=True, exist_ok=True)
            model.save(where)
        self._write_groups(run_dir)

    @classmethod
    def load(cls, name: str, run_dir: Path, tasks: Sequence[Task], pre: Preprocessor) -> Self:
        from multitask.config import RunConfig
        from multitask.models import family

        groups = read_run_groups(run_dir)
        names = [t.name for t in tasks]
        try:
            check_partition(groups, names, str(run_dir / GROUPS_FILE))
        except ConfigError as e:
            raise CheckpointError(str(e)) from None
        by_name = {t.name: t for t in tasks}
        model = cls(RunConfig.model_construct(model=name), canonical(groups, names))
        model.groups_ = canonical(groups, names)
        model.members_ = [family(name).load(name, member_dir(run_dir, i), [by_name[n] for n in g], pre)
                          for i, g in enumerate(model.groups_)]
        model.tasks_ = list(tasks)
        model.chosen_ = {}
        return model

    @classmethod
    def search_space(cls, name: str, tasks: Sequence[Task]) -> list[Param]:
        """The members' family's (the same options for every group)."""
        from multitask.models import family

        return family(name).search_space(name, tasks)

    @classmethod
    def pooled(cls, name: str) -> str:
        from multitask.models import family

        return family(name).pooled(name)


class _GroupedFittedOnValidation(Grouped):
    """One model per group of a family that learns nothing from validation rows (fitted on them too, as alone)."""

    uses_validation: ClassVar[bool] = False


def grouped_class(name: str) -> type[Grouped]:
    """The grouped model of ``name``'s family: its members get the rows they would get alone."""
    from multitask.models import family

    return Grouped if family(name).uses_validation else _GroupedFittedOnValidation


def _show(groups: Groups) -> str:
    return "; ".join(", ".join(g) for g in groups)


def _saved_details(run_dir: Path) -> dict[str, Any]:
    d = json.loads((run_dir / GROUPS_FILE).read_text())
    return {k: v for k, v in d.items() if k not in ("format", "model", "groups", "chosen_by", "file")}
