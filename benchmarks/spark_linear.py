"""Spark fit time, passes over the data and driver peak memory against rows; in-memory NumPy beside it.

Long-form data, 139 tasks (as many as School), 28 numeric features, rows split evenly at random among the
tasks, written once per size as Parquet (row groups of 100,000 rows) under ``--work``. Each fit runs in its
own process (so that peak memory is its own) on ``--master`` (default ``local[2]``):

* ``squared``: ℓ2,1 least squares (``L21(alpha=1e-3)``): one pass over the data for the Gram statistics,
  then FISTA on the driver;
* ``logistic``: ℓ2,1 logistic regression on the sign of the same targets, at most ``--logistic-iter`` FISTA
  iterations (each iteration is about two passes).

Reported per fit: wall time, Spark passes (jobs over the data), the driver's peak resident memory (the
Python process; ``VmHWM``) and the JVM's (in local mode the executors run inside the driver JVM, whose heap
is bounded by ``--driver-memory``). In memory: the same estimator on NumPy arrays read from the same
Parquet file (read time not counted), up to ``--memory-max`` rows.

    .venv/bin/python benchmarks/spark_linear.py --rows 1e6 2e6 5e6 10e6 --write
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
N_TASKS, N_FEATURES = 139, 28


def write_data(path: Path, rows: int, seed: int = 0) -> None:
    """Long-form Parquet: x0..x27, task (t000..t138), y (regression), label (0/1), written in chunks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists():
        return
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal(N_FEATURES)
    W = shared + 0.5 * rng.standard_normal((N_TASKS, N_FEATURES))
    W[:, 10:] = 0.0
    names = np.array([f"t{t:03d}" for t in range(N_TASKS)])
    tmp = path.with_suffix(".tmp")
    writer = None
    chunk = 500_000
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        X = rng.standard_normal((n, N_FEATURES))
        task = rng.integers(0, N_TASKS, n)
        z = np.einsum("ij,ij->i", X, W[task]) + 0.1 * task / N_TASKS
        y = z + rng.standard_normal(n)
        columns = {f"x{j}": X[:, j] for j in range(N_FEATURES)}
        columns |= {"task": names[task], "y": y, "label": (y > 0).astype(np.float64)}
        table = pa.table(columns)
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table, row_group_size=100_000)
    assert writer is not None
    writer.close()
    tmp.rename(path)


def peak_kib(pid: int) -> int:
    """Peak resident memory of a process (``VmHWM``) in KiB; 0 when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def jvm_pids(root: int) -> list[int]:
    """The java processes under ``root`` (the Spark driver JVM started by pyspark)."""
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
        if fields.get("PPid", "").strip() == str(root) and fields.get("Name", "").strip() == "java":
            out.append(int(status.parent.name))
    return out


def one_fit(engine: str, path: str, loss: str, master: str, logistic_iter: int, driver_memory: str) -> dict:
    """Fit once in this process; what it measured."""
    from sklearn.exceptions import ConvergenceWarning

    from multitask.linear import L21

    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", FutureWarning)
    target = "y" if loss == "squared" else "label"
    max_iter = 5000 if loss == "squared" else logistic_iter
    est = L21(alpha=1e-3, loss=loss, max_iter=max_iter)
    if engine == "memory":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        X = np.column_stack([table.column(f"x{j}").to_numpy() for j in range(N_FEATURES)])
        y = table.column(target).to_numpy()
        tasks = table.column("task").to_numpy(zero_copy_only=False)
        del table
        start = time.perf_counter()
        est.fit(X, y, tasks)
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "passes": None, "iterations": int(est.n_iter_),
                "objective": float(est.objective_[-1]), "driver_mib": peak_kib(os.getpid()) / 1024, "jvm_mib": None}

    from multitask.data._spark import SparkTable, spark_session
    from multitask.linear._spark import fit_spark

    os.environ.setdefault("PYSPARK_SUBMIT_ARGS", f"--driver-memory {driver_memory} pyspark-shell")
    spark = spark_session(master)
    features = [f"x{j}" for j in range(N_FEATURES)]
    start = time.perf_counter()
    table = SparkTable.long(path, features, target, "task", spark=spark)
    fit_spark(est, table)
    seconds = time.perf_counter() - start
    jvm = max((peak_kib(p) for p in jvm_pids(os.getpid())), default=0)
    return {"seconds": seconds, "passes": int(est.spark_passes_), "iterations": int(est.n_iter_),
            "objective": float(est.objective_[-1]), "driver_mib": peak_kib(os.getpid()) / 1024,
            "jvm_mib": jvm / 1024 if jvm else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, nargs="+", default=[1e6, 2e6, 5e6, 10e6])
    parser.add_argument("--losses", nargs="+", default=["squared", "logistic"])
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--logistic-iter", type=int, default=20)
    parser.add_argument("--memory-max", type=float, default=5e6, help="largest row count fitted in memory")
    parser.add_argument("--logistic-max", type=float, default=float("inf"), help="largest row count for logistic")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "multitask-spark-linear"),
                        help="folder for the generated Parquet files (large: about 250 MB per million rows)")
    parser.add_argument("--write", action="store_true", help="write the table into docs/benchmarks.md")
    parser.add_argument("--one", nargs=3, metavar=("ENGINE", "PATH", "LOSS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        engine, path, loss = args.one
        print(json.dumps(one_fit(engine, path, loss, args.master, args.logistic_iter, args.driver_memory)))
        return 0
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows_list = [int(r) for r in args.rows]
    results = []
    for rows in rows_list:
        path = work / f"long_{rows}.parquet"
        write_data(path, rows)
        for loss in args.losses:
            if loss != "squared" and rows > args.logistic_max:
                continue
            engines = ["spark", *(["memory"] if rows <= args.memory_max else [])]
            for engine in engines:
                command = [sys.executable, __file__, "--one", engine, str(path), loss, "--master", args.master,
                           "--logistic-iter", str(args.logistic_iter), "--driver-memory", args.driver_memory]
                done = subprocess.run(command, capture_output=True, text=True, env={**os.environ})
                if done.returncode != 0:
                    print(done.stderr[-2000:], file=sys.stderr)
                    result = {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
                else:
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                result |= {"rows": rows, "loss": loss, "engine": engine}
                results.append(result)
                print(json.dumps(result), flush=True)
    (work / "results.json").write_text(json.dumps(results, indent=1))
    if args.write:
        write_doc(results, args)
    return 0


def _cell(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


SECTION = "## Spark engine for linear models"


def write_doc(results: list[dict], args: argparse.Namespace) -> None:
    """Replace (or add) this benchmark's section of docs/benchmarks.md with ``results``."""
    import re

    sys.path.insert(0, str(REPO / "benchmarks"))
    from linear_common import machine

    lines = ["| rows | loss | engine | fit (s) | passes | iterations | driver peak RSS (MiB) | JVM peak RSS (MiB) |",
             "|---:|---|---|---:|---:|---:|---:|---:|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['rows']:,} | {r['loss']} | {r['engine']} | failed: {r['error'][:60]} | | | | |")
            continue
        lines.append(f"| {r['rows']:,} | {r['loss']} | {r['engine']} | {r['seconds']:.1f} | {_cell(r['passes'], 'd')} "
                     f"| {r['iterations']} | {r['driver_mib']:.0f} | {_cell(r['jvm_mib'], '.0f')} |")
    rows = " ".join(f"{int(r):g}" for r in args.rows)
    body = (f"Command: `.venv/bin/python benchmarks/spark_linear.py --rows {rows} --losses {' '.join(args.losses)} "
            f"--logistic-iter {args.logistic_iter} --logistic-max {args.logistic_max:g} --memory-max {args.memory_max:g} "
            f"--write` (master {args.master}, driver memory {args.driver_memory}; {N_TASKS} tasks, {N_FEATURES} "
            f"features, `L21(alpha=1e-3)`; logistic capped at {args.logistic_iter} FISTA iterations). Measured on a "
            f"shared 2-core machine: {machine()}.\n\n" + "\n".join(lines))
    doc = REPO / "docs" / "benchmarks.md"
    text = doc.read_text()
    section = f"{SECTION}\n\n{body}\n"
    pattern = rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)"
    if re.search(pattern, text, flags=re.S | re.M):
        text = re.sub(pattern, lambda _: section + "\n", text, flags=re.S | re.M)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text.rstrip("\n") + "\n")


if __name__ == "__main__":
    sys.exit(main())
