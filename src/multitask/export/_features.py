"""The graph's inputs, one per raw feature column, and the preprocessing of the run as ONNX nodes.

A numeric column is a ``double`` input of shape ``[N]``: ``(x − mean) / std`` in double precision, then
rounded to float32, as :class:`~multitask.data.preprocess.Preprocessor` does. A categorical column is a
``string`` input of shape ``[N]``: its one-hot block is ``x == category`` for each category seen in training,
computed as ``code(x) == j`` with ``code`` the category's index (an ONNX-ML ``LabelEncoder``, a hash lookup;
comparing strings is four times slower on 50 categories). A missing value is the category ``"(missing)"``;
a value not seen in training has code −1 and an all-zero block. The
result is the float32 feature matrix ``[N, width]`` the models were trained on, columns in the run's order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from onnx import helper

from multitask.data.preprocess import Preprocessor, SourceCodec, _as_str, _numeric
from multitask.errors import ConfigError, DataError
from multitask.export._graph import DOUBLE, FLOAT, STRING, Graph


@dataclass(frozen=True)
class Column:
    """One graph input: a raw feature column, ``numeric`` (double) or ``categorical`` (string)."""

    name: str
    kind: str


def table(pre: Preprocessor) -> tuple[str, SourceCodec]:
    """The one tabular source of a run (ConfigError for per-task data sets or images, which export refuses)."""
    if len(pre.sources) != 1:
        raise ConfigError(
            f"export: this run reads one data set per task ({', '.join(list(pre.sources)[:5])}); ONNX export takes "
            "runs whose tasks share one table of features"
        )
    name, codec = next(iter(pre.sources.items()))
    if codec.image_shape is not None:
        raise ConfigError(f"export: source {name!r} holds images; ONNX export takes tabular features only")
    return name, codec


def columns(pre: Preprocessor) -> list[Column]:
    """The graph's inputs, in the order of the run's feature columns."""
    return [Column(c.name, c.kind) for c in table(pre)[1].columns]


def add_features(g: Graph, pre: Preprocessor) -> str:
    """Declare the raw inputs of ``g`` and return the float32 feature matrix ``[N, width]``."""
    _, codec = table(pre)
    axis = g.const([1], "axis", np.int64)
    pieces: list[str] = []
    run: list[tuple[str, float, float]] = []  # consecutive numeric columns, standardized together

    def flush() -> None:
        if not run:
            return
        raw = g.op("Concat", [x for x, _, _ in run], "numeric", axis=1) if len(run) > 1 else run[0][0]
        mean = g.const([m for _, m, _ in run], "mean", np.float64)
        std = g.const([s for _, _, s in run], "std", np.float64)
        z = g.op("Div", [g.op("Sub", [raw, mean], "centred"), std], "standardized")
        pieces.append(g.op("Cast", [z], "standardized32", to=FLOAT))
        run.clear()

    for col in codec.columns:
        numeric = col.kind == "numeric"
        g.inputs.append(helper.make_tensor_value_info(col.name, DOUBLE if numeric else STRING, ["N"]))
        column = g.op("Unsqueeze", [col.name, axis], "column")
        if numeric:
            run.append((column, col.mean, col.std))
            continue
        flush()
        code = g.op("LabelEncoder", [column], "code", domain="ai.onnx.ml", keys_strings=list(col.categories),
                    values_int64s=list(range(len(col.categories))), default_int64=-1)
        levels = g.const(np.arange(len(col.categories)), "levels", np.int64)
        pieces.append(g.op("Cast", [g.op("Equal", [code, levels], "is")], "onehot", to=FLOAT))
    flush()
    return g.op("Concat", pieces, "features", axis=1) if len(pieces) > 1 else pieces[0]


def feeds(pre: Preprocessor, frame: pd.DataFrame, where: str = "the data") -> dict[str, np.ndarray]:
    """The graph's inputs for the rows of ``frame``: numeric columns as float64, categorical ones as the
    strings the preprocessing compares (a missing value as ``"(missing)"``); errors as the preprocessing's."""
    out: dict[str, np.ndarray] = {}
    for col in table(pre)[1].columns:
        if col.name not in frame.columns:
            raise DataError(f"{where}: no column {col.name!r}, which the model was trained with")
        values = frame[col.name]
        out[col.name] = _numeric(values, where, col.name) if col.kind == "numeric" else _as_str(values)
    return out
