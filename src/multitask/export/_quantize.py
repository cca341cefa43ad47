"""Dynamic int8 quantization of the deep networks in an exported graph (ONNX Runtime's ``quantize_dynamic``).

The weights of matrix products are stored as int8 with a scale per tensor; activations are quantized on the
fly, row batch by row batch. Trees and linear models (double precision) are left as they are, so a run
without a deep network has nothing to quantize and is refused.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from multitask.errors import ConfigError
from multitask.evaluate import Metrics
from multitask.models._base import Model
from multitask.runs import LoadedRun


def has_network(model: Model) -> bool:
    """Whether ``model`` is, or has as an ensemble member, a deep network."""
    if model.family == "deep":
        return True
    return any(has_network(m) for m in getattr(model, "members_", []))


class _Advice(logging.Filter):
    """Drops ONNX Runtime's general advice to pre-process a model before quantizing it (shape inference for
    graphs of unknown shapes; the exported graphs declare theirs)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("Please consider to run pre-processing")


def quantize_int8(run: LoadedRun, data: bytes) -> bytes:
    """The serialized graph ``data`` with the weights of its networks' matrix products in int8."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if run.model is None or not has_network(run.model):
        name = getattr(run.model, "name", "?")
        raise ConfigError(f"--quantize int8 quantizes the weights of deep networks; the model of {run.run_dir} "
                          f"({name}) has none")
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
        source.write_bytes(data)
        advice = _Advice()
        logging.getLogger().addFilter(advice)
        try:
            quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        finally:
            logging.getLogger().removeFilter(advice)
        return target.read_bytes()


@dataclass
class Comparison:
    """The float and the int8 graph of one run on the same rows: file sizes (bytes), prediction throughput
    (rows/s, one thread: from the table, inputs prepared by :func:`~multitask.export.feeds` included, and of
    the session alone on prepared inputs), the largest change of each task's output and, on labelled rows,
    each task's metrics."""

    rows: int
    size: dict[str, int]
    rows_per_second: dict[str, float]
    session_rows_per_second: dict[str, float]
    max_change: dict[str, float]
    metrics: dict[str, Metrics] | None = None


def rows_per_second(predict: Callable[[], object], rows: int, repeats: int = 3) -> float:
    """``rows`` divided by the fastest of ``repeats`` calls of ``predict``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        predict()
        best = min(best, time.perf_counter() - start)
    return rows / best


def _run(sess: Any, run: LoadedRun, frame: pd.DataFrame, where: str) -> object:
    from multitask.export._inputs import feeds

    return sess.run(None, feeds(run.preprocessor, frame, where))


def model_units(run: LoadedRun, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The graph's outputs in the units of the library's model predictions (regression standardized)."""
    pre = run.preprocessor
    return {t.name: (outputs[t.name] - pre.targets[t.name].mean) / pre.targets[t.name].std
            if t.kind == "regression" else outputs[t.name] for t in run.tasks}


def compare(run: LoadedRun, graphs: dict[str, bytes], frame: pd.DataFrame, labelled: bool = False,
            where: str = "the data") -> Comparison:
    """Each graph of ``graphs`` (``{"float": …, "int8": …}``) on the rows of ``frame``; with ``labelled``, the
    per-task metrics on its labelled rows too (the layout the run was trained on)."""
    from multitask.data.spec import from_declaration
    from multitask.evaluate import task_metrics
    from multitask.export._inputs import feeds
    from multitask.export._onnx import session

    inputs = feeds(run.preprocessor, frame, where)
    outputs: dict[str, dict[str, np.ndarray]] = {}
    speed: dict[str, float] = {}
    session_speed: dict[str, float] = {}
    for name, graph in graphs.items():
        sess = session(graph)
        values = sess.run(None, inputs)
        outputs[name] = {o.name: v for o, v in zip(sess.get_outputs(), values, strict=True)}
        speed[name] = rows_per_second(partial(_run, sess, run, frame, where), len(frame))
        session_speed[name] = rows_per_second(partial(sess.run, None, inputs), len(frame))
    first = next(iter(outputs.values()))
    change = {t.name: float(np.max(np.abs(outputs["int8"][t.name] - first[t.name]), initial=0.0))
              for t in run.tasks} if "int8" in outputs else {}
    metrics = None
    if labelled:
        source = next(iter(run.declaration["sources"]))
        spec = from_declaration(run.declaration, {source: frame}, {source: where})
        arrays = run.preprocessor.transform(spec)
        metrics = {name: task_metrics(run.tasks, arrays, model_units(run, out), run.preprocessor)
                   for name, out in outputs.items()}
    return Comparison(len(frame), {k: len(v) for k, v in graphs.items()}, speed, session_speed, change, metrics)
