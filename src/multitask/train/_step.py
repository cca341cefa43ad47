"""One training step: task losses of a global batch -> the gradient the balancer asks for, in ``.grad``.

The balancer (:class:`~multitask.balancing.Balancing`) says what it needs:

* ``losses``: ``c = ∂ combine(L) / ∂L`` at this step's loss values ``L`` (T,), and the trainer
  backpropagates ``Σ_t c_t L_t`` (for one micro-batch this is ``combine(L).backward()``);
* ``gramian``: ``G = J Jᵀ`` with ``J`` the per-task gradients of the shared parameters (one batched backward
  pass, :func:`~multitask.balancing.task_jacobian`) or of the shared representation (``of="representation"``:
  the batched backward stops at the representation, so it costs a fraction of a backward pass); the trainer
  backpropagates ``Σ_t w_t L_t`` with ``w = weigh(G, L)``: the shared part receives ``wᵀ J`` and head ``t``
  receives ``w_t ∇L_t``;
* ``jacobian``: ``d = direction(J, L)``; the trainer backpropagates ``Σ_t task.weight · L_t`` (what the heads
  receive) and the shared part receives ``d`` instead (written to the shared parameters' ``.grad``, or, at the
  representation, substituted for the representation's gradient in the same backward pass).

**Gradient accumulation** (``accumulate = k > 1``): the rows of the step are split into ``k`` micro-batches,
each forwarded and backpropagated alone. A first pass over them gives the loss values of the whole batch
(and ``J`` or ``G``, summed over the micro-batches); the balancer combines those once; a second pass
backpropagates ``Σ_t c_t l_t`` of each micro-batch with the random state of the first pass replayed (the same
dropout masks). The update equals the one large batch's, for every method, at the cost of one more forward
pass per micro-batch.

**Under torchrun** each rank's loss of task ``t`` is ``l_t = Σ_{its rows} loss / (labelled rows of t in the
global batch)``: the loss values are summed over ranks, ``J`` (parameters) and ``G`` (representation: the
ranks hold disjoint rows, so their Gramians add) too, so every rank combines the global quantities into the
same weights; the backward pass of ``W · Σ_t c_t l_t`` (``W`` ranks) is averaged by DistributedDataParallel
into the global gradient.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from multitask.balancing import Balancing, mean_pairwise_cosine, task_jacobian
from multitask.data.arrays import Batch
from multitask.errors import ConfigError
from multitask.tasks import Task
from multitask.train._distributed import Distributed
from multitask.train._losses import task_loss_sums


class WithRepresentation(nn.Module):
    """``inputs -> (representation, {task: output})`` of a model with ``representation()`` and ``heads()``.

    What DistributedDataParallel wraps when a balancer works on the representation, so that the
    representation comes out of the wrapped forward pass.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, inputs: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        model: Any = self.model
        representation = model.representation(inputs)
        return representation, model.heads(representation)


@dataclass
class _Forward:
    losses: torch.Tensor  # (T,) this rank's micro-batch: Σ loss over its labelled rows / global count
    representation: list[torch.Tensor] | None


class Stepper:
    """Computes a step's gradient for ``balancer`` on ``model`` (see the module docstring).

    Args:
        model: the network; ``shared_parameters()`` for a gradient method on the parameters,
            ``representation()`` and ``heads()`` for one on the representation.
        balancer: the method.
        tasks: the tasks, in the order of the balancer's.
        ddp: the process group (or a single process).
        precision: ``"fp32"``, or ``"bf16"``: forward passes under ``torch.autocast`` in bfloat16, their
            outputs cast back to float32 before the losses (weights, gradients and updates stay float32).
    """

    def __init__(
        self, model: nn.Module, balancer: Balancing, tasks: list[Task], ddp: Distributed, precision: str = "fp32"
    ) -> None:
        self.model, self.balancer, self.tasks, self.ddp = model, balancer, tasks, ddp
        if precision not in ("fp32", "bf16"):
            raise ConfigError(f"train option 'precision': fp32 or bf16, got {precision!r}")
        self.autocast = precision == "bf16"
        self.names = [t.name for t in tasks]
        self.task_weights = torch.tensor([t.weight for t in tasks], dtype=torch.float64)
        self.needs, self.of = balancer.needs, balancer.of
        self.at_representation = self.needs != "losses" and self.of == "representation"
        name = type(balancer).__name__
        self.shared: list[nn.Parameter] = []
        if self.needs != "losses" and not self.at_representation:
            shared_parameters = getattr(model, "shared_parameters", None)
            if shared_parameters is None:
                raise ConfigError(
                    f"balancer {name} needs the gradients of the shared parameters: the model "
                    f"{type(model).__name__} has no shared_parameters()"
                )
            self.shared = list(shared_parameters())
        if self.at_representation:
            if not (hasattr(model, "representation") and hasattr(model, "heads")):
                raise ConfigError(
                    f"balancer {name} with of='representation' needs a model with representation() and "
                    f"heads(); {type(model).__name__} has none"
                )
            if self.needs == "jacobian" and ddp.enabled:
                raise ConfigError(
                    f"balancer {name} with of='representation' combines every row's representation gradient "
                    "and does not run under torchrun; use of='parameters'"
                )
        wrapped: nn.Module = WithRepresentation(model) if self.at_representation else model
        #: a gradient method at the parameters: the shared part's gradient is computed from the global
        #: Jacobian, so the step writes it and synchronizes the other parameters' gradients itself (no DDP
        #: wrapper; the same arithmetic with one process as with several)
        self.direct = self.needs != "losses" and not self.at_representation
        self.own = [
            p for p in model.parameters() if p.requires_grad and id(p) not in {id(q) for q in self.shared}
        ]
        if ddp.enabled and self.direct:
            for tensor in [*model.parameters(), *model.buffers()]:  # start from rank 0's weights, as DDP does
                ddp.broadcast(tensor.data)
        elif ddp.enabled:
            device_ids = [ddp.device.index] if ddp.device.type == "cuda" else None
            wrapped = DistributedDataParallel(wrapped, device_ids=device_ids)
        #: what the loop calls ``train()`` on and forwards through
        self.net = wrapped
        #: the mean pairwise cosine of the task gradients in the last step (0-d, NaN if not computed)
        self.cosine_: torch.Tensor | None = None
        #: the model's gate usage in the step's last forward pass, ``{task: (experts,)}`` (None: no gates)
        self.gates_: dict[str, torch.Tensor] | None = None

    # ---- one step --------------------------------------------------------------------------------------------
    def step(
        self, batches: list[Batch], count: dict[str, int], check: Callable[[torch.Tensor], None]
    ) -> torch.Tensor:
        """Write the step's gradient to ``.grad`` (already zeroed); the global loss values (T,) on the CPU.

        ``batches`` are this rank's micro-batches of the step, ``count`` the labelled rows of each task in the
        global batch, ``check(values)`` raises on non-finite loss values before anything is backpropagated.
        """
        k = len(batches)
        if self.direct and self.ddp.enabled:
            for buffer in self.model.buffers():  # rank 0's running statistics, as DDP broadcasts them
                self.ddp.broadcast(buffer.data)
        states: list[Any] = []
        cached: _Forward | None = None
        values = torch.zeros(len(self.tasks), dtype=torch.float64, device=self.ddp.device)
        jacobian: torch.Tensor | None = None
        gramian: torch.Tensor | None = None
        rep_rows: list[torch.Tensor] = []
        grads_needed = self.needs != "losses"
        for batch in batches:
            states.append(_rng_state(self.ddp.device))
            with self._sync(k == 1), torch.set_grad_enabled(grads_needed or k == 1):
                f = self._forward(batch, count)
            values += f.losses.detach().double()
            if grads_needed:
                inputs = f.representation if self.at_representation else self.shared
                assert inputs is not None
                rows = task_jacobian(
                    f.losses, inputs, retain_graph=k == 1, batched=not self.at_representation
                )
                if not self.at_representation:
                    jacobian = rows if jacobian is None else jacobian + rows
                elif self.needs == "gramian":
                    part = (rows @ rows.T).double()
                    gramian = part if gramian is None else gramian + part
                else:
                    rep_rows.append(rows)
            if k == 1:
                cached = f
            del f
        end_state = _rng_state(self.ddp.device)
        totals = values.cpu()
        self.ddp.all_reduce_sum(totals)
        check(totals)
        values = totals.to(self.ddp.device)

        # ---- the balancer combines the step's global quantities ------------------------------------------------
        direction: torch.Tensor | None = None
        self.cosine_ = None
        if self.needs == "losses":
            leaf = values.to(torch.float32).requires_grad_(True)
            total = self.balancer.combine(dict(zip(self.names, leaf.unbind(), strict=True)))
            total.backward()  # the balancer's own parameters (uncertainty's) get their gradient here
            coefficients = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
        else:
            if jacobian is not None:
                self.ddp.all_reduce_sum(jacobian)
                gramian = (jacobian @ jacobian.T).double()
            elif rep_rows:
                jacobian = torch.cat(rep_rows, dim=1)
                gramian = (jacobian @ jacobian.T).double()
            else:
                assert gramian is not None
                self.ddp.all_reduce_sum(gramian)
            self.cosine_ = mean_pairwise_cosine(gramian)
            if self.needs == "gramian":
                coefficients = self.balancer.weigh(gramian, values)
            else:
                assert jacobian is not None
                direction = self.balancer.direction(jacobian, values)
                coefficients = self.task_weights.to(values.device)

        # ---- backpropagate Σ_t c_t l_t, micro-batch by micro-batch ----------------------------------------------
        c = coefficients.detach().to(self.ddp.device) * self.ddp.world_size
        offset = 0
        penalty_grad: torch.Tensor | None = None
        for m, batch in enumerate(batches):
            last = m == k - 1
            if cached is not None:
                f = cached
            else:
                _set_rng_state(self.ddp.device, states[m])
                with self._sync(last):
                    f = self._forward(batch, count)
            if direction is not None and self.at_representation:
                assert f.representation is not None
                for r in f.representation:
                    part = direction[offset : offset + r.numel()].view_as(r).to(r.dtype)
                    r.register_hook(lambda _grad, part=part: part)
                    offset += r.numel()
            with self._sync(last):
                total = (c.to(f.losses.dtype) * f.losses).sum()
                penalty = self._penalty() if last else None
                if penalty is not None:  # the same on every rank: DDP's average leaves its gradient as is
                    total = total + penalty.to(total.dtype)
                if self.direct:
                    # the shared part's gradient is wᵀJ (or the direction), known already: backpropagate into
                    # the other parameters only, sparing a backward pass through the shared part
                    if self.own:
                        torch.autograd.backward(total, inputs=self.own, retain_graph=penalty is not None)
                    if penalty is not None:
                        extra = torch.autograd.grad(penalty, self.shared, allow_unused=True)
                        penalty_grad = torch.cat(
                            [
                                (g if g is not None else torch.zeros_like(q)).reshape(-1)
                                for g, q in zip(extra, self.shared, strict=True)
                            ]
                        )
                else:
                    total.backward()
            del f
        cached = None
        usage = getattr(self.model, "gate_usage", None)
        self.gates_ = usage() if callable(usage) else None
        if k > 1:
            _set_rng_state(self.ddp.device, end_state)
        if self.direct:
            assert jacobian is not None
            shared_grad = (
                direction if direction is not None else coefficients.detach().to(jacobian.dtype) @ jacobian
            )
            if penalty_grad is not None:  # a penalty of this rank's rows (AITM's calibrator): averaged over ranks
                if self.ddp.enabled:
                    self.ddp.all_reduce_sum(penalty_grad)
                    penalty_grad /= self.ddp.world_size
                shared_grad = shared_grad + penalty_grad.to(shared_grad.dtype)
            start = 0
            for p in self.shared:
                p.grad = shared_grad[start : start + p.numel()].view_as(p).to(p.dtype).clone()
                start += p.numel()
            if self.ddp.enabled:
                self._sync_own_gradients()
        return totals

    def _sync_own_gradients(self) -> None:
        """Sum the non-shared parameters' gradients over ranks, divided by the ranks (what DDP would do)."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.own]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        self.ddp.all_reduce_sum(flat)
        flat /= self.ddp.world_size
        start = 0
        for p in self.own:
            p.grad = flat[start : start + p.numel()].view_as(p).clone()
            start += p.numel()

    @torch.no_grad()
    def losses_after(self, batches: list[Batch], count: dict[str, int]) -> torch.Tensor:
        """The global loss values (T,) of the step's batch with the updated parameters (same random state)."""
        end_state = _rng_state(self.ddp.device)
        values = torch.zeros(len(self.tasks), dtype=torch.float64, device=self.ddp.device)
        for batch in batches:
            values += self._forward(batch, count).losses.double()
        _set_rng_state(self.ddp.device, end_state)
        totals = values.cpu()
        self.ddp.all_reduce_sum(totals)
        return totals.to(self.ddp.device)

    # ---- pieces --------------------------------------------------------------------------------------------------
    def _forward(self, batch: Batch, count: dict[str, int]) -> _Forward:
        with torch.autocast(self.ddp.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            out = self.net(batch.inputs)
        representation: list[torch.Tensor] | None = None
        if self.at_representation:
            rep, out = out
            representation = list(rep.values())
        if self.autocast:
            out = {k: v.float() for k, v in out.items()}
        sums = task_loss_sums(self.tasks, out, batch.targets, batch.masks)
        losses = torch.stack([sums[n] / max(count[n], 1) for n in self.names])
        return _Forward(losses, representation)

    def _penalty(self) -> torch.Tensor | None:
        """The model's penalty term (shared heads' deviations), added once per step; None without one."""
        penalty = getattr(self.model, "penalty", None)
        return penalty() if callable(penalty) else None

    def _sync(self, last: bool) -> contextlib.AbstractContextManager[Any]:
        """DDP's gradient synchronisation only in the step's last backward pass."""
        if last or not isinstance(self.net, DistributedDataParallel):
            return contextlib.nullcontext()
        return self.net.no_sync()


def _rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.random.get_rng_state(), cuda


def _set_rng_state(device: torch.device, state: tuple[torch.Tensor, torch.Tensor | None]) -> None:
    torch.random.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def split_rows(rows: dict[str, Any], parts: int) -> Iterator[dict[str, Any]]:
    """``parts`` micro-batches of a step's rows: each source's rows split into contiguous, near-equal parts."""
    pieces = {s: np.array_split(r, parts) for s, r in rows.items()}
    for i in range(parts):
        yield {s: p[i] for s, p in pieces.items()}
