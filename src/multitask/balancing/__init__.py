"""Task balancing: loss weightings and gradient combinations, each selectable by name (``BALANCERS``).

Every method is built as ``cls(tasks, **options)`` and is either a loss weighting, ``combine(losses)`` ->
the scalar to backpropagate, or a gradient method, ``combine_gradients(J, losses)`` -> the direction of the
shared parameters (``J``: one row per task, the gradient of its loss w.r.t. the shared parameters). See
docs/balancing.md.
"""

from multitask.balancing._aligned_mtl import AlignedMTL
from multitask.balancing._auto_lambda import AutoLambda, hypergradient
from multitask.balancing._base import Balancing, Lookahead, Needs, Of, step_seed, task_names
from multitask.balancing._cagrad import CAGrad, cagrad_weights
from multitask.balancing._config import ConFIG
from multitask.balancing._db_mtl import DBMTL
from multitask.balancing._dualproj import DualProj
from multitask.balancing._dwa import DynamicWeightAverage
from multitask.balancing._excess_mtl import ExcessMTL
from multitask.balancing._fairgrad import FairGrad
from multitask.balancing._famo import FAMO
from multitask.balancing._gls import GeometricMean
from multitask.balancing._graddrop import GradDrop
from multitask.balancing._gradnorm import GradNorm
from multitask.balancing._gradvac import GradVac
from multitask.balancing._imtl_g import IMTLG
from multitask.balancing._imtl_l import IMTLL
from multitask.balancing._jacobian import mean_pairwise_cosine, task_jacobian
from multitask.balancing._mgda import MGDA, MGDAUB, min_norm_weights, project_simplex
from multitask.balancing._moco import MoCo
from multitask.balancing._nash_mtl import NashMTL
from multitask.balancing._pcgrad import PCGrad, pcgrad_coefficients
from multitask.balancing._rlw import RandomWeights
from multitask.balancing._sdmgrad import SDMGrad
from multitask.balancing._static import StaticWeights, static
from multitask.balancing._stch import STCH
from multitask.balancing._uncertainty import Uncertainty
from multitask.balancing._upgrad import UPGrad

__all__ = [
    "DBMTL",
    "FAMO",
    "IMTLG",
    "IMTLL",
    "MGDA",
    "MGDAUB",
    "STCH",
    "AlignedMTL",
    "AutoLambda",
    "Balancing",
    "CAGrad",
    "ConFIG",
    "DualProj",
    "DynamicWeightAverage",
    "ExcessMTL",
    "FairGrad",
    "GeometricMean",
    "GradDrop",
    "GradNorm",
    "GradVac",
    "Lookahead",
    "MoCo",
    "NashMTL",
    "Needs",
    "Of",
    "PCGrad",
    "RandomWeights",
    "SDMGrad",
    "StaticWeights",
    "UPGrad",
    "Uncertainty",
    "cagrad_weights",
    "hypergradient",
    "mean_pairwise_cosine",
    "min_norm_weights",
    "pcgrad_coefficients",
    "project_simplex",
    "static",
    "step_seed",
    "task_jacobian",
    "task_names",
]
