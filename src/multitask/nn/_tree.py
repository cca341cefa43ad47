"""A declared task hierarchy: all tasks share the first layers, then groups of tasks branch off, level by level.

The tree is the option ``tree``: nested lists of task names, e.g. ``[["math", "reading"], ["income"]]``. The
outer list is the root (the part every task shares); each list inside it is a group with its own further
layer; lists nested deeper are subgroups with one more layer each. Branched multi-task networks of this kind
are the "tree of tasks" of Vandenhende et al. (2020, "Branched multi-task networks: deciding what layers to
share", BMVC) and the retrained result of Guo et al. (2020, "Learning to branch for multi-task learning",
ICML); here the user declares the tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from multitask.errors import ConfigError
from multitask.nn._base import Architecture, InputEncoders, InputSpec, TaskHeads
from multitask.nn._mlp import MLP, check_activation, check_dropout, check_hidden, check_norm, dense
from multitask.tasks import Task

__all__ = ["DeclaredTree", "TreeNode", "parse_tree"]

_EXAMPLE = '[["math", "reading"], ["income"]]'


@dataclass(frozen=True)
class TreeNode:
    """One group of the tree: its module key, nesting level (1 = a list inside the root), parent and tasks."""

    key: str
    level: int
    parent: str | None  # None: the root
    tasks: tuple[str, ...]


def _name(item: Any, where: str) -> str:
    """A task name of the tree: a string, or a whole number (what YAML makes of ``tree=[[1, 2], [3]]``)."""
    if isinstance(item, str):
        return item
    if isinstance(item, int) and not isinstance(item, bool):
        return str(item)
    raise ConfigError(f"tree: the entry at {where} is {item!r}; expected a task name or a list, e.g. {_EXAMPLE}")


def _depth(item: Any, where: str) -> int:
    """Levels of lists below ``item``: 0 for a task name, ``1 + max(children)`` for a list."""
    if not isinstance(item, list | tuple):
        _name(item, where)
        return 0
    if not item:
        raise ConfigError(f"tree: the group at {where} is empty; every group needs at least one task")
    return 1 + max(_depth(child, f"{where}[{i}]") for i, child in enumerate(item))


def _names(item: Any) -> tuple[str, ...]:
    """The task names below ``item`` (already checked), in the order of the tree."""
    if isinstance(item, list | tuple):
        return tuple(t for child in item for t in _names(child))
    return (_name(item, ""),)


def parse_tree(
    tree: Any, task_names: Sequence[str], n_hidden: int
) -> tuple[int, list[TreeNode], dict[str, str | None]]:
    """``(depth, groups, leaf of each task)`` of a declared tree, or ConfigError naming what is wrong.

    ``depth`` is the number of levels of lists below the root (``None`` or a flat list of every task: 0, hard
    sharing). A task named directly in a list of level ``k < depth`` has private groups of one task for the
    levels ``k + 1 .. depth``, so every task's features come out of level ``depth``. Groups come parents
    first; a task's leaf is the key of its level-``depth`` group (None when the depth is 0). Every task must
    appear exactly once, and the depth needs ``depth + 1`` hidden layers: the root keeps at least the first.
    """
    if tree is None:
        return 0, [], dict.fromkeys(task_names)
    if not isinstance(tree, list | tuple):
        raise ConfigError(f"tree must be nested lists of task names, e.g. {_EXAMPLE}; got {tree!r}")
    depth = _depth(tree, "tree") - 1
    if depth + 1 > n_hidden:
        raise ConfigError(
            f"tree has {depth} level(s) of groups and needs at least {depth + 1} hidden layers (the first shared "
            f"by all tasks, then one per level); hidden has {n_hidden}"
        )
    known = set(task_names)
    seen: dict[str, str] = {}
    groups: list[TreeNode] = []
    leaf: dict[str, str | None] = {}

    def tasks_below(item: Any, where: str) -> tuple[str, ...]:
        if isinstance(item, list | tuple):
            return tuple(t for i, child in enumerate(item) for t in tasks_below(child, f"{where}[{i}]"))
        name = _name(item, where)
        if name not in known:
            raise ConfigError(f"tree: {where} is {name!r}, not a task of the model; tasks are {', '.join(task_names)}")
        if name in seen:
            raise ConfigError(f"tree: task {name!r} appears twice, at {seen[name]} and {where}")
        seen[name] = where
        return (name,)

    def walk(item: Any, level: int, parent: str | None, path: tuple[int, ...], where: str) -> None:
        if not isinstance(item, list | tuple):  # a task that leaves the shared part here: private groups below
            name = _name(item, where)
            for extra in range(level + 1, depth + 1):
                own = "n" + "_".join(map(str, path + (0,) * (extra - level - 1)))
                groups.append(TreeNode(own, extra, parent, (name,)))
                parent = own
            leaf[name] = parent
            return
        key: str | None = None
        if level > 0:
            key = "n" + "_".join(map(str, path))
            groups.append(TreeNode(key, level, parent, _names(item)))
        for i, child in enumerate(item):
            walk(child, level + 1 if isinstance(child, list | tuple) else level, key, (*path, i), f"{where}[{i}]")

    tasks_below(tree, "tree")
    missing = [t for t in task_names if t not in seen]
    if missing:
        raise ConfigError(
            f"tree: task(s) {', '.join(map(repr, missing))} missing; every task must appear exactly once"
        )
    walk(tree, 0, None, (), "tree")
    return depth, groups, leaf


class DeclaredTree(Architecture):
    """A declared hierarchy: ``head_t(g_{D,t}(... g_{1,t}(trunk(encoder_s(x)))))``, groups as the option ``tree``.

    With ``hidden = [h_1, ..., h_L]`` and a tree of depth ``D`` (levels of lists below the root; ``D <= L - 1``):

    * the root, shared by every task: the input encoders (``-> h_1``) and the dense blocks
      ``h_1 -> ... -> h_{L-D}`` (``trunk``);
    * a group at level ``k`` (``1..D``) has one dense block ``h_{L-D+k-1} -> h_{L-D+k}`` that reads its parent's
      output; a task named directly in a list of level ``k < D`` has private blocks for the levels below;
    * one head per task (:class:`~multitask.nn.TaskHeads`) reads its level-``D`` group.

    E.g. ``hidden=[128, 64, 32]``, ``tree=[[["a", "b"], ["c"]], [["d"]]]`` (depth 2): the encoder (128) is shared
    by all, the block 128 -> 64 by ``a, b, c`` and another by ``d``, the block 64 -> 32 by ``a, b``, another is
    ``c``'s and one more ``d``'s. ``tree=None`` (or a flat list of every task) is hard sharing, with hard
    sharing's module names. Task names may be whole numbers (YAML reads ``tree=[[1, 2], [3]]`` so).

    :meth:`representation` is the root's output (``(n_s, h_{L-D})`` per source); :meth:`shared_parameters`
    are the root and every group of more than one task; a group of one task is that task's own
    (:meth:`task_parameters`).
    """

    name = "tree"

    def __init__(
        self,
        inputs: dict[str, InputSpec],
        tasks: list[Task],
        task_source: dict[str, str],
        output_sizes: dict[str, int] | None = None,
        tree: list[Any] | None = None,
        hidden: Sequence[int] = (128, 64),
        dropout: float = 0.0,
        activation: str = "relu",
        norm: str = "none",
        head: str = "auto",
        head_penalty: float = 1e-3,
        task_embedding: int = 8,
    ) -> None:
        super().__init__(inputs, tasks, task_source, output_sizes)
        self.tree = tree
        self.hidden = check_hidden(hidden)
        self.dropout = check_dropout(dropout)
        check_activation(activation)
        check_norm(norm)
        self.activation, self.norm = activation, norm
        self.head, self.head_penalty, self.task_embedding = head, head_penalty, task_embedding
        self.depth, self.groups, self.leaf = parse_tree(tree, [t.name for t in self.tasks], len(self.hidden))
        root = len(self.hidden) - self.depth  # layers of the root
        self.encoders = InputEncoders(self.inputs, self.hidden[0], activation, norm, self.dropout)
        self.trunk = MLP(self.hidden[:root], activation, norm, self.dropout)
        self.branches = nn.ModuleDict(
            {
                g.key: dense(self.hidden[root + g.level - 2], self.hidden[root + g.level - 1], activation, norm,
                             self.dropout)
                for g in self.groups
            }
        )
        #: the sources each group reads: those of its tasks, in the order of ``inputs``
        self.group_sources = {
            g.key: [s for s in self.inputs if any(self.task_source[t] == s for t in g.tasks)] for g in self.groups
        }
        self.task_heads = TaskHeads(self.tasks, self.hidden[-1], self.output_sizes, head, head_penalty, task_embedding)

    def representation(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The root's output ``trunk(encoder_s(x_s))`` of every source, ``(n_s, h_{L-D})``: what all tasks share."""
        return self.encoders.encode_together(inputs, self.trunk)

    def heads(self, representation: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The groups' blocks, parents first (each on the rows of its tasks' sources), then every task's head."""
        outputs: dict[str | None, dict[str, torch.Tensor]] = {None: representation}
        for g in self.groups:
            parent = outputs[g.parent]
            sources = self.group_sources[g.key]
            rows = [parent[s] for s in sources]
            together = self.branches[g.key](torch.cat(rows) if len(rows) > 1 else rows[0])
            parts = torch.split(together, [r.shape[0] for r in rows])
            outputs[g.key] = dict(zip(sources, parts, strict=True))
        return self.task_heads({t.name: outputs[self.leaf[t.name]][self.task_source[t.name]] for t in self.tasks})

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{task: output}`` on the rows of each task's source."""
        return self.heads(self.representation(inputs))

    def shared_parameters(self) -> list[nn.Parameter]:
        """The encoders, the trunk, the blocks of groups of more than one task, shared heads."""
        groups = [p for g in self.groups if len(g.tasks) > 1 for p in self.branches[g.key].parameters()]
        return [*self.encoders.parameters(), *self.trunk.parameters(), *groups, *self.task_heads.shared_parameters()]

    def task_parameters(self) -> dict[str, list[nn.Parameter]]:
        """Each task's head (or deviation, or embedding) and the blocks of its groups of one task."""
        own = self.task_heads.task_parameters()
        for g in self.groups:
            if len(g.tasks) == 1:
                own[g.tasks[0]].extend(self.branches[g.key].parameters())
        return own
