"""``multitask demo``: choose the best model for the tasks (``--model auto``) on the best built-in data available
without a network, and compare it with single-task models.

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

#: census-income rows the demo uses (of 99,762), so that choosing among all candidates takes about a minute
DEMO_ROWS = 20_000


def run_demo(out: Path, overwrite: bool = False) -> tuple[RunResult, str]:
    """Train the demo run into ``out`` (replacing the run there only with ``overwrite``); returns the result
    and a line saying which data were used."""
    from multitask.datasets import census_income

    try:
        data = census_income(download=False, max_rows=DEMO_ROWS)
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
            model="auto",
            train=TrainConfig(epochs=60, batch_size=32, lr=3e-3, patience=10, threads=1),
            baseline="stl",
            out=str(out),
        )
        return train(cfg, overwrite=overwrite), note
    note = (
        f"demo data: census-income (UCI KDD, {len(data.train.sources['census'].frame):,} rows drawn from the local "
        "copy), tasks income > 50K and never married; --model auto chooses among linear, boosted-tree and deep "
        "models (and their ensemble) on a validation part, and reports on a held-out part"
    )
    cfg = RunConfig(
        dataset="census-income",
        dataset_options={"download": False, "max_rows": DEMO_ROWS},
        model="auto",
        train=TrainConfig(epochs=4, batch_size=256, lr=1e-3, patience=2, threads=1),
        baseline="stl",
        out=str(out),
    )
    return train(cfg, data=data, overwrite=overwrite), note
