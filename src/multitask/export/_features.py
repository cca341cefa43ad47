"""The preprocessing of the run as ONNX nodes, from the raw inputs (:mod:`multitask.export._inputs`).

A numeric column becomes ``(x − mean) / std`` in double precision, then rounded to float32, as
:class:`~multitask.data.preprocess.Preprocessor` does. A categorical column becomes its one-hot block,
``x == category`` for each category seen in training: its code ``code(x)`` (the category's index, by an
ONNX-ML ``LabelEncoder``, a hash lookup) marks column ``offset + code(x)``; a missing value is the category
``"(missing)"``; a value not seen in training has code −1 and leaves its block all zeros. The result is the
float32 feature matrix ``[N, width]`` the models were trained on, columns in the run's order.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from multitask.data.preprocess import Preprocessor
from multitask.export._graph import DOUBLE, FLOAT, STRING, Graph
from multitask.export._inputs import table


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
