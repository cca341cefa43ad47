"""Task affinity of a deep model's training: which tasks help each other (see docs/affinity.md)."""

from multitask.affinity._grouping import Partition, best_partition, partition_names, partition_score
from multitask.affinity._measures import (
    MEASURES,
    AffinityResult,
    Recorder,
    affinity,
    cluster_order,
    gradient_affinity,
    lookahead_affinity,
)
from multitask.affinity._plot import plot_heatmap, read_csv, write_csv

__all__ = [
    "MEASURES",
    "AffinityResult",
    "Partition",
    "Recorder",
    "affinity",
    "best_partition",
    "cluster_order",
    "gradient_affinity",
    "lookahead_affinity",
    "partition_names",
    "partition_score",
    "plot_heatmap",
    "read_csv",
    "write_csv",
]
