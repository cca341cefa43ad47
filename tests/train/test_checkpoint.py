"""Checkpoints: atomic writes, weights-only loading, clear errors for corrupted or foreign files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from multitask import Task
from multitask.data.arrays import Arrays
from multitask.errors import CheckpointError, ConfigError
from multitask.nn import HardSharing, InputSpec
from multitask.train import (
    CHECKPOINT_FILE,
    MODEL_CONFIG_FILE,
    MODEL_FILE,
    TrainConfig,
    _checkpoint,
    fit,
    load_checkpoint,
    load_model,
    save_checkpoint,
    save_model,
)

TASKS = [Task("r", "regression"), Task("c", "multiclass")]


def _data() -> Arrays:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4)).astype(np.float32)
    return Arrays(
        {"s": x},
        {"r": x[:, 0].copy(), "c": (x[:, 1] > 0).astype(np.int64)},
        {"r": np.ones(120, bool), "c": rng.random(120) < 0.5},
        {"r": "s", "c": "s"},
    )


def _model() -> HardSharing:
    torch.manual_seed(0)
    return HardSharing({"s": InputSpec(dim=4)}, TASKS, {"r": "s", "c": "s"}, {"c": 2}, hidden=(8, 4))


def _config(**kwargs: Any) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 16, "progress": False, "threads": 1, **kwargs})


def _state() -> dict[str, Any]:
    return {
        "epoch": 3,
        "model": _model().state_dict(),
        "history": [{"epoch": 1, "train": {"r": 0.5, "c": None}}],
    }


def test_round_trip_loads_weights_only(tmp_path: Path) -> None:
    path = tmp_path / CHECKPOINT_FILE
    save_checkpoint(path, _state())
    torch.load(path, weights_only=True)  # no pickled objects
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3 and loaded["history"] == _state()["history"]
    assert loaded["format"] == "multitask-checkpoint" and loaded["version"] == 2
    for k, v in _state()["model"].items():
        assert torch.equal(loaded["model"][k], v)


def test_the_trainers_checkpoint_holds_everything_to_resume(tmp_path: Path) -> None:
    fit(_model(), TASKS, _data(), _data(), _config(schedule="step"), run_dir=tmp_path)
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_FILE)
    assert {
        "epoch",
        "model",
        "optimizer",
        "scheduler",
        "balancer",
        "best_score",
        "best_epoch",
        "best_model",
        "bad_epochs",
        "history",
        "config",
    } <= set(ckpt)
    assert ckpt["epoch"] == 2 and len(ckpt["history"]) == 2
    assert ckpt["config"] == _config(schedule="step").model_dump()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["checkpoint.pt", "log.jsonl", MODEL_FILE, MODEL_CONFIG_FILE]
    )


@pytest.mark.parametrize("fail_in", ["save", "fsync", "replace"])
def test_a_failed_write_leaves_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_in: str
) -> None:
    path = tmp_path / CHECKPOINT_FILE
    save_checkpoint(path, _state())
    before = path.read_bytes()

    def half_written(obj: object, f: Any) -> None:
        f.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full")

    def boom(*args: object) -> None:
        raise OSError("disk full")

    if fail_in == "save":
        monkeypatch.setattr(_checkpoint.torch, "save", half_written)
    else:
        monkeypatch.setattr(_checkpoint.os, fail_in, boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {**_state(), "epoch": 4})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 3
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_FILE], "a temporary file was left behind"


def test_a_truncated_checkpoint_is_named(tmp_path: Path) -> None:
    path = tmp_path / CHECKPOINT_FILE
    save_checkpoint(path, _state())
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("write", "match"),
    [
        (lambda p: torch.save({"weights": torch.zeros(2)}, p), "format marker"),
        (lambda p: torch.save([1, 2], p), "format marker"),
        (lambda p: torch.save({"format": "multitask-checkpoint", "version": 99}, p), "version 99"),
        (lambda p: p.write_text("epoch: 3\n"), "corrupted or foreign"),
        (
            lambda p: torch.save({"format": "multitask-checkpoint", "version": 1, "x": Path("a")}, p),
            "corrupted or foreign",
        ),
    ],
)
def test_a_foreign_file_is_refused(tmp_path: Path, write: Any, match: str) -> None:
    path = tmp_path / "checkpoint.pt"
    write(path)
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_missing_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "checkpoint.pt")


def test_resume_refuses_a_corrupted_checkpoint(tmp_path: Path) -> None:
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match=CHECKPOINT_FILE):
        fit(_model(), TASKS, _data(), _data(), _config(), run_dir=tmp_path, resume=True)


def test_resume_refuses_other_training_options(tmp_path: Path) -> None:
    fit(_model(), TASKS, _data(), _data(), _config(), run_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"lr \(0.001 -> 0.1\)"):
        fit(_model(), TASKS, _data(), _data(), _config(lr=0.1), run_dir=tmp_path, resume=True)
    fit(_model(), TASKS, _data(), _data(), _config(progress=True, threads=2), run_dir=tmp_path, resume=True)


def test_resume_of_a_finished_run_returns_its_result(tmp_path: Path) -> None:
    first = fit(_model(), TASKS, _data(), _data(), _config(), run_dir=tmp_path)
    again = fit(_model(), TASKS, _data(), _data(), _config(), run_dir=tmp_path, resume=True)
    assert again.history == first.history and again.best_epoch == first.best_epoch
    for k, v in first.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[k], v)


def test_resume_without_a_checkpoint_starts_from_scratch(tmp_path: Path) -> None:
    fresh = fit(_model(), TASKS, _data(), _data(), _config(), run_dir=tmp_path / "a")
    resumed = fit(_model(), TASKS, _data(), _data(), _config(), run_dir=tmp_path / "b", resume=True)
    assert [h["train"] for h in resumed.history] == [h["train"] for h in fresh.history]


def test_saved_model_predicts_the_same(tmp_path: Path) -> None:
    model = _model().eval()
    save_model(model, tmp_path)
    assert json.loads((tmp_path / MODEL_CONFIG_FILE).read_text()) == model.model_config()
    loaded = load_model(tmp_path)
    x = {"s": torch.randn(5, 4)}
    assert not loaded.training
    for task, out in model(x).items():
        assert torch.equal(loaded(x)[task], out)


def _by_name(model: HardSharing, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with the keys of file version 1: encoders and heads by name."""
    names = {key: name for name, key in {**model.source_keys, **model.head_keys}.items()}
    renamed = {}
    for key, value in state.items():
        parts = key.split(".", 2)
        if parts[0] in ("encoders", "task_heads"):
            parts[1] = names[parts[1]]
        renamed[".".join(parts)] = value
    return renamed


def test_a_version_1_model_still_loads(tmp_path: Path) -> None:
    model = _model().eval()
    save_model(model, tmp_path)
    state = _by_name(model, model.state_dict())
    assert "task_heads.c.weight" in state and "encoders.s.0.weight" in state
    torch.save({"format": "multitask-model", "version": 1, "state": state}, tmp_path / MODEL_FILE)
    loaded = load_model(tmp_path)
    x = {"s": torch.randn(5, 4)}
    for task, out in model(x).items():
        assert torch.equal(loaded(x)[task], out)


def test_a_version_1_checkpoint_resumes(tmp_path: Path) -> None:
    """Resuming after epoch 1 of a version 1 checkpoint ends where an uninterrupted run does."""
    full = fit(_model(), TASKS, _data(), _data(), _config(), run_dir=tmp_path / "full")
    fit(_model(), TASKS, _data(), _data(), _config(epochs=1), run_dir=tmp_path / "old")
    ckpt = load_checkpoint(tmp_path / "old" / CHECKPOINT_FILE)
    model = _model()
    ckpt["model"], ckpt["best_model"] = _by_name(model, ckpt["model"]), _by_name(model, ckpt["best_model"])
    ckpt["version"], ckpt["config"] = 1, _config().model_dump()
    del ckpt["config"]["monitor"]  # version 1 had no such option
    torch.save(ckpt, tmp_path / "old" / CHECKPOINT_FILE)
    resumed = fit(_model(), TASKS, _data(), _data(), _config(), run_dir=tmp_path / "old", resume=True)
    assert resumed.history == [
        {**h, "seconds": resumed.history[i]["seconds"]} for i, h in enumerate(full.history)
    ]
    for k, v in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k


def test_model_json_is_strict_and_read_strictly(tmp_path: Path) -> None:
    save_model(_model(), tmp_path)
    text = (tmp_path / MODEL_CONFIG_FILE).read_text()
    json.loads(text, parse_constant=_refuse)
    (tmp_path / MODEL_CONFIG_FILE).write_text(text.replace('"dropout": 0.0', '"dropout": NaN'))
    with pytest.raises(
        CheckpointError, match=f"{MODEL_CONFIG_FILE}: not a model description: NaN is not JSON"
    ):
        load_model(tmp_path)


def _refuse(constant: str) -> None:
    raise AssertionError(f"{constant} in a JSON file")


def test_load_model_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=MODEL_CONFIG_FILE):
        load_model(tmp_path)
    save_model(_model(), tmp_path)
    (tmp_path / MODEL_CONFIG_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match=MODEL_CONFIG_FILE):
        load_model(tmp_path)
    save_model(_model(), tmp_path)
    config = _model().model_config()
    config["hidden"] = [8, 5]
    (tmp_path / MODEL_CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(tmp_path)
    (tmp_path / MODEL_CONFIG_FILE).write_text(json.dumps({**config, "hiddn": [8]}))
    with pytest.raises(CheckpointError, match=f"{MODEL_CONFIG_FILE}: .*unexpected keyword argument 'hiddn'"):
        load_model(tmp_path)
    save_model(_model(), tmp_path)
    save_checkpoint(tmp_path / MODEL_FILE, _state())  # a checkpoint is not a saved model
    with pytest.raises(CheckpointError, match="multitask-model"):
        load_model(tmp_path)
