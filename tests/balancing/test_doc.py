"""The Python examples of docs/balancing.md run as written, and its table lists every registered balancer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from multitask.registry import BALANCERS

DOC = Path(__file__).parents[2] / "docs" / "balancing.md"


def _examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_doc_has_examples_and_every_method() -> None:
    assert len(_examples()) >= 2
    text = DOC.read_text()
    for name in BALANCERS:
        assert f"| `{name}` |" in text and f"**{name}**" in text, name


@pytest.mark.parametrize("index", range(len(_examples())))
def test_example_runs(index: int) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        namespace: dict[str, object] = {}
        exec(compile(_examples()[index], f"{DOC}:example{index}", "exec"), namespace)
    finally:
        torch.set_num_threads(threads)
    assert namespace["balancer"].weights_ is not None  # type: ignore[attr-defined]
