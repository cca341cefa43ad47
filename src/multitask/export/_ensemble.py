"""Ensembles as ONNX: each member's graph on the same features, then per task ``Σ_m w_m p_m / Σ_m w_m``."""

from __future__ import annotations

import numpy as np

from multitask.data.preprocess import Preprocessor
from multitask.export._graph import Graph
from multitask.models._ensemble import Ensemble


def convert(model: Ensemble, g: Graph, x: str, pre: Preprocessor) -> dict[str, str]:
    """Each task's weighted average of the members' predictions (members of weight 0 left out, as in
    :func:`multitask.models._ensemble.average`); each member by its own family's converter."""
    from multitask.export._onnx import convert as convert_member

    outputs = [convert_member(m, g, x, pre) for m in model.members_]
    out: dict[str, str] = {}
    for task in model.tasks_:
        weights = model.task_weights(task.name)
        terms = [g.op("Mul", [o[task.name], g.const(w, "weight", np.float64)], "weighted")
                 for o, w in zip(outputs, weights, strict=True) if w > 0]
        total = g.op("Sum", terms, "sum") if len(terms) > 1 else terms[0]
        out[task.name] = g.op("Div", [total, g.const(float(np.sum(weights)), "total", np.float64)], "average")
    return out
