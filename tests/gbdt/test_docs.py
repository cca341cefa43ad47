"""The examples in docs/gbdt.md run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).parents[2] / "docs" / "gbdt.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S) if DOC.exists() else []


@pytest.mark.skipif(not DOC.exists(), reason="docs/gbdt.md is not in this checkout")
@pytest.mark.parametrize("code", BLOCKS)
def test_documented_example_runs(code: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(code, str(DOC), "exec"), {})
    assert capsys.readouterr().out


def test_the_doc_has_examples() -> None:
    assert not DOC.exists() or BLOCKS
