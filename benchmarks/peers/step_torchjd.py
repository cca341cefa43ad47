"""Step time of torchjd 0.18.0's aggregators and weightings on the shared benchmark model (CPU, one thread).

Run by ``benchmarks/balancing_step_time.py`` with the python of torchjd's own environment; prints one JSON
line per (method, route, number of tasks). Two routes, as torchjd's documentation uses them:

* ``autojac``: ``mtl_backward(losses, features=representation)`` (heads get their task's gradient, the shared
  parameters a ``.jac`` with one row per task), then ``jac_to_grad(shared parameters, aggregator)``;
* ``autogram``: ``Engine(encoder, batch_dim=None)`` computes the Gramian of the task losses w.r.t. the shared
  parameters, a weighting turns it into weights, and ``losses.backward(weights)`` (Gramian weightings only).

One step: forward, one of the two, Adam's step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from _peer_common import arguments, batches, encoder, heads, report, time_steps
from torch import nn
from torchjd import aggregation as agg
from torchjd.autogram import Engine
from torchjd.autojac import jac_to_grad, mtl_backward

#: torchjd name -> (our method, aggregator factory or None, weighting factory or None), given the number of tasks
METHODS: dict[str, tuple[str, Callable[[int], agg.Aggregator] | None, Callable[[int], agg.Weighting] | None]] = {
    "Sum": ("static", lambda t: agg.Sum(), lambda t: agg.SumWeighting()),
    "Random": ("rlw", lambda t: agg.Random(), lambda t: agg.RandomWeighting()),
    "MGDA": ("mgda", lambda t: agg.MGDA(), lambda t: agg.MGDAWeighting()),
    "PCGrad": ("pcgrad", lambda t: agg.PCGrad(), lambda t: agg.PCGradWeighting()),
    "CAGrad": ("cagrad", lambda t: agg.CAGrad(c=0.4), lambda t: agg.CAGradWeighting(c=0.4)),
    "IMTLG": ("imtl-g", lambda t: agg.IMTLG(), lambda t: agg.IMTLGWeighting()),
    "NashMTL": ("nash-mtl", lambda t: agg.NashMTL(n_tasks=t), None),
    "AlignedMTL": ("aligned-mtl", lambda t: agg.AlignedMTL(), lambda t: agg.AlignedMTLWeighting()),
    "UPGrad": ("upgrad", lambda t: agg.UPGrad(), lambda t: agg.UPGradWeighting()),
    "DualProj": ("dualproj", lambda t: agg.DualProj(), lambda t: agg.DualProjWeighting()),
    "ConFIG": ("config", lambda t: agg.ConFIG(), None),
    "FairGrad": ("fairgrad", lambda t: agg.FairGrad(alpha=1.0), lambda t: agg.FairGradWeighting(alpha=1.0)),
    # SDMGrad's weighting wants J1 J2ᵀ of two independent batches; given the one batch's Gramian instead, as a
    # one-batch method has it:
    "SDMGrad": ("sdmgrad", None, lambda t: agg.SDMGradWeighting()),
    "GradVac": ("gradvac", lambda t: agg.GradVac(), lambda t: agg.GradVacWeighting()),
    "GradDrop": ("graddrop", lambda t: agg.GradDrop(), None),
    "ExcessMTL": ("excessmtl", lambda t: agg.ExcessMTL(), None),
}


def autojac_step(tasks: int, aggregator: agg.Aggregator) -> Callable[[torch.Tensor, torch.Tensor], None]:
    enc, hs = encoder(), heads(tasks)
    shared = list(enc.parameters())
    optimizer = torch.optim.Adam([*shared, *hs.parameters()], lr=1e-3)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        optimizer.zero_grad()
        rep = enc(x)
        losses = [nn.functional.mse_loss(h(rep).squeeze(1), y[:, i]) for i, h in enumerate(hs)]
        mtl_backward(losses, features=rep)
        jac_to_grad(shared, aggregator)
        optimizer.step()

    return step


def autogram_step(tasks: int, weighting: agg.Weighting) -> Callable[[torch.Tensor, torch.Tensor], None]:
    enc, hs = encoder(), heads(tasks)
    engine = Engine(enc, batch_dim=None)
    optimizer = torch.optim.Adam([*enc.parameters(), *hs.parameters()], lr=1e-3)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        optimizer.zero_grad()
        rep = enc(x)
        losses = torch.stack([nn.functional.mse_loss(h(rep).squeeze(1), y[:, i]) for i, h in enumerate(hs)])
        gramian = engine.compute_gramian(losses)
        losses.backward(weighting(gramian))
        optimizer.step()

    return step


def main() -> None:
    a = arguments(__doc__.splitlines()[0])
    only = set(filter(None, a.only.split(",")))
    for tasks in (int(t) for t in a.tasks.split(",")):
        data = batches(tasks, a.batch_size)
        for name, (ours, make_aggregator, make_weighting) in METHODS.items():
            if only and name not in only:
                continue
            for route, factory, builder in (
                ("autojac", make_aggregator, autojac_step),
                ("autogram", make_weighting, autogram_step),
            ):
                if factory is None:
                    continue
                torch.manual_seed(0)

                def run(factory=factory, builder=builder, tasks=tasks, data=data) -> list[float]:
                    return time_steps(builder(tasks, factory(tasks)), data, a.warmup, a.steps)

                report("torchjd", name, ours, route, tasks, run)


if __name__ == "__main__":
    main()
