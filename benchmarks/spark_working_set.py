"""Passes over the data per Spark fit with and without a working set, on wide data with most coefficients zero.

Wide form (every task labelled on every row), ``--tasks`` tasks, features as one array column, 10 of them
used by the tasks (the rest are noise), written once per problem as Parquet under ``--work`` (removed at
the end). Each problem is fitted on ``--master`` (default ``local[2]``, driver memory ``--driver-memory``)
by ``fit_spark`` with ``working_set=False`` and ``True``, ``L21`` at ``--fraction`` of its limit strength
(computed in memory), ``tol=--tol``:

* ``logistic``, ``--features`` columns: every evaluation of the loss is a Spark job;
* ``squared``, ``--features`` columns: Gram statistics in the first pass, then no job either way;
* ``squared``, ``--wide-features`` columns (more than the 1,999 of the Gram statistics): without a working
  set, every evaluation is a job; with one, one job per working set for its Gram statistics.

Reported per fit: full passes (Spark jobs over every column, the statistics pass included), restricted
passes (jobs over the working set's columns only), FISTA iterations, seconds (``fit_spark``, session
started and warmed up before), and the objective. The working set is on by default ("auto") from 500
features.

    .venv/bin/python benchmarks/spark_working_set.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

N_USED = 10


def make_data(rows: int, features: int, tasks: int, loss: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (rows, features) standard normal; ``Y`` from 10 features (the sign for logistic), noise 0.5."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features))
    W = np.zeros((tasks, features))
    W[:, :N_USED] = rng.standard_normal((tasks, N_USED))
    Z = X @ W.T + 0.5 * rng.standard_normal((rows, tasks))
    return X, (Z if loss == "squared" else (Z > 0).astype(np.float64))


def write_parquet(path: Path, X: np.ndarray, Y: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = pa.array(X.ravel())
    offsets = pa.array(np.arange(0, X.size + 1, X.shape[1], dtype=np.int32))
    columns = {"features": pa.ListArray.from_arrays(offsets, flat)}
    columns |= {f"t{j}": pa.array(Y[:, j]) for j in range(Y.shape[1])}
    pq.write_table(pa.table(columns), path, row_group_size=2000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--features", type=int, default=1000)
    parser.add_argument("--wide-rows", type=int, default=3000)
    parser.add_argument("--wide-features", type=int, default=2500)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--fraction", type=float, nargs="+", default=[0.05, 0.02])
    parser.add_argument("--tol", type=float, default=1e-5)
    parser.add_argument("--losses", nargs="+", default=["logistic", "squared"])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g", help="the JVM's heap (in local mode it runs the executors)")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "multitask-spark-ws"))
    args = parser.parse_args()

    from sklearn.exceptions import ConvergenceWarning

    from multitask.data._spark import SparkTable, spark_session
    from multitask.linear import L21
    from multitask.linear._spark import fit_spark

    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", FutureWarning)
    os.environ.setdefault("PYSPARK_SUBMIT_ARGS", f"--driver-memory {args.driver_memory} pyspark-shell")
    spark = spark_session(args.master)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    problems = [("logistic", args.rows, args.features), ("squared", args.rows, args.features),
                ("squared", args.wide_rows, args.wide_features)]
    problems = [p for p in problems if p[0] in args.losses]
    targets = [f"t{j}" for j in range(args.tasks)]
    results = []
    try:
        # warm-up, not timed: the first job of a session starts the Python workers
        X, Y = make_data(200, 20, args.tasks, "logistic")
        write_parquet(work / "warm_up.parquet", X, Y)
        fit_spark(L21(alpha=0.01, loss="logistic", max_iter=3),
                  SparkTable.wide(str(work / "warm_up.parquet"), "features", targets, spark=spark))
        for loss, rows, features in problems:
            X, Y = make_data(rows, features, args.tasks, loss)
            path = work / f"{loss}_{rows}x{features}.parquet"
            write_parquet(path, X, Y)
            scale = L21(loss=loss).regularization_scale(X, Y)["alpha"]
            del X, Y
            for fraction in args.fraction:
                for ws in (False, True):
                    est = L21(alpha=fraction * scale, loss=loss, tol=args.tol, max_iter=5000, working_set=ws)
                    table = SparkTable.wide(str(path), "features", targets, spark=spark)
                    start = time.perf_counter()
                    fit_spark(est, table)
                    seconds = time.perf_counter() - start
                    result = {"loss": loss, "rows": rows, "features": features, "fraction": fraction,
                              "working_set": ws, "seconds": seconds, "passes": int(est.spark_passes_),
                              "restricted_passes": int(est.spark_restricted_passes_), "iterations": int(est.n_iter_),
                              "objective": float(est.objective_[-1]),
                              "nonzero_features": int(np.any(est.coef_ != 0, axis=0).sum())}
                    results.append(result)
                    print(json.dumps(result), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("| loss | rows × features | alpha / limit | working set | full passes | restricted passes | FISTA iterations "
          "| nonzero features | fit (s) | objective |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['loss']} | {r['rows']:,} × {r['features']:,} | {r['fraction']:g} | {'yes' if r['working_set'] else 'no'} "
              f"| {r['passes']} | {r['restricted_passes']} | {r['iterations']} | {r['nonzero_features']} "
              f"| {r['seconds']:.1f} | {r['objective']:.10g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
