"""Running under ``torchrun``: process group, device, and each rank's share of a global batch.

Every rank draws the same global batch from the deterministic sampler and keeps ``rows[rank::world]`` of
each source (a streamed table is sharded instead: each rank reads its own pieces and draws its own rows,
:mod:`multitask.data.streaming`, and the per-task counts of the step are summed over ranks). Per-task counts come from the global batch, so ``sum_local / count_global`` summed over ranks
is the single-process loss; DDP averages gradients, so the trainer scales each rank's gradient by
``world_size`` (see ``_trainer``). Gloo on CPU, NCCL on CUDA; the device is chosen here and only here.
"""

from __future__ import annotations

import atexit
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Distributed:
    """This process's place: ``rank`` of ``world_size`` processes, on ``device``."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """This rank's part of a global batch: ``rows[rank::world_size]`` of every source."""
        if not self.enabled:
            return rows
        return {s: r[self.rank :: self.world_size] for s, r in rows.items()}

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum over ranks of ``tensor`` (in place; the tensor itself with one process)."""
        if self.enabled:
            on_device = tensor.to(self.device)  # NCCL reduces CUDA tensors only
            dist.all_reduce(on_device, op=dist.ReduceOp.SUM)
            if on_device is not tensor:
                tensor.copy_(on_device)
        return tensor

    def broadcast(self, tensor: torch.Tensor) -> torch.Tensor:
        """Rank 0's ``tensor`` on every rank (in place)."""
        if self.enabled:
            on_device = tensor.to(self.device)
            dist.broadcast(on_device, src=0)
            if on_device is not tensor:
                tensor.copy_(on_device)
        return tensor


    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank (``[obj]`` with one process)."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def gather_object(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` in rank order on rank 0; None on the other ranks."""
        if not self.enabled:
            return [obj]
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` (picklable) on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def is_main_process() -> bool:
    """True on rank 0 of a torchrun job, and in a plain single process (reads ``RANK`` before the group exists)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def select_device(local_rank: int = 0) -> torch.device:
    """CUDA device ``local_rank`` if CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def setup_distributed() -> Distributed:
    """Join the process group when launched by torchrun (``WORLD_SIZE > 1``); a no-op otherwise.

    Idempotent: a second call (e.g. to train baselines after the multi-task model) reuses the group, which
    is destroyed at interpreter exit.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = select_device(local_rank)
    if world_size <= 1:
        return Distributed(device=device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        atexit.register(_shutdown)
        log.info(
            "joined process group: rank %d of %d (%s) on %s", dist.get_rank(), world_size, backend, device
        )
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)


def _shutdown() -> None:
    """Leave the process group at exit, together: a rank that tears gloo down while its peer still talks to
    it can abort (``terminate called without an active exception``), so every rank first meets the others."""
    if not dist.is_initialized():
        return
    try:
        dist.barrier()
    except RuntimeError as e:  # a peer is already gone (it failed): nothing left to wait for
        log.warning("process group barrier at exit failed: %s", e)
    dist.destroy_process_group()
