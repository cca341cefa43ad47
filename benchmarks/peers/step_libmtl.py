"""Step time of LibMTL 1.1.5's weighting methods on the shared benchmark model (CPU, one thread).

Run by ``benchmarks/balancing_step_time.py`` with the python of LibMTL's own environment; prints one JSON
line per (method, route, number of tasks). LibMTL's package imports its ResNet models, which need torchvision;
only its weightings and the HPS architecture are used here, so ``LibMTL.model`` is replaced by an empty module
before the import. The model is put together as LibMTL's ``Trainer`` does (a class deriving from the
architecture and the weighting), on the CPU (the Trainer itself insists on ``cuda:0``), with one shim:
``zero_grad_share_params`` leaves zeros instead of None, as torch < 2.0 did (see ``build``). One step: forward,
the per-task losses stacked, ``model.backward(losses, **weight_args)``, Adam's step, as in ``Trainer.train``.
"""

from __future__ import annotations

import random
import sys
import types

import numpy as np
import torch
from _peer_common import Methods, Step, encoder, main
from torch import nn

sys.modules["LibMTL.model"] = types.ModuleType("LibMTL.model")  # torchvision's ResNets: not needed here
from LibMTL import weighting  # noqa: E402
from LibMTL.architecture import HPS  # noqa: E402

#: LibMTL weighting -> (our method, weight_args, routes: "parameters" and/or "representation" (rep_grad))
WEIGHTINGS: dict[str, tuple[str, dict[str, object], tuple[str, ...]]] = {
    "EW": ("static", {}, ("parameters",)),
    "UW": ("uncertainty", {}, ("parameters",)),
    "DWA": ("dwa", {"T": 2.0}, ("parameters",)),
    "RLW": ("rlw", {"dist": "Normal"}, ("parameters",)),
    "GLS": ("gls", {}, ("parameters",)),
    "MGDA": ("mgda", {"mgda_gn": "none"}, ("parameters", "representation")),
    "PCGrad": ("pcgrad", {}, ("parameters",)),
    "CAGrad": ("cagrad", {"calpha": 0.4, "rescale": 0}, ("parameters",)),
    "IMTL": ("imtl-g", {}, ("parameters", "representation")),
    "GradNorm": ("gradnorm", {"alpha": 1.5}, ("parameters", "representation")),
    "GradVac": ("gradvac", {"beta": 0.5}, ("parameters",)),
    "GradDrop": ("graddrop", {"leak": 0.0}, ("representation",)),
}
METHODS: Methods = {(m, r): ours for m, (ours, _, routes) in WEIGHTINGS.items() for r in routes}


def build(method: str, tasks: int, rep_grad: bool) -> tuple[nn.Module, torch.optim.Optimizer]:
    names = [f"t{i}" for i in range(tasks)]
    decoders = nn.ModuleDict({n: nn.Linear(256, 1) for n in names})

    class MTLmodel(HPS, getattr(weighting, method)):  # type: ignore[misc]  # as LibMTL's Trainer builds it
        def __init__(self) -> None:
            super().__init__(names, encoder, decoders, rep_grad, False, torch.device("cpu"))
            self.init_param()

        def zero_grad_share_params(self) -> None:
            # LibMTL 1.1.5 was written for torch < 2.0, whose zero_grad() left zero tensors; since torch 2.0 it
            # sets .grad to None, and LibMTL's _reset_grad then fails on `param.grad.data` of every
            # parameter-level gradient method. Zeros, as on the torch it was written for:
            self.encoder.zero_grad(set_to_none=False)

    model = MTLmodel()
    model.epoch = 2  # past the first epochs, where DWA and GradNorm fall back to equal weights
    model.train_loss_buffer = np.ones((tasks, 3))
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def make_step(method: str, route: str, tasks: int) -> Step:
    random.seed(0)
    model, optimizer = build(method, tasks, route == "representation")
    names = list(model.task_name)
    kwargs = WEIGHTINGS[method][1]

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        model.train()
        optimizer.zero_grad()
        preds = model(x)
        losses = torch.stack([nn.functional.mse_loss(preds[n].squeeze(1), y[:, i]) for i, n in enumerate(names)])
        model.backward(losses, **kwargs)
        optimizer.step()

    return step


if __name__ == "__main__":
    main("libmtl", __doc__.splitlines()[0], METHODS, make_step)
