"""Task affinity on generated data with two groups: tasks a and b agree, task c is their opposite."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from multitask._cli_affinity import add_affinity_parser, run_affinity
from multitask.affinity import AffinityResult, affinity, cluster_order, gradient_affinity, read_csv
from multitask.config import RunConfig, load_config
from multitask.errors import ConfigError

TASKS = ["a", "b", "c", "d"]


def conflicting(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """``a`` and ``b`` rise with the same features, ``c`` falls with them; ``d`` reads other features."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6))
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(6)])
    score = x[:, :3] @ np.array([1.5, 1.0, -1.0])
    frame["a"] = score + 0.1 * rng.standard_normal(n)
    frame["b"] = 0.8 * score + 0.1 * rng.standard_normal(n)
    frame["c"] = -score + 0.1 * rng.standard_normal(n)
    frame["d"] = x[:, 3:] @ np.array([1.0, -1.0, 0.5]) + 0.1 * rng.standard_normal(n)
    frame.loc[rng.random(n) < 0.2, "b"] = np.nan  # missing labels are skipped, not imputed
    return frame


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("affinity") / "groups.csv"
    conflicting().to_csv(path, index=False)
    return path


def config(csv: Path, **train: object) -> RunConfig:
    return load_config(None, {"data": str(csv), "tasks": [f"{t}:regression" for t in TASKS],
                              "model_options": {"hidden": [16], "head": "shared", "head_penalty": 1.0},
                              "train": {"epochs": 3, "batch_size": 64, "lr": 1e-2, "progress": False, **train}})


@pytest.fixture(scope="module")
def result(csv: Path) -> AffinityResult:
    return affinity(config(csv), every=2, lr=0.05)


def test_agreeing_tasks_have_positive_and_conflicting_tasks_negative_affinity(result: AffinityResult) -> None:
    a, b, c = (result.tasks.index(t) for t in "abc")
    for measure in ("gradient", "lookahead"):
        m = result.matrices[measure]
        assert m[a, b] > 0 > m[a, c], measure
        assert m[b, a] > 0 > m[c, a], measure
        assert np.isfinite(m).all(), measure


def test_gradient_affinity_is_a_cosine_matrix(result: AffinityResult) -> None:
    m = result.matrices["gradient"]
    np.testing.assert_allclose(m, m.T, atol=1e-12)
    np.testing.assert_allclose(np.diag(m), 1.0, atol=1e-9)
    assert (np.abs(m) <= 1 + 1e-9).all()
    assert result.steps == 12  # 3 epochs of ceil(480 / 64) = 8 steps: steps 0, 2, ..., 22 measured
    assert result.seconds >= result.measure_seconds > 0


def test_gradient_affinity_of_a_jacobian() -> None:
    j = torch.tensor([[1.0, 0.0], [2.0, 0.0], [-1.0, 1.0], [0.0, 0.0]])
    m = gradient_affinity(j).numpy()
    np.testing.assert_allclose(m[:3, :3], [[1, 1, -0.5**0.5], [1, 1, -0.5**0.5], [-0.5**0.5, -0.5**0.5, 1]])
    assert np.isnan(m[3]).all() and np.isnan(m[:, 3]).all()  # a zero gradient has no direction


def test_a_run_is_reproducible_and_computes_only_the_measures_asked_for(csv: Path) -> None:
    once = affinity(config(csv, epochs=1), measures=("lookahead",), every=1, lr=0.05)
    twice = affinity(config(csv, epochs=1), measures=("lookahead",), every=1, lr=0.05)
    np.testing.assert_allclose(once.matrices["lookahead"], twice.matrices["lookahead"], rtol=1e-6)
    assert list(once.matrices) == ["lookahead"]


def test_cluster_order_puts_the_agreeing_tasks_together(result: AffinityResult) -> None:
    for measure in ("gradient", "lookahead"):
        order = [result.tasks[i] for i in cluster_order(result.matrices[measure])]
        assert abs(order.index("a") - order.index("b")) == 1, (measure, order)


def cli(*args: str) -> int:
    from rich.console import Console

    from multitask.cli import _Parser

    parser = _Parser(prog="multitask")
    add_affinity_parser(parser.add_subparsers(dest="command"))
    ns: argparse.Namespace = parser.parse_args(["affinity", *args])
    return run_affinity(ns, Console(width=200))


def test_the_command_writes_csv_and_png(csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "aff"
    rc = cli("--data", str(csv), *(x for t in TASKS for x in ("--task", f"{t}:regression")), "--epochs", "2",
             "--every", "3", "--lr", "0.01", "--model-option", "hidden=[16]", "--model-option", "head=shared", "--out", str(out))
    assert rc == 0
    text = capsys.readouterr().out
    assert "gradient affinity" in text and "lookahead affinity" in text
    for measure in ("gradient", "lookahead"):
        frame = read_csv(out / f"affinity_{measure}.csv")
        assert list(frame.index) == TASKS and list(frame.columns) == TASKS
        assert np.isfinite(frame.to_numpy()).all()
        assert (out / f"affinity_{measure}.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_options_are_config_errors(csv: Path, tmp_path: Path) -> None:
    base = ["--data", str(csv), "--task", "a:regression", "--task", "c:regression", "--out", str(tmp_path / "x")]
    with pytest.raises(ConfigError, match="--measure"):
        cli(*base, "--measure", "gradient,bogus")
    with pytest.raises(ConfigError, match="--every"):
        cli(*base, "--every", "0")
    with pytest.raises(ConfigError, match="deep model"):
        affinity(load_config(None, {"data": str(csv), "tasks": ["a:regression", "c:regression"],
                                    "model": "linear:l21"}))


class Tiny(torch.nn.Module):
    """A shared linear layer and two one-weight heads."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = torch.nn.Linear(3, 2)
        self.head = torch.nn.ModuleDict({"p": torch.nn.Linear(2, 1), "q": torch.nn.Linear(2, 1)})

    def shared_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.shared.parameters())

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        h = torch.tanh(self.shared(inputs["x"]))
        return {t: head(h).squeeze(-1) for t, head in self.head.items()}


def test_the_lookahead_is_one_sgd_step_of_the_shared_part_and_changes_nothing() -> None:
    import copy

    from multitask.affinity import lookahead_affinity
    from multitask.balancing import task_jacobian
    from multitask.data.arrays import Batch
    from multitask.tasks import Task

    torch.manual_seed(0)
    net, tasks = Tiny(), [Task("p", "regression"), Task("q", "regression")]
    x = torch.randn(16, 3)
    mask = torch.ones(16, dtype=torch.bool)
    batch = Batch({"x": x}, {"p": x[:, 0], "q": -x[:, 1]}, {"p": mask, "q": mask})

    def losses(model: torch.nn.Module) -> torch.Tensor:
        out = model(batch.inputs)
        return torch.stack([((out[t.name] - batch.targets[t.name]) ** 2).mean() for t in tasks])

    before = {k: v.clone() for k, v in net.state_dict().items()}
    jacobian = task_jacobian(losses(net), net.shared_parameters())
    z = lookahead_affinity(net, tasks, batch, ["shared.weight", "shared.bias"], jacobian, 0.1).numpy()
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    for i in range(len(tasks)):  # the same by hand: a copy, one SGD step of the shared part along L_i
        moved = copy.deepcopy(net)
        grads = torch.autograd.grad(losses(moved)[i], moved.shared_parameters())
        with torch.no_grad():
            for p, g in zip(moved.shared_parameters(), grads, strict=True):
                p.sub_(0.1 * g)
            np.testing.assert_allclose(z[i], (1 - losses(moved) / losses(net)).numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("model", ["shared-bottom", "cross-stitch", "mmoe", "ple", "dselect-k", "learned-tree"])
def test_every_kind_of_architecture_is_measured(csv: Path, model: str) -> None:
    # dselect-k keeps state of its last forward pass (its gates' penalty): the lookahead must not disturb it
    cfg = load_config(None, {"data": str(csv), "model": model, "tasks": [f"{t}:regression" for t in TASKS],
                             "train": {"epochs": 1, "batch_size": 128, "progress": False}})
    result = affinity(cfg, every=2)
    assert result.steps == 2
    for m in result.matrices.values():
        assert m.shape == (4, 4) and np.isfinite(m).all()


def test_a_diverging_affinity_run_is_an_error_not_a_matrix(csv: Path) -> None:
    from multitask.errors import TrainingDivergedError

    with pytest.raises(TrainingDivergedError, match="non-finite loss"):
        affinity(config(csv, epochs=3, lr=1e9), every=1, lr=0.05)
