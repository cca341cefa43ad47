"""The README's Python examples run (on small generated files standing in for the user's)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def test_readme_has_python_examples() -> None:
    assert len(python_blocks()) >= 2


def test_readme_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 4))
    frame = pd.DataFrame(x, columns=["age", "bmi", "glucose", "bp"])
    frame["diabetes"] = (x[:, 2] + 0.5 * x[:, 1] > 0).astype(int)
    frame["los"] = 3 + x[:, 0] + rng.standard_normal(300) * 0.1
    frame.to_csv(tmp_path / "patients.csv", index=False)
    monkeypatch.chdir(tmp_path)
    X = rng.standard_normal((100, 5))
    Y = X @ rng.standard_normal((5, 3))
    Y[::4, 1] = np.nan  # a task without labels on some rows
    namespace = {"X": X, "Y": Y}
    for block in python_blocks():
        exec(compile(block, "README.md", "exec"), namespace)
    assert (tmp_path / "runs" / "p" / "metrics.json").is_file()
    assert namespace["model"].coef_.shape == (3, 5)
