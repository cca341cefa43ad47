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
from multitask.affinity._select import (
    AuxiliarySelection,
    SubsetScore,
    draw_subset,
    draw_subsets,
    inclusion_probabilities,
    relatedness,
    score_subset,
    select_auxiliary,
    subset_probability,
)

__all__ = [
    "MEASURES",
    "AffinityResult",
    "AuxiliarySelection",
    "Partition",
    "Recorder",
    "SubsetScore",
    "affinity",
    "best_partition",
    "cluster_order",
    "draw_subset",
    "draw_subsets",
    "gradient_affinity",
    "inclusion_probabilities",
    "lookahead_affinity",
    "partition_names",
    "partition_score",
    "plot_heatmap",
    "read_csv",
    "relatedness",
    "score_subset",
    "select_auxiliary",
    "subset_probability",
    "write_csv",
]
