"""ONNX export on census-income: ONNX Runtime's throughput against the library's own predict, and int8.

    MULTITASK_DATA=../shared/data .venv/bin/python -m benchmarks.onnx_export [--rows 20000] [--epochs 5]

Census-income (the shared UCI "test" partition, 99,762 rows, 39 feature columns of which 33 categorical,
two binary tasks: income > 50K and never married). 20% of the rows (seed 1000) are held out; a hard-sharing
network (hidden [128, 64], batch 512, one thread), ``linear:independent`` and ``gbdt:independent`` (200 rounds
at most, early-stopped) are trained on the rest with ``multitask.runs.train`` and exported with
:func:`multitask.export.to_onnx`. On the same held-out rows (as a table of raw columns), one thread each:

* the library: :func:`multitask.export.library_predictions` (preprocessing, the model's ``predict`` and the
  mapping back to the user's units, as ``multitask predict`` does after reading the file);
* ONNX Runtime: :func:`multitask.export.feeds` (the table's columns as the graph's inputs) and one
  ``InferenceSession.run`` over all rows (``intra_op_num_threads=1``).

Also, without the table: the model's ``predict`` on already preprocessed arrays, against
``InferenceSession.run`` on already built inputs (the graph still standardizes and one-hot encodes).
Rows/s is the best of 3; the largest absolute difference of the outputs and the agreement of the decided
classes (probability ≥ 0.5) are reported too. The deep network is also quantized (``--quantize int8``): file
size, throughput and test AUC per task, float against int8. Writes ``benchmarks/results/onnx_export.csv``.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from multitask.config import RunConfig
from multitask.data.spec import BuiltinData, from_declaration
from multitask.data.split import split_spec
from multitask.datasets import census_income
from multitask.export import feeds, library_predictions, session, to_onnx
from multitask.export._quantize import compare, rows_per_second
from multitask.runs import LoadedRun, load_run, train
from multitask.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "onnx_export.csv"
MODELS: dict[str, dict[str, Any]] = {
    "hard-sharing": {"hidden": [128, 64]},
    "linear:independent": {},
    "gbdt:independent": {"n_estimators": 200},
}


def _onnx(sess: Any, run: LoadedRun, frame: pd.DataFrame) -> object:
    return sess.run(None, feeds(run.preprocessor, frame))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("MULTITASK_DATA"))
    parser.add_argument("--rows", type=int, default=20000, help="held-out rows to predict (at most the 20%% part)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--keep", help="a new folder to keep the runs and graphs in (default: a temporary one)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    full = census_income(args.data_dir, download=False)
    train_part, test_part = split_spec(full.train, 0.2, seed=1000)
    data = BuiltinData("census-income", train_part, test_part, full.description)
    held = next(iter(test_part.sources.values())).frame.iloc[: args.rows].reset_index(drop=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        for name, options in MODELS.items():
            deep = ":" not in name
            cfg = RunConfig(dataset="census-income", model=name, model_options=options, out=f"{tmp}/{name}",
                            train=TrainConfig(epochs=args.epochs, batch_size=512, lr=1e-3, patience=3, threads=1,
                                              progress=False) if deep else TrainConfig(threads=1))
            if not (Path(tmp) / name / "metrics.json").exists():  # a run kept by --keep is reused
                train(cfg, data=data)
            run = load_run(cfg.out)
            path = to_onnx(run, f"{tmp}/{name}.onnx")
            sess = session(path)
            ours = {o.name: v for o, v in zip(sess.get_outputs(), sess.run(None, feeds(run.preprocessor, held)), strict=True)}
            theirs = library_predictions(run, held)
            diff = max(float(np.max(np.abs(ours[t] - theirs[t]))) for t in theirs)
            agree = min(float(np.mean((ours[t] >= 0.5) == (theirs[t] >= 0.5))) for t in theirs)
            library = rows_per_second(partial(library_predictions, run, held), len(held))
            onnx = rows_per_second(partial(_onnx, sess, run, held), len(held))
            inputs = feeds(run.preprocessor, held)
            arrays = run.preprocessor.transform(from_declaration(run.declaration, {"census": held}, labelled=False))
            model_only = rows_per_second(partial(run.predictor, arrays), len(held))
            graph_only = rows_per_second(partial(sess.run, None, inputs), len(held))
            row = {"model": name, "graph": "float", "rows": len(held), "size_bytes": path.stat().st_size,
                   "library_rows_per_s": round(library), "onnx_rows_per_s": round(onnx),
                   "library_model_only_rows_per_s": round(model_only), "onnx_session_only_rows_per_s": round(graph_only),
                   "max_abs_difference": diff, "same_classes": agree}
            print(row, flush=True)
            rows.append(row)
            if deep:
                graph = path.read_bytes()
                q = to_onnx(run, f"{tmp}/{name}-int8.onnx", quantize="int8")
                c = compare(run, {"float": graph, "int8": q.read_bytes()}, held, labelled=True)
                assert c.metrics is not None
                for kind in ("float", "int8"):
                    rows.append({"model": name, "graph": kind, "rows": c.rows, "size_bytes": c.size[kind],
                                 "onnx_rows_per_s": round(c.rows_per_second[kind]),
                                 "onnx_session_only_rows_per_s": round(c.session_rows_per_second[kind]),
                                 **{f"auc_{t}": c.metrics[kind][t]["auc"] for t in c.metrics[kind]},
                                 "max_abs_difference": max(c.max_change.values()) if kind == "int8" else 0.0})
                    print(rows[-1], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
