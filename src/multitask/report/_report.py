"""``report.html`` of a run directory: what was trained, how it learned, how well it does, task by task.

    multitask report --run runs/a                    # writes runs/a/report.html
    multitask train ... --out runs/a --report         # the same, right after training

Everything comes from the run's own files: ``metrics.json`` (the table against every baseline, delta_m),
``log.jsonl`` (learning curves, task weights, gradient cosines), ``eval_predictions.npz`` (predicted against
true values, ROC and calibration curves, confusion matrices, label counts), ``config.yaml``, and, when they
are in the run directory or in the folders given, ``affinity_*.png``/``.csv`` (``multitask affinity``) and
``leaderboard.csv``/``.png`` (``multitask compare``).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from multitask._rundir import RUN_FILE, check_complete, write_text
from multitask.errors import CheckpointError, ConfigError
from multitask.evaluate import delta_terms
from multitask.report import _figures as figs
from multitask.report._html import GENERATOR, Section, details, esc, page, table
from multitask.report._predictions import PREDICTIONS_FILE, TaskPredictions, load_predictions
from multitask.tasks import Task

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
#: per-task figures are drawn for this many tasks by default (one figure of small multiples per kind)
MAX_TASKS = 36
_TITLES = {"stl": "single-task", "pooled": "pooled", "gbdt": "GBDT per task"}


@dataclass(frozen=True)
class Report:
    """Where the report was written, how many figures it holds and how long it took."""

    path: Path
    figures: int
    seconds: float
    sections: dict[str, int]  # section id -> figures in it


def write_report(run_dir: str | Path, output: str | Path | None = None, *,
                 affinity_dir: str | Path | None = None, compare_dir: str | Path | None = None,
                 max_tasks: int | None = MAX_TASKS) -> Report:
    """Write the report of the run in ``run_dir`` to ``output`` (default ``RUN_DIR/report.html``).

    Per-task figures (learning curves, predictions) are drawn for the first ``max_tasks`` tasks (all with
    None or 0); the tables always hold every task.
    """
    if max_tasks is not None and max_tasks < 0:
        raise ConfigError(f"--max-tasks {max_tasks}: must be 0 (all tasks) or more")
    start = time.perf_counter()
    run = Path(run_dir)
    if not (run / RUN_FILE).is_file():
        raise CheckpointError(f"{run}: not a run directory (no {RUN_FILE})")
    check_complete(run)
    out = Path(output) if output is not None else run / REPORT_FILE
    if out.is_dir():
        raise ConfigError(f"--output {out}: is a folder; give a file name")
    if not out.parent.is_dir():
        raise ConfigError(f"--output {out}: folder {out.parent} does not exist")
    if out.is_file() and not _is_report(out):
        raise ConfigError(f"--output {out}: the file exists and is not a report; give a new file name "
                          "(nothing of yours is overwritten)")
    for name, folder in (("--affinity", affinity_dir), ("--compare", compare_dir)):
        if folder is not None and not Path(folder).is_dir():
            raise ConfigError(f"{name} {folder}: no such folder")
    meta = _json(run / RUN_FILE)
    metrics = _json(run / "metrics.json")
    try:
        tasks = [Task.from_dict(t) for t in meta["declaration"]["tasks"]]
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{run / RUN_FILE}: field 'declaration' is invalid ({e})") from None
    history = _history(run / "log.jsonl")
    part, predictions = load_predictions(run / PREDICTIONS_FILE) if (run / PREDICTIONS_FILE).is_file() else ("", [])
    config = (run / "config.yaml").read_text() if (run / "config.yaml").is_file() else ""

    sections = [
        _metrics_section(tasks, metrics),
        _curves_section(history, tasks, max_tasks),
        *_balancing_sections(history, tasks),
        _predictions_section(predictions, part, run, max_tasks),
        _labels_section(predictions, run),
        *_affinity_section([run, *([Path(affinity_dir)] if affinity_dir is not None else [])]),
        *_compare_section([run, *([Path(compare_dir)] if compare_dir is not None else [])]),
    ]
    if config:
        s = Section("config", "Configuration")
        s.add(details("config.yaml", f"<pre>{esc(config)}</pre>"))
        sections.append(s)
    model = metrics.get("model") or meta.get("model") or "model"
    where = {"valid": "validation", "test": "test", "held-out": "held-out test"}.get(str(metrics.get("evaluated_on")),
                                                                                   str(metrics.get("evaluated_on")))
    subtitle = (f"{run.resolve()} · model {model} ({meta.get('family', '')}) · {len(tasks)} tasks · "
                f"metrics on the {where} part")
    write_text(out, page(f"multitask report: {run.name or run.resolve().name}", subtitle, sections))
    counts = {s.id: s.figures for s in sections}
    return Report(out, sum(counts.values()), time.perf_counter() - start, counts)


def _is_report(path: Path) -> bool:
    """Whether ``path`` holds a page written by this module (which a new report may replace)."""
    try:
        with open(path, "rb") as f:
            return GENERATOR.encode() in f.read(4096)
    except OSError:
        return False


def _json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; is the run complete?") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupted ({e})") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: corrupted (not a JSON object)")
    return value


def _history(path: Path) -> list[dict[str, Any]]:
    """``log.jsonl``'s records, the last one of each epoch (a resumed run may repeat an epoch)."""
    if not path.is_file():
        return []
    records: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            records[int(record["epoch"])] = record
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: line {number} is corrupted ({e})") from None
    return [records[e] for e in sorted(records)]


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.4g}" if isinstance(value, int | float) else str(value)


# ---- sections -----------------------------------------------------------------------------------------------
def _metrics_section(tasks: Sequence[Task], metrics: dict[str, Any]) -> Section:
    s = Section("metrics", "Metrics")
    model = str(metrics.get("model") or "model")
    ours: dict[str, dict[str, Any]] = metrics.get("tasks") or {}
    baselines: dict[str, dict[str, Any]] = metrics.get("baselines") or {}
    lines = []
    for kind, b in baselines.items():
        n = b.get("delta_m_tasks", len(tasks))
        lines.append(f"<li>delta_m vs {esc(_TITLES.get(kind, kind))} ({esc(b.get('model', ''))}) = "
                     f"<b>{esc(_fmt(b.get('delta_m')))} %</b> over {esc(n)} of {len(tasks)} tasks</li>")
    if lines:
        s.add("<ul>" + "".join(lines) + "</ul>")
        s.note("delta_m: the mean relative gain of the model's deciding metric over the baseline's, in %, "
               "signed so that positive is better (Maninis et al. 2019).")
    else:
        s.note("No baseline in this run (train with --baseline stl,pooled,gbdt to compare).")
    header = ["task", "kind", "metric", model]
    for kind in baselines:
        header += [_TITLES.get(kind, kind), f"Δ vs {_TITLES.get(kind, kind)} %"]
    rows, classes = [], []
    terms = {k: delta_terms(tasks, ours, b.get("tasks") or {}) for k, b in baselines.items()}
    for t in tasks:
        value = (ours.get(t.name) or {}).get(t.metric)
        scores = {"": value, **{k: ((b.get("tasks") or {}).get(t.name) or {}).get(t.metric)
                                for k, b in baselines.items()}}
        defined = {k: v for k, v in scores.items() if isinstance(v, int | float) and math.isfinite(v)}
        best = (max if t.higher_is_better else min)(defined, key=defined.__getitem__) if len(defined) > 1 else None
        row: list[object] = [t.name, t.kind, f"{t.metric} ({'↑' if t.higher_is_better else '↓'})", _fmt(value)]
        cls = ["", "", "", "best" if best == "" else ""]
        for kind in baselines:
            term = terms[kind].get(t.name)
            row += [_fmt(scores[kind]), _fmt(100 * term if term is not None else None)]
            cls += ["best" if best == kind else "", ""]
        rows.append(row)
        classes.append(cls)
    s.add(table(header, rows, classes=classes))
    names = sorted({m for per in ours.values() for m in (per or {})})
    if names:
        all_rows = [[t.name, *(_fmt((ours.get(t.name) or {}).get(m)) for m in names)] for t in tasks]
        mean = metrics.get("mean") or {}
        all_rows.append(["mean over tasks", *(_fmt(mean.get(m)) for m in names)])
        s.add(details(f"every metric of {model}", table(["task", *names], all_rows)))
    notes = metrics.get("not_evaluated") or {}
    for task, why in list(notes.items())[:10]:
        s.note(f"task {task}: {why}")
    selection = metrics.get("selection")
    if selection:
        ranked = sorted(selection, key=lambda r: -r["score"] if isinstance(r.get("score"), int | float)
                        and math.isfinite(r["score"]) else math.inf)
        rows2 = [[r.get("number", ""), r.get("model", ""), _fmt(r.get("score")), _fmt(r.get("seconds")),
                  r.get("status", "")] for r in ranked[:30]]
        s.add(details(f"model selection ({len(selection)} candidates; score: skill over a constant predictor "
                      "on held-out rows, higher is better)", table(["#", "model", "score", "seconds", "status"], rows2)))
    return s


def _folded(s: Section, items: Sequence[Any], draw: Any, what: str, max_tasks: int | None) -> None:
    """Small multiples of the first ``max_tasks`` of ``items`` (all with None) in figures of at most
    :data:`figs.PANELS` panels, all but the first folded."""
    shown = list(items[:max_tasks] if max_tasks else items)
    groups = figs.chunks(len(shown))
    n = len(items)
    for i, group in enumerate(groups):
        span = f"tasks {group.start + 1}–{group.stop} of {n}" if len(groups) > 1 or len(shown) < n else \
            f"{n} task{'s' if n > 1 else ''}"
        html = s.figure(draw([shown[j] for j in group]), f"{what}: {span}")
        s.add(html if i == 0 else details(f"{what}: {span}", html))
    if len(shown) < n:
        s.note(f"{what}: the first {len(shown)} of {n} tasks are drawn (multitask report --max-tasks 0 draws all).")


def _curves_section(history: list[dict[str, Any]], tasks: Sequence[Task], max_tasks: int | None) -> Section:
    s = Section("curves", "Learning curves")
    if not history:
        s.note("No training history (log.jsonl): this model is not trained epoch by epoch.")
        return s
    names = [t.name for t in tasks]
    s.add(s.figure(figs.overview(history, names), "loss over epochs: all tasks",
                   "The sum of the tasks' mean training losses, and the weighted validation total that early "
                   "stopping follows."))
    s.note("Per task: the mean training loss of each epoch and the validation loss after it (in the loss's "
           "units: standardized targets for regression).")
    _folded(s, names, lambda group: figs.learning_curves(history, group), "learning curves", max_tasks)
    return s


def _balancing_sections(history: list[dict[str, Any]], tasks: Sequence[Task]) -> list[Section]:
    names = [t.name for t in tasks]
    out = []
    weights = [w for r in history for w in (r.get("weights") or {}).values() if isinstance(w, int | float)]
    if weights and max(weights) - min(weights) > 1e-9 * max(1.0, abs(max(weights))):
        s = Section("weights", "Task weights")
        s.add(s.figure(figs.task_weights(history, names), "task weights over epochs",
                       "Each task's weight as the balancer set it, averaged over the epoch's steps."))
        out.append(s)
    if any(isinstance(r.get("cosine"), int | float) for r in history):
        s = Section("cosine", "Gradient cosine")
        s.add(s.figure(figs.cosine(history), "gradient cosine over epochs",
                       "The mean cosine between the tasks' gradients over each epoch's steps."))
        out.append(s)
    return out


def _predictions_section(predictions: list[TaskPredictions], part: str, run: Path,
                         max_tasks: int | None) -> Section:
    s = Section("predictions", "Predictions")
    if not predictions:
        s.note(f"No {PREDICTIONS_FILE} in {run}: this run was trained before multitask saved its predictions; "
               "train it again for these figures.")
        return s
    where = {"valid": "validation", "held-out": "held-out test"}.get(part, part)
    s.note(f"On the labelled rows of the {where} part (at most {figs.MAX_POINTS} points drawn per task).")
    by_kind: dict[str, list[TaskPredictions]] = {}
    for t in predictions:
        by_kind.setdefault(t.kind, []).append(t)

    def folded(items: list[TaskPredictions], draw: Any, what: str) -> None:
        _folded(s, items, draw, what, max_tasks)

    if "regression" in by_kind:
        s.add("<h3>Regression: predicted against true</h3>")
        folded(by_kind["regression"], figs.predicted_vs_true, "predicted against true")
    binary = by_kind.get("binary", []) + by_kind.get("multilabel", [])
    if binary:
        s.add("<h3>Binary and multilabel: ROC and calibration</h3>")
        if "multilabel" in by_kind:
            s.note("Multilabel tasks: every (row, label) decision pooled.")
        folded(binary, figs.roc_curves, "ROC curves")
        folded(binary, figs.calibration_curves, "calibration curves")
    if "multiclass" in by_kind:
        s.add("<h3>Multiclass: confusion matrices</h3>")
        multiclass = by_kind["multiclass"]
        for i, t in enumerate(multiclass[:max_tasks] if max_tasks else multiclass):
            html = s.figure(figs.confusion(t), f"confusion matrix: {t.name}")
            s.add(html if i < 6 else details(f"confusion matrix: {t.name}", html))
    return s


def _labels_section(predictions: list[TaskPredictions], run: Path) -> Section:
    s = Section("labels", "Labels per task")
    if not predictions:
        s.note(f"No {PREDICTIONS_FILE} in {run}: label counts are not known.")
        return s
    names = [t.name for t in predictions]
    counts = [t.counts for t in predictions]
    s.add(s.figure(figs.label_counts(names, counts), "labelled rows per task",
                   "Rows with a label, per task, in the training, validation and test parts."))
    rows = []
    for t in predictions:
        by_class = ""
        if t.classes and len(t.class_counts):
            pairs = sorted(zip(t.classes, t.class_counts.tolist(), strict=False), key=lambda p: -p[1])
            by_class = ", ".join(f"{c}: {int(n)}" for c, n in pairs[:8]) + (" …" if len(pairs) > 8 else "")
        rows.append([t.name, t.kind, *(_fmt(t.counts.get(p)) if t.counts.get(p, -1) >= 0 else "—"
                                       for p in ("train", "valid", "test")), by_class])
    s.add(table(["task", "kind", "train", "valid", "test", "training labels per class"], rows))
    return s


def _affinity_section(folders: list[Path]) -> list[Section]:
    found: dict[str, tuple[Path | None, Path | None]] = {}
    for folder in folders:
        for path in sorted(folder.glob("affinity_*.png")) + sorted(folder.glob("affinity_*.csv")):
            measure = path.stem[len("affinity_"):]
            png, csv = found.get(measure, (None, None))
            found[measure] = (path, csv) if path.suffix == ".png" else (png, path)
    if not found:
        return []
    s = Section("affinity", "Task affinity")
    s.note("Row i, column j: how a step along task i's gradient changes task j's loss (positive: helps); "
           "tasks in cluster order (multitask affinity).")
    for measure, (png, csv) in found.items():
        data = png.read_bytes() if png is not None else _heatmap(csv, measure)
        s.add(s.figure(data, f"affinity heatmap: {measure}", str(png or csv)))
    return [s]


def _heatmap(csv: Path | None, measure: str) -> bytes:
    from multitask.affinity import plot_heatmap
    from multitask.affinity._plot import read_csv

    assert csv is not None
    try:
        frame = read_csv(csv)
        matrix = frame.to_numpy(dtype=float)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{csv}: not an affinity matrix ({e})") from None
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "heatmap.png"
        plot_heatmap(matrix, [str(t) for t in frame.index], png, f"{measure} affinity")
        return png.read_bytes()


def _compare_section(folders: list[Path]) -> list[Section]:
    import pandas as pd

    boards = [f for f in folders if (f / "leaderboard.csv").is_file()]
    if not boards:
        return []
    s = Section("compare", "Leaderboard")
    s.note("Models on the same splits (multitask compare): mean ± sd over splits × seeds of the mean over tasks "
           "of each deciding metric, delta_m against the STL and pooled references.")
    for folder in boards:
        try:
            frame = pd.read_csv(folder / "leaderboard.csv")
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{folder / 'leaderboard.csv'}: unreadable ({e})") from None
        metrics = [c[: -len("_mean")] for c in frame.columns if c.endswith("_mean") and not c.startswith("delta_m")]
        header = ["model", *metrics, "Δm vs STL %", "Δm vs pooled %", "won/lost vs STL", "fit s", "status"]
        rows = []
        for r in frame.to_dict("records"):
            role = {"stl": " (STL)", "pooled": " (pooled)"}.get(str(r.get("role")), "")
            pm = [_pm(r.get(f"{m}_mean"), r.get(f"{m}_sd")) for m in metrics]
            won = "—" if not _finite(r.get("won")) else f"{int(r['won'])}/{int(r['lost'])}"
            rows.append([f"{r.get('model')}{role}", *pm, _pm(r.get("delta_m_stl_mean"), r.get("delta_m_stl_sd")),
                         _pm(r.get("delta_m_pooled_mean"), r.get("delta_m_pooled_sd")), won,
                         _fmt(r.get("fit_seconds")), r.get("status", "")])
        s.add(f"<p class=\"note\">{esc(folder / 'leaderboard.csv')}</p>" + table(header, rows))
        if (folder / "leaderboard.png").is_file():
            s.add(s.figure((folder / "leaderboard.png").read_bytes(), f"leaderboard: {folder.name or folder}",
                           str(folder / "leaderboard.png")))
    return [s]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and math.isfinite(float(value))


def _pm(mean: Any, sd: Any) -> str:
    if not _finite(mean):
        return "—"
    return f"{float(mean):.4g} ± {float(sd):.2g}" if _finite(sd) else f"{float(mean):.4g}"
