"""TrainConfig: commented defaults, and errors that name the option."""

from __future__ import annotations

import pydantic
import pytest
import torch

from multitask.errors import ConfigError
from multitask.registry import SCHEDULES
from multitask.train import TrainConfig


def test_defaults() -> None:
    c = TrainConfig()
    assert (c.epochs, c.batch_size, c.optimizer, c.lr, c.schedule, c.sampling) == (
        20,
        256,
        "adam",
        1e-3,
        "constant",
        "proportional",
    )
    assert (c.patience, c.seed, c.threads, c.temperature) == (5, 0, None, 2.0)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (
            {"optimizer": "lbfgs"},
            r"train option 'optimizer': unknown optimizer 'lbfgs'; choose one of: adam, adamw, sgd",
        ),
        ({"sampling": "random"}, r"'sampling': unknown sampling 'random'; choose one of: proportional"),
        ({"schedule": "linear"}, r"'schedule': unknown lr schedule 'linear'"),
        ({"lr": 0}, r"'lr': must be > 0"),
        ({"epochs": 0}, r"'epochs': must be >= 1"),
        ({"batch_size": -3}, r"'batch_size': must be >= 1"),
        ({"patience": 0}, r"'patience': must be >= 1 or None"),
        ({"temperature": -1.0}, r"'temperature': must be > 0"),
        ({"weight_decay": -0.1}, r"'weight_decay'"),
        ({"seed": -1}, r"'seed'"),
        ({"momentum": 0.9}, r"momentum only applies to optimizer 'sgd'"),
        ({"epochs": "many"}, r"'epochs'"),
        ({"learning_rate": 0.1}, r"unknown train option 'learning_rate'; options are: epochs, batch_size"),
    ],
)
def test_invalid_options_raise_config_error_naming_them(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**options)


def test_frozen() -> None:
    with pytest.raises(pydantic.ValidationError):
        TrainConfig().lr = 0.1  # type: ignore[misc]


def test_sgd_momentum_reaches_the_optimizer() -> None:
    from multitask.train._trainer import make_optimizer

    opt = make_optimizer(
        TrainConfig(optimizer="sgd", momentum=0.9, lr=0.1), [torch.nn.Parameter(torch.zeros(1))]
    )
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["momentum"] == 0.9


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedules(name: str) -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = SCHEDULES.get(name)(opt, 9)
    lrs = []
    for _ in range(9):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 1.0
    expected = {
        "constant": [1.0] * 9,
        "step": [1.0] * 3 + [0.1] * 3 + [0.01] * 3,
        "cosine": [0.5 * (1 + torch.cos(torch.tensor(torch.pi * e / 9))).item() for e in range(9)],
    }[name]
    assert lrs == pytest.approx(expected, rel=1e-5)
