"""Proving a round with ezkl: committed rows in, proof bytes and public outputs out."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ezkl
import numpy as np
from eth_abi import decode

from marketplace.adapters.ezkl.keys import CircuitKeys


@dataclass(frozen=True)
class CircuitProof:
    """A proof of one round and its public instances as the verifier contract sees them."""

    proof: bytes  # what TrainingMarket.finalizeRound passes on to the verifier
    hashes: list[int]  # Poseidon commitment of each slot
    flags: list[bool]
    scores: list[int]  # fixed point at 2**13


def prove_rows(keys: CircuitKeys, rows: np.ndarray) -> CircuitProof:
    """Witness + proof for ``n`` committed rows (``n`` x ``k + 2``, in arrival order, zero rows for
    empty slots). Raises if the rows have no witness (values off the grid or out of range)."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.shape != (keys.n, keys.k + 2):
        raise ValueError(f"expected {keys.n} rows of {keys.k + 2} values, got {rows.shape}")
    with tempfile.TemporaryDirectory(prefix="round-proof-") as tmp:
        d = Path(tmp)
        (d / "input.json").write_text(json.dumps({"input_data": [[float(v) for v in row] for row in rows]}))
        srs = str(keys.srs)
        ezkl.gen_witness(str(d / "input.json"), str(keys.compiled), str(d / "witness.json"),
                         vk_path=str(keys.vk), srs_path=srs)  # fmt: skip
        ezkl.prove(str(d / "witness.json"), str(keys.compiled), str(keys.pk), str(d / "proof.json"), srs_path=srs)
        calldata = bytes(ezkl.encode_evm_calldata(str(d / "proof.json"), str(d / "calldata"), str(keys.vka)))
    proof, instances, _ = decode(["bytes", "uint256[]", "bytes32[]"], calldata[4:])
    n = keys.n
    return CircuitProof(
        proof=bytes(proof),
        hashes=list(instances[:n]),
        flags=[bool(v) for v in instances[n : 2 * n]],
        scores=list(instances[2 * n : 3 * n]),
    )
