"""The project owner's reference row on chain (docs/design/robust-reference.md, sections 2, 3 and 6).

The owner's reference is a committed row like a trainer's (:func:`marketplace.protocol.commitment.commit_update`
of its own update on its validation data, from the round's global model, sketched with the project's public seed).
It is sealed (:func:`marketplace.protocol.seal.reference_seal`, a salt derived from the owner's key) and committed in
the round's commit phase (``commitReference``), then revealed in the reveal phase with the row's integers and a row
proof (``revealReference``): the market checks the row's box and the proof that it hashes to the commitment, and
hands the commitment to the verifier at finalization, so the round's proof must be made with this very row.

Readers (the aggregator, ``marketplace verify`` and ``marketplace audit``) take the row from the
``ReferenceRevealed`` event and check it against the commitment the market recorded (``referenceOf``):
:func:`revealed_reference`. Everything read from chain is untrusted input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from eth_account.signers.local import LocalAccount

from marketplace.adapters.chain.market import MarketClient
from marketplace.protocol.commitment import commitment_bytes, published_row, row_from_ints
from marketplace.protocol.seal import RoundAddress, derive_reference_salt, reference_seal
from marketplace.round.prove import RowProver


class ReferenceMismatch(ValueError):
    """The reference row published on chain does not hash to the commitment the market recorded (only possible
    with a verifier whose row proofs prove nothing): no proof can contain it."""


@dataclass(frozen=True)
class SealedReference:
    """An owner's reference row (K + 2 grid values), its 32-byte commitment, the seal's salt and the seal."""

    row: np.ndarray
    commitment: bytes
    salt: bytes
    seal: bytes


def seal_reference(account: LocalAccount, where: RoundAddress, row: np.ndarray) -> SealedReference:
    """Seals the reference ``row`` of the owner ``account`` for the round ``where`` (salt from its key: the same
    every time, so a restarted owner finds it again)."""
    values = np.asarray(row, dtype=np.float64).reshape(-1)
    commitment = commitment_bytes(values)
    salt = derive_reference_salt(account, where, commitment)
    return SealedReference(values, commitment, salt, reference_seal(commitment, account.address, where, salt))


def commit_reference(market: MarketClient, project_id: int, round_: int, row: np.ndarray) -> SealedReference:
    """Seals ``row`` and commits it as ``market``'s account (the project's owner) for ``round_``; reverts as
    ``commitReference`` says (``Unauthorized``, ``SubmissionClosed``, ``AlreadyCommitted``, ...)."""
    sealed = seal_reference(market.chain.account, market.round_address(project_id, round_), row)
    market.commit_reference(project_id, round_, sealed.seal)
    return sealed


def reveal_reference(
    market: MarketClient, project_id: int, round_: int, sealed: SealedReference, prover: RowProver
) -> Any:
    """Reveals ``sealed`` (its commitment, salt, the row's integers and ``prover``'s row proof) as ``market``'s
    account; reverts as ``revealReference`` says. Returns the receipt."""
    proof = prover.prove_row(sealed.row)
    return market.reveal_reference(project_id, round_, sealed.commitment, sealed.salt, published_row(sealed.row), proof)


def revealed_reference(market: MarketClient, project_id: int, round_: int, k: int) -> np.ndarray | None:
    """The owner's reference row of ``round_`` (K + 2 grid values), or None if it revealed none: the row of the
    ``ReferenceRevealed`` event whose commitment is the one the market recorded (``referenceOf``), checked as
    untrusted input (:func:`~marketplace.protocol.commitment.row_from_ints` raises
    :class:`~marketplace.protocol.commitment.InvalidPublishedRow`; a row that does not hash to the recorded
    commitment raises :class:`ReferenceMismatch`)."""
    recorded = market.reference_of(project_id, round_)
    if not recorded.revealed:
        return None
    events = [e for e in market.revealed_references(project_id, round_) if e.commitment == recorded.commitment]
    if not events:
        raise ReferenceMismatch(f"no ReferenceRevealed event of round {round_} of project {project_id} carries its row")
    row = row_from_ints(events[-1].row, k)
    if commitment_bytes(row) != recorded.commitment:
        raise ReferenceMismatch(
            f"the reference row of round {round_} of project {project_id} does not hash to its recorded commitment"
        )
    return row
