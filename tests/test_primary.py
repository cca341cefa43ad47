"""``train --primary``: the options it implies, its errors, and the report of the auxiliary tasks' weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from multitask import Task
from multitask.balancing import AutoLambda
from multitask.cli import main
from multitask.errors import ConfigError
from multitask.train import TrainConfig
from multitask.train._trainer import make_balancer
from multitask.train.config import without_primary
from tests.conftest import make_wide

FAST = ["--epochs", "2", "--quiet", "--batch-size", "64"]


@pytest.fixture
def three_tasks(tmp_path: Path) -> Path:
    path = tmp_path / "wide.csv"
    make_wide(n=240).to_csv(path, index=False)
    return path


def _tasks(csv: Path) -> list[str]:
    return ["--data", str(csv), "--task", "y1:regression", "--task", "y2:binary", "--task", "cls:multiclass"]


def test_primary_implies_monitor_and_auto_lambda() -> None:
    config = TrainConfig(primary="y1")
    assert config.monitor == "y1"
    assert config.balancer == "auto-lambda" and config.balancer_options == {}
    tasks = [Task(t, "regression") for t in ("y0", "y1")]
    built = make_balancer(config, tasks)
    assert isinstance(built, AutoLambda) and built.primary == ["y1"]
    chosen = TrainConfig(primary="y1", balancer="dwa")  # allowed: weights by dwa, early stopping on y1
    assert chosen.balancer == "dwa" and chosen.monitor == "y1"
    make_balancer(chosen, tasks)  # dwa has no primary option, and is not given one
    # a search sets the balancer by model_copy: the primary reaches whichever balancer takes it
    searched = config.model_copy(update={"balancer": "uncertainty"})
    make_balancer(searched, tasks)
    tuned = make_balancer(TrainConfig(primary="y1", balancer_options={"lr": 0.01}), tasks)
    assert isinstance(tuned, AutoLambda) and tuned.lr == 0.01 and tuned.primary == ["y1"]


def test_primary_and_a_different_monitor_are_refused() -> None:
    with pytest.raises(ConfigError, match="monitor 'y2' and primary 'y1' name different tasks"):
        TrainConfig(primary="y1", monitor="y2")
    with pytest.raises(ConfigError, match="differs from primary"):
        TrainConfig(primary="y1", balancer_options={"primary": "y2"})


def test_without_primary_is_a_plain_configuration() -> None:
    alone = without_primary(TrainConfig(primary="y1", epochs=3))
    assert (alone.primary, alone.monitor, alone.balancer, alone.balancer_options, alone.epochs) == (
        None, None, "static", {}, 3)
    assert without_primary(TrainConfig(primary="y1", balancer="dwa")).balancer == "dwa"


def test_an_unknown_primary_task_exits_2(three_tasks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["train", *_tasks(three_tasks), "--primary", "nope", "--out", str(tmp_path / "run"), *FAST])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("multitask: error:") and "'nope' is not a task" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "model.pt").exists()


def test_primary_with_a_linear_model_exits_2(three_tasks: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["train", "--data", str(three_tasks), "--task", "y1:regression", "--model", "linear:lasso",
               "--primary", "y1", "--out", str(tmp_path / "run")])
    assert rc == 2
    assert "--primary applies to deep models" in capsys.readouterr().err


def test_a_primary_run_reports_each_tasks_weight(three_tasks: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    rc = main(["train", *_tasks(three_tasks), "--primary", "y1", "--baseline", "stl", "--out", str(out), *FAST])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "task weights for primary task y1" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    aux = metrics["auxiliary"]
    assert aux["primary"] == "y1" and aux["balancer"] == "auto-lambda" and aux["initial"] == 1.0
    assert {name: row["role"] for name, row in aux["tasks"].items()} == {
        "y1": "primary", "y2": "auxiliary", "cls": "auxiliary"}
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    for name, row in aux["tasks"].items():
        assert row["final"] == records[-1]["weights"][name]
        assert row["mean"] == pytest.approx(sum(r["weights"][name] for r in records) / len(records))
        assert ("helped" in row) == (name != "y1")
    # the single-task baseline of the primary task is the primary trained alone, with static weights
    assert metrics["baselines"]["stl"]["tasks"]["y1"]["rmse"] is not None
    stl_log = (out / "baseline" / "stl" / "000-y1" / "log.jsonl").read_text().splitlines()
    assert json.loads(stl_log[0])["weights"] == {"y1": 1.0}
