"""Training by groups (``train --groups``): one model per group, used as one model by predict, evaluate and
load_run; auto groups recover known clusters; bad groups are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import adjusted_rand_score

from multitask import models
from multitask.cli import main
from multitask.config import load_config
from multitask.errors import ConfigError
from multitask.evaluate import task_metrics
from multitask.models._grouped import GROUPS_FILE, Grouped, member_dir, read_run_groups
from multitask.runs import evaluate, fit_and_score, load_run, predict, prepare, train

from .conftest import make_long, make_wide

#: three clusters of regression tasks; each cluster reads its own block of 4 features
SIZES = (3, 3, 2)
TINY = {"hidden": [8]}


def clustered(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, dict[str, int]]:
    """Tasks ``cC_K``: the tasks of cluster ``C`` are one linear function of features ``4C..4C+3`` (scaled by
    U(0.8, 1.2), plus a little of their own), so tasks of one cluster help each other and no others."""
    rng = np.random.default_rng(seed)
    d = 4 * len(SIZES)
    x = rng.standard_normal((n, d))
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(d)])
    truth: dict[str, int] = {}
    for c, size in enumerate(SIZES):
        block = np.arange(d) // 4 == c
        w = np.where(block, rng.standard_normal(d), 0.0)
        for k in range(size):
            own = 0.1 * rng.standard_normal(d) * block
            frame[f"c{c}_{k}"] = x @ (w * rng.uniform(0.8, 1.2) + own) + 0.1 * rng.standard_normal(n)
            truth[f"c{c}_{k}"] = c
    return frame, truth


def _quiet(*args: str) -> list[str]:
    return [*args, "--quiet"]


def test_auto_groups_recover_the_clusters(tmp_path: Path) -> None:
    frame, truth = clustered()
    csv = tmp_path / "clustered.csv"
    frame.to_csv(csv, index=False)
    out = tmp_path / "run"
    tasks = [x for t in truth for x in ("--task", f"{t}:regression")]
    assert main(_quiet("train", "--data", str(csv), *tasks, "--groups", "auto", "--model-option", "hidden=[16]",
                       "--epochs", "2", "--batch-size", "64", "--group-option", "every=1", "--out", str(out))) == 0
    groups = read_run_groups(out)
    found = {t: i for i, g in enumerate(groups) for t in g}
    assert adjusted_rand_score([truth[t] for t in truth], [found[t] for t in truth]) == 1.0, groups
    saved = json.loads((out / GROUPS_FILE).read_text())
    assert saved["chosen_by"] == "auto" and saved["measure"] == "lookahead"
    assert saved["measured_with"]["model_options"]["head"] == "shared"
    assert (out / "affinity_lookahead.csv").exists()
    assert len(list((out / "groups").iterdir())) == len(SIZES)


def _groups_file(path: Path, groups: object) -> Path:
    path.write_text(json.dumps(groups))
    return path


WIDE_TASKS = ["--task", "y1:regression", "--task", "y2:binary", "--task", "cls:multiclass"]


def test_a_grouped_run_predicts_and_evaluates_as_its_members(wide_csv: Path, tmp_path: Path) -> None:
    groups = _groups_file(tmp_path / "groups.json", {"groups": [["cls"], ["y2", "y1"]], "score": 1.0})
    out = tmp_path / "run"
    args = ["train", "--data", str(wide_csv), *WIDE_TASKS, "--hidden", "8", "--epochs", "2", "--seed", "3"]
    assert main(_quiet(*args, "--groups", str(groups), "--out", str(out))) == 0
    assert read_run_groups(out) == [["y1", "y2"], ["cls"]]  # in the order of the tasks
    run = load_run(out)
    assert [t.name for t in run.tasks] == ["y1", "y2", "cls"]
    frame = predict(out, str(wide_csv))
    metrics = evaluate(out, str(wide_csv))

    # the same members fitted here, each on its group's tasks of the same split, predict the same
    cfg = load_config(None, {"data": str(wide_csv), "tasks": ["y1:regression", "y2:binary", "cls:multiclass"],
                             "model_options": TINY, "train": {"epochs": 2, "seed": 3, "progress": False}})
    p = prepare(cfg)
    arrays = run.preprocessor.transform(p.spec.with_frames({next(iter(p.spec.sources)): pd.read_csv(wide_csv)}))
    expected: dict[str, np.ndarray] = {}
    for group in (["y1", "y2"], ["cls"]):
        member = models.make(cfg)
        fit_and_score(member, p.only(group), None)
        expected.update(member.predict(arrays.only_tasks(group)))
    for t in run.tasks:
        for column, values in run.preprocessor.decode(t.name, expected[t.name]).items():
            if values.dtype == object:
                assert (frame[column].to_numpy() == values).all(), column
            else:
                np.testing.assert_allclose(frame[column].to_numpy(dtype=float), values, rtol=1e-5, atol=1e-6)
    want = task_metrics(run.tasks, arrays, expected, run.preprocessor)
    for task, values in want.items():
        for name, value in values.items():
            assert metrics[task][name] == pytest.approx(value, rel=1e-5, abs=1e-7), (task, name)


def test_groups_from_the_config_file_and_the_python_api_with_baselines(wide_csv: Path, tmp_path: Path) -> None:
    cfg = load_config(None, {"data": str(wide_csv), "tasks": ["y1:regression", "y2:binary", "cls:multiclass"],
                             "groups": [["y1"], ["cls", "y2"]], "baseline": "stl,gbdt", "model_options": TINY,
                             "train": {"epochs": 1, "progress": False}, "out": str(tmp_path / "run")})
    result = train(cfg)
    assert set(result.baselines) == {"stl", "gbdt"}
    assert (tmp_path / "run" / "baseline" / "stl" / "002-cls" / "model.pt").exists()
    assert not (tmp_path / "run" / "baseline" / "stl" / "002-cls" / GROUPS_FILE).exists()
    assert isinstance(models.load("hard-sharing", tmp_path / "run", result.tasks, load_run(tmp_path / "run").preprocessor),
                      Grouped)
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["groups"] == [["y1"], ["cls", "y2"]]


def test_long_form_with_a_linear_model(long_csv: Path, tmp_path: Path) -> None:
    groups = _groups_file(tmp_path / "g.json", [["g0", "g2"], ["g1", "g3"]])
    out = tmp_path / "run"
    assert main(["train", "--data", str(long_csv), "--task-column", "group", "--target", "y", "--model",
                 "linear:mean-regularized", "--groups", str(groups), "--out", str(out)]) == 0
    assert (member_dir(out, 0) / "linear.npz").exists() and (member_dir(out, 1) / "linear.npz").exists()
    frame = predict(out, str(long_csv))
    assert list(frame.columns) == ["group", "prediction"] and frame["prediction"].notna().all()
    metrics = evaluate(out, str(long_csv))
    assert sorted(metrics) == ["g0", "g1", "g2", "g3"]


def test_per_task_data_sets_with_auto_groups(tmp_path: Path) -> None:
    wide = make_wide()
    files = {}
    for name in ("y1", "y2"):
        path = tmp_path / f"{name}.csv"
        wide[["x0", "x1", "x2", "x3", "x4", name]].dropna().to_csv(path, index=False)
        files[name] = path
    long = make_long(n_tasks=1, n_per_task=200)
    long[["a", "b", "c", "d", "y"]].to_csv(tmp_path / "z.csv", index=False)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "tasks": [{"name": "y1", "kind": "regression", "data": str(files["y1"])},
                  {"name": "y2", "kind": "binary", "data": str(files["y2"])},
                  {"name": "z", "kind": "regression", "data": str(tmp_path / "z.csv"), "target": "y"}],
        "model_options": TINY, "groups": "auto", "group_options": {"every": 1},
        "train": {"epochs": 1, "progress": False},
    }))
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(out)]) == 0
    groups = read_run_groups(out)
    assert sorted(t for g in groups for t in g) == ["y1", "y2", "z"]
    frame = predict(out, [f"y1={files['y1']}", f"y2={files['y2']}", f"z={tmp_path / 'z.csv'}"])
    assert set(frame["task"]) == {"y1", "y2", "z"}
    assert sorted(evaluate(out, [f"y1={files['y1']}", f"y2={files['y2']}", f"z={tmp_path / 'z.csv'}"])) == ["y1", "y2", "z"]


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file"),
    ("{not json", "not valid JSON"),
    ([["y1", "y2"], ["cls", "nope"]], "task 'nope' in group 2 is not a task of this run"),
    ([["y1", "y2"], ["cls", "y1"]], "task 'y1' is in groups 1 and 2"),
    ([["y1", "y2"]], "task 'cls' is in no group"),
    ([["y1", "y2", "cls"], []], "group 2 is empty"),
    ({"score": 1.0}, "needs the key 'groups'"),
    ([["y1", 3], ["cls"]], "group 1 holds 3"),
    ([], "non-empty list of groups"),
])
def test_bad_groups_are_one_line_errors(wide_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        content: object, message: str) -> None:
    path = tmp_path / "groups.json"
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        _groups_file(path, content)
    out = tmp_path / "run"
    rc = main(["train", "--data", str(wide_csv), *WIDE_TASKS, "--groups", str(path), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("multitask: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert message in err and str(path) in err, err
    assert not out.exists()  # nothing written before the groups are checked


def test_options_that_do_not_apply_are_refused(wide_csv: Path, tmp_path: Path) -> None:
    base = {"data": str(wide_csv), "tasks": ["y1:regression", "y2:binary"]}
    with pytest.raises(ConfigError, match="does not apply to --model auto"):
        load_config(None, {**base, "groups": "auto", "model": "auto"})
    with pytest.raises(ConfigError, match="needs --groups auto"):
        load_config(None, {**base, "group_options": {"k": 2}})
    with pytest.raises(ConfigError, match="applies to --groups auto"):
        models.make(load_config(None, {**base, "groups": [["y1", "y2"]], "group_options": {"k": 1}}))
    with pytest.raises(ConfigError, match="unknown option 'kk'"):
        models.make(load_config(None, {**base, "groups": "auto", "group_options": {"kk": 1}}))
    with pytest.raises(ConfigError, match="must be a deep model"):
        models.make(load_config(None, {**base, "groups": "auto", "group_options": {"model": "linear:l21"}}))


def test_resume_keeps_the_groups_and_refuses_other_groups(wide_csv: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    groups = _groups_file(tmp_path / "groups.json", [["y1", "y2"], ["cls"]])
    out = tmp_path / "run"
    args = ["train", "--data", str(wide_csv), *WIDE_TASKS, "--hidden", "8", "--epochs", "1", "--groups", str(groups),
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    before = predict(out, str(wide_csv))
    # a run killed while its second group trained: that member's weights are gone, the marker is back
    (member_dir(out, 1) / "model.pt").unlink()
    (out / "metrics.json").unlink()
    (out / "INCOMPLETE").write_text(json.dumps({"format": "multitask-run/1"}))
    assert main([*args, "--resume"]) == 0
    pd.testing.assert_frame_equal(predict(out, str(wide_csv)).drop(columns=["cls", "cls:hi", "cls:lo", "cls:mid"]),
                                  before.drop(columns=["cls", "cls:hi", "cls:lo", "cls:mid"]))
    _groups_file(groups, [["y1"], ["y2", "cls"]])
    assert main([*args, "--resume"]) == 2
    assert "trained by other groups" in capsys.readouterr().err


def test_auto_groups_are_refused_under_torchrun(wide_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", "--data", str(wide_csv), *WIDE_TASKS, "--groups", "auto", "--out", str(tmp_path / "r")]) == 2
    assert "not under torchrun" in capsys.readouterr().err
