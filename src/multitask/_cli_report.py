"""``multitask report``: one self-contained HTML page of a run (figures embedded).

    multitask report --run runs/a
    multitask report --run runs/a --affinity aff --compare cmp --output a.html

See :mod:`multitask.report`.
"""

from __future__ import annotations

import argparse
from typing import Any

from multitask.report._report import MAX_TASKS


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``report`` to the command line's subcommands."""
    c: argparse.ArgumentParser = subparsers.add_parser(
        "report", help="one self-contained HTML page of a run: curves, metrics against baselines, predictions")
    c.add_argument("--run", required=True, help="run directory written by `multitask train`")
    c.add_argument("--output", help="HTML file to write (default: RUN/report.html)")
    c.add_argument("--affinity", metavar="DIR",
                   help="a folder written by `multitask affinity` (its heatmaps join the report; the run "
                        "directory's own affinity_*.png are always included)")
    c.add_argument("--compare", metavar="DIR",
                   help="a folder written by `multitask compare` (its leaderboard joins the report; a "
                        "leaderboard.csv in the run directory is always included)")
    c.add_argument("--max-tasks", type=int, default=MAX_TASKS, metavar="N",
                   help=f"draw per-task figures for the first N tasks (default {MAX_TASKS}; 0: every task, in "
                        "folded figures of 36); the tables always hold every task")
    return c


def run(a: argparse.Namespace, console: Any) -> int:
    """Write the report and say where."""
    from multitask.report import write_report

    report = write_report(a.run, a.output, affinity_dir=a.affinity, compare_dir=a.compare, max_tasks=a.max_tasks)
    console.print(f"report written to {report.path} ({report.figures} figures, {report.seconds:.1f} s)", markup=False)
    return 0
