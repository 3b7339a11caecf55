"""Verify a finalized round's proof against the project's on-chain verifier, on any network.

The public values are taken from the chain (the round's tag, the trainers' commitments and the
recorded scores and flags, as ``finalizeRound`` handed them to the verifier: the function the
aggregator proves with, :func:`marketplace.round.prove.recorded_verifier_inputs`); only the proof
bytes come from elsewhere: the round's proof document on IPFS, or else the
calldata of the transaction that finalized the round. The check is an ``eth_call`` of
``verifyRound``, so it costs nothing and works against any RPC; the gas an on-chain verification
would cost is estimated alongside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import keccak
from web3.exceptions import Web3RPCError

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.errors import ChainError
from marketplace.adapters.chain.market import FinalizedRound, MarketClient, round_verifier
from marketplace.adapters.ipfs.errors import StorageError
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.protocol.proof_document import MAX_PROOF_DOCUMENT_BYTES, InvalidProofDocument, ProofDocument
from marketplace.round.prove import NO_REFERENCE, recorded_verifier_inputs


class ProofUnavailable(Exception):
    """Neither the proof document nor the finalize calldata gave the proof bytes."""


@dataclass(frozen=True)
class Verification:
    project_id: int
    round: int
    verifier: str
    valid: bool
    gas: int | None  # gas an on-chain verifyRound call costs (None if it reverted)
    proof_source: str
    proof_hash: str
    error: str | None = None
    document_agrees: bool | None = None  # the IPFS document's public values equal the chain's


def check_proof(
    chain: ChainClient,
    verifier: str,
    tag: bytes,
    commitments: list[bytes],
    scores: list[int],
    flags: list[bool],
    reference: bytes,
    proof: bytes,
) -> tuple[bool, int | None, str | None]:
    """(valid, gas, error) of ``verifyRound`` on ``verifier`` for the round ``tag``, these values and the owner's
    ``reference`` commitment (32 zero bytes: none) (in ``verifyRound``'s order, as :func:`recorded_verifier_inputs`
    gives them), by eth_call."""
    call = round_verifier(chain, verifier).functions.verifyRound(tag, commitments, scores, flags, reference, proof)
    try:
        valid = bool(chain.call(call))
        gas = gas_to_succeed(chain, call) if valid else None
    except ChainError as exc:
        return False, None, str(exc)
    return valid, gas, None if valid else "the verifier rejected the proof"


def gas_to_succeed(chain: ChainClient, call: Any, high: int = 30_000_000) -> int:
    """The least gas with which ``call`` still returns true.

    ``eth_estimateGas`` is not enough here: a verifier that catches its inner failure and returns
    false (as EzklRoundVerifier does) "succeeds" with too little gas, so the estimate would be
    the cost of rejecting. A binary search over ``eth_call`` with an explicit gas limit finds the
    cost of accepting."""
    try:  # a lower bound: the cost of the cheapest outcome, at least the intrinsic gas
        low = chain.estimate_gas(call)
    except (ChainError, Web3RPCError):
        low = 21_000
    while high - low > 1_000:
        mid = (low + high) // 2
        try:
            ok = bool(chain.call(call, gas=mid))
        except (ChainError, Web3RPCError):  # out of gas, or below the intrinsic gas
            ok = False
        low, high = (low, mid) if ok else (mid, high)
    return high


def proof_from_calldata(market: MarketClient, finalized: FinalizedRound) -> bytes:
    """The proof bytes from the calldata of the transaction that finalized the round."""
    chain = market.chain
    tx = chain.get_transaction(finalized.tx_hash)
    try:
        fn, args = market.market.decode_function_input(tx["input"])
    except ValueError:
        raise ProofUnavailable(f"transaction {finalized.tx_hash} did not call finalizeRound directly") from None
    if fn.fn_name != "finalizeRound" or args["projectId"] != finalized.project_id or args["round"] != finalized.round:
        raise ProofUnavailable(f"transaction {finalized.tx_hash} is not this round's finalizeRound")
    result = args["result"]
    return bytes(result["proof"] if isinstance(result, dict) else result[-1])


def verify_round(market: MarketClient, project_id: int, round_: int, store: ModelStore | None = None) -> Verification:
    """Verifies round ``round_`` of ``project_id`` with the public values recorded on chain."""
    finalized = next((r for r in market.finalized_rounds(project_id) if r.round == round_), None)
    if finalized is None:
        raise ProofUnavailable(f"round {round_} of project {project_id} is not finalized")
    project = market.get_project(project_id)
    trainers = market.trainers(project_id)
    commitments = market.round_commitments(project_id, round_)
    proof: bytes | None = None
    source = ""
    agrees: bool | None = None
    if store is not None:
        try:
            doc = ProofDocument.parse(store.get_bytes(finalized.proof_cid, max_bytes=MAX_PROOF_DOCUMENT_BYTES))
            proof = doc.proof_bytes
            source = f"ipfs://{finalized.proof_cid}"
            reference = market.reference_of(project_id, round_).commitment
            agrees = (
                doc.commitment_bytes == commitments
                and doc.scores == finalized.scores
                and doc.flags == finalized.flags
                and (doc.reference or "0x" + NO_REFERENCE.hex()) == "0x" + reference.hex()
            )
        except (StorageError, InvalidProofDocument):
            proof = None
    if proof is None:
        proof = proof_from_calldata(market, finalized)
        source = f"calldata of {finalized.tx_hash}"
    rejected = set(market.rejected_trainers(project_id, round_))
    values = recorded_verifier_inputs(
        market, project_id, round_, finalized.scores, finalized.flags, [t in rejected for t in trainers]
    )
    valid, gas, error = check_proof(market.chain, project.verifier, *values, proof)
    return Verification(
        project_id, round_, project.verifier, valid, gas, source, "0x" + keccak(proof).hex(), error, agrees
    )
