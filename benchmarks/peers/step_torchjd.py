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
from _peer_common import Methods, Step, encoder, heads, main
from torch import nn
from torchjd import aggregation as agg
from torchjd.autogram import Engine
from torchjd.autojac import jac_to_grad, mtl_backward

#: torchjd name -> (our method, aggregator factory or None, weighting factory or None), given the number of tasks
FACTORIES: dict[str, tuple[str, Callable[[int], agg.Aggregator] | None, Callable[[int], agg.Weighting] | None]] = {
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


def autojac_step(tasks: int, aggregator: agg.Aggregator) -> Step:
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


def autogram_step(tasks: int, weighting: agg.Weighting) -> Step:
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


def make_step(method: str, route: str, tasks: int) -> Step:
    _, make_aggregator, make_weighting = FACTORIES[method]
    if route == "autojac":
        assert make_aggregator is not None
        return autojac_step(tasks, make_aggregator(tasks))
    assert make_weighting is not None
    return autogram_step(tasks, make_weighting(tasks))


METHODS: Methods = {
    (name, route): ours
    for name, (ours, aggregator, weighting) in FACTORIES.items()
    for route, factory in (("autojac", aggregator), ("autogram", weighting))
    if factory is not None
}

if __name__ == "__main__":
    main("torchjd", __doc__.splitlines()[0], METHODS, make_step)
