"""``multitask demo``: train on the best built-in data available without a network, against single-task models.

Census-income (income > 50K and never married, the MMoE paper's pair of tasks) is used when a local copy is
found (``$MULTITASK_DATA`` or the download cache); it is never downloaded here. Without it the demo runs on
the generated ``synthetic`` data set, whose task structure is known, and says so.
"""

from __future__ import annotations

from pathlib import Path

from multitask.config import RunConfig
from multitask.errors import DataError
from multitask.runs import RunResult, train
from multitask.train.config import TrainConfig


def run_demo(out: Path) -> tuple[RunResult, str]:
    """Train the demo run into ``out``; returns the result and a line saying which data were used."""
    from multitask.datasets import census_income

    try:
        data = census_income(download=False)
    except DataError as e:
        note = (
            "demo data: generated 'synthetic' data set (6 tasks: two groups of related tasks and one unrelated "
            "task; 200 training rows, 2,000 test rows), "
            f"because no local copy of census-income was found ({e}). "
            "Set MULTITASK_DATA to a folder with census-income/census-income.test.gz to use real data."
        )
        cfg = RunConfig(
            dataset="synthetic",
            dataset_options={"n_rows": 200, "n_test": 2000},  # few rows per task: where sharing pays
            train=TrainConfig(epochs=60, batch_size=32, lr=3e-3, patience=10, threads=1),
            model_options={"hidden": [64, 32]},
            baseline="stl",
            out=str(out),
        )
        return train(cfg, overwrite=True), note
    note = (
        f"demo data: census-income (UCI KDD, the local copy's {len(data.train.sources['census'].frame):,} rows), "
        "tasks income > 50K and never married; 20% held out for validation"
    )
    cfg = RunConfig(
        dataset="census-income",
        dataset_options={"download": False},
        train=TrainConfig(epochs=4, batch_size=256, lr=1e-3, patience=2, threads=1),
        model_options={"hidden": [128, 64]},
        baseline="stl",
        out=str(out),
    )
    return train(cfg, data=data, overwrite=True), note
