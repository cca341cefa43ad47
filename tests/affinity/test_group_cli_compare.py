"""``multitask group`` with data: all-in-one, grouped and single-task models on one split, printed and written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from multitask.cli import main

TASKS = ["--task", "y1:regression", "--task", "y2:binary", "--task", "cls:multiclass"]
TRAIN = ["--model-option", "hidden=[8]", "--epochs", "1", "--every", "1"]


def test_the_comparison_has_all_three_models(wide_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "comparison.json"
    assert main(["group", "--data", str(wide_csv), *TASKS, *TRAIN, "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "delta_m of grouped vs single-task" in text and "delta_m of all-in-one vs single-task" in text
    found = json.loads(out.read_text())
    assert sorted(r["model"] for r in found["leaderboard"]) == ["all-in-one", "grouped", "single-task"]
    assert [r["task"] for r in found["tasks"]] == ["y1", "y2", "cls"]
    for row in found["tasks"]:
        assert all(isinstance(row[m], float) for m in ("single-task", "all-in-one", "grouped"))
    assert set(found["delta_m"]) == {"grouped vs single-task", "all-in-one vs single-task", "grouped vs all-in-one"}
    assert found["evaluated_on"] == "held-out" and found["measure"] == "lookahead"
    assert sorted(t for g in found["groups"] for t in g) == ["cls", "y1", "y2"]
    stl = next(r for r in found["leaderboard"] if r["model"] == "single-task")
    assert stl["role"] == "stl" and stl["delta_m_stl_mean"] == pytest.approx(0.0)
    # the file is a groups file that train reads
    run = tmp_path / "run"
    assert main(["train", "--data", str(wide_csv), *TASKS, "--hidden", "8", "--epochs", "1", "--groups", str(out),
                 "--out", str(run), "--quiet"]) == 0


def test_groups_from_an_affinity_file_and_csv_output(wide_csv: Path, tmp_path: Path) -> None:
    names = ["y1", "y2", "cls"]
    affinity = tmp_path / "affinity.csv"
    pd.DataFrame(np.array([[1, 0.9, -0.5], [0.8, 1, -0.2], [-0.5, -0.3, 1]]), index=names, columns=names).to_csv(affinity)
    out = tmp_path / "results.csv"
    assert main(["group", "--data", str(wide_csv), *TASKS, *TRAIN, "--affinity", str(affinity),
                 "--output", str(out)]) == 0
    frame = pd.read_csv(out)
    assert sorted(set(frame["model"])) == ["all-in-one", "grouped", "single-task"] and len(frame) == 9
    grouped = frame[frame["model"] == "grouped"].set_index("task")["group"]
    assert grouped["y1"] == grouped["y2"] != grouped["cls"]
    # single-task and a grouped singleton are the same model on the same split
    cls = frame[frame["task"] == "cls"].set_index("model")["accuracy"]
    assert cls["grouped"] == pytest.approx(cls["single-task"])


def test_bad_comparisons_are_one_line_errors(wide_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.csv"
    pd.DataFrame(np.eye(2), index=["p", "q"], columns=["p", "q"]).to_csv(other)
    assert main(["group", "--data", str(wide_csv), *TASKS, *TRAIN, "--affinity", str(other)]) == 2
    assert main(["group", "--data", str(wide_csv), *TASKS, "--output", str(tmp_path / "x.txt")]) == 2
    assert main(["group"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("multitask: error: ") for line in err)
    assert "other.csv: task 'p'" in err[0] and "x.txt" in err[1] and "--affinity" in err[2]
