"""Learned embeddings of categorical feature columns, in front of a tabular encoder's first dense layer.

A categorical column reaches the model as its one-hot block (``levels`` columns starting at ``position``,
the preprocessing's layout; a level not seen in training is an all-zero block). The encoder reads the code
``c = Σ_j j · x_{position + j − 1}`` of each block (``1..levels`` for a level seen in training, ``0`` for an
all-zero block), looks up its row ``E[c]`` of a learned ``(levels + 1) × size`` table, whose row 0 is the
zero vector and never trained (the unknown level adds nothing, as its all-zero one-hot block does), and feeds
``[x_numeric; E_1[c_1]; …; E_k[c_k]]`` to ``Linear → norm → activation → dropout``.

Entity embeddings of categorical variables: Guo & Berkhahn, "Entity Embeddings of Categorical Variables",
arXiv:1604.06737, 2016. Default size: ``min(600, round(1.6 · n^0.56))`` with ``n = levels + 1`` (the levels
and the unknown code), the rule of thumb of fastai's tabular models (Howard & Gugger, "Fastai: A Layered API
for Deep Learning", Information 11(2), 2020).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from multitask.errors import ConfigError
from multitask.nn._mlp import dense

#: the largest embedding size accepted (the rule's own cap)
MAX_EMBEDDING = 600
#: embeddings start as N(0, 0.01²) truncated at ±2σ (fastai's initialization), small next to the standardized
#: numeric features, so that the optimizer's first steps already move them
INIT_STD = 0.01


def embedding_size(levels: int) -> int:
    """``min(600, round(1.6 · (levels + 1)^0.56))``: fastai's rule of thumb, counting the unknown code."""
    return min(MAX_EMBEDDING, round(1.6 * (levels + 1) ** 0.56))


def _whole(value: object, low: int, high: int | None, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"{what} must be a whole number {bound}, got {value!r}")
    return value


@dataclass(frozen=True)
class Category:
    """One categorical column of a tabular input: its one-hot block ``[position, position + levels)`` and
    the size of its embedding (default :func:`embedding_size` of ``levels``)."""

    column: str
    position: int
    levels: int
    size: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.column, str) or not self.column:
            raise ConfigError(f"a categorical column needs a name, got {self.column!r}")
        _whole(self.position, 0, None, f"categorical column {self.column!r}: position")
        _whole(self.levels, 1, None, f"categorical column {self.column!r}: levels")
        if self.size is None:
            object.__setattr__(self, "size", embedding_size(self.levels))
        _whole(self.size, 1, MAX_EMBEDDING, f"embedding_sizes: column {self.column!r}")

    @property
    def width(self) -> int:
        """The embedding's size (resolved)."""
        assert self.size is not None
        return self.size

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "position": self.position, "levels": self.levels, "size": self.size}

    @classmethod
    def from_dict(cls, d: Any) -> Category:
        if isinstance(d, Category):
            return d
        if not isinstance(d, dict) or not {"column", "position", "levels"} <= set(d):
            raise ConfigError(f"a categorical column is {{'column', 'position', 'levels', 'size'}}, got {d!r}")
        return cls(d["column"], d["position"], d["levels"], d.get("size"))


def categories_of(
    columns: Sequence[tuple[str, int, int]], embedding_sizes: Mapping[str, int] | None = None
) -> tuple[Category, ...]:
    """:class:`Category` entries of ``(column, position, levels)``, sizes from ``embedding_sizes`` where given
    (ConfigError naming a column of ``embedding_sizes`` that is not categorical)."""
    if not isinstance(embedding_sizes, Mapping | None):
        raise ConfigError(f"embedding_sizes must map column names to sizes, got {embedding_sizes!r}")
    sizes = dict(embedding_sizes or {})
    known = {name for name, _, _ in columns}
    unknown = [c for c in sizes if c not in known]
    if unknown:
        listed = ", ".join(sorted(known)[:10]) or "none"
        raise ConfigError(f"embedding_sizes: {unknown[0]!r} is not a categorical column (categorical: {listed})")
    return tuple(Category(name, position, levels, sizes.get(name)) for name, position, levels in columns)


class EmbeddingEncoder(nn.Module):
    """``(n, dim) -> (n, width)``: ``dense([x_numeric; E_1[c_1]; …; E_k[c_k]])`` (see the module docstring)."""

    numeric: torch.Tensor
    code: torch.Tensor
    levels: torch.Tensor

    def __init__(
        self, dim: int, categories: Sequence[Category], width: int, activation: str, norm: str, dropout: float
    ) -> None:
        super().__init__()
        in_block = torch.zeros(dim, dtype=torch.bool)
        code = torch.zeros(dim, len(categories))
        for b, c in enumerate(categories):
            in_block[c.position : c.position + c.levels] = True
            code[c.position : c.position + c.levels, b] = torch.arange(1, c.levels + 1, dtype=torch.float32)
        # not saved with the weights: rebuilt from the description
        self.register_buffer("numeric", torch.nonzero(~in_block).flatten(), persistent=False)
        self.register_buffer("code", code, persistent=False)
        self.register_buffer("levels", torch.tensor([c.levels for c in categories]), persistent=False)
        self.embeddings = nn.ModuleList(nn.Embedding(c.levels + 1, c.width, padding_idx=0) for c in categories)
        for emb in self.embeddings:
            weight: torch.Tensor = emb.weight  # type: ignore[assignment]
            with torch.no_grad():
                nn.init.trunc_normal_(weight, std=INIT_STD, a=-2 * INIT_STD, b=2 * INIT_STD)
                weight[0].zero_()
        self.dense = dense(int(self.numeric.numel()) + sum(c.width for c in categories), width, activation, norm, dropout)

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, k)`` long codes of the one-hot blocks: ``1..levels``, 0 for an all-zero block."""
        codes = torch.round(x.float() @ self.code).long()
        return torch.minimum(codes.clamp(min=0), self.levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        codes = self.codes(x)
        parts = [x.index_select(1, self.numeric)]
        parts += [emb(codes[:, b]).to(x.dtype) for b, emb in enumerate(self.embeddings)]
        return self.dense(torch.cat(parts, dim=1))
