"""Shared fixtures: small generated tables in the three layouts, and the shared real data folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

# The suite runs on two workers on two cores: one torch thread each (two threads per worker make small models
# many times slower on a busy machine; see "Torch threads" in docs/benchmarks.md).
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The folder of real data sets beside the checkout; tests that need it skip, saying why, without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data sets not available: {SHARED_DATA} is absent")
    return SHARED_DATA


def make_wide(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Three related tasks (regression, binary, multiclass) over 5 numeric and 1 string feature; 20% of the
    regression labels missing."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5))
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(5)])
    frame["color"] = rng.choice(["red", "green", "blue"], n)
    score = x @ np.array([1.0, 2.0, 0.0, 0.0, 1.0]) + (frame["color"] == "red") * 1.0
    frame["y1"] = score + 0.1 * rng.standard_normal(n)
    frame.loc[rng.random(n) < 0.2, "y1"] = np.nan
    frame["y2"] = (score + 0.3 * rng.standard_normal(n) > 0).astype(int)
    frame["cls"] = np.where(x[:, 0] > 0.5, "hi", np.where(x[:, 0] < -0.5, "lo", "mid"))
    return frame


def make_long(n_tasks: int = 4, n_per_task: int = 60, seed: int = 0) -> pd.DataFrame:
    """Long form: ``group`` names the task; tasks share most of their weights."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(4)
    parts = []
    for t in range(n_tasks):
        x = rng.standard_normal((n_per_task, 4))
        w = base + 0.2 * rng.standard_normal(4)
        part = pd.DataFrame(x, columns=["a", "b", "c", "d"])
        part["group"] = f"g{t}"
        part["y"] = x @ w + 0.1 * rng.standard_normal(n_per_task)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


@pytest.fixture
def wide_csv(tmp_path: Path) -> Path:
    path = tmp_path / "wide.csv"
    make_wide().to_csv(path, index=False)
    return path


@pytest.fixture
def long_csv(tmp_path: Path) -> Path:
    path = tmp_path / "long.csv"
    make_long().to_csv(path, index=False)
    return path


@pytest.fixture(autouse=True)
def _fresh_warnings() -> None:
    """Each test sees the trainer's once-per-process warnings anew."""
    from multitask.train import _trainer

    _trainer._WARNED.clear()
