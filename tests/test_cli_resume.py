"""A killed ``multitask train`` continued with ``--resume`` ends with the same metrics as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import make_wide


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    make_wide(3000, seed=1).to_csv(data, index=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "multitask", "train", "--data", str(data), "--task", "y1:regression",
            "--task", "y2:binary", "--epochs", "12", "--batch-size", "16", "--patience", "100", "--quiet",
            "--baseline", "stl"]

    whole = tmp_path / "whole"
    proc = subprocess.run([*args, "--out", str(whole)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr

    killed = tmp_path / "killed"
    victim = subprocess.Popen([*args, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=env)
    log = killed / "log.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if log.exists() and len(log.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (killed / "metrics.json").exists()

    proc = subprocess.run([*args, "--out", str(killed), "--resume"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    a = json.loads((whole / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    for part in ("model", "stl"):
        ours, theirs = (a, b) if part == "model" else (a["baselines"]["stl"], b["baselines"]["stl"])
        for task, metrics in ours["tasks"].items():
            for name, value in metrics.items():
                assert theirs["tasks"][task][name] == pytest.approx(value, rel=1e-6, abs=1e-9), (part, task, name)
