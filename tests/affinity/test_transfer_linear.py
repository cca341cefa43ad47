"""Transfer gain and the linear models' task structure on generated tasks in two known clusters."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from multitask.affinity import LinearAffinity, TransferResult, affinity, linear_affinity, transfer_gain
from multitask.cli import main
from multitask.config import RunConfig, load_config
from multitask.errors import ConfigError
from multitask.linear import Clustered
from multitask.linear._clustered import cluster_labels, cluster_matrix

#: task -> cluster: tasks of a cluster share one weight direction, the two directions are orthogonal
CLUSTER = {"p0": 0, "p1": 0, "p2": 0, "q0": 1, "q1": 1, "q2": 1}
TASKS = list(CLUSTER)


def clustered_tasks(rows: int = 200, features: int = 10, seed: int = 0) -> pd.DataFrame:
    """Long form: each task its own ``rows`` rows, ``y = x·w_t + noise`` with ``w_t`` its cluster's direction
    plus 5% of its own."""
    rng = np.random.default_rng(seed)
    directions = np.linalg.qr(rng.standard_normal((features, 2)))[0].T * 2.0
    frames = []
    for name, c in CLUSTER.items():
        x = rng.standard_normal((rows, features))
        w = directions[c] + 0.1 * rng.standard_normal(features) / np.sqrt(features)
        frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(features)])
        frame["y"] = x @ w + rng.standard_normal(rows)
        frame["task"] = name
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clusters") / "clustered.csv"
    clustered_tasks().to_csv(path, index=False)
    return path


def config(csv: Path, model: str = "linear:pooled", **options: object) -> RunConfig:
    return load_config(None, {"data": str(csv), "task_column": "task", "target": "y", "task_kind": "regression",
                              "valid_fraction": 0.5, "model": model, "model_options": options,
                              "train": {"progress": False}})


def within_above_across(result_tasks: list[str], matrix: np.ndarray) -> None:
    """Every within-cluster pair ranks above every across-cluster pair (off the diagonal)."""
    label = np.array([CLUSTER[t] for t in result_tasks])
    same = label[:, None] == label[None, :]
    off = ~np.eye(len(label), dtype=bool)
    assert matrix[same & off].min() > matrix[~same].max(), matrix.round(3)


@pytest.fixture(scope="module")
def gain(csv: Path) -> TransferResult:
    return transfer_gain(config(csv))


def test_transfer_gain_ranks_within_cluster_pairs_first(gain: TransferResult) -> None:
    assert gain.tasks == TASKS
    within_above_across(gain.tasks, gain.matrix)
    assert gain.runs == 6 + 15 and set(gain.run_seconds) == {(t,) for t in TASKS} | set(combinations(TASKS, 2))
    np.testing.assert_array_equal(np.diag(gain.matrix), 0.0)


def test_transfer_gain_is_the_relative_change_in_the_better_direction(gain: TransferResult) -> None:
    assert set(gain.metric.values()) == {"rmse"}  # lower is better: a lower RMSE together is a positive gain
    for (a, b), together in gain.together.items():
        i, j = gain.tasks.index(a), gain.tasks.index(b)
        alone_b, alone_a = gain.alone[b], gain.alone[a]
        assert alone_a is not None and alone_b is not None
        assert gain.matrix[i, j] == pytest.approx(-(together[b] - alone_b) / alone_b)  # type: ignore[operator]
        assert gain.matrix[j, i] == pytest.approx(-(together[a] - alone_a) / alone_a)  # type: ignore[operator]


def test_transfer_gain_in_two_workers_equals_one(csv: Path, gain: TransferResult) -> None:
    from joblib import parallel_config

    # threads rather than joblib's default processes: the same code path without starting two interpreters
    # (seconds each on a loaded machine); the benchmark runs it in processes
    with parallel_config(backend="threading"):
        two = transfer_gain(config(csv), n_jobs=2)
    np.testing.assert_array_equal(two.matrix, gain.matrix)
    assert two.alone == gain.alone and two.n_jobs == 2


@pytest.mark.parametrize("model", ["linear:independent", "gbdt:independent"])
def test_independent_models_transfer_nothing(csv: Path, model: str) -> None:
    # each task fitted on its own, whatever it is trained with: every gain is exactly 0
    cfg = config(csv, model, **({"n_estimators": 5} if model.startswith("gbdt") else {}))
    np.testing.assert_allclose(transfer_gain(cfg).matrix, 0.0, atol=1e-4)  # up to the solver's tolerance


def test_a_deep_model_is_trained_through_its_family(tmp_path: Path) -> None:
    path = tmp_path / "few.csv"
    clustered_tasks(rows=60).query("task in ['p0', 'p1', 'q0']").to_csv(path, index=False)
    cfg = load_config(None, {"data": str(path), "task_column": "task", "target": "y", "task_kind": "regression",
                             "model_options": {"hidden": [8]},
                             "train": {"epochs": 2, "batch_size": 32, "progress": False}})
    result = transfer_gain(cfg)
    assert result.tasks == ["p0", "p1", "q0"] and result.runs == 6
    assert np.isfinite(result.matrix).all()


@pytest.fixture(scope="module")
def mtrl(csv: Path) -> LinearAffinity:
    return linear_affinity(config(csv), "mtrl")


@pytest.fixture(scope="module")
def clusters(csv: Path) -> LinearAffinity:
    return linear_affinity(config(csv, "linear:clustered", n_clusters=2), "clustered")


def test_mtrl_correlation_ranks_within_cluster_pairs_first(mtrl: LinearAffinity) -> None:
    within_above_across(mtrl.tasks, mtrl.matrix)
    np.testing.assert_allclose(np.diag(mtrl.matrix), 1.0)
    np.testing.assert_allclose(mtrl.matrix, mtrl.matrix.T, atol=1e-12)
    assert mtrl.model == "linear:mtrl" and mtrl.clusters is None


def test_clustered_mtl_recovers_the_clusters(clusters: LinearAffinity) -> None:
    within_above_across(clusters.tasks, clusters.matrix)
    assert clusters.clusters is not None
    assert adjusted_rand_score([CLUSTER[t] for t in clusters.tasks], clusters.clusters) == 1.0
    assert clusters.groups() == [["p0", "p1", "p2"], ["q0", "q1", "q2"]]
    assert clusters.options == {"n_clusters": 2}


def test_the_clustered_estimator_exposes_its_task_clusters() -> None:
    frame = clustered_tasks()
    x = frame[[f"x{i}" for i in range(10)]].to_numpy()
    y = np.full((len(frame), len(TASKS)), np.nan)
    for j, t in enumerate(TASKS):
        rows = (frame["task"] == t).to_numpy()
        y[rows, j] = frame.loc[rows, "y"]
    model = Clustered(n_clusters=2).fit(x, y)
    assert model.task_clusters_.tolist() == [0, 0, 0, 1, 1, 1]
    # the measure reads M off the fitted W in closed form: the same M the fit ended with
    np.testing.assert_allclose(cluster_matrix(model.coef_, 2, model.eta), model.cluster_matrix_, atol=1e-12)
    assert cluster_labels(np.eye(3), 3).tolist() == [0, 1, 2]
    three = Clustered(n_clusters=6).fit(x, y)  # as many clusters as tasks: each its own
    assert three.task_clusters_.tolist() == list(range(6))


# ---- bad input -------------------------------------------------------------------------------------------
def test_too_many_tasks_for_transfer_gain_is_an_error_until_the_limit_is_raised(csv: Path) -> None:
    with pytest.raises(ConfigError, match=r"21 for these 6 tasks.*--max-tasks 6"):
        transfer_gain(config(csv), max_tasks=5)
    with pytest.raises(ConfigError, match="--jobs"):
        transfer_gain(config(csv), n_jobs=0)
    with pytest.raises(ConfigError, match="not auto"):
        transfer_gain(config(csv, "auto"))


def test_a_linear_measure_refuses_a_multiclass_task(tmp_path: Path) -> None:
    path = tmp_path / "kinds.csv"
    rng = np.random.default_rng(0)
    pd.DataFrame({"x": rng.standard_normal(40), "r": rng.standard_normal(40),
                  "m": rng.integers(0, 3, 40)}).to_csv(path, index=False)
    cfg = load_config(None, {"data": str(path), "tasks": ["r:regression", "m:multiclass"], "train": {"progress": False}})
    with pytest.raises(ConfigError, match="task 'm' is multiclass; linear models fit regression and binary"):
        linear_affinity(cfg, "mtrl")
    with pytest.raises(ConfigError, match="must be one of mtrl, clustered"):
        linear_affinity(cfg, "gradient")


def test_the_deep_affinity_run_refuses_another_balancer_and_torchrun(csv: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(None, {"data": str(csv), "task_column": "task", "target": "y", "task_kind": "regression",
                             "train": {"balancer": "dwa", "progress": False}})
    with pytest.raises(ConfigError, match=r"train.balancer 'dwa'.*balancer static"):
        affinity(cfg)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="not under torchrun"):
        affinity(config(csv, "hard-sharing"))
    with pytest.raises(ConfigError, match="not under torchrun"):
        transfer_gain(config(csv))


# ---- the command line ------------------------------------------------------------------------------------
def data_args(csv: Path) -> list[str]:
    return ["--data", str(csv), "--task-column", "task", "--target", "y", "--task-kind", "regression",
            "--valid-fraction", "0.5"]


def test_the_command_writes_transfer_gain(csv: Path, tmp_path: Path, gain: TransferResult,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from multitask.affinity import read_csv

    out = tmp_path / "aff"
    assert main(["affinity", *data_args(csv), "--measure", "transfer", "--model", "linear:pooled",
                 "--out", str(out)]) == 0
    frame = read_csv(out / "affinity_transfer.csv")
    assert list(frame.index) == TASKS
    np.testing.assert_allclose(frame.to_numpy(), gain.matrix, rtol=1e-12)
    assert (out / "affinity_transfer.png").read_bytes()[:4] == b"\x89PNG"
    assert "21 trainings of linear:pooled" in capsys.readouterr().out


def test_the_command_writes_mtrl_and_clusters(csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from multitask.affinity import read_csv

    out = tmp_path / "aff"
    assert main(["affinity", *data_args(csv), "--measure", "clustered,mtrl", "--model", "linear:clustered",
                 "--model-option", "n_clusters=2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "cluster 0: p0, p1, p2" in text and "cluster 1: q0, q1, q2" in text
    found = json.loads((out / "clusters.json").read_text())
    assert found["clusters"] == CLUSTER and found["groups"] == [["p0", "p1", "p2"], ["q0", "q1", "q2"]]
    for measure in ("clustered", "mtrl"):
        matrix = read_csv(out / f"affinity_{measure}.csv")
        within_above_across(list(matrix.index), matrix.to_numpy())
        assert (out / f"affinity_{measure}.png").exists()


@pytest.mark.parametrize("extra", [
    ["--measure", "transfer,bogus"],
    ["--measure", "transfer", "--model", "linear:pooled", "--max-tasks", "5"],
    ["--measure", "transfer", "--jobs", "0"],
    ["--measure", "mtrl", "--model", "linear:mtrl", "--model-option", "bogus=1"],
])
def test_bad_input_is_one_line_and_exit_2(csv: Path, tmp_path: Path, extra: list[str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["affinity", *data_args(csv), *extra, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("multitask: error: ") and "Traceback" not in err
    assert not (tmp_path / "x").exists()
