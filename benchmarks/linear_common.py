"""Shared by the linear benchmarks: where the data are, and writing a subsection of docs/benchmarks.md."""

from __future__ import annotations

import platform
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
DOC = REPO / "docs" / "benchmarks.md"
SECTION = "## Linear MTL"


def machine() -> str:
    import os

    import numpy as np
    import sklearn

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), load average {load:.1f} at the "
            f"end of the run, Python {platform.python_version()}, NumPy {np.__version__}, "
            f"scikit-learn {sklearn.__version__}")


def write_subsection(title: str, body: str) -> None:
    """Replace (or add) ``### title`` inside the ``## Linear MTL`` section of docs/benchmarks.md."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    sub = f"### {title}\n\n{body.strip()}\n"
    match = re.search(rf"^{re.escape(SECTION)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    if match is None:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{sub}"
    else:
        section = match.group(1)
        pattern = rf"^### {re.escape(title)}\n.*?(?=^### |\Z)"
        if re.search(pattern, section, flags=re.S | re.M):
            section = re.sub(pattern, lambda _: sub + "\n", section, flags=re.S | re.M)
        else:
            section = section.rstrip("\n") + "\n\n" + sub + "\n"
        text = text[: match.start(1)] + "\n" + section.strip("\n") + "\n\n" + text[match.end(1):]
    DOC.write_text(text.rstrip("\n") + "\n")
