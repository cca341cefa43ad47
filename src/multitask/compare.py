"""Several models on the same splits, against single-task and pooled references: ``multitask compare``.

    multitask compare --dataset school --splits 1-10 --models linear:trace-norm,gbdt:multitask,auto --out cmp/school
    multitask compare --data scores.csv --task math:regression --task passed:binary --splits 5 --seeds 2 \\
        --models hard-sharing,linear:l21 --out cmp/scores

Every model is fitted on each split's training part (its validation part for early stopping or selection)
and scored on the split's test part: a built-in data set's fixed splits, ``K`` random splits stratified by
task of a user's file (each holds out a test part, as ``--model auto`` does), or the given test file. Each
split is repeated with ``seeds`` seeds of the models. ``--search N`` tunes each model on each split's
training and validation parts (:mod:`multitask.selection`), never on its test part.

The references: **STL** is an independent model (one model per task, no parameter shared):
``linear:independent`` where linear models apply, else ``gbdt:independent``; **pooled** is a model shared
by all tasks but a per-task intercept: ``linear:pooled`` or ``gbdt:pooled``, only when the tasks can be
pooled (one kind, one table, long form or ``--poolable``). They are fitted like every other model and delta_m
(:func:`multitask.evaluate.delta_m`) of each model is taken against them, split by split and seed by seed.

Files in ``out``: ``results.csv`` (one row per model, split, seed and task: every metric, the deciding one
named), ``leaderboard.csv`` (one row per model: mean and sd over splits x seeds of the mean over tasks of
each deciding metric, delta_m vs STL and vs pooled, tasks won and lost against STL, fit seconds) and
``leaderboard.png`` (each model's mean with its sd; each task's metric of the best model against STL's).
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from multitask import models as registry_models
from multitask._rundir import atomic_replace, strict_json
from multitask.config import AUTO, RunConfig
from multitask.errors import ConfigError, MultitaskError
from multitask.evaluate import Metrics, delta_m
from multitask.registry import DATASETS, METRICS
from multitask.runs import Prepared, fit_and_score, prepare
from multitask.tasks import Task

log = logging.getLogger(__name__)

__all__ = ["POOLED", "STL", "Leaderboard", "Splits", "compare", "split_ids"]

#: ``split ids`` of a built-in data set's fixed splits, a number of random splits, or None: the data's own
#: test part (one random split when it has none)
Splits = Sequence[int] | int | None
#: the references, first that applies to the tasks
STL: tuple[str, ...] = ("linear:independent", "gbdt:independent")
POOLED: tuple[str, ...] = ("linear:pooled", "gbdt:pooled")
#: far enough apart that consecutive random splits do not share a seed
_SPLIT_SEED_STEP = 1_000
_ROLES = {"stl": "STL", "pooled": "pooled"}


@dataclass
class Leaderboard:
    """What :func:`compare` measured: ``rows`` (one per model, best first), ``results`` (one row per model,
    split, seed and task), the references' names, and the files written."""

    rows: list[dict[str, Any]]
    results: pd.DataFrame
    metrics: list[str]
    stl: str | None
    pooled: str | None
    files: dict[str, Path] = field(default_factory=dict)


def has_fixed_splits(dataset: str | None) -> bool:
    """Whether the built-in data set's loader takes ``split=K`` (School, SARCOS)."""
    return dataset is not None and "split" in inspect.signature(DATASETS.get(dataset)).parameters


def split_ids(text: str) -> list[int]:
    """``"1-10"`` → 1..10; ``"1,3,5"`` → [1, 3, 5]; ``"4"`` → [4]."""
    out: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            low, sep, high = part.partition("-")
            out += list(range(int(low), int(high) + 1)) if sep else [int(low)]
    except ValueError:
        raise ConfigError(f"--splits {text!r}: expected split numbers such as 1-10 or 1,3,5") from None
    if not out:
        raise ConfigError(f"--splits {text!r}: no split given")
    return out


def _splits(base: RunConfig, splits: Splits) -> list[tuple[str, RunConfig]]:
    """``(label, configuration)`` of each split: fixed ones by ``dataset_options.split``, random ones by seed."""
    if splits is None:
        return [("given", base)]
    if isinstance(splits, int):
        if splits < 1:
            raise ConfigError(f"--splits {splits}: give at least one random split")
        return [(str(k), base.model_copy(update={"train": base.train.model_copy(
            update={"seed": base.train.seed + _SPLIT_SEED_STEP * k})})) for k in range(1, splits + 1)]
    if not has_fixed_splits(base.dataset):
        raise ConfigError("--splits: split numbers name a built-in data set's fixed splits (school, sarcos); "
                          "for random splits of other data give their count, e.g. --splits 5")
    return [(str(k), base.model_copy(update={"dataset_options": {**base.dataset_options, "split": k}}))
            for k in splits]


def _prepare(label: str, cfg: RunConfig, random: bool) -> Prepared:
    p = prepare(cfg, hold_out_test=True)
    if random and not p.test_held_out:
        raise ConfigError("--splits K makes random test parts, but this data has its own test part; leave --splits "
                          "out, or give a built-in data set's split numbers")
    log.info("compare: split %s: %s (%s part)", label, p.description, p.evaluated_on)
    return p


def _reference(names: Sequence[str], cfg: RunConfig, p: Prepared) -> str | None:
    from multitask.selection import not_applicable

    for name in names:
        if not_applicable(cfg.model_copy(update={"model": name, "model_options": {}, "cv": None}), p) is None:
            return name
    return None


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME`` or ``NAME[key=value;key=value]`` -> ``(NAME, {key: value})``; values are read as YAML.

    A variant names one model with options (``hard-sharing[head=shared;head_penalty=0.01]``), so that a
    leaderboard can compare several settings of one model.
    """
    name, bracket, rest = text.partition("[")
    if not bracket:
        return text, {}
    if not rest.endswith("]"):
        raise ConfigError(f"--models: {text!r} opens '[' without closing it; write NAME[key=value;key=value]")
    options: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest[:-1].split(";"))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"--models: {text!r}: {item!r} is not key=value")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ConfigError(f"--models: {text!r}: the value of {key.strip()!r} is not valid: {e}") from None
    return name.strip(), options


def _model_config(base: RunConfig, entry: str, seed: int, search: int | None) -> RunConfig:
    name, options = parse_variant(entry)
    return base.model_copy(update={
        "model": name, "model_options": options, "cv": None, "search": search,
        "train": base.train.model_copy(update={"seed": base.train.seed + seed, "progress": False}),
    })


def _fit(cfg: RunConfig, p: Prepared, where: Path) -> tuple[Metrics, str, dict[str, Any]]:
    """Per-task test metrics of ``cfg``'s model (chosen on ``p``'s training and validation parts when it
    searches or is ``auto``), the model fitted and its options."""
    model = None
    if cfg.model == AUTO or cfg.search is not None:
        from multitask.selection import select

        chosen = select(cfg, p, where, resume=False)
        cfg, model = chosen.cfg, chosen.model
    model = model if model is not None else registry_models.make(cfg)
    model.check(p.tasks, p.pre)
    metrics, _ = fit_and_score(model, p, None)
    return metrics, cfg.model, cfg.model_options


def compare(
    models: list[str],
    base: RunConfig,
    splits: Splits = None,
    seeds: int = 1,
    out: Path | str = "compare",
    *,
    search: int | None = None,
    references: bool = True,
) -> Leaderboard:
    """Fit every model of ``models`` (names of :func:`multitask.models.names`, or ``"auto"``, each optionally
    with options as ``NAME[key=value;key=value]``, see :func:`parse_variant`) on every split
    and seed, with the STL and pooled references (``references``), and write the leaderboard into ``out``.

    ``base`` holds the data and training options (its model is ignored); ``splits`` is a list of a built-in
    data set's split numbers, a number of random splits, or None (the data's own test part).
    """
    if not models:
        raise ConfigError("--models: give at least one model")
    choices = [*registry_models.names(), AUTO]
    unknown = [n for n in models if parse_variant(n)[0] not in choices]
    if unknown:
        raise ConfigError(f"--models: unknown model {unknown[0]!r}; choose from: {', '.join(choices)}")
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: give at least one seed")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    split_list = _splits(base, splits)
    names = list(dict.fromkeys(models))
    results: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    stl = pooled = None
    tasks: list[Task] = []
    for i, (label, cfg) in enumerate(split_list):
        p = _prepare(label, cfg, isinstance(splits, int))
        tasks = p.tasks
        if i == 0 and references:
            stl, pooled = _reference(STL, cfg, p), _reference(POOLED, cfg, p)
            names += [r for r in (stl, pooled) if r is not None and r not in names]
        for seed in range(seeds):
            for name in names:
                if name in failures:
                    continue
                mcfg = _model_config(cfg, name, seed, search)
                start = time.perf_counter()
                try:
                    metrics, chosen, options = _fit(mcfg, p, out / "selection" / name.replace(":", "-") / f"{label}-{seed}")
                except MultitaskError as e:
                    failures[name] = " ".join(str(e).split())
                    log.warning("compare: %s failed on split %s, seed %d: %s", name, label, seed, failures[name])
                    continue
                seconds = time.perf_counter() - start
                log.info("compare: split %s seed %d %s: %.1f s", label, seed, name, seconds)
                for t in p.tasks:
                    results.append({"model": name, "split": label, "seed": seed, "task": t.name, "kind": t.kind,
                                    "deciding": t.metric, "higher_is_better": t.higher_is_better,
                                    "fit_seconds": seconds, "chosen": chosen,
                                    "options": strict_json(options, indent=None), **metrics[t.name]})
                _write_csv(out / "results.csv", pd.DataFrame(results))
    frame = pd.DataFrame(results)
    rows = leaderboard_rows(frame, [n for n in names if n not in failures], stl, pooled)
    rows += [{"model": n, "role": _role(n, stl, pooled), "runs": 0, "status": f"failed: {why}"}
             for n, why in failures.items()]
    metric_names = list(dict.fromkeys(t.metric for t in tasks))
    board = Leaderboard(rows, frame, metric_names, stl, pooled)
    board.files["results"] = out / "results.csv"
    board.files["leaderboard"] = out / "leaderboard.csv"
    _write_csv(board.files["leaderboard"], pd.DataFrame(rows))
    if not frame.empty:
        board.files["plot"] = out / "leaderboard.png"
        plot(board, board.files["plot"])
    return board


def _role(name: str, stl: str | None, pooled: str | None) -> str:
    return "stl" if name == stl else "pooled" if name == pooled else "model"


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    atomic_replace(path, lambda tmp: frame.to_csv(tmp, index=False))


def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return None, None
    return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else None


def _metrics_of(run: pd.DataFrame) -> Metrics:
    """``{task: {deciding metric: value}}`` of one model's rows of one split and seed."""
    out: Metrics = {}
    for r in run.itertuples(index=False):
        value = getattr(r, str(r.deciding))
        out[str(r.task)] = {str(r.deciding): None if pd.isna(value) else float(value)}
    return out


def leaderboard_rows(results: pd.DataFrame, names: list[str], stl: str | None, pooled: str | None) -> list[dict[str, Any]]:
    """One row per model from ``results`` (see the module docstring), best first: by delta_m vs STL when
    there is one, else by the first deciding metric."""
    if results.empty:
        return []
    first = results.drop_duplicates("task")
    tasks = [Task(str(r.task), str(r.kind), metric=str(r.deciding)) for r in first.itertuples(index=False)]
    metric_names = list(dict.fromkeys(t.metric for t in tasks))
    runs = {key: g for key, g in results.groupby(["model", "split", "seed"], sort=False)}
    rows = []
    for name in names:
        mine = results[results["model"] == name]
        keys = list(dict.fromkeys(zip(mine["split"], mine["seed"], strict=True)))
        row: dict[str, Any] = {"model": name, "role": _role(name, stl, pooled), "runs": len(keys), "status": "ok"}
        for m in metric_names:
            per_run = []
            for key in keys:
                run = runs[(name, *key)]
                values = run.loc[run["deciding"] == m, m].dropna()
                per_run.append(float(values.mean()) if len(values) else float("nan"))
            row[f"{m}_mean"], row[f"{m}_sd"] = _mean_sd(per_run)
        for ref, ref_name in (("stl", stl), ("pooled", pooled)):
            deltas = []
            for key in keys:
                if ref_name is not None and (ref_name, *key) in runs:
                    d = delta_m(tasks, _metrics_of(runs[(name, *key)]), _metrics_of(runs[(ref_name, *key)]))
                    deltas.append(d if d is not None else float("nan"))
            row[f"delta_m_{ref}_mean"], row[f"delta_m_{ref}_sd"] = _mean_sd(deltas)
        row["won"], row["lost"] = _won_lost(results, name, stl, tasks)
        row["fit_seconds"] = float(mine.drop_duplicates(["split", "seed"])["fit_seconds"].mean())
        rows.append(row)
    first_metric = metric_names[0]
    sign = 1.0 if METRICS.get(first_metric).higher_is_better else -1.0

    def rank(r: dict[str, Any]) -> float:
        key = r.get("delta_m_stl_mean") if stl is not None else r.get(f"{first_metric}_mean")
        return -math.inf if key is None else (key if stl is not None else sign * key)

    return sorted(rows, key=rank, reverse=True)


def _won_lost(results: pd.DataFrame, name: str, stl: str | None, tasks: list[Task]) -> tuple[int | None, int | None]:
    """Tasks whose deciding metric, averaged over splits and seeds, is better (worse) than STL's."""
    if stl is None:
        return None, None
    won = lost = 0
    for t in tasks:
        rows = results[results["task"] == t.name]
        ours = rows.loc[rows["model"] == name, t.metric].mean()
        theirs = rows.loc[rows["model"] == stl, t.metric].mean()
        if pd.isna(ours) or pd.isna(theirs) or ours == theirs:
            continue
        better = ours > theirs if t.higher_is_better else ours < theirs
        won, lost = won + better, lost + (not better)
    return won, lost


def plot(board: Leaderboard, path: Path) -> None:
    """Per deciding metric: each model's mean over splits x seeds with its sd (bars), and each task's metric
    of the best model against STL's (dots, with the diagonal)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ok = [r for r in board.rows if r["status"] == "ok"]
    best = next((r["model"] for r in ok if r["role"] == "model"), ok[0]["model"] if ok else None)
    n = len(board.metrics)
    fig = Figure(figsize=(6 + 0.35 * len(ok), 4.5 * n), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, 2, squeeze=False)
    results = board.results
    for i, m in enumerate(board.metrics):
        bars, scatter = axes[i]
        means = [r.get(f"{m}_mean") for r in ok]
        sds = [r.get(f"{m}_sd") or 0.0 for r in ok]
        x = np.arange(len(ok))
        colours = ["tab:gray" if r["role"] != "model" else "tab:blue" for r in ok]
        bars.bar(x, [np.nan if v is None else v for v in means], yerr=sds, color=colours, capsize=3)
        bars.set_xticks(x, [r["model"] for r in ok], rotation=45, ha="right")
        direction = "higher" if METRICS.get(m).higher_is_better else "lower"
        bars.set_ylabel(f"{m}, mean over tasks ({direction} is better)")
        bars.set_title(f"{m}: mean ± sd over {ok[0]['runs'] if ok else 0} splits x seeds")
        if board.stl is None or best is None:
            scatter.set_axis_off()
            continue
        rows = results[results["deciding"] == m]
        per_task = rows.groupby(["model", "task"], sort=False)[m].mean()
        tasks = rows["task"].drop_duplicates()
        xs = [per_task.get((board.stl, t), np.nan) for t in tasks]
        ys = [per_task.get((best, t), np.nan) for t in tasks]
        scatter.scatter(xs, ys, s=12)
        finite = [v for v in xs + ys if v is not None and np.isfinite(v)]
        if finite:
            lo, hi = min(finite), max(finite)
            scatter.plot([lo, hi], [lo, hi], color="black", linewidth=0.8)
        scatter.set_xlabel(f"{board.stl} (STL), {m} per task")
        scatter.set_ylabel(f"{best}, {m} per task")
        scatter.set_title("each task: best model vs STL")
    atomic_replace(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
