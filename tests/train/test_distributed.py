"""Two processes under torchrun (gloo, CPU) train the same model as one process, up to summation order.

Tolerance: final weights and per-task validation losses agree within rtol=1e-4, atol=1e-5 (measured: largest
weight difference ~5e-6, validation losses ~3e-6, after 3 epochs of SGD with momentum), for the default
balancer, for a gradient balancer and for the registered mgda, mgda-ub (Gramian of the representation summed
over ranks), pcgrad, upgrad, uncertainty, dwa and famo (losses recomputed after the step); every other registered
balancer for one epoch. Dropout is off: its masks are drawn per rank.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent
SCRIPT = HERE / "ddp_script.py"
TORCHRUN = Path(sys.executable).parent / "torchrun"


def _load_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("ddp_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_two_processes_match_one(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")
    }
    env["OMP_NUM_THREADS"] = "1"
    out_ddp = tmp_path / "ddp.pt"
    proc = subprocess.run(
        [
            str(TORCHRUN),
            "--standalone",
            "--nproc_per_node=2",
            str(SCRIPT),
            str(out_ddp),
            str(tmp_path / "run"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]

    out_single = tmp_path / "single.pt"
    _load_script().run(out_single)

    ddp = torch.load(out_ddp, weights_only=True)
    single = torch.load(out_single, weights_only=True)
    # default StaticWeights, a GradientBalancer, and registered balancers of each kind
    for run in ("static", "gradient", *_load_script().REGISTERED, *_load_script().OTHERS):
        a, b = ddp[run], single[run]
        assert a["state"].keys() == b["state"].keys()
        for name, value in b["state"].items():
            torch.testing.assert_close(
                a["state"][name], value, rtol=1e-4, atol=1e-5, msg=f"{run}: weights of {name}"
            )
        torch.testing.assert_close(a["valid"], b["valid"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(a["history_valid"], b["history_valid"], rtol=1e-4, atol=1e-5)
    # training moved the weights, and the two balancers trained differently
    initial = _load_script().make_model().state_dict()
    assert any(not torch.allclose(initial[k], v, atol=1e-3) for k, v in single["static"]["state"].items())
    static, gradient = single["static"]["state"], single["gradient"]["state"]
    assert any(not torch.allclose(static[k], v, atol=1e-3) for k, v in gradient.items())
    for name in _load_script().REGISTERED:  # (dwa differs from static from epoch 3 on)
        assert not torch.allclose(single[name]["history_valid"], single["static"]["history_valid"]), name
    # only rank 0 wrote the run directory, and it holds a complete run
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "checkpoint.pt",
        "log.jsonl",
        "model.json",
        "model.pt",
    ]
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 3
