"""The round tag: what binds a round's proof to one chain, market, project and round.

``TrainingMarket.finalizeRound`` hands its verifier, besides the round's public values, the tag

    tag = keccak256(abi.encode(block.chainid, address(market), projectId, round))

(:func:`round_tag`; the market's ``roundTag`` view returns the same). A proof verifies only
together with the tag it was made for, so a proof made for one round is worthless in another
round of the same project, in another project (even one whose trainers submitted the same
commitments in the same order), on another market or on another chain. Rounds are finalized once
by state (the market's round counter), so no set of used proofs is kept, and no project can
fill one to block another's finalization.

How the tag enters the circuit (:mod:`marketplace.rule.circuit`, ``EzklRoundVerifier``): circuit
inputs pass through float32 at fixed point ``2**13``, and ezkl range-checks values in base
``2**14`` with two legs (magnitude below ``2**27``), so 256 bits cannot be one input. The tag's
first ``TAG_CHUNKS * TAG_CHUNK_BITS`` = 128 bits are split into ``TAG_CHUNKS`` big-endian chunks
of ``TAG_CHUNK_BITS`` bits (:func:`tag_chunks`), and chunk ``c`` is fed to the circuit as the
number ``c * 2**-13`` (:func:`tag_input`): exact in float32 (at most 16 significant bits), so its
field element is exactly ``c`` (far below ``2**27``). The circuit outputs the chunks unchanged as
public values, which the verifier contract fills in from the tag it was given.

Why 128 bits suffice: reusing a victim's proof needs a round whose tag agrees with the victim's
in those 128 bits. The attacker cannot choose a tag directly, only inputs to keccak256 (a market
it deploys, a project it creates), so this is a second preimage of a 128-bit truncation of
keccak256: about ``2**128`` hashes. (A collision between two rounds the attacker controls,
``2**64`` work, gains nothing: it could prove its own rounds anyway.)
"""

from __future__ import annotations

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from marketplace.protocol.constants import SCALE, TAG_CHUNK_BITS, TAG_CHUNKS


def round_tag(chain_id: int, market: str, project_id: int, round_: int) -> bytes:
    """``keccak256(abi.encode(chainId, market, projectId, round))``: the 32-byte tag
    ``TrainingMarket.finalizeRound`` hands the verifier for round ``round_`` of ``project_id``."""
    encoded = abi_encode(
        ["uint256", "address", "uint256", "uint256"], [chain_id, to_checksum_address(market), project_id, round_]
    )
    return keccak(encoded)


def tag_chunks(tag: bytes) -> list[int]:
    """The bound prefix of ``tag`` as ``TAG_CHUNKS`` big-endian integers of ``TAG_CHUNK_BITS`` bits
    each: chunk ``j`` is ``(uint256(tag) >> (256 - TAG_CHUNK_BITS * (j + 1))) & (2**TAG_CHUNK_BITS - 1)``,
    the circuit's public tag outputs as ``EzklRoundVerifier`` lays them out."""
    if len(tag) != 32:
        raise ValueError(f"a round tag is 32 bytes, got {len(tag)}")
    value = int.from_bytes(tag, "big")
    mask = (1 << TAG_CHUNK_BITS) - 1
    return [(value >> (256 - TAG_CHUNK_BITS * (j + 1))) & mask for j in range(TAG_CHUNKS)]


def tag_input(tag: bytes) -> list[float]:
    """The circuit's tag input: chunk ``c`` as ``c * 2**-SCALE``, whose field element at fixed point
    ``2**SCALE`` is exactly ``c`` (see the module doc)."""
    return [c / 2**SCALE for c in tag_chunks(tag)]
