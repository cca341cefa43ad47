"""Preference-conditioned training (COSMOS / loss-conditional) and ``multitask pareto`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from multitask.cli import main
from multitask.config import RunConfig
from multitask.pareto import Cosmos, PreferenceConditioned, load_conditioned, pareto

from ..conftest import make_wide


class _Linear(torch.nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.task_source = {"a": "x", "b": "x"}
        self.layer = torch.nn.Linear(width, 2)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.layer(inputs["x"])
        return {"a": out[:, :1], "b": out[:, 1:]}


def test_preference_is_appended_to_tabular_and_image_inputs() -> None:
    seen: dict[str, torch.Tensor] = {}

    class Spy(torch.nn.Module):
        def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            seen.update(inputs)
            return {}

    net = PreferenceConditioned(Spy(), 2)
    net.eval()
    net.set_preference([0.25, 0.75])
    net({"t": torch.zeros(3, 4), "img": torch.zeros(3, 1, 2, 2)})
    assert seen["t"].shape == (3, 6) and seen["t"][:, 4:].tolist() == [[0.25, 0.75]] * 3
    assert seen["img"].shape == (3, 3, 2, 2) and float(seen["img"][0, 2].mean()) == 0.75
    with pytest.raises(ValueError, match="2 finite weights"):
        net.set_preference([1.0, -1.0])


def test_cosmos_draws_per_step_reproducibly_and_weighs_the_losses() -> None:
    net = PreferenceConditioned(_Linear(3), 2)
    method = Cosmos(["a", "b"], net, alpha=1.0, cosine_weight=0.5)
    method.begin_step(seed=0, epoch=1, step=2)
    r = net.training_preference
    assert r is not None and float(r.sum()) == pytest.approx(1.0) and bool((r > 0).all())
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(1.0)}
    rr = r.double()
    expected = float((rr * torch.tensor([2.0, 1.0])).sum() - 0.5 * torch.nn.functional.cosine_similarity(
        rr, torch.tensor([2.0, 1.0], dtype=torch.float64), dim=0))
    assert float(method.combine(losses)) == pytest.approx(expected)
    method.begin_step(seed=0, epoch=1, step=2)
    assert torch.equal(net.training_preference, r)
    method.begin_step(seed=0, epoch=1, step=3)
    assert not torch.equal(net.training_preference, r)


def test_dirichlet_draws_have_the_right_mean() -> None:
    net = PreferenceConditioned(_Linear(3), 3)
    method = Cosmos(["a", "b", "c"], net, alpha=0.5)
    draws = []
    for step in range(2000):
        method.begin_step(0, 0, step)
        assert net.training_preference is not None
        draws.append(net.training_preference.numpy().copy())
    d = np.array(draws)
    assert np.allclose(d.mean(axis=0), 1 / 3, atol=0.02)
    # Var of a Dir(0.5, 0.5, 0.5) component: (1/3)(2/3) / (1.5 + 1) = 0.0889
    assert np.allclose(d.var(axis=0), 0.0889, atol=0.01)


def test_training_mode_reads_the_drawn_preference_evaluation_the_set_one() -> None:
    seen: list[torch.Tensor] = []

    class Spy(torch.nn.Module):
        def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            seen.append(inputs["x"][0, -2:].clone())
            return {}

    net = PreferenceConditioned(Spy(), 2)
    net.training_preference = torch.tensor([0.9, 0.1])
    net.train()
    net({"x": torch.zeros(1, 1)})
    net.eval()
    net({"x": torch.zeros(1, 1)})
    assert seen[0].tolist() == pytest.approx([0.9, 0.1]) and seen[1].tolist() == [0.5, 0.5]


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pareto")
    make_wide(300).to_csv(d / "w.csv", index=False)
    cfg = RunConfig(data=str(d / "w.csv"), tasks=["y1:regression", "y2:binary"],
                    train={"epochs": 3, "progress": False, "batch_size": 64})
    pareto(cfg, d / "front", points=5, fixed=2)
    return d / "front"


def test_front_files_and_hypervolumes(front: Path) -> None:
    table = pd.read_csv(front / "front.csv")
    assert (table["method"] == "conditioned").sum() == 5 and (table["method"] == "fixed").sum() == 2
    assert {"loss:y1", "loss:y2", "metric:y1", "metric:y2", "preference:y1", "front"} <= set(table.columns)
    result = json.loads((front / "pareto.json").read_text())
    assert set(result["hypervolume"]) == {"conditioned", "fixed"}
    assert all(v > 0 for v in result["hypervolume"].values())
    assert (front / "pareto.png").stat().st_size > 1000
    assert set(result["seconds"]) == {"conditioned", "fixed"}


def test_saved_conditioned_model_answers_at_any_preference(front: Path) -> None:
    net = load_conditioned(front / "conditioned")
    x = torch.randn(4, 11)  # the run's 11 encoded feature columns
    net.set_preference([1.0, 0.0])
    a = net({"data": x})
    net.set_preference([0.0, 1.0])
    b = net({"data": x})
    assert set(a) == {"y1", "y2"} and not torch.equal(a["y1"], b["y1"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "y1:regression"], "at least two tasks"),
        (["--task", "y1:regression", "--task", "y2:binary", "--points", "1"], "at least 2 preference"),
        (["--task", "y1:regression", "--task", "y2:binary", "--fixed", "1"], "--fixed must be 0"),
        (["--task", "y1:regression", "--task", "y2:binary", "--model", "linear:l21"], "needs a deep architecture"),
        (["--task", "y1:regression", "--task", "y2:binary", "--alpha", "0"], "alpha must be"),
    ],
)
def test_cli_refuses_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                 message: str) -> None:
    make_wide(100).to_csv(tmp_path / "w.csv", index=False)
    code = main(["pareto", "--data", str(tmp_path / "w.csv"), "--out", str(tmp_path / "f"), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "f" / "front.csv").exists()


def test_cli_prints_the_fronts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_wide(200).to_csv(tmp_path / "w.csv", index=False)
    args = ["pareto", "--data", str(tmp_path / "w.csv"), "--task", "y1:regression", "--task", "y2:binary",
            "--out", str(tmp_path / "f"), "--epochs", "2", "--points", "3", "--fixed", "0"]
    assert main(args) == 0
    assert "hypervolume" in capsys.readouterr().out
    assert main(args) == 2
    assert "--overwrite replaces it" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_task_without_validation_labels_is_refused_before_training(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    frame = make_wide(100)
    frame["z"] = np.where(np.arange(len(frame)) == 0, 1.0, np.nan)  # one labelled row: none in validation
    frame.to_csv(tmp_path / "w.csv", index=False)
    code = main(["pareto", "--data", str(tmp_path / "w.csv"), "--task", "y1:regression", "--task", "z:regression",
                 "--out", str(tmp_path / "f"), "--epochs", "1", "--points", "2", "--fixed", "0"])
    assert code == 2
    assert "task 'z' has no validation labels" in capsys.readouterr().err
    assert not (tmp_path / "f").exists()  # nothing trained, nothing half-written


def test_a_front_that_diverged_is_marked_and_a_rerun_replaces_it(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    make_wide(150).to_csv(tmp_path / "w.csv", index=False)
    args = ["pareto", "--data", str(tmp_path / "w.csv"), "--task", "y1:regression", "--task", "y2:binary",
            "--out", str(tmp_path / "f"), "--epochs", "1", "--points", "2", "--fixed", "0"]
    assert main([*args, "--lr", "1e30"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "diverged" in err[0], err
    assert (tmp_path / "f" / "INCOMPLETE").exists() and not (tmp_path / "f" / "pareto.json").exists()
    assert main([*args, "--lr", "1e30"]) == 2  # an unfinished front is replaced, not refused
    assert "diverged" in capsys.readouterr().err
    assert main(args) == 0  # no --overwrite needed
    assert (tmp_path / "f" / "pareto.json").exists() and not (tmp_path / "f" / "INCOMPLETE").exists()
    assert main(args) == 2  # a finished front is kept unless asked
    assert "--overwrite replaces it" in capsys.readouterr().err
