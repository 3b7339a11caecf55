"""Proving a round with ezkl: committed rows and the round tag in, proof bytes and public outputs out.

The public instances of a proof of the Gram circuit (``n`` slots, the tag's ``TAG_CHUNKS`` chunks),
in the order ezkl's ``encode_evm_calldata`` lays them out::

    [ h_0 .. h_{n-1}, h_tag | flag_0 .. flag_{n-1} | score_0 .. score_{n-1} | chunk_0 .. chunk_{T-1} ]

``h_i`` is the Poseidon hash of slot ``i``'s row (the trainer's commitment), ``h_tag`` the Poseidon
hash of the tag input, and the chunks are the tag's bound prefix
(:func:`marketplace.protocol.round_tag.tag_chunks`). ``EzklRoundVerifier`` builds all of them from
on-chain data except ``h_tag`` (Poseidon costs too much on chain): the prover hands it over inside
the proof bytes, ``abi.encode(bytes halo2Proof, uint256 tagHash)`` (:func:`encode_round_proof`).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ezkl
import numpy as np
from eth_abi import decode, encode

from marketplace.adapters.ezkl.keys import CircuitKeys
from marketplace.protocol.constants import TAG_CHUNKS
from marketplace.protocol.round_tag import tag_chunks, tag_input


def encode_round_proof(halo2_proof: bytes, tag_hash: int) -> bytes:
    """The proof bytes ``EzklRoundVerifier.verifyRound`` takes: ``abi.encode(bytes, uint256)``."""
    return encode(["bytes", "uint256"], [halo2_proof, tag_hash])


@dataclass(frozen=True)
class CircuitProof:
    """A proof of one round and its public instances as the verifier contract sees them."""

    halo2_proof: bytes  # ezkl's proof
    hashes: list[int]  # Poseidon commitment of each slot
    tag_hash: int  # Poseidon hash of the tag input
    flags: list[bool]
    scores: list[int]  # fixed point at 2**13
    tag: list[int]  # the tag chunks the proof is bound to

    @property
    def proof(self) -> bytes:
        """What ``TrainingMarket.finalizeRound`` passes on to the verifier (:func:`encode_round_proof`)."""
        return encode_round_proof(self.halo2_proof, self.tag_hash)


def prove_rows(keys: CircuitKeys, rows: np.ndarray, tag: bytes) -> CircuitProof:
    """Witness + proof for ``n`` committed rows (``n`` x ``k + 2``, in arrival order, zero rows for
    empty slots) bound to the 32-byte round ``tag``. Raises if the rows have no witness (values off
    the grid or out of range)."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.shape != (keys.n, keys.k + 2):
        raise ValueError(f"expected {keys.n} rows of {keys.k + 2} values, got {rows.shape}")
    chunks = tag_chunks(tag)
    with tempfile.TemporaryDirectory(prefix="round-proof-") as tmp:
        d = Path(tmp)
        data = [[float(v) for v in row] for row in rows] + [tag_input(tag)]
        (d / "input.json").write_text(json.dumps({"input_data": data}))
        srs = str(keys.srs)
        ezkl.gen_witness(str(d / "input.json"), str(keys.compiled), str(d / "witness.json"),
                         vk_path=str(keys.vk), srs_path=srs)  # fmt: skip
        ezkl.prove(str(d / "witness.json"), str(keys.compiled), str(keys.pk), str(d / "proof.json"), srs_path=srs)
        calldata = bytes(ezkl.encode_evm_calldata(str(d / "proof.json"), str(d / "calldata"), str(keys.vka)))
    proof, instances, _ = decode(["bytes", "uint256[]", "bytes32[]"], calldata[4:])
    n = keys.n
    if len(instances) != 3 * n + 1 + TAG_CHUNKS:
        raise RuntimeError(f"{len(instances)} public instances; the circuit of {n} slots has {3 * n + 1 + TAG_CHUNKS}")
    out = CircuitProof(
        halo2_proof=bytes(proof),
        hashes=list(instances[:n]),
        tag_hash=int(instances[n]),
        flags=[bool(v) for v in instances[n + 1 : 2 * n + 1]],
        scores=list(instances[2 * n + 1 : 3 * n + 1]),
        tag=list(instances[3 * n + 1 :]),
    )
    if out.tag != chunks:
        raise RuntimeError(f"the circuit's tag output {out.tag} is not the tag's chunks {chunks}")
    return out
