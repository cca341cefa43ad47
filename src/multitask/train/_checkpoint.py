"""Checkpoints and saved models: written atomically, loaded with ``torch.load(weights_only=True)``.

A run directory holds

* ``checkpoint.pt``: the state after the last completed epoch (see :func:`save_checkpoint`), to resume;
* ``model.pt`` and ``model.json``: the best weights and the architecture's description, to predict;
* ``log.jsonl``: one JSON line per epoch.

Each ``.pt`` file is a dict with a ``format`` marker and a ``version``; anything else (another program's
file, a truncated file) raises :class:`~multitask.errors.CheckpointError` naming the file. Version 2 keys
the encoders and heads of a hard-sharing model by position; version 1 files (keyed by name) still load.
The JSON files are strict JSON: no ``NaN`` or ``Infinity``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from multitask.errors import CheckpointError, ConfigError

CHECKPOINT_FILE = "checkpoint.pt"
MODEL_FILE = "model.pt"
MODEL_CONFIG_FILE = "model.json"
LOG_FILE = "log.jsonl"

CHECKPOINT_FORMAT = "multitask-checkpoint"
MODEL_FORMAT = "multitask-model"
VERSION = 2
#: versions this library reads (see :func:`upgrade_state_dict`)
READABLE_VERSIONS = (1, 2)


def atomic_write(path: Path, write: Any) -> None:
    """Write ``path`` by ``write(file)`` into a temporary file beside it, fsync, then ``os.replace``.

    A failure at any point leaves an existing ``path`` untouched and no temporary file behind.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a run directory is readable like any output
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(data))


def _save(path: Path, payload: dict[str, Any]) -> None:
    atomic_write(path, lambda f: torch.save(payload, f))


def _load(path: Path, expected_format: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling, zip and tensor errors all mean "not a readable file of ours"
        reason = type(e).__name__  # torch's own message is long and advises an unsafe load
        raise CheckpointError(
            f"{path}: cannot be read as a {expected_format} file (corrupted or foreign: {reason})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        raise CheckpointError(f"{path}: not a {expected_format} file (no '{expected_format}' format marker)")
    if payload.get("version") not in READABLE_VERSIONS:
        readable = ", ".join(str(v) for v in READABLE_VERSIONS)
        raise CheckpointError(
            f"{path}: {expected_format} version {payload.get('version')!r}; this library reads versions {readable}"
        )
    return payload


def upgrade_state_dict(model: nn.Module, state: dict[str, Any], version: int) -> dict[str, Any]:
    """A state dict saved by file ``version`` with the keys ``model`` has today.

    Version 1 keyed a hard-sharing model's encoders and heads by name (the only architecture then).
    """
    from multitask.nn import HardSharing

    if version == 1 and isinstance(model, HardSharing):
        return model.state_dict_from_v1(state)
    return state


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write the training state atomically. ``state`` holds only tensors and plain containers.

    Keys written by the trainer: ``epoch`` (completed epochs), ``model``, ``optimizer``, ``scheduler`` and
    ``balancer`` state dicts, ``best_score``, ``best_epoch``, ``best_model`` (the best weights so far),
    ``bad_epochs`` (the early-stopping counter), ``history`` (the per-epoch records) and ``config``
    (the TrainConfig as a dict).
    """
    _save(path, {"format": CHECKPOINT_FORMAT, "version": VERSION, **state})


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The state saved by :func:`save_checkpoint`; CheckpointError if the file is not a readable checkpoint."""
    return _load(path, CHECKPOINT_FORMAT)


def save_model(model: nn.Module, run_dir: Path) -> None:
    """Write ``run_dir/model.pt`` (weights) and ``run_dir/model.json`` (``model.model_config()``)."""
    run_dir = Path(run_dir)
    config = model.model_config()  # type: ignore[operator]
    text = json.dumps(config, indent=2, allow_nan=False) + "\n"
    atomic_write_bytes(run_dir / MODEL_CONFIG_FILE, text.encode())
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    _save(run_dir / MODEL_FILE, {"format": MODEL_FORMAT, "version": VERSION, "state": state})


def load_model(run_dir: Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """The model saved by :func:`save_model` in ``run_dir``, rebuilt from ``model.json``, in eval mode."""
    from multitask.nn import build_model

    run_dir = Path(run_dir)
    config_path = run_dir / MODEL_CONFIG_FILE
    try:
        config = json.loads(config_path.read_text(), parse_constant=_not_json)
    except FileNotFoundError:
        raise CheckpointError(f"{config_path}: no such file (no trained model in {run_dir})") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{config_path}: not a model description: {e}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path}: not a model description (expected a JSON object)")
    try:
        model = build_model(config)
    except ConfigError as e:
        raise CheckpointError(f"{config_path}: {e}") from None
    payload = _load(run_dir / MODEL_FILE, MODEL_FORMAT)
    try:
        model.load_state_dict(upgrade_state_dict(model, payload["state"], payload["version"]))
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"{run_dir / MODEL_FILE}: weights do not fit {config_path}: {e}") from None
    return model.to(map_location).eval()
