"""Linear models as ONNX: ``z = x·Wᵀ + b`` in double precision, the logistic of ``z`` for classification losses."""

from __future__ import annotations

import numpy as np

from multitask.data.preprocess import Preprocessor
from multitask.export._graph import DOUBLE, Graph
from multitask.models._linear import Linear


def convert(model: Linear, g: Graph, x: str, pre: Preprocessor) -> dict[str, str]:
    """Each task's prediction in the model's units: the value (standardized) or the probability, ``[N]``."""
    z = g.op("Add", [g.op("MatMul", [g.op("Cast", [x], "x64", to=DOUBLE), g.const(model.coef_.T, "coef", np.float64)]),
                     g.const(model.intercept_, "intercept", np.float64)], "linear")
    out: dict[str, str] = {}
    for j, task in enumerate(model.tasks_):
        column = g.op("Gather", [z, g.const(j, "task", np.int64)], "score", axis=1)
        out[task.name] = column if model.losses_[j] == "squared" else g.op("Sigmoid", [column], "probability")
    return out
