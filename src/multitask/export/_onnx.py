"""A trained run as one ONNX graph: raw feature columns in, one output per task, preprocessing inside.

Inputs: one per raw feature column, named after it, shape ``[N]`` (``N`` any batch size): ``double`` for a
numeric column, ``string`` for a categorical one (:mod:`multitask.export._features`). Outputs: one per task,
named after it, double precision: the value in the target's original units (regression), the positive-class
probability ``[N]`` (binary), the class or label probabilities ``[N, k]`` (multiclass, multilabel; classes in
the order of ``metadata_props["multitask.tasks"]``). Each family's converter maps the feature matrix to its
predictions in the model's units (:data:`CONVERTERS`); regression values are mapped back here.

Before it is written, every exported graph is run by ONNX Runtime on rows drawn from the training statistics
(and a category never seen in training) and compared with the library's own predictions (:func:`check`).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from multitask.data.preprocess import Preprocessor
from multitask.errors import ConfigError, MissingExtraError
from multitask.models._base import Model
from multitask.runs import LoadedRun, load_run

#: the largest absolute difference allowed between the graph's outputs and the library's predictions
TOLERANCE = 1e-5
#: rows of the check run before a graph is written
CHECK_ROWS = 64
#: what :func:`check` draws for a categorical column besides the training categories
UNSEEN = "(not seen in training)"


def require_onnx() -> None:
    """MissingExtraError naming the extra unless onnx and onnxruntime can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise MissingExtraError(f"export to ONNX needs {e.name}: pip install 'multitask[onnx]'") from None


#: each family's converter, ``module:function`` (imported when used): ``(model, graph, x, preprocessor)`` →
#: ``{task: double tensor of its predictions in the model's units}`` from the float32 feature matrix ``x``
CONVERTERS = {
    "deep": "multitask.export._deep:convert",
    "linear": "multitask.export._linear:convert",
    "gbdt": "multitask.export._gbdt:convert",
    "ensemble": "multitask.export._ensemble:convert",
    "grouped": "multitask.export._grouped:convert",
}


def convert(model: Model, g: Any, x: str, pre: Preprocessor) -> dict[str, str]:
    """The predictions of ``model`` added to ``g`` by its family's converter (:data:`CONVERTERS`)."""
    if model.family not in CONVERTERS:
        raise ConfigError(f"export: models of the {model.family!r} family cannot be exported to ONNX; "
                          f"families that can: {', '.join(CONVERTERS)}")
    module, name = CONVERTERS[model.family].split(":")
    out: dict[str, str] = getattr(importlib.import_module(module), name)(model, g, x, pre)
    return out


def metadata(run: LoadedRun, model: Model) -> dict[str, str]:
    """What the graph's ``metadata_props`` say: the run, the model, the inputs and each task's output."""
    from multitask.export._inputs import columns

    pre = run.preprocessor
    tasks = [{"name": t.name, "kind": t.kind, "output": t.name,
              **({"classes": [str(c) for c in pre.targets[t.name].classes]} if t.kind in ("multiclass", "multilabel")
                 else {})} for t in run.tasks]
    return {
        "multitask.model": str(getattr(model, "name", "")),
        "multitask.run": str(run.run_dir),
        "multitask.inputs": json.dumps([{"name": c.name, "kind": c.kind} for c in columns(pre)]),
        "multitask.tasks": json.dumps(tasks),
    }


def build(run: LoadedRun) -> Any:
    """The ONNX model (an ``onnx.ModelProto``) of a loaded run."""
    require_onnx()
    from multitask.export._features import add_features
    from multitask.export._graph import DOUBLE, Graph
    from multitask.export._inputs import columns

    if run.model is None:
        raise ConfigError(f"export: the run in {run.run_dir} was loaded without its model")
    pre = run.preprocessor
    names = [c.name for c in columns(pre)]
    clash = sorted(set(names) & {t.name for t in run.tasks})
    if clash:
        raise ConfigError(f"export: {clash[0]!r} is both a feature column and a task; ONNX names each input and "
                          "output once")
    g = Graph(reserved={*names, *(t.name for t in run.tasks)})
    x = add_features(g, pre)
    predictions = convert(run.model, g, x, pre)
    for task in run.tasks:
        value = predictions[task.name]
        codec = pre.targets[task.name]
        if task.kind == "regression":
            value = g.op("Add", [g.op("Mul", [value, g.const(codec.std, "std", np.float64)]),
                                 g.const(codec.mean, "mean", np.float64)], "original")
        shape: list[Any] = ["N"] if task.kind in ("regression", "binary") else ["N", codec.n_outputs]
        g.output(value, task.name, DOUBLE, shape)
    model = g.model(metadata(run, run.model))
    import onnx

    onnx.checker.check_model(model, full_check=True)
    return model


def library_predictions(run: LoadedRun, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The library's predictions for the rows of ``frame`` (a table of the run's feature columns) in the
    graph's units: regression values in original units, probabilities."""
    from multitask.data.spec import from_declaration

    frame = frame.copy()
    for column, value in run.declaration["task_rows"].values():  # long form: any task id will do
        frame[column] = value
    spec = from_declaration(run.declaration, {next(iter(run.declaration["sources"])): frame}, labelled=False)
    predictions = run.predictor(run.preprocessor.transform(spec))
    return {t.name: np.asarray(run.preprocessor.to_original(t.name, predictions[t.name].astype(np.float64)))
            for t in run.tasks}


def session(model: Any, threads: int = 1) -> Any:
    """An ONNX Runtime session of ``model`` (a ModelProto, bytes or a path) on ``threads`` CPU threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    data = model.SerializeToString() if hasattr(model, "SerializeToString") else model
    data = data if isinstance(data, bytes) else str(data)
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def onnx_predictions(sess: Any, run: LoadedRun | Any, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The graph's outputs (``{task: array}``) on the rows of ``frame``."""
    from multitask.export._inputs import feeds

    pre = run.preprocessor if isinstance(run, LoadedRun) else run
    values = sess.run(None, feeds(pre, frame))
    return {o.name: v for o, v in zip(sess.get_outputs(), values, strict=True)}


def synthetic_rows(run: LoadedRun, n: int = CHECK_ROWS, seed: int = 0) -> pd.DataFrame:
    """Rows drawn from the training statistics: numeric columns ``mean + 2·std·N(0, 1)``, categorical ones a
    training category or, now and then, one never seen in training."""
    from multitask.export._inputs import table

    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for col in table(run.preprocessor)[1].columns:
        if col.kind == "numeric":
            out[col.name] = col.mean + 2.0 * col.std * rng.standard_normal(n)
        else:
            out[col.name] = rng.choice(np.asarray([*col.categories, UNSEEN], dtype=object), n)
    return pd.DataFrame(out)


def differences(run: LoadedRun, ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> dict[str, float]:
    """Per task the largest absolute difference between two sets of predictions."""
    return {t.name: float(np.max(np.abs(ours[t.name].reshape(theirs[t.name].shape) - theirs[t.name]), initial=0.0))
            for t in run.tasks}


def check(run: LoadedRun, model: Any) -> None:
    """ConfigError unless the graph's outputs match the library's predictions within :data:`TOLERANCE` on
    :func:`synthetic_rows` (and give the same classes)."""
    frame = synthetic_rows(run)
    ours = onnx_predictions(session(model), run, frame)
    theirs = library_predictions(run, frame)
    for task, diff in differences(run, ours, theirs).items():
        if not diff <= TOLERANCE:
            raise ConfigError(f"export: the ONNX graph's task {task!r} differs from the library's predictions by "
                              f"{diff:.3g} (more than {TOLERANCE:g}) on rows drawn from the training statistics")


def check_output(output: str | Path, run_dir: Path) -> Path:
    """The file ``--output`` names: not a folder, not inside a run directory, in a folder that exists."""
    from multitask._rundir import check_output as check_file

    return check_file(str(output), [], run_dir)


def checked_graph(run: LoadedRun) -> bytes:
    """The serialized ONNX graph of ``run``, built and checked by :func:`check`."""
    model = build(run)
    check(run, model)
    data: bytes = model.SerializeToString()
    return data


def to_onnx(run_dir: str | Path | LoadedRun, path: str | Path, quantize: str | None = None) -> Path:
    """Export the run in ``run_dir`` as an ONNX graph to ``path`` (written atomically), checked against the
    library's predictions first; ``quantize="int8"`` then applies ONNX Runtime's dynamic int8 quantization
    to the weights of the deep networks in it. Returns the path written."""
    from multitask._rundir import atomic_replace

    require_onnx()
    check_quantize(quantize)
    run = run_dir if isinstance(run_dir, LoadedRun) else load_run(run_dir)
    out = check_output(path, run.run_dir)
    data = checked_graph(run)
    if quantize is not None:
        from multitask.export._quantize import quantize_int8

        data = quantize_int8(run, data)
    atomic_replace(out, lambda tmp: Path(tmp).write_bytes(data))
    return out


def check_quantize(quantize: str | None) -> None:
    if quantize not in (None, *QUANTIZE):
        raise ConfigError(f"--quantize {quantize!r}: unknown quantization; choose one of: {', '.join(QUANTIZE)}")


#: the quantizations ``to_onnx`` applies
QUANTIZE = ("int8",)
#: the export formats
FORMATS = ("onnx",)
