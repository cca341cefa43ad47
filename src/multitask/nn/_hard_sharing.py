"""Hard parameter sharing: per-source input encoders and a shared trunk feed one linear head per task.

Caruana, R. (1997). Multitask learning. Machine Learning, 28(1), 41-75.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from multitask.errors import ConfigError
from multitask.nn._conv import ConvEncoder
from multitask.nn._mlp import MLP, check_activation, check_dropout, check_hidden, check_norm, dense
from multitask.tasks import Task

#: kinds whose head has one output and returns shape ``(n,)``
_SCALAR_KINDS = ("regression", "binary")


@dataclass(frozen=True)
class InputSpec:
    """What one source feeds the model: ``dim`` tabular features, or images of ``image_shape = (C, H, W)``."""

    dim: int | None = None
    image_shape: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        if (self.dim is None) == (self.image_shape is None):
            raise ConfigError("an input needs exactly one of dim (tabular) or image_shape (images)")
        if self.dim is not None and self.dim < 1:
            raise ConfigError(f"an input needs at least one feature, got dim={self.dim}")
        if self.image_shape is not None:
            shape = tuple(int(s) for s in self.image_shape)
            if len(shape) != 3 or min(shape) < 1:
                raise ConfigError(
                    f"image_shape must be (C, H, W) with positive sizes, got {self.image_shape}"
                )
            object.__setattr__(self, "image_shape", shape)

    def to_dict(self) -> dict[str, Any]:
        if self.image_shape is not None:
            return {"image_shape": list(self.image_shape)}
        return {"dim": self.dim}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        if not isinstance(d, dict) or not {"dim", "image_shape"} & set(d):
            raise ConfigError(f"an input is {{'dim': D}} or {{'image_shape': [C, H, W]}}, got {d!r}")
        if d.get("image_shape") is not None:
            c, h, w = d["image_shape"]
            return cls(image_shape=(int(c), int(h), int(w)))
        return cls(dim=int(d["dim"]))


class HardSharing(nn.Module):
    """Hard parameter sharing: ``head_t(trunk(encoder_s(x)))`` for task ``t`` reading source ``s``.

    * encoder per source: tabular ``Linear(d_s, hidden[0]) -> norm -> activation -> dropout``; images a
      small conv net (:class:`~multitask.nn._conv.ConvEncoder`) ending in the same block;
    * shared trunk: dense blocks ``hidden[0] -> hidden[1] -> ... -> hidden[-1]``;
    * one head per task: ``Linear(hidden[-1], output_size)``; regression and binary heads return ``(n,)``,
      multiclass and multilabel ``(n, k)``.

    The shared part (:meth:`shared_parameters`) is every encoder and the trunk; the task part
    (:meth:`task_parameters`) is each task's head. A source's encoder only gets gradient from the tasks that
    read it. Defaults: ``hidden=(128, 64)``, ``dropout=0.0``, ``activation="relu"``, ``norm="none"``.

    Any task or source name works (dots, slashes, unicode): modules are keyed by position, the encoder of
    the i-th source is ``encoders.s{i}`` and the head of the i-th task ``task_heads.t{i}``
    (:attr:`source_keys`, :attr:`head_keys`).
    """

    def __init__(
        self,
        inputs: dict[str, InputSpec],
        tasks: list[Task],
        task_source: dict[str, str],
        output_sizes: dict[str, int] | None = None,
        hidden: Sequence[int] = (128, 64),
        dropout: float = 0.0,
        activation: str = "relu",
        norm: str = "none",
    ) -> None:
        super().__init__()
        output_sizes = dict(output_sizes or {})
        hidden = check_hidden(hidden)
        dropout = check_dropout(dropout)
        if not tasks:
            raise ConfigError("a model needs at least one task")
        check_activation(activation)
        check_norm(norm)
        seen: set[str] = set()
        for task in tasks:
            if task.name in seen:
                raise ConfigError(f"task {task.name!r} is given twice")
            seen.add(task.name)
        for task in tasks:
            source = task_source.get(task.name)
            if source not in inputs:
                raise ConfigError(f"task {task.name!r}: no input {source!r}; inputs are {', '.join(inputs)}")
            size = output_sizes.setdefault(task.name, 1) if task.kind in _SCALAR_KINDS else None
            if task.kind in _SCALAR_KINDS and size != 1:
                raise ConfigError(f"task {task.name!r}: a {task.kind} head has 1 output, got {size}")
            if task.kind not in _SCALAR_KINDS and output_sizes.get(task.name, 0) < 1:
                raise ConfigError(
                    f"task {task.name!r}: a {task.kind} task needs its number of classes or labels"
                )

        self.inputs = dict(inputs)
        self.tasks = list(tasks)
        self.task_source = {t.name: task_source[t.name] for t in tasks}
        self.output_sizes = {t.name: int(output_sizes[t.name]) for t in tasks}
        self.hidden = hidden
        self.dropout = float(dropout)
        self.activation = activation
        self.norm = norm

        # module names by position: a name with a dot (or empty after all) cannot be a torch module name
        self.source_keys = {source: f"s{i}" for i, source in enumerate(self.inputs)}
        self.head_keys = {t.name: f"t{i}" for i, t in enumerate(tasks)}

        self.encoders = nn.ModuleDict()
        for source, spec in self.inputs.items():
            if spec.image_shape is not None:
                encoder: nn.Module = ConvEncoder(spec.image_shape, hidden[0], activation, norm, dropout)
            else:
                assert spec.dim is not None
                encoder = dense(spec.dim, hidden[0], activation, norm, dropout)
            self.encoders[self.source_keys[source]] = encoder
        self.trunk = MLP(hidden, activation, norm, dropout)
        self.task_heads = nn.ModuleDict(
            {self.head_keys[t.name]: nn.Linear(hidden[-1], self.output_sizes[t.name]) for t in tasks}
        )
        self._scalar_groups: dict[str, list[str]] = {}  # source -> its tasks with a one-output head
        for t in tasks:
            if t.kind in _SCALAR_KINDS:
                self._scalar_groups.setdefault(self.task_source[t.name], []).append(t.name)

    # ---- forward, split in two so that balancing methods can work on the representation -------------------
    def representation(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The shared representation ``trunk(encoder_s(x_s))`` of every source: ``(n_s, hidden[-1])``.

        All sources pass the trunk together (one concatenated batch), so a source with 0 rows still costs
        nothing and still connects its encoder to the graph.
        """
        sources = list(self.inputs)
        encoded = [self.encoders[self.source_keys[s]](inputs[s]) for s in sources]
        sizes = [int(e.shape[0]) for e in encoded]
        shared = self.trunk(torch.cat(encoded, dim=0))
        return dict(zip(sources, torch.split(shared, sizes, dim=0), strict=True))

    def heads(self, representation: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each task's output on the rows of its source: ``(n,)`` or ``(n, k)`` by kind.

        The one-output heads of the tasks that read one source are applied as one matrix product (their weights
        concatenated): with many tasks (139 schools) that is one operation instead of one per task. Each head
        keeps its own parameters.
        """
        outputs: dict[str, torch.Tensor] = {}
        for source, names in self._scalar_groups.items():
            heads = [cast(nn.Linear, self.task_heads[self.head_keys[n]]) for n in names]
            weight = torch.cat([h.weight for h in heads])
            bias = torch.cat([h.bias for h in heads])
            columns = nn.functional.linear(representation[source], weight, bias).unbind(dim=1)
            outputs.update(zip(names, columns, strict=True))
        for task in self.tasks:
            if task.kind not in _SCALAR_KINDS:
                head = self.task_heads[self.head_keys[task.name]]
                outputs[task.name] = head(representation[self.task_source[task.name]])
        return {t.name: outputs[t.name] for t in self.tasks}

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{task: output}`` on the rows of each task's source."""
        return self.heads(self.representation(inputs))

    # ---- which parameters are shared ----------------------------------------------------------------------
    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters used by more than one task: the input encoders and the trunk."""
        return [*self.encoders.parameters(), *self.trunk.parameters()]

    def task_parameters(self) -> dict[str, list[nn.Parameter]]:
        """Each task's own parameters (its head)."""
        return {name: list(self.task_heads[key].parameters()) for name, key in self.head_keys.items()}

    def state_dict_from_v1(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``state`` as saved by file version 1 (encoders and heads keyed by name) with today's keys.

        Version 1 could not hold a name with a dot, so ``encoders.NAME.rest`` splits unambiguously.
        """
        renamed = {"encoders": self.source_keys, "task_heads": self.head_keys}
        upgraded: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            parts = key.split(".", 2)
            if len(parts) == 3 and parts[0] in renamed:
                parts[1] = renamed[parts[0]].get(parts[1], parts[1])
            upgraded[".".join(parts)] = value
        return upgraded

    # ---- description, to rebuild the model next to its weights --------------------------------------------
    def model_config(self) -> dict[str, Any]:
        """A JSON-serializable description; :func:`multitask.nn.build_model` rebuilds the same module."""
        return describe_mlp("hard-sharing", self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HardSharing:
        """The model described by :meth:`model_config` (with fresh weights)."""
        return cls(**mlp_arguments(config))


def describe_mlp(name: str, model: Any) -> dict[str, Any]:
    """The JSON description of an MLP-based architecture: its registry name and its constructor's arguments
    (``inputs``, ``tasks``, ``task_source``, ``output_sizes``, ``hidden``, ``dropout``, ``activation``, ``norm``)."""
    return {
        "model": name,
        "inputs": {s: spec.to_dict() for s, spec in model.inputs.items()},
        "tasks": [t.to_dict() for t in model.tasks],
        "task_source": dict(model.task_source),
        "output_sizes": dict(model.output_sizes),
        "hidden": list(model.hidden),
        "dropout": model.dropout,
        "activation": model.activation,
        "norm": model.norm,
    }


def mlp_arguments(config: dict[str, Any]) -> dict[str, Any]:
    """The constructor's arguments from a description (:func:`describe_mlp`): every entry but ``model``, with
    ``inputs`` and ``tasks`` rebuilt from their dicts (:func:`multitask.nn.build_model` checks the names first)."""
    options = {k: v for k, v in config.items() if k != "model"}
    options["inputs"] = {s: InputSpec.from_dict(d) for s, d in options["inputs"].items()}
    options["tasks"] = [Task.from_dict(d) for d in options["tasks"]]
    return options
