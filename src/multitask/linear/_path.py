"""Regularization paths: one estimator refitted from the strongest to the weakest penalty with warm starts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import clone

from multitask.errors import ConfigError

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Path:
    """``coefs[i]`` (n_tasks, n_features) and ``intercepts[i]`` fitted with ``param = values[i]``."""

    param: str
    values: Array
    coefs: Array
    intercepts: Array
    n_iter: NDArray[np.int64]


def _path_param(estimator: Any, param: str | None) -> str:
    names = tuple(getattr(estimator, "regularization_params", ()))
    if param is None:
        if not names:
            raise ConfigError(f"param: {type(estimator).__name__} has no regularization parameter to follow")
        return names[0]
    if param not in estimator.get_params():
        raise ConfigError(f"param: {type(estimator).__name__} has no parameter {param!r}")
    return param


def warm_fits(estimator: Any, param: str, values: Sequence[float], X: Any, y: Any, tasks: Any = None
              ) -> Iterator[tuple[float, Any]]:
    """Yield ``(value, fitted estimator)`` for ``values`` in decreasing order, each fit warm-started."""
    model = clone(estimator).set_params(warm_start=True)
    for value in sorted(values, reverse=True):
        model.set_params(**{param: value})
        yield value, model.fit(X, y, tasks)


def regularization_path(estimator: Any, X: Any, y: Any, tasks: Any = None, *, param: str | None = None,
                        values: Sequence[float] | None = None) -> Path:
    """Fit ``estimator`` along ``param`` (default: its first regularization parameter) with warm starts.

    ``values`` defaults to the estimator's default grid for ``param`` on this data (from the limit of its
    penalty down to effectively none); they are fitted from the largest (strongest regularization) to the
    smallest, each starting from the previous solution.
    """
    name = _path_param(estimator, param)
    if values is None:
        values = estimator.default_param_grid(X, y, tasks).get(name)
        if not values:
            raise ConfigError(f"values: no default grid for {name!r}; pass values")
    coefs, intercepts, n_iter, done = [], [], [], []
    for value, model in warm_fits(estimator, name, values, X, y, tasks):
        done.append(value)
        coefs.append(model.coef_.copy())
        intercepts.append(model.intercept_.copy())
        n_iter.append(model.n_iter_)
    return Path(name, np.asarray(done), np.asarray(coefs), np.asarray(intercepts), np.asarray(n_iter))
