"""Fronts of task trade-offs: one preference-conditioned model (COSMOS) against one model per fixed weighting.

See docs/pareto.md and ``multitask pareto``.
"""

from multitask.pareto._conditioned import Cosmos, PreferenceConditioned
from multitask.pareto._front import hypervolume, nondominated, reference_point, simplex_grid
from multitask.pareto._sweep import ParetoResult, load_conditioned, pareto

__all__ = [
    "Cosmos",
    "ParetoResult",
    "PreferenceConditioned",
    "hypervolume",
    "load_conditioned",
    "nondominated",
    "pareto",
    "reference_point",
    "simplex_grid",
]
