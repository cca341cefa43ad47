"""The examples in docs/linear.md run, and its table of default grids is the classes' own."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from multitask.registry import LINEAR

DOC = Path(__file__).parents[2] / "docs" / "linear.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S) if DOC.exists() else []


@pytest.mark.skipif(not DOC.exists(), reason="docs/linear.md is not in this checkout")
@pytest.mark.parametrize("code", BLOCKS)
def test_documented_example_runs(code: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(code, str(DOC), "exec"), {})
    assert capsys.readouterr().out


def test_the_doc_has_examples() -> None:
    assert not DOC.exists() or BLOCKS


def documented_grids() -> dict[str, dict[str, tuple[float, float, int] | list[float]]]:
    """``{name: {param: (low, high, n) or [values]}}`` from the table under "### Search spaces"."""
    section = DOC.read_text().split("### Search spaces", 1)[1].split("###", 1)[0]
    grids: dict[str, dict[str, tuple[float, float, int] | list[float]]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[0].startswith("`"):
            continue
        params: dict[str, tuple[float, float, int] | list[float]] = {}
        for param, spec in re.findall(r"`(\w+)` ([^`]*?)(?:,\s*(?=`)|$)", cells[1]):
            spec = re.sub(r"\(scale 1\)", "", spec).strip()
            if "…" in spec:
                low, rest = spec.split("…")
                high, count = re.fullmatch(r"\s*(\S+) \((\d+).*\)", rest).groups()  # type: ignore[union-attr]
                params[param] = (float(low), float(high), int(count))
            else:
                params[param] = [float(v) for v in spec.split(",")]
        for name in re.findall(r"`([\w-]+)`", cells[0]):
            grids[name] = params
    return grids


@pytest.mark.skipif(not DOC.exists(), reason="docs/linear.md is not in this checkout")
def test_the_documented_grids_are_the_classes_grids() -> None:
    documented = documented_grids()
    assert set(documented) == set(LINEAR)
    for name, params in documented.items():
        grid = LINEAR.get(name).param_grid
        assert set(params) == set(grid), name
        for param, spec in params.items():
            if isinstance(spec, tuple):
                low, high, count = spec
                np.testing.assert_allclose([min(grid[param]), max(grid[param]), len(grid[param])], [low, high, count])
            else:
                np.testing.assert_allclose(grid[param], spec)
