"""The tracker interface and what a run sends to it (names and values only; no tracking library here)."""

from __future__ import annotations

import inspect
import logging
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from multitask.errors import ConfigError

#: characters a metric or parameter name keeps; any other becomes "_" (MLflow's rule, also fine for TensorBoard)
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")

log = logging.getLogger(__name__)


def safe_name(name: str) -> str:
    """``name`` with the characters tracking stores refuse replaced by ``_``."""
    return _UNSAFE.sub("_", name)


class TaskNames:
    """Task names as a tracking store keeps them: distinct tasks get distinct names.

    A name keeps its characters that stores accept (:func:`safe_name`, others become ``_``). Names that are
    safe already are kept as they are; a name that would then equal another task's gets ``_2`` (``_3``, ...),
    in the order of the original names, so ``a:b`` beside ``a_b`` is tracked as ``a_b_2`` in every run.
    """

    def __init__(self, tasks: Iterable[str] = ()) -> None:
        self._names: dict[str, str] = {}
        self._taken: set[str] = set()
        self.add(tasks)

    def add(self, tasks: Iterable[str]) -> None:
        """Name the tasks not named yet (safe names first, then the others in sorted order)."""
        new = sorted(set(tasks) - self._names.keys(), key=lambda t: (safe_name(t) != t, t))
        for task in new:
            base = safe_name(task)
            name, n = base, 2
            while name in self._taken:
                name, n = f"{base}_{n}", n + 1
            if name != base:
                other = next(t for t, v in self._names.items() if v == base)
                log.warning("tasks %r and %r are both %r in a tracking store: %r is tracked as %r",
                            other, task, base, task, name)
            self._names[task] = name
            self._taken.add(name)

    def __getitem__(self, task: str) -> str:
        if task not in self._names:
            self.add([task])
        return self._names[task]


class Tracker(Protocol):
    """Where a run's numbers go. ``start`` once, ``log`` any number of times, ``finish`` once."""

    def start(self, name: str, params: dict[str, str]) -> None:
        """Open a tracked run called ``name`` with these (flattened, string) parameters."""

    def log(self, values: dict[str, float], step: int) -> None:
        """Record scalar ``values`` at ``step`` (an epoch, or 0 for final values)."""

    def finish(self, run_dir: Path | None, failed: bool = False) -> None:
        """Close the run; ``run_dir`` (when given) is the complete run directory, kept as artifacts."""


def flat_params(options: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train": {"lr": 0.01}}`` → ``{"train.lr": "0.01"}``; lists and ``None`` as text."""
    out: dict[str, str] = {}
    for key, value in options.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat_params(value, f"{name}."))
        else:
            out[safe_name(name)] = str(value)[:6000]  # MLflow's limit on a parameter value
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def epoch_values(record: dict[str, Any], names: TaskNames | None = None) -> dict[str, float]:
    """The scalars of one ``log.jsonl`` record (one epoch of a deep model); undefined values are left out.

    ``names`` are the run's tracked task names (by default, those of this record's tasks). A record of one
    group of a run trained by groups (its ``group``: ``000``, ...; its ``tasks``: every task of the run, named
    first) names its per-task values as any record (each task is in one group) and its other values
    ``group/NNN/valid_total``, ``group/NNN/lr``, ...
    """
    parts = (("train", "train_loss"), ("valid", "valid_loss"), ("weights", "weight"))
    names = names if names is not None else TaskNames()
    names.add(record.get("tasks") or ())
    names.add(task for part, _ in parts for task in (record.get(part) or {}))
    values: dict[str, float] = {}
    for part, prefix in parts:
        for task, value in (record.get(part) or {}).items():
            if _finite(value):
                values[f"{prefix}/{names[task]}"] = float(value)
    scope = f"group/{safe_name(str(record['group']))}/" if record.get("group") is not None else ""
    for key in ("valid_total", "lr", "cosine", "seconds"):
        if _finite(record.get(key)):
            values[scope + key] = float(record[key])
    return values


def final_values(result: dict[str, Any], names: TaskNames | None = None) -> dict[str, float]:
    """The scalars of ``metrics.json``: per-task metrics, their means, each baseline's and its delta_m.

    ``names`` are the run's tracked task names (by default, those of the result's tasks).
    """
    names = names if names is not None else TaskNames()
    names.add(result.get("tasks") or {})
    values: dict[str, float] = {}

    def add(prefix: str, part: dict[str, Any]) -> None:
        for task, metrics in (part.get("tasks") or {}).items():
            for metric, value in (metrics or {}).items():
                if _finite(value):
                    values[f"{prefix}metric/{names[task]}/{safe_name(str(metric))}"] = float(value)
        for metric, value in (part.get("mean") or {}).items():
            if _finite(value):
                values[safe_name(f"{prefix}mean/{metric}")] = float(value)

    add("", result)
    for kind, baseline in (result.get("baselines") or {}).items():
        add(f"baseline/{kind}/", baseline)
        if _finite(baseline.get("delta_m")):
            values[safe_name(f"delta_m/{kind}")] = float(baseline["delta_m"])
    return values


class Tracking:
    """The trackers of one run, used together; a failure to reach a store is an error naming the tracker."""

    def __init__(self, trackers: dict[str, Tracker]) -> None:
        self.trackers = trackers
        self.names = TaskNames()  # the run's task names in the stores, the same for every value sent

    def _each(self, what: str, *args: Any) -> None:
        for name, tracker in self.trackers.items():
            try:
                getattr(tracker, what)(*args)
            except ConfigError:
                raise
            except Exception as e:  # a store that refuses: the user's URI or folder is at fault
                raise ConfigError(f"tracking with {name}: {type(e).__name__}: {e}") from e

    def start(self, name: str, params: dict[str, str]) -> None:
        self._each("start", name, params)

    def epoch(self, record: dict[str, Any]) -> None:
        """Log one ``log.jsonl`` record at step = its epoch."""
        self._each("log", epoch_values(record, self.names), int(record.get("epoch", 0)))

    def log(self, values: dict[str, float], step: int) -> None:
        self._each("log", values, step)

    def finish(self, run_dir: Path | None, failed: bool = False) -> None:
        for name, tracker in self.trackers.items():
            try:
                tracker.finish(run_dir, failed)
            except Exception as e:
                if not failed:  # when the run already failed, its own error is the one to report
                    raise ConfigError(f"tracking with {name}: {type(e).__name__}: {e}") from e


def start_tracking(names: Sequence[str], name: str, params: dict[str, str], *, run_dir: Path,
                   uri: str | None = None) -> Tracking | None:
    """Build and start the named trackers (``multitask.registry.TRACKERS``); None when ``names`` is empty.

    ``uri`` goes to the trackers that take one (MLflow's tracking URI); without it MLflow uses its own
    default (``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the working directory). TensorBoard
    writes into ``RUN_DIR/tensorboard``.
    """
    if not names:
        return None
    from multitask.registry import TRACKERS

    trackers: dict[str, Tracker] = {}
    for n in names:
        cls = TRACKERS.get(n)
        takes_uri = "uri" in inspect.signature(cls).parameters
        try:
            trackers[n] = cls(run_dir, uri=uri) if takes_uri else cls(run_dir)
        except ConfigError:
            raise
        except Exception as e:  # a URI the store refuses (e.g. MLflow's file store): the user's option at fault
            raise ConfigError(f"tracking with {n}: {type(e).__name__}: {e}") from e
    tracking = Tracking(trackers)
    tracking.start(name, params)
    return tracking


class RunTracking:
    """The tracking of one ``multitask train`` run: nothing is contacted before :meth:`start`.

    ``start`` comes after the run directory and the options are checked (a refused run leaves no tracked run
    behind); a resumed run first replays the epochs already in its ``log.jsonl``.
    """

    def __init__(self, names: Sequence[str], uri: str | None = None) -> None:
        self.names = list(names)
        self.uri = uri
        self.tracking: Tracking | None = None

    def start(self, run_dir: Path, options: dict[str, Any], resume: bool = False) -> Tracking | None:
        if not self.names:
            return None
        self.tracking = start_tracking(self.names, run_dir.name, flat_params(options), uri=self.uri, run_dir=run_dir)
        log_file = run_dir / "log.jsonl"
        if resume and self.tracking is not None and log_file.exists():
            import json

            for line in log_file.read_text().splitlines():
                if line.strip():
                    self.tracking.epoch(json.loads(line))
        return self.tracking

    def finish(self, run_dir: Path | None, result: dict[str, Any] | None = None) -> None:
        """Log the final metrics (``metrics.json``'s content) and close; without ``result`` the run failed."""
        if self.tracking is None:
            return
        tracking, self.tracking = self.tracking, None
        if result is not None:
            tracking.log(final_values(result, tracking.names), 0)
        tracking.finish(run_dir, failed=result is None)
