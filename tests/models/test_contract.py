"""Every model family through the run verbs: fit, metrics (strict JSON), save, load, predict, on tiny tasks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from multitask import models
from multitask.config import RunConfig
from multitask.errors import ConfigError
from multitask.runs import load_run, predict, prepare, train
from multitask.train.config import TrainConfig

#: one of each family's members, plus the pooled network
NAMES = ["hard-sharing", "pooled-mlp", "linear:pooled", "linear:mean-regularized", "linear:trace-norm",
         "gbdt:independent", "gbdt:pooled", "gbdt:multitask"]


def _strict(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def long_table(sizes: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """A long-form table: tasks named as given, with ``sizes[task]`` labelled rows each."""
    rng = np.random.default_rng(seed)
    rows = []
    for task, n in sizes.items():
        x = rng.normal(size=(n, 3))
        y = x @ np.array([1.0, -0.5, 0.25]) + 0.1 * rng.normal(size=n) + len(task) * 0.1
        rows.append(pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "task": task, "y": y}))
    return pd.concat(rows, ignore_index=True)


def config(name: str, data: Path, out: Path, **extra: Any) -> RunConfig:
    deep = models.family_name(name) == "deep"
    train_options = TrainConfig(epochs=2, batch_size=16, threads=1, progress=False) if deep else TrainConfig(threads=1)
    options = {"hidden": [8]} if deep else {}
    return RunConfig(data=str(data), task_column="task", target="y", model=name, model_options=options,
                     train=train_options, out=str(out), **extra)


@pytest.mark.parametrize("name", NAMES)
def test_tiny_tasks_pass_end_to_end(name: str, tmp_path: Path) -> None:
    data = tmp_path / "long.csv"
    long_table({"one": 1, "two": 2, "three": 3, "big": 40}).to_csv(data, index=False)
    result = train(config(name, data, tmp_path / "run", baseline=["stl"]))
    metrics = _strict((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["model"] == name and set(metrics["tasks"]) == {"one", "two", "three", "big"}
    # a task with one labelled row keeps it for training: nothing to evaluate, said so
    assert all(v is None for v in metrics["tasks"]["one"].values())
    assert "one" in metrics["not_evaluated"]
    assert metrics["tasks"]["big"]["rmse"] is not None
    stl = metrics["baselines"]["stl"]
    assert stl["delta_m_tasks"] == sum(1 for t in result.tasks if metrics["tasks"][t.name]["rmse"] is not None)
    for path in (tmp_path / "run").rglob("*.json"):
        _strict(path.read_text())
    # saved and loaded, the model predicts exactly what it predicted before
    run = load_run(tmp_path / "run")
    frame = predict(tmp_path / "run", str(data))
    assert frame["prediction"].notna().all()
    p = prepare(config(name, data, tmp_path / "other"))
    again = run.predictor(p.train)
    assert set(again) == {"one", "two", "three", "big"}
    assert all(np.isfinite(v).all() for v in again.values())


@pytest.mark.parametrize("name", NAMES)
def test_every_family_declares_a_search_space_of_real_options(name: str) -> None:
    family = models.family(name)
    space = family.search_space(name, [])
    assert space, name
    for param in space:
        section, _, option = param.path.partition(".")
        assert section in ("model_options", "train") and option
        assert param.choices is not None or (param.low is not None and param.high is not None and param.low < param.high)


def test_pooled_baseline_needs_poolable_tasks(tmp_path: Path) -> None:
    wide = pd.DataFrame({"x": np.arange(20.0), "a": np.arange(20.0), "b": np.arange(20.0) % 2})
    wide.to_csv(tmp_path / "w.csv", index=False)
    cfg = RunConfig(data=str(tmp_path / "w.csv"), tasks=["a:regression", "b:binary"], model="linear:pooled",
                    baseline=["pooled"], out=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="different kinds"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_estimator_errors_name_the_users_task() -> None:
    from multitask.errors import DataError
    from multitask.models._base import name_tasks
    from multitask.tasks import Task

    tasks = [Task("school 1", "regression"), Task("school 2", "regression")]
    error = name_tasks(DataError("task 1 (column 1 of y) has no labelled rows"), tasks)
    assert str(error) == "task 'school 2' has no labelled rows"


def test_pooled_baseline_of_wide_tasks_declared_poolable(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 2))
    wide = pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "a": x[:, 0] + 0.1 * rng.normal(size=80),
                         "b": x[:, 0] + 1.0 + 0.1 * rng.normal(size=80)})
    wide.to_csv(tmp_path / "w.csv", index=False)
    base = {"data": str(tmp_path / "w.csv"), "tasks": ["a:regression", "b:regression"], "model": "linear:independent",
            "baseline": ["pooled"]}
    with pytest.raises(ConfigError, match="--poolable"):
        train(RunConfig(**base, out=str(tmp_path / "refused")))
    result = train(RunConfig(**base, poolable=True, out=str(tmp_path / "run")))
    pooled = result.baselines["pooled"]
    assert pooled.model == "linear:pooled" and pooled.delta_m_tasks == 2
    # the tasks share their slope and differ by an intercept: pooling loses nothing here
    assert pooled.delta_m is not None and abs(pooled.delta_m) < 10


def test_deep_search_offers_gradient_balancers_only_for_few_tasks() -> None:
    from multitask.registry import BALANCERS
    from multitask.tasks import Task

    def offered(n: int) -> tuple[str, ...]:
        space = models.family("hard-sharing").search_space("hard-sharing", [Task(f"t{i}", "regression") for i in range(n)])
        (param,) = [p for p in space if p.path == "train.balancer"]
        assert param.choices is not None
        return param.choices

    assert set(offered(3)) == set(BALANCERS.names())
    many = offered(139)
    assert "static" in many and "uncertainty" in many and "mgda" not in many and "pcgrad" not in many
