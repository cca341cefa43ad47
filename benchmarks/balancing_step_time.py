"""Step time of every registered balancing method, relative to equal weights, and against LibMTL and torchjd.

    python benchmarks/balancing_step_time.py                 # T = 2, 10, 40; 3 x 20 timed steps; both peers
    python benchmarks/balancing_step_time.py --quick         # T = 2, 10; 10 steps; no peers (for make bench)
    python benchmarks/balancing_step_time.py --no-peers --methods static,mgda,pcgrad

Model: hard sharing, a shared MLP ``64 -> 256 -> 256`` (ReLU) and one linear head per task (regression, MSE),
batches of 256 random rows, Adam, one torch thread. For ours, one *step* is one iteration of
:func:`multitask.train.fit`'s loop (taking the batch, forward, the task losses, the balancer's backward and
combination, Adam's step) as the library runs it: the script hands ``fit`` a sampler (``fit(sampler=...)``)
that notes the time whenever the trainer asks for the next batch, so each interval is one whole training
step. Steps are timed by the process's CPU time (``--clock cpu``, the default: with one thread it is the
step's wall time on an idle machine, and other processes on a shared one barely move it; ``--clock wall``
for the wall clock). Per method and number of tasks ``T``, ``--rounds`` rounds (3) each time ``--steps`` steps (20) after
``--warmup`` steps (5); the reported time is the median over rounds of each round's median, and the ratio to
``static`` (equal weights) the median over rounds of the ratio to ``static`` timed just before. Every method in
``multitask.registry.BALANCERS`` is timed (new ones are picked up as they are registered) with its default
options but ``of="parameters"``, and every gradient method that takes ``of`` once more with
``of="representation"``.

Peers, each in its own virtual environment that this script creates on first use (``--peer-envs``, by
default ``benchmarks/peers/.venv-*``, ignored by git; pip with ``-c constraints.txt`` so that torch is the
CPU build of the pinned version): LibMTL 1.1.5 (``pip install --no-deps LibMTL==1.1.5`` plus torch, numpy and
scipy) and torchjd 0.18.0. Their timing scripts are ``benchmarks/peers/step_*.py``: the same model, data and
step, for the methods they share with us. They run as servers beside this script, and each of a peer's
methods is timed right after ours in every round (the ratio ours / peer is the median of those paired
ratios), so that the load of a shared machine hits both alike. Results go to ``benchmarks/results/balancing/``:
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
#: how a step is timed: the CPU time of this process (immune to other processes on a shared machine, and equal
#: to the wall time of a one-thread step on an idle one), or the wall clock
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
CLOCK = ["cpu"]

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
        self.clock = CLOCKS[CLOCK[0]]

    def batches(self, data: Arrays, batch_size: int, epoch: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
        order = np.arange(self.rows, dtype=np.int64)
        for i in range(self.steps):
            start = (i * self.batch_size) % self.rows
            self.stamps.append(self.clock())
            yield {"s": order[start : start + self.batch_size]}
        self.stamps.append(self.clock())

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


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def measure(methods: list[str], tasks: list[int], steps: int, warmup: int, rounds: int, batch_size: int,
            representation: bool, servers: list[PeerServer]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Our rows (one per method, level and T) and the peers' rows (one per peer method, route and T).

    In each of ``rounds`` rounds (every other one in reverse order) each of our variants is timed right after
    ``static`` and right before the peers' matching methods, so that a ratio compares timings taken within
    seconds of each other: the reported ratios are medians over rounds of those paired ratios.
    """
    variants = [(m, "parameters") for m in methods]
    if representation:
        variants += [(m, "representation") for m in methods if is_gradient_method(m) and takes_representation(m)]
    ours_rows: list[dict[str, Any]] = []
    peer_rows: list[dict[str, Any]] = []
    for n_tasks in tasks:
        ms: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
        to_static: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
        errors: dict[tuple[str, str], str] = {}
        peer_ms: dict[tuple[str, str, str], list[float]] = {}
        to_peer: dict[tuple[str, str, str], list[float]] = {}
        peer_info: dict[tuple[str, str, str], dict[str, Any]] = {}
        for r in range(rounds):
            for method, of in variants if r % 2 == 0 else variants[::-1]:
                if (method, of) in errors:
                    continue
                # "of" given explicitly where the method takes it (gradnorm's default is the representation)
                options = {"of": of} if "of" in balancer_option_names(method) else {}
                try:
                    static = 1000 * statistics.median(time_ours("static", {}, n_tasks, steps, warmup, batch_size))
                    mine = 1000 * statistics.median(time_ours(method, options, n_tasks, steps, warmup, batch_size))
                except Exception as e:  # a method that fails is a result, reported with its reason
                    errors[(method, of)] = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
                    print(f"T={n_tasks} {method} ({of}): FAILED {errors[(method, of)]}", flush=True)
                    continue
                ms[(method, of)].append(mine)
                to_static[(method, of)].append(mine / static)
                shown = [f"T={n_tasks} round {r + 1} {method} ({of}): {mine:.2f} ms ({mine / static:.2f}× static)"]
                for server in servers:
                    for peer_method, route in server.matching(method, of):
                        key = (server.peer, peer_method, route)
                        row = server.time(peer_method, route, n_tasks, steps, warmup, batch_size)
                        peer_info[key] = {"method": method, "of": of, "error": row["error"]}
                        peer_ms.setdefault(key, [])
                        to_peer.setdefault(key, [])
                        if row["ms"] is not None:
                            peer_ms[key].append(row["ms"])
                            to_peer[key].append(mine / row["ms"])
                            shown.append(f"{server.peer} {peer_method} ({route}) {row['ms']:.2f} ms")
                        else:
                            shown.append(f"{server.peer} {peer_method} ({route}) failed")
                print("; ".join(shown), flush=True)
        for method, of in variants:
            ours_rows.append({
                "method": method, "of": of, "tasks": n_tasks,
                "kind": getattr(BALANCERS.get(method), "needs", "losses") or "losses",
                "ms": _median(ms[(method, of)]), "ratio_to_static": _median(to_static[(method, of)]),
                "rounds": len(ms[(method, of)]), "steps_per_round": steps, "warmup": warmup, "batch_size": batch_size,
                "clock": CLOCK[0],
                "error": errors.get((method, of)),
            })
        for (peer, peer_method, route), info in peer_info.items():
            key = (peer, peer_method, route)
            peer_rows.append({
                "peer": peer, "peer_method": peer_method, "route": route, "method": info["method"], "of": info["of"],
                "tasks": n_tasks, "peer_ms": _median(peer_ms[key]), "ours_ms": _median(ms[(info["method"], info["of"])]),
                "ours_over_peer": _median(to_peer[key]), "rounds": len(to_peer[key]), "clock": CLOCK[0],
                "peer_error": info["error"],
                "ours_error": errors.get((info["method"], info["of"])),
            })
    return ours_rows, peer_rows


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


class PeerServer:
    """A peer's timing script running in its own environment (``--serve``), timing one method per request."""

    def __init__(self, peer: str, envs: Path) -> None:
        self.peer = peer
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        command = [str(peer_python(peer, envs)), str(PEERS / PEER_ENVS[peer][2]), "--serve"]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                        cwd=PEERS)
        self.methods: list[dict[str, str]] = self._read()["methods"]

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.peer}'s timing script ended (exit {self.process.wait()})")
        return dict(json.loads(line))

    def matching(self, method: str, of: str) -> list[tuple[str, str]]:
        """The peer's (method, route) pairs that compute our ``method`` at level ``of``."""
        level = {"representation": "representation"}
        return [(m["peer_method"], m["route"]) for m in self.methods
                if m["method"] == method and level.get(m["route"], "parameters") == of]

    def time(self, peer_method: str, route: str, tasks: int, steps: int, warmup: int, batch_size: int) -> dict[str, Any]:
        assert self.process.stdin is not None
        request = {"peer_method": peer_method, "route": route, "tasks": tasks, "steps": steps, "warmup": warmup,
                   "batch_size": batch_size, "clock": CLOCK[0]}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


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
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round (default 20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before them (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all methods (default 3)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--methods", default="", help="comma-separated balancers (default: every registered one)")
    parser.add_argument("--no-representation", action="store_true", help="skip the of=representation variants")
    parser.add_argument("--peers", default="libmtl,torchjd", help="peers to time (default libmtl,torchjd)")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--peer-envs", type=Path, default=PEERS, help="folder of the peers' .venv-* (created)")
    parser.add_argument("--cagrad-t3", action=argparse.BooleanOptionalAction, default=True,
                        help="also time cagrad at T=3, the only T at which LibMTL 1.1.5's CAGrad runs")
    parser.add_argument("--clock", choices=list(CLOCKS), default="cpu",
                        help="cpu: the process's CPU time per step (default; steady on a shared machine); wall")
    parser.add_argument("--quick", action="store_true", help="T=2,10, one round of 10 steps after 3, no peers")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--append", action="store_true",
                        help="keep the rows of the CSV files for numbers of tasks not timed in this run")
    a = parser.parse_args()
    if a.quick:
        a.tasks, a.steps, a.warmup, a.rounds, a.no_peers = [2, 10], 10, 3, 1, True
    torch.set_num_threads(1)
    CLOCK[0] = a.clock
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("multitask").setLevel(logging.ERROR)
    methods = [m for m in a.methods.split(",") if m] or list(BALANCERS.names())
    if "static" not in methods:
        methods = ["static", *methods]
    started = time.perf_counter()
    servers: list[PeerServer] = []
    for peer in [] if a.no_peers else [p for p in a.peers.split(",") if p]:
        try:
            servers.append(PeerServer(peer, a.peer_envs))
        except (subprocess.CalledProcessError, OSError, RuntimeError) as e:
            print(f"{peer}: not timed: {e}", flush=True)
    suffix = "_quick" if a.quick else ""
    ours: list[dict[str, Any]] = []
    versus: list[dict[str, Any]] = []
    try:
        plan = [([n], methods, not a.no_representation, servers) for n in a.tasks]
        libmtl = [s for s in servers if s.peer == "libmtl"]
        if a.cagrad_t3 and libmtl and "cagrad" in methods and 3 not in a.tasks:
            plan.append(([3], ["static", "cagrad"], False, libmtl))
        for tasks, chosen, representation, peers in plan:
            more, more_versus = measure(chosen, tasks, a.steps, a.warmup, a.rounds, a.batch_size, representation,
                                        peers)
            ours, versus = ours + more, versus + more_versus
            # written after each T, so that an interrupted run keeps what it measured
            save(a.out / f"step_time{suffix}.csv", ours, a.append)
            if versus:
                save(a.out / "step_time_peers.csv", versus, a.append)
    finally:
        for server in servers:
            server.close()
    print_tables(ours, versus, sorted({r["tasks"] for r in ours}))
    print(f"\n{len(ours)} timings of ours, {len(versus)} of peers in {time.perf_counter() - started:.0f} s; "
          f"written to {a.out}")


def save(path: Path, rows: list[dict[str, Any]], append: bool) -> None:
    """Write ``rows``; with ``append``, keep the rows already in ``path`` for the numbers of tasks not in them."""
    kept: list[dict[str, Any]] = []
    if append and path.exists():
        measured = {str(r["tasks"]) for r in rows}
        with open(path, newline="") as f:
            kept = [r for r in csv.DictReader(f) if r["tasks"] not in measured]
    write_csv(path, kept + rows)


if __name__ == "__main__":
    main()
