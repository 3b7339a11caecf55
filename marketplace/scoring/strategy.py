"""Round scorers: the protocol steps flag -> score -> aggregate behind one interface.

Like Flower's ``Strategy``, a :class:`RoundScorer` is transport-agnostic: it sees only
arrays. The aggregator (on- or off-chain) builds the N x D matrix of flat updates in
trainer order, with a zero row and ``active=False`` for trainers that did not submit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from marketplace.scoring.aggregate import aggregation_weights, fedavg
from marketplace.scoring.contribution import projection_scores
from marketplace.scoring.flags import (
    duplicate_flags,
    median_distance_flags,
    median_distances,
    multi_krum_flags,
    norm_flags,
    opposing_flags,
)
from marketplace.scoring.sketch import DEFAULT_SKETCH_DIM, sketch_rows


@dataclass(frozen=True)
class RoundResult:
    """Outcome of one round.

    Attributes:
        flags: bool (N,), True = flagged outlier (never True for inactive rows).
        scores: float64 (N,), paying score shares (>= 0, 0 for flagged/inactive, sum 1 or 0).
        weights: float64 (N,), the normalised FedAvg weights actually used.
        aggregate: float32 (D,) aggregated update, or None = no update this round.
        details: diagnostics (e.g. distances to the median), not part of the protocol.
    """

    flags: np.ndarray
    scores: np.ndarray
    weights: np.ndarray
    aggregate: np.ndarray | None
    details: dict[str, np.ndarray] = field(default_factory=dict)


class RoundScorer(ABC):
    """Abstract round scorer; subclasses implement the three protocol steps."""

    def summarize(self, updates: np.ndarray) -> np.ndarray:
        """The representation ``flag`` and ``score`` work on (identity by default)."""
        return np.asarray(updates, dtype=np.float64)

    @abstractmethod
    def flag(self, summaries: np.ndarray, active_mask: np.ndarray) -> np.ndarray:
        """Step 1: bool (N,) outlier flags; must be False for inactive rows."""

    @abstractmethod
    def score(self, summaries: np.ndarray, active_mask: np.ndarray, flags: np.ndarray) -> np.ndarray:
        """Step 2: float (N,) paying scores, >= 0 and 0 for flagged/inactive rows."""

    @abstractmethod
    def aggregate(
        self,
        updates: np.ndarray,
        active_mask: np.ndarray,
        flags: np.ndarray,
        num_samples: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Step 3: (weights, aggregated full update or None)."""

    def run_round(
        self,
        updates: np.ndarray,
        active_mask: np.ndarray | None = None,
        num_samples: np.ndarray | None = None,
    ) -> RoundResult:
        """Summarise, flag, score and aggregate one round of N x D updates."""
        u, active, summaries = self._prepare(updates, active_mask)
        flags = self.flag(summaries, active) & active
        scores = self.score(summaries, active, flags)
        weights, agg = self.aggregate(u, active, flags, num_samples)
        details = self.diagnostics(summaries, active)
        return RoundResult(flags=flags, scores=scores, weights=weights, aggregate=agg, details=details)

    def _prepare(
        self, updates: np.ndarray, active_mask: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``run_round``'s inputs: the updates as an array, the active mask (default: all) and the summaries."""
        u = np.asarray(updates)
        active = np.ones(u.shape[0], dtype=bool) if active_mask is None else np.asarray(active_mask, bool)
        return u, active, self.summarize(u)

    def diagnostics(self, summaries: np.ndarray, active_mask: np.ndarray) -> dict[str, np.ndarray]:
        """Optional extra arrays for :attr:`RoundResult.details` (none by default)."""
        return {}


class InlierFedAvg:
    """Step 3 shared by the scorers: FedAvg of the inliers' full updates, weighted by reported
    sample counts when ``weighting == "samples"``, equally otherwise."""

    weighting: Literal["samples", "equal"]

    def aggregate(
        self,
        updates: np.ndarray,
        active_mask: np.ndarray,
        flags: np.ndarray,
        num_samples: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        counts = num_samples if self.weighting == "samples" else None
        return aggregation_weights(active_mask, flags, counts), fedavg(updates, active_mask, flags, counts)


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

