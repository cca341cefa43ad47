r"""Task affinity read off a fitted linear multi-task model: MTRL's task correlation, clustered MTL's clusters.

Both fit a linear model of :mod:`multitask.linear` on the run's training part through the linear family
(:class:`multitask.models` ``linear:NAME``: the same data forms, losses per task kind and options as
``multitask train --model linear:NAME``) and read the task structure it learned from its weights ``W``
(T × d):

* ``mtrl`` (Zhang & Yeung, UAI 2010, :class:`~multitask.linear.TaskRelationship`): the task correlation
  ``C_ij = Ω_ij / sqrt(Ω_ii Ω_jj)`` of the learned task covariance ``Ω = (W Wᵀ)^{1/2} / tr((W Wᵀ)^{1/2})``;
* ``clustered`` (Jacob, Bach & Vert, NeurIPS 2008, convex form of Zhou, Chen & Ye 2011,
  :class:`~multitask.linear.Clustered`): the learned cluster matrix ``M`` scaled to a unit diagonal,
  ``S_ij = M_ij / sqrt(M_ii M_jj)`` (1 inside a cluster, 0 across, for ``M = F Fᵀ``), and each task's
  cluster (``Clustered.task_clusters_``).

Both matrices are symmetric with a unit diagonal. The model's options are ``cfg.model_options`` when
``cfg.model`` names the same linear model, else its defaults.

References:
    Zhang & Yeung, "A convex formulation for learning task relationships in multi-task learning", UAI 2010.
    Jacob, Bach & Vert, "Clustered multi-task learning: a convex formulation", NeurIPS 2008.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from multitask.errors import ConfigError

if TYPE_CHECKING:
    from multitask.config import RunConfig
    from multitask.data.spec import BuiltinData

#: measure name -> the linear model it fits
LINEAR_MEASURES = {"mtrl": "linear:mtrl", "clustered": "linear:clustered"}


@dataclass
class LinearAffinity:
    """The task affinity a fitted linear model learned: ``matrix`` (T × T, tasks in the order of ``tasks``),
    the model and options it came from, each task's cluster (``clustered`` only) and the fit's time."""

    measure: str
    tasks: list[str]
    matrix: np.ndarray
    model: str
    options: dict[str, Any]
    clusters: list[int] | None = None
    seconds: float = 0.0

    def groups(self) -> list[list[str]]:
        """The clusters as lists of task names, in the order of their labels (``clustered`` only)."""
        if self.clusters is None:
            raise ValueError(f"the {self.measure} measure has no clusters")
        return [[t for t, c in zip(self.tasks, self.clusters, strict=True) if c == k]
                for k in range(max(self.clusters) + 1)]


def linear_affinity(cfg: RunConfig, measure: str, data: BuiltinData | None = None) -> LinearAffinity:
    """Fit the linear model of ``measure`` (``"mtrl"`` or ``"clustered"``) on the training part of the
    configured data and return the task affinity it learned (see the module docstring).

    ``data`` (optional) is the already loaded data set that ``cfg.dataset`` names. Tasks must be regression
    or binary (what linear models fit) on one table of features; otherwise a ConfigError names the task.
    """
    from multitask import models
    from multitask.linear._clustered import cluster_labels, cluster_matrix, cluster_similarity
    from multitask.linear._mtrl import task_covariance
    from multitask.registry import LINEAR
    from multitask.runs import prepare

    if measure not in LINEAR_MEASURES:
        raise ConfigError(f"linear affinity measure {measure!r}: must be one of {', '.join(LINEAR_MEASURES)}")
    name = LINEAR_MEASURES[measure]
    own = cfg.model == name
    options = dict(cfg.model_options) if own else {}
    cv = cfg.cv if own else None
    if measure == "clustered" and cv is not None:
        raise ConfigError("--measure clustered: cv is not supported (the clusters are read off M for the given "
                          "eta, which cross-validation would change); set alpha and eta in model_options")
    lcfg = cfg.model_copy(update={"model": name, "model_options": options, "cv": cv})
    model = models.make(lcfg)
    p = prepare(lcfg, data, hold_out_test=False)
    model.check(p.tasks, p.pre)
    start = time.perf_counter()
    model.fit(p.tasks, p.pre, p.train, p.valid)
    seconds = time.perf_counter() - start
    w = np.asarray(model.coef_, dtype=np.float64)  # type: ignore[attr-defined]
    tasks = [t.name for t in p.tasks]
    if measure == "mtrl":
        omega = task_covariance(w)
        scale = np.sqrt(np.diag(omega))
        return LinearAffinity(measure, tasks, omega / np.outer(scale, scale), name, options, None, seconds)
    defaults = LINEAR.get("clustered")()
    n_clusters = options.get("n_clusters", defaults.n_clusters)
    eta = options.get("eta", defaults.eta)
    m = cluster_matrix(w, n_clusters, eta)  # the M that the fit ended with: its closed form for the final W
    labels = [int(c) for c in cluster_labels(m, n_clusters)]
    return LinearAffinity(measure, tasks, cluster_similarity(m), name, options, labels, seconds)
