"""multitask compare: the same splits for every model, references, the files, and numbers that recompute."""

from __future__ import annotations

import argparse
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from multitask import _cli_compare
from multitask.compare import compare, split_ids
from multitask.config import RunConfig
from multitask.datasets._sarcos import task_name
from multitask.errors import ConfigError
from multitask.selection import CANDIDATES, ENSEMBLE
from tests.conftest import make_wide
from tests.test_selection import long_table

QUIET = {"progress": False}


def strict(text: str) -> Any:
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))


def cli(*args: str) -> tuple[int, str]:
    """``multitask compare ARGS`` through the subcommand's own parser, printed into a string."""
    parser = argparse.ArgumentParser(prog="multitask")
    _cli_compare.add_parser(parser.add_subparsers(dest="command"))
    console = Console(width=250, record=True, file=io.StringIO())
    rc = _cli_compare.run(parser.parse_args(["compare", *args]), console)
    return rc, console.export_text()


def test_compare_writes_the_files_and_its_numbers_recompute(tmp_path: Path) -> None:
    path = long_table(tmp_path / "a.csv", {"a": 50, "b": 50, "c": 50}, noise=0.5)
    base = RunConfig(data=str(path), task_column="task", target="y", train=QUIET)
    board = compare(["linear:trace-norm", "gbdt:multitask"], base, splits=2, seeds=2, out=tmp_path / "out")
    for name in ("results.csv", "leaderboard.csv", "leaderboard.png"):
        assert (tmp_path / "out" / name).is_file(), name
    assert (tmp_path / "out" / "leaderboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert board.stl == "linear:independent" and board.pooled == "linear:pooled"

    results = pd.read_csv(tmp_path / "out" / "results.csv", dtype={"split": str})
    assert len(results) == 4 * 2 * 2 * 3  # models (with the two references) x splits x seeds x tasks
    assert set(results["model"]) == {"linear:trace-norm", "gbdt:multitask", "linear:independent", "linear:pooled"}
    for options in results["options"]:
        strict(options)
    # a split's rows do not change with the seed: the linear models (which ignore it) score alike on both seeds
    lin = results[results["model"] == "linear:independent"].pivot_table(index=["split", "task"], columns="seed",
                                                                          values="rmse")
    np.testing.assert_allclose(lin[0], lin[1])

    board_csv = pd.read_csv(tmp_path / "out" / "leaderboard.csv").set_index("model")
    for model, mine in results.groupby("model"):
        per_run = mine.groupby(["split", "seed"])["rmse"].mean()
        assert board_csv.loc[model, "rmse_mean"] == pytest.approx(per_run.mean())
        assert board_csv.loc[model, "rmse_sd"] == pytest.approx(per_run.std(ddof=1))
        stl = results[results["model"] == "linear:independent"].set_index(["split", "seed", "task"])["rmse"]
        ours = mine.set_index(["split", "seed", "task"])["rmse"]
        deltas = (-(ours - stl.loc[ours.index]) / stl.loc[ours.index]).groupby(["split", "seed"]).mean() * 100
        assert board_csv.loc[model, "delta_m_stl_mean"] == pytest.approx(deltas.mean(), abs=1e-9)
        by_task = ours.groupby("task").mean(), stl.groupby("task").mean()
        assert board_csv.loc[model, "won"] == int((by_task[0] < by_task[1]).sum())
        assert board_csv.loc[model, "lost"] == int((by_task[0] > by_task[1]).sum())
    assert board_csv.loc["linear:independent", "delta_m_stl_mean"] == 0.0
    assert board_csv.loc["linear:pooled", "delta_m_pooled_mean"] == 0.0
    assert board_csv.loc["linear:independent", "role"] == "stl"
    assert [r["model"] for r in board.rows] == list(board_csv.index)
    stl_deltas = [r["delta_m_stl_mean"] for r in board.rows]
    assert stl_deltas == sorted(stl_deltas, reverse=True)


def test_mixed_kinds_report_each_deciding_metric_and_no_pooled_reference(tmp_path: Path) -> None:
    make_wide(240).to_csv(tmp_path / "w.csv", index=False)
    base = RunConfig(data=str(tmp_path / "w.csv"), tasks=["y1:regression", "y2:binary"], train=QUIET)
    board = compare(["linear:l21"], base, splits=1, out=tmp_path / "out")
    assert board.metrics == ["rmse", "auc"]
    assert board.pooled is None  # wide-form tasks are pooled only with --poolable
    row = next(r for r in board.rows if r["model"] == "linear:l21")
    assert row["delta_m_pooled_mean"] is None
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    y2 = results[(results["model"] == "linear:l21") & (results["task"] == "y2")]
    assert row["auc_mean"] == pytest.approx(float(y2["auc"].iloc[0]))
    assert set(results["deciding"]) == {"rmse", "auc"}


def test_a_multiclass_task_takes_trees_as_stl_and_a_model_that_fails_is_reported(tmp_path: Path) -> None:
    make_wide(240).to_csv(tmp_path / "w.csv", index=False)
    base = RunConfig(data=str(tmp_path / "w.csv"), tasks=["y1:regression", "cls:multiclass"], train=QUIET)
    board = compare(["linear:trace-norm", "gbdt:multitask"], base, splits=1, out=tmp_path / "out")
    assert board.stl == "gbdt:independent"
    failed = next(r for r in board.rows if r["model"] == "linear:trace-norm")
    assert failed["status"].startswith("failed: task 'cls' is multiclass")
    assert next(r for r in board.rows if r["model"] == "gbdt:multitask")["status"] == "ok"


def test_auto_and_search_choose_on_each_split_without_its_test_part(tmp_path: Path) -> None:
    path = long_table(tmp_path / "a.csv", {"a": 40, "b": 40, "one": 1, "two": 2, "three": 3})
    base = RunConfig(data=str(path), task_column="task", target="y", train={"epochs": 2, "progress": False})
    board = compare(["auto", "linear:independent"], base, splits=1, out=tmp_path / "out", search=2)
    assert {r["model"] for r in board.rows if r["status"] == "ok"} >= {"auto", "linear:independent"}
    chosen = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(chosen.loc[chosen["model"] == "auto", "chosen"]) <= {*CANDIDATES, ENSEMBLE}
    selection = pd.read_csv(tmp_path / "out" / "selection" / "auto" / "1-0" / "selection.csv")
    assert len(selection[selection["model"] == "linear:trace-norm"]) == 2  # --search 2 for each candidate


@pytest.mark.shared_data
def test_the_command_on_fixed_splits_of_a_built_in_data_set(shared_data: Path, tmp_path: Path) -> None:
    rc, text = cli("--dataset", "sarcos", "--data-dir", str(shared_data), "--splits", "1-2",
                   "--models", "linear:trace-norm", "--out", str(tmp_path / "out"))
    assert rc == 0
    assert "linear:trace-norm" in text and "linear:independent (STL)" in text and "linear:pooled (pooled)" in text
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert sorted(set(results["split"])) == [1, 2]
    assert set(results["task"]) == {task_name(j) for j in range(1, 8)}


def test_bad_arguments_are_one_line_errors(tmp_path: Path) -> None:
    path = long_table(tmp_path / "a.csv", {"a": 30, "b": 30})
    base = RunConfig(data=str(path), task_column="task", target="y", train=QUIET)
    with pytest.raises(ConfigError, match="split numbers name a built-in data set's fixed splits"):
        compare(["linear:l21"], base, splits=[1, 2], out=tmp_path / "o1")
    with pytest.raises(ConfigError, match="unknown model 'linear:nope'"):
        compare(["linear:nope"], base, out=tmp_path / "o2")
    given = base.model_copy(update={"test_data": str(path)})
    with pytest.raises(ConfigError, match="this data has its own test part"):
        compare(["linear:l21"], given, splits=3, out=tmp_path / "o3")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match=r"--out .*mine: the folder has other files in it \(notes.txt"):
        cli("--data", str(path), "--task-column", "task", "--target", "y", "--models", "linear:l21",
            "--out", str(tmp_path / "mine"))
    with pytest.raises(ConfigError, match="--splits 'x'"):
        cli("--data", str(path), "--task-column", "task", "--target", "y", "--models", "linear:l21",
            "--splits", "x", "--out", str(tmp_path / "o4"))
    assert split_ids("1-3,7") == [1, 2, 3, 7]
    with pytest.raises(ConfigError):
        split_ids("1-b")


def test_given_test_data_is_the_one_split(tmp_path: Path) -> None:
    frame = pd.read_csv(long_table(tmp_path / "a.csv", {"a": 60, "b": 60}))
    frame.iloc[::4].to_csv(tmp_path / "test.csv", index=False)
    frame.drop(frame.index[::4]).to_csv(tmp_path / "train.csv", index=False)
    rc, text = cli("--data", str(tmp_path / "train.csv"), "--test-data", str(tmp_path / "test.csv"),
                   "--task-column", "task", "--target", "y", "--models", "linear:l21", "--out", str(tmp_path / "out"))
    assert rc == 0 and "linear:l21" in text
    results = pd.read_csv(tmp_path / "out" / "results.csv", dtype={"split": str})
    assert set(results["split"]) == {"given"}
    assert not any(math.isnan(v) for v in results["rmse"])


def test_a_model_variant_carries_its_options() -> None:
    from multitask.compare import parse_variant

    assert parse_variant("hard-sharing") == ("hard-sharing", {})
    assert parse_variant("hard-sharing[head=shared; head_penalty=0.01]") == (
        "hard-sharing",
        {"head": "shared", "head_penalty": 0.01},
    )
    assert parse_variant("tree[tree=[[a, b], [c]]]") == ("tree", {"tree": [["a", "b"], ["c"]]})
    with pytest.raises(ConfigError, match="key=value"):
        parse_variant("hard-sharing[head]")
    with pytest.raises(ConfigError, match="closing"):
        parse_variant("hard-sharing[head=shared")
