"""Reading users' tables (wide, long, per-task), preprocessing, and sampling batches across tasks."""

from multitask.data.arrays import Arrays, Batch
from multitask.data.spec import BuiltinData, DataSpec, Source

__all__ = ["Arrays", "Batch", "BuiltinData", "DataSpec", "Source"]
