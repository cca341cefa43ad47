"""A run killed with SIGKILL after a checkpoint and resumed ends exactly where an uninterrupted run does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from multitask.errors import CheckpointError
from multitask.train import CHECKPOINT_FILE, load_checkpoint

SCRIPT = Path(__file__).parent / "resume_script.py"
EPOCHS = 8  # resume_script.CONFIG.epochs
KILL_AFTER = 3


def _start(run_dir: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(run_dir), *extra], env=env, stderr=subprocess.PIPE
    )


def _checkpoint_epoch(run_dir: Path) -> int:
    try:
        return int(load_checkpoint(run_dir / CHECKPOINT_FILE)["epoch"])
    except CheckpointError:
        return 0  # not written yet


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path: Path) -> None:
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    full = _start(full_dir)
    killed = _start(killed_dir)

    deadline = time.monotonic() + 90
    log = killed_dir / "log.jsonl"  # appended just before each checkpoint: cheaper to watch
    while (
        not log.exists()
        or len(log.read_bytes().splitlines()) < KILL_AFTER
        or _checkpoint_epoch(killed_dir) < KILL_AFTER
    ):
        assert killed.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    at_kill = _checkpoint_epoch(killed_dir)
    assert KILL_AFTER <= at_kill < EPOCHS, f"killed after epoch {at_kill}: nothing left to resume"
    assert not (killed_dir / "final.pt").exists()

    resumed = _start(killed_dir, "--resume")
    for proc in (full, resumed):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-4000:]

    a = torch.load(full_dir / "final.pt", weights_only=True)
    b = torch.load(killed_dir / "final.pt", weights_only=True)
    assert a["best_epoch"] == b["best_epoch"]
    assert a["history"] == b["history"]
    for name, value in a["state"].items():
        assert torch.equal(value, b["state"][name]), name
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, EPOCHS + 1))
