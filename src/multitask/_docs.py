"""Generate ``docs/registry.md`` from :mod:`multitask.registry`: ``python -m multitask._docs docs/registry.md``.

A test checks that the committed file matches, so the documented names cannot drift from the real ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

from multitask.registry import ALL


def registry_markdown() -> str:
    lines = [
        "# Everything selectable by name",
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
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/registry.md")
    target.write_text(registry_markdown())
