"""``multitask group``: groups from an affinity CSV, printed and written as JSON; bad files end in exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from multitask.cli import main


def _write(path: Path, names: list[str], matrix: np.ndarray) -> Path:
    pd.DataFrame(matrix, index=names, columns=names).to_csv(path)
    return path


def test_group_recovers_two_blocks_and_writes_json(tmp_path: Path) -> None:
    names = ["a", "b", "c", "d"]
    matrix = np.array([[1, 0.9, -0.5, -0.4], [0.8, 1, -0.3, -0.6], [-0.5, -0.2, 1, 0.7], [-0.4, -0.5, 0.9, 1]])
    csv = _write(tmp_path / "affinity.csv", names, matrix)
    assert main(["group", "--affinity", str(csv), "--output", str(tmp_path / "groups.json")]) == 0
    found = json.loads((tmp_path / "groups.json").read_text())
    assert sorted(sorted(g) for g in found["groups"]) == [["a", "b"], ["c", "d"]]
    assert found["method"] == "exact"
    assert main(["group", "--affinity", str(csv), "--groups", "1", "--output", str(tmp_path / "one.json")]) == 0
    assert json.loads((tmp_path / "one.json").read_text())["groups"] == [names]


def test_a_bad_affinity_file_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["group", "--affinity", str(tmp_path / "missing.csv")]) == 2
    bad = tmp_path / "bad.csv"
    pd.DataFrame([[1, 2]], index=["a"], columns=["a", "b"]).to_csv(bad)
    assert main(["group", "--affinity", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "missing.csv" in err and "bad.csv" in err and "Traceback" not in err
