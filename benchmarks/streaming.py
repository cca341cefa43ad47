"""Streaming against in-memory deep training: throughput and peak resident memory of ``multitask train``.

    python -m benchmarks.streaming generate --rows 1000000 --path /tmp/mt_stream/1m.parquet
    python -m benchmarks.streaming run --path /tmp/mt_stream/1m.parquet --modes memory,stream --epochs 1
    python -m benchmarks.streaming run --path /tmp/mt_stream/1m.parquet --modes stream --nproc 2
    python -m benchmarks.streaming run --path /tmp/mt_stream/20m.parquet --limit-s 900
    python -m benchmarks.streaming read --path /tmp/mt_stream/1m.parquet --nproc 2

``generate`` writes a wide table (40 float32 features, one categorical column of 12 levels, 5 tasks: 3
regression with 10 % of labels missing, 1 binary, 1 multiclass) in row groups of 100,000 rows, built row
group by row group so that generating 20M rows needs no more memory than one group. The raw float32 data
is ``rows × 40 × 4`` bytes (160 MB at 1M rows).

``run`` trains ``hard-sharing`` (hidden 128,64; batch 512; one torch thread, as the machine is shared) with each mode in a fresh process — ``memory``
(the default path) or ``stream`` (``--stream``) — and reports

* peak resident memory: ``/usr/bin/time -f %M`` of the command (the largest resident set it ever had);
* throughput: training rows per second of epoch time (``log.jsonl``'s ``seconds``: the training steps
  and the validation pass of each epoch; not the reading and preprocessing before training);
* wall time of the whole command (reading, fitting the preprocessing, training, metrics).

With ``--nproc 2`` the training runs under ``torchrun --standalone --nproc_per_node 2`` (gloo, one thread
per process) and the peak is that of the largest single process; each worker's own peak (VmHWM, read from
/proc every half second while it runs) is reported too (``peak_rss_per_process_mb``). With ``--stream`` each
process reads only its own row groups (see docs/training.md, "Data larger than memory").

``read`` times what ``--stream`` does besides the model's arithmetic, in each process: the one-pass
preprocessing fit and one epoch of reading, encoding and drawing batches (``Stream.batches``, no training
step), with ``--nproc N`` under ``torchrun --standalone --nproc_per_node N`` (each process reading its own
row groups) or in one process.

With ``--limit-s`` (for tables too large to train through on a shared machine) the ``--stream`` run is
stopped after that many seconds; its peak resident set (VmHWM, read each second from /proc) covers the
one-pass preprocessing fit and the training steps done by then, and the steps checkpointed are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FEATURES = 40
GROUP = 100_000
TASKS = ["--task", "r0:regression", "--task", "r1:regression", "--task", "r2:regression",
         "--task", "b:binary", "--task", "c:multiclass"]


def generate(rows: int, path: Path, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(FEATURES, 5)).astype(np.float32)
    levels = np.array([f"level{i}" for i in range(12)])
    writer = None
    try:
        for start in range(0, rows, GROUP):
            n = min(GROUP, rows - start)
            x = rng.normal(size=(n, FEATURES)).astype(np.float32)
            cat = rng.integers(0, len(levels), n)
            score = x @ w + (cat[:, None] % 3).astype(np.float32)
            columns: dict[str, object] = {f"x{j}": x[:, j] for j in range(FEATURES)}
            columns["cat"] = levels[cat]
            for k in range(3):
                y = score[:, k] + 0.5 * rng.normal(size=n).astype(np.float32)
                y[rng.random(n) < 0.1] = np.nan
                columns[f"r{k}"] = y
            columns["b"] = (score[:, 3] > 0).astype(np.int64)
            columns["c"] = np.digitize(score[:, 4], [-2.0, 0.0, 2.0]).astype(np.int64)
            table = pa.table(columns)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=GROUP)
    finally:
        if writer is not None:
            writer.close()


def run_capped(path: Path, epochs: int, limit_s: float, extra: list[str]) -> dict[str, object]:
    """``--stream`` training stopped after ``limit_s`` seconds: the peak resident set (VmHWM) read from /proc
    each second, and how far the run got (the files it had written)."""
    with tempfile.TemporaryDirectory(prefix="mt_bench_") as tmp:
        out = Path(tmp) / "run"
        args = [sys.executable, "-m", "multitask", "train", "--data", str(path), *TASKS, "--epochs", str(epochs),
                "--batch-size", "512", "--hidden", "128,64", "--quiet", "--threads", "1", "--stream",
                "--checkpoint-every", "200", "--out", str(out), *extra]
        start = time.perf_counter()
        child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peak, fitted_at = 0, None
        try:
            while child.poll() is None and time.perf_counter() - start < limit_s:
                try:
                    status = Path(f"/proc/{child.pid}/status").read_text()
                    peak = max(peak, int(status.split("VmHWM:")[1].split()[0]))
                except (OSError, IndexError):
                    pass
                if fitted_at is None and (out / "preprocessing.json").exists():
                    fitted_at = time.perf_counter() - start
                time.sleep(1.0)
        finally:
            finished = child.poll() is not None
            if not finished:
                child.kill()
            child.wait()
        if finished and child.returncode != 0:
            raise SystemExit(f"stream failed:\n{child.stderr.read()[-3000:] if child.stderr else ''}")
        metrics = json.loads((out / "metrics.json").read_text())["tasks"] if finished else None
        steps = 0
        if (out / "checkpoint.pt").exists():
            import torch

            ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
            steps = int((ckpt.get("partial") or {}).get("step", 0))
    return {"peak_mb": peak / 1024, "finished": finished, "seconds": time.perf_counter() - start,
            "fit_pass_s": fitted_at, "steps_checkpointed": steps, "metrics": metrics}


def run_once(path: Path, mode: str, epochs: int, nproc: int, extra: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="mt_bench_") as tmp:
        out = Path(tmp) / "run"
        args = ["train", "--data", str(path), *TASKS, "--epochs", str(epochs), "--batch-size", "512",
                "--hidden", "128,64", "--quiet", "--threads", "1", "--out", str(out), *extra]
        if mode == "stream":
            args.append("--stream")
        launcher = [sys.executable, "-m", "multitask"]
        if nproc > 1:
            launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                        "-m", "multitask"]
        env = {**os.environ, "OMP_NUM_THREADS": "1" if nproc > 1 else os.environ.get("OMP_NUM_THREADS", "2")}
        rss = Path(tmp) / "maxrss"
        start = time.perf_counter()
        with tempfile.TemporaryFile("w+") as err:
            child = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", str(rss), *launcher, *args],
                                     stdout=subprocess.DEVNULL, stderr=err, text=True, env=env)
            workers: dict[int, int] = {}  # pid -> its peak resident set (KiB), for the processes that train
            while child.poll() is None:
                for pid in _descendants(child.pid):
                    hwm = _vm_hwm(pid)
                    if hwm is not None and _is_worker(pid):
                        workers[pid] = max(workers.get(pid, 0), hwm)
                time.sleep(0.5)
            wall = time.perf_counter() - start
            if child.returncode != 0:
                err.seek(0)
                raise SystemExit(f"{mode} failed:\n{err.read()[-3000:]}")
        peak = int(rss.read_text().split()[-1])  # KiB: the largest resident set of the command or a child of it
        log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        seconds = [r["seconds"] for r in log]
        metrics = json.loads((out / "metrics.json").read_text())["tasks"]
    return {"peak_mb": peak / 1024, "epoch_s": min(seconds), "wall_s": wall, "metrics": metrics,  # type: ignore[dict-item]
            "per_process_mb": sorted((round(v / 1024, 1) for v in workers.values()), reverse=True)}  # type: ignore[dict-item]


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (from /proc/PID/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                children = [int(c) for c in task.read_text().split()]
            except OSError:
                continue
            out.extend(children)
            todo.extend(children)
    return out


def _vm_hwm(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/status").read_text().split("VmHWM:")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return None


def _is_worker(pid: int) -> bool:
    """A process running ``multitask`` itself (not /usr/bin/time, nor torchrun's launcher)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"multitask" in cmd and b"torch.distributed.run" not in cmd


def read_worker(path: Path, batch_size: int) -> None:
    """One process of ``read``: the fit and one epoch of batches, timed; rank 0 prints every rank's times."""
    from multitask import Task
    from multitask.data.reading import declare_wide
    from multitask.data.sampling import Proportional
    from multitask.data.stream_fit import fit_stream
    from multitask.data.streaming import Table
    from multitask.train._distributed import setup_distributed

    ddp = setup_distributed()
    tasks = [Task(name, kind) for name, kind in (TASKS[i + 1].split(":") for i in range(0, len(TASKS), 2))]
    start = time.perf_counter()
    _, train, _ = fit_stream(Table(path), lambda f, w: declare_wide(f, tasks, None, w), 0.2, 0,
                             group=ddp if ddp.enabled else None)
    fitted = time.perf_counter()
    rows = steps = 0
    for _, batch in train.batches(Proportional(), batch_size, 0, 0):
        rows += len(batch["data"])
        steps += 1
    done = time.perf_counter()
    mine = {"rank": ddp.rank, "fit_s": round(fitted - start, 2), "epoch_read_s": round(done - fitted, 2),
            "rows": rows, "batches": steps, "steps_all_ranks_take": train.steps_per_epoch(batch_size, 0),
            "peak_rss_mb": round((_vm_hwm(os.getpid()) or 0) / 1024, 1)}
    every = ddp.all_gather_object(mine)
    if ddp.is_main:
        print(json.dumps({"nproc": ddp.world_size, "processes": every}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--rows", type=int, default=1_000_000)
    g.add_argument("--path", type=Path, required=True)
    r = sub.add_parser("run")
    r.add_argument("--path", type=Path, required=True)
    r.add_argument("--modes", default="memory,stream")
    r.add_argument("--epochs", type=int, default=1)
    r.add_argument("--nproc", type=int, default=1)
    r.add_argument("--extra", default="", help="more train flags, space-separated")
    r.add_argument("--limit-s", type=float, help="stream only: stop after this many seconds, report the peak so far")
    rd = sub.add_parser("read")
    rd.add_argument("--path", type=Path, required=True)
    rd.add_argument("--nproc", type=int, default=1)
    rd.add_argument("--batch-size", type=int, default=512)
    w = sub.add_parser("read-worker")
    w.add_argument("--path", type=Path, required=True)
    w.add_argument("--batch-size", type=int, default=512)
    a = parser.parse_args()
    if a.command == "read-worker":
        read_worker(a.path, a.batch_size)
        return
    if a.command == "read":
        args = ["-m", "benchmarks.streaming", "read-worker", "--path", str(a.path), "--batch-size", str(a.batch_size)]
        launcher = [sys.executable]
        if a.nproc > 1:
            launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={a.nproc}"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run([*launcher, *args], check=True, env=env)
        return
    if a.command == "generate":
        start = time.perf_counter()
        generate(a.rows, a.path)
        size = a.path.stat().st_size / 1e6
        print(f"{a.path}: {a.rows} rows, {size:.0f} MB Parquet, {a.rows * FEATURES * 4 / 1e6:.0f} MB as float32 "
              f"({time.perf_counter() - start:.0f} s)")
        return
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(a.path).metadata.num_rows
    raw_mb = rows * FEATURES * 4 / 2**20
    if a.limit_s is not None:
        capped = run_capped(a.path, a.epochs, a.limit_s, a.extra.split())
        print(json.dumps({"mode": "stream", "rows": rows, "raw_float32_mb": round(raw_mb), **capped}), flush=True)
        return
    for mode in a.modes.split(","):
        res = run_once(a.path, mode, a.epochs, a.nproc, a.extra.split())
        train_rows = 0.8 * rows  # valid_fraction 0.2 (the stream's hash split holds out 20 % in expectation)
        print(json.dumps({
            "mode": mode, "rows": rows, "nproc": a.nproc, "epochs": a.epochs,
            "peak_rss_mb": round(res["peak_mb"], 1), "peak_over_raw_float32": round(res["peak_mb"] / raw_mb, 2),
            "peak_rss_per_process_mb": res["per_process_mb"],
            "rows_per_s": round(train_rows / res["epoch_s"]), "epoch_s": round(res["epoch_s"], 1),
            "wall_s": round(res["wall_s"], 1), "metrics": res["metrics"],
        }), flush=True)


if __name__ == "__main__":
    main()
