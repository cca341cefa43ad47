"""The architecture contract, checked over the whole MODELS registry and every head form.

Every architecture: the right output shape per task kind; forward is heads(representation); shared and task
parameters are disjoint; it learns a small generated problem; its description rebuilds it (JSON, generic);
every balancing method runs a step on it, at the parameters and at the representation; and (slow) two
processes under torchrun give the one-process result.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from multitask import Task
from multitask.balancing import Balancing
from multitask.data.arrays import Arrays
from multitask.errors import ConfigError
from multitask.nn import HEADS, InputSpec, build_model
from multitask.registry import BALANCERS, MODELS
from multitask.train import TrainConfig, fit, validation_losses
from multitask.train._distributed import Distributed
from multitask.train._step import Stepper

HERE = Path(__file__).parent
NAMES = MODELS.names()
MIXED = [Task("r", "regression"), Task("b", "binary"), Task("m", "multiclass"), Task("l", "multilabel")]
SIZES = {"r": 1, "b": 1, "m": 3, "l": 2}
#: architectures made for tasks that predict one quantity (long-form groups): their problem has one function
SAME_FUNCTION = {"pooled-mlp"}


def case(name: str) -> tuple[list[Task], dict[str, InputSpec], dict[str, int]]:
    """The tasks, inputs and output sizes the contract uses for architecture ``name``.

    Mixed kinds on one tabular source, unless the class says otherwise: ``task_kinds`` (the kinds it takes:
    tasks of the first one, ``task_count`` of them or 3), ``image_only`` (an image source).
    """
    cls = MODELS.get(name)
    kinds = getattr(cls, "task_kinds", None)
    if kinds:
        tasks = [Task(f"{kinds[0][0]}{i}", kinds[0]) for i in range(getattr(cls, "task_count", None) or 3)]
        sizes = {t.name: 1 if t.kind in ("regression", "binary") else 3 for t in tasks}
    else:
        tasks, sizes = list(MIXED), dict(SIZES)
    image = bool(getattr(cls, "image_only", False))
    inputs = {"s": InputSpec(image_shape=(1, 8, 8)) if image else InputSpec(dim=6)}
    return tasks, inputs, sizes


def build(name: str, **options: Any) -> torch.nn.Module:
    tasks, inputs, sizes = case(name)
    torch.manual_seed(0)
    return MODELS.get(name)(inputs, tasks, {t.name: "s" for t in tasks}, sizes, **options)


def head_options(name: str) -> list[dict[str, str]]:
    """Every head form where the architecture takes the option ``head``."""
    import inspect

    if "head" in inspect.signature(MODELS.get(name)).parameters:
        return [{"head": form} for form in HEADS if form != "auto"]  # auto is one of the others
    return [{}]


def data(name: str, n: int = 96, seed: int = 0) -> Arrays:
    """A generated problem every architecture can fit: targets are smooth functions of the inputs."""
    tasks, inputs, _ = case(name)
    rng = np.random.default_rng(seed)
    spec = inputs["s"]
    if spec.image_shape is not None:  # piecewise-constant images: 2 x 2 blocks of the latent values, a bit of noise
        c, h, w = spec.image_shape
        z = rng.normal(size=(n, c, 2, 2))
        x = (np.kron(z, np.ones((h // 2, w // 2))) + 0.1 * rng.normal(size=(n, c, h, w))).astype(np.float32)
        flat = z.reshape(n, -1)
    else:
        x = rng.normal(size=(n, spec.dim or 1)).astype(np.float32)
        flat = x
    signal = flat @ np.random.default_rng(12345).normal(size=(flat.shape[1], 3))  # one function for every seed
    targets: dict[str, np.ndarray] = {}
    for i, t in enumerate(tasks):
        s = signal[:, 0 if name in SAME_FUNCTION else i % 3]
        if t.kind == "regression":
            targets[t.name] = s.astype(np.float32)
        elif t.kind == "binary":
            targets[t.name] = (s > 0).astype(np.float32)
        elif t.kind == "multiclass":
            targets[t.name] = np.digitize(s, [-0.5, 0.5]).astype(np.int64)
        else:
            targets[t.name] = np.stack([s > 0, signal[:, (i + 1) % 3] > 0], axis=1).astype(np.float32)
    masks = {t.name: rng.random(n) < 0.9 for t in tasks}
    return Arrays({"s": x}, targets, masks, {t.name: "s" for t in tasks})


CASES = [(name, options) for name in NAMES for options in head_options(name)]
IDS = [f"{n}-{o.get('head', '')}" for n, o in CASES]


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_output_shapes_and_forward_is_heads_of_representation(name: str, options: dict[str, str]) -> None:
    model = build(name, **options)
    tasks, _, sizes = case(name)
    batch = data(name, n=5).take({"s": np.arange(5)})
    model.eval()
    out = model(batch.inputs)
    assert list(out) == [t.name for t in tasks]
    for t in tasks:
        expected = (5,) if t.kind in ("regression", "binary") else (5, sizes[t.name])
        assert tuple(out[t.name].shape) == expected, t.name
        assert bool(torch.isfinite(out[t.name]).all())
    again = model.heads(model.representation(batch.inputs))  # type: ignore[operator]
    for t in tasks:
        torch.testing.assert_close(again[t.name], out[t.name])
    empty = model(data(name, n=5).take({"s": np.arange(0)}).inputs)  # a batch without rows
    assert all(v.shape[0] == 0 for v in empty.values())


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_shared_and_task_parameters_are_disjoint_and_cover_the_model(name: str, options: dict[str, str]) -> None:
    model = build(name, **options)
    shared = {id(p) for p in model.shared_parameters()}  # type: ignore[operator]
    own = {id(p) for ps in model.task_parameters().values() for p in ps}  # type: ignore[operator]
    assert shared and not (shared & own)
    assert shared | own == {id(p) for p in model.parameters()}


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_the_description_rebuilds_the_same_model(name: str, options: dict[str, str], tmp_path: Path) -> None:
    model = build(name, **options)
    config = json.loads(json.dumps(model.model_config()))  # type: ignore[operator]
    assert config["model"] == name
    for key, value in options.items():
        assert config[key] == value
    rebuilt = build_model(config)
    rebuilt.load_state_dict(model.state_dict())
    batch = data(name, n=7).take({"s": np.arange(7)})
    model.eval()
    rebuilt.eval()
    a, b = model(batch.inputs), rebuilt(batch.inputs)
    for key in a:
        torch.testing.assert_close(a[key], b[key])


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_it_learns_a_small_generated_problem(name: str, options: dict[str, str]) -> None:
    train, valid = data(name, 192, 0), data(name, 96, 1)
    tasks, _, _ = case(name)
    model = build(name, **options)
    before = validation_losses(model, tasks, valid)
    config = TrainConfig(epochs=25, batch_size=32, lr=1e-2, progress=False, patience=None, threads=1)
    result = fit(model, tasks, train, valid, config)
    after = validation_losses(result.model, tasks, valid)
    improved = [t.name for t in tasks if after[t.name] < 0.8 * before[t.name]]  # type: ignore[operator]
    assert len(improved) == len(tasks), (before, after)


BALANCING = [
    (name, balancer, of)
    for name in NAMES
    for balancer in BALANCERS.names()
    for of in (("parameters", "representation") if getattr(BALANCERS.get(balancer), "needs", "losses") != "losses"
               else ("parameters",))
]


@pytest.mark.parametrize(("name", "balancer", "of"), BALANCING, ids=[f"{a}-{b}-{c}" for a, b, c in BALANCING])
def test_every_balancer_steps_on_every_architecture(name: str, balancer: str, of: str) -> None:
    model = build(name)
    tasks, _, _ = case(name)
    cls = BALANCERS.get(balancer)
    options = {"of": of} if of != "parameters" else {}
    if balancer == "mgda-ub":
        options = {}
    method = cls(tasks, **options)
    assert isinstance(method, Balancing)
    arrays = data(name, n=24)
    count = {t.name: int(arrays.masks[t.name].sum()) for t in tasks}
    stepper = Stepper(model, method, tasks, Distributed())
    method.begin_step(0, 0, 1)
    values = stepper.step([arrays.take({"s": np.arange(24)})], count, lambda v: None)
    assert bool(torch.isfinite(values).all())
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)


@pytest.mark.slow
def test_every_architecture_under_torchrun_matches_one_process(tmp_path: Path) -> None:
    script = HERE / "contract_ddp_script.py"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    torchrun = Path(sys.executable).parent / "torchrun"
    out = tmp_path / "ddp.pt"
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", str(script), str(out)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    spec = importlib.util.spec_from_file_location("contract_ddp_script", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    single = module.run_all()
    ddp = torch.load(out, weights_only=True)
    assert set(ddp) == set(single) == set(NAMES)
    for name in NAMES:
        for key, value in single[name].items():
            torch.testing.assert_close(ddp[name][key], value, rtol=1e-4, atol=1e-5, msg=f"{name}: {key}")


@pytest.mark.parametrize("name", NAMES)
def test_tasks_with_different_inputs_share_what_follows_their_encoders(name: str) -> None:
    """Each task reads its own source (one data set per task); an architecture that needs one table says so."""
    tasks, inputs, sizes = case(name)
    spec = inputs["s"]
    sources = {t.name: f"src{i}" for i, t in enumerate(tasks)}
    per_task = {f"src{i}": spec for i in range(len(tasks))}
    torch.manual_seed(0)
    try:
        model = MODELS.get(name)(per_task, tasks, sources, sizes)
    except ConfigError as e:
        assert "one source" in str(e) or "one table" in str(e), e
        return
    rows = {s: data(name, n=3 + i).inputs["s"][: 3 + i] for i, s in enumerate(per_task)}
    out = model({s: torch.from_numpy(v) for s, v in rows.items()})
    for i, t in enumerate(tasks):
        assert out[t.name].shape[0] == 3 + i
