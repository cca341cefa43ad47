"""What every architecture shares: the constructor's common arguments, input encoders, task heads, a description.

An architecture is an ``nn.Module`` built as ``cls(inputs, tasks, task_source, output_sizes, **options)``
whose forward is ``heads(representation(inputs))`` and returns ``{task: output}``; it says which parameters
are shared (``shared_parameters()``) and which are each task's (``task_parameters()``). Subclassing
:class:`Architecture` gives the description that rebuilds it (``model_config()``/``from_config``) for free:
every constructor option is kept as an attribute of the same name, as given, and written once, generically.

Components to compose rather than inherit:

* :class:`InputEncoders`: one encoder per input source (tabular: ``Linear -> norm -> activation -> dropout``;
  images: a small conv net), so that tasks with different inputs share whatever comes after;
* :class:`TaskHeads`: the last layer of every task, in one of three forms chosen by the option ``head``
  (``separate``: one linear head per task; ``shared``: a head shared by the tasks of one kind and size plus a
  task deviation penalized toward zero, the deep analogue of mean-regularized linear MTL; ``embedding``: a
  shared head that reads a learned task embedding next to the features). With hundreds of small tasks the
  last two let a task borrow what the others learned.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from multitask.errors import ConfigError
from multitask.nn._conv import ConvEncoder
from multitask.nn._embedding import Category, EmbeddingEncoder, categories_of
from multitask.nn._mlp import dense
from multitask.tasks import Task

#: kinds whose head has one output and returns shape ``(n,)``
SCALAR_KINDS = ("regression", "binary")
#: the forms of the task heads (option ``head`` of every architecture)
HEADS = ("auto", "separate", "shared", "embedding")
#: ``head="auto"`` is ``shared`` when some group (tasks of one kind and output size) has this many tasks, else
#: ``separate``: on School (139 schools) shared heads beat separate ones on every split (docs/architectures.md)
AUTO_SHARED_TASKS = 10
#: the arguments every architecture's constructor takes before its own options
COMMON_ARGUMENTS = ("inputs", "tasks", "task_source", "output_sizes")


@dataclass(frozen=True)
class InputSpec:
    """What one source feeds the model: ``dim`` tabular features, or images of ``image_shape = (C, H, W)``.

    ``categories`` (tabular only): the categorical columns among the ``dim`` features, each a one-hot block
    ``[position, position + levels)`` that the encoder embeds (:class:`~multitask.nn._embedding.Category`,
    given as such or as ``{column, position, levels, size}``); empty: every feature goes to the first dense
    layer as it is. :meth:`tabular` builds one from the preprocessing's ``(column, position, levels)``.
    """

    dim: int | None = None
    image_shape: tuple[int, int, int] | None = None
    categories: tuple[Category, ...] = ()

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
        if not isinstance(self.categories, list | tuple):
            raise ConfigError(f"categories must be a list of categorical columns, got {self.categories!r}")
        categories = tuple(Category.from_dict(c) for c in self.categories)
        object.__setattr__(self, "categories", categories)
        if categories and self.dim is None:
            raise ConfigError("categorical columns (categories) apply to tabular inputs, not images")
        taken: dict[int, str] = {}
        for c in categories:
            if c.position + c.levels > int(self.dim or 0):
                raise ConfigError(
                    f"categorical column {c.column!r}: columns {c.position}..{c.position + c.levels - 1} "
                    f"are beyond the input's {self.dim} features"
                )
            for j in range(c.position, c.position + c.levels):
                if j in taken:
                    raise ConfigError(f"categorical columns {taken[j]!r} and {c.column!r} overlap at feature {j}")
                taken[j] = c.column
        names = [c.column for c in categories]
        if len(set(names)) != len(names):
            raise ConfigError(f"a categorical column is named twice in {names}")

    @classmethod
    def tabular(
        cls, dim: int, columns: Sequence[tuple[str, int, int]] = (), embedding_sizes: dict[str, int] | None = None
    ) -> InputSpec:
        """A tabular input of ``dim`` features whose categorical ``(column, position, levels)`` are embedded,
        sizes from ``embedding_sizes`` (``{column: size}``) where given, else :func:`embedding_size`."""
        return cls(dim=dim, categories=categories_of(columns, embedding_sizes))

    @classmethod
    def of_sources(
        cls,
        shapes: dict[str, int | tuple[int, int, int]],
        columns: dict[str, list[tuple[str, int, int]]] | None = None,
        embedding_sizes: dict[str, int] | None = None,
    ) -> dict[str, InputSpec]:
        """Per source, its input: images of the shape ``(C, H, W)``, or tabular features of the width, whose
        categorical ``columns[source]`` (``(column, position, levels)``) are embedded, sizes from
        ``embedding_sizes`` (``{column: size}``, a column of any source)."""
        columns = columns or {}
        if embedding_sizes is not None and not isinstance(embedding_sizes, dict):
            raise ConfigError(f"embedding_sizes must map column names to sizes, got {embedding_sizes!r}")
        sizes = dict(embedding_sizes or {})
        known = {name for cols in columns.values() for name, _, _ in cols}
        unknown = [c for c in sizes if c not in known]
        if unknown:
            listed = ", ".join(sorted(known)[:10]) or "none embedded"
            raise ConfigError(f"embedding_sizes: {unknown[0]!r} is not a categorical column (categorical: {listed})")
        specs: dict[str, InputSpec] = {}
        for source, shape in shapes.items():
            if isinstance(shape, tuple | list):
                specs[source] = cls(image_shape=(int(shape[0]), int(shape[1]), int(shape[2])))
                continue
            cols = columns.get(source, [])
            names = {name for name, _, _ in cols}
            specs[source] = cls.tabular(int(shape), cols, {c: k for c, k in sizes.items() if c in names})
        return specs

    def to_dict(self) -> dict[str, Any]:
        if self.image_shape is not None:
            return {"image_shape": list(self.image_shape)}
        if self.categories:
            return {"dim": self.dim, "categories": [c.to_dict() for c in self.categories]}
        return {"dim": self.dim}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        if not isinstance(d, dict) or not {"dim", "image_shape"} & set(d):
            raise ConfigError(f"an input is {{'dim': D}} or {{'image_shape': [C, H, W]}}, got {d!r}")
        if d.get("image_shape") is not None:
            c, h, w = d["image_shape"]
            return cls(image_shape=(int(c), int(h), int(w)))
        return cls(dim=int(d["dim"]), categories=d.get("categories") or ())


def check_tasks(
    inputs: dict[str, Any], tasks: Sequence[Task], task_source: dict[str, str], output_sizes: dict[str, int] | None
) -> dict[str, int]:
    """Each task's number of outputs, after checking tasks, sources and sizes (ConfigError naming the task)."""
    sizes = dict(output_sizes or {})
    if not tasks:
        raise ConfigError("a model needs at least one task")
    seen: set[str] = set()
    for task in tasks:
        if task.name in seen:
            raise ConfigError(f"task {task.name!r} is given twice")
        seen.add(task.name)
        source = task_source.get(task.name)
        if source not in inputs:
            raise ConfigError(f"task {task.name!r}: no input {source!r}; inputs are {', '.join(inputs)}")
        if task.kind in SCALAR_KINDS:
            size = sizes.setdefault(task.name, 1)
            if size != 1:
                raise ConfigError(f"task {task.name!r}: a {task.kind} head has 1 output, got {size}")
        elif sizes.get(task.name, 0) < 1:
            raise ConfigError(f"task {task.name!r}: a {task.kind} task needs its number of classes or labels")
    return {t.name: int(sizes[t.name]) for t in tasks}


def squeeze_scalar(task: Task, output: torch.Tensor) -> torch.Tensor:
    """A one-output task's ``(n, 1)`` output as ``(n,)``; others unchanged."""
    return output.squeeze(-1) if task.kind in SCALAR_KINDS else output


class InputEncoders(nn.ModuleDict):
    """One encoder per source, ``(n_s, ...) -> (n_s, width)``; module keys by position (``s0``, ``s1``, …).

    Tabular: ``Linear -> norm -> activation -> dropout`` of the features, with the categorical columns of
    ``InputSpec.categories`` embedded first (:class:`~multitask.nn._embedding.EmbeddingEncoder`); images:
    :class:`ConvEncoder`.
    """

    def __init__(self, inputs: dict[str, Any], width: int, activation: str, norm: str, dropout: float) -> None:
        super().__init__()
        self.source_keys = {source: f"s{i}" for i, source in enumerate(inputs)}
        for source, spec in inputs.items():
            if spec.image_shape is not None:
                encoder: nn.Module = ConvEncoder(spec.image_shape, width, activation, norm, dropout)
            elif spec.categories:
                encoder = EmbeddingEncoder(spec.dim, spec.categories, width, activation, norm, dropout)
            else:
                encoder = dense(spec.dim, width, activation, norm, dropout)
            self[self.source_keys[source]] = encoder

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {s: self[k](inputs[s]) for s, k in self.source_keys.items()}

    def encode_together(self, inputs: dict[str, torch.Tensor], trunk: nn.Module) -> dict[str, torch.Tensor]:
        """``trunk(encoder_s(x_s))`` of every source, all sources through ``trunk`` as one batch."""
        sources = list(self.source_keys)
        encoded = [self[self.source_keys[s]](inputs[s]) for s in sources]
        sizes = [e.shape[0] for e in encoded]
        shared = trunk(torch.cat(encoded, dim=0))
        return dict(zip(sources, torch.split(shared, sizes, dim=0), strict=True))


class TaskHeads(nn.Module):
    """The last layer of every task: ``{task: features (n, d)} -> {task: output}`` (``(n,)`` or ``(n, k)``).

    Forms (``mode``; ``auto``: ``shared`` when a group has at least ``AUTO_SHARED_TASKS`` tasks, else
    ``separate``):

    * ``separate`` — ``f_t(z) = W_t z + b_t``. One-output heads that read the same features tensor are
      applied as one matrix product (139 schools: one operation).
    * ``shared`` — ``f_t(z) = (W_g + V_t) z + b_g + c_t`` for the tasks of one group ``g`` (same kind and output
      size), with ``penalty() = λ Σ_t ‖V_t‖²`` added to the training loss (``λ = penalty``): a task's head is
      the group's head unless its data say otherwise (Evgeniou & Pontil, KDD 2004, in the last layer).
    * ``embedding`` — ``f_t(z) = W_g φ(U_g [z; e_t] + a_g) + b_g`` with a learned task embedding ``e_t``
      (``embedding_dim``): one small shared network per group that is told which task it predicts.

    Module keys are positional (``t0``, ``t1``, … for separate heads), so that any task name works.
    """

    def __init__(
        self,
        tasks: Sequence[Task],
        in_dim: int,
        output_sizes: dict[str, int],
        mode: str = "separate",
        penalty: float = 1e-3,
        embedding_dim: int = 8,
    ) -> None:
        super().__init__()
        if mode not in HEADS:
            raise ConfigError(f"head must be one of {', '.join(HEADS)}, got {mode!r}")
        if isinstance(penalty, bool) or not isinstance(penalty, int | float) or not (math.isfinite(penalty) and penalty >= 0):
            raise ConfigError(f"head_penalty must be a finite number >= 0, got {penalty!r}")
        if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int) or not 1 <= embedding_dim <= 4096:
            raise ConfigError(f"task_embedding must be a whole number in [1, 4096], got {embedding_dim!r}")
        self.tasks = list(tasks)
        self.penalty_strength = float(penalty)
        self.keys = {t.name: f"t{i}" for i, t in enumerate(self.tasks)}
        self.output_sizes = dict(output_sizes)
        groups: dict[tuple[str, int], list[str]] = {}
        for t in self.tasks:
            groups.setdefault((t.kind, self.output_sizes[t.name]), []).append(t.name)
        if mode == "auto":
            mode = "shared" if max(len(g) for g in groups.values()) >= AUTO_SHARED_TASKS else "separate"
        #: the form in use (``auto`` resolved)
        self.mode = mode
        self.group_of = {name: f"g{i}" for i, members in enumerate(groups.values()) for name in members}
        self.group_size = {f"g{i}": size for i, (_, size) in enumerate(groups)}
        if mode == "separate":
            for t in self.tasks:
                self.add_module(self.keys[t.name], nn.Linear(in_dim, self.output_sizes[t.name]))
        elif mode == "shared":
            self.shared = nn.ModuleDict({g: nn.Linear(in_dim, k) for g, k in self.group_size.items()})
            self.deviation = nn.ParameterDict(
                {self.keys[t.name]: nn.Parameter(torch.zeros(self.output_sizes[t.name], in_dim)) for t in self.tasks}
            )
            self.offset = nn.ParameterDict(
                {self.keys[t.name]: nn.Parameter(torch.zeros(self.output_sizes[t.name])) for t in self.tasks}
            )
        else:
            self.embedding = nn.ParameterDict(
                {self.keys[t.name]: nn.Parameter(0.1 * torch.randn(embedding_dim)) for t in self.tasks}
            )
            self.shared = nn.ModuleDict(
                {
                    g: nn.Sequential(nn.Linear(in_dim + embedding_dim, in_dim), nn.ReLU(), nn.Linear(in_dim, k))
                    for g, k in self.group_size.items()
                }
            )

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        outputs: dict[str, torch.Tensor] = {}
        if self.mode == "separate":
            together: dict[int, list[Task]] = {}  # one-output heads reading one tensor: one matrix product
            for t in self.tasks:
                if t.kind in SCALAR_KINDS:
                    together.setdefault(id(features[t.name]), []).append(t)
                else:
                    outputs[t.name] = self._linear(t.name)(features[t.name])
            for group in together.values():
                heads = [self._linear(t.name) for t in group]
                weight = torch.cat([h.weight for h in heads])
                bias = torch.cat([h.bias for h in heads])
                columns = nn.functional.linear(features[group[0].name], weight, bias).unbind(dim=1)
                outputs.update(zip((t.name for t in group), columns, strict=True))
        elif self.mode == "shared":
            for t in self.tasks:
                head = self.shared[self.group_of[t.name]]
                key = self.keys[t.name]
                weight = head.weight + self.deviation[key]
                out = nn.functional.linear(features[t.name], weight, head.bias + self.offset[key])
                outputs[t.name] = squeeze_scalar(t, out)
        else:
            for t in self.tasks:
                z = features[t.name]
                e = self.embedding[self.keys[t.name]].expand(z.shape[0], -1)
                outputs[t.name] = squeeze_scalar(t, self.shared[self.group_of[t.name]](torch.cat([z, e], dim=1)))
        return {t.name: outputs[t.name] for t in self.tasks}

    def _linear(self, task: str) -> nn.Linear:
        module = getattr(self, self.keys[task])
        assert isinstance(module, nn.Linear)
        return module

    def penalty(self) -> torch.Tensor | None:
        """``λ Σ_t ‖V_t‖²`` for shared heads; None for the other forms."""
        if self.mode != "shared":
            return None
        return self.penalty_strength * sum(
            (v.pow(2).sum() for v in self.deviation.values()), torch.zeros(())
        )

    def shared_parameters(self) -> list[nn.Parameter]:
        """The group heads of ``shared`` and ``embedding`` heads; none for separate heads."""
        return list(self.shared.parameters()) if self.mode != "separate" else []

    def task_parameters(self) -> dict[str, list[nn.Parameter]]:
        """Each task's own head (separate), deviation and offset (shared), or embedding."""
        if self.mode == "separate":
            return {t.name: list(self._linear(t.name).parameters()) for t in self.tasks}
        if self.mode == "shared":
            return {t.name: [self.deviation[self.keys[t.name]], self.offset[self.keys[t.name]]] for t in self.tasks}
        return {t.name: [self.embedding[self.keys[t.name]]] for t in self.tasks}


class Architecture(nn.Module):
    """Base of the registered architectures: the generic description and the hooks the trainer reads.

    A subclass sets ``name`` (its registry name), calls ``super().__init__(inputs, tasks, task_source,
    output_sizes)`` (which checks them and sets ``self.inputs``, ``self.tasks``, ``self.task_source``,
    ``self.output_sizes``) and keeps every option of its constructor as an attribute of the same name.
    """

    #: the registry name (``multitask.registry.MODELS``)
    name: ClassVar[str]
    #: None: tasks of every kind, mixed; else the kinds it takes, all tasks of one of them (the contract
    #: tests use tasks of the first)
    task_kinds: ClassVar[tuple[str, ...] | None] = None
    #: whether it reads images only (an attention over a conv encoder's feature maps, say)
    image_only: ClassVar[bool] = False
    #: the number of tasks it takes when fixed (ESMM: click and conversion); None: any number
    task_count: ClassVar[int | None] = None
    #: whether ``--model auto`` tries it (with its defaults) among its candidates
    auto: ClassVar[bool] = False
    #: options a search (``--search``) tunes besides learning rate, weight decay and the balancer:
    #: ``{option: choices}``, whole numbers or strings
    tuned: ClassVar[dict[str, tuple[int | str, ...]]] = {}

    def __init__(
        self,
        inputs: dict[str, Any],
        tasks: Sequence[Task],
        task_source: dict[str, str],
        output_sizes: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.output_sizes = check_tasks(inputs, tasks, task_source, output_sizes)
        self.inputs = dict(inputs)
        self.tasks = list(tasks)
        self.task_source = {t.name: task_source[t.name] for t in tasks}

    # ---- hooks with defaults -----------------------------------------------------------------------------------
    def penalty(self) -> torch.Tensor | None:
        """A term added to the training loss once per step (shared heads' deviation penalty); None: nothing."""
        heads = getattr(self, "task_heads", None)
        return heads.penalty() if isinstance(heads, TaskHeads) else None

    def gate_usage(self) -> dict[str, torch.Tensor] | None:
        """Mean gate weight per task and expert over the last forward pass (``{task: (experts,)}``); None
        for an architecture without gates. The trainer logs its epoch mean under "gates" in ``log.jsonl``."""
        return None

    # ---- description ---------------------------------------------------------------------------------------------
    @classmethod
    def option_names(cls) -> list[str]:
        """The constructor's options beyond the common arguments."""
        parameters = inspect.signature(cls.__init__).parameters
        return [p for p in parameters if p != "self" and p not in COMMON_ARGUMENTS]

    def model_config(self) -> dict[str, Any]:
        """A JSON-serializable description; :func:`multitask.nn.build_model` rebuilds the same module."""
        config: dict[str, Any] = {
            "model": self.name,
            "inputs": {s: spec.to_dict() for s, spec in self.inputs.items()},
            "tasks": [t.to_dict() for t in self.tasks],
            "task_source": dict(self.task_source),
            "output_sizes": dict(self.output_sizes),
        }
        for option in self.option_names():
            config[option] = _json_value(getattr(self, option))
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Architecture:
        """The model described by :meth:`model_config` (with fresh weights)."""
        options = {k: v for k, v in config.items() if k != "model"}
        options["inputs"] = {s: InputSpec.from_dict(d) for s, d in options["inputs"].items()}
        options["tasks"] = [Task.from_dict(d) for d in options["tasks"]]
        return cls(**options)


def _json_value(value: Any) -> Any:
    """Tuples as lists, recursively: what ``json`` writes and reads back."""
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value
