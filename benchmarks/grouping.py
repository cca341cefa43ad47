"""Training by groups (``--groups auto``) against all-in-one and single-task models, and whether auto groups
recover known clusters.

    MULTITASK_DATA=../shared/data python -m benchmarks.grouping [clustered synthetic school sarcos census multimnist]

For each data set, :func:`multitask.grouping.compare_groups` fits, on one split, the all-in-one model, the
grouped model (groups from lookahead affinity measured on the training rows, the measuring network with
shared heads; best partition, any number of groups) and single-task models, all hard sharing with the same
options, and scores them on the test part: delta_m (%) of grouped vs all-in-one, grouped vs single-task and
all-in-one vs single-task. Where the true clusters are known (generated data), the adjusted Rand index of the
chosen groups against them. Settings are reduced to keep the whole run near 15 minutes on a 2-core CPU
(see ``SETTINGS``). Writes ``benchmarks/results/grouping/NAME.json`` and prints one markdown row per run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from multitask.config import RunConfig
from multitask.data.spec import BuiltinData, DataSpec, Source
from multitask.grouping import ALL_IN_ONE, GROUPED, SINGLE_TASK, compare_groups
from multitask.registry import DATASETS
from multitask.tasks import Task

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "grouping"
DATA = Path(os.environ.get("MULTITASK_DATA", REPO.parent / "shared" / "data"))

#: generated clusters: 4 clusters of 3 regression tasks, each cluster one linear function of its own 4 features
CLUSTERS, PER_CLUSTER = 4, 3
#: name -> (data set options, model options, training options, seeds)
SETTINGS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[int]]] = {
    "clustered": ({"n_rows": 1000}, {"hidden": [32]}, {"epochs": 10, "batch_size": 64}, [0, 1, 2]),
    "synthetic": ({"n_rows": 2000}, {"hidden": [32]}, {"epochs": 10, "batch_size": 64}, [0, 1, 2]),
    "school": ({"split": 1, "schools": 20}, {"hidden": [32]}, {"epochs": 30, "batch_size": 64}, [0]),
    "sarcos": ({"split": 1}, {"hidden": [64]}, {"epochs": 20, "batch_size": 64}, [0]),
    "census": ({"max_rows": 20_000}, {"hidden": [64]}, {"epochs": 5, "batch_size": 256}, [0]),
    "multimnist": ({"n_images": 2000}, {}, {"epochs": 3, "batch_size": 32}, [0]),
}


def clustered(n_rows: int, seed: int) -> tuple[BuiltinData, dict[str, int]]:
    """Generated clustered regression tasks (wide), a test part of n_rows // 4, and each task's cluster."""
    rng = np.random.default_rng(seed)
    d = 4 * CLUSTERS
    n = n_rows + n_rows // 4
    x = rng.standard_normal((n, d))
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(d)])
    truth: dict[str, int] = {}
    for c in range(CLUSTERS):
        block = np.arange(d) // 4 == c
        w = np.where(block, rng.standard_normal(d), 0.0)
        for k in range(PER_CLUSTER):
            name = f"c{c}_{k}"
            frame[name] = x @ (w * rng.uniform(0.8, 1.2) + 0.1 * rng.standard_normal(d) * block) \
                + 0.1 * rng.standard_normal(n)
            truth[name] = c
    features = [f"x{i}" for i in range(d)]
    spec = DataSpec([Task(t, "regression") for t in truth],
                    {"table": Source("table", frame.iloc[:n_rows].reset_index(drop=True), features, path="<clustered>")},
                    {t: "table" for t in truth}, {t: t for t in truth})
    test = spec.with_frames({"table": frame.iloc[n_rows:].reset_index(drop=True)})
    return BuiltinData("clustered", spec, test, f"{CLUSTERS} clusters of {PER_CLUSTER} tasks"), truth


def _schools(spec: DataSpec, names: list[str]) -> DataSpec:
    """A long-form spec restricted to the rows and tasks of ``names``."""
    column = spec.task_rows[names[0]][0]
    ids = {spec.task_rows[t][1] for t in names}
    source = spec.sources[spec.task_source[names[0]]]
    frame = source.frame[source.frame[column].isin(ids)].reset_index(drop=True)
    return DataSpec([spec.task(t) for t in names], {source.name: dataclasses.replace(source, frame=frame)},
                    {t: spec.task_source[t] for t in names}, {t: spec.target_column[t] for t in names},
                    {t: spec.task_rows[t] for t in names})


def load(name: str, options: dict[str, Any], seed: int) -> tuple[str, BuiltinData, dict[str, int] | None]:
    """(the data set's registry name, its data, the true clusters where known)."""
    if name == "clustered":
        data, truth = clustered(options["n_rows"], seed)
        return "synthetic", data, truth
    if name == "synthetic":
        from multitask.datasets._synthetic import TASKS

        data = DATASETS.get("synthetic")(seed=seed, **options)
        return "synthetic", data, {t: "abn".index(g[0]) for t, (g, _) in TASKS.items()}
    registry = {"census": "census-income"}.get(name, name)
    opts = {k: v for k, v in options.items() if k != "schools"}
    data = DATASETS.get(registry)(DATA, download=False, **opts)
    if "schools" in options:
        names = data.train.task_names[: options["schools"]]
        assert data.test is not None
        data = BuiltinData(data.name, _schools(data.train, names), _schools(data.test, names),
                           f"{data.description}; the first {len(names)} schools")
    return registry, data, None


def ari(groups: list[list[str]], truth: dict[str, int]) -> float:
    from sklearn.metrics import adjusted_rand_score

    found = {t: i for i, g in enumerate(groups) for t in g}
    return float(adjusted_rand_score([truth[t] for t in truth], [found[t] for t in truth]))


def run(name: str) -> list[dict[str, Any]]:
    options, model_options, train, seeds = SETTINGS[name]
    rows = []
    for seed in seeds:
        dataset, data, truth = load(name, options, seed)
        cfg = RunConfig(dataset=dataset, model="hard-sharing", model_options=model_options,
                        train={**train, "seed": seed, "threads": 1, "progress": False},
                        group_options={"measure": "lookahead", "every": 2}, groups="auto")
        start = time.perf_counter()
        result = compare_groups(cfg, "auto", data)
        row = {
            "data": name, "seed": seed, "tasks": len(result.tasks), "groups": result.groups,
            "ari": ari(result.groups, truth) if truth is not None else None,
            "delta_m_grouped_vs_all_in_one": result.delta_m[(GROUPED, ALL_IN_ONE)],
            "delta_m_grouped_vs_single_task": result.delta_m[(GROUPED, SINGLE_TASK)],
            "delta_m_all_in_one_vs_single_task": result.delta_m[(ALL_IN_ONE, SINGLE_TASK)],
            "evaluated_on": result.evaluated_on, "seconds": round(time.perf_counter() - start, 1),
            "fit_seconds": {k: round(v, 1) for k, v in result.seconds.items()},
            "tasks_table": result.task_rows(), "description": data.description,
        }
        rows.append(row)
        print(markdown(row), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=1, default=str) + "\n")
    return rows


def markdown(row: dict[str, Any]) -> str:
    def f(v: float | None) -> str:
        return "—" if v is None else f"{v:+.2f}"

    groups = " \\| ".join(", ".join(g) for g in row["groups"]) if row["tasks"] <= 12 else f"{len(row['groups'])} groups"
    ari = "—" if row["ari"] is None else f"{row['ari']:.2f}"
    return (f"| {row['data']} | {row['seed']} | {row['tasks']} | {groups} | "
            f"{ari} | {f(row['delta_m_grouped_vs_all_in_one'])} | "
            f"{f(row['delta_m_grouped_vs_single_task'])} | {f(row['delta_m_all_in_one_vs_single_task'])} | "
            f"{row['seconds']:.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"of: {', '.join(SETTINGS)} (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| data | seed | tasks | groups | ARI | Δm grouped vs all-in-one % | Δm grouped vs single-task % | "
          "Δm all-in-one vs single-task % | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    unknown = [n for n in args.names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown data set {unknown[0]!r}; choose from {', '.join(SETTINGS)}")
    for name in args.names or list(SETTINGS):
        if name not in ("clustered", "synthetic") and not DATA.is_dir():
            print(f"{name}: skipped, no shared data sets at {DATA}")
            continue
        run(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
