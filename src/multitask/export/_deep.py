"""Deep networks as ONNX: the network and each task's activation (``Task.activate``) exported by PyTorch's
``torch.onnx.export(..., dynamo=True)`` with a dynamic batch dimension, spliced in after the features."""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

from multitask.data.preprocess import Preprocessor
from multitask.errors import ConfigError
from multitask.export._graph import DOUBLE, OPSET, Graph
from multitask.export._inputs import table
from multitask.models._deep import Deep
from multitask.tasks import Task

log = logging.getLogger(__name__)
#: the batch of zeros the exporter traces (any size above 1: PyTorch specializes sizes 0 and 1)
EXAMPLE_ROWS = 3


class _Predictions(nn.Module):
    """``x ↦ (Task.activate(net({source: x})[t]) for t in tasks)``: one float32 tensor per task."""

    def __init__(self, net: nn.Module, tasks: list[Task], source: str) -> None:
        super().__init__()
        self.net = net
        self.tasks = tasks
        self.source = source

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.net({self.source: x})
        return tuple(t.activate(outputs[t.name]) for t in self.tasks)


def convert(model: Deep, g: Graph, x: str, pre: Preprocessor) -> dict[str, str]:
    """Each task's prediction in the model's units (standardized value, probabilities) as double."""
    source, codec = table(pre)
    width = codec.width
    net = model.net_.eval()
    wrapper = _Predictions(net, list(model.tasks_), source)
    example = torch.zeros(EXAMPLE_ROWS, width, dtype=torch.float32)
    batch = torch.export.Dim("batch")
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # PyTorch's own notes on its exporter, not about this model
            program = torch.onnx.export(wrapper, (example,), dynamo=True, opset_version=OPSET, input_names=["x"],
                                        dynamic_shapes=({0: batch},), verbose=False)
    except Exception as e:  # the exporter raises many kinds; the message says which network failed
        raise ConfigError(f"export: PyTorch could not export the {model.name!r} network to ONNX "
                          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
    finally:
        quiet.setLevel(level)
    assert program is not None
    outputs = g.splice(program.model_proto, [x], "network")
    return {t.name: g.op("Cast", [o], "prediction64", to=DOUBLE) for t, o in zip(model.tasks_, outputs, strict=True)}
