"""On the real School data (../shared/data, skipped when absent): sharing beats independent models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from multitask.linear import L21, IndependentLinear, MeanRegularized

SPLITS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "school" / "splits"
pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not (SPLITS / "train_1.csv.gz").exists(), reason=f"School splits not found in {SPLITS}"),
]


def load(part: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = pd.read_csv(SPLITS / f"{part}_1.csv.gz", header=None).to_numpy(dtype=float)
    return table[:, :28], table[:, 28], table[:, 29].astype(int)


def mean_task_rmse(model: IndependentLinear, X: np.ndarray, y: np.ndarray, tasks: np.ndarray) -> float:
    pred = model.predict(X, tasks)
    return float(np.mean([np.sqrt(np.mean((pred[tasks == t] - y[tasks == t]) ** 2)) for t in np.unique(tasks)]))


def test_school_split_1() -> None:
    X, y, tasks = load("train")
    X_test, y_test, tasks_test = load("test")
    mean, std = X.mean(axis=0), X.std(axis=0)
    std[std == 0] = 1.0
    X, X_test = (X - mean) / std, (X_test - mean) / std
    assert len(np.unique(tasks)) == 139
    scores = {type(m).__name__: mean_task_rmse(m.fit(X, y, tasks), X_test, y_test, tasks_test)
              for m in (IndependentLinear(alpha=1e-2), MeanRegularized(rho=1.0), L21(alpha=0.1))}
    assert scores["MeanRegularized"] < scores["IndependentLinear"] - 0.1  # sharing helps on School
    assert all(8.0 < s < 11.0 for s in scores.values()), scores
