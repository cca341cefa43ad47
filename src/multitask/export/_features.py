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
    """Declare the raw inputs of ``g`` and return the float32 feature matrix ``[N, width]``.

    The numeric columns are standardized as one block. With categorical columns, the matrix is one scatter
    into zeros: each standardized value at its column, and a one at ``offset_c + code_c(x)`` for each
    categorical column ``c`` (for a category not seen in training, a zero at ``offset_c``: the block stays
    all zeros)."""
    _, codec = table(pre)
    axis = g.const([1], "axis", np.int64)
    for col in codec.columns:
        g.inputs.append(helper.make_tensor_value_info(col.name, DOUBLE if col.kind == "numeric" else STRING, ["N"]))
    offsets = np.cumsum([0] + [c.width for c in codec.columns[:-1]]).tolist()  # each column's first position
    numeric = [(c, o) for c, o in zip(codec.columns, offsets, strict=True) if c.kind == "numeric"]
    categorical = [(c, o) for c, o in zip(codec.columns, offsets, strict=True) if c.kind != "numeric"]
    values: list[str] = []
    positions: list[str] = []
    if numeric:
        raw = _stack(g, [g.op("Unsqueeze", [c.name, axis], "column") for c, _ in numeric], "numeric")
        centred = g.op("Sub", [raw, g.const([c.mean for c, _ in numeric], "mean", np.float64)], "centred")
        z = g.op("Div", [centred, g.const([c.std for c, _ in numeric], "std", np.float64)], "standardized")
        z32 = g.op("Cast", [z], "standardized32", to=FLOAT)
        if not categorical:  # the numeric columns are the matrix, in order
            return z32
        values.append(z32)
        positions.append(g.op("Expand", [g.const([[o for _, o in numeric]], "at", np.int64), g.op("Shape", [raw])]))
    codes = []
    for col, _ in categorical:
        code = g.op("LabelEncoder", [col.name], "code", domain="ai.onnx.ml", keys_strings=list(col.categories),
                    values_int64s=list(range(len(col.categories))), default_int64=-1)
        codes.append(g.op("Unsqueeze", [code, axis], "code"))
    code = _stack(g, codes, "codes")  # [N, C], -1 for a category not seen in training
    seen = g.op("GreaterOrEqual", [code, g.const(0, "zero", np.int64)], "seen")
    offset = g.const([o for _, o in categorical], "offset", np.int64)
    positions.append(g.op("Where", [seen, g.op("Add", [code, offset]), offset], "position"))
    values.append(g.op("Cast", [seen], "one", to=FLOAT))
    rows = g.op("Slice", [g.op("Shape", [code]), g.const([0], "start", np.int64), g.const([1], "end", np.int64)])
    shape = g.op("Concat", [rows, g.const([codec.width], "width", np.int64)], "shape", axis=0)
    zeros = g.op("ConstantOfShape", [shape], "zeros", value=helper.make_tensor("zero", FLOAT, [1], [0.0]))
    return g.op("ScatterElements", [zeros, _stack(g, positions, "positions"), _stack(g, values, "values")],
                "features", axis=1)


def _stack(g: Graph, parts: list[str], hint: str) -> str:
    return g.op("Concat", parts, hint, axis=1) if len(parts) > 1 else parts[0]


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
