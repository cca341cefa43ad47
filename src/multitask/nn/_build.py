"""Rebuild an architecture from its JSON description (``model_config()``), through the registry."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from multitask.errors import ConfigError
from multitask.registry import MODELS


def build_model(config: dict[str, Any]) -> nn.Module:
    """The architecture named ``config["model"]``, built by its ``from_config`` (fresh weights).

    The other entries must be the names of the architecture's constructor arguments (all the required
    ones, no others); they are checked before anything is built, so that an error raised while building is
    not mistaken for a bad description.
    """
    if "model" not in config:
        raise ConfigError(
            "model description has no 'model' entry; expected e.g. {'model': 'hard-sharing', ...}"
        )
    name = str(config["model"])
    cls = MODELS.get(name)
    options = {k: v for k, v in config.items() if k != "model"}
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as e:
        raise ConfigError(f"model description for {name!r} is incomplete or invalid: {e}") from None
    model: nn.Module = cls.from_config(config)
    return model
