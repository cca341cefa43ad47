"""Every registered balancer trains through ``fit``, logs its weights, and resumes to the same result."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from multitask import Task
from multitask.balancing import Balancing
from multitask.cli import _train_overrides, build_parser
from multitask.data.arrays import Arrays
from multitask.errors import ConfigError
from multitask.nn import HardSharing, InputSpec
from multitask.registry import BALANCERS
from multitask.train import TrainConfig, fit

TASKS = [Task("r", "regression"), Task("b", "binary", weight=0.5), Task("q", "regression")]


def _problem(n: int = 160) -> tuple[Arrays, Arrays]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    r = (x @ rng.normal(size=4)).astype(np.float32)
    q = (-r + 0.3 * x[:, 2]).astype(np.float32)  # conflicts with r through the shared trunk
    b = (x[:, 0] > 0).astype(np.float32)
    masks = {t.name: rng.random(n) < 0.8 for t in TASKS}
    targets = {k: np.where(masks[k], v, 0).astype(np.float32) for k, v in {"r": r, "b": b, "q": q}.items()}
    data = Arrays({"s": x}, targets, masks, {t.name: "s" for t in TASKS})
    cut = int(0.75 * n)
    return data.subset({"s": np.arange(cut)}), data.subset({"s": np.arange(cut, n)})


def _model() -> HardSharing:
    torch.manual_seed(0)
    return HardSharing({"s": InputSpec(dim=4)}, TASKS, {t.name: "s" for t in TASKS}, hidden=(8,))


def _config(name: str, **options: object) -> TrainConfig:
    return TrainConfig(
        epochs=3, batch_size=32, lr=1e-2, progress=False, patience=None, threads=1, balancer=name,
        balancer_options=options,
    )


class _Stop(Exception):
    pass


def _stop_after_first(epoch: int, score: float | None) -> None:
    if epoch == 1:
        raise _Stop


@pytest.mark.parametrize("name", BALANCERS.names())
def test_fit_runs_logs_weights_and_resumes_to_the_same_result(name: str, tmp_path: Path) -> None:
    train, valid = _problem()
    full = fit(_model(), TASKS, train, valid, _config(name), run_dir=tmp_path / "full")
    with pytest.raises(_Stop):
        fit(_model(), TASKS, train, valid, _config(name), run_dir=tmp_path / "cut", on_epoch=_stop_after_first)
    resumed = fit(_model(), TASKS, train, valid, _config(name), run_dir=tmp_path / "cut", resume=True)

    def strip(history: list[dict[str, object]]) -> list[dict[str, object]]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in history]

    assert strip(resumed.history) == strip(full.history)
    for key, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    records = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    for record in records:
        weights = record["weights"]
        assert set(weights) == {t.name for t in TASKS}
        assert all(isinstance(w, float) and w >= 0 for w in weights.values())
    if name == "dwa":  # equal weights for two epochs, then the loss ratios
        assert records[0]["weights"] == records[1]["weights"] == {"r": 1.0, "b": 1.0, "q": 1.0}
        assert records[2]["weights"] != records[1]["weights"]


def test_uncertainty_log_variances_are_trained_and_checkpointed(tmp_path: Path) -> None:
    train, valid = _problem()
    fit(_model(), TASKS, train, valid, _config("uncertainty"), run_dir=tmp_path)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["balancer"]
    assert saved["log_vars"].shape == (3,) and bool((saved["log_vars"] != 0).all())


def test_an_unknown_option_is_named() -> None:
    with pytest.raises(ConfigError, match="balancer 'dwa' takes no 'tau'; its options are: temperature"):
        _config("dwa", tau=2.0)


def test_a_refused_option_value_is_named() -> None:
    train, valid = _problem()
    with pytest.raises(ConfigError, match=r"'temperature'.*balancer 'dwa': temperature must be finite and > 0"):
        fit(_model(), TASKS, train, valid, _config("dwa", temperature=-1.0))


def test_resume_refuses_a_changed_balancer(tmp_path: Path) -> None:
    train, valid = _problem()
    with pytest.raises(_Stop):
        fit(_model(), TASKS, train, valid, _config("rlw"), run_dir=tmp_path, on_epoch=_stop_after_first)
    with pytest.raises(ConfigError, match=r"balancer \('rlw' -> 'mgda'\)"):
        fit(_model(), TASKS, train, valid, _config("mgda"), run_dir=tmp_path, resume=True)
    other = tmp_path / "dwa"
    with pytest.raises(_Stop):
        fit(_model(), TASKS, train, valid, _config("dwa"), run_dir=other, on_epoch=_stop_after_first)
    with pytest.raises(ConfigError, match=r"balancer_options \({} -> {'temperature': 3.0}\)"):
        fit(_model(), TASKS, train, valid, _config("dwa", temperature=3.0), run_dir=other, resume=True)


def test_the_command_line_selects_a_balancer_and_its_options() -> None:
    args = build_parser().parse_args(
        ["train", "--balancer", "dwa", "--balancer-option", "temperature=1.5", "--data", "x.csv"]
    )
    train = _train_overrides(args)["train"]
    assert train["balancer"] == "dwa" and train["balancer_options"] == {"temperature": 1.5}
    with pytest.raises(ConfigError):
        build_parser().parse_args(["train", "--balancer", "nope"])


def test_a_checkpoint_from_before_balancers_resumes_as_static(tmp_path: Path) -> None:
    from multitask.train import CHECKPOINT_FILE, load_checkpoint

    train, valid = _problem()
    full = fit(_model(), TASKS, train, valid, _config("static"), run_dir=tmp_path / "full")
    with pytest.raises(_Stop):
        fit(_model(), TASKS, train, valid, _config("static"), run_dir=tmp_path / "old", on_epoch=_stop_after_first)
    ckpt = load_checkpoint(tmp_path / "old" / CHECKPOINT_FILE)
    del ckpt["config"]["balancer"], ckpt["config"]["balancer_options"]  # such checkpoints had neither
    torch.save(ckpt, tmp_path / "old" / CHECKPOINT_FILE)
    with pytest.raises(ConfigError, match=r"balancer \('static' -> 'dwa'\)"):
        fit(_model(), TASKS, train, valid, _config("dwa"), run_dir=tmp_path / "old", resume=True)
    resumed = fit(_model(), TASKS, train, valid, _config("static"), run_dir=tmp_path / "old", resume=True)
    for key, value in full.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


class _Collapsing(Balancing):
    """``L = L_r + L_b + 10⁻⁵ L_q``: task q's weight collapses."""

    def combine(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """``Σ_t w_t L_t`` with ``w = (1, 1, 10⁻⁵)``."""
        self.weights_ = torch.tensor([1.0, 1.0, 1e-5], dtype=torch.float64)
        return (self.weights_.float() * self._stack(losses)).sum()


def test_a_collapsed_weight_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    train, valid = _problem()
    with caplog.at_level("WARNING", logger="multitask.train._trainer"):
        fit(_model(), TASKS, train, valid, _config("static"), balancer=_Collapsing([t.name for t in TASKS]))
    warnings = [r.getMessage() for r in caplog.records if "hardly trains" in r.getMessage()]
    assert warnings == ["epoch 1: the balancer's mean weight of task 'q' is below 0.001 of the largest: "
                        "the task hardly trains"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="multitask.train._trainer"):
        fit(_model(), TASKS, train, valid, _config("static"))
    assert not [r for r in caplog.records if "hardly trains" in r.getMessage()]
