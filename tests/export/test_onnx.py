"""ONNX export: the graph of every family and task kind matches the library's ``predict`` on held-out rows.

Each run is trained once per module on a small generated table (numeric columns, a string column with
missing values, a category unseen in training among the held-out rows), exported, and run by ONNX Runtime
on batches of 1, 37 and every held-out row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest

from multitask.cli import main
from multitask.config import RunConfig, TaskConfig
from multitask.export import TOLERANCE, feeds, session, to_onnx
from multitask.runs import load_run, predict, train
from multitask.train.config import TrainConfig

FEATURES = ["x0", "x1", "x2", "x3", "color"]
TASKS = {"reg": "regression", "reg2": "regression", "bin": "binary", "cls": "multiclass", "tags": "multilabel"}


def table(n: int, seed: int, unseen: bool = False) -> pd.DataFrame:
    """Four numeric columns and ``color`` (strings, 10% missing; with ``unseen``, some ``purple`` never seen
    in training); two regression targets, a binary, a 3-class and a multilabel target."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4)) * np.array([1.0, 10.0, 0.1, 3.0]) + np.array([0.0, 50.0, -1.0, 2.0])
    frame = pd.DataFrame(x, columns=["x0", "x1", "x2", "x3"])
    colors = ["red", "green", "blue", "purple"] if unseen else ["red", "green", "blue"]
    frame["color"] = rng.choice(colors, n).astype(object)
    frame.loc[rng.random(n) < 0.1, "color"] = np.nan
    z = x[:, 0] + (x[:, 1] - 50) / 10 + (frame["color"] == "red").to_numpy()
    frame["reg"] = 100 + 20 * z + rng.standard_normal(n)
    frame.loc[rng.random(n) < 0.2, "reg"] = np.nan
    frame["reg2"] = 3 * z - x[:, 3] + rng.standard_normal(n)
    frame["bin"] = np.where(z + 0.5 * rng.standard_normal(n) > 0, "yes", "no")
    frame["cls"] = np.where(x[:, 3] > 4, "hi", np.where(x[:, 3] < 0, "lo", "mid"))
    frame["tags"] = ["|".join(t for t, on in (("a", v > 0), ("b", w > 2)) if on) for v, w in zip(z, x[:, 3], strict=True)]
    return frame


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    table(300, 0).to_csv(folder / "train.csv", index=False)
    held = table(120, 1, unseen=True)
    held.to_csv(folder / "held.csv", index=False)
    held.drop(columns=list(TASKS)).to_csv(folder / "held_features.csv", index=False)
    return folder


def fit(data: Path, name: str, tasks: list[str], **options: Any) -> Path:
    deep = ":" not in name
    out = data / name.replace(":", "-") / "-".join(tasks)
    cfg = RunConfig(
        data=str(data / "train.csv"), tasks=[f"{t}:{TASKS[t]}" for t in tasks], features=FEATURES, model=name,
        out=str(out),
        model_options={"hidden": [128, 64], **options} if name == "hard-sharing" else options,
        train=TrainConfig(epochs=3, batch_size=32, threads=1, progress=False) if deep else TrainConfig(threads=1),
    )
    train(cfg)
    return out


def onnx_outputs(path: Path, frame: pd.DataFrame, run_dir: Path) -> dict[str, np.ndarray]:
    sess = session(path)
    values = sess.run(None, feeds(load_run(run_dir).preprocessor, frame))
    return {o.name: v for o, v in zip(sess.get_outputs(), values, strict=True)}


def assert_parity(run_dir: Path, path: Path, data: Path) -> None:
    """The graph's outputs match ``multitask predict`` on every held-out row, in batches of 1, 37 and all."""
    run = load_run(run_dir)
    expected = predict(run, str(data / "held_features.csv"))
    held = pd.read_csv(data / "held_features.csv")
    for rows in (1, 37, len(held)):
        got = onnx_outputs(path, held.iloc[:rows], run_dir)
        for task in run.tasks:
            out = got[task.name]
            classes = [str(c) for c in run.preprocessor.targets[task.name].classes]
            if task.kind in ("regression", "binary"):
                assert out.shape == (rows,)
                want = expected[task.name].to_numpy(dtype=np.float64)[:rows]
                np.testing.assert_allclose(out, want, rtol=0, atol=TOLERANCE)
                if task.kind == "binary":
                    assert ((out >= 0.5) == (want >= 0.5)).all()
                continue
            assert out.shape == (rows, len(classes))
            want = np.column_stack([expected[f"{task.name}:{c}"].to_numpy(dtype=np.float64) for c in classes])[:rows]
            np.testing.assert_allclose(out, want, rtol=0, atol=TOLERANCE)
            if task.kind == "multiclass":
                assert [classes[i] for i in out.argmax(axis=1)] == [str(v) for v in expected[task.name][:rows]]
            else:
                assert ((out >= 0.5) == (want >= 0.5)).all()


@pytest.fixture(scope="module")
def deep_run(data: Path) -> Path:
    return fit(data, "hard-sharing", list(TASKS))


@pytest.fixture(scope="module")
def deep_graph(deep_run: Path, data: Path) -> Path:
    return to_onnx(deep_run, data / "deep.onnx")


def test_deep_every_task_kind(deep_run: Path, deep_graph: Path, data: Path) -> None:
    assert_parity(deep_run, deep_graph, data)
    model = onnx.load(deep_graph)
    assert [i.name for i in model.graph.input] == ["x0", "x1", "x2", "x3", "color"]
    assert [o.name for o in model.graph.output] == list(TASKS)
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.HasField("dim_value")  # a dynamic batch


def test_deep_embedded_categories_and_experts(data: Path) -> None:
    run_dir = fit(data, "mmoe", ["reg", "bin", "cls"], categorical="embedding", experts=2, expert_hidden=[8],
                  tower_hidden=[8])
    assert_parity(run_dir, to_onnx(run_dir, data / "mmoe.onnx"), data)


@pytest.mark.parametrize(("name", "tasks"), [
    ("linear:trace-norm", ["reg", "reg2", "bin"]),
    ("gbdt:multitask", ["reg", "reg2", "bin", "cls"]),
    ("gbdt:independent", ["reg", "bin", "cls"]),
])
def test_linear_and_gbdt(name: str, tasks: list[str], data: Path) -> None:
    options: dict[str, Any] = {"n_estimators": 60, "task_rounds": 30} if name == "gbdt:multitask" else {}
    options = {"n_estimators": 60} if name == "gbdt:independent" else options
    run_dir = fit(data, name, tasks, **options)
    assert_parity(run_dir, to_onnx(run_dir, data / f"{name.replace(':', '-')}.onnx"), data)


def test_ensemble_of_a_linear_model_and_trees(data: Path) -> None:
    members = ["linear:independent", {"model": "gbdt:pooled", "model_options": {"n_estimators": 40}}]
    run_dir = fit(data, "ensemble:average", ["reg", "reg2", "bin"], members=members,
                  weights={"reg": [0.25, 0.75], "bin": [0.0, 1.0]})
    assert_parity(run_dir, to_onnx(run_dir, data / "ensemble.onnx"), data)


def test_grouped_run_takes_each_task_from_its_group(data: Path) -> None:
    out = data / "runs" / "grouped"
    cfg = RunConfig(data=str(data / "train.csv"), tasks=["reg:regression", "reg2:regression", "bin:binary"],
                    features=FEATURES, model="hard-sharing", groups=[["reg", "bin"], ["reg2"]], out=str(out),
                    train=TrainConfig(epochs=2, batch_size=32, threads=1, progress=False))
    train(cfg)
    assert_parity(out, to_onnx(out, data / "grouped.onnx"), data)


def test_long_form_takes_no_task_column(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.standard_normal((200, 3)), columns=["a", "b", "c"])
    frame["group"] = rng.choice(["g1", "g2", "g3"], 200)
    frame["y"] = frame["a"] * (frame["group"] == "g1") + frame["b"] + 0.1 * rng.standard_normal(200)
    frame.to_csv(tmp_path / "long.csv", index=False)
    cfg = RunConfig(data=str(tmp_path / "long.csv"), task_column="group", target="y", model="gbdt:pooled",
                    model_options={"n_estimators": 40}, out=str(tmp_path / "run"), train=TrainConfig(threads=1))
    train(cfg)
    path = to_onnx(tmp_path / "run", tmp_path / "long.onnx")
    got = onnx_outputs(path, frame[["a", "b", "c"]], tmp_path / "run")
    expected = predict(tmp_path / "run", str(tmp_path / "long.csv"))
    for task in ("g1", "g2", "g3"):
        rows = (frame["group"] == task).to_numpy()
        np.testing.assert_allclose(got[task][rows], expected["prediction"][rows], rtol=0, atol=TOLERANCE)


def test_int8_quantization_shrinks_the_network_and_reports_metrics(
        deep_run: Path, deep_graph: Path, data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = data / "deep-int8.onnx"
    code = main(["export", "--run", str(deep_run), "--format", "onnx", "--output", str(out), "--quantize", "int8",
                 "--data", str(data / "held.csv")])
    assert code == 0
    assert out.stat().st_size < deep_graph.stat().st_size
    printed = capsys.readouterr().out
    for line in ("size (MB)", "rows/s of the session", "reg: rmse", "bin: auc", "cls: accuracy", "tags: micro_f1"):
        assert line in printed
    held = pd.read_csv(data / "held_features.csv")
    quantized, exact = onnx_outputs(out, held, deep_run), onnx_outputs(deep_graph, held, deep_run)
    assert set(quantized) == set(TASKS)
    assert any(not np.array_equal(quantized[t], exact[t]) for t in TASKS)  # the weights did change
    assert all(np.all(np.isfinite(v)) for v in quantized.values())


def test_bad_input_exits_2(deep_run: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gbdt = fit(data, "gbdt:independent", ["reg", "bin"], n_estimators=20)
    cases = [
        (["--run", str(deep_run), "--format", "pmml", "--output", str(tmp_path / "m")], "--format 'pmml'"),
        (["--run", str(tmp_path / "nothing"), "--format", "onnx", "--output", str(tmp_path / "m")], "no such run"),
        (["--run", str(deep_run), "--format", "onnx", "--output", str(deep_run / "m.onnx")], "inside the run"),
        (["--run", str(deep_run), "--format", "onnx", "--output", str(tmp_path / "m"), "--quantize", "int4"],
         "--quantize 'int4'"),
        (["--run", str(gbdt), "--format", "onnx", "--output", str(tmp_path / "m"), "--quantize", "int8"],
         "has none"),
        (["--run", str(deep_run), "--format", "onnx", "--output", str(tmp_path / "m"), "--data", "x.csv"],
         "with --quantize"),
    ]
    for args, message in cases:
        assert main(["export", *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("multitask: error:") and message in err and "Traceback" not in err, err
        assert not (tmp_path / "m").exists()


def test_per_task_data_sets_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    for task in ("a", "b"):
        frame = pd.DataFrame({"u": rng.standard_normal(60), "v": rng.standard_normal(60)})
        frame[task] = frame["u"] - frame["v"]
        frame.to_csv(tmp_path / f"{task}.csv", index=False)
    cfg = RunConfig(tasks=[TaskConfig(name=t, kind="regression", data=str(tmp_path / f"{t}.csv")) for t in "ab"],
                    model="hard-sharing", model_options={"hidden": [8]}, out=str(tmp_path / "run"),
                    train=TrainConfig(epochs=1, threads=1, progress=False))
    train(cfg)
    assert main(["export", "--run", str(tmp_path / "run"), "--format", "onnx", "--output", str(tmp_path / "m")]) == 2
    assert "one data set per task" in capsys.readouterr().err


def test_the_documented_inputs_without_the_library_are_the_feeds(deep_run: Path, data: Path) -> None:
    """docs/export.md: how to build the inputs from a table without multitask gives what ``feeds`` gives."""
    frame = pd.read_csv(data / "held_features.csv")
    expected = feeds(load_run(deep_run).preprocessor, frame)
    assert expected["color"].tolist() == (
        frame["color"].astype(object).where(frame["color"].notna(), "(missing)").map(str).to_numpy().tolist())
    assert "(missing)" in expected["color"].tolist() and "purple" in expected["color"].tolist()
    np.testing.assert_array_equal(expected["x1"], frame["x1"].to_numpy(dtype="float64"))


def test_every_model_family_has_a_converter() -> None:
    from multitask.export._onnx import CONVERTERS
    from multitask.registry import FAMILIES

    assert set(CONVERTERS) == {*FAMILIES.names(), "grouped"}  # grouped: a run trained with --groups


def test_a_graph_that_does_not_match_the_library_is_not_written(data: Path, tmp_path: Path) -> None:
    from multitask.errors import ConfigError
    from multitask.export._onnx import build, check

    run_dir = fit(data, "linear:independent", ["reg", "bin"])
    run = load_run(run_dir)
    graph = build(run)
    check(run, graph)
    assert run.model is not None
    run.model.coef_[0, 0] += 1e-3  # type: ignore[attr-defined]  # the library now predicts otherwise
    with pytest.raises(ConfigError, match="task 'reg' differs from the library's predictions"):
        check(run, graph)


def test_without_the_onnx_extra_the_command_names_it(deep_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # an import of it fails, as when it is not installed
    assert main(["export", "--run", str(deep_run), "--format", "onnx", "--output", str(tmp_path / "m.onnx")]) == 2
    assert "pip install 'multitask[onnx]'" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()
