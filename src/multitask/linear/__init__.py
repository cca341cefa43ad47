"""Regularized linear multi-task learning as scikit-learn estimators.

Every estimator minimizes ``sum_t L_t(w_t, b_t) + Ω(W)`` over ``W`` of shape (n_tasks, n_features) and
unpenalized intercepts ``b``, with one accelerated proximal-gradient solver; ``L_t`` is the mean loss of
task ``t`` (``"squared"``, ``"logistic"`` or ``"squared_hinge"``, chosen per task). See ``docs/linear.md``.
"""

from multitask.linear._backend import ArrayBackend, Backend
from multitask.linear._base import LinearMTL
from multitask.linear._baselines import IndependentLinear, PooledLinear
from multitask.linear._clustered import Clustered
from multitask.linear._cv import MultiTaskCV, cross_validate_params
from multitask.linear._data import rename_task_error
from multitask.linear._low_rank import Robust, SparseLowRank, TraceNorm
from multitask.linear._mtrl import TaskRelationship
from multitask.linear._path import Path, regularization_path
from multitask.linear._quadratic import GraphRegularized, MeanRegularized
from multitask.linear._solver import DivergedError
from multitask.linear._sparse import L21, Dirty, Lasso

__all__ = [
    "L21",
    "ArrayBackend",
    "Backend",
    "Clustered",
    "Dirty",
    "DivergedError",
    "GraphRegularized",
    "IndependentLinear",
    "Lasso",
    "LinearMTL",
    "MeanRegularized",
    "MultiTaskCV",
    "Path",
    "PooledLinear",
    "Robust",
    "SparseLowRank",
    "TaskRelationship",
    "TraceNorm",
    "cross_validate_params",
    "regularization_path",
    "rename_task_error",
]

#: every formulation, in the order of the docs' table
ESTIMATORS: tuple[type[LinearMTL], ...] = (
    IndependentLinear, PooledLinear, MeanRegularized, Lasso, L21, TraceNorm, SparseLowRank, Dirty,
    Clustered, GraphRegularized, Robust, TaskRelationship,
)
