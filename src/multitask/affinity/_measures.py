"""Task affinity measured while a deep model trains: gradient cosines and lookahead loss changes.

Both measures are computed every ``every`` steps of a training run on the step's batch, and averaged over the
measured steps (a pair is counted only at the steps where both of its tasks have labelled rows):

* ``gradient``: ``A_ij = G_ij / sqrt(G_ii G_jj)`` with ``G = J Jᵀ``, ``J`` (T × P) the per-task gradients of
  the shared parameters (:func:`~multitask.balancing.task_jacobian`, one batched backward pass);
* ``lookahead`` (TAG, Fifty et al. 2021): ``Z_ij = 1 - L_j(θ_s - η ∇_s L_i) / L_j(θ_s)``: how much one SGD
  step of the shared parameters along task ``i``'s gradient alone lowers task ``j``'s loss on the same batch
  (heads unchanged). Computed with :func:`torch.func.functional_call`; the model is never changed.

References:
    Fifty, Amrani, Yu, Anil & Finn, "Efficiently identifying task groupings for multi-task learning",
    NeurIPS 2021.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from multitask.balancing import task_jacobian
from multitask.data.arrays import Batch
from multitask.errors import ConfigError
from multitask.tasks import Task
from multitask.train import task_loss_sums

if TYPE_CHECKING:
    from multitask.config import RunConfig
    from multitask.data.arrays import Arrays
    from multitask.data.preprocess import Preprocessor

log = logging.getLogger(__name__)

#: the measures :func:`affinity` computes while a deep model trains, by name
DEEP_MEASURES = ("gradient", "lookahead")
#: every measure, by name: those of a deep model's training, transfer gain (:func:`transfer_gain`) and the
#: task structure of a fitted linear model (:func:`linear_affinity`)
MEASURES = (*DEEP_MEASURES, "transfer", "mtrl", "clustered")


def check_single_process(what: str) -> None:
    """ConfigError under torchrun (``WORLD_SIZE > 1``): ``what`` runs as one process."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(f"{what} runs as one process, not under torchrun (WORLD_SIZE="
                          f"{os.environ['WORLD_SIZE']}); run it with python or the multitask command")


def gradient_affinity(jacobian: torch.Tensor) -> torch.Tensor:
    """``G_ij / sqrt(G_ii G_jj)`` with ``G = J Jᵀ`` (float64, T × T); NaN where a task's gradient is zero."""
    j = jacobian.detach().to(torch.float64)
    gram = j @ j.T
    norm = torch.sqrt(torch.clamp(torch.diagonal(gram), min=0.0))
    cosine = gram / torch.outer(norm, norm)
    return torch.where(torch.outer(norm, norm) > 0, cosine, torch.full_like(cosine, float("nan")))


def _mean_losses(tasks: Sequence[Task], outputs: dict[str, torch.Tensor], batch: Batch,
                 count: torch.Tensor) -> torch.Tensor:
    """Each task's mean loss over its labelled rows of the batch (T,); 0 for a task without labels."""
    sums = task_loss_sums(list(tasks), outputs, batch.targets, batch.masks)
    return torch.stack([sums[t.name] for t in tasks]) / count.clamp(min=1).to(sums[tasks[0].name].dtype)


@torch.no_grad()
def lookahead_affinity(
    model: nn.Module,
    tasks: Sequence[Task],
    batch: Batch,
    shared_names: Sequence[str],
    jacobian: torch.Tensor,
    lr: float,
) -> torch.Tensor:
    """``Z_ij = 1 - L_j(θ_s - lr ∇_s L_i) / L_j(θ_s)`` on ``batch`` (float64, T × T; NaN where undefined).

    ``jacobian`` holds the gradients ``∇_s L_i`` of the shared parameters named ``shared_names`` (in the order
    of ``task_jacobian``). The losses are evaluated in evaluation mode (no dropout noise between the T + 1
    forward passes) with :func:`torch.func.functional_call`: the model's own parameters are not touched.
    """
    count = torch.stack([batch.masks[t.name].sum() for t in tasks]).to(torch.float64)
    was_training = model.training
    model.eval()
    try:
        params: dict[str, torch.Tensor] = dict(model.named_parameters())
        shapes = [params[n].shape for n in shared_names]
        sizes = [int(np.prod(s)) for s in shapes]
        labelled = [i for i in range(len(tasks)) if count[i] > 0]
        rows = jacobian[labelled]
        moved = {name: params[name] - lr * g.reshape(len(labelled), *shape).to(params[name].dtype)
                 for name, shape, g in zip(shared_names, shapes, torch.split(rows, sizes, dim=1), strict=True)}

        def losses_at(shared: dict[str, torch.Tensor]) -> torch.Tensor:
            return _mean_losses(tasks, functional_call(model, {**params, **shared}, (batch.inputs,)), batch, count)

        after = _over_tasks(losses_at, moved, len(labelled)) if labelled else None
        # the plain forward pass last: what a model keeps of its last forward pass is never a vectorized tensor
        before = _mean_losses(tasks, model(batch.inputs), batch, count).to(torch.float64)
        z = torch.full((len(tasks), len(tasks)), float("nan"), dtype=torch.float64, device=before.device)
        if after is not None:
            z[labelled] = 1.0 - after.to(torch.float64) / before
        valid = (count > 0) & (before > 0)
        z[:, ~valid] = float("nan")
        return z
    finally:
        model.train(was_training)


def _over_tasks(fn: Callable[[dict[str, torch.Tensor]], torch.Tensor], stacked: dict[str, torch.Tensor],
                n: int) -> torch.Tensor:
    """``fn`` of each of ``n`` stacked parameter sets, stacked (n, T): one vectorized forward pass
    (:func:`torch.func.vmap`), or one pass per set where an operation of the model has no batching rule."""
    global _VMAP_WARNED
    try:
        return torch.func.vmap(fn)(stacked)
    except (RuntimeError, NotImplementedError, ValueError) as e:
        if not _VMAP_WARNED:
            log.info("lookahead: one forward pass per task (the model does not vectorize: %s)", e)
            _VMAP_WARNED = True
        return torch.stack([fn({k: v[i] for k, v in stacked.items()}) for i in range(n)])


_VMAP_WARNED = False


class Recorder:
    """Sums of a T × T measure over steps, with a count per pair (NaN entries are skipped)."""

    def __init__(self, n_tasks: int) -> None:
        self.sum = np.zeros((n_tasks, n_tasks))
        self.count = np.zeros((n_tasks, n_tasks), dtype=np.int64)

    def add(self, matrix: torch.Tensor) -> None:
        m = matrix.detach().cpu().numpy()
        finite = np.isfinite(m)
        self.sum[finite] += m[finite]
        self.count += finite

    def mean(self) -> np.ndarray:
        """The average over the steps where the pair was measured; NaN where it never was."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.sum / np.maximum(self.count, 1), np.nan)


@dataclass
class AffinityResult:
    """The averaged affinity matrices of one training run (rows: the task whose gradient moves; columns:
    the task affected), the number of measured steps, and the training time with and without measuring."""

    tasks: list[str]
    matrices: dict[str, np.ndarray]
    steps: int
    seconds: float = 0.0  # the whole loop
    measure_seconds: float = 0.0  # the part spent measuring

    @property
    def overhead(self) -> float:
        """Time spent measuring as a fraction of the time spent training."""
        train = self.seconds - self.measure_seconds
        return self.measure_seconds / train if train > 0 else float("nan")


def affinity(
    cfg: RunConfig,
    measures: Sequence[str] = DEEP_MEASURES,
    every: int = 10,
    lr: float | None = None,
    data: Any = None,
    *,
    prepared: tuple[Sequence[Task], Preprocessor, Arrays] | None = None,
) -> AffinityResult:
    """Train the configured deep model on the training part and measure task affinity every ``every`` steps.

    This is a separate training run of the model that ``cfg`` describes (same architecture, optimizer, sampler,
    batch size, epochs and seed; tasks combined by their weights plus the model's own penalty, no balancing
    method, no early stopping): the configured ``train.balancer`` must be ``static`` (the default), since
    the measures read the raw per-task gradients that another balancing method would reweight or replace.
    ``lr`` is the lookahead step size ``η`` (default: ``cfg.train.lr``). ``prepared`` (optional) is
    ``(tasks, preprocessor, training arrays)`` already split and encoded: the measure trains on those rows
    instead of reading and splitting the configured data (what training by groups passes: its own
    training rows).
    """
    from multitask import models
    from multitask.runs import prepare
    from multitask.train._distributed import select_device
    from multitask.train._trainer import _check_step, _torch_threads, epoch_seed, make_optimizer, make_sampler

    unknown = [m for m in measures if m not in DEEP_MEASURES]
    if unknown or not measures:
        raise ConfigError(f"--measure {','.join(measures)}: each must be one of {', '.join(DEEP_MEASURES)} (measured "
                          "while a deep model trains; transfer, mtrl and clustered have their own functions)")
    check_single_process("task affinity")
    if cfg.train.balancer != "static":
        raise ConfigError(f"train.balancer {cfg.train.balancer!r}: the affinity run combines the task losses by their "
                          "weights (balancer 'static'); the gradient and lookahead measures read each task's own "
                          "gradient, which another balancer would reweight or replace. Measure with balancer static")
    if every < 1:
        raise ConfigError(f"--every {every}: must be at least 1")
    eta = cfg.train.lr if lr is None else lr
    if not eta > 0:
        raise ConfigError(f"lookahead lr {eta}: must be positive")
    model = models.make(cfg)
    build = getattr(model, "_build", None)
    if build is None:
        raise ConfigError(f"model {cfg.model!r}: task affinity needs a deep model (one of multitask.nn)")
    if prepared is None:
        p = prepare(cfg, data, hold_out_test=False)
        prepared = (p.tasks, p.pre, p.train)
    tasks, pre, train = list(prepared[0]), prepared[1], prepared[2]
    config = cfg.train
    model.check(tasks, pre)
    torch.manual_seed(config.seed)
    net: nn.Module = build(tasks, pre, {t.name: train.task_source[t.name] for t in tasks})
    device = select_device()
    net.to(device)
    shared_parameters = getattr(net, "shared_parameters", None)
    shared = list(shared_parameters()) if shared_parameters is not None else []
    if not shared:
        raise ConfigError(f"model {cfg.model!r}: has no shared parameters, so no task affinity to measure")
    names_of = {id(q): n for n, q in net.named_parameters()}
    shared_names = [names_of[id(q)] for q in shared]
    optimizer = make_optimizer(config, list(net.parameters()))
    sampler = make_sampler(config)
    weights = torch.tensor([t.weight for t in tasks], dtype=torch.float32, device=device)
    penalty_of = getattr(net, "penalty", None)
    net_penalty = penalty_of if callable(penalty_of) else None
    recorders = {m: Recorder(len(tasks)) for m in measures}
    with _torch_threads(config.threads):  # as the trainer: train.threads torch CPU threads
        step, measured, measure_seconds = 0, 0, 0.0
        start = time.perf_counter()
        for epoch in range(config.epochs):
            torch.manual_seed(epoch_seed(config.seed, epoch))
            net.train()
            for rows in sampler.batches(train, config.batch_size, epoch, config.seed):
                batch = train.take(rows).to(device)
                count = torch.stack([batch.masks[t.name].sum() for t in tasks])
                losses = _mean_losses(tasks, net(batch.inputs), batch, count)
                _check_step(tasks, losses.detach().cpu(), epoch, step, None)  # diverged: an error, never a matrix
                total = (losses.float() * weights).sum()
                penalty = net_penalty() if net_penalty is not None else None  # of this forward pass (gates, heads)
                if penalty is not None:
                    total = total + penalty.to(total.dtype)
                optimizer.zero_grad(set_to_none=True)
                if step % every == 0:
                    t0 = time.perf_counter()
                    jacobian = task_jacobian(losses, shared, retain_graph=True)
                    labelled = (count > 0).cpu()
                    if "gradient" in recorders:
                        cosine = gradient_affinity(jacobian).cpu()
                        cosine[~labelled, :] = float("nan")
                        cosine[:, ~labelled] = float("nan")
                        recorders["gradient"].add(cosine)
                    if "lookahead" in recorders:
                        recorders["lookahead"].add(lookahead_affinity(net, tasks, batch, shared_names, jacobian, eta))
                    measured += 1
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    measure_seconds += time.perf_counter() - t0
                total.backward()
                optimizer.step()
                step += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    log.info("affinity: %d of %d steps measured, %.1f s (%.1f s measuring)", measured, step, seconds,
             measure_seconds)
    return AffinityResult([t.name for t in tasks], {m: r.mean() for m, r in recorders.items()}, measured,
                          seconds, measure_seconds)


def cluster_order(matrix: np.ndarray) -> list[int]:
    """The task order of average-linkage hierarchical clustering on the distance ``max(S) - S``, with ``S``
    the symmetrized matrix ``(A + Aᵀ) / 2`` (NaN taken as the lowest affinity)."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    n = matrix.shape[0]
    if n < 3:
        return list(range(n))
    s = (matrix + matrix.T) / 2
    finite = s[np.isfinite(s)]
    low = float(finite.min()) if finite.size else 0.0
    s = np.where(np.isfinite(s), s, low)
    distance = np.maximum(float(s.max()) - s, 0.0)
    np.fill_diagonal(distance, 0.0)
    return [int(i) for i in leaves_list(linkage(squareform(distance, checks=False), method="average"))]
