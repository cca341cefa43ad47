"""Bad input ends with one line naming the file, column, task or option, exit status 2, and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from multitask.cli import main
from multitask.config import RunConfig
from multitask.data.spec import BuiltinData
from multitask.datasets._long import long_spec
from multitask.runs import train
from multitask.train.config import TrainConfig
from tests.conftest import make_wide

FAST = ["--epochs", "1", "--quiet"]
TASKS = ["--task", "y1:regression", "--task", "y2:binary"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "multitask", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def assert_clean_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("multitask: error: ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def check(capsys: pytest.CaptureFixture[str], args: list[str], *needles: str) -> None:
    """In-process variant (faster): exit status 2 and one error line containing every needle."""
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("multitask: error: "), err
    for needle in needles:
        assert needle in err[0], (needle, err[0])


@pytest.fixture
def trained(tmp_path: Path, wide_csv: Path) -> Path:
    out = tmp_path / "run"
    assert main(["train", "--data", str(wide_csv), *TASKS, "--features", "x0,x1,x2,x3,x4,color",
                 "--out", str(out), *FAST]) == 0
    return out


def test_missing_file(tmp_path: Path) -> None:
    proc = run_cli("train", "--data", str(tmp_path / "nope.csv"), *TASKS, "--out", str(tmp_path / "r"))
    assert_clean_error(proc, "nope.csv", "no such file")


def test_unknown_column(capsys: pytest.CaptureFixture[str], wide_csv: Path, tmp_path: Path) -> None:
    check(capsys, ["train", "--data", str(wide_csv), "--task", "income:binary", "--out", str(tmp_path / "r"), *FAST],
          "wide.csv", "no column 'income'")


def test_unknown_feature_column(capsys: pytest.CaptureFixture[str], wide_csv: Path, tmp_path: Path) -> None:
    check(capsys, ["train", "--data", str(wide_csv), *TASKS, "--features", "x0,zzz", "--out", str(tmp_path / "r")],
          "wide.csv", "'zzz'")


def test_unknown_task_kind(wide_csv: Path, tmp_path: Path) -> None:
    proc = run_cli("train", "--data", str(wide_csv), "--task", "y1:regresion", "--out", str(tmp_path / "r"))
    assert_clean_error(proc, "y1", "unknown task kind 'regresion'")


def test_three_classes_for_a_binary_task(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    frame = make_wide()
    frame["y2"] = np.arange(len(frame)) % 3
    frame.to_csv(tmp_path / "d.csv", index=False)
    check(capsys, ["train", "--data", str(tmp_path / "d.csv"), "--task", "y2:binary", "--features", "x0,x1",
                   "--out", str(tmp_path / "r"), *FAST], "task 'y2' (binary)", "3 classes")


def test_text_for_a_regression_task(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    frame = make_wide()
    frame["y1"] = frame["y1"].astype(object)
    frame.loc[5, "y1"] = "high"
    frame.to_csv(tmp_path / "d.csv", index=False)
    check(capsys, ["train", "--data", str(tmp_path / "d.csv"), "--task", "y1:regression", "--features", "x0,x1",
                   "--out", str(tmp_path / "r"), *FAST], "task 'y1' (regression)", "'high'", "row 5")


def test_task_with_no_labelled_rows(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    frame = make_wide()
    frame["y1"] = np.nan
    frame.to_csv(tmp_path / "d.csv", index=False)
    check(capsys, ["train", "--data", str(tmp_path / "d.csv"), *TASKS, "--features", "x0,x1",
                   "--out", str(tmp_path / "r"), *FAST], "task 'y1' has no labelled rows", "d.csv")


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_nan_or_inf_in_features(capsys: pytest.CaptureFixture[str], tmp_path: Path, bad: str) -> None:
    frame = make_wide()
    frame.loc[11, "x3"] = float(bad)
    frame.to_csv(tmp_path / "d.csv", index=False)
    check(capsys, ["train", "--data", str(tmp_path / "d.csv"), *TASKS, "--features", "x0,x3",
                   "--out", str(tmp_path / "r"), *FAST], "d.csv", "feature column 'x3'")


def test_predict_data_lacking_a_training_column(trained: Path, tmp_path: Path) -> None:
    new = make_wide(20).drop(columns=["x2", "y1", "y2", "cls"])
    new.to_csv(tmp_path / "new.csv", index=False)
    proc = run_cli("predict", "--run", str(trained), "--data", str(tmp_path / "new.csv"),
                   "--output", str(tmp_path / "p.csv"))
    assert_clean_error(proc, "new.csv", "no column 'x2'")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign"])
def test_corrupted_or_foreign_checkpoint(trained: Path, wide_csv: Path, damage: str) -> None:
    import torch

    model = trained / "model.pt"
    if damage == "truncate":
        model.write_bytes(model.read_bytes()[:100])
    elif damage == "garbage":
        model.write_bytes(b"\x00not a checkpoint" * 20)
    else:
        torch.save({"state_dict": {"w": torch.zeros(2)}}, model)
    proc = run_cli("evaluate", "--run", str(trained), "--data", str(wide_csv))
    assert_clean_error(proc, "model.pt")


def test_not_a_run_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path, wide_csv: Path) -> None:
    (tmp_path / "empty").mkdir()
    check(capsys, ["evaluate", "--run", str(tmp_path / "empty"), "--data", str(wide_csv)], "not a run directory")


@pytest.mark.parametrize(
    ("text", "needle"),
    [("tasks: [a:binary\n", "not valid YAML"), ("- 1\n- 2\n", "must be a mapping"),
     ("epochs: 3\n", "'epochs'"), ("train: {epochs: -1}\n", "'epochs'"),
     ("train: {sampling: sometimes}\n", "unknown sampling 'sometimes'"), ("model: linear:nope\n", "'linear:nope'")],
)
def test_unreadable_or_invalid_config(capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str,
                                      needle: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    check(capsys, ["train", "--config", str(config), "--out", str(tmp_path / "r")], "bad.yaml", needle)


def test_missing_config_file(tmp_path: Path) -> None:
    proc = run_cli("train", "--config", str(tmp_path / "none.yaml"))
    assert_clean_error(proc, "none.yaml", "no such config file")


def test_binary_config_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "bin.yaml"
    config.write_bytes(b"\xff\xfe\x00\x01\x80")
    check(capsys, ["train", "--config", str(config)], "bin.yaml")


def test_unknown_test_task_id(capsys: pytest.CaptureFixture[str], long_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["train", "--data", str(long_csv), "--task-column", "group", "--target", "y", "--out", str(out),
                 *FAST]) == 0
    capsys.readouterr()
    frame = pd.read_csv(long_csv)
    frame.loc[0, "group"] = "g99"
    frame.to_csv(tmp_path / "other.csv", index=False)
    check(capsys, ["evaluate", "--run", str(out), "--data", str(tmp_path / "other.csv")], "'g99'", "group")


def test_bad_option_value(capsys: pytest.CaptureFixture[str], wide_csv: Path, tmp_path: Path) -> None:
    check(capsys, ["train", "--data", str(wide_csv), *TASKS, "--valid-fraction", "1.5", "--features", "x0",
                   "--out", str(tmp_path / "r"), *FAST], "--valid-fraction")


def test_unknown_task_id_in_a_built_in_data_set_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A run on a built-in long-form data set (source 'school', not 'data') names the file and the id."""
    frame = pd.DataFrame({"x": np.arange(40.0), "y": np.arange(40.0) % 7, "school": np.arange(40) % 2 + 1})
    spec = long_spec("school", frame, tmp_path / "s.csv", ["x"], "y", "school", [1, 2], lambda i: f"s{i}")
    out = tmp_path / "run"
    train(RunConfig(dataset="school", train=TrainConfig(epochs=1, progress=False), out=str(out)),
          data=BuiltinData("school", spec, None, ""))
    frame.loc[3, "school"] = 9
    frame.to_csv(tmp_path / "other.csv", index=False)
    check(capsys, ["evaluate", "--run", str(out), "--data", str(tmp_path / "other.csv")], "other.csv", "'9'")


def test_an_abbreviated_option_is_an_error_not_another_option(capsys: pytest.CaptureFixture[str],
                                                              tmp_path: Path) -> None:
    """``group --out`` is not ``group --output``: an option that is not spelled out in full is refused."""
    check(capsys, ["group", "--affinity", str(tmp_path / "a.csv"), "--out", str(tmp_path / "g.json")],
          "unrecognized arguments: --out")
    assert not (tmp_path / "g.json").exists()


def test_no_subcommand_accepts_a_prefix_of_its_options() -> None:
    import argparse

    from multitask.cli import build_parser
    from multitask.errors import ConfigError

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, sp in sub.choices.items():
        flags = {s for a in sp._actions for s in a.option_strings}
        required = [arg for a in sp._actions if a.required and a.option_strings for arg in (a.option_strings[0], "x")]
        longest = max((f for f in flags if f.startswith("--")), key=len)
        prefix = next(longest[:n] for n in range(len(longest) - 1, 3, -1) if longest[:n] not in flags)
        with pytest.raises(ConfigError, match=f"unrecognized arguments: {prefix}"):
            parser.parse_args([command, *required, prefix, "1"])
