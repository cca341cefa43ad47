"""The command line's contract, case by case (docs/cli.md, "What the command line promises").

Every invocation ends with exit 0 and files a strict JSON parser reads, or with exit 2 and one line
``multitask: error: …`` naming what is at fault; names never become paths; nothing a user had is lost.
Each test is one case that once went wrong, or could.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd
import pytest

from multitask.errors import DataError
from tests.test_fuzz import (
    TASK_DIR,
    assert_complete_run,
    assert_error_line,
    assert_written_only,
    cli,
    snapshot,
    strict_loads,
)

DEEP = ["--epochs", "1", "--batch-size", "16", "--hidden", "4", "--quiet"]
LINEAR = ["--model", "linear:independent", "--quiet"]


def table(n: int = 30, seed: int = 0) -> pd.DataFrame:
    """``x`` (numeric), ``c`` (category), ``y1`` (regression) and ``y2`` (binary)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.standard_normal(n), "c": rng.choice(["a", "b"], n)})
    frame["y1"] = 2 * frame["x"] + 0.1 * rng.standard_normal(n)
    frame["y2"] = (frame["x"] > 0).astype(int)
    return frame


def long_table(ids: list[Any], n_per_task: int = 12, seed: int = 0) -> pd.DataFrame:
    """Long form: column ``task`` holds each row's task id, ``y`` its target."""
    rng = np.random.default_rng(seed)
    n = n_per_task * len(ids)
    frame = pd.DataFrame({"x": rng.standard_normal(n), "task": np.repeat(np.array(ids, dtype=object), n_per_task)})
    frame["y"] = frame["x"] + 0.1 * rng.standard_normal(n)
    return frame


def write(frame: pd.DataFrame, path: Path, sep: str = ",") -> Path:
    frame.to_csv(path, index=False, sep=sep)
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write(table(), tmp_path / "data.csv")


@pytest.fixture
def deep_run(tmp_path: Path, data: Path) -> Path:
    """A finished run of the deep model on ``data`` (tasks y1, y2)."""
    out = tmp_path / "run"
    assert cli("train", "--data", str(data), "--task", "y1:regression", "--task", "y2:binary", "--out", str(out),
               *DEEP).code == 0
    return out


@pytest.fixture
def linear_run(tmp_path: Path, data: Path) -> Path:
    out = tmp_path / "linear-run"
    assert cli("train", "--data", str(data), "--task", "y1:regression", "--task", "y2:binary", "--out", str(out),
               *LINEAR).code == 0
    return out


def run_process(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m multitask ARGS`` as a user runs it (for what must be checked end to end: the exit status)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "multitask", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=cwd)


def assert_process_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("multitask: error: "), proc.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# ---- names never become paths ------------------------------------------------------------------------------
def test_a_long_form_id_dotdot_stays_inside_the_run(tmp_path: Path) -> None:
    data = write(long_table(["..", "g"]), tmp_path / "long.csv")
    out = tmp_path / "runs" / "run"
    before = snapshot(tmp_path)
    o = cli("train", "--data", str(data), "--task-column", "task", "--target", "y", "--baseline", "stl",
            "--out", str(out), *DEEP)
    assert o.code == 0, o.err
    assert_written_only(tmp_path, before, [out])
    assert_complete_run(out)
    model = json.loads((out / "model.json").read_text())
    assert [t["name"] for t in model["tasks"]] == ["..", "g"]  # the main model, not a single-task one
    dirs = json.loads((out / "run.json").read_text())["task_dirs"]
    assert set(dirs) == {"..", "g"}
    assert {p.name for p in (out / "baseline" / "stl").iterdir()} == set(dirs.values())
    for folder in dirs.values():
        single = json.loads((out / "baseline" / "stl" / folder / "model.json").read_text())
        assert len(single["tasks"]) == 1
    assert cli("evaluate", "--run", str(out), "--data", str(data)).code == 0


def test_ids_equal_after_slugging_each_get_their_own_baseline_folder(tmp_path: Path) -> None:
    ids = ["a/b", "a_b", "a\\b"]
    data = write(long_table(ids), tmp_path / "long.csv")
    out = tmp_path / "run"
    before = snapshot(tmp_path)
    o = cli("train", "--data", str(data), "--task-column", "task", "--target", "y", "--baseline", "stl",
            "--out", str(out), *LINEAR)
    assert o.code == 0, o.err
    assert_written_only(tmp_path, before, [out])
    metrics = assert_complete_run(out)
    assert set(metrics["tasks"]) == set(ids)
    assert set(metrics["baselines"]["stl"]["tasks"]) == set(ids)
    dirs = json.loads((out / "run.json").read_text())["task_dirs"]
    assert sorted(dirs) == sorted(ids) and len(set(dirs.values())) == 3
    stl = out / "baseline" / "stl"
    for task, folder in dirs.items():
        assert TASK_DIR.fullmatch(folder), folder
        assert (stl / folder / "linear.npz").is_file(), task
    assert len(list(stl.iterdir())) == 3


def test_a_300_character_id_trains_and_evaluates(tmp_path: Path) -> None:
    long_id = "q" * 300
    data = write(long_table([long_id, "b"]), tmp_path / "long.csv")
    out = tmp_path / "run"
    o = cli("train", "--data", str(data), "--task-column", "task", "--target", "y", "--baseline", "stl",
            "--out", str(out), *DEEP)
    assert o.code == 0, o.err
    assert_complete_run(out)
    folder = json.loads((out / "run.json").read_text())["task_dirs"][long_id]
    assert len(folder) <= 44 and (out / "baseline" / "stl" / folder / "model.pt").is_file()
    o = cli("evaluate", "--run", str(out), "--data", str(data), "--json")
    assert o.code == 0, o.err
    assert set(strict_loads(o.out)) == {long_id, "b"}


def test_a_task_name_with_a_dot_trains_and_predicts(tmp_path: Path) -> None:
    frame = table().rename(columns={"y2": "income.gt50k"})
    data = write(frame, tmp_path / "data.csv")
    out = tmp_path / "run"
    o = cli("train", "--data", str(data), "--task", "income.gt50k:binary", "--features", "x,c", "--out", str(out),
            *DEEP)
    assert o.code == 0, o.err
    assert set(assert_complete_run(out)["tasks"]) == {"income.gt50k"}
    assert cli("predict", "--run", str(out), "--data", str(data), "--output", str(tmp_path / "p.csv")).code == 0
    assert pd.read_csv(tmp_path / "p.csv")["income.gt50k"].between(0, 1).all()


def test_long_form_ids_read_as_floats_train_evaluate_and_predict(tmp_path: Path) -> None:
    data = write(long_table([1.0, 2.0]), tmp_path / "long.csv")
    assert pd.read_csv(data)["task"].dtype == np.float64  # the ids read back as 1.0 and 2.0
    out = tmp_path / "run"
    o = cli("train", "--data", str(data), "--task-column", "task", "--target", "y", "--out", str(out), *DEEP)
    assert o.code == 0, o.err
    assert set(assert_complete_run(out)["tasks"]) == {"1.0", "2.0"}
    o = cli("evaluate", "--run", str(out), "--data", str(data), "--json")
    assert o.code == 0, o.err
    assert set(strict_loads(o.out)) == {"1.0", "2.0"}
    o = cli("predict", "--run", str(out), "--data", str(data), "--output", str(tmp_path / "p.csv"))
    assert o.code == 0, o.err
    pred = pd.read_csv(tmp_path / "p.csv")
    assert len(pred) == 24 and pred["prediction"].notna().all()


@pytest.mark.parametrize("where", ["task name", "run folder", "predict output"])
def test_a_name_that_looks_like_markup_is_printed_as_it_is(tmp_path: Path, where: str) -> None:
    task = "[/]" if where == "task name" else "y1"
    out = tmp_path / ("[/]run" if where == "run folder" else "run")
    data = write(table().rename(columns={"y1": task}), tmp_path / "data.csv")
    o = cli("train", "--data", str(data), f"--task={task}:regression", "--features", "x", "--out", str(out), *LINEAR)
    assert o.code == 0, o.err
    assert task in o.out and str(out) in o.out.replace("\n", "")
    if where == "predict output":
        output = tmp_path / "[bold]p.csv"
        o = cli("predict", "--run", str(out), "--data", str(data), "--output", str(output))
        assert o.code == 0, o.err
        assert output.is_file() and "[bold]p.csv" in o.out.replace("\n", "")


def test_a_data_file_with_an_equals_sign_in_its_name_is_read(linear_run: Path, tmp_path: Path) -> None:
    data = write(table(), tmp_path / "a=b.csv")
    o = cli("evaluate", "--run", str(linear_run), "--data", str(data), "--json")
    assert o.code == 0, o.err
    assert set(strict_loads(o.out)) == {"y1", "y2"}


def test_a_per_task_run_with_an_equals_sign_in_a_task_name_evaluates(tmp_path: Path) -> None:
    write(table(), tmp_path / "one.csv")
    write(table(seed=1), tmp_path / "two.csv")
    config = tmp_path / "run.yaml"
    config.write_text("tasks:\n  - {name: 'a=b', kind: regression, data: one.csv, target: y1}\n"
                      "  - {name: c, kind: binary, data: two.csv, target: y2}\n")
    out = tmp_path / "run"
    with pytest.MonkeyPatch.context() as m:
        m.chdir(tmp_path)
        assert cli("train", "--config", str(config), "--out", str(out), *DEEP).code == 0
        o = cli("evaluate", "--run", str(out), "--data", "a=b=one.csv", "--data", "c=two.csv", "--json")
    assert o.code == 0, o.err
    assert set(strict_loads(o.out)) == {"a=b", "c"}


# ---- nothing a user had is lost ----------------------------------------------------------------------------
@pytest.mark.parametrize("spelling", ["same", "absolute", "dotted"])
def test_predict_output_equal_to_the_input_is_refused(deep_run: Path, data: Path, spelling: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(data.parent)
    given = {"same": "data.csv", "absolute": str(data), "dotted": "./../" + data.parent.name + "/data.csv"}[spelling]
    original = data.read_bytes()
    o = cli("predict", "--run", str(deep_run), "--data", "data.csv", "--output", given)
    assert_error_line(o, "--output", "input")
    assert data.read_bytes() == original


@pytest.mark.parametrize("inside", ["run.json", "new.csv", "metrics.json", "sub/new.csv"])
def test_predict_output_inside_the_run_is_refused(deep_run: Path, data: Path, inside: str) -> None:
    (deep_run / "sub").mkdir()
    before = snapshot(deep_run)
    o = cli("predict", "--run", str(deep_run), "--data", str(data), "--output", str(deep_run / inside))
    assert_error_line(o, "--output", "inside the run")
    assert snapshot(deep_run) == before


def test_predict_output_inside_another_run_is_refused(deep_run: Path, linear_run: Path, data: Path) -> None:
    before = snapshot(linear_run)
    o = cli("predict", "--run", str(deep_run), "--data", str(data), "--output", str(linear_run / "p.csv"))
    assert_error_line(o, "--output", "inside the run")
    assert snapshot(linear_run) == before


def test_train_into_a_folder_with_the_users_files_is_refused(tmp_path: Path, data: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes\n")
    before = snapshot(tmp_path)
    o = cli("train", "--data", str(data), "--task", "y1:regression", "--out", str(mine), "--overwrite", *LINEAR)
    assert_error_line(o, "--out", "not a multitask run")
    assert snapshot(tmp_path) == before


def test_overwrite_never_removes_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    data = write(table(), mine / "data.csv")
    (mine / "INCOMPLETE").write_text("my list of unfinished things\n")
    before = snapshot(tmp_path)
    o = cli("train", "--data", str(data), "--task", "y1:regression", "--out", str(mine), "--overwrite", *LINEAR)
    assert_error_line(o, "--out")
    assert snapshot(tmp_path) == before


def test_overwrite_keeps_the_input_file(tmp_path: Path, linear_run: Path) -> None:
    data = write(table(seed=1), linear_run / "new-data.csv")
    original = data.read_bytes()
    o = cli("train", "--data", str(data), "--task", "y1:regression", "--out", str(linear_run), "--overwrite",
            *LINEAR)
    if o.code != 0:
        assert_error_line(o)
    assert data.is_file() and data.read_bytes() == original


def test_demo_never_replaces_a_run_it_was_not_asked_to(linear_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import multitask.datasets

    def no_local_copy(*args: Any, **kwargs: Any) -> NoReturn:
        raise DataError("no local copy")  # the demo then trains on generated data (seconds, not minutes)

    monkeypatch.setattr(multitask.datasets, "census_income", no_local_copy)
    before = snapshot(linear_run)
    o = cli("demo", "--out", str(linear_run))
    if o.code != 0:
        assert_error_line(o, "--out")
    assert snapshot(linear_run) == before


@pytest.mark.parametrize("out", ["", " "])
def test_train_out_empty_is_refused(tmp_path: Path, data: Path, out: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    o = cli("train", "--data", str(data), "--task", "y1:regression", "--out", out, *LINEAR)
    assert_error_line(o, "--out")
    assert snapshot(tmp_path) == before


def test_train_over_a_run_without_resume_or_overwrite_is_refused(deep_run: Path, data: Path) -> None:
    before = snapshot(deep_run)
    o = cli("train", "--data", str(data), "--task", "y1:regression", "--out", str(deep_run), *DEEP)
    assert_error_line(o, str(deep_run), "--resume", "--overwrite")
    assert snapshot(deep_run) == before


def test_overwrite_replaces_the_run_whole(tmp_path: Path, data: Path) -> None:
    out = tmp_path / "run"
    tasks = ["--task", "y1:regression", "--task", "y2:binary"]
    assert cli("train", "--data", str(data), *tasks, "--baseline", "stl", "--out", str(out), *DEEP).code == 0
    assert (out / "baseline" / "stl").is_dir()
    o = cli("train", "--data", str(data), "--task", "y1:regression", "--out", str(out), "--overwrite", *LINEAR)
    assert o.code == 0, o.err
    metrics = assert_complete_run(out)
    assert set(metrics["tasks"]) == {"y1"} and metrics["baselines"] == {}
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "eval_predictions.npz", "linear.npz",
                                                      "metrics.json", "preprocessing.json", "run.json"]


def test_predict_output_ending_in_a_slash_is_refused(deep_run: Path, data: Path, tmp_path: Path) -> None:
    o = cli("predict", "--run", str(deep_run), "--data", str(data), "--output", str(tmp_path / "newdir") + "/")
    assert_error_line(o, "--output")
    assert not (tmp_path / "newdir").exists()


# ---- options -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "0", "-1"])
def test_a_learning_rate_that_is_not_finite_and_positive_is_refused(data: Path, tmp_path: Path, value: str) -> None:
    o = cli("train", "--data", str(data), "--task", "y1:regression", "--lr", value, "--out", str(tmp_path / "r"),
            *DEEP)
    assert_error_line(o, "--lr")
    assert not (tmp_path / "r").exists()


def test_divergence_ends_in_one_line_naming_task_and_epoch_and_an_incomplete_run(tmp_path: Path) -> None:
    frame = table()
    frame["y1"] *= 1000.0
    data = write(frame, tmp_path / "data.csv")
    out = tmp_path / "run"
    o = cli("train", "--data", str(data), "--task", "y1:regression", "--optimizer", "sgd", "--lr", "1e8",
            "--batch-size", "4", "--epochs", "5", "--hidden", "4", "--quiet", "--out", str(out))
    assert_error_line(o, "'y1'", "epoch")
    assert (out / "INCOMPLETE").is_file()
    assert not (out / "model.pt").exists() and not (out / "metrics.json").exists()
    for line in (out / "log.jsonl").read_text().splitlines():
        strict_loads(line)
    assert_error_line(cli("evaluate", "--run", str(out), "--data", str(data)), str(out), "did not finish")
    assert_error_line(cli("predict", "--run", str(out), "--data", str(data), "--output", str(tmp_path / "p.csv")),
                      "did not finish")
    assert not (tmp_path / "p.csv").exists()


def test_a_one_class_validation_part_gives_null_and_a_reason(tmp_path: Path) -> None:
    frame = table()
    # b is declared first, so its 4 labelled rows form their own group: one of them is held out (docs/cli.md)
    frame["b"] = np.nan
    frame.loc[[0, 1, 2, 3], "b"] = [0, 0, 1, 1]
    data = write(frame, tmp_path / "data.csv")
    out = tmp_path / "run"
    o = cli("train", "--data", str(data), "--task", "b:binary", "--task", "y1:regression", "--features", "x,c",
            "--out", str(out), *DEEP)
    assert o.code == 0, o.err
    metrics = assert_complete_run(out)
    assert metrics["tasks"]["b"]["auc"] is None
    assert metrics["tasks"]["b"]["accuracy"] is not None
    assert "auc" in metrics["not_evaluated"]["b"]
    assert metrics["mean"]["auc"] is None


def test_a_tiny_validation_fraction_gives_null_and_a_reason(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    o = cli("train", "--data", str(data), "--task", "y1:regression", "--task", "y2:binary", "--valid-fraction",
            "0.01", "--baseline", "stl", "--out", str(out), *DEEP)
    assert o.code == 0, o.err
    metrics = assert_complete_run(out)
    assert metrics["tasks"]["y1"]["r2"] is None and metrics["tasks"]["y1"]["rmse"] is not None
    assert metrics["tasks"]["y2"]["auc"] is None
    assert "r2" in metrics["not_evaluated"]["y1"] and "auc" in metrics["not_evaluated"]["y2"]
    assert metrics["baselines"]["stl"]["tasks"]["y2"]["auc"] is None


def test_a_task_with_one_labelled_row_gives_null_and_a_reason(tmp_path: Path) -> None:
    frame = table()
    frame["y3"] = np.nan
    frame.loc[5, "y3"] = 2.0
    data = write(frame, tmp_path / "data.csv")
    out = tmp_path / "run"
    o = cli("train", "--data", str(data), "--task", "y3:regression", "--task", "y1:regression", "--features", "x,c",
            "--baseline", "stl", "--out", str(out), *DEEP)
    assert o.code == 0, o.err
    metrics = assert_complete_run(out)
    assert all(v is None for v in metrics["tasks"]["y3"].values())
    assert "no labelled rows" in metrics["not_evaluated"]["y3"]
    assert metrics["baselines"]["stl"]["delta_m_tasks"] == 1


def test_a_huge_feature_value_is_refused_naming_the_column(tmp_path: Path) -> None:
    frame = table()
    frame.loc[3, "x"] = 1e300
    data = write(frame, tmp_path / "data.csv")
    o = cli("train", "--data", str(data), "--task", "y1:regression", "--out", str(tmp_path / "r"), *LINEAR)
    assert_error_line(o, "data.csv", "'x'", "row 3")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--dataset", "synthetic", "--data", "DATA"], ["--data", "--dataset"]),
        (["--dataset", "synthetic", "--task", "y1:regression"], ["--dataset"]),
        (["--data", "DATA", "--task", "y1:regression", "--cv", "3"], ["--cv", "linear"]),
        (["--data", "DATA", "--task", "y1:regression", "--model", "linear:independent", "--epochs", "3"],
         ["--epochs", "deep"]),
        (["--data", "DATA", "--task", "y1:regression", "--task-kind", "binary"], ["--task-kind", "NAME:KIND"]),
        (["--data", "DATA", "--task", "y1:regression", "--data-dir", "."], ["--data-dir", "--dataset"]),
        (["--data", "DATA", "--task-column", "c", "--target", "y1", "--poolable"], ["--poolable"]),
    ],
)
def test_options_that_do_not_apply_are_refused(data: Path, tmp_path: Path, args: list[str],
                                               needles: list[str]) -> None:
    args = [str(data) if a == "DATA" else a for a in args]
    o = cli("train", *args, "--out", str(tmp_path / "r"), "--quiet")
    assert_error_line(o, *needles)
    assert not (tmp_path / "r").exists()


def test_dataset_with_task_names_the_flag_as_given(tmp_path: Path) -> None:
    o = cli("train", "--dataset", "synthetic", "--task", "y1:regression", "--out", str(tmp_path / "r"), "--quiet")
    line = assert_error_line(o, "--task")
    assert "--tasks" not in line


def test_a_wide_task_without_a_kind_is_refused(data: Path, tmp_path: Path) -> None:
    o = cli("train", "--data", str(data), "--task", "y1", "--out", str(tmp_path / "r"), *LINEAR)
    assert_error_line(o, "'y1'", "NAME:KIND")


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("model: hard-sharing\nmodel: linear:pooled\n", ["'model'", "twice"]),
        ("train:\n  epochs: 1\n  epochs: 2\n", ["'epochs'", "twice"]),
        ("train: {lr: 0.1, lr: 0.2}\n", ["'lr'", "twice"]),
        ("train: {epochs: true}\n", ["'epochs'", "integer"]),
        ("train: {batch_size: 16.0}\n", ["'batch_size'", "integer"]),
        ("train: {lr: .inf}\n", ["'lr'", "finite"]),
        ("epochs: 1\n", ["'epochs'"]),
        ("poolable: yes please\n", ["'poolable'"]),
    ],
)
def test_a_config_file_with_a_bad_key_is_refused_naming_it(data: Path, tmp_path: Path, text: str,
                                                           needles: list[str]) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(text)
    o = cli("train", "--config", str(config), "--data", str(data), "--task", "y1:regression",
            "--out", str(tmp_path / "r"))
    assert_error_line(o, "run.yaml", *needles)


def test_a_layer_width_too_large_is_refused_in_one_line(data: Path, tmp_path: Path) -> None:
    o = cli("train", "--data", str(data), "--task", "y1:regression", "--epochs", "1", "--quiet",
            "--hidden", "99999999999999999999", "--out", str(tmp_path / "r"))
    assert_error_line(o, "hidden")


@pytest.mark.parametrize(
    ("model", "option"),
    [
        pytest.param("hard-sharing", "hidden: 4", id="hidden: 4"),
        pytest.param("hard-sharing", "hidden: null", id="hidden: null"),
        pytest.param("hard-sharing", "dropout: abc", id="dropout: abc"),
        pytest.param("hard-sharing", "dropout: null", id="dropout: null"),
        pytest.param("linear:independent", "loss: 3", id="linear loss: 3"),
    ],
)
def test_a_model_option_of_the_wrong_type_is_refused_in_one_line(data: Path, tmp_path: Path, model: str,
                                                                 option: str) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {model}\nmodel_options: {{{option}}}\n")
    fast = [] if model.startswith("linear") else ["--epochs", "1", "--batch-size", "16"]
    o = cli("train", "--config", str(config), "--data", str(data), "--task", "y1:regression", *fast, "--quiet",
            "--out", str(tmp_path / "r"))
    assert_error_line(o, option.split(":")[0])
    assert not (tmp_path / "r").exists()


def test_too_many_threads_are_refused_in_one_line(data: Path, tmp_path: Path) -> None:
    proc = run_process("train", "--data", str(data), "--task", "y1:regression", "--epochs", "1", "--quiet",
                       "--threads", "2147483647", "--out", str(tmp_path / "r"))
    assert_process_error(proc, "--threads")


# ---- reading the user's table ------------------------------------------------------------------------------
def test_one_stray_word_in_a_numeric_column_is_refused_naming_column_and_row(tmp_path: Path) -> None:
    frame = table().astype({"x": object})
    frame.loc[7, "x"] = "unknown"
    data = write(frame, tmp_path / "data.csv")
    o = cli("train", "--data", str(data), "--task", "y1:regression", "--out", str(tmp_path / "r"), *LINEAR)
    assert_error_line(o, "data.csv", "'x'", "'unknown'", "row 7")


def test_a_repeated_column_name_is_refused_naming_it(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x,y1,x\n" + "".join(f"{i},{i * 2},{i % 3}\n" for i in range(20)))
    o = cli("train", "--data", str(data), "--task", "y1:regression", "--out", str(tmp_path / "r"), *LINEAR)
    assert_error_line(o, "data.csv", "'x'", "more than once")


@pytest.mark.parametrize("sep_flag", [[], ["--sep", ";"]])
def test_a_semicolon_separated_file_is_read_by_its_columns(tmp_path: Path, sep_flag: list[str]) -> None:
    frame = table()
    frame["x"] = frame["x"].round(3)
    data = write(frame, tmp_path / "data.csv", sep=";")
    out = tmp_path / "run"
    o = cli("train", "--data", str(data), *sep_flag, "--task", "y1:regression", "--task", "y2:binary",
            "--out", str(out), *LINEAR)
    assert o.code == 0, o.err
    assert_complete_run(out)
    declaration = json.loads((out / "run.json").read_text())["declaration"]
    assert declaration["sources"]["data"]["features"] == ["x", "c"]
    o = cli("evaluate", "--run", str(out), "--data", str(data), *sep_flag)
    assert o.code == 0, o.err


def test_predict_long_form_multiclass_gives_each_rows_class(tmp_path: Path) -> None:
    frame = long_table(["u", "v"], n_per_task=20)
    frame["y"] = np.where(frame["x"] > 0.4, "hi", np.where(frame["x"] < -0.4, "lo", "mid"))
    data = write(frame, tmp_path / "long.csv")
    out = tmp_path / "run"
    o = cli("train", "--data", str(data), "--task-column", "task", "--target", "y", "--task-kind", "multiclass",
            "--out", str(out), *DEEP)
    assert o.code == 0, o.err
    o = cli("predict", "--run", str(out), "--data", str(data), "--output", str(tmp_path / "p.csv"))
    assert o.code == 0, o.err
    pred = pd.read_csv(tmp_path / "p.csv")
    assert list(pred.columns) == ["task", "prediction", "prediction:hi", "prediction:lo", "prediction:mid"]
    assert list(pred["task"]) == list(frame["task"])
    probs = pred[["prediction:hi", "prediction:lo", "prediction:mid"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert list(pred["prediction"]) == [["hi", "lo", "mid"][i] for i in probs.argmax(axis=1)]


def test_predict_long_form_multilabel_gives_each_rows_label_set(tmp_path: Path) -> None:
    frame = long_table(["u", "v"], n_per_task=20)
    frame["y"] = np.where(frame["x"] > 0, "p|q", "q")
    frame.loc[[0, 21], "y"] = "r"
    data = write(frame, tmp_path / "long.csv")
    out = tmp_path / "run"
    o = cli("train", "--data", str(data), "--task-column", "task", "--target", "y", "--task-kind", "multilabel",
            "--out", str(out), "--epochs", "3", "--lr", "0.05", "--batch-size", "16", "--hidden", "4", "--quiet")
    assert o.code == 0, o.err
    o = cli("predict", "--run", str(out), "--data", str(data), "--output", str(tmp_path / "p.csv"))
    assert o.code == 0, o.err
    pred = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert list(pred.columns) == ["task", "prediction", "prediction:p", "prediction:q", "prediction:r"]
    for _, row in pred.iterrows():
        chosen = [label for label in "pqr" if float(row[f"prediction:{label}"]) >= 0.5]
        assert row["prediction"] == "|".join(chosen)
    assert (pred["prediction"] != "").any()  # the test means something: some label sets are not empty


def test_predict_columns_of_different_tasks_never_collide(tmp_path: Path) -> None:
    frame = table()
    frame["t"] = np.where(frame["x"] > 0.3, "lo", np.where(frame["x"] < -0.3, "hi", "mid"))
    frame["t:lo"] = frame["y1"]
    data = write(frame, tmp_path / "data.csv")
    out = tmp_path / "run"
    o = cli("train", "--data", str(data), "--task", "t:multiclass", "--task", "t:lo:regression", "--features", "x",
            "--out", str(out), *DEEP)
    if o.code == 2:  # refusing the names is fine too
        assert_error_line(o, "t:lo")
        return
    assert cli("predict", "--run", str(out), "--data", str(data), "--output", str(tmp_path / "p.csv")).code == 0
    header = (tmp_path / "p.csv").read_text().splitlines()[0]
    assert len(header.split(",")) == 5, header  # t, t:hi, t:lo, t:mid and the regression task's own column


# ---- output paths the system refuses -----------------------------------------------------------------------
def _unwritable(tmp_path: Path) -> Path:
    if os.geteuid() == 0:
        pytest.skip("running as root: a folder without write permission is still writable")
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


@pytest.mark.parametrize("where", ["folder", "under a file", "not writable", "too long"])
def test_train_out_the_system_refuses_ends_in_one_line(tmp_path: Path, data: Path, where: str) -> None:
    out = {
        "folder": lambda: tmp_path,  # holds data.csv: not a run
        "under a file": lambda: data / "run",
        "not writable": lambda: _unwritable(tmp_path) / "run",
        "too long": lambda: tmp_path / ("a" * 300) / "run",
    }[where]()
    before = snapshot(tmp_path)
    try:
        o = cli("train", "--data", str(data), "--task", "y1:regression", "--out", str(out), *LINEAR)
        assert_error_line(o)
        assert snapshot(tmp_path) == before
    finally:
        if where == "not writable":
            out.parent.chmod(0o700)


@pytest.mark.parametrize("where", ["folder", "under a file", "not writable", "too long"])
def test_predict_output_the_system_refuses_ends_in_one_line(tmp_path: Path, data: Path, deep_run: Path,
                                                           where: str) -> None:
    output = {
        "folder": lambda: tmp_path,
        "under a file": lambda: data / "p.csv",
        "not writable": lambda: _unwritable(tmp_path) / "p.csv",
        "too long": lambda: tmp_path / ("a" * 300 + ".csv"),
    }[where]()
    before = snapshot(tmp_path)
    try:
        o = cli("predict", "--run", str(deep_run), "--data", str(data), "--output", str(output))
        assert_error_line(o)
        assert snapshot(tmp_path) == before
    finally:
        if where == "not writable":
            output.parent.chmod(0o700)


# ---- the argument parser -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--bogus"], "--bogus"),
        (["evaluate", "--data", "x.csv"], "--run"),
        (["train", "--epochs", "abc"], "--epochs"),
        (["predict", "--run", "r", "--data", "x.csv"], "--output"),
        (["nope"], "nope"),
        ([], "COMMAND"),
        (["train", "--model", "nope"], "--model"),
    ],
)
def test_argument_errors_end_in_one_line(args: list[str], needle: str) -> None:
    assert_error_line(cli(*args), needle)


def test_argument_errors_end_in_one_line_and_exit_status_2_for_the_shell(tmp_path: Path) -> None:
    assert_process_error(run_process("train", "--bogus", cwd=tmp_path), "--bogus")
    assert_process_error(run_process("train", "--epochs", "abc", cwd=tmp_path), "--epochs", "'abc'")
    assert list(tmp_path.iterdir()) == []


# ---- edited run directories --------------------------------------------------------------------------------
def _json_edit(name: str, change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def edit(run: Path) -> None:
        path = run / name
        content = json.loads(path.read_text())
        change(content)
        path.write_text(json.dumps(content))

    return edit


def _linear_shape(run: Path) -> None:
    np.savez(run / "linear.npz", coef=np.zeros((2, 7)), intercept=np.zeros(2),
             losses=np.array(["squared", "logistic"]))


EDITS: dict[str, tuple[str, Callable[[Path], None], str]] = {
    # name: (which run, the edit, the file the message names)
    "run.json format": ("deep", _json_edit("run.json", lambda d: d.update(format="multitask-run/99")), "run.json"),
    "run.json no declaration": ("deep", _json_edit("run.json", lambda d: d.pop("declaration")), "run.json"),
    "run.json no model": ("deep", _json_edit("run.json", lambda d: d.pop("model")), "run.json"),
    "run.json bad kind": ("deep", _json_edit("run.json", lambda d: d["declaration"]["tasks"][0].update(kind="x")),
                          "run.json"),
    "run.json not JSON": ("deep", lambda run: (run / "run.json").write_text("{"), "run.json"),
    "preprocessing.json task removed": ("deep", _json_edit("preprocessing.json", lambda d: d["targets"].pop("y2")),
                                        "preprocessing.json"),
    "preprocessing.json kind changed": ("deep", _json_edit(
        "preprocessing.json", lambda d: d["targets"]["y2"].update(kind="regression")), "preprocessing.json"),
    "linear.npz shape": ("linear", _linear_shape, "linear.npz"),
    "linear.npz missing": ("linear", lambda run: (run / "linear.npz").unlink(), "linear.npz"),
    "model.json model": ("deep", _json_edit("model.json", lambda d: d.update(model="zzz")), "model.json"),
    "model.json hidden": ("deep", _json_edit("model.json", lambda d: d.update(hidden=[8])), "model.json"),
    "model.json negative hidden": ("deep", _json_edit("model.json", lambda d: d.update(hidden=[-1])), "model.json"),
    "model.json dropout": ("deep", _json_edit("model.json", lambda d: d.update(dropout=5.0)), "model.json"),
    "model.json extra": ("deep", _json_edit("model.json", lambda d: d.update(bogus=1)), "model.json"),
    "model.json task kind": ("deep", _json_edit("model.json", lambda d: d["tasks"][1].update(kind="regression")),
                             "model.json"),
    "model.json output size": ("deep", _json_edit("model.json", lambda d: d["output_sizes"].update(y1=3)),
                               "model.json"),
    "model.json array": ("deep", lambda run: (run / "model.json").write_text("[1]"), "model.json"),
}
#: edits that once ended in tracebacks or messages not naming the file
BUGS = {
    "model.json hidden as text": ("deep", _json_edit("model.json", lambda d: d.update(hidden="abc")), "model.json",
                                  "bug: model.json hidden 'abc' ends in a ValueError traceback"),
    "model.json dropout as text": ("deep", _json_edit("model.json", lambda d: d.update(dropout="abc")), "model.json",
                                   "bug: model.json dropout 'abc' ends in a TypeError traceback"),
    "preprocessing.json sources a list": ("deep", _json_edit("preprocessing.json", lambda d: d.update(sources=[])),
                                          "preprocessing.json",
                                          "bug: preprocessing.json sources [] ends in an AttributeError traceback"),
    "preprocessing.json emptied": ("deep", _json_edit("preprocessing.json", lambda d: d.clear()),
                                   "preprocessing.json", "bug: the message does not name preprocessing.json"),
    "run.json target columns removed": ("deep", _json_edit("run.json", lambda d: d["declaration"].update(
        target_column={})), "run.json", "bug: the message does not name run.json"),
}


@pytest.mark.parametrize(
    ("which", "edit", "named"),
    [pytest.param(*v, id=k) for k, v in EDITS.items()] + [pytest.param(*v[:3], id=k) for k, v in BUGS.items()],
)
def test_evaluate_refuses_an_edited_run_naming_the_file(deep_run: Path, linear_run: Path, data: Path,
                                                       which: str, edit: Callable[[Path], None], named: str) -> None:
    run = {"deep": deep_run, "linear": linear_run}[which]
    edit(run)
    o = cli("evaluate", "--run", str(run), "--data", str(data))
    assert_error_line(o, named)
    o = cli("predict", "--run", str(run), "--data", str(data), "--output", str(data.parent / "p.csv"))
    assert_error_line(o, named)
    assert not (data.parent / "p.csv").exists()


def test_evaluate_refuses_a_run_copied_without_its_model(deep_run: Path, data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(deep_run, copy)
    (copy / "model.pt").unlink()
    assert_error_line(cli("evaluate", "--run", str(copy), "--data", str(data)), "model.pt")
