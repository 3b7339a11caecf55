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

from marketplace.rule.aggregate import aggregation_weights, fedavg


@dataclass(frozen=True)
class RoundResult:
    """Outcome of one round.

    Attributes:
        flags: bool (N,), True = flagged outlier (never True for inactive rows).
        scores: float64 (N,), paying score shares (>= 0, 0 for flagged/inactive, sum 1 or 0).
        weights: float64 (N,), each update's coefficient in the aggregate (normalised FedAvg weights, or the
            protocol step's weights times its stretch).
        aggregate: float32 (D,) aggregated update, or None = no update this round.
        details: diagnostics (e.g. distances to the median), not part of the protocol.
        admitted: bool (N,), unpaid updates the aggregate takes too (the protocol's step,
            :meth:`~marketplace.rule.scorer.GramScorer.run_round`), or None: a scorer whose aggregate takes none.
    """

    flags: np.ndarray
    scores: np.ndarray
    weights: np.ndarray
    aggregate: np.ndarray | None
    details: dict[str, np.ndarray] = field(default_factory=dict)
    admitted: np.ndarray | None = None


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
