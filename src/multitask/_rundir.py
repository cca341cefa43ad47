"""The run directory's life: what ``--out`` may be, the incomplete marker, strict JSON and atomic writes.

A run directory is only ever complete or marked incomplete: ``INCOMPLETE`` is written before anything else
and removed after ``metrics.json``. ``--out`` takes a new or empty folder, or an existing run with
``--resume`` (continue it) or ``--overwrite`` (remove it whole, then train); a folder with anything else in it
is refused, so that nothing a user had is lost.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from multitask.errors import CheckpointError, ConfigError
from multitask.train._checkpoint import atomic_write

RUN_FORMAT = "multitask-run/1"
RUN_FILE = "run.json"
INCOMPLETE = "INCOMPLETE"


def strict_json(value: Any, indent: int | None = 1) -> str:
    """JSON that a strict parser reads: NaN and infinities become ``null`` (callers say why elsewhere)."""
    return json.dumps(_finite(value), indent=indent, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _finite(value.item())
    return value


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader sees the old file or the new one, never a part)."""
    atomic_write(path, lambda f: f.write(text.encode()))


def _written_by_us(path: Path) -> bool:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == RUN_FORMAT


def is_run(path: Path) -> bool:
    """Whether ``path`` holds a run written by multitask (complete, or marked incomplete by multitask)."""
    return _written_by_us(path / RUN_FILE) or _written_by_us(path / INCOMPLETE)


def prepare_out(out: str | None, *, resume: bool, overwrite: bool, inputs: Sequence[str] = ()) -> Path:
    """The run directory ``--out`` names, checked (and emptied with ``overwrite``) before anything is written.

    ``inputs`` are the files the run reads: ``--overwrite`` never removes a run that holds one of them.
    """
    if out is None:
        raise ConfigError("--out RUN_DIR is required")
    if not str(out).strip():
        raise ConfigError("--out: the run directory's name is empty")
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other: continue the run, or replace it")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path}: is a file, not a folder")
    for parent in path.resolve().parents:
        if is_run(parent):
            raise ConfigError(f"--out {path}: is inside the run {parent}; give a folder outside any run")
    if not path.exists() or not any(path.iterdir()):
        return path
    if not is_run(path):
        raise ConfigError(
            f"--out {path}: the folder has other files in it and is not a multitask run; "
            "give a new or empty folder (nothing of yours is overwritten)"
        )
    if resume:
        return path
    if not overwrite:
        raise ConfigError(
            f"--out {path}: a run is already there; --resume continues it, --overwrite replaces it"
        )
    inside = [p for p in inputs if path.resolve() in Path(p).resolve().parents]
    if inside:
        raise ConfigError(f"--out {path} --overwrite would remove {inside[0]}, which this run reads; move it first")
    shutil.rmtree(path)
    return path


def mark_incomplete(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    write_text(path / INCOMPLETE, json.dumps({"format": RUN_FORMAT, "state": "training started; this run is not "
                                              "complete until this file is gone"}) + "\n")


def mark_complete(path: Path) -> None:
    (path / INCOMPLETE).unlink(missing_ok=True)


def check_complete(path: Path) -> None:
    """CheckpointError unless ``path`` is a finished run."""
    if (path / INCOMPLETE).exists():
        raise CheckpointError(f"{path}: the run did not finish (see {INCOMPLETE}); --resume it or train again")


def check_output(output: str, inputs: list[str], run_dir: Path) -> Path:
    """``--output`` of predict: never an input file, never inside a run directory, never a folder."""
    if not str(output).strip():
        raise ConfigError("--output: the file name is empty")
    out = Path(output)
    if out.is_dir() or str(output).endswith(("/", os.sep)) or os.path.basename(output) in (".", ".."):
        raise ConfigError(f"--output {output}: is a folder; give a file name")
    if out.parent.exists() and not out.parent.is_dir():
        raise ConfigError(f"--output {output}: {out.parent} is a file, not a folder")
    resolved = out.resolve()
    for p in inputs:
        if Path(p).exists() and Path(p).resolve() == resolved:
            raise ConfigError(f"--output {out}: is the input file {p}; write predictions to a new file")
    for parent in [resolved.parent, *resolved.parent.parents]:
        if parent == run_dir.resolve() or is_run(parent):
            raise ConfigError(f"--output {out}: is inside the run directory {parent}; write predictions elsewhere")
    if not out.parent.exists():
        raise ConfigError(f"--output {out}: folder {out.parent} does not exist")
    return out


def atomic_replace(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` and move the result over ``path`` in one step."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
