"""delta_m of every registered balancing method against single-task models, on three real data sets.

    python benchmarks/balancing_delta_m.py                          # all methods, 3 data sets, seeds 0,1,2
    python benchmarks/balancing_delta_m.py --methods mgda,pcgrad    # only these (the references as needed)
    python benchmarks/balancing_delta_m.py --quick                  # 1 seed, small parts, few methods
    python benchmarks/balancing_delta_m.py --summarize              # only rebuild the summary from the runs

For each data set and seed the data are split once (train / validation for early stopping / test) and every
method trains the same hard-sharing network with the same options, only ``TrainConfig.balancer`` differing,
through the library's own pieces (``multitask.runs.prepare``, ``multitask.models.make``,
``multitask.runs.fit_and_score``: what ``multitask train`` runs). Metrics are taken on the test part;
delta_m is :func:`multitask.evaluate.delta_m`, the definition of Maninis et al. (2019):
``100/T Σ_t s_t (M_t − B_t) / |B_t|`` with ``s_t = +1`` where higher is better (AUC, accuracy) and ``−1``
where lower is (RMSE), so a positive delta_m is better than the reference. The references:

* ``stl``: one network of the same architecture and training options per task (equal weights), as
  ``--baseline stl`` trains it;
* ``pooled`` (SARCOS only, whose tasks measure one kind of quantity): ``pooled-mlp`` with the same options,
  as ``--baseline pooled``.

Each method's time is that of its ``fit_and_score`` (training and predicting the test part), as wall seconds
and as the process's CPU seconds (one thread: the wall time it takes on an idle machine; on a shared machine
the wall clock also counts the other processes' turns). The *equal wall-clock* comparison gives equal weights
(``static``) the method's CPU time: ``static`` trained for ``B = round(method CPU seconds / static CPU
seconds per epoch)`` epochs (at least the configured number) without
early stopping, its best validation epoch kept. Such runs differ only in their length and follow one
trajectory, so the longest one's validation scores tell which epoch a budget ``B`` keeps, and one run per
kept epoch suffices (:func:`prefix_best`); the first such run is 2.5 × the configured epochs long (or ``B``). A method no slower than 1.2 × ``static`` is compared with
``static`` itself.

The data sets (``$MULTITASK_DATA`` or ``--data-dir``, never downloaded):

* ``census-income``: 25,000 of the 99,762 rows (a fixed subsample, seed 0); per seed 20% test, and of the
  remaining 20,000 rows 20% validation (16,000 training rows); tasks income and never-married (AUC);
  hidden 128-64, 8 epochs, patience 3;
* ``sarcos``: the fixed split ``seed + 1`` of Zhang & Li (about 4,700 training / 1,550 test rows, 7 torques,
  RMSE), 20% of the training part for validation; hidden 128-64, batch 128, 30 epochs, patience 10;
* ``multimnist``: 3,000 images (seed 0), per seed 20% test and 20% of the rest validation (1,920 training
  images); tasks left and right digit (accuracy); the 784 pixels as tabular features (an MLP encoder, not
  the conv encoder, which costs ~50× more per step on one CPU thread), hidden 256-128, batch 128, 15 epochs,
  patience 3.

Every method runs with its default options (``gradnorm`` and ``mgda-ub`` work on the representation by
default, the other gradient methods on the shared parameters).

Seeds are the outer loop (every data set for seed 0, then seed 1, ...). Every run appends one line to ``benchmarks/results/balancing/delta_m_runs.csv`` as soon as it ends (a run
already there is not repeated: delete lines, or pass ``--rerun``, to redo them), so an interrupted benchmark
keeps its results and continues where it stopped; ``delta_m.csv`` is the summary (mean ± sd over seeds).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import math
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multitask import models
from multitask.config import RunConfig
from multitask.data.spec import BuiltinData
from multitask.data.split import split_spec
from multitask.datasets import census_income, multimnist, sarcos
from multitask.errors import MultitaskError
from multitask.evaluate import Metrics, delta_m
from multitask.registry import BALANCERS
from multitask.runs import Prepared, fit_and_score, prepare
from multitask.tasks import Task
from multitask.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "balancing"
DEFAULT_DATA = Path(os.environ.get("MULTITASK_DATA", REPO.parent / "shared" / "data"))
#: a method at most this many times slower than static is compared at equal wall-clock with static itself
SAME_BUDGET = 1.2
#: a first run of equal weights for a budget is this many times the configured epochs (at least the budget),
#: so that its scores answer the later budgets too
LONG_BUDGET = 2.5
RUN_FIELDS = ["dataset", "seed", "method", "role", "epochs", "patience", "epochs_run", "best_epoch", "seconds",
              "cpu_seconds", "delta_m_stl", "delta_m_pooled", "metrics", "valid_scores", "budget_of", "commit", "error"]


@dataclass(frozen=True)
class Bench:
    """One data set: how to load a seed's split, and the run's model and training options."""

    load: Callable[[Path, int, bool], BuiltinData]
    model_options: dict[str, Any]
    train: TrainConfig
    pooled: bool = False
    quick_train: dict[str, Any] = field(default_factory=dict)


def _held_out(data: BuiltinData, seed: int) -> BuiltinData:
    train_part, test_part = split_spec(data.train, 0.2, seed=1000 + seed)
    return BuiltinData(data.name, train_part, test_part, data.description)


def _census(data_dir: Path, seed: int, quick: bool) -> BuiltinData:
    return _held_out(census_income(data_dir, max_rows=6_000 if quick else 25_000, seed=0, download=False), seed)


def _sarcos(data_dir: Path, seed: int, quick: bool) -> BuiltinData:
    return sarcos(data_dir, split=seed % 10 + 1, download=False)


def _multimnist(data_dir: Path, seed: int, quick: bool) -> BuiltinData:
    data = multimnist(data_dir, n_images=800 if quick else 3_000, seed=0, download=False)
    # the pixels as a table (an MLP encoder): the conv encoder costs ~50x more per step on one CPU thread
    spec = data.train
    tabular = dataclasses.replace(
        spec, sources={k: dataclasses.replace(v, image_shape=None) for k, v in spec.sources.items()}
    )
    return _held_out(BuiltinData(data.name, tabular, None, data.description), seed)


def _train(**options: Any) -> TrainConfig:
    return TrainConfig(lr=1e-3, threads=1, progress=False, **options)


BENCHES: dict[str, Bench] = {
    "census-income": Bench(_census, {"hidden": [128, 64]}, _train(epochs=8, batch_size=256, patience=3),
                           quick_train={"epochs": 2}),
    "sarcos": Bench(_sarcos, {"hidden": [128, 64]}, _train(epochs=30, batch_size=128, patience=10), pooled=True,
                    quick_train={"epochs": 5}),
    "multimnist": Bench(_multimnist, {"hidden": [256, 128]}, _train(epochs=15, batch_size=128, patience=3),
                        quick_train={"epochs": 2}),
}


# ---- one run -----------------------------------------------------------------------------------------------------
def fit_once(cfg: RunConfig, p: Prepared) -> tuple[Metrics, float, float, list[float | None], int]:
    """Test metrics, wall and CPU seconds, each epoch's early-stopping score and the kept epoch of ``cfg``'s
    model on ``p``."""
    model = models.make(cfg)
    model.check(p.tasks, p.pre)
    scores: list[float | None] = []

    def note(epoch: int, score: float | None) -> None:
        scores.append(score)

    if hasattr(model, "on_epoch"):
        model.on_epoch = note
    start, cpu = time.perf_counter(), time.process_time()
    metrics, _ = fit_and_score(model, p, None)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return metrics, wall, cpu, scores, int(getattr(model, "best_epoch_", 0))


def commit() -> str:
    """The checkout's commit, with ``+dirty`` when ``src/`` has uncommitted changes (what was measured)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=REPO, capture_output=True, text=True)
    except OSError:
        return ""
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


class Runs:
    """The runs CSV: read what is there, append one line per finished run."""

    def __init__(self, path: Path, rerun: bool) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path.exists() and not rerun:
            with open(path, newline="") as f:
                self.rows = list(csv.DictReader(f))
        elif path.exists():
            path.rename(path.with_suffix(f".{int(time.time())}.csv"))
        self.commit = commit()

    def find(self, dataset: str, seed: int, method: str, role: str, epochs: int | None = None) -> dict[str, Any] | None:
        for r in self.rows:
            if (r["dataset"], int(r["seed"]), r["method"], r["role"]) == (dataset, seed, method, role) and not r[
                "error"
            ] and (epochs is None or int(r["epochs"]) == epochs):
                return r
        return None

    def add(self, row: dict[str, Any]) -> dict[str, Any]:
        row = {k: row.get(k, "") for k in RUN_FIELDS} | {"commit": self.commit}
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=RUN_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        self.rows.append({k: str(v) if v is not None else "" for k, v in row.items()})
        return row


def _metrics(row: dict[str, Any]) -> Metrics:
    return json.loads(row["metrics"]) if isinstance(row["metrics"], str) else row["metrics"]


def run_one(runs: Runs, name: str, seed: int, method: str, role: str, cfg: RunConfig, p: Prepared,
            budget_of: str = "") -> tuple[dict[str, Any] | None, bool]:
    """The run's row, and whether it is new (not yet in the file); None if it failed (the failure is written)."""
    done = runs.find(name, seed, method, role, cfg.train.epochs)
    if done is not None:
        return done, False
    row: dict[str, Any] = {"dataset": name, "seed": seed, "method": method, "role": role,
                           "epochs": cfg.train.epochs, "patience": cfg.train.patience, "budget_of": budget_of}
    try:
        metrics, seconds, cpu, scores, best = fit_once(cfg, p)
    except (MultitaskError, RuntimeError, ValueError) as e:
        row["error"] = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
        print(f"{name} seed {seed} {method} ({role}): FAILED {row['error']}", flush=True)
        runs.add(row)
        return None, False
    row.update(metrics=json.dumps(metrics), seconds=round(seconds, 3), cpu_seconds=round(cpu, 3),
               epochs_run=len(scores), best_epoch=best,
               valid_scores=json.dumps(scores))
    return row, True


def score(row: dict[str, Any], tasks: list[Task], stl: Metrics, pooled: Metrics | None) -> dict[str, Any]:
    """``row`` with delta_m of its metrics against the STL models and the pooled model."""
    m = _metrics(row)
    row["delta_m_stl"] = _round(delta_m(tasks, m, stl)) if len(stl) == len(tasks) else None
    row["delta_m_pooled"] = _round(delta_m(tasks, m, pooled)) if pooled is not None else None
    return row


def run_dataset(name: str, bench: Bench, seeds: list[int], methods: list[str], data_dir: Path, runs: Runs,
                quick: bool) -> None:
    train = bench.train.model_copy(update=bench.quick_train) if quick else bench.train
    for seed in seeds:
        print(f"== {name}, seed {seed}", flush=True)
        data = bench.load(data_dir, seed, quick)
        base = RunConfig(dataset=name, model="hard-sharing", model_options=bench.model_options,
                         train=train.model_copy(update={"seed": seed}))
        p = prepare(base, data)
        tasks = p.tasks
        stl: Metrics = {}
        for task in tasks:  # one equal-weights network per task, as --baseline stl
            single, new = run_one(runs, name, seed, f"stl:{task.name}", "stl", base, p.only([task.name]))
            if single is not None:
                stl.update(_metrics(runs.add(single) if new else single))
        pooled: Metrics | None = None
        if bench.pooled:
            prow, new = run_one(runs, name, seed, "pooled", "pooled", base.model_copy(update={"model": "pooled-mlp"}), p)
            if prow is not None:
                pooled = _metrics(runs.add(prow) if new else prow)

        static_row: dict[str, Any] | None = None
        for method in ["static", *[m for m in methods if m != "static"]]:
            cfg = base.model_copy(update={"train": base.train.model_copy(update={"balancer": method})})
            row, new = run_one(runs, name, seed, method, "method", cfg, p)
            if row is None:
                continue
            if new:
                row = runs.add(score(row, tasks, stl, pooled))
                print(f"{name} seed {seed} {method}: delta_m {row['delta_m_stl']} (stl), {row['delta_m_pooled']} "
                      f"(pooled), {row['seconds']} s ({row['cpu_seconds']} s CPU), {row['epochs_run']} epochs",
                      flush=True)
            if method == "static":
                static_row = row
                continue
            if static_row is None or float(row["cpu_seconds"]) <= SAME_BUDGET * float(static_row["cpu_seconds"]):
                continue
            # equal weights given this method's wall time
            epochs = budget_epochs(static_row, float(row["cpu_seconds"]))
            if prefix_best(runs, name, seed, epochs) is None:  # no run this long yet: one long enough for more
                length = max(epochs, math.ceil(LONG_BUDGET * base.train.epochs))
                run_budget(runs, name, seed, base, p, length, method, tasks, stl, pooled)
            kept = prefix_best(runs, name, seed, epochs)
            if kept is not None and same_time(runs, name, seed, epochs) is None:  # the run that stops at it
                run_budget(runs, name, seed, base, p, kept, method, tasks, stl, pooled)


def run_budget(runs: Runs, name: str, seed: int, base: RunConfig, p: Prepared, epochs: int, method: str,
               tasks: list[Task], stl: Metrics, pooled: Metrics | None) -> None:
    """Equal weights for ``epochs`` epochs without early stopping (the best validation epoch kept)."""
    budget = base.model_copy(update={"train": base.train.model_copy(update={"epochs": epochs, "patience": None})})
    brow, new = run_one(runs, name, seed, "static", "budget", budget, p, budget_of=method)
    if brow is not None and new:
        brow = runs.add(score(brow, tasks, stl, pooled))
        print(f"{name} seed {seed} static for {epochs} epochs (for the time of {method}; kept epoch "
              f"{brow['best_epoch']}): delta_m {brow['delta_m_stl']}, {brow['cpu_seconds']} s CPU", flush=True)


def budget_epochs(static_row: dict[str, Any], seconds: float) -> int:
    """Epochs of equal weights that take ``seconds`` (at least the configured epochs)."""
    per_epoch = float(static_row["cpu_seconds"]) / max(int(static_row["epochs_run"]), 1)
    return max(int(static_row["epochs"]), round(seconds / per_epoch))


def prefix_best(runs: Runs, dataset: str, seed: int, epochs: int) -> int | None:
    """The epoch that equal weights without early stopping keep after ``epochs`` epochs, if known.

    Runs of equal weights without early stopping that differ only in their number of epochs follow the same
    trajectory (seeded per epoch, constant learning rate), so the longest one's early-stopping scores tell
    which epoch any shorter budget keeps: the first best score among the first ``epochs``.
    """
    budget = [r for r in runs.rows if (r["dataset"], int(r["seed"]), r["role"]) == (dataset, seed, "budget")
              and not r["error"] and int(r["epochs"]) >= epochs]
    if not budget:
        return None
    scores = json.loads(max(budget, key=lambda r: int(r["epochs"]))["valid_scores"])[:epochs]
    defined = [(s, i) for i, s in enumerate(scores) if s is not None]
    return min(defined)[1] + 1 if defined else None


def same_time(runs: Runs, dataset: str, seed: int, epochs: int) -> dict[str, Any] | None:
    """The run of equal weights that a budget of ``epochs`` epochs gives, if one was run: the one that kept the
    same epoch (so the same weights)."""
    kept = prefix_best(runs, dataset, seed, epochs)
    for r in runs.rows:
        if (r["dataset"], int(r["seed"]), r["role"]) == (dataset, seed, "budget") and not r["error"] \
                and kept is not None and int(r["best_epoch"]) == kept:
            return r
    return None


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


# ---- summary -----------------------------------------------------------------------------------------------------
def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return None, None
    return float(np.mean(v)), (float(np.std(v, ddof=1)) if len(v) > 1 else None)


def summarize(runs: Runs, out: Path) -> list[dict[str, Any]]:
    """One line per data set and method: delta_m (vs STL, vs pooled) mean ± sd over seeds, seconds, and equal
    weights at the same wall-clock time."""
    ok = [r for r in runs.rows if not r["error"]]
    failed = [r for r in runs.rows if r["error"]]
    summary = []
    for dataset in dict.fromkeys(r["dataset"] for r in runs.rows):
        mine = [r for r in ok if r["dataset"] == dataset]
        methods = list(dict.fromkeys(r["method"] for r in mine if r["role"] == "method"))
        methods += [m for m in dict.fromkeys(r["method"] for r in failed if r["dataset"] == dataset)
                    if m not in methods]
        static = {int(r["seed"]): r for r in mine if r["role"] == "method" and r["method"] == "static"}
        for method in methods:
            rows = [r for r in mine if r["role"] == "method" and r["method"] == method]
            errors = [r["error"] for r in failed if r["dataset"] == dataset and r["method"] == method]
            d, d_sd = _mean_sd([float(r["delta_m_stl"]) for r in rows if r["delta_m_stl"]])
            dp, dp_sd = _mean_sd([float(r["delta_m_pooled"]) for r in rows if r["delta_m_pooled"]])
            s, _ = _mean_sd([float(r["seconds"]) for r in rows])
            cpu, _ = _mean_sd([float(r["cpu_seconds"]) for r in rows])
            equal = []
            for r in rows:
                seed = int(r["seed"])
                if seed not in static:
                    continue
                if method == "static" or float(r["cpu_seconds"]) <= SAME_BUDGET * float(static[seed]["cpu_seconds"]):
                    equal.append(static[seed])
                    continue
                match = same_time(runs, dataset, seed, budget_epochs(static[seed], float(r["cpu_seconds"])))
                if match is not None:
                    equal.append(match)
            e, e_sd = _mean_sd([float(b["delta_m_stl"]) for b in equal if b["delta_m_stl"]])
            es, _ = _mean_sd([float(b["cpu_seconds"]) for b in equal])
            summary.append({
                "dataset": dataset, "method": method, "seeds": len(rows),
                "delta_m_stl": _round(d), "delta_m_stl_sd": _round(d_sd),
                "delta_m_pooled": _round(dp), "delta_m_pooled_sd": _round(dp_sd),
                "seconds": _round(s), "cpu_seconds": _round(cpu),
                "static_same_time_delta_m_stl": _round(e), "static_same_time_delta_m_stl_sd": _round(e_sd),
                "static_same_time_cpu_seconds": _round(es), "static_same_time_seeds": len(equal),
                "method_minus_static_same_time": _round(d - e) if d is not None and e is not None else None,
                "error": errors[0] if errors and not rows else "",
            })
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(summary[0]) if summary else ["dataset"])
        writer.writeheader()
        writer.writerows(summary)
    return summary


def print_summary(summary: list[dict[str, Any]]) -> None:
    def pm(m: float | None, sd: float | None) -> str:
        return "—" if m is None else f"{m:+.2f}" + (f" ± {sd:.2f}" if sd is not None else "")

    print("\n| data set | method | Δm vs STL (%) | Δm vs pooled (%) | CPU s / run | static, same time: Δm vs STL | "
          "method − static same time |")
    print("|---|---|---|---|---|---|---|")
    for r in summary:
        if r["error"]:
            print(f"| {r['dataset']} | {r['method']} | failed: {r['error'][:80]} | | | | |")
            continue
        diff = "—" if r["method_minus_static_same_time"] is None else f"{r['method_minus_static_same_time']:+.2f}"
        print(f"| {r['dataset']} | {r['method']} | {pm(r['delta_m_stl'], r['delta_m_stl_sd'])} | "
              f"{pm(r['delta_m_pooled'], r['delta_m_pooled_sd'])} | {r['cpu_seconds']:.1f} | "
              f"{pm(r['static_same_time_delta_m_stl'], r['static_same_time_delta_m_stl_sd'])} | {diff} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(BENCHES), help=f"comma-separated, of {', '.join(BENCHES)}")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default="", help="comma-separated balancers (default: every registered one)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--rerun", action="store_true", help="start a new runs file (the old one is renamed)")
    parser.add_argument("--summarize", action="store_true", help="only rebuild delta_m.csv from the runs file")
    parser.add_argument("--quick", action="store_true",
                        help="seed 0, small parts, 2 epochs, static/mgda/pcgrad only; files *_quick.csv")
    a = parser.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("multitask").setLevel(logging.ERROR)
    suffix = "_quick" if a.quick else ""
    if a.quick and not a.summarize:  # a quick run always starts afresh
        (a.out / "delta_m_runs_quick.csv").unlink(missing_ok=True)
    runs = Runs(a.out / f"delta_m_runs{suffix}.csv", a.rerun)
    if not a.summarize:
        if not a.data_dir.is_dir():
            raise SystemExit(f"no data folder {a.data_dir}: set MULTITASK_DATA or --data-dir")
        methods = [m for m in a.methods.split(",") if m] or list(BALANCERS.names())
        seeds = [int(s) for s in a.seeds.split(",")]
        if a.quick:
            seeds = seeds[:1]
            methods = [m for m in (a.methods.split(",") if a.methods else ["static", "mgda", "pcgrad"]) if m]
        unknown = [m for m in methods if m not in BALANCERS]
        if unknown:
            raise SystemExit(f"unknown balancer {unknown[0]!r}; registered: {', '.join(BALANCERS.names())}")
        started = time.perf_counter()
        for seed in seeds:  # every data set for a seed before the next seed: partial results cover them all
            for name in a.datasets.split(","):
                run_dataset(name, BENCHES[name], [seed], methods, a.data_dir, runs, a.quick)
        print(f"done in {time.perf_counter() - started:.0f} s", flush=True)
    summary = summarize(runs, a.out / f"delta_m{suffix}.csv")
    print_summary(summary)


if __name__ == "__main__":
    main()
