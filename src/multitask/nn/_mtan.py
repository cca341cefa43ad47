"""Multi-task attention network (MTAN): a shared conv encoder and per-task soft attention over its blocks.

Liu, S., Johns, E. & Davison, A. J. (2019). End-to-end multi-task learning with attention. CVPR 2019,
1871-1880.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from multitask.errors import ConfigError
from multitask.nn._base import Architecture, InputSpec, TaskHeads
from multitask.nn._mlp import ACTIVATIONS, check_activation, check_dropout
from multitask.tasks import Task

__all__ = ["MTAN", "SharedBlocks", "TaskAttention"]

#: the largest channel count and pooled side accepted (larger ones are typos)
MAX_CHANNELS = 4096
MAX_POOL = 32


def conv(c_in: int, c_out: int, size: int, activation: str) -> nn.Sequential:
    """``Conv2d(c_in, c_out, size, same padding) -> activation``."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, size, padding=size // 2), ACTIVATIONS[activation]())


class SharedBlocks(nn.Module):
    """The shared encoder of one image source: blocks ``b = 1..B`` of two 3x3 convs, 2x2 max-pool between.

    Block ``b`` maps its input to ``u_b = conv(x)`` and ``p_b = conv(u_b)`` (``channels[b]`` maps each);
    the next block reads ``maxpool(p_b)``.
    """

    def __init__(self, in_channels: int, channels: Sequence[int], activation: str) -> None:
        super().__init__()
        sizes = [in_channels, *channels]
        self.first = nn.ModuleList(conv(sizes[b], sizes[b + 1], 3, activation) for b in range(len(channels)))
        self.second = nn.ModuleList(conv(c, c, 3, activation) for c in channels)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``[(u_1, p_1), …, (u_B, p_B)]``."""
        maps: list[tuple[torch.Tensor, torch.Tensor]] = []
        for b, (first, second) in enumerate(zip(self.first, self.second, strict=True)):
            u = first(x if b == 0 else self.pool(maps[-1][1]))
            maps.append((u, second(u)))
        return maps


class TaskAttention(nn.Module):
    """One task's attention modules over the shared blocks: ``â_b = a_b ⊙ p_b`` with
    ``a_b = sigmoid(h_b(g_b([u_b; f_{b−1}(maxpool(â_{b−1}))])))``.

    ``g_b`` is a 1x1 conv with the activation, ``h_b`` a 1x1 conv (``channels[b]`` outputs each), ``f_b`` a
    3x3 conv with the activation to the next block's channels, applied after the pooling (at the next
    block's resolution: a quarter of the cost); block 1 reads ``u_1`` alone.
    """

    def __init__(self, channels: Sequence[int], activation: str) -> None:
        super().__init__()
        inputs = [channels[0], *(2 * c for c in channels[1:])]
        self.g = nn.ModuleList(conv(i, c, 1, activation) for i, c in zip(inputs, channels, strict=True))
        self.h = nn.ModuleList(nn.Conv2d(c, c, 1) for c in channels)
        self.f = nn.ModuleList(conv(a, b, 3, activation) for a, b in itertools.pairwise(channels))
        self.pool = nn.MaxPool2d(2, ceil_mode=True)

    def forward(self, maps: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """The task's attended features of the last block, ``â_B``."""
        attended: torch.Tensor | None = None
        for b, (u, p) in enumerate(maps):
            x = u if attended is None else torch.cat([u, self.f[b - 1](self.pool(attended))], dim=1)
            mask = torch.sigmoid(self.h[b](self.g[b](x)))
            attended = mask * p
        assert attended is not None
        return attended


class MTAN(Architecture):
    """MTAN: ``head_t(pool(â_{t,B}))`` over a shared conv encoder, ``â_{t,b} = a_{t,b} ⊙ p_b`` (Liu et al. 2019).

    * shared encoder per image source (:class:`SharedBlocks`): blocks of two 3x3 convs with ``channels[b]``
      maps, a 2x2 max-pool between blocks; block ``b`` gives ``u_b`` (after its first conv) and ``p_b``
      (after its second);
    * per task, soft attention at every block (:class:`TaskAttention`): the mask
      ``a_{t,b} = sigmoid(h(g([u_b; f(maxpool(â_{t,b−1}))])))`` (1x1 convs ``g``, ``h``; a 3x3 conv ``f``)
      selects from ``p_b`` the task's features ``â_{t,b} = a_{t,b} ⊙ p_b``;
    * ``â_{t,B}`` is average-pooled to ``pool × pool``, flattened, passed through dropout and the task's head
      (:class:`~multitask.nn.TaskHeads`: ``head``, ``head_penalty``, ``task_embedding``).

    :meth:`representation` is the shared encoder's feature maps at each block, ``{"s{i}.u{b}", "s{i}.p{b}"}``
    for the i-th source (``(n_s, channels[b-1], H_b, W_b)``); the attention modules are the task part.
    :meth:`shared_parameters`: the shared encoders and shared heads; :meth:`task_parameters`: each task's
    attention modules and head. Image sources only (a task reading a tabular source is refused).
    Defaults: ``channels=(32, 64, 64)``, ``activation="relu"``, ``dropout=0.0``, ``pool=2``.

    Convolutions start from He initialisation. Differences from the paper: ``f`` follows the pooling (in
    the paper it precedes it), no batch normalisation in the attention modules or encoder (its statistics
    would differ per rank under torchrun), and the task-specific decoders are replaced by pooling and a head.
    """

    name = "mtan"
    image_only = True

    def __init__(
        self,
        inputs: dict[str, InputSpec],
        tasks: list[Task],
        task_source: dict[str, str],
        output_sizes: dict[str, int] | None = None,
        channels: Sequence[int] = (32, 64, 64),
        activation: str = "relu",
        dropout: float = 0.0,
        pool: int = 2,
        head: str = "auto",
        head_penalty: float = 1e-3,
        task_embedding: int = 8,
    ) -> None:
        super().__init__(inputs, tasks, task_source, output_sizes)
        if not isinstance(channels, list | tuple) or not channels or any(
            isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= MAX_CHANNELS for c in channels
        ):
            raise ConfigError(f"channels must be one or more whole numbers in [1, {MAX_CHANNELS}], got {channels!r}")
        if isinstance(pool, bool) or not isinstance(pool, int) or not 1 <= pool <= MAX_POOL:
            raise ConfigError(f"pool must be a whole number in [1, {MAX_POOL}], got {pool!r}")
        check_activation(activation)
        self.dropout = check_dropout(dropout)
        for source, spec in self.inputs.items():
            if spec.image_shape is None:
                raise ConfigError(f"mtan attends over conv feature maps: input {source!r} is not images")
        self.channels, self.activation, self.pool = tuple(channels), activation, pool
        self.head, self.head_penalty, self.task_embedding = head, head_penalty, task_embedding
        self.source_keys = {source: f"s{i}" for i, source in enumerate(self.inputs)}
        self.encoders = nn.ModuleDict(
            {k: SharedBlocks(self.inputs[s].image_shape[0], self.channels, activation)
             for s, k in self.source_keys.items()}
        )
        self.attention = nn.ModuleList(TaskAttention(self.channels, activation) for _ in self.tasks)
        self.readout = nn.Sequential(nn.AdaptiveAvgPool2d(pool), nn.Flatten(), nn.Dropout(self.dropout))
        width = self.channels[-1] * pool * pool
        for module in self.modules():  # He initialisation: activations keep their scale through the blocks
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)  # type: ignore[arg-type]
        self.task_heads = TaskHeads(self.tasks, width, self.output_sizes, head, head_penalty, task_embedding)

    def representation(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The shared feature maps ``u_b`` and ``p_b`` of every block and source, keyed ``"s{i}.u{b}"``."""
        out: dict[str, torch.Tensor] = {}
        for source, key in self.source_keys.items():
            for b, (u, p) in enumerate(self.encoders[key](inputs[source]), start=1):
                out[f"{key}.u{b}"], out[f"{key}.p{b}"] = u, p
        return out

    def heads(self, representation: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each task's attention over its source's blocks, pooled, then its head."""
        features = {}
        for t, attention in zip(self.tasks, self.attention, strict=True):
            key = self.source_keys[self.task_source[t.name]]
            maps = [(representation[f"{key}.u{b}"], representation[f"{key}.p{b}"])
                    for b in range(1, len(self.channels) + 1)]
            features[t.name] = self.readout(attention(maps))
        return self.task_heads(features)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{task: output}`` on the rows of each task's source."""
        return self.heads(self.representation(inputs))

    def shared_parameters(self) -> list[nn.Parameter]:
        """The shared conv encoders (and shared heads)."""
        return [*self.encoders.parameters(), *self.task_heads.shared_parameters()]

    def task_parameters(self) -> dict[str, list[nn.Parameter]]:
        """Each task's attention modules and its own head."""
        own = self.task_heads.task_parameters()
        return {t.name: [*a.parameters(), *own[t.name]] for t, a in zip(self.tasks, self.attention, strict=True)}
