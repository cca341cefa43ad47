"""Run every benchmark with its default arguments, one after the other: ``make bench`` (or
``python -m benchmarks.run_all [--only NAME ...]``).

Each benchmark prints its own results and writes them under ``benchmarks/results/`` (or, with ``--write``
where a script has it, into ``docs/benchmarks.md``). The real data sets are read from ``../shared/data``
(or ``$MULTITASK_DATA``); a benchmark that needs them is skipped, with a message, when they are absent.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MULTITASK_DATA", REPO.parent / "shared" / "data"))

#: name -> (module and arguments, whether it needs the shared data sets)
BENCHMARKS: dict[str, tuple[list[str], bool]] = {
    "trainer_overhead": (["benchmarks.trainer_overhead"], False),
    "torch_threads": (["benchmarks.torch_threads"], False),
    "linear_timing": (["benchmarks.linear_timing"], False),
    "linear_school": (["benchmarks.linear_school"], True),
    "linear_working_set": (["benchmarks.linear_working_set", "--problems", "tall", "--no-peer"], False),
    "deep_school": (["benchmarks.deep_mtl_vs_stl", "school"], True),
    "deep_census": (["benchmarks.deep_mtl_vs_stl", "census"], True),
    "compare_school": (["benchmarks.compare", "school"], True),
    "compare_sarcos": (["benchmarks.compare", "sarcos"], True),
    "compare_census": (["benchmarks.compare", "census"], True),
    "balancing_step_time": (["benchmarks.balancing_step_time", "--quick"], False),
    "balancing_delta_m": (["benchmarks.balancing_delta_m", "--quick"], True),
    "many_task_heads_school": (["benchmarks.compare", "school", "--models",
                                "hard-sharing[head=separate],hard-sharing[head=shared],hard-sharing[head=embedding],"
                                "linear:mean-regularized", "--out", "benchmarks/results/many_task_heads_school"], True),
    "architectures_census": (["benchmarks.compare", "census", "--models",
                              "hard-sharing,hard-sharing[categorical=embedding],shared-bottom,mmoe,cgc,ple,dselect-k,"
                              "gbdt:independent", "--out", "benchmarks/results/architectures_census"], True),
    "architectures_multimnist": (["benchmarks.architectures_multimnist"], True),
    "finetune_sarcos": (["benchmarks.finetune"], True),
    "pareto_census": (["benchmarks.pareto"], True),
    "affinity_measures": (["benchmarks.affinity_measures"], True),
    "categorical_embeddings": (["benchmarks.categorical_embeddings"], True),
    "recommender": (["benchmarks.recommender"], False),
    "grouping": (["benchmarks.grouping"], True),
    "onnx_export": (["benchmarks.onnx_export"], True),
    "auxiliary": (["benchmarks.auxiliary"], True),
    "report_school": (["benchmarks.report_time"], True),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these benchmarks")
    args = parser.parse_args()
    failed = []
    for name in args.only or list(BENCHMARKS):
        command, needs_data = BENCHMARKS[name]
        if needs_data and not DATA.is_dir():
            print(f"== {name}: skipped, no shared data sets at {DATA}", flush=True)
            continue
        print(f"== {name}: python -m {' '.join(command)}", flush=True)
        start = time.perf_counter()
        rc = subprocess.call([sys.executable, "-m", *command], cwd=REPO, env={**os.environ, "MULTITASK_DATA": str(DATA)})
        print(f"== {name}: exit {rc} after {time.perf_counter() - start:.0f} s", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
