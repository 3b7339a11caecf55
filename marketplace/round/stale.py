"""Stale rows: a revealed row that nearly copies a row revealed in an earlier round of the project.

The scoring rule compares a round's rows with each other only, so a trainer replaying a row revealed earlier
(another trainer's update, or its own) would be paid like an honest one. ``MarketDisputes.challengeStale`` lets
anyone show such a replay before the round is finalized; this module finds them and builds the evidence.

The test is the contract's, in exact integers at scale ``2**13`` (:func:`published_row`): over the K sketch entries,
``sum((a_k - b_k)**2) <= NEAR_COPY_DIST`` (``2**20``, the rule's ``dup_dist = 2**-6`` at scale ``2**26``) against
another trainer's row, ``<= OWN_COPY_DIST`` (``2**16``: ``2**-10``) against the trainer's own earlier row (a trainer's
honest rows of successive rounds measured at cosine up to 0.990: only an almost identical one counts) and against the
owner's reference.

The rows a round is checked against (its *history*) are those of the project's earlier rounds: the aggregator node
keeps them as it finalizes rounds (:func:`earlier_rows`); a node started mid-project, and ``marketplace project
challenge-stale``, rebuild them from the chain and IPFS (:func:`project_history`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from marketplace.adapters.chain.market import (
    REFERENCE_AUTHOR,
    DisputedRow,
    MarketClient,
    RevealedReference,
    StaleChallenge,
    StaleEvidence,
)
from marketplace.protocol.commitment import InvalidPublishedRow, published_row, row_from_ints
from marketplace.round.collect import RoundInputs, apply_published_rows, mark_stale
from marketplace.round.prove import RowProver

log = logging.getLogger(__name__)

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


#: Collects one finalized round of a project, given its number: its submissions fetched, opened and checked (e.g.
#: :func:`~marketplace.round.collect.collect_round` with the caller's store and update opener).
RoundCollector = Callable[[int], RoundInputs]


def earlier_rows(inputs: RoundInputs, reference: np.ndarray | None) -> list[EarlierRow]:
    """The rows of a finalized round that later rounds' rows are checked against: every valid row of ``inputs`` (a
    matching update or a row published in a dispute; a row shown stale is not valid), its author the trainer's
    index, then the owner's reference row of the round (``reference``, K + 2 values; None: it revealed none) as
    :data:`REFERENCE_AUTHOR`. The rows are copies."""
    rows = [EarlierRow(inputs.round, int(i), inputs.rows[i].copy()) for i in np.flatnonzero(inputs.valid)]
    if reference is not None:
        rows.append(EarlierRow(inputs.round, REFERENCE_AUTHOR, np.array(reference, dtype=np.float64)))
    return rows


def project_history(
    market: MarketClient, collect: RoundCollector, project_id: int, before_round: int, sketch_width: int
) -> list[EarlierRow]:
    """The rows revealed in rounds ``0 .. before_round - 1`` of ``project_id`` (all finalized) that a row of round
    ``before_round`` is checked against, rebuilt from the chain and IPFS; by round, each round's as
    :func:`earlier_rows` orders them:

    - each round's valid rows as ``collect(round)`` finds them, with the rows its rejected trainers published in
      disputes (``RejectionDisputed``, :func:`apply_published_rows`: a collector that already added them loses
      nothing, one that did not gains them) and without the rows shown stale in it (``StaleChallenged``,
      :func:`mark_stale`: each nearly copies a row already here, and as evidence it would let a copier's row stand
      for its victim's: with the looser bar against the victim's later rows);
    - the owner's reference of each round that has one (``ReferenceRevealed``), its row (``sketch_width`` + 2
      integers) parsed as untrusted input (:func:`row_from_ints`).

    A submission whose row is unknown here (its update rejected by ``collect``: not fetched, not opened, not matching
    its commitment; and no row published) and a reference row outside the box are left out, each with a warning
    naming it: never an error. What ``collect`` raises (the caller's own IPFS node down) and what
    :func:`apply_published_rows` raises (a published row no proof can contain) propagates."""
    disputed = market.disputed_rows(project_id)
    challenged = market.stale_challenges(project_id)
    history: list[EarlierRow] = []
    references = {ref.round: ref for ref in market.revealed_references(project_id)}
    for round_ in range(before_round):
        inputs = _known_rows(collect(round_), disputed, challenged)
        history += earlier_rows(inputs, _reference_row(references.get(round_), sketch_width))
    return history


def _known_rows(inputs: RoundInputs, disputed: list[DisputedRow], challenged: list[StaleChallenge]) -> RoundInputs:
    """``inputs`` with its round's published rows (of ``disputed``) and without its rows shown stale (of
    ``challenged``); every other submission without a row is logged as left out."""
    inputs = apply_published_rows(inputs, disputed)
    stale = {c.trainer: "shown stale" for c in challenged if c.round == inputs.round}
    for trainer, why in inputs.rejected.items():
        if trainer not in stale:
            log.warning(
                "project %d: %s's row of round %d is not in the stale history (its update: %s)",
                inputs.project_id, trainer, inputs.round, why,
            )  # fmt: skip
    return mark_stale(inputs, stale) if stale else inputs


def _reference_row(reference: RevealedReference | None, sketch_width: int) -> np.ndarray | None:
    """The committed row of a revealed ``reference`` (None for none, and for a row outside the box: logged)."""
    if reference is None:
        return None
    try:
        return row_from_ints(reference.row, sketch_width)
    except InvalidPublishedRow as exc:
        log.warning("project %d: the reference of round %d is not in the stale history: %s", reference.project_id,
                    reference.round, exc)  # fmt: skip
        return None


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
