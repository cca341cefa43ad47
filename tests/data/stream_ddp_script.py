"""Streamed training under torchrun, each rank reading its own row groups (used by test_stream_torchrun.py).

    torchrun --standalone --nproc_per_node=2 tests/data/stream_ddp_script.py DATA.parquet OUT_DIR

Every rank fits the preprocessing on its pieces, reads one epoch of batches (recording the pieces it read and
the rows it drew), trains a run with checkpoints, a run killed within its second epoch and its resumption,
and computes the validation losses and metrics of the trained weights; then ``multitask train --stream``
runs under the same process group. Rank 0 writes what it gathered to ``OUT_DIR/result.pt``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multitask import Task
from multitask._stream_run import stream_metrics
from multitask.cli import main as cli_main
from multitask.data.reading import declare_wide
from multitask.data.sampling import Proportional
from multitask.data.stream_fit import fit_stream
from multitask.data.streaming import Table
from multitask.models._deep import Deep
from multitask.nn import HardSharing, InputSpec
from multitask.train import TrainConfig, fit, validation_losses
from multitask.train import _trainer as trainer
from multitask.train._distributed import setup_distributed

TASKS = [Task("y1", "regression"), Task("y2", "binary"), Task("cls", "multiclass")]
CONFIG = dict(epochs=2, batch_size=32, patience=None, seed=5, progress=False, threads=1, checkpoint_every=5,
              stream=True, shuffle_buffer=128)
#: the killed run stops this many steps into its second epoch (two steps after a checkpoint)
INTO_SECOND_EPOCH = 12


def spec_of(frame: Any, where: str) -> Any:
    return declare_wide(frame, TASKS, None, where)


class Stop(Exception):
    pass


class StopAt:
    """The trainer's check of each step's losses, failing at the ``n``-th step in all: a run killed within a
    step, on every rank (the batches of a sharded stream are drawn ahead, so a sampler that fails would stop
    the run earlier than its step)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.check = trainer._check_step

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.n -= 1
        if self.n == 0:
            raise Stop
        self.check(*args, **kwargs)


def train(streams: tuple[Any, Any, Any], run_dir: Path, resume: bool = False) -> Any:
    pre, train_part, valid = streams
    torch.manual_seed(0)
    model = HardSharing(InputSpec.of_sources(pre.input_shapes()), TASKS, train_part.task_source, pre.output_sizes(),
                        hidden=[16], dropout=0.0)
    return fit(model, TASKS, train_part, valid, TrainConfig(**CONFIG), run_dir=run_dir, resume=resume)


def main(data: Path, out: Path) -> None:
    ddp = setup_distributed()
    streams = fit_stream(Table(data), spec_of, 0.25, 7, CONFIG["shuffle_buffer"], group=ddp)  # type: ignore[arg-type]
    pre, train_part, valid = streams
    result: dict[str, Any] = {"pre": pre.to_dict(), "world_size": ddp.world_size}

    # ---- one epoch of batches: the pieces this rank read and the rows it drew -----------------------------------
    read: list[int] = []
    original = Table._read_row_group

    def spy(self: Table, piece: Any) -> Any:
        read.append(self.pieces.index(piece))
        return original(self, piece)

    Table._read_row_group = spy  # type: ignore[method-assign]
    col = pre.sources["data"].columns[0]
    drawn = []
    for data_, rows in train_part.batches(Proportional(), 32, 1, 5):
        x = data_.inputs["data"][rows["data"], 0].astype(np.float64)
        drawn.extend(np.rint(x * col.std + col.mean).astype(int).tolist())
    Table._read_row_group = original  # type: ignore[method-assign]
    result["epoch"] = ddp.all_gather_object({
        "read": read, "order": train_part.order(1), "drawn": drawn,
        "steps": train_part.steps_per_epoch(32, 1), "own_steps": sum(1 for _ in train_part.batches(Proportional(), 32, 1, 5)),
    })

    # ---- a run, a killed run and its resumption --------------------------------------------------------------------
    full = train(streams, out / "full")
    trainer._check_step = StopAt(train_part.steps_per_epoch(32, 0) + INTO_SECOND_EPOCH + 1)  # type: ignore[assignment]
    try:
        train(streams, out / "killed")
        raise AssertionError("the killed run was not stopped")
    except Stop:
        pass
    finally:
        trainer._check_step = trainer._check_step.check  # type: ignore[attr-defined]
    if ddp.is_main:
        shutil.copytree(out / "killed", out / "killed_copy")  # for the test's resumption with one process
        result["killed"] = torch.load(out / "killed" / "checkpoint.pt", weights_only=True)["partial"]
    ddp.all_gather_object(None)  # every rank waits for the copy
    resumed = train(streams, out / "killed", resume=True)
    result["full"] = {k: v.clone() for k, v in full.model.state_dict().items()}
    result["resumed"] = {k: v.clone() for k, v in resumed.model.state_dict().items()}
    result["history"] = (full.history, resumed.history)

    # ---- validation losses and metrics of the trained weights -------------------------------------------------------
    model = Deep("hard-sharing")
    model.net_, model.tasks_ = full.model, list(TASKS)
    notes: dict[str, str] = {}
    result["valid"] = validation_losses(full.model, TASKS, valid, ddp)
    result["metrics"] = stream_metrics(model, TASKS, valid, pre, notes, ddp)

    # ---- the command line under the same process group ---------------------------------------------------------------
    code = cli_main(["train", "--data", str(data), "--task", "y1:regression", "--task", "y2:binary", "--task",
                     "cls:multiclass", "--stream", "--epochs", "2", "--batch-size", "32", "--shuffle-buffer", "128",
                     "--threads", "1", "--quiet", "--checkpoint-every", "7", "--seed", "7", "--valid-fraction",
                     "0.25", "--out", str(out / "cli")])
    result["cli"] = ddp.all_gather_object(code)
    if ddp.is_main:
        torch.save(result, out / "result.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
