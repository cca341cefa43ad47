"""What ``report.html`` holds for runs of each kind of task, with and without history, affinity and compare."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from multitask.affinity import write_csv
from multitask.cli import main
from multitask.report import write_report
from multitask.report._predictions import PREDICTIONS_FILE, load_predictions
from tests.conftest import make_long
from tests.report.conftest import Page, train

PNG = b"\x89PNG\r\n\x1a\n"


def _page(path: Path) -> Page:
    page = Page(path.read_text())
    for src in page.sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    return page


def test_mixed_run_has_every_figure_and_baseline(mixed_run: Path) -> None:
    text = (mixed_run / "report.html").read_text()
    page = _page(mixed_run / "report.html")
    assert page.figures == {
        "metrics": [],
        "curves": ["loss over epochs: all tasks", "learning curves: 3 tasks"],
        "weights": ["task weights over epochs"],
        "predictions": ["predicted against true: 1 task", "ROC curves: 1 task", "calibration curves: 1 task",
                        "confusion matrix: cls"],
        "labels": ["labelled rows per task"],
        "config": [],
    }
    metrics = json.loads((mixed_run / "metrics.json").read_text())
    for kind, title in (("stl", "single-task"), ("gbdt", "GBDT per task")):
        delta = metrics["baselines"][kind]["delta_m"]
        assert f"delta_m vs {title} ({metrics['baselines'][kind]['model']}) = <b>{delta:.4g} %</b>" in text
        assert f"<th>Δ vs {title} %</th>" in text
    for task in ("y1", "y2", "cls"):
        assert f"<td>{task}</td>" in text
    assert "http://" not in text.replace("http://www.w3.org", "") and "https://" not in text  # nothing to fetch
    assert not re.search(r"<(link|script)[^>]+src=", text)


def test_predictions_file_matches_the_reported_metrics(mixed_run: Path) -> None:
    part, tasks = load_predictions(mixed_run / PREDICTIONS_FILE)
    metrics = json.loads((mixed_run / "metrics.json").read_text())
    assert part == metrics["evaluated_on"] == "valid"
    by_name = {t.name: t for t in tasks}
    y1 = by_name["y1"]
    rmse = float(np.sqrt(np.mean((y1.true - y1.pred) ** 2)))
    assert rmse == pytest.approx(metrics["tasks"]["y1"]["rmse"], rel=1e-5)
    cls = by_name["cls"]
    assert cls.classes == ["hi", "lo", "mid"] and cls.pred.shape == (len(cls.true), 3)
    accuracy = float(np.mean(cls.pred.argmax(axis=1) == cls.true))
    assert accuracy == pytest.approx(metrics["tasks"]["cls"]["accuracy"])
    assert by_name["y2"].class_counts.sum() == by_name["y2"].counts["train"]
    assert by_name["y1"].counts["test"] == -1 and by_name["y1"].counts["valid"] == len(y1.true)


def test_multilabel_run_pools_its_labels(multilabel_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "tags.html"
    assert main(["report", "--run", str(multilabel_run), "--output", str(out)]) == 0
    page = _page(out)
    assert page.figures["predictions"] == ["predicted against true: 1 task", "ROC curves: 1 task",
                                           "calibration curves: 1 task"]
    assert "weights" not in page.figures  # static weights: nothing a balancer set
    text = out.read_text()
    assert "every (row, label) decision pooled" in text
    assert not (multilabel_run / "report.html").exists()


def test_linear_run_of_many_tasks_folds_its_figures(tmp_path: Path) -> None:
    make_long(n_tasks=40, n_per_task=20).to_csv(tmp_path / "long.csv", index=False)
    run = tmp_path / "run"
    train("--data", str(tmp_path / "long.csv"), "--task-column", "group", "--target", "y",
          "--model", "linear:l21", "--out", str(run), deep=False)
    report = write_report(run)  # the first 36 tasks drawn
    page = _page(report.path)
    text = report.path.read_text()
    assert page.figures["curves"] == []
    assert "not trained epoch by epoch" in text
    assert page.figures["predictions"] == ["predicted against true: tasks 1–36 of 40"]
    assert "the first 36 of 40 tasks are drawn" in text
    assert text.count("<td>g39</td>") == 3  # the tables hold every task: metrics, every metric, labels

    report = write_report(run, max_tasks=0)  # every task, the second figure folded
    page = _page(report.path)
    assert page.figures["predictions"] == ["predicted against true: tasks 1–36 of 40",
                                           "predicted against true: tasks 37–40 of 40"]
    assert "<summary>predicted against true: tasks 37–40 of 40</summary>" in report.path.read_text()
    assert report.figures == sum(len(v) for v in page.figures.values()) == report.sections["predictions"] + 1


def test_affinity_and_compare_folders_join_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_long(n_tasks=3, n_per_task=30).to_csv(tmp_path / "long.csv", index=False)
    run, cmp, aff = tmp_path / "run", tmp_path / "cmp", tmp_path / "aff"
    data = ["--data", str(tmp_path / "long.csv"), "--task-column", "group", "--target", "y"]
    train(*data, "--model", "linear:l21", "--out", str(run), deep=False)
    assert main(["compare", *data, "--models", "linear:l21", "--out", str(cmp)]) == 0
    aff.mkdir()
    write_csv(np.array([[1.0, -0.2, 0.1], [0.3, 1.0, np.nan], [0.0, 0.5, 1.0]]), ["g0", "g1", "g2"],
              aff / "affinity_lookahead.csv")
    capsys.readouterr()
    assert main(["report", "--run", str(run), "--affinity", str(aff), "--compare", str(cmp)]) == 0
    assert f"report written to {run / 'report.html'}" in capsys.readouterr().out.replace("\n", "")
    page = _page(run / "report.html")
    assert page.figures["affinity"] == ["affinity heatmap: lookahead"]
    assert page.figures["compare"] == ["leaderboard: cmp"]
    text = (run / "report.html").read_text()
    assert "linear:l21" in text and "linear:independent (STL)" in text


def test_bad_report_requests_are_one_line_errors(mixed_run: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    def error(*args: str) -> str:
        capsys.readouterr()
        assert main(["report", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("multitask: error: ")
        return err

    assert "not a run directory" in error("--run", str(tmp_path))
    assert "does not exist" in error("--run", str(mixed_run), "--output", str(tmp_path / "no" / "r.html"))
    assert "no such folder" in error("--run", str(mixed_run), "--compare", str(tmp_path / "nothing"))
    assert "--max-tasks -1" in error("--run", str(mixed_run), "--max-tasks", "-1")
    mine = tmp_path / "notes.html"
    mine.write_text("<html>my notes</html>")
    assert "not a report" in error("--run", str(mixed_run), "--output", str(mine))
    assert mine.read_text() == "<html>my notes</html>"
    (tmp_path / "cut").mkdir()
    for name in ("run.json", "metrics.json", "config.yaml"):
        (tmp_path / "cut" / name).write_bytes((mixed_run / name).read_bytes())
    (tmp_path / "cut" / "INCOMPLETE").write_text("{}")
    assert "did not finish" in error("--run", str(tmp_path / "cut"))
    (tmp_path / "cut" / "INCOMPLETE").unlink()
    (tmp_path / "cut" / PREDICTIONS_FILE).write_bytes(b"not a zip")
    assert "corrupted" in error("--run", str(tmp_path / "cut"))
