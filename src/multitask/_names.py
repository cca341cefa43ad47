"""User strings (task names, long-form task ids) never become paths: each task gets a folder name by position.

``task_dirs(["income", "../x", "a/b"]) == {"income": "000-income", "../x": "001-x", "a/b": "002-a-b"}``: the
index makes names unique whatever the slug, the slug keeps them readable, and the length is bounded. The
mapping is saved in ``run.json``, so it is reversible.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: longest readable part of a folder name
SLUG_LENGTH = 40


def slug(name: str) -> str:
    """ASCII letters, digits, ``_`` and ``-`` of ``name`` (other runs become one ``-``), at most 40 characters."""
    text = re.sub(r"[^A-Za-z0-9_]+", "-", name).strip("-")[:SLUG_LENGTH].strip("-")
    return text or "task"


def task_dirs(names: Sequence[str]) -> dict[str, str]:
    """``{name: "NNN-slug"}``: one folder name per task, unique and safe on every file system."""
    width = max(3, len(str(max(len(names) - 1, 0))))
    return {name: f"{i:0{width}d}-{slug(name)}" for i, name in enumerate(names)}
