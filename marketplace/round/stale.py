"""Stale rows: a revealed row that nearly copies a row revealed in an earlier round of the project.

The scoring rule compares a round's rows with each other only, so a trainer replaying a row revealed earlier
(another trainer's update, or its own) would be paid like an honest one. ``MarketDisputes.challengeStale`` lets
anyone show such a replay before the round is finalized; this module finds them and builds the evidence.

The test is the contract's, in exact integers at scale ``2**13`` (:func:`published_row`): over the K sketch entries,
``sum((a_k - b_k)**2) <= NEAR_COPY_DIST`` (``2**20``, the rule's ``dup_dist = 2**-6`` at scale ``2**26``) against
another trainer's row, ``<= OWN_COPY_DIST`` (``2**16``: ``2**-10``) against the trainer's own earlier row (a trainer's
honest rows of successive rounds measured at cosine up to 0.990: only an almost identical one counts) and against the
owner's reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from marketplace.adapters.chain.market import REFERENCE_AUTHOR, MarketClient, StaleEvidence
from marketplace.protocol.commitment import published_row
from marketplace.round.prove import RowProver

#: ``MarketDisputes.NEAR_COPY_DIST``: the bar against another author's earlier row (scale 2^26).
NEAR_COPY_DIST = 2**20
#: ``MarketDisputes.OWN_COPY_DIST``: the bar against the trainer's own earlier row (scale 2^26).
OWN_COPY_DIST = 2**16


@dataclass(frozen=True)
class EarlierRow:
    """A row revealed in ``round`` by trainer number ``author`` (:data:`REFERENCE_AUTHOR`: the owner's reference):
    the committed row (K + 2 values, real)."""

    round: int
    author: int
    row: np.ndarray


@dataclass(frozen=True)
class StaleMatch:
    """Trainer number ``index`` (``trainer``) revealed ``row``, a near copy of ``earlier`` (squared distance
    ``distance`` at scale 2^26, at most ``bar``)."""

    trainer: str
    index: int
    row: np.ndarray
    earlier: EarlierRow
    distance: int
    bar: int


def squared_distance(a: np.ndarray, b: np.ndarray) -> int:
    """``sum((a_k - b_k)**2)`` over the K sketch entries of two committed rows, in the integers the contract sees."""
    if a.shape != b.shape or a.ndim != 1 or a.size < 3:
        raise ValueError(f"two committed rows of the same width are needed, got shapes {a.shape} and {b.shape}")
    k = a.size - 2
    x, y = published_row(a)[:k], published_row(b)[:k]
    return sum((p - q) ** 2 for p, q in zip(x, y, strict=True))


def near_copy_bar(index: int, author: int) -> int:
    """The contract's bar for trainer number ``index`` against a row of ``author``: the own bar against its own row
    and against the owner's reference (which costs the owner nothing: with the looser bar it could launder an honest
    trainer's earlier row into evidence against its later ones)."""
    return OWN_COPY_DIST if author in (index, REFERENCE_AUTHOR) else NEAR_COPY_DIST


def stale_match(trainer: str, index: int, row: np.ndarray, history: Iterable[EarlierRow]) -> StaleMatch | None:
    """The closest earlier row of ``history`` that ``row`` (trainer number ``index``'s) nearly copies, or None."""
    best: StaleMatch | None = None
    for earlier in history:
        distance = squared_distance(row, earlier.row)
        bar = near_copy_bar(index, earlier.author)
        if distance <= bar and (best is None or distance < best.distance):
            best = StaleMatch(trainer, index, row, earlier, distance, bar)
    return best


def find_stale(
    trainers: Sequence[str], rows: np.ndarray, valid: np.ndarray, history: Iterable[EarlierRow]
) -> list[StaleMatch]:
    """Every valid row of a round (``rows[i]``, trainer ``trainers[i]``) that nearly copies an earlier row."""
    earlier = list(history)
    found = (stale_match(t, i, rows[i], earlier) for i, t in enumerate(trainers) if valid[i])
    return [m for m in found if m is not None]


def stale_evidence(market: MarketClient, project_id: int, match: StaleMatch, prover: RowProver) -> StaleEvidence:
    """The evidence of ``match`` for ``challengeStale``: both rows with their row proofs (``prover``: the project's
    row prover) and, for a trainer's earlier row, its round's commitments in trainer order."""
    earlier = match.earlier
    is_reference = earlier.author == REFERENCE_AUTHOR
    commitments = () if is_reference else tuple(market.round_commitments(project_id, earlier.round))
    return StaleEvidence(
        trainer=match.trainer,
        row=tuple(published_row(match.row)),
        proof=prover.prove_row(match.row),
        earlier_round=earlier.round,
        author=earlier.author,
        commitments=commitments,
        earlier_row=tuple(published_row(earlier.row)),
        earlier_proof=prover.prove_row(earlier.row),
    )


def shown_stale(market: MarketClient, project_id: int, round_: int) -> dict[str, str]:
    """The trainers shown stale on chain in ``round_`` of ``project_id`` (``StaleChallenged`` events), each with why:
    out of the round as a rejection that stands (:func:`~marketplace.round.collect.mark_stale`), for the aggregator
    that finalizes it and for the audit that re-derives it alike."""
    return {
        c.trainer: f"stale: a near copy of a row revealed in round {c.earlier_round} (shown by {c.challenger})"
        for c in market.stale_challenges(project_id, round_)
    }
