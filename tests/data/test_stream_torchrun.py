"""``--stream`` under torchrun (two processes, gloo on CPU): each rank reads its own row groups.

Checks, against one process on the same file: the fitted preprocessing (to the last bit), the rows of an
epoch (each training row drawn by exactly one rank, each rank reading only its own row groups), equal steps
on unequal shares, the validation losses and metrics of the trained weights (equal to one process's
evaluation of them), a run killed within an epoch and resumed under torchrun (the same weights as the run
left alone), the refusal to resume that checkpoint with another number of processes, and ``multitask train
--stream`` under torchrun.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from multitask._stream_run import stream_metrics
from multitask.data.stream_fit import fit_stream
from multitask.data.streaming import Table, is_valid_row
from multitask.errors import ConfigError
from multitask.models._deep import Deep
from multitask.nn import HardSharing, InputSpec
from multitask.runs import load_run
from multitask.train import validation_losses
from multitask.train._trainer import _torch_threads
from tests.data.stream_ddp_script import CONFIG, TASKS, spec_of, train
from tests.data.test_stream_sharding import GROUPS, N, write_uneven

SCRIPT = Path(__file__).parent / "stream_ddp_script.py"
ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_two_processes_read_their_own_row_groups_and_resume(tmp_path: Path) -> None:
    data = write_uneven(tmp_path / "uneven.parquet")
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])  # this checkout
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT), str(data),
         str(out)],
        env=env, capture_output=True, text=True, timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = torch.load(out / "result.pt", weights_only=False)
    pre, train_part, valid = fit_stream(Table(data), spec_of, 0.25, 7, CONFIG["shuffle_buffer"])

    # the preprocessing fitted from the two ranks' pieces is the one process's
    assert got["pre"] == pre.to_dict()

    # one epoch: each rank read only its pieces, and each training row was drawn by exactly one rank
    ranks = got["epoch"]
    assert [r["read"] for r in ranks] == [r["order"] for r in ranks]
    assert sorted(p for r in ranks for p in r["read"]) == list(range(len(GROUPS)))
    drawn = [i for r in ranks for i in r["drawn"]]
    assert sorted(drawn) == list(np.flatnonzero(~is_valid_row(np.arange(N), 0.25, 7)))
    # unequal shares: both ranks take the steps of the smaller one
    assert ranks[0]["steps"] == ranks[1]["steps"] == min(r["own_steps"] for r in ranks)
    assert ranks[0]["own_steps"] != ranks[1]["own_steps"]

    # the run killed within its second epoch and resumed under torchrun ends as the run left alone
    killed = got["killed"]
    assert killed["world_size"] == 2 and len(killed["positions"]) == 2 and killed["step"] == 10
    for name, value in got["full"].items():
        assert torch.equal(value, got["resumed"][name]), name
    full_history, resumed_history = got["history"]
    assert [r["train"] for r in full_history] == [r["train"] for r in resumed_history]
    assert [r["valid"] for r in full_history] == [r["valid"] for r in resumed_history]

    # validation losses and metrics: those one process computes with the same weights
    net = HardSharing(InputSpec.of_sources(pre.input_shapes()), TASKS, train_part.task_source, pre.output_sizes(),
                      hidden=[16], dropout=0.0)
    net.load_state_dict(got["full"])
    deep = Deep("hard-sharing")
    deep.net_, deep.tasks_ = net, list(TASKS)
    with _torch_threads(1):
        assert validation_losses(net, TASKS, valid) == got["valid"]
        assert stream_metrics(deep, TASKS, valid, pre) == got["metrics"]
    assert full_history[-1]["valid"] == got["valid"]

    # that checkpoint resumes only with two processes
    with pytest.raises(ConfigError, match=r"of 2 process\(es\); resume it with the same number of processes "
                                          r"\(torchrun --nproc_per_node\), not 1"):
        train((pre, train_part, valid), out / "killed_copy", resume=True)

    # `multitask train --stream` under torchrun: a complete run whose metrics are one process's evaluation
    assert got["cli"] == [0, 0]
    run = out / "cli"
    assert not (run / "INCOMPLETE").exists()
    assert len((run / "log.jsonl").read_text().splitlines()) == 2
    loaded = load_run(run)
    metrics = json.loads((run / "metrics.json").read_text())["tasks"]
    with _torch_threads(1):
        assert loaded.model is not None and loaded.preprocessor.to_dict() == pre.to_dict()
        expected = stream_metrics(loaded.model, loaded.tasks, valid, loaded.preprocessor)
    for task, values in expected.items():
        assert metrics[task] == pytest.approx(values, rel=1e-12), task
