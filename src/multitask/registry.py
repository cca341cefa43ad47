"""The one registry of names: every component a user can select by name is listed here, once.

The command line's choices, ``multitask list`` and the tables in the docs are generated from these
mappings. Entries are resolved lazily (``"module:attribute"``) so that listing names imports nothing heavy;
an entry's summary is the first line of its object's docstring.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from multitask.errors import ConfigError


@functools.cache
def _resolve(target: str) -> Any:
    """The object at ``"module:attribute"`` (resolved once: losses are looked up every training step)."""
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


@dataclass(frozen=True)
class Entry:
    """A registered name and where its object lives."""

    name: str
    target: str  # "package.module:attribute"

    def load(self) -> Any:
        return _resolve(self.target)

    @property
    def summary(self) -> str:
        doc = getattr(self.load(), "__doc__", None) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""


class Registry:
    """Names of one kind of component (``kind`` is used in messages: "unknown model 'x'")."""

    def __init__(self, kind: str, entries: dict[str, str]) -> None:
        self.kind = kind
        self._entries = {name: Entry(name, target) for name, target in entries.items()}

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def entry(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            choices = ", ".join(self._entries)
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {choices}") from None

    def get(self, name: str) -> Any:
        """The registered object (class or function) for ``name``."""
        return self.entry(name).load()


# ---- deep architectures: nn.Modules whose forward returns {task: output} ---------------------------------
MODELS = Registry(
    "model",
    {
        "hard-sharing": "multitask.nn:HardSharing",
        "pooled-mlp": "multitask.nn._pooled:PooledMLP",
        "shared-bottom": "multitask.nn._shared_bottom:SharedBottom",
        "esmm": "multitask.nn._esmm:ESMM",
        "aitm": "multitask.nn._aitm:AITM",
        "tree": "multitask.nn._tree:DeclaredTree",
        "learned-tree": "multitask.nn._branching:LearnedTree",
        "cross-stitch": "multitask.nn._cross_stitch:CrossStitch",
        "mtan": "multitask.nn._mtan:MTAN",
        "mmoe": "multitask.nn._mmoe:MMoE",
        "cgc": "multitask.nn._ple:CGC",
        "ple": "multitask.nn._ple:PLE",
        "dselect-k": "multitask.nn._dselect_k:DSelectK",
    },
)

# ---- linear formulations (scikit-learn estimators), selected as --model linear:NAME ----------------------
LINEAR = Registry(
    "linear model",
    {
        "independent": "multitask.linear:IndependentLinear",
        "pooled": "multitask.linear:PooledLinear",
        "mean-regularized": "multitask.linear:MeanRegularized",
        "lasso": "multitask.linear:Lasso",
        "l21": "multitask.linear:L21",
        "trace-norm": "multitask.linear:TraceNorm",
        "sparse-low-rank": "multitask.linear:SparseLowRank",
        "dirty": "multitask.linear:Dirty",
        "clustered": "multitask.linear:Clustered",
        "graph": "multitask.linear:GraphRegularized",
        "robust": "multitask.linear:Robust",
        "mtrl": "multitask.linear:TaskRelationship",
    },
)

# ---- gradient-boosted trees (scikit-learn estimators on LightGBM), selected as --model gbdt:NAME ------------
GBDT = Registry(
    "gbdt model",
    {
        "independent": "multitask.gbdt:GBDTIndependent",
        "pooled": "multitask.gbdt:GBDTPooled",
        "multitask": "multitask.gbdt:GBDTMultiTask",
    },
)

# ---- ensembles of other models (what --model auto builds when it wins on held-out rows) ------------------
ENSEMBLES = Registry("ensemble", {"average": "multitask.models._ensemble:average"})

# ---- model families: every model name is a deep architecture, linear:NAME or gbdt:NAME ------------------
FAMILIES = Registry(
    "model family",
    {
        "deep": "multitask.models._deep:Deep",
        "linear": "multitask.models._linear:Linear",
        "gbdt": "multitask.models._gbdt:GBDT",
        "ensemble": "multitask.models._ensemble:Ensemble",
    },
)
#: the members of each family
MEMBERS: dict[str, Registry] = {"deep": MODELS, "linear": LINEAR, "gbdt": GBDT, "ensemble": ENSEMBLES}

# ---- experiment trackers (--track) -------------------------------------------------------------------------
TRACKERS = Registry(
    "tracker",
    {
        "mlflow": "multitask.tracking._mlflow:MLflowTracker",
        "tensorboard": "multitask.tracking._tensorboard:TensorBoardTracker",
    },
)

# ---- how batches are drawn across tasks of different sizes ----------------------------------------------
SAMPLERS = Registry(
    "sampling",
    {
        "proportional": "multitask.data.sampling:Proportional",
        "uniform": "multitask.data.sampling:Uniform",
        "temperature": "multitask.data.sampling:Temperature",
        "round-robin": "multitask.data.sampling:RoundRobin",
    },
)

# ---- per-task losses and metrics ---------------------------------------------------------------------------
LOSSES = Registry(
    "loss",
    {
        "mse": "multitask.losses:mse",
        "huber": "multitask.losses:huber",
        "bce": "multitask.losses:bce",
        "ce": "multitask.losses:ce",
        "multilabel-bce": "multitask.losses:multilabel_bce",
    },
)

METRICS = Registry(
    "metric",
    {
        "rmse": "multitask.metrics:rmse",
        "mae": "multitask.metrics:mae",
        "r2": "multitask.metrics:r2",
        "explained_variance": "multitask.metrics:explained_variance",
        "auc": "multitask.metrics:auc",
        "accuracy": "multitask.metrics:accuracy",
        "f1": "multitask.metrics:f1",
        "recall": "multitask.metrics:recall",
        "macro_f1": "multitask.metrics:macro_f1",
        "micro_f1": "multitask.metrics:micro_f1",
    },
)

OPTIMIZERS = Registry(
    "optimizer",
    {
        "adam": "torch.optim:Adam",
        "adamw": "torch.optim:AdamW",
        "sgd": "torch.optim:SGD",
    },
)

SCHEDULES = Registry(
    "lr schedule",
    {
        "constant": "multitask.train.schedules:constant",
        "cosine": "multitask.train.schedules:cosine",
        "step": "multitask.train.schedules:step",
    },
)

# ---- task balancing: built as cls(tasks, **options); see multitask.balancing ------------------------------
BALANCERS = Registry(
    "balancer",
    {
        "static": "multitask.balancing:static",
        "uncertainty": "multitask.balancing:Uncertainty",
        "dwa": "multitask.balancing:DynamicWeightAverage",
        "rlw": "multitask.balancing:RandomWeights",
        "gls": "multitask.balancing:GeometricMean",
        "mgda": "multitask.balancing:MGDA",
        "mgda-ub": "multitask.balancing:MGDAUB",
        "pcgrad": "multitask.balancing:PCGrad",
        "cagrad": "multitask.balancing:CAGrad",
        "imtl-l": "multitask.balancing:IMTLL",
        "famo": "multitask.balancing:FAMO",
        "stch": "multitask.balancing:STCH",
        "gradnorm": "multitask.balancing:GradNorm",
        "db-mtl": "multitask.balancing:DBMTL",
        "moco": "multitask.balancing:MoCo",
        "auto-lambda": "multitask.balancing:AutoLambda",
        "imtl-g": "multitask.balancing:IMTLG",
        "nash-mtl": "multitask.balancing:NashMTL",
        "aligned-mtl": "multitask.balancing:AlignedMTL",
        "upgrad": "multitask.balancing:UPGrad",
        "dualproj": "multitask.balancing:DualProj",
        "config": "multitask.balancing:ConFIG",
        "fairgrad": "multitask.balancing:FairGrad",
        "sdmgrad": "multitask.balancing:SDMGrad",
        "gradvac": "multitask.balancing:GradVac",
        "graddrop": "multitask.balancing:GradDrop",
        "excessmtl": "multitask.balancing:ExcessMTL",
    },
)

# ---- built-in data sets ----------------------------------------------------------------------------------
DATASETS = Registry(
    "data set",
    {
        "school": "multitask.datasets:school",
        "sarcos": "multitask.datasets:sarcos",
        "census-income": "multitask.datasets:census_income",
        "multimnist": "multitask.datasets:multimnist",
        "synthetic": "multitask.datasets:synthetic",
        "funnel": "multitask.datasets._funnel:funnel",
    },
)

ALL: dict[str, Registry] = {
    "models": MODELS,
    "linear": LINEAR,
    "gbdt": GBDT,
    "ensembles": ENSEMBLES,
    "sampling": SAMPLERS,
    "losses": LOSSES,
    "metrics": METRICS,
    "optimizers": OPTIMIZERS,
    "schedules": SCHEDULES,
    "balancers": BALANCERS,
    "datasets": DATASETS,
    "trackers": TRACKERS,
}
