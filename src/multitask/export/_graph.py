"""An ONNX graph under construction: nodes, constants and fresh names, and other models spliced in.

Every name the builder makes starts with ``multitask/`` and is checked against the names it was told to keep
free (the graph's inputs and outputs: the user's feature columns and task names), so that no column or task
name can collide with an intermediate value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: the default ONNX operator set of exported graphs, and of the ONNX-ML domain (``TreeEnsemble`` is version 5)
OPSET = 20
ML_OPSET = 5
#: ONNX Runtime 1.20 and later read IR version 10 (the IR of opsets 20 and 21)
IR_VERSION = 10
PREFIX = "multitask/"


class Graph:
    """Nodes and constants of one graph; :meth:`op` adds a node and returns the name of its output."""

    def __init__(self, reserved: set[str]) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.domains: dict[str, int] = {"": OPSET}
        self._reserved = set(reserved)
        self._count = 0

    def name(self, hint: str) -> str:
        """A name used nowhere else in the graph."""
        self._count += 1
        name = f"{PREFIX}{hint}/{self._count}"
        assert name not in self._reserved
        return name

    def const(self, value: Any, hint: str = "const", dtype: Any = None) -> str:
        """A constant tensor (an initializer) holding ``value``."""
        array = np.asarray(value, dtype=dtype)
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, *, domain: str = "",
           outputs: int = 1, **attributes: Any) -> str:
        """Add ``op_type(inputs)``; returns its (first) output's name."""
        names = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, domain=domain or None, **attributes))
        if domain:
            self.domains.setdefault(domain, ML_OPSET)
        return names[0]

    def output(self, source: str, name: str, elem_type: int, shape: list[Any]) -> None:
        """Expose ``source`` as the graph output ``name``."""
        self.nodes.append(helper.make_node("Identity", [source], [name]))
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))

    def splice(self, model: onnx.ModelProto, inputs: list[str], hint: str) -> list[str]:
        """Add the nodes of ``model`` (local functions inlined) reading ``inputs`` for its graph inputs, every
        one of its names prefixed; returns the names of its outputs in this graph."""
        from onnx import compose, inliner

        model = inliner.inline_local_functions(model)
        for opset in model.opset_import:
            if opset.domain in ("", "ai.onnx"):
                if opset.version != OPSET:
                    raise ValueError(f"model of opset {opset.version} spliced into a graph of opset {OPSET}")
            else:
                self.domains.setdefault(opset.domain, opset.version)
        self._count += 1
        prefix = f"{PREFIX}{hint}/{self._count}/"
        model = compose.add_prefix(model, prefix)
        graph = model.graph
        if len(graph.input) != len(inputs):
            raise ValueError(f"the spliced model takes {len(graph.input)} inputs, {len(inputs)} given")
        for given, inner in zip(inputs, graph.input, strict=True):
            self.nodes.append(helper.make_node("Identity", [given], [inner.name]))
        for node in graph.node:  # the exporter's notes (stack traces, module paths) would double the file
            del node.metadata_props[:]
            node.doc_string = ""
        self.nodes.extend(graph.node)
        self.initializers.extend(graph.initializer)
        return [o.name for o in graph.output]

    def model(self, metadata: dict[str, str]) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "multitask", self.inputs, self.outputs, self.initializers)
        opsets = [helper.make_opsetid(d, v) for d, v in self.domains.items()]
        model = helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION, producer_name="multitask")
        helper.set_model_props(model, metadata)
        return model


DOUBLE = TensorProto.DOUBLE
FLOAT = TensorProto.FLOAT
STRING = TensorProto.STRING
