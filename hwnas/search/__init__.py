"""Multi-objective evolutionary search (NSGA-II) over integer gene matrices of a search space."""

from hwnas.search.hypervolume import hypervolume, hypervolume_2d, normalise, reference_point
from hwnas.search.nsga2 import (NSGA2, NSGA2Config, SearchResult, constrained_ranks, crowding_distance,
                                non_dominated_ranks, pareto_mask)
from hwnas.search.problem import Constraint, Objective, SearchProblem

__all__ = [
    "NSGA2", "NSGA2Config", "SearchResult", "SearchProblem", "Objective", "Constraint",
    "non_dominated_ranks", "crowding_distance", "constrained_ranks", "pareto_mask",
    "hypervolume", "hypervolume_2d", "normalise", "reference_point",
]
