"""Task affinity measures against known clusters and against transfer gain, and what each costs.

    python -m benchmarks.affinity_measures [--only generated,generated/shared-head,school,sarcos,census]
                                           [--jobs 2] [--data-dir DIR]

* **generated**: 6 regression tasks in 2 clusters of 3 (long form, 200 rows per task, 10 features; a task's
  weights are its cluster's direction plus 10% of its own, clusters orthogonal). For each measure, the
  adjusted Rand index (ARI) of :func:`multitask.affinity.best_partition` of its matrix against the true
  clusters, with the number of groups free and fixed to 2. The deep measures (gradient, lookahead, transfer
  gain) with the default hard-sharing model (one head per task) and, as ``generated/shared-head``, with one
  output layer shared by all tasks (``head=shared``), where tasks of different clusters pull the shared
  part apart.
* **school** (the 8 largest schools), **sarcos** (7 joints), **census** (census-income, 2 tasks, 20,000
  rows): Spearman rank correlation of the gradient, lookahead and mtrl matrices with transfer gain over the
  off-diagonal entries (T (T - 1) ordered pairs; transfer gain of the same deep model), and per task: for
  each task, the rank correlation of its partners ordered by the measure and by their transfer gain onto
  it, averaged over the tasks.

Costs are seconds of each measure divided by the seconds of one training of the deep model on all tasks with
the same options (no early stopping for either, so both run every epoch). Writes
``benchmarks/results/affinity_measures.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import adjusted_rand_score

from multitask import models
from multitask.affinity import affinity, best_partition, linear_affinity, transfer_gain
from multitask.config import RunConfig, load_config
from multitask.data.spec import BuiltinData, DataSpec, Source
from multitask.datasets import census_income, sarcos, school
from multitask.runs import prepare

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MULTITASK_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "benchmarks" / "results"

#: per setting: the deep model's training options (no early stopping, one torch thread per process)
TRAIN: dict[str, dict[str, Any]] = {
    "generated": {"epochs": 30, "batch_size": 128, "lr": 1e-3},
    "school": {"epochs": 20, "batch_size": 64, "lr": 1e-3, "weight_decay": 1e-4, "optimizer": "adamw"},
    "sarcos": {"epochs": 10, "batch_size": 64, "lr": 1e-3},
    "census": {"epochs": 2, "batch_size": 512, "lr": 1e-3},
}
CLUSTERS, PER_CLUSTER, ROWS, FEATURES = 2, 3, 200, 10
#: the settings, in order: generated tasks with the default hard-sharing model (one head per task) and with one
#: shared output layer (where tasks of different clusters conflict in the shared part), then the real data sets
SETTINGS = ("generated", "generated/shared-head", "school", "sarcos", "census")


def generated(seed: int = 0) -> tuple[BuiltinData, dict[str, int]]:
    """6 regression tasks in 2 clusters (long form) and each task's cluster."""
    rng = np.random.default_rng(seed)
    directions = np.linalg.qr(rng.standard_normal((FEATURES, CLUSTERS)))[0].T * 2.0
    frames, truth = [], {}
    for c in range(CLUSTERS):
        for k in range(PER_CLUSTER):
            name = f"c{c}_t{k}"
            x = rng.standard_normal((ROWS, FEATURES))
            w = directions[c] + 0.1 * np.linalg.norm(directions[c]) * rng.standard_normal(FEATURES) / np.sqrt(FEATURES)
            frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(FEATURES)])
            frame["y"] = x @ w + rng.standard_normal(ROWS)
            frame["task"] = name
            frames.append(frame)
            truth[name] = c
    return _long(pd.concat(frames, ignore_index=True), "task", "y", list(truth), "<generated>"), truth


def _long(frame: pd.DataFrame, column: str, target: str, tasks: list[str], path: str,
          ids: dict[str, object] | None = None) -> BuiltinData:
    from multitask.tasks import Task

    ids = ids or {t: t for t in tasks}
    spec = DataSpec([Task(t, "regression") for t in tasks], {"table": Source("table", frame, None, path=path)},
                    dict.fromkeys(tasks, "table"), dict.fromkeys(tasks, target),
                    {t: (column, ids[t]) for t in tasks})
    return BuiltinData("subset", spec, None, f"{len(tasks)} tasks of {path}")


def school_subset(data_dir: Path, n: int = 8) -> BuiltinData:
    """The ``n`` schools with the most pupils (whole data set, no test part)."""
    full = school(data_dir, download=False).train
    source = next(iter(full.sources.values()))
    counts = {t: int(full.rows_of(t).sum()) for t in full.task_names}
    chosen = sorted(sorted(counts, key=lambda t: -counts[t])[:n])
    keep = np.any([full.rows_of(t) for t in chosen], axis=0)
    frame = source.frame[keep].reset_index(drop=True)
    spec = DataSpec([full.task(t) for t in chosen], {source.name: Source(source.name, frame, source.features,
                                                                         path=source.path)},
                    {t: full.task_source[t] for t in chosen}, {t: full.target_column[t] for t in chosen},
                    {t: full.task_rows[t] for t in chosen})
    return BuiltinData("school", spec, None, f"School, the {n} largest schools")


def off_diagonal(m: np.ndarray) -> np.ndarray:
    return m[~np.eye(len(m), dtype=bool)]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho; NaN where either side is constant (e.g. a symmetric measure's 2 entries for 2 tasks)."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def per_task_spearman(measure: np.ndarray, gain: np.ndarray) -> float:
    """For each task ``j``, Spearman's rho of its partners ``i`` ranked by ``measure[i, j]`` and by
    ``gain[i, j]`` (which partner helps ``j`` most, whatever ``j``'s overall gain), averaged over the tasks."""
    t = len(gain)
    rhos = [_spearman(np.delete(measure[:, j], j), np.delete(gain[:, j], j)) for j in range(t)]
    finite = [r for r in rhos if np.isfinite(r)]
    return float(np.mean(finite)) if finite else float("nan")


def one_training(cfg: RunConfig, data: BuiltinData) -> float:
    """Seconds of one fit of the configured model on all tasks."""
    p = prepare(cfg, data, hold_out_test=False)
    model = models.make(cfg)
    start = time.perf_counter()
    model.fit(p.tasks, p.pre, p.train, p.valid)
    return time.perf_counter() - start


def measure_all(name: str, data: BuiltinData, jobs: int, n_clusters: int | None,
                model_options: dict[str, Any] | None = None, linear: bool = True) -> dict[str, Any]:
    """Every measure on ``data``: matrices, seconds, costs relative to one training."""
    cfg = load_config(None, {"model": "hard-sharing", "model_options": model_options or {},
                             "train": {**TRAIN[name.split("/")[0]], "patience": None, "threads": 1,
                                       "progress": False}})
    out: dict[str, Any] = {"matrices": {}, "seconds": {}}
    train_seconds = one_training(cfg, data)
    out["training_seconds"] = train_seconds
    for measure in ("gradient", "lookahead"):
        r = affinity(cfg, (measure,), every=10, data=data)
        out["matrices"][measure] = r.matrices[measure]
        out["seconds"][measure] = r.seconds
    lin = cfg.model_copy(update={"model": "linear:clustered", "model_options": {"n_clusters": n_clusters or 2},
                                 "train": type(cfg.train)(seed=0)})
    for measure in (() if not linear else ("mtrl", "clustered") if n_clusters else ("mtrl",)):
        la = linear_affinity(lin, measure, data)
        out["matrices"][measure] = la.matrix
        out["seconds"][measure] = la.seconds
        if la.clusters is not None:
            out["clusters"] = la.clusters
    tg = transfer_gain(cfg, data, n_jobs=jobs)
    out["tasks"] = tg.tasks
    out["matrices"]["transfer"] = tg.matrix
    out["seconds"]["transfer"] = tg.seconds
    out["transfer_training_seconds"] = float(sum(tg.run_seconds.values()))
    out["transfer_runs"] = tg.runs
    out["cost"] = {m: s / train_seconds for m, s in out["seconds"].items()}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SETTINGS), help=f"comma-separated, of: {', '.join(SETTINGS)}")
    parser.add_argument("--jobs", type=int, default=2, help="processes for the transfer-gain trainings (default 2)")
    parser.add_argument("--data-dir", type=Path, default=DATA)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    results: dict[str, Any] = {}
    start = time.perf_counter()
    for name in args.only.split(","):
        t0 = time.perf_counter()
        if name.startswith("generated"):
            data, truth = generated()
            shared = name == "generated/shared-head"
            r = measure_all(name, data, args.jobs, CLUSTERS, {"head": "shared"} if shared else None, not shared)
            labels = [truth[t] for t in r["tasks"]]
            r["ari"] = {m: {"free": adjusted_rand_score(labels, _labels(best_partition(_finite(a)).groups, len(labels))),
                            "k=true": adjusted_rand_score(labels, _labels(best_partition(_finite(a), k=CLUSTERS).groups,
                                                                       len(labels)))}
                        for m, a in r["matrices"].items()}
            if "clusters" in r:
                r["ari"]["clustered (labels)"] = {"free": adjusted_rand_score(labels, r["clusters"]), "k=true": None}
        else:
            if not args.data_dir.is_dir():
                print(f"{name}: skipped, no data sets at {args.data_dir}")
                continue
            data = {"school": lambda: school_subset(args.data_dir),
                    "sarcos": lambda: sarcos(args.data_dir, download=False),
                    "census": lambda: census_income(args.data_dir, max_rows=20_000, download=False)}[name]()
            r = measure_all(name, data, args.jobs, None)
            gain = off_diagonal(r["matrices"]["transfer"])
            r["spearman"] = {m: _spearman(off_diagonal(r["matrices"][m]), gain) for m in ("gradient", "lookahead", "mtrl")}
            r["spearman_per_task"] = {m: per_task_spearman(r["matrices"][m], r["matrices"]["transfer"])
                                      for m in ("gradient", "lookahead", "mtrl")}
        r["wall_seconds"] = time.perf_counter() - t0
        results[name] = r
        print(f"{name}: {r['wall_seconds']:.0f} s", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "affinity_measures.json"
    path.write_text(json.dumps(results, indent=1, default=_json) + "\n")
    print(table(results))
    print(f"total {time.perf_counter() - start:.0f} s; {path}")
    return 0


def _finite(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    np.fill_diagonal(a, 0.0)
    return np.nan_to_num(a, nan=0.0)


def _labels(groups: list[list[int]], t: int) -> list[int]:
    out = [0] * t
    for k, g in enumerate(groups):
        for i in g:
            out[i] = k
    return out


def _json(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value))


def _f(x: Any, digits: int = 2) -> str:
    return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}f}"


def table(results: dict[str, Any]) -> str:
    lines = []
    generated = [n for n in results if n.startswith("generated")]
    if generated:
        lines += ["| generated, 6 tasks in 2 clusters | measure | ARI, groups free | ARI, 2 groups | cost × one training |",
                  "|---|---|--:|--:|--:|"]
        for n in generated:
            g = results[n]
            model = "hard-sharing, head=shared" if n.endswith("shared-head") else "hard-sharing (one head per task)"
            for m, ari in g["ari"].items():
                deep = m in ("gradient", "lookahead", "transfer")
                lines.append(f"| {model if deep else 'linear'} | {m} | {_f(ari['free'])} | {_f(ari['k=true'])} | "
                             f"{_f(g['cost'].get(m), 3)} |")
        lines.append("")
    real = [n for n in ("school", "sarcos", "census") if n in results]
    if real:
        lines += ["| data set | T | Spearman with transfer gain, all pairs: gradient | lookahead | mtrl "
                  "| per task: gradient | lookahead | mtrl |", "|---|--:|--:|--:|--:|--:|--:|--:|"]
        for n in real:
            r = results[n]
            s, q = r["spearman"], r["spearman_per_task"]
            lines.append(f"| {n} | {len(r['tasks'])} | {_f(s['gradient'])} | {_f(s['lookahead'])} | {_f(s['mtrl'])} | "
                         f"{_f(q['gradient'])} | {_f(q['lookahead'])} | {_f(q['mtrl'])} |")
        lines += ["", "| data set | one training (s) | cost × one training: gradient | lookahead | mtrl "
                  "| transfer (wall, 2 processes) | transfer (sum of its trainings) |", "|---|--:|--:|--:|--:|--:|--:|"]
        for n in real:
            r = results[n]
            c = r["cost"]
            lines.append(f"| {n} | {r['training_seconds']:.1f} | {_f(c['gradient'])} | {_f(c['lookahead'])} | "
                         f"{_f(c['mtrl'], 3)} | {_f(c['transfer'], 1)} | "
                         f"{_f(r['transfer_training_seconds'] / r['training_seconds'], 1)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
