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
    assert (c.patience, c.seed, c.threads, c.temperature, c.monitor) == (5, 0, None, 2.0, None)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (
            {"optimizer": "lbfgs"},
            r"train option 'optimizer': unknown optimizer 'lbfgs'; choose one of: adam, adamw, sgd",
        ),
        ({"sampling": "random"}, r"'sampling': unknown sampling 'random'; choose one of: proportional"),
        ({"schedule": "linear"}, r"'schedule': unknown lr schedule 'linear'"),
        ({"lr": 0}, r"'lr': must be finite and > 0, got 0"),
        ({"lr": float("inf")}, r"'lr': must be finite and > 0, got inf"),
        ({"lr": "nan"}, r"'lr': must be finite and > 0, got nan"),
        ({"lr": "1e400"}, r"'lr': must be finite and > 0, got inf"),
        ({"lr": True}, r"'lr': must be a number, got True"),
        ({"epochs": 0}, r"'epochs': must be an integer in \[1, 1000000\], got 0"),
        ({"epochs": 10**6 + 1}, r"'epochs': must be an integer in \[1, 1000000\]"),
        ({"epochs": True}, r"'epochs': must be an integer, got True"),
        ({"epochs": 2.0}, r"'epochs': must be an integer, got 2.0"),
        ({"epochs": "many"}, r"'epochs': must be an integer, got 'many'"),
        ({"batch_size": -3}, r"'batch_size': must be an integer in \[1, 2147483647\], got -3"),
        ({"batch_size": 2**31}, r"'batch_size': must be an integer in \[1, 2147483647\]"),
        ({"patience": 0}, r"'patience': must be None or an integer in \[1, 2147483647\], got 0"),
        ({"patience": False}, r"'patience': must be an integer, got False"),
        ({"threads": 0}, r"'threads': must be None or a number of threads in \[1, 1024\], got 0"),
        ({"threads": 100_000}, r"'threads': must be None or a number of threads in \[1, 1024\], got 100000"),
        ({"threads": 1.5}, r"'threads': must be an integer, got 1.5"),
        ({"temperature": -1.0}, r"'temperature': must be finite and > 0, got -1.0"),
        ({"temperature": float("inf")}, r"'temperature': must be finite and > 0, got inf"),
        ({"weight_decay": -0.1}, r"'weight_decay': must be finite and >= 0, got -0.1"),
        ({"weight_decay": float("inf")}, r"'weight_decay': must be finite and >= 0, got inf"),
        ({"weight_decay": float("nan")}, r"'weight_decay': must be finite and >= 0, got nan"),
        ({"momentum": float("nan"), "optimizer": "sgd"}, r"'momentum': must be in \[0, 1\), got nan"),
        ({"seed": -1}, r"'seed': must be an integer in \[0, 4294967295\], got -1"),
        ({"seed": 2**32}, r"'seed': must be an integer in \[0, 4294967295\], got 4294967296"),
        ({"seed": True}, r"'seed': must be an integer, got True"),
        ({"momentum": 0.9}, r"momentum only applies to optimizer 'sgd'"),
        ({"learning_rate": 0.1}, r"unknown train option 'learning_rate'; options are: epochs, batch_size"),
    ],
)
def test_invalid_options_raise_config_error_naming_them(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**options)


def test_the_limits_are_accepted() -> None:
    """The largest values are usable where they go: the seed by torch and numpy."""
    import numpy as np

    from multitask.train._trainer import epoch_seed

    c = TrainConfig(seed=2**32 - 1, batch_size=2**31 - 1, epochs=10**6, lr="1e-3", monitor="income")
    assert (c.lr, c.monitor) == (1e-3, "income")  # YAML 1.1 reads 1e-3 as a string
    torch.manual_seed(c.seed)
    np.random.RandomState(c.seed)
    assert 0 <= epoch_seed(c.seed, c.epochs - 1) < 2**32
    assert TrainConfig(patience=None, threads=None).patience is None


def test_options_from_yaml_ints_and_floats() -> None:
    import yaml

    options = yaml.safe_load("epochs: 3\nbatch_size: 16\nlr: 1e-2\nweight_decay: 0\nseed: 7\n")
    c = TrainConfig(**options)
    assert (c.epochs, c.batch_size, c.lr, c.weight_decay, c.seed) == (3, 16, 0.01, 0.0, 7)
    with pytest.raises(ConfigError, match=r"'epochs': must be an integer, got True"):
        TrainConfig(**yaml.safe_load("epochs: yes"))
    with pytest.raises(ConfigError, match=r"'lr': must be finite and > 0, got inf"):
        TrainConfig(**yaml.safe_load("lr: .inf"))


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
