"""Arrival order: the order of a round's slots, and how per-trainer values reach the verifier.

A round's slots are the project's trainers in **arrival order**: those who committed a submission,
in the order the chain accepted their commits (the market numbers them: ``arrival`` 1, 2, ...), then
the others in trainer order. A trainer that committed and did not reveal keeps its slot, empty.
The duplicate rule keeps the earliest of two near-identical updates, so the order is part of the
rule; ``TrainingMarket.finalizeRound`` builds the same order on chain when it hands the
per-trainer values to the verifier, and every off-chain party (aggregator, audit, verify, web)
uses these functions to do the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")

#: The commitment of an empty slot as the contract hands it to the verifier.
EMPTY_COMMITMENT = b"\0" * 32


class Arrival(Protocol):
    """What ordering needs of a commit: who, and its position in the round (from 1)."""

    @property
    def trainer(self) -> str: ...
    @property
    def arrival(self) -> int: ...


def arrival_order(trainers: Sequence[str], commits: Iterable[Arrival]) -> list[int]:
    """Trainer indices in arrival order: those with a commit, by their ``arrival`` position, then the
    others in trainer order. This is the order in which ``finalizeRound`` hands per-trainer values
    to the verifier."""
    index = {t: i for i, t in enumerate(trainers)}
    arrived = [index[c.trainer] for c in sorted(commits, key=lambda c: c.arrival)]
    seen = set(arrived)
    return arrived + [i for i in range(len(trainers)) if i not in seen]


def in_arrival_order(values: Sequence[T], order: Sequence[int]) -> list[T]:
    """``values`` (one per trainer, in trainer order) rearranged in arrival ``order``."""
    return [values[i] for i in order]


def verifier_inputs(
    commitments: Sequence[bytes],
    scores: Sequence[int],
    flags: Sequence[bool],
    rejected: Sequence[bool],
    order: Sequence[int],
) -> tuple[list[bytes], list[int], list[bool]]:
    """Per-trainer values (in trainer order) as ``finalizeRound`` hands them to the verifier: in
    arrival ``order``, and a rejected submission as an empty slot (commitment 0, not flagged)."""
    c = [EMPTY_COMMITMENT if r else x for x, r in zip(commitments, rejected, strict=True)]
    f = [x and not r for x, r in zip(flags, rejected, strict=True)]
    return in_arrival_order(c, order), in_arrival_order(scores, order), in_arrival_order(f, order)
