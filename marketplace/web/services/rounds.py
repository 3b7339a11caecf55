"""Read model of finalized rounds: the rounds of a project, one round's public values and proof as
recorded on chain, and the project's verifier's answer for them (an ``eth_call``, costs nothing).
The values are those ``finalizeRound`` handed the verifier, the round's tag among them, computed
by the function the aggregator proves with (:func:`marketplace.round.prove.recorded_verifier_inputs`). A round's
owner's reference row (:meth:`RoundService.reference`) is read from the chain too (``MarketLens.referenceOf``), and
what it changed in the round's pay (:meth:`RoundService.reference_changes`) is recomputed from public data
(:mod:`~marketplace.web.services.reference_effects`, through the round's one recomputation,
:class:`~marketplace.web.services.round_recompute.RecomputeService`).

The proof bytes come from the calldata of the transaction that finalized the round, so a round
can be checked without IPFS.
"""

from __future__ import annotations

from typing import Any

from eth_utils import keccak
from web3.exceptions import Web3RPCError

from marketplace.adapters.chain.errors import ChainError
from marketplace.adapters.chain.market import FinalizedRound, ReferenceRecord, round_verifier
from marketplace.roles.verify import ProofUnavailable, check_proof, proof_from_calldata
from marketplace.round.prove import VerifierInputs, recorded_verifier_inputs
from marketplace.web.errors import Attempt, refusal
from marketplace.web.schemas import (
    OwnerReference,
    ReferenceChanges,
    RoundProof,
    RoundReference,
    RoundView,
    VerifyResult,
)
from marketplace.web.services.context import MarketContext
from marketplace.web.services.errors import NotFound, Rejected
from marketplace.web.services.projects import ProjectService
from marketplace.web.services.reference_effects import no_reference, unavailable, undecided
from marketplace.web.services.round_recompute import RecomputeService


class RoundService:
    """Finalized rounds of one deployment's projects."""

    def __init__(self, context: MarketContext, projects: ProjectService, recomputations: RecomputeService) -> None:
        self.context = context
        self.projects = projects
        self.recomputations = recomputations

    def rounds(self, project_id: int) -> list[RoundView]:
        """The finalized rounds of a project (:class:`NotFound` for an unknown project)."""
        return self.projects.detail(project_id).rounds

    def round(self, project_id: int, round_: int) -> RoundView:
        """One finalized round; :class:`NotFound` if it is not finalized."""
        for view in self.rounds(project_id):
            if view.round == round_:
                return view
        raise NotFound(f"round {round_} of project {project_id} is not finalized")

    def round_proof(self, project_id: int, round_: int) -> RoundProof:
        """The round's public values as recorded on chain and its proof, from the finalize calldata."""
        values, proof, source = self._recorded(project_id, round_)
        return RoundProof(
            project_id=project_id, round=round_, verifier=self.projects.project(project_id).verifier,
            round_tag="0x" + values.tag.hex(), commitments=["0x" + c.hex() for c in values.commitments],
            scores=[str(s) for s in values.scores],
            flags=values.flags, reference="0x" + values.reference.hex(), proof="0x" + proof.hex(), proof_source=source,
            arrival_order=self.context.market.arrival_order(project_id, round_),
        )  # fmt: skip

    def reference(self, project_id: int, round_: int) -> OwnerReference:
        """The owner's reference row of a finalized round as the market records it, said in words
        (:class:`NotFound` if the round is not finalized)."""
        self._round_row(project_id, round_)
        record = self.context.market.reference_of(project_id, round_)
        return OwnerReference(
            project_id=project_id, round=round_, committed=record.committed, revealed=record.revealed,
            seal="0x" + record.seal.hex() if record.committed else None,
            commitment="0x" + record.commitment.hex() if record.revealed else None, status=reference_status(record),
        )  # fmt: skip

    def reference_changes(self, project_id: int, round_: int, client: str = "") -> ReferenceChanges:
        """What the owner's reference changed in the pay of a finalized round, recomputed from public data for
        ``client`` (:class:`NotFound` if the round is not finalized; state ``none`` without any IPFS fetch if the
        owner revealed no reference; :class:`~.errors.Unavailable` when the server runs all the IPFS fetches it
        allows for visitors now)."""
        return self._changes(self.reference(project_id, round_), client)

    def reference_with_changes(self, project_id: int, round_: int, client: str = "") -> RoundReference:
        """:meth:`reference` and :meth:`reference_changes` in one answer."""
        record = self.reference(project_id, round_)
        return RoundReference(**record.model_dump(), effect=self._changes(record, client))

    def _changes(self, record: OwnerReference, client: str) -> ReferenceChanges:
        """What the reference of ``record`` changed: nothing if it was not revealed; else from the round's
        recomputation, or, where that cannot be had, what public data says (the unflagged trainers paid nothing)."""
        if not record.revealed:
            return no_reference(record)
        result = self.recomputations.get(record.project_id, record.round, client)
        if result.unavailable is not None or result.reference is None:
            why = result.unavailable or "the owner's revealed reference row was not found on chain"
            return unavailable(why, self.round(record.project_id, record.round))
        if result.reference.state == "unavailable":  # the rows are public, the reference's outcome is not said
            return result.reference.model_copy(
                update={"undecided": undecided(self.round(record.project_id, record.round))}
            )
        return result.reference

    def verify_round(self, project_id: int, round_: int) -> VerifyResult:
        """``eth_call``s the project's verifier with the round's on-chain values (its tag among them) and proof."""
        verifier = self.projects.project(project_id).verifier
        values, proof, source = self._recorded(project_id, round_)
        valid, gas, error = check_proof(self.context.chain, verifier, *values, proof)
        if error is not None and not valid:
            error = self._refusal_in_words(verifier, values, proof, project_id, round_) or error
        return VerifyResult(
            project_id=project_id,
            round=round_,
            verifier=verifier,
            proof_source=source,
            proof_hash="0x" + keccak(proof).hex(),
            valid=valid,
            gas_estimate=gas,
            error=error,
        )

    def _refusal_in_words(
        self, verifier: str, values: VerifierInputs, proof: bytes, project_id: int, round_: int
    ) -> str | None:
        """Why the verifier's ``verifyRound`` call failed, in words (:func:`marketplace.web.errors.refusal`): the
        call again, its error decoded (None if it now answers, or fails in a way that has no words)."""
        call = round_verifier(self.context.chain, verifier).functions.verifyRound(*values, proof)
        try:
            self.context.chain.call(call)
        except (ChainError, Web3RPCError) as exc:
            words = refusal(exc, Attempt(f"verify round {round_} of project {project_id}", project_id))
            return f"the verifier could not check the proof: {words.sentence}"
        return None

    def _recorded(self, project_id: int, round_: int) -> tuple[VerifierInputs, bytes, str]:
        """What ``finalizeRound`` handed the verifier (the round's tag, then in arrival order the
        commitments, a rejected submission as an empty slot, scores and flags, then the owner's reference
        commitment), and the proof with where it was read from."""
        row = self._round_row(project_id, round_)
        market = self.context.market
        members = [m["trainer"] for m in self.context.indexer.trainers(project_id)]
        proof, source = self._proof_bytes(project_id, round_, row["tx_hash"])
        rejected = set(market.rejected_trainers(project_id, round_))
        values = recorded_verifier_inputs(
            market, project_id, round_, list(row["scores"]), list(row["flags"]), [m in rejected for m in members]
        )
        return values, proof, source

    def _round_row(self, project_id: int, round_: int) -> dict[str, Any]:
        self.projects.project(project_id)
        row = next((r for r in self.context.indexer.rounds(project_id) if r["round"] == round_), None)
        if row is None:
            raise NotFound(f"round {round_} of project {project_id} is not finalized")
        return row

    def _proof_bytes(self, project_id: int, round_: int, tx_hash: str) -> tuple[bytes, str]:
        finalized = FinalizedRound(project_id, round_, "", "", [], [], [], 0, tx_hash)
        try:
            return proof_from_calldata(self.context.market, finalized), f"calldata of {tx_hash}"
        except ProofUnavailable as exc:
            raise Rejected(f"{exc}; cannot read the proof from its calldata") from None


def reference_status(record: ReferenceRecord) -> str:
    """What the owner's reference ``record`` of a finalized round means for the round, in words."""
    if record.revealed:
        return (
            "The project's owner committed a reference and revealed it: the round was scored and proven with it. "
            "It may have moved pay among the trainers, within fixed bounds; it flags and slashes nobody, and the "
            "rule ignores a reference that does not side with most trainers."
        )
    if record.committed:
        return (
            "The project's owner committed a reference but did not reveal it: the round was scored without it, "
            "as if there were none."
        )
    return "The project's owner did not commit a reference: the round was scored by the rule alone."
