"""multitask: train one model on several related tasks, and know per task whether it helped."""

from multitask.errors import CheckpointError, ConfigError, DataError, MultitaskError
from multitask.tasks import Task

__all__ = ["CheckpointError", "ConfigError", "DataError", "MultitaskError", "Task"]
__version__ = "0.1.0"
