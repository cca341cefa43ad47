"""Experiment tracking: a run's options, its per-epoch losses and its final metrics sent to MLflow or TensorBoard.

``multitask train --track mlflow`` (or ``tensorboard``, or both: ``--track mlflow,tensorboard``) logs

* the run's options (``config.yaml``, flattened: ``train.lr``, ``model_options.hidden``, ...) as parameters;
* every epoch of a deep model as it ends: ``train_loss/TASK``, ``valid_loss/TASK``, ``valid_total``, ``lr``,
  ``weight/TASK`` (the balancer's mean task weights) and ``cosine``, at step = epoch (a run trained by groups:
  each group's epochs, its own scalars as ``group/NNN/valid_total``, ...);
* the final per-task metrics (``metric/TASK/NAME``), their means, each baseline's and delta_m against it;
* the run directory as artifacts (MLflow) when the run is complete.

Task names keep the characters the stores accept (others become ``_``); tasks whose names would then be the
same are told apart by a suffix (:class:`TaskNames`).

A tracker is a :class:`Tracker` (three methods); the names are registered in ``multitask.registry.TRACKERS``.
See docs/tracking.md.
"""

from multitask.tracking._base import (
    RunTracking,
    TaskNames,
    Tracker,
    Tracking,
    epoch_values,
    final_values,
    flat_params,
    start_tracking,
)
from multitask.tracking._mlflow import MLflowTracker
from multitask.tracking._tensorboard import TensorBoardTracker

__all__ = [
    "MLflowTracker",
    "RunTracking",
    "TaskNames",
    "TensorBoardTracker",
    "Tracker",
    "Tracking",
    "epoch_values",
    "final_values",
    "flat_params",
    "start_tracking",
]
