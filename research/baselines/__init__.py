"""Baseline scoring (research only, not what the marketplace pays with): outlier flags, the
projection score and the ``SketchScorer`` that used them, and reference valuations (exact and
GTG Shapley, leave-one-out) to measure the paying rule against.

The package's own array code (sketches, FedAvg, the ``RoundScorer`` base) is imported from
``marketplace`` where it is used, not re-exported here.
"""

from research.baselines.contribution import (
    exact_shapley,
    gtg_shapley,
    leave_one_out,
    projection_scores,
    rankdata,
    spearman,
)
from research.baselines.flags import (
    coordinate_median,
    duplicate_flags,
    median_distance_flags,
    median_distances,
    multi_krum_flags,
    norm_flags,
    opposing_flags,
    unit_rows,
)
from research.baselines.sketch_scorer import SketchScorer

__all__ = [
    "SketchScorer",
    "coordinate_median",
    "duplicate_flags",
    "exact_shapley",
    "gtg_shapley",
    "leave_one_out",
    "median_distance_flags",
    "median_distances",
    "multi_krum_flags",
    "norm_flags",
    "opposing_flags",
    "projection_scores",
    "rankdata",
    "spearman",
    "unit_rows",
]
