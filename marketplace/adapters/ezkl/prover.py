"""Proving with ezkl: a round (committed rows and the round tag in, proof bytes and public outputs
out, :func:`prove_rows`) and a trainer's published row (:func:`prove_row`).

The public instances of a proof of the Gram circuit (``n`` slots, the owner's reference row, the
tag's ``TAG_CHUNKS`` chunks), in the order ezkl's ``encode_evm_calldata`` lays them out
(:func:`round_instances`)::

    [ h_0 .. h_{n-1}, h_ref, h_tag | flag_0 .. flag_{n-1} | score_0 .. score_{n-1} | chunk_0 .. chunk_{T-1} ]

``h_i`` is the Poseidon hash of slot ``i``'s row (the trainer's commitment), ``h_ref`` that of the
owner's reference row (the zero row's hash when the round has no reference: the rule is then the
rule without one, bit for bit), ``h_tag`` the Poseidon hash of the tag input, and the chunks are the
tag's bound prefix (:func:`marketplace.protocol.round_tag.tag_chunks`). ``EzklRoundVerifier`` builds
all of them from on-chain data except ``h_tag`` (Poseidon costs too much on chain): the prover hands
it over inside the proof bytes, ``abi.encode(bytes halo2Proof, uint256 tagHash)``
(:func:`encode_round_proof`). (Today's ``EzklRoundVerifier.verifyRound`` puts the zero row's hash in
``h_ref``: the market records no reference yet, so it accepts proofs of rounds without one.)

A proof of the row circuit (:mod:`marketplace.rule.row_circuit`) of width K has the instances
``[ h | x_0 .. x_{K+1} ]``: the row's Poseidon hash (the trainer's commitment) and the row's
integers at scale ``2**13``. ``EzklRoundVerifier.verifyRow`` builds every one of them from its
arguments (the on-chain commitment and the published integers), so its proof bytes are the Halo2
proof alone, exactly as ezkl's EVM calldata carries it.

Every ezkl failure, including a Rust panic (``pyo3_runtime.PanicException``, which derives from
``BaseException`` and would otherwise escape ``except Exception`` and kill a daemon), is raised as
:class:`ProvingFailed`.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import ezkl
import numpy as np
from eth_abi import decode, encode

from marketplace.adapters.ezkl.errors import ProvingFailed
from marketplace.adapters.ezkl.keys import CircuitKeys, RowKeys
from marketplace.protocol.commitment import commitment_bytes, published_row
from marketplace.protocol.constants import TAG_CHUNKS
from marketplace.protocol.round_tag import tag_chunks, tag_input

#: The BN254 scalar field's modulus: ezkl's instances are its elements (negative x is p - |x|).
FIELD_MODULUS = 21888242871839275222246405745257275088548364400416034343698204186575808495617


def _is_panic(exc: BaseException) -> bool:
    """ezkl's Rust panics surface as ``pyo3_runtime.PanicException`` (not importable by name)."""
    return type(exc).__name__ == "PanicException"


@contextmanager
def _ezkl_errors(what: str) -> Iterator[None]:
    """Re-raises any ezkl error or panic inside the block as :class:`ProvingFailed` (``what`` failed)."""
    try:
        yield
    except ProvingFailed:
        raise
    except Exception as exc:
        raise ProvingFailed(f"{what}: ezkl failed: {exc}") from exc
    except BaseException as exc:
        if not _is_panic(exc):
            raise  # KeyboardInterrupt, SystemExit: not ezkl's
        raise ProvingFailed(f"{what}: ezkl panicked: {exc}") from exc


def _prove(keys: CircuitKeys, data: list[list[float]], workdir: Path, what: str) -> bytes:
    """Witness, proof and EVM calldata of ``keys``' circuit for the inputs ``data``, in ``workdir``;
    returns the calldata (``verifyProof(bytes, uint256[], bytes32[])``). Raises :class:`ProvingFailed`."""
    (workdir / "input.json").write_text(json.dumps({"input_data": data}))
    srs = str(keys.srs)
    with _ezkl_errors(what):
        ezkl.gen_witness(str(workdir / "input.json"), str(keys.compiled), str(workdir / "witness.json"),
                         vk_path=str(keys.vk), srs_path=srs)  # fmt: skip
        ezkl.prove(str(workdir / "witness.json"), str(keys.compiled), str(keys.pk), str(workdir / "proof.json"),
                   srs_path=srs)  # fmt: skip
        return bytes(ezkl.encode_evm_calldata(str(workdir / "proof.json"), str(workdir / "calldata"), str(keys.vka)))


def _decode_calldata(calldata: bytes, what: str) -> tuple[bytes, list[int]]:
    """(Halo2 proof, instances) of ezkl's ``verifyProof`` calldata."""
    with _ezkl_errors(what):
        proof, instances, _ = decode(["bytes", "uint256[]", "bytes32[]"], calldata[4:])
    return bytes(proof), [int(v) for v in instances]


def encode_round_proof(halo2_proof: bytes, tag_hash: int) -> bytes:
    """The proof bytes ``EzklRoundVerifier.verifyRound`` takes: ``abi.encode(bytes, uint256)``."""
    return encode(["bytes", "uint256"], [halo2_proof, tag_hash])


@dataclass(frozen=True)
class CircuitProof:
    """A proof of one round and its public instances as the verifier contract sees them."""

    halo2_proof: bytes  # ezkl's proof
    hashes: list[int]  # Poseidon commitment of each slot
    reference_hash: int  # Poseidon commitment of the owner's reference row (the zero row's if none)
    tag_hash: int  # Poseidon hash of the tag input
    flags: list[bool]
    scores: list[int]  # fixed point at 2**13
    tag: list[int]  # the tag chunks the proof is bound to

    @property
    def proof(self) -> bytes:
        """What ``TrainingMarket.finalizeRound`` passes on to the verifier (:func:`encode_round_proof`)."""
        return encode_round_proof(self.halo2_proof, self.tag_hash)

    @property
    def instances(self) -> list[int]:
        """The public instances, in the circuit's order (:func:`round_instances`)."""
        return round_instances(self.hashes, self.reference_hash, self.tag_hash, self.flags, self.scores, self.tag)


def round_instances(
    hashes: list[int], reference_hash: int, tag_hash: int, flags: list[bool], scores: list[int], tag: list[int]
) -> list[int]:
    """The Gram circuit's public instances (module doc): ``[hashes, reference_hash, tag_hash | flags |
    scores | tag]``, what ezkl's Halo2 verifier takes and ``EzklRoundVerifier`` builds."""
    if not len(hashes) == len(flags) == len(scores) or len(tag) != TAG_CHUNKS:
        raise ValueError(f"{len(hashes)} hashes, {len(flags)} flags, {len(scores)} scores, {len(tag)} tag chunks")
    return [*hashes, reference_hash, tag_hash, *(int(f) for f in flags), *scores, *tag]


def prove_rows(keys: CircuitKeys, rows: np.ndarray, tag: bytes, reference: np.ndarray | None = None) -> CircuitProof:
    """Witness + proof for ``n`` committed rows (``n`` x ``k + 2``, in arrival order, zero rows for
    empty slots) and the owner's committed ``reference`` row (``k + 2`` values; None: the zero row,
    no reference), bound to the 32-byte round ``tag``. Raises :class:`ProvingFailed` if the rows have
    no witness (values off the grid or out of range) or ezkl fails or panics otherwise."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.shape != (keys.n, keys.k + 2):
        raise ValueError(f"expected {keys.n} rows of {keys.k + 2} values, got {rows.shape}")
    ref = np.zeros(keys.k + 2) if reference is None else np.asarray(reference, dtype=np.float64).reshape(-1)
    if ref.shape != (keys.k + 2,):
        raise ValueError(f"expected a reference row of {keys.k + 2} values, got shape {np.shape(reference)}")
    chunks = tag_chunks(tag)
    what = f"proving a round of the {keys.n}-slot, {keys.k}-wide circuit"
    with tempfile.TemporaryDirectory(prefix="round-proof-") as tmp:
        data = [[float(v) for v in row] for row in rows] + [[float(v) for v in ref], tag_input(tag)]
        calldata = _prove(keys, data, Path(tmp), what)
    proof, instances = _decode_calldata(calldata, what)
    n = keys.n
    if len(instances) != 3 * n + 2 + TAG_CHUNKS:
        raise ProvingFailed(f"{len(instances)} public instances; the circuit of {n} slots has {3 * n + 2 + TAG_CHUNKS}")
    out = CircuitProof(
        halo2_proof=proof,
        hashes=list(instances[:n]),
        reference_hash=int(instances[n]),
        tag_hash=int(instances[n + 1]),
        flags=[bool(v) for v in instances[n + 2 : 2 * n + 2]],
        scores=list(instances[2 * n + 2 : 3 * n + 2]),
        tag=list(instances[3 * n + 2 :]),
    )
    if out.tag != chunks:
        raise ProvingFailed(f"the circuit's tag output {out.tag} is not the tag's chunks {chunks}")
    if out.instances != instances:  # the layout above is the circuit's
        raise ProvingFailed("the proof's public instances are not laid out as round_instances lays them out")
    return out


def field_element(value: int) -> int:
    """An integer as the field element ezkl's instances hold: ``value mod p`` (negative x is p - |x|)."""
    return value % FIELD_MODULUS


def prove_row(keys: RowKeys, row: np.ndarray) -> bytes:
    """A proof of the row circuit of width ``keys.k`` for one committed ``row`` (``k + 2`` grid values,
    shape (k + 2,) or (1, k + 2)), in the format ``EzklRoundVerifier.verifyRow`` takes: the Halo2 proof
    bytes alone (the verifier rebuilds every instance, see the module doc).

    Checks that the proof's instances are those ``verifyRow`` will build for the row: its hash is
    ``commitment_bytes(row)`` and its outputs are ``published_row(row)`` as field elements. Raises
    :class:`ProvingFailed` if ezkl fails or panics (e.g. values too large for the circuit's range
    check, far outside the box) or the instances differ (a row off the ``2**-13`` grid)."""
    if not isinstance(keys, RowKeys):
        raise TypeError("prove_row needs the row circuit's keys (marketplace.adapters.ezkl.keys.setup_row)")
    values = np.asarray(row, dtype=np.float64)
    if values.size != keys.k + 2 or values.ndim > 2 or (values.ndim == 2 and values.shape[0] != 1):
        raise ValueError(f"expected one row of {keys.k + 2} values, got shape {values.shape}")
    values = values.reshape(-1)
    if not np.all(np.isfinite(values)):
        raise ValueError("a committed row's values are finite")
    what = f"proving a {keys.k}-wide row"
    with tempfile.TemporaryDirectory(prefix="row-proof-") as tmp:
        calldata = _prove(keys, [[float(v) for v in values]], Path(tmp), what)
    proof, instances = _decode_calldata(calldata, what)
    with _ezkl_errors(what):  # Poseidon by ezkl
        commitment = int.from_bytes(commitment_bytes(values), "big")
    want = [commitment] + [field_element(v) for v in published_row(values)]
    if instances != want:
        raise ProvingFailed(
            f"{what}: the proof's instances are not the row's commitment and integers (is the row on the 2**-13 grid?)"
        )
    return proof
