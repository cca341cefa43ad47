"""Generate ``docs/registry.md`` from :mod:`multitask.registry`: ``python -m multitask._docs docs/registry.md``.

A test checks that the committed file matches, so the documented names cannot drift from the real ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import BaseModel

from multitask.registry import ALL


def _rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str]]:
    rows = []
    for name, field in model.model_fields.items():
        default = "[]" if field.default_factory is list else "{}" if field.default_factory is dict else repr(field.default)
        if name == "train":
            default = "(see training options)"
        rows.append((prefix + name, default, field.description or ""))
    return rows


def option_rows() -> dict[str, list[tuple[str, str, str]]]:
    """The run options (config file keys; flags of the same names) and the training options, with defaults."""
    from multitask.config import RunConfig
    from multitask.train.config import TrainConfig

    return {"run options": _rows(RunConfig), "training options (under train:)": _rows(TrainConfig, "train.")}


def registry_markdown() -> str:
    lines = [
        "# Everything selectable by name, and every option",
        "",
        "Generated from `multitask.registry` by `python -m multitask._docs docs/registry.md`; do not edit by hand.",
        "`multitask list` prints the same tables.",
    ]
    for title, registry in ALL.items():
        lines += ["", f"## {title}", "", "| name | what it is | object |", "|---|---|---|"]
        for name in registry.names():
            entry = registry.entry(name)
            summary = entry.summary.replace("|", "\\|")
            lines.append(f"| `{name}` | {summary} | `{entry.target}` |")
    for title, rows in option_rows().items():
        lines += ["", f"## {title}", "", "| option | default | what it is |", "|---|---|---|"]
        for name, default, text in rows:
            lines.append(f"| `{name}` | `{default}` | {text.replace('|', chr(92) + '|')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/registry.md")
    target.write_text(registry_markdown())
