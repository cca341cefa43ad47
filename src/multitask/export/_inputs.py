"""The graph's inputs: one per raw feature column of the run's one table (no ONNX needed to read them).

A numeric column is a ``double`` input, a categorical one a ``string`` input, each of shape ``[N]``;
:func:`feeds` builds them from a table with the preprocessing's own conversions and errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from multitask.data.preprocess import Preprocessor, SourceCodec, _as_str, _numeric
from multitask.errors import ConfigError, DataError


@dataclass(frozen=True)
class Column:
    """One graph input: a raw feature column, ``numeric`` (double) or ``categorical`` (string)."""

    name: str
    kind: str


def table(pre: Preprocessor) -> tuple[str, SourceCodec]:
    """The one tabular source of a run (ConfigError for per-task data sets or images, which export refuses)."""
    if len(pre.sources) != 1:
        raise ConfigError(
            f"export: this run reads one data set per task ({', '.join(list(pre.sources)[:5])}); ONNX export takes "
            "runs whose tasks share one table of features"
        )
    name, codec = next(iter(pre.sources.items()))
    if codec.image_shape is not None:
        raise ConfigError(f"export: source {name!r} holds images; ONNX export takes tabular features only")
    return name, codec


def columns(pre: Preprocessor) -> list[Column]:
    """The graph's inputs, in the order of the run's feature columns."""
    return [Column(c.name, c.kind) for c in table(pre)[1].columns]


def feeds(pre: Preprocessor, frame: pd.DataFrame, where: str = "the data") -> dict[str, np.ndarray]:
    """The graph's inputs for the rows of ``frame``: numeric columns as float64, categorical ones as the
    strings the preprocessing compares (a missing value as ``"(missing)"``); errors as the preprocessing's."""
    out: dict[str, np.ndarray] = {}
    for col in table(pre)[1].columns:
        if col.name not in frame.columns:
            raise DataError(f"{where}: no column {col.name!r}, which the model was trained with")
        values = frame[col.name]
        out[col.name] = _numeric(values, where, col.name) if col.kind == "numeric" else _as_str(values)
    return out
