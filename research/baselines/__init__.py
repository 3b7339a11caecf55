"""Pure-numpy round scoring: sketches, outlier flags, contribution scores, FedAvg."""

from marketplace.protocol.sketch import sketch, sketch_params, sketch_rows
from marketplace.rule.aggregate import aggregation_weights, apply_update, fedavg
from marketplace.rule.strategy import RoundResult, RoundScorer
from research.baselines.contribution import (
    exact_shapley,
    gtg_shapley,
    leave_one_out,
    projection_scores,
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
    "RoundResult",
    "RoundScorer",
    "SketchScorer",
    "aggregation_weights",
    "apply_update",
    "coordinate_median",
    "duplicate_flags",
    "exact_shapley",
    "fedavg",
    "gtg_shapley",
    "leave_one_out",
    "median_distance_flags",
    "median_distances",
    "multi_krum_flags",
    "norm_flags",
    "opposing_flags",
    "projection_scores",
    "sketch",
    "sketch_params",
    "sketch_rows",
    "spearman",
    "unit_rows",
]
