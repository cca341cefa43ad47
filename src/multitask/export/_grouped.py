"""Grouped runs as ONNX: each group's model on the same features; each task's output from its group's model."""

from __future__ import annotations

from multitask.data.preprocess import Preprocessor
from multitask.export._graph import Graph
from multitask.models._grouped import Grouped


def convert(model: Grouped, g: Graph, x: str, pre: Preprocessor) -> dict[str, str]:
    """The members' outputs, each by its own family's converter (a task belongs to exactly one group)."""
    from multitask.export._onnx import convert as convert_member

    out: dict[str, str] = {}
    for member in model.members_:
        out.update(convert_member(member, g, x, pre))
    return out
