"""How long ``multitask report`` takes for School (139 tasks): the default page and the one drawing every task.

    python -m benchmarks.report_time [--run DIR] [--repeats 3]

Trains, once, a School run into ``runs/report_school/run`` (hard-sharing, 5 epochs, DWA
weights, the pooled baseline; ``--run`` reuses any finished run instead), then writes its report with the
default ``--max-tasks 36`` and with ``--max-tasks 0`` (all 139 tasks' learning curves and predicted-against-true
panels) ``repeats`` times each in this process, and once as a fresh ``multitask report`` command (which adds
importing Python, NumPy and matplotlib). Prints the median wall and CPU seconds, the figures and the page size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from multitask.cli import main as cli
from multitask.report import write_report

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "runs" / "report_school"  # runs/ is not version-controlled
TRAIN = ["train", "--dataset", "school", "--epochs", "5", "--balancer", "dwa", "--baseline", "pooled",
         "--threads", "1", "--quiet"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a finished run to report on (default: train School once)")
    parser.add_argument("--repeats", type=int, default=3)
    a = parser.parse_args()
    run = a.run or RESULTS / "run"
    if not (run / "metrics.json").is_file():
        print(f"training {run}: multitask {' '.join(TRAIN)}", flush=True)
        assert cli([*TRAIN, "--out", str(run), "--overwrite"]) == 0
    out = RESULTS / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_report(run, out)  # warm: imports, fonts
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| figures drawn for | figures | page | wall s (median) | CPU s (median) |")
    print("|---|---|---|---|---|")
    for max_tasks in (36, 0):
        walls, cpus = [], []
        for _ in range(a.repeats):
            cpu = time.process_time()
            report = write_report(run, out, max_tasks=max_tasks)
            walls.append(report.seconds)
            cpus.append(time.process_time() - cpu)
        what = "all tasks" if max_tasks == 0 else f"the first {max_tasks} tasks"
        print(f"| {what} | {report.figures} | {out.stat().st_size / 1e6:.1f} MB | {statistics.median(walls):.1f} | "
              f"{statistics.median(cpus):.1f} |", flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "multitask", "report", "--run", str(run), "--output", str(out)],
                   check=True, cwd=REPO)
    print(f"the command `multitask report --run {run}` (a fresh process, imports included): "
          f"{time.perf_counter() - start:.1f} s wall")


if __name__ == "__main__":
    main()
