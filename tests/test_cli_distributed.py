"""``torchrun --nproc_per_node=2 -m multitask train`` (gloo on CPU) reaches the metrics of one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ARGS = ["train", "--task", "y1:regression", "--task", "y2:binary", "--task", "cls:multiclass",
        "--epochs", "4", "--batch-size", "64", "--quiet", "--seed", "3"]
#: both runs compute the same gradients up to float summation order; metrics agree far closer than this
RTOL = 1e-3


@pytest.mark.slow
def test_torchrun_two_processes_match_one(wide_csv: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    single = subprocess.run([sys.executable, "-m", "multitask", *ARGS, "--data", str(wide_csv), "--out", str(one)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "multitask", *ARGS, "--data", str(wide_csv), "--out", str(two)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a = json.loads((one / "metrics.json").read_text())["tasks"]
    b = json.loads((two / "metrics.json").read_text())["tasks"]
    for task, metrics in a.items():
        for name, value in metrics.items():
            assert b[task][name] == pytest.approx(value, rel=RTOL), (task, name)
    # only rank 0 wrote the run: one line per epoch in the log
    assert len((two / "log.jsonl").read_text().splitlines()) == 4
