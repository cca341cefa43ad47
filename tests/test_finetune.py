"""``multitask finetune``: a new task on a trained deep run's shared part, compared with the task alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from multitask.cli import main
from multitask.config import RunConfig
from multitask.errors import ConfigError
from multitask.finetune import finetune
from multitask.runs import evaluate, predict, train
from multitask.tasks import Task
from multitask.train import TrainConfig

from .conftest import make_long, make_wide

FAST = TrainConfig(epochs=4, lr=0.01, progress=False)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A trained two-task run and a file for a new task ``z`` (the run's features, another target)."""
    d = tmp_path_factory.mktemp("finetune")
    old = make_wide(300).drop(columns=["cls"])
    old.to_csv(d / "old.csv", index=False)
    new = make_wide(200, seed=1).drop(columns=["y1", "y2", "cls"])
    new["z"] = 2 * new["x0"] - new["x1"]
    new.to_csv(d / "new.csv", index=False)
    train(RunConfig(data=str(d / "old.csv"), tasks=["y1:regression", "y2:binary"], out=str(d / "run"),
                    train=FAST.model_dump()))
    return d / "run", d / "new.csv"


def test_frozen_shared_part_keeps_old_predictions_exactly(base: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = base
    result = finetune(run, Task("z", "regression"), data, tmp_path / "ft", freeze_shared=True, train=FAST)
    before, after = predict(run, str(data)), predict(tmp_path / "ft", str(data))
    assert list(after.columns) == ["y1", "y2", "z"]
    pd.testing.assert_frame_equal(before, after[["y1", "y2"]])
    assert np.isfinite(after["z"]).all()
    assert result.new_parameters and all("z" in p or "t2" in p for p in result.new_parameters)
    saved = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert saved["tasks"]["z"]["rmse"] == pytest.approx(result.metrics["z"]["rmse"])
    assert saved["baselines"]["alone"]["tasks"]["z"]["rmse"] == pytest.approx(result.alone["z"]["rmse"])
    assert saved["baselines"]["alone"]["delta_m"] == pytest.approx(result.delta_m)
    assert "unchanged from" in saved["not_evaluated"]["y1"]
    assert not (tmp_path / "ft" / "INCOMPLETE").exists()


def test_frozen_batch_norm_keeps_old_predictions_exactly(base: tuple[Path, Path], tmp_path: Path) -> None:
    """Batch norm's running statistics are part of the frozen shared part: training the new head leaves them."""
    run, data = base
    old = run.parent / "old.csv"
    train(RunConfig(data=str(old), tasks=["y1:regression", "y2:binary"], out=str(tmp_path / "bn"),
                    model_options={"norm": "batch"}, train=FAST.model_dump()))
    finetune(tmp_path / "bn", Task("z", "regression"), data, tmp_path / "ft", freeze_shared=True, train=FAST)
    before, after = predict(tmp_path / "bn", str(data)), predict(tmp_path / "ft", str(data))
    pd.testing.assert_frame_equal(before, after[["y1", "y2"]])


def test_out_over_the_source_run_is_refused_even_with_overwrite(base: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = base
    with pytest.raises(ConfigError, match="is the run being fine-tuned"):
        finetune(run, Task("z", "regression"), data, run, train=FAST, overwrite=True)
    assert (run / "model.pt").is_file()


def test_grouped_run_is_refused_clearly(base: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = base
    train(RunConfig(data=str(run.parent / "old.csv"), tasks=["y1:regression", "y2:binary"], out=str(tmp_path / "g"),
                    groups=[["y1"], ["y2"]], train=FAST.model_dump()))
    with pytest.raises(ConfigError, match="a run trained by groups"):
        finetune(tmp_path / "g", Task("z", "regression"), data, tmp_path / "ft", train=FAST)
    assert not (tmp_path / "ft").exists()


def test_unfrozen_shared_part_learns_and_says_old_tasks_moved(base: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = base
    result = finetune(run, Task("z", "regression"), data, tmp_path / "ft", train=FAST)
    assert result.trained_parameters > sum(1 for _ in result.new_parameters)
    saved = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert "predictions differ from" in saved["not_evaluated"]["y2"]
    frame = pd.read_csv(data)
    frame["y1"], frame["y2"] = 0.0, 1
    labelled = tmp_path / "labelled.csv"
    frame.to_csv(labelled, index=False)
    metrics = evaluate(tmp_path / "ft", str(labelled))
    assert set(metrics) == {"y1", "y2", "z"}


def test_long_form_run_takes_a_new_group(tmp_path: Path) -> None:
    frame = make_long()
    frame.to_csv(tmp_path / "long.csv", index=False)
    train(RunConfig(data=str(tmp_path / "long.csv"), task_column="group", target="y", out=str(tmp_path / "run"),
                    train=FAST.model_dump()))
    extra = make_long(n_tasks=5, seed=3)
    extra = extra[extra["group"] == "g4"].assign(group="g9")
    extra.to_csv(tmp_path / "g9.csv", index=False)
    finetune(tmp_path / "run", Task("g9", "regression"), tmp_path / "g9.csv", tmp_path / "ft", freeze_shared=True,
             train=FAST)
    both = pd.concat([frame, extra], ignore_index=True)
    both.to_csv(tmp_path / "both.csv", index=False)
    predicted = predict(tmp_path / "ft", str(tmp_path / "both.csv"))
    assert predicted.loc[predicted["group"] == "g9", "prediction"].notna().sum() == len(extra)
    old = predict(tmp_path / "run", str(tmp_path / "long.csv"))
    pd.testing.assert_frame_equal(predicted.iloc[: len(frame)], old)


def test_cli_prints_the_comparison(base: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, data = base
    code = main(["finetune", "--run", str(run), "--task", "z:regression", "--data", str(data), "--out",
                 str(tmp_path / "ft"), "--epochs", "2", "--freeze-shared", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "fine-tuned" in out and "alone" in out and "delta_m" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "y1:regression"], "already has a task 'y1'"),
        (["--task", "z:regression", "--target", "nothere"], "no column 'nothere'"),
        (["--task", "z:sideways"], "sideways"),
    ],
)
def test_cli_refuses_bad_input(base: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               args: list[str], message: str) -> None:
    run, data = base
    code = main(["finetune", "--run", str(run), "--data", str(data), "--out", str(tmp_path / "ft"), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "ft" / "model.pt").exists()


def test_non_deep_runs_and_task_count_dependent_architectures_are_refused(tmp_path: Path) -> None:
    make_wide(200).to_csv(tmp_path / "w.csv", index=False)
    train(RunConfig(data=str(tmp_path / "w.csv"), tasks=["y1:regression", "y2:binary"], model="linear:l21",
                    out=str(tmp_path / "lin")))
    with pytest.raises(ConfigError, match="this run is linear"):
        finetune(tmp_path / "lin", Task("z", "regression"), tmp_path / "w.csv", tmp_path / "ft")
    train(RunConfig(data=str(tmp_path / "w.csv"), tasks=["y1:regression", "y2:binary"], model="cross-stitch",
                    out=str(tmp_path / "cs"), train=FAST.model_dump()))
    frame = pd.read_csv(tmp_path / "w.csv").assign(z=1.0)
    frame.to_csv(tmp_path / "z.csv", index=False)
    with pytest.raises(ConfigError, match="depends on the number of tasks"):
        finetune(tmp_path / "cs", Task("z", "regression"), tmp_path / "z.csv", tmp_path / "ft2", train=FAST)
    assert not (tmp_path / "ft2" / "model.pt").exists()


def test_run_trained_for_a_primary_task_takes_a_new_task(base: tuple[Path, Path], tmp_path: Path) -> None:
    _, data = base
    old = make_wide(300).drop(columns=["cls"])
    old.to_csv(tmp_path / "old.csv", index=False)
    train(RunConfig(data=str(tmp_path / "old.csv"), tasks=["y1:regression", "y2:binary"], out=str(tmp_path / "run"),
                    train={**FAST.model_dump(), "primary": "y1"}))
    result = finetune(tmp_path / "run", Task("z", "regression"), data, tmp_path / "ft", freeze_shared=True)
    assert set(result.metrics) == {"z"}
