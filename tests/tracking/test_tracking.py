"""Experiment tracking against real local stores: MLflow's SQLite store read back with its client, and
TensorBoard's event files read back with TensorBoard's reader."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

from multitask.cli import main
from multitask.config import RunConfig
from multitask.errors import ConfigError, TrainingDivergedError
from multitask.runs import train
from multitask.tracking import epoch_values, final_values, flat_params
from multitask.tracking._base import safe_name

mlflow = pytest.importorskip("mlflow", reason="MLflow is part of multitask[tracking], which make test installs")
# MLflow's SQLite store uses a SQLAlchemy loader option that SQLAlchemy 2.1 deprecates (MLflow's, not ours)
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
logging.getLogger("alembic").setLevel(logging.WARNING)
logging.getLogger("mlflow").setLevel(logging.WARNING)

TASKS = ["y1:regression", "y2:binary", "cls:multiclass"]


def _cfg(data: Path, out: Path, **extra: object) -> RunConfig:
    training = {"epochs": 3, "progress": False, **extra.pop("train", {})}  # type: ignore[dict-item]
    return RunConfig(data=str(data), tasks=TASKS, out=str(out), train=training, **extra)


def _store(tmp_path: Path, name: str = "mlflow.db") -> str:
    """A SQLite tracking store in ``tmp_path`` whose experiment keeps its artifacts there too (MLflow's default
    artifact folder is ./mlruns in the working directory)."""
    uri = f"sqlite:///{tmp_path / name}"
    _client(uri).create_experiment("multitask", artifact_location=(tmp_path / f"{name}-artifacts").as_uri())
    return uri


def _client(uri: str):  # type: ignore[no-untyped-def]
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def _only_run(uri: str):  # type: ignore[no-untyped-def]
    client = _client(uri)
    experiment = client.get_experiment_by_name("multitask")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


def test_names_values_and_params() -> None:
    assert safe_name("loss/a:b#c") == "loss/a_b_c"
    assert flat_params({"train": {"lr": 0.1, "x": None}, "tasks": ["a"], "empty": {}}) == {
        "train.lr": "0.1", "train.x": "None", "tasks": "['a']", "empty": "{}"}
    record = {"epoch": 2, "train": {"a": 1.0, "b": None}, "valid": {"a": float("nan")}, "weights": {"a": 0.5},
              "lr": 0.01, "cosine": None, "valid_total": 2.0, "seconds": 1.5}
    assert epoch_values(record) == {"train_loss/a": 1.0, "weight/a": 0.5, "lr": 0.01, "valid_total": 2.0,
                                    "seconds": 1.5}
    result = {"tasks": {"a": {"rmse": 1.0, "r2": None}}, "mean": {"rmse": 1.0},
              "baselines": {"stl": {"tasks": {"a": {"rmse": 2.0}}, "mean": {"rmse": 2.0}, "delta_m": 50.0}}}
    assert final_values(result) == {"metric/a/rmse": 1.0, "mean/rmse": 1.0, "baseline/stl/metric/a/rmse": 2.0,
                                    "baseline/stl/mean/rmse": 2.0, "delta_m/stl": 50.0}


def test_mlflow_store_holds_params_epochs_metrics_and_artifacts(wide_csv: Path, tmp_path: Path) -> None:
    uri = _store(tmp_path)
    result = train(_cfg(wide_csv, tmp_path / "run", track=["mlflow"], tracking_uri=uri, baseline=["stl"]))
    client, run = _only_run(uri)
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["train.epochs"] == "3" and run.data.params["model"] == "hard-sharing"
    history = client.get_metric_history(run.info.run_id, "train_loss/y1")
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx([r["train"]["y1"] for r in log])
    assert run.data.metrics["metric/y1/rmse"] == pytest.approx(result.metrics["y1"]["rmse"])
    assert run.data.metrics["delta_m/stl"] == pytest.approx(result.delta_m)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "run")}
    assert {"run/metrics.json", "run/model.pt", "run/config.yaml", "run/baseline"} <= artifacts


def test_tensorboard_event_files_read_back(wide_csv: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train(_cfg(wide_csv, tmp_path / "run", track=["tensorboard"]))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train_loss/y1", "valid_loss/cls", "lr", "metric/y2/auc"} <= tags
    assert [e.step for e in events.Scalars("valid_loss/y2")] == [1, 2, 3]
    assert events.Scalars("metric/y1/rmse")[-1].value == pytest.approx(result.metrics["y1"]["rmse"], rel=1e-6)
    assert "parameters" in " ".join(events.Tags()["tensors"])


def test_linear_run_logs_final_metrics_only(wide_csv: Path, tmp_path: Path) -> None:
    uri = _store(tmp_path)
    cfg = RunConfig(data=str(wide_csv), tasks=["y1:regression", "y2:binary"], model="linear:l21",
                    out=str(tmp_path / "run"), track="mlflow", tracking_uri=uri)
    result = train(cfg)
    _, run = _only_run(uri)
    assert run.info.status == "FINISHED"
    assert not any(k.startswith("train_loss") for k in run.data.metrics)
    assert run.data.metrics["metric/y2/auc"] == pytest.approx(result.metrics["y2"]["auc"])


def test_failed_run_is_marked_failed(wide_csv: Path, tmp_path: Path) -> None:
    uri = _store(tmp_path)
    cfg = _cfg(wide_csv, tmp_path / "run", track=["mlflow"], tracking_uri=uri,
               train={"lr": 1e30, "optimizer": "sgd"})
    with pytest.raises(TrainingDivergedError):
        train(cfg)
    _, run = _only_run(uri)
    assert run.info.status == "FAILED"


def test_resumed_run_replays_its_epochs(wide_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from multitask.tracking import Tracking

    out, first, second = tmp_path / "run", _store(tmp_path, "a.db"), _store(tmp_path, "b.db")
    logged = Tracking.epoch

    def killed_after_epoch_2(self: Tracking, record: dict) -> None:
        logged(self, record)
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(Tracking, "epoch", killed_after_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            train(_cfg(wide_csv, out, track=["mlflow"], tracking_uri=first, train={"epochs": 4}))
    client, run = _only_run(first)
    assert run.info.status == "FAILED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "valid_total")] == [1, 2]
    train(_cfg(wide_csv, out, track=["mlflow"], tracking_uri=second, train={"epochs": 4}), resume=True)
    client, run = _only_run(second)
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "valid_total")] == [1, 2, 3, 4]


def test_unknown_tracker_is_refused(wide_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="unknown tracker 'wandb'"):
        RunConfig(track=["wandb"])
    code = main(["train", "--data", str(wide_csv), "--task", "y1:regression", "--out", str(tmp_path / "r"),
                 "--track", "mlflow,wandb"])
    assert code == 2
    assert "unknown tracker 'wandb'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_cli_track_flag(wide_csv: Path, tmp_path: Path) -> None:
    uri = _store(tmp_path)
    code = main(["train", "--data", str(wide_csv), "--task", "y1:regression", "--epochs", "2", "--quiet",
                 "--out", str(tmp_path / "r"), "--track", "mlflow", "--tracking-uri", uri])
    assert code == 0
    _, run = _only_run(uri)
    assert math.isfinite(run.data.metrics["metric/y1/rmse"])


def test_store_refused_when_built_is_one_error_line(wide_csv: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A tracking URI the store refuses as soon as it is opened (a folder: MLflow's file store) exits 2."""
    code = main(["train", "--data", str(wide_csv), "--task", "y1:regression", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "r"), "--track", "mlflow", "--tracking-uri", str(tmp_path / "folder")])
    assert code == 2
    err = capsys.readouterr().err
    assert "multitask: error: tracking with mlflow" in err and "Traceback" not in err
    assert not (tmp_path / "r" / "model.pt").exists()


def test_repeated_track_flag_keeps_both(wide_csv: Path, tmp_path: Path) -> None:
    uri = _store(tmp_path)
    code = main(["train", "--data", str(wide_csv), "--task", "y1:regression", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "r"), "--track", "mlflow", "--track", "tensorboard", "--tracking-uri", uri])
    assert code == 0
    _only_run(uri)
    assert any((tmp_path / "r" / "tensorboard").iterdir())


def test_task_names_that_sanitize_alike_stay_distinct(caplog: pytest.LogCaptureFixture) -> None:
    from multitask.tracking import TaskNames

    with caplog.at_level(logging.WARNING, logger="multitask.tracking._base"):
        names = TaskNames(["a:b", "a_b", "a#b", "c"])
    assert [names[t] for t in ("a_b", "a#b", "a:b", "c")] == ["a_b", "a_b_2", "a_b_3", "c"]  # safe names kept
    assert "'a_b' and 'a#b' are both 'a_b'" in caplog.text
    assert [TaskNames(["a_b", "a:b"])[t] for t in ("a:b", "a_b")] == ["a_b_2", "a_b"]  # whatever the order
    record = {"epoch": 1, "train": {"a:b": 1.0, "a_b": 2.0}, "valid": {"a:b": 3.0, "a_b": 4.0}}
    assert epoch_values(record) == {"train_loss/a_b_2": 1.0, "train_loss/a_b": 2.0, "valid_loss/a_b_2": 3.0,
                                    "valid_loss/a_b": 4.0}
    grouped = {"epoch": 1, "group": "000", "train": {"a:b": 1.0}, "lr": 0.1, "tasks": ["a:b", "a_b"]}
    assert epoch_values(grouped) == {"train_loss/a_b_2": 1.0, "group/000/lr": 0.1}  # a_b is in another group
    result = {"tasks": {"a:b": {"rmse": 1.0}, "a_b": {"rmse": 2.0}},
              "baselines": {"stl": {"tasks": {"a:b": {"rmse": 5.0}, "a_b": {"rmse": 6.0}}}}}
    assert final_values(result) == {"metric/a_b_2/rmse": 1.0, "metric/a_b/rmse": 2.0,
                                    "baseline/stl/metric/a_b_2/rmse": 5.0, "baseline/stl/metric/a_b/rmse": 6.0}


def test_tensorboard_run_keeps_colliding_task_names_apart(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tests.conftest import make_wide

    data = make_wide(120).rename(columns={"y1": "a:b", "y2": "a_b"})
    data["a_b"] = data["a_b"].astype(float) * 3.0
    data.to_csv(tmp_path / "w.csv", index=False)
    cfg = RunConfig(data=str(tmp_path / "w.csv"), tasks=["a:b:regression", "a_b:regression"],
                    features=["x0", "x1", "x2"], out=str(tmp_path / "run"), track=["tensorboard"],
                    train={"epochs": 2, "progress": False})
    result = train(cfg)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train_loss/a_b", "train_loss/a_b_2", "metric/a_b/rmse", "metric/a_b_2/rmse"} <= tags
    assert [e.step for e in events.Scalars("train_loss/a_b_2")] == [1, 2]
    assert events.Scalars("metric/a_b_2/rmse")[-1].value == pytest.approx(result.metrics["a:b"]["rmse"], rel=1e-6)
    assert events.Scalars("metric/a_b/rmse")[-1].value == pytest.approx(result.metrics["a_b"]["rmse"], rel=1e-6)


def test_grouped_run_sends_each_groups_epochs(wide_csv: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    train(_cfg(wide_csv, out, track=["tensorboard"], groups=[["y1", "cls"], ["y2"]], train={"epochs": 2}))
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train_loss/y1", "train_loss/cls", "train_loss/y2", "valid_loss/y2", "group/000/lr",
            "group/001/valid_total", "metric/y2/auc"} <= tags
    assert "lr" not in tags and "valid_total" not in tags  # each group's own, never mixed on one curve
    for task, member in (("y1", 0), ("y2", 1)):
        log = [json.loads(line) for line in (out / "groups" / f"00{member}" / "log.jsonl").read_text().splitlines()]
        curve = events.Scalars(f"valid_loss/{task}")
        assert [e.step for e in curve] == [1, 2]
        assert [e.value for e in curve] == pytest.approx([r["valid"][task] for r in log], rel=1e-6)


def test_resumed_grouped_run_replays_its_members_epochs(wide_csv: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from multitask.tracking import Tracking

    out = tmp_path / "run"
    logged = Tracking.epoch

    def killed_in_the_second_group(self: Tracking, record: dict) -> None:
        logged(self, record)
        if record["group"] == "001" and record["epoch"] == 1:
            raise KeyboardInterrupt

    groups = [["y1", "cls"], ["y2"]]
    with monkeypatch.context() as m:
        m.setattr(Tracking, "epoch", killed_in_the_second_group)
        with pytest.raises(KeyboardInterrupt):
            train(_cfg(wide_csv, out, track=["tensorboard"], groups=groups, train={"epochs": 3}))
    shutil.rmtree(out / "tensorboard")  # the resumed run's store holds only what the resumed run sends
    train(_cfg(wide_csv, out, track=["tensorboard"], groups=groups, train={"epochs": 3}), resume=True)
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    for name in ("valid_loss/y1", "valid_loss/y2", "group/000/lr", "group/001/lr"):
        assert [e.step for e in events.Scalars(name)] == [1, 2, 3], name
