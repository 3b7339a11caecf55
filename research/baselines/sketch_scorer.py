"""The first paying scorer, kept as a baseline for the benchmarks: median-distance (or Multi-Krum)
flags and projection scores on CountSketches of the updates. It pays nobody in the marketplace
(the Gram rule, :mod:`marketplace.rule`, does)."""

from __future__ import annotations

from typing import Literal

import numpy as np

from marketplace.protocol.sketch import sketch_rows
from marketplace.rule.strategy import InlierFedAvg, RoundScorer
from research.baselines.contribution import projection_scores
from research.baselines.flags import (
    duplicate_flags,
    median_distance_flags,
    median_distances,
    multi_krum_flags,
    norm_flags,
    opposing_flags,
)

#: Sketch width of the baseline (the paying rule's K comes from the project's verifier).
DEFAULT_SKETCH_DIM = 4096


class SketchScorer(InlierFedAvg, RoundScorer):
    """Default scorer: flags and scores on CountSketches, aggregates the full updates.

    Args:
        threshold: median-distance flag threshold (see ``median_distance_flags``).
        sketch_dim: sketch width D'; ``None`` works on the full updates.
        seed: public per-project sketch seed.
        method: ``"median"`` (median-distance flags) or ``"krum"`` (Multi-Krum, ``krum_f``).
        krum_f: number of rows Multi-Krum flags.
        min_norm_ratio: also flag lazy rows with norm below this fraction of the median norm
            (``norm_flags``); 0 disables.
        flag_duplicates: also flag (near-)identical active rows (copies, Sybils).
        flag_opposing: also flag rows pointing against the median (``opposing_flags``).
        submission_order: per row, its position in the submission sequence; when given, the
            earliest of a group of duplicates is not flagged (see ``duplicate_flags``).
        duplicate_tol: relative tolerance of ``duplicate_flags``.
        weighting: ``"samples"`` weights FedAvg by reported sample counts, ``"equal"`` not.
    """

    def __init__(
        self,
        threshold: float = 2.0,
        sketch_dim: int | None = DEFAULT_SKETCH_DIM,
        seed: int = 0,
        method: Literal["median", "krum"] = "median",
        krum_f: int = 1,
        directions: bool = False,
        min_norm_ratio: float = 0.1,
        max_norm_ratio: float = float("inf"),
        flag_duplicates: bool = True,
        duplicate_tol: float = 1e-3,
        weighting: Literal["samples", "equal"] = "samples",
        submission_order: np.ndarray | None = None,
        flag_opposing: bool = True,
    ) -> None:
        if method not in ("median", "krum"):
            raise ValueError(f"unknown method {method!r}")
        self.threshold = threshold
        self.sketch_dim = sketch_dim
        self.seed = seed
        self.method = method
        self.krum_f = krum_f
        self.directions = directions
        self.min_norm_ratio = min_norm_ratio
        self.max_norm_ratio = max_norm_ratio
        self.flag_duplicates = flag_duplicates
        self.duplicate_tol = duplicate_tol
        self.weighting = weighting
        self.submission_order = submission_order
        self.flag_opposing = flag_opposing

    def summarize(self, updates: np.ndarray) -> np.ndarray:
        if self.sketch_dim is None:
            return np.asarray(updates, dtype=np.float64)
        return sketch_rows(updates, self.sketch_dim, self.seed)

    def flag(self, summaries: np.ndarray, active_mask: np.ndarray) -> np.ndarray:
        if self.method == "krum":
            flags = multi_krum_flags(summaries, active_mask, self.krum_f)
        else:
            flags = median_distance_flags(summaries, active_mask, self.threshold, self.directions)
        if self.flag_opposing:
            flags = flags | opposing_flags(summaries, active_mask)
        if self.min_norm_ratio > 0 or self.max_norm_ratio < float("inf"):
            flags = flags | norm_flags(summaries, active_mask, self.min_norm_ratio, self.max_norm_ratio)
        if self.flag_duplicates:
            flags = flags | duplicate_flags(summaries, active_mask, self.duplicate_tol, self.submission_order)
        return flags

    def diagnostics(self, summaries: np.ndarray, active_mask: np.ndarray) -> dict[str, np.ndarray]:
        """``median_distance``: each row's distance to the coordinate-wise median (sketch space)."""
        return {"median_distance": median_distances(summaries, active_mask)}

    def score(self, summaries: np.ndarray, active_mask: np.ndarray, flags: np.ndarray) -> np.ndarray:
        return projection_scores(summaries, active_mask, flags)
