"""Auxiliary-task selection: the sampling distribution, the choice on generated data, and ``multitask select``."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chisquare

from multitask.affinity import (
    draw_subset,
    draw_subsets,
    inclusion_probabilities,
    relatedness,
    select_auxiliary,
    subset_probability,
)
from multitask.cli import main
from multitask.config import RunConfig

SCORES = {"a": 1.5, "b": -0.5, "c": 0.3}


def _all_subsets(names: list[str]) -> list[tuple[str, ...]]:
    return [tuple(s) for k in range(len(names) + 1) for s in itertools.combinations(names, k)]


def test_the_bernoulli_factorization_is_the_exponential_family() -> None:
    probabilities = inclusion_probabilities(SCORES)
    subsets = _all_subsets(list(SCORES))
    unnormalized = {s: math.exp(sum(SCORES[t] for t in s)) for s in subsets}
    z = sum(unnormalized.values())
    for s in subsets:
        assert subset_probability(s, probabilities) == pytest.approx(unnormalized[s] / z, rel=1e-12)
    assert sum(subset_probability(s, probabilities) for s in subsets) == pytest.approx(1.0)


def test_sampled_frequencies_match_the_distribution() -> None:
    probabilities = inclusion_probabilities(SCORES)
    rng = np.random.default_rng(12345)
    n = 20_000
    subsets = _all_subsets(list(SCORES))
    counts = dict.fromkeys(subsets, 0)
    for _ in range(n):
        counts[draw_subset(probabilities, rng)] += 1
    observed = np.array([counts[s] for s in subsets])
    expected = np.array([n * subset_probability(s, probabilities) for s in subsets])
    assert chisquare(observed, expected).pvalue > 1e-3
    # and a distribution the draws do not follow is rejected: the test has power
    uniform = np.full(len(subsets), n / len(subsets))
    assert chisquare(observed, uniform).pvalue < 1e-6


def test_distinct_subsets_are_drawn_reproducibly_and_all_when_asked_for_more() -> None:
    probabilities = inclusion_probabilities(SCORES)
    first = draw_subsets(probabilities, 4, np.random.default_rng(7))
    assert first == draw_subsets(probabilities, 4, np.random.default_rng(7))
    assert len(first) == 4 and len({s for s, _ in first}) == 4 and all(s and c >= 1 for s, c in first)
    every = draw_subsets(probabilities, 50, np.random.default_rng(7))
    assert sorted(s for s, _ in every) == sorted(s for s in _all_subsets(list(SCORES)) if s)


def test_relatedness_is_the_scaled_column_of_the_target() -> None:
    tasks = ["t", "u", "v", "w"]
    matrix = np.array([[1.0, 0, 0, 0], [0.2, 1, 0, 0], [-0.4, 0, 1, 0], [np.nan, 0, 0, 1]])
    assert relatedness(matrix, tasks, "t", scale=3.0) == pytest.approx({"u": 1.5, "v": -3.0, "w": 0.0})
    assert relatedness(np.eye(4), tasks, "t") == {"u": 0.0, "v": 0.0, "w": 0.0}


def _helpful_and_noise(path: Path, seed: int = 0, n: int = 500, d: int = 20) -> Path:
    """``target`` (10 % labelled), ``copy`` (the same quantity, every row labelled) and ``noise``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = x @ rng.standard_normal(d) + 0.5 * rng.standard_normal(n)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(d)])
    frame["target"] = np.where(rng.random(n) < 0.1, y, np.nan)
    frame["copy"] = y + 0.1 * rng.standard_normal(n)
    frame["noise"] = rng.standard_normal(n)
    frame.to_csv(path, index=False)
    return path


TASKS = ["target:regression", "copy:regression", "noise:regression"]


@pytest.mark.parametrize("seed", [0, 1])
def test_the_near_copy_is_chosen_and_the_noise_left_out(tmp_path: Path, seed: int) -> None:
    csv = _helpful_and_noise(tmp_path / "d.csv", seed)
    cfg = RunConfig(data=str(csv), tasks=TASKS, model="linear:pooled", valid_fraction=0.3)
    selection = select_auxiliary(cfg, "target", subsets=3, affinity=(["target", "copy", "noise"], np.eye(3)),
                                 scale=0.0)
    assert sorted(r.subset for r in selection.records) == [(), ("copy",), ("copy", "noise"), ("noise",)]
    assert selection.best.subset == ("copy",)
    assert selection.best.gain is not None and selection.best.gain > 0
    assert selection.alone.gain == 0.0 and selection.metric == "rmse" and not selection.higher_is_better
    again = select_auxiliary(cfg, "target", subsets=3, affinity=(["target", "copy", "noise"], np.eye(3)), scale=0.0)
    assert [(r.subset, r.value) for r in again.records] == [(r.subset, r.value) for r in selection.records]


def test_select_cli_writes_the_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = _helpful_and_noise(tmp_path / "d.csv")
    affinity = tmp_path / "aff.csv"
    pd.DataFrame([[1.0, 0.5, 0.0], [0.9, 1.0, 0.0], [-0.2, 0.0, 1.0]], index=["target", "copy", "noise"],
                 columns=["target", "copy", "noise"]).to_csv(affinity, index_label="task")
    out = tmp_path / "sel"
    args = ["select", "--data", str(csv), *(a for t in TASKS for a in ("--task", t)), "--target", "target",
            "--affinity", str(affinity), "--model", "linear:pooled", "--valid-fraction", "0.3", "--subsets", "3",
            "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "best: target + copy" in printed
    record = json.loads((out / "select.json").read_text())
    assert record["target"] == "target" and record["best"]["subset"] == ["copy"]
    assert record["scores"] == pytest.approx({"copy": 2.0, "noise": -2.0 / 4.5})  # s_t = 2 A[t, target] / max |A[u, target]|
    assert record["probabilities"]["copy"] == pytest.approx(1 / (1 + math.exp(-2.0)))
    table = pd.read_csv(out / "select.csv", keep_default_na=False)
    assert len(table) == len(record["subsets"]) == 4
    assert set(table.columns) == {"subset", "size", "probability", "draws", "rmse", "gain", "seconds"}
    assert main(args) == 2  # the record is not replaced without --overwrite
    assert "holds a selection already" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_select_cli_refuses_an_unknown_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = _helpful_and_noise(tmp_path / "d.csv", n=100)
    rc = main(["select", "--data", str(csv), *(a for t in TASKS for a in ("--task", t)), "--target", "nope",
               "--model", "linear:pooled", "--affinity", str(tmp_path / "missing.csv")])
    assert rc == 2
    assert "multitask: error:" in capsys.readouterr().err
    rc = main(["select", "--data", str(csv), *(a for t in TASKS for a in ("--task", t)), "--target", "nope",
               "--model", "linear:pooled"])
    assert rc == 2
    assert "--target 'nope': no such task" in capsys.readouterr().err


def test_select_measures_the_affinity_when_none_is_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = _helpful_and_noise(tmp_path / "d.csv", n=80, d=4)
    out = tmp_path / "sel"
    assert main(["select", "--data", str(csv), *(a for t in TASKS for a in ("--task", t)), "--target", "target",
                 "--measure", "gradient", "--every", "2", "--epochs", "1", "--subsets", "1", "--out", str(out)]) == 0
    record = json.loads((out / "select.json").read_text())
    assert record["measure"] == "gradient" and set(record["scores"]) == {"copy", "noise"}
    assert len(record["subsets"]) == 2 and record["subsets"][0]["subset"] == []
    matrix = pd.read_csv(out / "affinity_gradient.csv", index_col=0)
    assert list(matrix.index) == ["target", "copy", "noise"]
