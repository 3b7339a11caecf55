"""Proving a round with the circuit before issue 16 (:mod:`research.zk_speed.legacy`), for ``bench/zk.py``'s old
column: its keys are built like the production keys but cached apart (``.cache/zk/legacy/``), and its inputs and
public instances predate the owner's reference row (``[hashes, h_tag | flags | scores | tag]``), so today's
``EzklRoundVerifier`` cannot verify its proofs on chain: ezkl verifies them off chain here, with the same keys.

Not imported by the package or the tests.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ezkl
import numpy as np
from eth_abi import decode

from marketplace.adapters.ezkl.keys import (
    CircuitKeys,
    cache_dir,
    compile_circuit,
    evm_artifacts,
    export_onnx,
    generate_keys,
    settings_for,
    sha256_file,
)
from marketplace.adapters.ezkl.prover import encode_round_proof
from marketplace.protocol.round_tag import tag_input
from research.zk_speed import legacy


@dataclass(frozen=True)
class LegacyProof:
    """One proof of the old circuit: its size as ``verifyRound`` took it, flags and scores, whether ezkl verified it."""

    proof_bytes: int
    flags: list[bool]
    scores: list[int]
    verified: bool


def legacy_keys(n: int, k: int, *, build: bool) -> CircuitKeys:
    """The old circuit's keys (``.cache/zk/legacy/gram-n{n}-k{k}``), built if ``build`` and missing or stale
    (stamped with the SHA-256 of ``research/zk_speed/legacy.py`` and the ezkl version)."""
    keys = CircuitKeys(n, k, cache_dir() / "legacy" / f"gram-n{n}-k{k}")
    stamp = f"{sha256_file(Path(legacy.__file__))}/{ezkl.__version__}"
    stamp_file = keys.root / "fingerprint"
    if stamp_file.is_file() and stamp_file.read_text() == stamp and keys.vka.is_file():
        return keys
    if not build:
        raise RuntimeError(f"no legacy keys for {n}x{k}: run the setup step first")
    if keys.root.exists():
        shutil.rmtree(keys.root)
    keys.root.mkdir(parents=True)
    circuit = legacy.GramCircuit(n, k)
    export_onnx(circuit, n, k + 2, keys.onnx, tag_width=circuit.tag_width)
    settings_for(keys.onnx, keys.settings)
    compile_circuit(keys.onnx, keys.compiled, keys.settings)
    generate_keys(keys)
    evm_artifacts(keys)
    stamp_file.write_text(stamp)
    return keys


def prove_legacy(keys: CircuitKeys, rows: np.ndarray, tag: bytes) -> LegacyProof:
    """Witness, proof and off-chain verification of the old circuit for ``rows`` (n x k + 2) bound to ``tag``."""
    n = keys.n
    data = [[float(v) for v in row] for row in np.asarray(rows, dtype=np.float64)] + [tag_input(tag)]
    srs = str(keys.srs)
    with tempfile.TemporaryDirectory(prefix="legacy-proof-") as tmp:
        work = Path(tmp)
        (work / "input.json").write_text(json.dumps({"input_data": data}))
        ezkl.gen_witness(str(work / "input.json"), str(keys.compiled), str(work / "witness.json"),
                         vk_path=str(keys.vk), srs_path=srs)  # fmt: skip
        ezkl.prove(str(work / "witness.json"), str(keys.compiled), str(keys.pk), str(work / "proof.json"),
                   srs_path=srs)  # fmt: skip
        verified = bool(ezkl.verify(str(work / "proof.json"), str(keys.settings), str(keys.vk), srs_path=srs))
        calldata = bytes(ezkl.encode_evm_calldata(str(work / "proof.json"), str(work / "calldata"), str(keys.vka)))
    proof, instances, _ = decode(["bytes", "uint256[]", "bytes32[]"], calldata[4:])
    values = [int(v) for v in instances]
    return LegacyProof(
        proof_bytes=len(encode_round_proof(bytes(proof), values[n])),
        flags=[bool(v) for v in values[n + 1 : 2 * n + 1]],
        scores=values[2 * n + 1 : 3 * n + 1],
        verified=verified,
    )
