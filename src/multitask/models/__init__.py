"""Model families behind one interface (:class:`Model`): the only place that reads ``FAMILY:NAME``.

A model name is a deep architecture (``hard-sharing``), ``linear:NAME`` or ``gbdt:NAME``. ``make(cfg)``
builds the configured model; ``family(name)`` is its class; ``names()`` lists every model a user can choose.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multitask.errors import ConfigError
from multitask.models._base import Model, Param, Predictions
from multitask.registry import FAMILIES, MEMBERS, Registry

if TYPE_CHECKING:
    from multitask.config import RunConfig
    from multitask.data.preprocess import Preprocessor
    from multitask.tasks import Task

__all__ = ["Model", "Param", "Predictions", "check_name", "family", "family_name", "load", "make", "member", "names"]

#: the family of a model name without a prefix
DEFAULT_FAMILY = "deep"


def _split(name: str) -> tuple[str, str]:
    prefix, sep, rest = name.partition(":")
    return (prefix, rest) if sep else (DEFAULT_FAMILY, name)


def _members(family_name: str) -> Registry:
    return MEMBERS[family_name]


def family_name(name: str) -> str:
    """``"linear:l21"`` → ``"linear"``; ``"hard-sharing"`` → ``"deep"``."""
    return _split(name)[0]


def check_name(name: str) -> str:
    """``name`` if it names a registered model, else ConfigError listing the choices."""
    prefix, member = _split(name)
    if prefix not in FAMILIES:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(names())}")
    if member not in _members(prefix):
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(names())}")
    return name


def family(name: str) -> type[Model]:
    """The class of the family that ``name`` belongs to."""
    check_name(name)
    cls: type[Model] = FAMILIES.get(family_name(name))
    return cls


def member(name: str) -> Any:
    """The registered object behind ``name``: an architecture class, or an estimator class."""
    prefix, rest = _split(check_name(name))
    return _members(prefix).get(rest)


def make(cfg: RunConfig) -> Model:
    """The model that ``cfg.model`` names, with the configuration's options (nothing fitted yet); with
    ``cfg.groups``, one such model per group of tasks (:class:`~multitask.models._grouped.Grouped`)."""
    if cfg.groups is not None:
        from multitask.models._grouped import grouped_class

        return grouped_class(cfg.model).from_config(cfg)
    return family(cfg.model).from_config(cfg)


def load(name: str, run_dir: Path, tasks: Sequence[Task], pre: Preprocessor) -> Model:
    """The model of ``name`` saved in ``run_dir``: one per group where the run was trained by groups."""
    from multitask.models._grouped import GROUPS_FILE, grouped_class

    if (run_dir / GROUPS_FILE).exists():
        return grouped_class(name).load(name, run_dir, tasks, pre)
    return family(name).load(name, run_dir, tasks, pre)


def names() -> list[str]:
    """Every model name: deep architectures as they are, the other families as ``FAMILY:NAME``."""
    out: list[str] = []
    for f in FAMILIES.names():
        members = _members(f).names()
        out += members if f == DEFAULT_FAMILY else [f"{f}:{m}" for m in members]
    return out
