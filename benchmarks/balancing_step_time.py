"""Step time of every registered balancing method, relative to equal weights, and against LibMTL and torchjd.

    python benchmarks/balancing_step_time.py                 # T = 2, 10, 40; 50 timed steps; both peers
    python benchmarks/balancing_step_time.py --quick         # T = 2, 10; 10 steps; no peers (for make bench)
    python benchmarks/balancing_step_time.py --no-peers --methods static,mgda,pcgrad

Model: hard sharing, a shared MLP ``64 -> 256 -> 256`` (ReLU) and one linear head per task (regression, MSE),
batches of 256 random rows, Adam, one torch thread. For ours, one *step* is one iteration of
:func:`multitask.train.fit`'s loop (taking the batch, forward, the task losses, the balancer's backward and
combination, Adam's step) as the library runs it: the script hands ``fit`` a sampler (``fit(sampler=...)``)
that notes the time whenever the trainer asks for the next batch, so each interval is one whole training
step. The median over ``--steps`` steps after ``--warmup`` steps is reported, per method and number of tasks
``T``, and divided by the median of ``static`` (equal weights) at the same ``T``. Every method in
``multitask.registry.BALANCERS`` is timed (new ones are picked up as they are registered) with its default
options but ``of="parameters"``, and every gradient method that takes ``of`` once more with
``of="representation"``.

Peers, each in its own virtual environment that this script creates on first use (``--peer-envs``, by
default ``benchmarks/peers/.venv-*``, ignored by git; pip with ``-c constraints.txt`` so that torch is the
CPU build of the pinned version): LibMTL 1.1.5 (``pip install --no-deps LibMTL==1.1.5`` plus torch, numpy and
scipy) and torchjd 0.18.0. Their timing scripts are ``benchmarks/peers/step_*.py``: the same model, data and
step, for the methods they share with us. Results go to ``benchmarks/results/balancing/``:
``step_time.csv`` (ours) and ``step_time_peers.csv`` (every peer timing with ours beside it and the ratio).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import statistics
import subprocess
import time
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multitask import Task
from multitask.data.arrays import Arrays
from multitask.errors import MultitaskError
from multitask.nn import HardSharing, InputSpec
from multitask.registry import BALANCERS
from multitask.train import TrainConfig, fit
from multitask.train.config import balancer_option_names

REPO = Path(__file__).resolve().parents[1]
PEERS = REPO / "benchmarks" / "peers"
RESULTS = REPO / "benchmarks" / "results" / "balancing"
CONSTRAINTS = REPO / "constraints.txt"
FEATURES, HIDDEN, BATCHES = 64, (256, 256), 8

#: peer -> (pip requirements installed with the constraints, requirements installed with --no-deps, script)
PEER_ENVS: dict[str, tuple[list[str], list[str], str]] = {
    "libmtl": (["torch==2.13.0", "numpy", "scipy"], ["LibMTL==1.1.5"], "step_libmtl.py"),
    "torchjd": (["torchjd[full]==0.18.0", "torch==2.13.0", "numpy"], [], "step_torchjd.py"),
}


# ---- ours ------------------------------------------------------------------------------------------------------
class TimedBatches:
    """A sampler for ``fit``: the same few random batches in turn, noting the time at every request.

    The trainer asks for batch ``i + 1`` right after finishing step ``i``, so consecutive stamps bound exactly
    one training step of the library's loop.
    """

    def __init__(self, steps: int, rows: int, batch_size: int) -> None:
        self.steps, self.rows, self.batch_size = steps, rows, batch_size
        self.stamps: list[float] = []

    def batches(self, data: Arrays, batch_size: int, epoch: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
        order = np.arange(self.rows, dtype=np.int64)
        for i in range(self.steps):
            start = (i * self.batch_size) % self.rows
            self.stamps.append(time.perf_counter())
            yield {"s": order[start : start + self.batch_size]}
        self.stamps.append(time.perf_counter())

    def seconds(self) -> list[float]:
        return list(np.diff(self.stamps))


def synthetic(n_tasks: int, rows: int) -> tuple[list[Task], Arrays]:
    rng = np.random.default_rng(0)
    tasks = [Task(f"t{i}", "regression") for i in range(n_tasks)]
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    y = rng.normal(size=(rows, n_tasks)).astype(np.float32)
    return tasks, Arrays(
        {"s": x},
        {t.name: y[:, i].copy() for i, t in enumerate(tasks)},
        {t.name: np.ones(rows, dtype=bool) for t in tasks},
        {t.name: "s" for t in tasks},
    )


def time_ours(method: str, options: dict[str, Any], n_tasks: int, steps: int, warmup: int, batch_size: int) -> list[float]:
    """Seconds of each of ``steps`` training steps of ``fit`` (after ``warmup``) with balancer ``method``."""
    rows = BATCHES * batch_size
    tasks, data = synthetic(n_tasks, rows)
    torch.manual_seed(0)
    model = HardSharing({"s": InputSpec(dim=FEATURES)}, tasks, {t.name: "s" for t in tasks}, hidden=HIDDEN)
    config = TrainConfig(epochs=1, batch_size=batch_size, patience=None, progress=False, threads=1,
                         balancer=method, balancer_options=options)
    sampler = TimedBatches(warmup + steps, rows, batch_size)
    fit(model, tasks, data, None, config, sampler=sampler)
    return sampler.seconds()[warmup:]


def is_gradient_method(name: str) -> bool:
    return getattr(BALANCERS.get(name), "needs", "losses") in ("gramian", "jacobian")


def takes_representation(name: str) -> bool:
    """Whether the method accepts ``of="representation"`` (every gradient method should)."""
    try:
        TrainConfig(balancer=name, balancer_options={"of": "representation"})
        BALANCERS.get(name)(["a", "b"], of="representation")
    except (MultitaskError, TypeError, ValueError):
        return False
    return True


def measure_ours(methods: list[str], tasks: list[int], steps: int, warmup: int, batch_size: int,
                 representation: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    variants = [(m, "parameters") for m in methods]
    if representation:
        variants += [(m, "representation") for m in methods if is_gradient_method(m) and takes_representation(m)]
    for n_tasks in tasks:
        static_seconds: list[float] = []
        # equal weights first and last, so that a drifting machine load shows in the reference too
        order = [("static", "parameters"), *[v for v in variants if v != ("static", "parameters")],
                 ("static", "parameters")]
        results: dict[tuple[str, str], dict[str, Any]] = {}
        for method, of in order:
            # "of" given explicitly where the method takes it (gradnorm's default is the representation)
            options = {"of": of} if "of" in balancer_option_names(method) else {}
            row: dict[str, Any] = {"method": method, "of": of, "tasks": n_tasks,
                                   "kind": getattr(BALANCERS.get(method), "needs", "losses") or "losses"}
            try:
                seconds = time_ours(method, options, n_tasks, steps, warmup, batch_size)
            except Exception as e:  # a method that fails is a result, reported with its reason
                row.update(ms=None, error=f"{type(e).__name__}: {' '.join(str(e).split())[:300]}")
                print(f"T={n_tasks} {method} ({of}): FAILED {row['error']}", flush=True)
                results[(method, of)] = row
                continue
            if method == "static":
                static_seconds += seconds
            ms = 1000 * statistics.median(static_seconds if method == "static" else seconds)
            row.update(ms=ms, error=None)
            results[(method, of)] = row
            print(f"T={n_tasks} {method} ({of}): {ms:.2f} ms/step", flush=True)
        reference = results[("static", "parameters")]["ms"]
        for row in results.values():
            row["ratio_to_static"] = row["ms"] / reference if row["ms"] is not None and reference else None
            row["steps"], row["warmup"], row["batch_size"] = steps, warmup, batch_size
            rows.append(row)
    return rows


# ---- peers -----------------------------------------------------------------------------------------------------
def peer_python(peer: str, envs: Path) -> Path:
    """The python of ``peer``'s environment, created (venv + pip, constrained to constraints.txt) if missing."""
    where = envs / f".venv-{peer}"
    python = where / "bin" / "python"
    stamp = where / ".installed"
    if stamp.exists():
        return python
    constrained, no_deps, _ = PEER_ENVS[peer]
    print(f"creating {where} ...", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-c", str(CONSTRAINTS), *constrained], check=True)
    if no_deps:
        subprocess.run([*pip, "--no-deps", *no_deps], check=True)
    stamp.write_text(" ".join(constrained + no_deps) + "\n")
    return python


def measure_peer(peer: str, envs: Path, tasks: list[int], steps: int, warmup: int, batch_size: int,
                 only: str = "") -> list[dict[str, Any]]:
    try:
        python = peer_python(peer, envs)
    except (subprocess.CalledProcessError, OSError) as e:
        print(f"{peer}: could not be installed: {e}", flush=True)
        return [{"peer": peer, "error": f"not installed: {e}"}]
    command = [str(python), str(PEERS / PEER_ENVS[peer][2]), "--tasks", ",".join(map(str, tasks)),
               "--steps", str(steps), "--warmup", str(warmup), "--batch-size", str(batch_size)]
    if only:
        command += ["--only", only]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=PEERS)
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    for row in rows:
        shown = f"{row['ms']:.2f} ms/step" if row["ms"] is not None else f"FAILED {row['error']}"
        print(f"{peer} T={row['tasks']} {row['peer_method']} ({row['route']}): {shown}", flush=True)
    if done.returncode != 0:
        print(f"{peer}: exit {done.returncode}: {done.stderr[-2000:]}", flush=True)
        rows.append({"peer": peer, "error": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"})
    return rows


def compare_with_peers(ours: list[dict[str, Any]], peers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each peer timing with our time of the same method, number of tasks and level, and ours / peer."""
    mine = {(r["method"], r["of"], r["tasks"]): r for r in ours}
    out = []
    for p in peers:
        if "route" not in p:
            continue
        of = "representation" if p["route"] == "representation" else "parameters"
        our = mine.get((p["method"], of, p["tasks"]))
        our_ms = our["ms"] if our is not None else None
        ratio = our_ms / p["ms"] if our_ms is not None and p["ms"] else None
        out.append({"peer": p["peer"], "peer_method": p["peer_method"], "route": p["route"], "method": p["method"],
                    "of": of, "tasks": p["tasks"], "peer_ms": p["ms"], "ours_ms": our_ms, "ours_over_peer": ratio,
                    "peer_error": p["error"], "ours_error": our["error"] if our is not None else "not registered"})
    return out


# ---- output ----------------------------------------------------------------------------------------------------
def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def print_tables(ours: list[dict[str, Any]], versus: list[dict[str, Any]], tasks: list[int]) -> None:
    print("\n| method | level | " + " | ".join(f"T={t} ms (× static)" for t in tasks) + " |")
    print("|---|---|" + "---|" * len(tasks))
    keys = list(dict.fromkeys((r["method"], r["of"]) for r in ours))
    by = {(r["method"], r["of"], r["tasks"]): r for r in ours}
    for method, of in keys:
        cells = []
        for t in tasks:
            r = by.get((method, of, t))
            cells.append("—" if r is None or r["ms"] is None else f"{r['ms']:.2f} ({r['ratio_to_static']:.2f}×)")
        print(f"| {method} | {'repr.' if of == 'representation' else 'params'} | " + " | ".join(cells) + " |")
    if versus:
        print("\n| peer | peer method | route | ours | T | peer ms | ours ms | ours / peer |")
        print("|---|---|---|---|---|---|---|---|")
        for v in versus:
            note = f" ({v['peer_error'][:60]})" if v["peer_error"] else ""
            print(f"| {v['peer']} | {v['peer_method']} | {v['route']} | {v['method']} | {v['tasks']} | "
                  f"{_fmt(v['peer_ms'])}{note} | {_fmt(v['ours_ms'])} | {_fmt(v['ours_over_peer'])} |")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=_ints, default=[2, 10, 40], help="numbers of tasks (default 2,10,40)")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per method (default 50)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (default 10)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--methods", default="", help="comma-separated balancers (default: every registered one)")
    parser.add_argument("--no-representation", action="store_true", help="skip the of=representation variants")
    parser.add_argument("--peers", default="libmtl,torchjd", help="peers to time (default libmtl,torchjd)")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--peer-envs", type=Path, default=PEERS, help="folder of the peers' .venv-* (created)")
    parser.add_argument("--cagrad-t3", action=argparse.BooleanOptionalAction, default=True,
                        help="also time cagrad at T=3, the only T at which LibMTL 1.1.5's CAGrad runs")
    parser.add_argument("--quick", action="store_true", help="T=2,10, 10 steps after 3, no peers")
    parser.add_argument("--out", type=Path, default=RESULTS)
    a = parser.parse_args()
    if a.quick:
        a.tasks, a.steps, a.warmup, a.no_peers = [2, 10], 10, 3, True
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("multitask").setLevel(logging.ERROR)
    names = list(BALANCERS.names())
    methods = [m for m in a.methods.split(",") if m] or names
    if "static" not in methods:
        methods = ["static", *methods]
    started = time.perf_counter()
    ours = measure_ours(methods, a.tasks, a.steps, a.warmup, a.batch_size, not a.no_representation)
    peers: list[dict[str, Any]] = []
    if not a.no_peers:
        for peer in filter(None, a.peers.split(",")):
            peers += measure_peer(peer, a.peer_envs, a.tasks, a.steps, a.warmup, a.batch_size)
        if a.cagrad_t3 and "libmtl" in a.peers and "cagrad" in methods and 3 not in a.tasks:
            ours += measure_ours(["static", "cagrad"], [3], a.steps, a.warmup, a.batch_size, False)
            peers += measure_peer("libmtl", a.peer_envs, [3], a.steps, a.warmup, a.batch_size, only="EW,CAGrad")
    versus = compare_with_peers(ours, peers)
    suffix = "_quick" if a.quick else ""
    write_csv(a.out / f"step_time{suffix}.csv", ours)
    if versus:
        write_csv(a.out / "step_time_peers.csv", versus)
    print_tables(ours, versus, sorted({r["tasks"] for r in ours}))
    print(f"\n{len(ours)} timings of ours, {len(versus)} of peers in {time.perf_counter() - started:.0f} s; "
          f"written to {a.out}")


if __name__ == "__main__":
    main()
