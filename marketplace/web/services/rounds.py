"""Read model of finalized rounds: the rounds of a project, one round's public values and proof as
recorded on chain, and the project's verifier's answer for them (an ``eth_call``, costs nothing).

The proof bytes come from the calldata of the transaction that finalized the round, so a round
can be checked without IPFS.
"""

from __future__ import annotations

from typing import Any

from eth_utils import keccak
from hexbytes import HexBytes

from marketplace.adapters.chain.market import FinalizedRound
from marketplace.protocol.ordering import in_arrival_order
from marketplace.roles.verify import ProofUnavailable, check_proof, proof_from_calldata
from marketplace.web.schemas import RoundProof, RoundView, VerifyResult
from marketplace.web.services.context import MarketContext
from marketplace.web.services.errors import NotFound, Rejected
from marketplace.web.services.projects import ProjectService


class RoundService:
    """Finalized rounds of one deployment's projects."""

    def __init__(self, context: MarketContext, projects: ProjectService) -> None:
        self.context = context
        self.projects = projects

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
        row = self._round_row(project_id, round_)
        project = self.projects.project(project_id)
        market = self.context.market
        members = [m["trainer"] for m in self.context.indexer.trainers(project_id)]
        commitments = [market.commitment(project_id, round_, m) for m in members]
        proof, source = self._proof_bytes(project_id, round_, row["tx_hash"])
        # The verifier sees the values in arrival order (see IRoundVerifier.verifyRound).
        order = market.arrival_order(project_id, round_)
        return RoundProof(
            project_id=project_id, round=round_, verifier=project.verifier,
            commitments=["0x" + c.hex() for c in in_arrival_order(commitments, order)],
            scores=[str(s) for s in in_arrival_order(row["scores"], order)],
            flags=in_arrival_order(row["flags"], order), proof="0x" + proof.hex(), proof_source=source,
            arrival_order=order,
        )  # fmt: skip

    def verify_round(self, project_id: int, round_: int) -> VerifyResult:
        """``eth_call``s the project's verifier with the round's on-chain values and proof."""
        proof = self.round_proof(project_id, round_)
        proof_bytes = bytes(HexBytes(proof.proof))
        valid, gas, error = check_proof(
            self.context.chain,
            proof.verifier,
            [bytes(HexBytes(c)) for c in proof.commitments],
            [int(s) for s in proof.scores],
            proof.flags,
            proof_bytes,
        )
        return VerifyResult(
            project_id=project_id,
            round=round_,
            verifier=proof.verifier,
            proof_source=proof.proof_source,
            proof_hash="0x" + keccak(proof_bytes).hex(),
            valid=valid,
            gas_estimate=gas,
            error=error,
        )

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
