"""Every linear MTL formulation on School (139 schools, 10 fixed splits), regularization chosen by CV.

For each split: features standardized on the training part; each formulation's regularization chosen by
3-fold cross-validation on the training part only (folds stratified within schools, score = minus the mean
per-school RMSE), refitted on the whole training part, evaluated on the test part. Reports the mean over
schools of per-school RMSE and the explained variance over all test rows (1 - Var(y - ŷ) / Var(y)), as mean
± standard deviation over the splits, beside the published figures for the same splits.

    .venv/bin/python benchmarks/linear_school.py --write            # all 10 splits
    .venv/bin/python benchmarks/linear_school.py --splits 1 2       # a quick look
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

try:  # run as `python -m benchmarks.linear_school` or from benchmarks/
    from benchmarks.linear_common import DEFAULT_DATA, machine, write_subsection
except ImportError:
    from linear_common import DEFAULT_DATA, machine, write_subsection  # type: ignore[no-redef]

from multitask.linear import (
    L21,
    Clustered,
    Dirty,
    GraphRegularized,
    IndependentLinear,
    Lasso,
    MeanRegularized,
    MultiTaskCV,
    PooledLinear,
    Robust,
    SparseLowRank,
    TaskRelationship,
    TraceNorm,
)

logger = logging.getLogger("linear_school")
#: mean per-task RMSE on these splits, Zhang & Li, CIKM 2019 (see ../shared/data/README.md)
PUBLISHED = {"trace-norm": 11.452, "lasso": 11.216, "dirty": 10.411}
PUBLISHED_OTHER = "rMTFL 10.467, independent XGBoost 10.767, aggregate XGBoost 11.099, multi-task GBDT 8.993 ± 0.232"


def load(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = pd.read_csv(path, header=None).to_numpy(dtype=float)
    return table[:, :28], table[:, 28], table[:, 29].astype(int)


def per_task_rmse(pred: np.ndarray, y: np.ndarray, tasks: np.ndarray) -> float:
    return float(np.mean([np.sqrt(np.mean((pred[tasks == t] - y[tasks == t]) ** 2)) for t in np.unique(tasks)]))


def neg_rmse(model: Any, X: np.ndarray, y: np.ndarray, tasks: np.ndarray) -> float:
    return -per_task_rmse(model.predict(X, tasks), y, tasks)


def knn_graph(X: np.ndarray, tasks: np.ndarray, k: int = 5) -> np.ndarray:
    """Symmetric k-nearest-neighbour graph of the tasks by their mean (training) feature vectors."""
    labels = np.unique(tasks)
    profiles = np.vstack([X[tasks == t].mean(axis=0) for t in labels])
    dist = ((profiles[:, None, :] - profiles[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(dist, np.inf)
    A = np.zeros_like(dist)
    nearest = np.argsort(dist, axis=1)[:, :k]
    A[np.repeat(np.arange(len(labels)), k), nearest.ravel()] = 1.0
    return np.maximum(A, A.T)


def grids(X: np.ndarray, y: np.ndarray, tasks: np.ndarray) -> dict[str, tuple[Any, dict[str, list[float]]]]:
    """Each formulation and its CV grid; sparse / low-rank grids are fractions of the value that zeroes W."""
    labels = np.unique(tasks)
    G = np.vstack([X[tasks == t].T @ (y[tasks == t] - y[tasks == t].mean()) / np.sum(tasks == t) for t in labels])
    l1 = float(np.abs(G).max())
    l21 = float(np.linalg.norm(G, axis=0).max())
    spectral = float(np.linalg.norm(G, 2))
    linf1 = float(np.abs(G).sum(axis=0).max())
    tasks_l2 = float(np.linalg.norm(G, axis=1).max())
    one = [0.5, 0.3, 0.1, 0.03, 0.01, 0.003]
    two = [0.5, 0.2, 0.05]
    ridge = [1.0, 0.1, 0.01, 0.001]
    return {
        "independent": (IndependentLinear(), {"alpha": ridge}),
        "pooled": (PooledLinear(), {"alpha": ridge}),
        "mean-regularized": (MeanRegularized(), {"rho": [100.0, 10.0, 1.0, 0.1], "alpha": [0.01, 0.001]}),
        "lasso": (Lasso(), {"alpha": [l1 * f for f in one]}),
        "l21": (L21(), {"alpha": [l21 * f for f in one]}),
        "trace-norm": (TraceNorm(), {"alpha": [spectral * f for f in one]}),
        "sparse-low-rank": (SparseLowRank(), {"alpha_low_rank": [spectral * f for f in two],
                                              "alpha_sparse": [l1 * f for f in two]}),
        "dirty": (Dirty(), {"alpha_group": [linf1 * f for f in two], "alpha_sparse": [l1 * f for f in two]}),
        "clustered": (Clustered(n_clusters=3), {"alpha": [10.0, 1.0, 0.1, 0.01], "eta": [1.0, 0.1]}),
        "graph": (GraphRegularized(adjacency=knn_graph(X, tasks)), {"rho": [10.0, 1.0, 0.1, 0.01],
                                                                   "alpha": [0.01, 0.001]}),
        "robust": (Robust(), {"alpha_low_rank": [spectral * f for f in two],
                              "alpha_outlier": [tasks_l2 * f for f in two]}),
        "mtrl": (TaskRelationship(), {"beta": [1.0, 0.1, 0.01], "alpha": [0.1, 0.01, 0.001]}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="folder holding school/splits")
    parser.add_argument("--splits", type=int, nargs="+", default=list(range(1, 11)))
    parser.add_argument("--models", nargs="+", default=None, help="registry names (default: all)")
    parser.add_argument("--cv", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="write the results into docs/benchmarks.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    folder = args.data_dir / "school" / "splits"
    if not (folder / "train_1.csv.gz").exists():
        raise SystemExit(f"School splits not found in {folder}; pass --data-dir")

    results: dict[str, list[tuple[float, float, float]]] = {}
    chosen: dict[str, list[dict[str, float]]] = {}
    start_all = time.perf_counter()
    for k in args.splits:
        X, y, tasks = load(folder / f"train_{k}.csv.gz")
        X_test, y_test, tasks_test = load(folder / f"test_{k}.csv.gz")
        mean, std = X.mean(axis=0), X.std(axis=0)
        std[std == 0] = 1.0
        X, X_test = (X - mean) / std, (X_test - mean) / std
        for name, (estimator, grid) in grids(X, y, tasks).items():
            if args.models and name not in args.models:
                continue
            start = time.perf_counter()
            search = MultiTaskCV(estimator, grid, cv=args.cv, scoring=neg_rmse, n_jobs=args.n_jobs).fit(X, y, tasks)
            seconds = time.perf_counter() - start
            pred = search.predict(X_test, tasks_test)
            rmse = per_task_rmse(pred, y_test, tasks_test)
            ev = 1.0 - float(np.var(y_test - pred) / np.var(y_test))
            results.setdefault(name, []).append((rmse, ev, seconds))
            chosen.setdefault(name, []).append(search.best_params_)
            logger.info("split %d %-16s RMSE %.3f  EV %.3f  %.1fs  %s", k, name, rmse, ev, seconds,
                        {p: round(v, 4) for p, v in search.best_params_.items()})
    total = time.perf_counter() - start_all

    lines = ["| model | mean per-school RMSE | explained variance | published RMSE | CV + refit seconds per split |",
             "|---|---|---|---|---|"]
    for name, rows in results.items():
        r = np.array(rows)
        published = f"{PUBLISHED[name]:.3f}" if name in PUBLISHED else ""
        lines.append(f"| `{name}` | {r[:, 0].mean():.3f} ± {r[:, 0].std():.3f} | {r[:, 1].mean():.3f} ± "
                     f"{r[:, 1].std():.3f} | {published} | {r[:, 2].mean():.1f} |")
    command = ".venv/bin/python benchmarks/linear_school.py --write"
    if args.splits != list(range(1, 11)) or args.models:
        command += f" --splits {' '.join(map(str, args.splits))}" + (f" --models {' '.join(args.models)}"
                                                                      if args.models else "")
    body = f"""
School (139 schools, 15,362 students), the 10 fixed 75/25 splits of Zhang & Li (CIKM 2019) in
`../shared/data/school/splits`, splits {', '.join(map(str, args.splits))}. Per split: the 28 features are
standardized on the training part; regularization is chosen by {args.cv}-fold cross-validation on the training
part only (folds stratified within schools, score = minus the mean per-school RMSE; `MultiTaskCV`, first grid
parameter followed as a warm-started path), then the model is refitted on the whole training part and scored
on the test part. RMSE is computed per school and averaged over schools; explained variance is
`1 - Var(y - ŷ) / Var(y)` over all test rows. Mean ± standard deviation over the splits.

```
{command}
```

{chr(10).join(lines)}

Other published figures on these splits (mean per-school RMSE): {PUBLISHED_OTHER}.

Grids (small, to stay affordable on 2 cores): ℓ1 / ℓ2,1 / trace-norm strengths at 0.5, 0.3, 0.1, 0.03,
0.01, 0.003 × the smallest value that zeroes W (computed from the training part); two-part models (sparse +
low rank, dirty, robust) at 0.5, 0.2, 0.05 × that value for each part; ridge `alpha` in 1, 0.1, 0.01, 0.001;
mean-regularized `rho` in 100, 10, 1, 0.1 with `alpha` 0.01, 0.001; clustered `n_clusters=3`, `alpha` in 10,
1, 0.1, 0.01 and `eta` in 1, 0.1; graph: a symmetric 5-nearest-neighbour graph of the schools by their mean
training features, `rho` in 10, 1, 0.1, 0.01 and `alpha` 0.01, 0.001; MTRL `beta` in 1, 0.1, 0.01 and
`alpha` in 0.1, 0.01, 0.001. Solver defaults (`tol=1e-5`, `max_iter=5000`). Whole run: {total / 60:.1f}
minutes, `--n-jobs {args.n_jobs}`. Machine: {machine()}.

The published numbers come from a different pipeline (their preprocessing, parameter search and, for MALSAR's
formulations, unnormalized sums of squared errors over tasks) and are shown only as reference points.
"""
    print(body)
    if args.write:
        write_subsection("School: every formulation, 10 splits", body)


if __name__ == "__main__":
    main()
