"""The training loop, in one function that reads top to bottom.

    torch.manual_seed(0)
    model = HardSharing(inputs, tasks, task_source, output_sizes)
    result = fit(model, tasks, train, valid, TrainConfig(epochs=20), run_dir=Path("runs/demo"))

Launched by ``torchrun --nproc_per_node=2 ...`` the same call trains with DistributedDataParallel: every
rank draws the same global batch, keeps its shard, and the gradient equals the single-process one up to
summation order. A stream sharded between the ranks (:mod:`multitask.data.streaming`) gives each rank its
own rows instead: the per-task counts of each step are summed over ranks.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from multitask.balancing import Balancing
from multitask.data.arrays import Arrays
from multitask.data.sampling import Rows, Sampler, steps_per_epoch
from multitask.data.streaming import Position, Stream
from multitask.errors import CheckpointError, ConfigError, DataError, TrainingDivergedError
from multitask.registry import BALANCERS, OPTIMIZERS, SAMPLERS, SCHEDULES
from multitask.tasks import Task
from multitask.train._balancer import Balancer, GradientBalancer, as_balancing
from multitask.train._checkpoint import (
    CHECKPOINT_FILE,
    LOG_FILE,
    load_checkpoint,
    save_checkpoint,
    save_model,
    upgrade_state_dict,
)
from multitask.train._distributed import Distributed, setup_distributed
from multitask.train._lookahead import ValidationFeed
from multitask.train._losses import task_loss_sums
from multitask.train._step import Stepper, split_rows
from multitask.train.config import TrainConfig

log = logging.getLogger(__name__)

#: training options that may differ between a run and its resumption (``runs`` checks the run's other options)
RESUMABLE_CHANGES = ("progress", "threads", "checkpoint_every")


@dataclass
class FitResult:
    """The trained model (best validation weights restored), one record per epoch, and how it ended."""

    model: nn.Module
    history: list[dict[str, Any]]
    best_epoch: int  # 1-based epoch whose weights ``model`` holds
    stopped_early: bool


def fit(
    model: nn.Module,
    tasks: list[Task],
    train: Arrays | Stream,
    valid: Arrays | Stream | None,
    config: TrainConfig,
    run_dir: Path | None = None,
    resume: bool = False,
    *,
    balancer: Balancer | GradientBalancer | None = None,
    sampler: Sampler | None = None,
    on_epoch: Callable[[int, float | None], None] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train ``model`` on ``train``; early-stop on ``Σ_t w_t · mean validation loss_t`` of ``valid``.

    Each step the loss of task ``t`` is ``Σ_{labelled rows} loss_t / (labelled rows of t in the batch)``;
    a task without labels in the batch contributes 0. The balancer (default: ``config.balancer`` built with
    ``config.balancer_options``; ``static`` weighs by ``task.weight``) combines the task losses; a registered
    one is told each step's ``(seed, epoch, step)`` and each epoch's mean training losses, and the epoch
    mean of its per-step task weights goes to ``log.jsonl`` under "weights". Early stopping follows
    ``config.monitor``'s validation loss alone when it is set; the kept weights are always those of a
    completed epoch (the last one without validation labels). A balancer that ``needs_validation``
    (auto-lambda) is handed each step's :class:`~multitask.balancing.Lookahead` on a validation batch
    (:mod:`multitask.train._lookahead`). With ``run_dir`` every epoch appends to
    ``log.jsonl`` and rewrites ``checkpoint.pt``; at the end ``model.pt``/``model.json`` hold the best
    weights. ``resume`` continues from ``checkpoint.pt`` to the same result as an uninterrupted run.

    ``on_epoch(epoch, score)`` (optional) is called after each epoch with its early-stopping score (lower is
    better; None without validation labels): a search prunes a trial by raising from it, which ends ``fit``
    with that exception (after the epoch's checkpoint). ``on_record(record)`` (optional) gets each epoch's
    ``log.jsonl`` record on the main process, after it is written (experiment tracking).

    A non-finite task loss in a training step, a non-finite validation loss or non-finite weights raise
    :class:`~multitask.errors.TrainingDivergedError` naming the task and epoch: the checkpoint of the last
    completed epoch is kept, and no ``model.pt`` is written.
    """
    ddp = setup_distributed()
    _check_inputs(model, tasks, train, valid, config.monitor)
    method = as_balancing(
        balancer if balancer is not None else make_balancer(config, tasks), [t.name for t in tasks]
    )
    sampler = sampler if sampler is not None else make_sampler(config)
    weights = {t.name: t.weight for t in tasks}
    source_of = train.task_source
    main = ddp.is_main and run_dir is not None
    sharded = _check_sharding(train, valid, ddp)

    # ---- model, optimizer, schedule ---------------------------------------------------------------------------
    model.to(ddp.device)
    method.to(ddp.device)
    stepper = Stepper(model, method, tasks, ddp, precision=config.precision)
    net = stepper.net
    feed = ValidationFeed(model, tasks, method, valid, config.batch_size, config.seed, ddp) \
        if method.needs_validation else None
    optimizer = make_optimizer(config, [*model.parameters(), *method.optimized_parameters()])
    scheduler = SCHEDULES.get(config.schedule)(optimizer, config.epochs)

    # ---- state, fresh or from the last checkpoint -------------------------------------------------------------
    start_epoch, best_epoch, bad_epochs = 0, 0, 0
    within: dict[str, Any] | None = None  # the state within the epoch a checkpoint was taken in
    best_score: float | None = None  # None: nothing scored yet, so the first completed epoch is the best
    best_model: dict[str, torch.Tensor] | None = None
    history: list[dict[str, Any]] = []
    if resume and run_dir is None:
        raise ConfigError("resume needs the run directory of the run to continue")
    if resume and not (Path(str(run_dir)) / CHECKPOINT_FILE).exists():
        log.info("no %s in %s: nothing to resume, training from the start", CHECKPOINT_FILE, run_dir)
        resume = False
    if resume:
        assert run_dir is not None
        ckpt = load_checkpoint(Path(run_dir) / CHECKPOINT_FILE)
        _check_same_config(ckpt.get("config", {}), config, Path(run_dir) / CHECKPOINT_FILE)
        _check_same_balancer(ckpt.get("balancer_type"), method, Path(run_dir) / CHECKPOINT_FILE)
        try:
            model.load_state_dict(upgrade_state_dict(model, ckpt["model"], ckpt["version"]))
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            if ckpt.get("balancer") is not None:
                method.load_state_dict(ckpt["balancer"])
            start_epoch, best_epoch, bad_epochs = ckpt["epoch"], ckpt["best_epoch"], ckpt["bad_epochs"]
            within = ckpt.get("partial")  # saved within an epoch (checkpoint_every)
            best_model = upgrade_state_dict(model, ckpt["best_model"], ckpt["version"])
            best_score, history = ckpt["best_score"], ckpt["history"]
            if best_score is not None and not math.isfinite(best_score):
                best_score = None  # version 1 started from inf
        except (KeyError, ValueError, RuntimeError) as e:
            raise CheckpointError(
                f"{Path(run_dir) / CHECKPOINT_FILE}: does not fit this model: {e}"
            ) from None
        _check_same_processes(within, train, Path(run_dir) / CHECKPOINT_FILE)
        log.info("resuming from %s after epoch %d", Path(run_dir) / CHECKPOINT_FILE, start_epoch)
    if main:
        assert run_dir is not None
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / LOG_FILE).write_text("".join(_json_line(r) for r in history))
    if valid is not None and ddp.is_main:
        _warn_unlabelled(tasks, valid, config.monitor)

    steps = train.steps_per_epoch(config.batch_size, start_epoch) if isinstance(train, Stream) \
        else steps_per_epoch(train, config.batch_size)
    progress = _progress_bar(config.progress and ddp.is_main and sys.stderr.isatty())
    stopped_early = False
    collapsed_warned = False
    with _torch_threads(config.threads), progress or contextlib.nullcontext():
        for epoch in range(start_epoch, config.epochs):
            if config.patience is not None and bad_epochs >= config.patience:
                stopped_early = True
                break
            t0 = time.perf_counter()
            if isinstance(train, Stream):  # under torchrun the steps of the smallest share of this epoch
                steps = train.steps_per_epoch(config.batch_size, epoch)
            torch.manual_seed(epoch_seed(config.seed, epoch))  # dropout is reproducible after resume
            net.train()
            lr = float(optimizer.param_groups[0]["lr"])
            sums, counts = (
                torch.zeros(len(tasks), dtype=torch.float64),
                torch.zeros(len(tasks), dtype=torch.float64),
            )
            weight_sum = torch.zeros(len(tasks), dtype=torch.float64, device=ddp.device)
            cosine_sum = torch.zeros((), dtype=torch.float64, device=ddp.device)
            cosine_steps = torch.zeros((), dtype=torch.float64, device=ddp.device)
            weight_steps = 0
            gate_sum: dict[str, torch.Tensor] = {}
            gate_steps = 0
            done = 0  # steps of this epoch done before a resumption
            if within is not None:
                done, sums, counts = within["step"], within["sums"], within["counts"]
                weight_sum, weight_steps = within["weight_sum"].to(ddp.device), within["weight_steps"]
                cosine_sum, cosine_steps = within["cosine_sum"].to(ddp.device), within["cosine_steps"].to(ddp.device)
                gate_sum, gate_steps = dict(within["gate_sum"]), within["gate_steps"]
                torch.random.set_rng_state(
                    within["positions"][ddp.rank]["rng"] if "positions" in within else within["rng"]
                )
                if within.get("cuda_rng") is not None and ddp.device.type == "cuda":
                    torch.cuda.set_rng_state(within["cuda_rng"], ddp.device)
            bar = progress.add_task(f"epoch {epoch + 1}/{config.epochs}", total=steps) if progress else None

            drawn = epoch_batches(train, sampler, config, epoch, within)
            for step, (data, rows, count, here) in enumerate(
                sharded_steps(drawn, train, tasks, ddp) if sharded and isinstance(train, Stream)
                else ((d, r, None, None) for d, r in drawn),
                done + 1,
            ):
                if count is None:  # labelled rows per task in the GLOBAL batch: the same on every rank
                    count = {t.name: int(data.masks[t.name][rows[source_of[t.name]]].sum()) for t in tasks}
                mine = rows if sharded else ddp.shard(rows)
                batches = [data.take(part).to(ddp.device) for part in split_rows(mine, config.accumulate)]
                optimizer.zero_grad(set_to_none=True)
                method.begin_step(config.seed, epoch, step)
                if feed is not None:  # a method that follows a validation loss looks ahead first
                    method.look_ahead(feed.objective(batches, count, lr, epoch, step))
                values = stepper.step(
                    batches, count, partial(_check_step, tasks, epoch=epoch, step=step, run_dir=run_dir)
                )
                if method.weights_ is not None:
                    weight_sum += method.weights_.detach().to(weight_sum.device, torch.float64)
                    weight_steps += 1
                if stepper.gates_ is not None:
                    for name, usage in stepper.gates_.items():
                        gate_sum[name] = gate_sum.get(name, 0) + usage.detach().double()
                    gate_steps += 1
                if stepper.cosine_ is not None:
                    finite = torch.isfinite(stepper.cosine_)
                    cosine_sum += torch.where(finite, stepper.cosine_, 0.0)
                    cosine_steps += finite.double()
                optimizer.step()
                method.after_step(
                    stepper.losses_after(batches, count) if method.needs_losses_after_step else None
                )

                n = torch.tensor([count[t.name] for t in tasks], dtype=torch.float64)
                sums += values.double() * n
                counts += n
                if progress is not None and bar is not None:
                    shown = "  ".join(
                        f"{t.name} {v:.4g}" for t, v in zip(tasks, values.tolist(), strict=True)
                    )
                    progress.update(bar, advance=1, description=f"epoch {epoch + 1}/{config.epochs}  {shown}")
                if (run_dir is not None and config.checkpoint_every is not None and step % config.checkpoint_every == 0
                        and step < steps):
                    where = stream_position(train, ddp, here)  # every rank takes part: the positions are gathered
                    if main:
                        assert run_dir is not None
                        save_checkpoint(Path(run_dir) / CHECKPOINT_FILE, {
                            "epoch": epoch, "model": _cpu_state(model), "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(), "balancer": method.state_dict(),
                            "balancer_type": _balancer_type(method), "best_score": best_score, "best_epoch": best_epoch,
                            "best_model": best_model, "bad_epochs": bad_epochs, "history": history,
                            "config": config.model_dump(),
                            "partial": {
                                "step": step, "sums": sums, "counts": counts, "rng": torch.random.get_rng_state(),
                                "cuda_rng": torch.cuda.get_rng_state(ddp.device) if ddp.device.type == "cuda" else None,
                                "weight_sum": weight_sum.cpu(), "weight_steps": weight_steps,
                                "cosine_sum": cosine_sum.cpu(), "cosine_steps": cosine_steps.cpu(),
                                "gate_sum": {k: v.cpu() for k, v in gate_sum.items()}, "gate_steps": gate_steps,
                                **where,
                            },
                        })
            within = None
            scheduler.step()

            # ---- validation, early stopping, log and checkpoint ------------------------------------------------
            _check_weights(model, epoch, run_dir)  # the last step's update is seen by no loss of this epoch
            train_losses = {t.name: _mean(sums[i], counts[i]) for i, t in enumerate(tasks)}
            method.end_epoch(train_losses)
            valid_losses = validation_losses(model, tasks, valid, ddp) if valid is not None else {}
            _check_validation(valid_losses, epoch, run_dir)
            valid_total = _weighted_total(valid_losses, weights)
            score = valid_losses.get(config.monitor) if config.monitor is not None else valid_total
            if score is None or best_score is None or score < best_score:
                # no score (no validation labels): the last epoch is kept
                best_score, best_epoch, best_model, bad_epochs = score, epoch + 1, _cpu_state(model), 0
            else:
                bad_epochs += 1
            mean_weights = _mean_weights(tasks, weight_sum.cpu(), weight_steps)
            cosine = float(cosine_sum / cosine_steps) if float(cosine_steps) > 0 else None
            record = {
                "epoch": epoch + 1,
                "train": train_losses,
                "valid": valid_losses,
                "valid_total": valid_total,
                "lr": lr,
                "weights": mean_weights,
                "cosine": cosine,
                **({"gates": _mean_gates(gate_sum, gate_steps)} if gate_steps else {}),
                "seconds": time.perf_counter() - t0,
            }
            history.append(record)
            if not collapsed_warned and ddp.is_main:
                collapsed_warned = _warn_collapsed(mean_weights, epoch)
            log.info("epoch %d: train %s valid %s", epoch + 1, _fmt(train_losses), _fmt(valid_losses))
            if main:
                assert run_dir is not None
                with open(Path(run_dir) / LOG_FILE, "a") as f:
                    f.write(_json_line(record))
                save_checkpoint(
                    Path(run_dir) / CHECKPOINT_FILE,
                    {
                        "epoch": epoch + 1,
                        "model": _cpu_state(model),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "balancer": method.state_dict(),
                        "balancer_type": _balancer_type(method),
                        "best_score": best_score,
                        "best_epoch": best_epoch,
                        "best_model": best_model,
                        "bad_epochs": bad_epochs,
                        "history": history,
                        "config": config.model_dump(),
                    },
                )
            if progress is not None and bar is not None:
                progress.remove_task(bar)
            if on_record is not None and ddp.is_main:
                on_record(record)
            if on_epoch is not None:
                on_epoch(epoch + 1, score)

    if best_model is None or best_epoch < 1:  # only from a version 1 checkpoint of a run that diverged
        raise TrainingDivergedError(
            f"{Path(str(run_dir)) / CHECKPOINT_FILE}: no epoch of this run has a finite validation loss"
        )
    model.load_state_dict(best_model)
    model.eval()
    if main:
        assert run_dir is not None
        save_model(model, Path(run_dir))
    return FitResult(model=model, history=history, best_epoch=best_epoch, stopped_early=stopped_early)


# ---- the pieces the loop uses ----------------------------------------------------------------------------------
def epoch_batches(
    train: Arrays | Stream, sampler: Sampler, config: TrainConfig, epoch: int, partial: dict[str, Any] | None = None
) -> Iterator[tuple[Arrays, Rows]]:
    """``(data, rows)`` of each step of ``epoch``: the table itself in memory, a window of a stream.

    ``partial`` (a checkpoint taken within the epoch) skips the steps done: a stream starts reading at the
    saved :class:`~multitask.data.streaming.Position` (the window's first piece and offset), never before it.
    """
    if isinstance(train, Stream):
        saved = partial if partial is None or "positions" not in partial else partial["positions"][train.rank]
        start = Position.from_dict(saved["position"]) if saved is not None else None
        skip = saved["window_step"] if saved is not None else 0
        # every rank stops at the same step: the steps of the epoch's smallest share (under torchrun)
        left = train.steps_per_epoch(config.batch_size, epoch) - (partial["step"] if partial is not None else 0)
        batches = train.batches(sampler, config.batch_size, epoch, config.seed, start)
        return itertools.islice(batches, skip, skip + left)
    skip = partial["step"] if partial is not None else 0
    batches = ((train, rows) for rows in sampler.batches(train, config.batch_size, epoch, config.seed))
    return itertools.islice(batches, skip, None)


#: steps whose per-task counts a sharded stream sums over the ranks in one all-reduce
COUNT_BLOCK = 32


def sharded_steps(
    drawn: Iterator[tuple[Arrays, Rows]], train: Stream, tasks: list[Task], ddp: Distributed, block: int = COUNT_BLOCK
) -> Iterator[tuple[Arrays, Rows, dict[str, int], dict[str, Any]]]:
    """``(data, rows, count, here)`` of each step of a stream sharded between ranks: ``count`` the labelled rows
    of each task in the global batch (the ranks' own batches summed), ``here`` where the stream stood at the
    step (:func:`stream_position`).

    The counts of ``block`` steps are summed in one all-reduce (one collective per step would cost as much
    as the step's own gradient all-reduce); every rank takes the same number of steps, so the blocks agree.
    The steps drawn ahead hold their windows: at most ``block`` steps' rows and one window more.
    """
    names = [t.name for t in tasks]
    while True:
        ahead = []
        for data, rows in itertools.islice(drawn, block):
            assert train.position is not None
            here = {"position": train.position.to_dict(), "window_step": train.window_step}
            ahead.append((data, rows, here))
        if not ahead:
            return
        local = torch.tensor(
            [[int(d.masks[n][r[train.task_source[n]]].sum()) for n in names] for d, r, _ in ahead], dtype=torch.int64
        )
        ddp.all_reduce_sum(local)
        for (data, rows, here), counts in zip(ahead, local.tolist(), strict=True):
            yield data, rows, dict(zip(names, counts, strict=True)), here
        if len(ahead) < block:
            return


def stream_position(
    train: Arrays | Stream, ddp: Distributed | None = None, here: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Where a stream's reading stands (the window's start and the steps taken in it); nothing in memory.

    A stream sharded between ranks: every rank's (``here``, recorded by :func:`sharded_steps` when the step
    was drawn), gathered (``positions``, in rank order, and ``world_size``); every rank must call it at the
    same step.
    """
    if not isinstance(train, Stream) or train.position is None:
        return {}
    if train.world_size == 1:
        return {"position": train.position.to_dict(), "window_step": train.window_step}
    assert ddp is not None and here is not None
    mine = {**here, "rng": torch.random.get_rng_state()}  # the ranks' batches differ, and so may their draws
    return {"positions": ddp.all_gather_object(mine), "world_size": train.world_size}


def _check_sharding(train: Arrays | Stream, valid: Arrays | Stream | None, ddp: Distributed) -> bool:
    """Whether ``train`` is a stream sharded between the ranks (each reads its own pieces); streams sharded for
    another number of processes than this run's are refused."""
    for data in (train, valid):
        if isinstance(data, Stream) and data.world_size > 1 and (data.world_size, data.rank) != (
            ddp.world_size, ddp.rank
        ):
            raise ConfigError(
                f"a stream sharded for rank {data.rank} of {data.world_size} processes is trained by rank {ddp.rank} "
                f"of {ddp.world_size}"
            )
    return isinstance(train, Stream) and train.world_size > 1


def _check_same_processes(partial: dict[str, Any] | None, train: Arrays | Stream, path: Path) -> None:
    """A checkpoint taken within an epoch of a sharded stream resumes only with the same number of processes
    (each rank's position is in its own share of the pieces); one taken at the end of an epoch resumes with
    any number."""
    if partial is None or not isinstance(train, Stream):
        return
    saved = int(partial.get("world_size", 1))
    if saved != train.world_size:
        raise ConfigError(
            f"{path}: taken within an epoch of a streamed run of {saved} process(es); resume it with the same "
            f"number of processes (torchrun --nproc_per_node), not {train.world_size}; or resume with any number "
            "from a checkpoint at the end of an epoch (without --checkpoint-every)"
        )



@torch.no_grad()
def validation_losses(
    model: nn.Module,
    tasks: list[Task],
    data: Arrays | Stream,
    ddp: Distributed | None = None,
    batch_size: int = 8192,
) -> dict[str, float | None]:
    """Mean loss of each task over its labelled rows of ``data`` (None for a task without labels).

    Under torchrun every rank computes it on all of ``data`` and takes rank 0's values, so that all ranks
    make the same early-stopping decision; a stream sharded between the ranks is read by each rank in its own
    run of pieces, and the pieces' sums are gathered and added in piece order, as one process adds them.
    """
    ddp = ddp or Distributed(device=next(model.parameters()).device)
    was_training = model.training
    model.eval()
    parts = data.numbered_chunks() if isinstance(data, Stream) else [(0, data)]
    per_piece = []  # (piece, [(sums, counts) of each batch])
    for index, part in parts:
        longest = max(part.n_rows(s) for s in part.sources)
        done = []
        for start in range(0, longest, batch_size):
            rows = {
                s: np.arange(start, min(start + batch_size, part.n_rows(s)), dtype=np.int64) for s in part.sources
            }
            batch = part.take(rows).to(ddp.device)
            outputs = model(batch.inputs)
            batch_sums = task_loss_sums(tasks, outputs, batch.targets, batch.masks)
            done.append((
                torch.stack([batch_sums[t.name].detach().double().cpu() for t in tasks]),
                torch.tensor([int(batch.masks[t.name].sum()) for t in tasks], dtype=torch.float64),
            ))
        per_piece.append((index, done))
    model.train(was_training)
    sharded = isinstance(data, Stream) and data.world_size > 1
    if sharded:
        per_piece = sorted((p for rank in ddp.all_gather_object(per_piece) for p in rank), key=lambda p: p[0])
    sums = torch.zeros(len(tasks), dtype=torch.float64)
    counts = torch.zeros(len(tasks), dtype=torch.float64)
    for _, done in per_piece:
        for batch_sum, batch_count in done:
            sums += batch_sum
            counts += batch_count
    if not sharded:
        ddp.broadcast(sums)
    return {t.name: _mean(sums[i], counts[i]) for i, t in enumerate(tasks)}


def _balancer_type(method: Balancing) -> str:
    """What the checkpoint records of the method: its class, and what it wraps for a user's object."""
    inner = getattr(method, "inner", None)
    cls = type(inner if inner is not None else method)
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_same_balancer(saved: str | None, method: Balancing, path: Path) -> None:
    """Refuse to resume with another balancing method than the checkpoint's (older checkpoints: no record)."""
    if saved is not None and saved != _balancer_type(method):
        raise ConfigError(
            f"{path}: the run was trained with balancer {saved}, not {_balancer_type(method)}; "
            "resume with the same balancer, or start a new run"
        )


def make_balancer(config: TrainConfig, tasks: list[Task]) -> Balancer | GradientBalancer:
    """The balancer named by ``config.balancer``, built as ``cls(tasks, **config.balancer_options)``; a balancer
    with a ``primary`` option is given ``config.primary`` when the run has one.

    An option the constructor does not take, or a value it refuses, is a ConfigError naming the option.
    """
    cls = BALANCERS.get(config.balancer)
    options = dict(config.balancer_options)
    if config.primary is not None and "primary" in inspect.signature(cls).parameters:
        options.setdefault("primary", config.primary)  # auto-lambda serves the run's primary task
    try:
        inspect.signature(cls).bind(tasks, **options)
    except TypeError as e:
        raise ConfigError(f"train option 'balancer_options' of balancer {config.balancer!r}: {e}") from None
    try:
        built: Balancer | GradientBalancer = cls(tasks, **options)
    except (TypeError, ValueError) as e:
        what = ", ".join(repr(k) for k in options) or "none given"
        raise ConfigError(
            f"train option 'balancer_options' ({what}) of balancer {config.balancer!r}: {e}"
        ) from None
    return built


def _mean_weights(tasks: list[Task], total: torch.Tensor, steps: int) -> dict[str, float | None] | None:
    """``{task: mean weight over the epoch's steps}`` (a non-finite mean is None); None without weights."""
    if steps == 0:
        return None
    mean = (total / steps).tolist()
    return {t.name: (v if math.isfinite(v) else None) for t, v in zip(tasks, mean, strict=True)}


def _mean_gates(total: dict[str, torch.Tensor], steps: int) -> dict[str, list[float]]:
    """``{task: mean gate weight of each expert over the epoch's steps}``."""
    return {name: [round(float(v), 6) for v in (value / steps).cpu()] for name, value in total.items()}


#: a task whose mean weight falls below this fraction of the largest one is warned about (once per run)
COLLAPSED_WEIGHT = 1e-3


def _warn_collapsed(weights: dict[str, float | None] | None, epoch: int) -> bool:
    """Warn if some task's mean weight is below ``COLLAPSED_WEIGHT`` × the largest; True if it warned."""
    present = {t: w for t, w in (weights or {}).items() if w is not None}
    largest = max((abs(w) for w in present.values()), default=0.0)
    collapsed = [t for t, w in present.items() if abs(w) < COLLAPSED_WEIGHT * largest]
    if not collapsed:
        return False
    log.warning(
        "epoch %d: the balancer's mean weight of %s is below %g of the largest: the task hardly trains",
        epoch + 1,
        ", ".join(f"task {t!r}" for t in collapsed),
        COLLAPSED_WEIGHT,
    )
    return True


def make_sampler(config: TrainConfig) -> Sampler:
    """The sampler named by ``config.sampling`` (``temperature`` gets ``tau=config.temperature``)."""
    cls = SAMPLERS.get(config.sampling)
    kwargs = {"tau": config.temperature} if "tau" in inspect.signature(cls).parameters else {}
    return cls(**kwargs)


def make_optimizer(config: TrainConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """The optimizer named by ``config.optimizer`` with its lr, weight decay (and momentum for sgd)."""
    cls = OPTIMIZERS.get(config.optimizer)
    kwargs: dict[str, Any] = {"lr": config.lr, "weight_decay": config.weight_decay}
    signature = inspect.signature(cls).parameters
    if "momentum" in signature:
        kwargs["momentum"] = config.momentum
    if "foreach" in signature:
        # one multi-tensor update for all parameters: with a head per task (139 for School) the per-tensor
        # loop that torch uses on CPU by default dominates a step
        kwargs["foreach"] = True
    return cls(params, **kwargs)


def epoch_seed(seed: int, epoch: int) -> int:
    """The torch seed of an epoch: a hash of ``(seed, epoch)``."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _check_inputs(
    model: nn.Module, tasks: list[Task], train: Arrays | Stream, valid: Arrays | Stream | None, monitor: str | None
) -> None:
    if not tasks:
        raise ConfigError("no tasks to train")
    names = [t.name for t in tasks]
    if monitor is not None and monitor not in names:
        raise ConfigError(f"train option 'monitor': {monitor!r} is not a task; tasks are: {', '.join(names)}")
    for t in tasks:
        if not math.isfinite(t.weight):
            raise ConfigError(f"task {t.name!r}: weight must be finite, got {t.weight}")
    model_tasks = getattr(model, "task_source", None)
    for data, which in ((train, "training"), (valid, "validation")):
        if data is None:
            continue
        for t in tasks:
            known = data.task_source if isinstance(data, Stream) else data.targets.keys() & data.masks.keys()
            if t.name not in known:
                raise DataError(f"task {t.name!r}: no targets in the {which} data")
            if model_tasks is not None and t.name not in model_tasks:
                raise ConfigError(f"task {t.name!r}: the model has no head for it")


def _check_same_config(saved: dict[str, Any], config: TrainConfig, path: Path) -> None:
    """Refuse a resumption with other training options; an option the checkpoint predates had its default."""
    now = config.model_dump()
    saved = {**TrainConfig().model_dump(), **saved} if saved else saved
    changed = sorted(k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k])
    if changed:
        what = ", ".join(f"{k} ({saved.get(k)!r} -> {now[k]!r})" for k in changed)
        raise ConfigError(f"cannot resume {path} with different training options: {what}")


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _mean(total: torch.Tensor, count: torch.Tensor) -> float | None:
    return float(total / count) if count > 0 else None


def _weighted_total(losses: dict[str, float | None], weights: dict[str, float]) -> float | None:
    """``Σ_t w_t · loss_t`` over the tasks with a loss; None when none has one (or there are no losses)."""
    present = [(t, v) for t, v in losses.items() if v is not None]
    return float(sum(weights[t] * v for t, v in present)) if present else None


#: the warnings about unlabelled validation parts already given in this process (a search or a
#: cross-validation fits many models on the same tasks: the user is told once)
_WARNED: set[str] = set()


def _warn_once(message: str, *args: object) -> None:
    text = message % args
    if text in _WARNED:
        log.info(text)
        return
    _WARNED.add(text)
    log.warning(text)


def _warn_unlabelled(tasks: list[Task], valid: Arrays | Stream, monitor: str | None) -> None:
    """Say once which tasks cannot take part in early stopping: those without validation labels."""
    unlabelled = [t.name for t in tasks if not valid.n_labelled(t.name)]
    if monitor is not None:
        if monitor in unlabelled:
            _warn_once(
                "train option 'monitor': task %r has no validation labels: no early stopping, "
                "the last epoch is kept",
                monitor,
            )
    elif len(unlabelled) == len(tasks):
        _warn_once("no task has validation labels: no early stopping, the last epoch is kept")
    elif unlabelled:
        _warn_once(
            "no validation labels for %s: early stopping follows the other tasks",
            ", ".join(f"task {name!r}" for name in unlabelled),
        )


def _check_step(tasks: list[Task], values: torch.Tensor, epoch: int, step: int, run_dir: Path | None) -> None:
    """Raise TrainingDivergedError naming the first task whose loss in this step is not finite."""
    finite = values.isfinite()
    if bool(finite.all()):
        return
    i = int((~finite).nonzero()[0])
    loss = f"task {tasks[i].name!r} has a non-finite loss ({float(values[i])})"
    raise _diverged(f"{loss} at epoch {epoch + 1}, step {step}", epoch, run_dir)


def _check_weights(model: nn.Module, epoch: int, run_dir: Path | None) -> None:
    """Raise TrainingDivergedError naming the first parameter with a non-finite value (one device sync)."""
    named = list(model.named_parameters())
    finite = torch.stack([p.detach().isfinite().all() for _, p in named]).cpu() if named else torch.ones(0)
    if bool(finite.all()):
        return
    name = named[int((~finite).nonzero()[0])][0]
    raise _diverged(f"parameter {name!r} became non-finite in epoch {epoch + 1}", epoch, run_dir)


def _check_validation(losses: dict[str, float | None], epoch: int, run_dir: Path | None) -> None:
    """Raise TrainingDivergedError naming the first task whose validation loss is not finite."""
    for task, value in losses.items():
        if value is not None and not math.isfinite(value):
            what = f"task {task!r} has a non-finite validation loss ({value}) after epoch {epoch + 1}"
            raise _diverged(what, epoch, run_dir)


def _diverged(what: str, epoch: int, run_dir: Path | None) -> TrainingDivergedError:
    """The error for a run that diverged in (0-based) ``epoch``: ``epoch`` epochs completed before it."""
    if run_dir is None:
        kept = ""
    elif epoch > 0:
        kept = f"; the last good checkpoint (epoch {epoch}) is kept in {Path(run_dir) / CHECKPOINT_FILE}"
    else:
        kept = "; no epoch completed, so there is no checkpoint"
    advice = "lower the learning rate (lr) or check the targets"
    return TrainingDivergedError(f"training diverged: {what}{kept}; {advice}")


def _json_line(record: dict[str, Any]) -> str:
    """One line of ``log.jsonl``: strict JSON, an undefined value is ``null`` (never NaN or Infinity)."""
    return json.dumps(record, allow_nan=False) + "\n"


def _fmt(losses: dict[str, float | None]) -> str:
    return " ".join(f"{t}={v:.4g}" if v is not None else f"{t}=-" for t, v in losses.items())


def _progress_bar(enabled: bool) -> Any:
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` torch CPU threads inside the block (the previous number after it)."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
