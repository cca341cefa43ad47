"""What the peer timing scripts share: the model, the data, the timing loop and the output format.

Imported by ``step_libmtl.py`` and ``step_torchjd.py``, which run inside the peers' own virtual environments
(no ``multitask`` there): it needs torch alone. Model: a shared MLP ``64 -> 256 -> 256`` (ReLU after each
layer) and one ``Linear(256, 1)`` head per task, MSE losses, Adam (lr 1e-3), batches of 256 random rows.
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


def time_steps(step: Callable[[torch.Tensor, torch.Tensor], None], data: list, warmup: int, steps: int) -> list[float]:
    """Seconds of each of ``steps`` calls of ``step`` after ``warmup`` untimed ones."""
    out = []
    for i in range(warmup + steps):
        x, y = data[i % len(data)]
        start = time.perf_counter()
        step(x, y)
        if i >= warmup:
            out.append(time.perf_counter() - start)
    return out


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tasks", default="2,10,40", help="comma-separated numbers of tasks")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--only", default="", help="comma-separated peer method names (default: all)")
    a = parser.parse_args()
    torch.set_num_threads(1)
    return a


def report(peer: str, method: str, ours: str, route: str, tasks: int, run: Callable[[], list[float]]) -> None:
    """Run one timing and print it as one JSON line (an exception is reported, not raised)."""
    row: dict[str, object] = {"peer": peer, "peer_method": method, "method": ours, "route": route, "tasks": tasks}
    try:
        seconds = run()
        row.update(ms=1000 * statistics.median(seconds), steps=len(seconds), error=None)
    except Exception as e:  # a peer's method that fails here is a result, with its reason
        last = traceback.extract_tb(e.__traceback__)[-1]
        row.update(ms=None, steps=0, error=f"{type(e).__name__}: {e} ({last.filename.split('/')[-1]}:{last.lineno})")
    print(json.dumps(row), flush=True)
    sys.stdout.flush()
