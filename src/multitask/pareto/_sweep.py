"""``multitask pareto``: the front of task trade-offs of one preference-conditioned model, against fixed weights.

One deep model is trained with :class:`~multitask.pareto.Cosmos` (a preference drawn each step, fed to the
network and weighing the losses); it is then evaluated at a grid of preferences on the validation part: one
point per preference, the per-task validation losses. For comparison, one ordinary model per preference of a
smaller grid is trained with those fixed task weights. Both fronts are scored by their hypervolume against one
reference point (the worst loss of each task over all points, padded by 10 % of its range), and plotted for
two or three tasks.

The folder is marked ``INCOMPLETE`` from the start until ``pareto.json`` is written: a front that diverged or
was stopped is replaced by the next run without ``--overwrite``; a finished front needs ``--overwrite``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from multitask import models
from multitask._rundir import strict_json, write_text
from multitask.config import RunConfig
from multitask.errors import ConfigError
from multitask.evaluate import task_metrics
from multitask.models._deep import Deep
from multitask.pareto._conditioned import Cosmos, PreferenceConditioned
from multitask.pareto._front import hypervolume, nondominated, reference_point, simplex_grid
from multitask.runs import Prepared, prepare
from multitask.train import fit, validation_losses

RESULT_FILE = "pareto.json"
#: the marker of a front being written (removed once ``pareto.json`` is): a rerun replaces such a folder
INCOMPLETE = "INCOMPLETE"
FRONT_FORMAT = "multitask-pareto/1"


@dataclass
class ParetoResult:
    """The evaluated points of each method, the reference point, each front's hypervolume and training time."""

    out: Path
    tasks: list[str]
    points: pd.DataFrame  # method, preference per task, validation loss per task, main metric per task, front
    reference: np.ndarray
    hypervolume: dict[str, float]
    seconds: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "reference": self.reference.tolist(),
            "hypervolume": self.hypervolume,
            "seconds": self.seconds,
            "points": {m: int((self.points["method"] == m).sum()) for m in self.hypervolume},
        }


def _unfinished(path: Path) -> bool:
    """Whether ``path`` holds a front that :func:`pareto` started and did not finish (its marker is there)."""
    try:
        marker = json.loads((path / INCOMPLETE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("format") == FRONT_FORMAT


def _prepare_out(out: str | Path, overwrite: bool) -> Path:
    """``out`` emptied and marked unfinished: a new or empty folder, a front that did not finish (replaced), or
    with ``overwrite`` a finished front (replaced); anything else is refused."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path}: is a file, not a folder")
    if path.exists() and any(path.iterdir()):
        unfinished = _unfinished(path)
        if not unfinished and not (path / RESULT_FILE).exists() and not (path / "conditioned").exists():
            raise ConfigError(f"--out {path}: the folder has other files in it; give a new or empty folder")
        if not unfinished and not overwrite:
            raise ConfigError(f"--out {path}: a front is already there; --overwrite replaces it")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    write_text(path / INCOMPLETE, json.dumps({"format": FRONT_FORMAT, "state": "training started; this front is "
                                              "not complete until this file is gone"}) + "\n")
    return path


def _evaluate(net: torch.nn.Module, p: Prepared, name: str) -> tuple[list[float], list[float | None]]:
    """Validation loss and main metric (in original units) of each task."""
    losses = validation_losses(net, p.tasks, p.valid)
    deep = Deep(name)
    deep.net_, deep.tasks_ = net, p.tasks
    metrics = task_metrics(p.tasks, p.valid, deep.predict(p.valid), p.pre)
    values = [losses[t.name] for t in p.tasks]
    if any(v is None for v in values):
        missing = [t.name for t, v in zip(p.tasks, values, strict=True) if v is None]
        raise ConfigError(f"task {missing[0]!r} has no validation labels: a front needs every task's loss")
    return [float(v) for v in values if v is not None], [metrics[t.name].get(t.metric) for t in p.tasks]


def pareto(
    cfg: RunConfig,
    out: str | Path,
    *,
    points: int = 11,
    fixed: int = 5,
    alpha: float = 1.0,
    cosine_weight: float = 0.0,
    overwrite: bool = False,
) -> ParetoResult:
    """Train the preference-conditioned model (and ``fixed`` fixed-weight models), write the front to ``out``.

    ``points`` preferences are evaluated on the conditioned model (:func:`simplex_grid`); ``fixed`` = 0 skips
    the fixed-weight runs. ``alpha`` is the Dirichlet concentration of the training preferences and
    ``cosine_weight`` COSMOS's λ (0: conditioned linear scalarization).
    """
    if models.family_name(cfg.model) != "deep":
        raise ConfigError(f"--model {cfg.model}: a preference-conditioned front needs a deep architecture")
    if fixed == 1 or fixed < 0:
        raise ConfigError(f"--fixed must be 0 (no fixed-weight runs) or at least 2, got {fixed}")
    p = prepare(cfg)
    names = [t.name for t in p.tasks]
    if len(names) < 2:
        raise ConfigError("a front of trade-offs needs at least two tasks")
    try:
        grid = simplex_grid(len(names), points)
        fixed_grid = simplex_grid(len(names), fixed) if fixed else np.zeros((0, len(names)))
        Cosmos(names, PreferenceConditioned(torch.nn.Identity(), len(names)), alpha, cosine_weight)
    except ValueError as e:
        raise ConfigError(f"pareto: {e}") from None
    unlabelled = [n for n in names if p.valid.n_labelled(n) == 0]
    if unlabelled:  # checked before anything is trained or written
        raise ConfigError(f"task {unlabelled[0]!r} has no validation labels: a front needs every task's loss")
    target = _prepare_out(out, overwrite)
    deep = Deep(cfg.model, cfg.model_options, cfg.train)
    deep.check(p.tasks, p.pre)
    task_source = {t.name: p.train.task_source[t.name] for t in p.tasks}

    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    torch.manual_seed(cfg.train.seed)
    net = PreferenceConditioned(deep._build(p.tasks, p.pre, task_source, widen=len(names)), len(names))
    method = Cosmos(names, net, alpha, cosine_weight)
    fit(net, p.tasks, p.train, p.valid, cfg.train, run_dir=target / "conditioned", balancer=method)  # net: best weights
    for r in grid:
        net.set_preference(r)
        losses, metrics = _evaluate(net, p, cfg.model)
        rows.append(_row("conditioned", names, r, losses, metrics))
    seconds = {"conditioned": time.perf_counter() - t0}

    if len(fixed_grid):
        t0 = time.perf_counter()
        for i, r in enumerate(fixed_grid):
            weighted = [dataclasses.replace(t, weight=float(w)) for t, w in zip(p.tasks, r, strict=True)]
            member = Deep(cfg.model, cfg.model_options, cfg.train)
            member.fit(weighted, p.pre, p.train, p.valid, target / "fixed" / f"{i:03d}")
            losses, metrics = _evaluate(member.net_, p, cfg.model)
            rows.append(_row("fixed", names, r, losses, metrics))
        seconds["fixed"] = time.perf_counter() - t0

    table = pd.DataFrame(rows)
    loss_columns = [f"loss:{n}" for n in names]
    values = table[loss_columns].to_numpy(dtype=np.float64)
    reference = reference_point(values)
    volumes: dict[str, float] = {}
    table["front"] = False
    for m in table["method"].unique():
        where = (table["method"] == m).to_numpy()
        table.loc[where, "front"] = nondominated(values[where])
        volumes[str(m)] = hypervolume(values[where], reference)
    result = ParetoResult(target, names, table, reference, volumes, seconds)
    write_text(target / "front.csv", table.to_csv(index=False))
    if len(names) <= 3:
        from multitask.pareto._plot import plot_front

        plot_front(table, names, target / "pareto.png")
    write_text(target / RESULT_FILE, strict_json(result.to_json()))
    (target / INCOMPLETE).unlink()
    return result


def _row(method: str, names: list[str], r: np.ndarray, losses: list[float], metrics: list[float | None]) -> dict[str, Any]:
    row: dict[str, Any] = {"method": method}
    row.update({f"preference:{n}": float(w) for n, w in zip(names, r, strict=True)})
    row.update({f"loss:{n}": v for n, v in zip(names, losses, strict=True)})
    row.update({f"metric:{n}": v for n, v in zip(names, metrics, strict=True)})
    return row


def load_conditioned(folder: str | Path) -> PreferenceConditioned:
    """The preference-conditioned model that :func:`pareto` saved in ``OUT/conditioned`` (its weights)."""
    from multitask.nn import build_model
    from multitask.train import MODEL_CONFIG_FILE, MODEL_FILE

    folder = Path(folder)
    config = json.loads((folder / MODEL_CONFIG_FILE).read_text())
    if "preference_conditioned" not in config:
        raise ConfigError(f"{folder / MODEL_CONFIG_FILE}: not a preference-conditioned model")
    net = PreferenceConditioned(build_model(config["preference_conditioned"]), int(config["preference_size"]))
    saved = torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True)
    net.load_state_dict(saved["state"])
    net.eval()
    return net


__all__ = ["ParetoResult", "load_conditioned", "pareto"]
