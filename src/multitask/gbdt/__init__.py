"""Gradient-boosted trees for multi-task data as scikit-learn estimators, on LightGBM.

Every estimator models task ``t`` as ``F_t(x) = c_t + Σ trees``: ``c_t`` the task's best constant, the trees
its own (:class:`GBDTIndependent`), shared with the task id as a feature (:class:`GBDTPooled`), or shared
then per-task (:class:`GBDTMultiTask`). Objectives per task: ``"regression"``, ``"binary"``,
``"multiclass"``. Targets as in :mod:`multitask.linear` (wide with NaN, long with ``tasks``, one task);
saved without pickle by ``to_dict`` / ``from_dict``. See ``docs/gbdt.md``.
"""

from __future__ import annotations

from typing import Any

from multitask.errors import ConfigError
from multitask.gbdt._base import GBDTMTL
from multitask.gbdt._independent import GBDTIndependent
from multitask.gbdt._multitask import GBDTMultiTask
from multitask.gbdt._pooled import GBDTPooled

__all__ = ["ESTIMATORS", "GBDTMTL", "GBDTIndependent", "GBDTMultiTask", "GBDTPooled", "from_dict"]

#: every estimator, in the order of the docs' table
ESTIMATORS: tuple[type[GBDTMTL], ...] = (GBDTIndependent, GBDTPooled, GBDTMultiTask)


def from_dict(d: dict[str, Any]) -> GBDTMTL:
    """The estimator saved by ``to_dict`` in ``d``, whichever of :data:`ESTIMATORS` it is."""
    classes = {cls.__name__: cls for cls in ESTIMATORS}
    name = d.get("estimator") if isinstance(d, dict) else None
    if name not in classes:
        raise ConfigError(f"from_dict: unknown estimator {name!r}; expected one of: {', '.join(classes)}")
    return classes[name].from_dict(d)
