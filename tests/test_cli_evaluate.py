"""``multitask evaluate``: a table of each task's deciding metric, as ``train`` prints; ``--json`` for scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from multitask.cli import main
from tests.conftest import make_long


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "long.csv"
    make_long(n_tasks=45, n_per_task=12).to_csv(data, index=False)
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--task-column", "group", "--target", "y", "--model", "linear:l21",
                 "--out", str(out)]) == 0
    return out, data


def test_evaluate_prints_a_table_of_every_task_up_to_40(run: tuple[Path, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out, data = run
    capsys.readouterr()
    assert main(["evaluate", "--run", str(out), "--data", str(data)]) == 0
    text = capsys.readouterr().out
    assert f"linear:l21({data})" in "".join(text.split())  # the title names the model and the data
    lines = [line for line in text.splitlines() if "rmse (↓)" in line]
    assert len(lines) == 40 and lines[0].split("│")[1].strip() == "g0"
    assert "… 5 more tasks with --json" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_evaluate_json_holds_every_metric_of_every_task(run: tuple[Path, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out, data = run
    capsys.readouterr()
    assert main(["evaluate", "--run", str(out), "--data", str(data), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert len(metrics) == 45
    assert set(metrics["g44"]) == {"rmse", "mae", "r2", "explained_variance"}
    saved = json.loads((out / "metrics.json").read_text())["tasks"]
    assert metrics["g0"]["rmse"] <= saved["g0"]["rmse"] * 10  # the training rows' metrics, same scale
