"""The Python examples of docs/training.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

DOC = Path(__file__).parents[2] / "docs" / "training.md"


def _examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_doc_has_an_example() -> None:
    assert _examples()


@pytest.mark.parametrize("index", range(len(_examples())))
def test_example_runs(index: int) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        namespace: dict[str, object] = {}
        exec(compile(_examples()[index], f"{DOC}:example{index}", "exec"), namespace)
    finally:
        torch.set_num_threads(threads)
    probabilities = namespace.get("probabilities")
    if probabilities is not None:
        assert isinstance(probabilities, torch.Tensor) and ((probabilities >= 0) & (probabilities <= 1)).all()
