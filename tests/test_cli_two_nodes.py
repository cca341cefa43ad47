"""Two nodes on one machine: two ``torchrun --nnodes 2`` launchers (node ranks 0 and 1, one process each, gloo)
meeting at a rendezvous on 127.0.0.1 train to the metrics of one process, as two real machines would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ARGS = ["train", "--task", "y1:regression", "--task", "y2:binary", "--task", "cls:multiclass",
        "--epochs", "3", "--batch-size", "64", "--quiet", "--seed", "3"]
#: both runs compute the same gradients up to float summation order
RTOL = 1e-3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node(rank: int, port: int, data: Path, out: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(rank),
         "--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port", str(port),
         "-m", "multitask", *ARGS, "--data", str(data), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


@pytest.mark.slow
def test_two_nodes_over_loopback_match_one_process(wide_csv: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    one, two = tmp_path / "one", tmp_path / "two"
    port = _free_port()
    nodes = [_node(rank, port, wide_csv, two, env) for rank in (0, 1)]
    single = subprocess.run([sys.executable, "-m", "multitask", *ARGS, "--data", str(wide_csv), "--out", str(one)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert single.returncode == 0, single.stderr
    try:
        errors = [node.communicate(timeout=300)[1] for node in nodes]
    finally:
        for node in nodes:  # a node left waiting for its peer is stopped, not leaked
            if node.poll() is None:
                node.kill()
                node.wait()
    for rank, (node, err) in enumerate(zip(nodes, errors, strict=True)):
        assert node.returncode == 0, f"node {rank}: {err[-3000:]}"
    a = json.loads((one / "metrics.json").read_text())["tasks"]
    b = json.loads((two / "metrics.json").read_text())["tasks"]
    for task, metrics in a.items():
        for name, value in metrics.items():
            assert b[task][name] == pytest.approx(value, rel=RTOL), (task, name)
    assert len((two / "log.jsonl").read_text().splitlines()) == 3  # only global rank 0 wrote the run
