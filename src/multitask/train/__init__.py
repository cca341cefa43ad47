"""The trainer: one loop (:func:`fit`), its options, checkpoints, and running under torchrun."""

from multitask.train._balancer import Balancer, GradientBalancer, StaticWeights
from multitask.train._checkpoint import (
    CHECKPOINT_FILE,
    LOG_FILE,
    MODEL_CONFIG_FILE,
    MODEL_FILE,
    load_checkpoint,
    load_model,
    save_checkpoint,
    save_model,
)
from multitask.train._distributed import Distributed, is_main_process, select_device, setup_distributed
from multitask.train._losses import masked_loss_sum, task_loss_sums
from multitask.train._trainer import FitResult, fit, validation_losses
from multitask.train.config import TrainConfig

__all__ = [
    "CHECKPOINT_FILE",
    "LOG_FILE",
    "MODEL_CONFIG_FILE",
    "MODEL_FILE",
    "Balancer",
    "Distributed",
    "FitResult",
    "GradientBalancer",
    "StaticWeights",
    "TrainConfig",
    "fit",
    "is_main_process",
    "load_checkpoint",
    "load_model",
    "masked_loss_sum",
    "save_checkpoint",
    "save_model",
    "select_device",
    "setup_distributed",
    "task_loss_sums",
    "validation_losses",
]
