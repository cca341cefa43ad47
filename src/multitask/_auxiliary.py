"""A run for one primary task: which auxiliary tasks the balancer weighed up (``metrics.json`` "auxiliary").

With ``train.primary`` the run's report lists every task's loss weight from ``log.jsonl`` (the epoch means
of the balancer's per-step weights): at the last epoch, at the epoch whose weights the model kept, and the
mean over all epochs. Under auto-lambda a task "helped" when its weight ended above its initial weight:
its gradient lowered the primary task's validation loss more often than it raised it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from multitask.train import LOG_FILE, TrainConfig


def auxiliary_summary(run_dir: Path, train: TrainConfig) -> dict[str, Any] | None:
    """Each task's weight in a primary-task run (None without a primary task or without ``log.jsonl``)."""
    if train.primary is None or not (run_dir / LOG_FILE).exists():
        return None
    records = [json.loads(line) for line in (run_dir / LOG_FILE).read_text().splitlines() if line.strip()]
    weighed = [r for r in records if isinstance(r.get("weights"), dict)]
    if not weighed:
        return None
    best = _best_epoch(records, train.primary)
    initial = float(train.balancer_options.get("init", 1.0)) if train.balancer == "auto-lambda" else None
    tasks: dict[str, dict[str, Any]] = {}
    for name in weighed[-1]["weights"]:
        series = [r["weights"].get(name) for r in weighed]
        values = [v for v in series if isinstance(v, float | int) and math.isfinite(v)]
        final = series[-1]
        kept = next((r["weights"].get(name) for r in weighed if r["epoch"] == best), None)
        tasks[name] = {
            "role": "primary" if name == train.primary else "auxiliary",
            "final": final,
            "kept": kept,
            "mean": sum(values) / len(values) if values else None,
            **({"helped": final > initial} if initial is not None and final is not None
               and name != train.primary else {}),
        }
    return {"primary": train.primary, "balancer": train.balancer, "initial": initial, "kept_epoch": best,
            "tasks": tasks}


def _best_epoch(records: list[dict[str, Any]], primary: str) -> int | None:
    """The epoch with the lowest validation loss of the primary task (the first of equals), as ``fit`` keeps."""
    scored = [(r["valid"].get(primary), r["epoch"]) for r in records if isinstance(r.get("valid"), dict)]
    finite = [(v, e) for v, e in scored if v is not None]
    return min(finite)[1] if finite else (records[-1]["epoch"] if records else None)


def print_auxiliary(summary: dict[str, Any], console: Any) -> None:
    """The weights as a table, auxiliary tasks by mean weight (highest first)."""
    from rich.markup import escape
    from rich.table import Table

    def fmt(v: Any) -> str:
        return "—" if v is None else f"{v:.4g}"

    table = Table(title=f"task weights for primary task {escape(summary['primary'])} ({summary['balancer']}; "
                        f"kept: epoch {summary['kept_epoch']})")
    for column in ("task", "role", "final", "kept", "mean", "helped"):
        table.add_column(column, justify="right" if column in ("final", "kept", "mean") else "left")
    rows = sorted(summary["tasks"].items(), key=lambda kv: (kv[1]["role"] != "primary", -(kv[1]["mean"] or 0.0)))
    for name, row in rows:
        helped = row.get("helped")
        table.add_row(escape(name), row["role"], fmt(row["final"]), fmt(row["kept"]), fmt(row["mean"]),
                      "" if helped is None else ("yes" if helped else "no"))
    console.print(table)
