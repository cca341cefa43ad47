"""Task affinity: which tasks help each other (see docs/affinity.md).

Measured while a deep model trains (``gradient``, ``lookahead``: :func:`affinity`), as the ground truth of
pairwise trainings (``transfer``: :func:`transfer_gain`), or read off a fitted linear model (``mtrl``,
``clustered``: :func:`linear_affinity`).
"""

from multitask.affinity._grouping import Partition, best_partition, partition_names, partition_score
from multitask.affinity._linear import LINEAR_MEASURES, LinearAffinity, linear_affinity
from multitask.affinity._measures import (
    DEEP_MEASURES,
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
from multitask.affinity._transfer import MAX_TASKS, TransferResult, transfer_gain

__all__ = [
    "DEEP_MEASURES",
    "LINEAR_MEASURES",
    "MAX_TASKS",
    "MEASURES",
    "AffinityResult",
    "AuxiliarySelection",
    "LinearAffinity",
    "Partition",
    "Recorder",
    "SubsetScore",
    "TransferResult",
    "affinity",
    "best_partition",
    "cluster_order",
    "draw_subset",
    "draw_subsets",
    "gradient_affinity",
    "inclusion_probabilities",
    "linear_affinity",
    "lookahead_affinity",
    "partition_names",
    "partition_score",
    "plot_heatmap",
    "read_csv",
    "relatedness",
    "score_subset",
    "select_auxiliary",
    "subset_probability",
    "transfer_gain",
    "write_csv",
]
