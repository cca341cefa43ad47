"""Rebuild an architecture from its JSON description (``model_config()``), through the registry."""

from __future__ import annotations

from typing import Any

from torch import nn

from multitask.errors import ConfigError
from multitask.registry import MODELS


def build_model(config: dict[str, Any]) -> nn.Module:
    """The architecture named ``config["model"]``, built by its ``from_config`` (fresh weights)."""
    if "model" not in config:
        raise ConfigError(
            "model description has no 'model' entry; expected e.g. {'model': 'hard-sharing', ...}"
        )
    cls = MODELS.get(str(config["model"]))
    try:
        return cls.from_config(config)
    except (KeyError, TypeError) as e:
        raise ConfigError(
            f"model description for {config['model']!r} is incomplete or invalid: {e}"
        ) from None
