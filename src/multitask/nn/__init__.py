"""Deep architectures: ``nn.Module``s whose forward returns ``{task: output}``.

An architecture also says which parameters are shared (:meth:`shared_parameters`) and which belong to each
task (:meth:`task_parameters`), and hands out the shared representation (:meth:`representation`, then
:meth:`heads`), so that balancing methods need nothing architecture-specific.
"""

from multitask.nn._base import HEADS, Architecture, InputEncoders, TaskHeads, check_tasks
from multitask.nn._build import build_model
from multitask.nn._conv import ConvEncoder
from multitask.nn._hard_sharing import HardSharing, InputSpec
from multitask.nn._mlp import ACTIVATIONS, MLP, NORMS

__all__ = [
    "ACTIVATIONS",
    "HEADS",
    "MLP",
    "NORMS",
    "Architecture",
    "ConvEncoder",
    "HardSharing",
    "InputEncoders",
    "InputSpec",
    "TaskHeads",
    "build_model",
    "check_tasks",
]
