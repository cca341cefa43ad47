"""What the peer timing scripts share: the model, the data, the timing loop and the protocol.

Imported by ``step_libmtl.py`` and ``step_torchjd.py``, which run inside the peers' own virtual environments
(no ``multitask`` there): it needs torch alone. Model: a shared MLP ``64 -> 256 -> 256`` (ReLU after each
layer) and one ``Linear(256, 1)`` head per task, MSE losses, Adam (lr 1e-3), batches of 256 random rows.

A peer script prints one JSON line per timing. Run plainly it times every method it knows at the given
numbers of tasks; with ``--serve`` it first prints its methods (``{"methods": [...]}``) and then times one
method per request line read from stdin (``{"peer_method", "route", "tasks", "steps", "warmup",
"batch_size", "clock"}``), so that ``benchmarks/balancing_step_time.py`` can time a peer's method right after ours, in
the same minute of a shared machine's load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable

import torch
from torch import nn

FEATURES = 64
HIDDEN = (256, 256)
BATCHES = 8  # distinct random batches, cycled

Step = Callable[[torch.Tensor, torch.Tensor], None]
#: (peer method, route) -> our method's name
Methods = dict[tuple[str, str], str]


def encoder() -> nn.Sequential:
    return nn.Sequential(nn.Linear(FEATURES, HIDDEN[0]), nn.ReLU(), nn.Linear(HIDDEN[0], HIDDEN[1]), nn.ReLU())


def heads(tasks: int) -> nn.ModuleList:
    return nn.ModuleList([nn.Linear(HIDDEN[1], 1) for _ in range(tasks)])


def batches(tasks: int, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [
        (torch.randn(batch_size, FEATURES, generator=g), torch.randn(batch_size, tasks, generator=g))
        for _ in range(BATCHES)
    ]


#: the clocks a step can be timed by: the process's CPU time, or the wall clock
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def time_steps(step: Step, data: list[tuple[torch.Tensor, torch.Tensor]], warmup: int, steps: int,
               clock: str = "cpu") -> list[float]:
    """Seconds of each of ``steps`` calls of ``step`` after ``warmup`` untimed ones."""
    now = CLOCKS[clock]
    out = []
    for i in range(warmup + steps):
        x, y = data[i % len(data)]
        start = now()
        step(x, y)
        if i >= warmup:
            out.append(now() - start)
    return out


def timing(peer: str, methods: Methods, make_step: Callable[[str, str, int], Step], method: str, route: str,
           tasks: int, steps: int, warmup: int, batch_size: int, clock: str = "cpu") -> dict[str, object]:
    """One timing as a JSON-ready row (an exception is reported in it, not raised)."""
    row: dict[str, object] = {"peer": peer, "peer_method": method, "method": methods[(method, route)],
                              "route": route, "tasks": tasks}
    try:
        torch.manual_seed(0)
        seconds = time_steps(make_step(method, route, tasks), batches(tasks, batch_size), warmup, steps, clock)
        row.update(ms=1000 * statistics.median(seconds), steps=len(seconds), error=None)
    except Exception as e:  # a peer's method that fails here is a result, with its reason
        last = traceback.extract_tb(e.__traceback__)[-1]
        row.update(ms=None, steps=0, error=f"{type(e).__name__}: {e} ({last.filename.split('/')[-1]}:{last.lineno})")
    return row


def main(peer: str, description: str, methods: Methods, make_step: Callable[[str, str, int], Step]) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tasks", default="2,10,40", help="comma-separated numbers of tasks")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--only", default="", help="comma-separated peer method names (default: all)")
    parser.add_argument("--clock", choices=list(CLOCKS), default="cpu", help="the process's CPU time, or wall")
    parser.add_argument("--serve", action="store_true", help="time the methods asked for on stdin, one per line")
    a = parser.parse_args()
    torch.set_num_threads(1)
    if a.serve:
        listing = [{"peer_method": m, "route": r, "method": ours} for (m, r), ours in methods.items()]
        print(json.dumps({"methods": listing}), flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            q = json.loads(line)
            row = timing(peer, methods, make_step, q["peer_method"], q["route"], q["tasks"], q["steps"], q["warmup"],
                         q["batch_size"], q.get("clock", "cpu"))
            print(json.dumps(row), flush=True)
        return
    only = set(filter(None, a.only.split(",")))
    for tasks in (int(t) for t in a.tasks.split(",")):
        for method, route in methods:
            if not only or method in only:
                row = timing(peer, methods, make_step, method, route, tasks, a.steps, a.warmup, a.batch_size, a.clock)
                print(json.dumps(row), flush=True)
