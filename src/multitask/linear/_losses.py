"""Per-row losses of a linear score ``z = x·w + b``: value and derivative in ``z``, summed by the backend.

=================  ==========  ================================  =================================
name               task kind   loss of one row (target ``y``)    derivative in ``z``
=================  ==========  ================================  =================================
``squared``        regression  ``(z - y)^2 / 2``                 ``z - y``
``logistic``       binary      ``log(1 + exp(z)) - y z``         ``sigmoid(z) - y``
``squared_hinge``  binary      ``max(0, 1 - s z)^2``, s = 2y-1   ``-2 s max(0, 1 - s z)``
=================  ==========  ================================  =================================

Binary targets are 0/1 (a logistic task's targets may be smoothed into (0, 1), see
:func:`~multitask.linear._data.encode_binary`). A task's loss is the mean of these over its labelled rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit

from multitask.errors import ConfigError

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Loss:
    """A smooth per-row loss: ``values(z, y)`` and ``derivative(z, y)`` elementwise; ``kind`` of task it fits."""

    name: str
    kind: str  # "regression" or "binary"

    def values(self, z: Array, y: Array) -> Array:
        if self.name == "squared":
            return 0.5 * (z - y) ** 2
        if self.name == "logistic":
            return np.logaddexp(0.0, z) - y * z
        margin = np.maximum(0.0, 1.0 - (2.0 * y - 1.0) * z)
        return margin**2

    def derivative(self, z: Array, y: Array) -> Array:
        if self.name == "squared":
            return z - y
        if self.name == "logistic":
            return expit(z) - y
        sign = 2.0 * y - 1.0
        return -2.0 * sign * np.maximum(0.0, 1.0 - sign * z)

    def curvature(self, z: Array, y: Array) -> Array:
        """Second derivative in ``z`` (for the squared hinge, its larger one-sided value at the kink)."""
        if self.name == "squared":
            return np.ones_like(z)
        if self.name == "logistic":
            p = expit(z)
            return p * (1.0 - p)
        return np.where(1.0 - (2.0 * y - 1.0) * z >= 0.0, 2.0, 0.0)

    @property
    def curvature_bound(self) -> float:
        """The largest second derivative in ``z`` over all ``z`` and targets: 1, 1/4 (logistic), 2 (squared hinge)."""
        return {"squared": 1.0, "logistic": 0.25}.get(self.name, 2.0)

    def best_constant(self, y: Array) -> float:
        """``argmin_c mean(loss(c, y))``: the mean, its log-odds (logistic) or ``2 mean - 1`` (squared hinge)."""
        p = float(np.mean(y))
        if self.name == "squared":
            return p
        if self.name == "logistic":
            p = min(max(p, 1e-12), 1.0 - 1e-12)
            return float(np.log(p / (1.0 - p)))
        return min(max(2.0 * p - 1.0, -1.0), 1.0)

    @property
    def is_classification(self) -> bool:
        return self.kind == "binary"


LOSSES: dict[str, Loss] = {
    "squared": Loss("squared", "regression"),
    "logistic": Loss("logistic", "binary"),
    "squared_hinge": Loss("squared_hinge", "binary"),
}


def get_loss(name: object) -> Loss:
    """The loss called ``name``; a :class:`~multitask.errors.ConfigError` naming ``loss`` otherwise."""
    if isinstance(name, Loss):
        return name
    if not isinstance(name, str) or name not in LOSSES:
        raise ConfigError(f"loss: unknown loss {name!r}; choose one of: {', '.join(LOSSES)}")
    return LOSSES[name]
