"""Real ezkl proofs of the row circuit (a trainer's published row is the row behind its commitment),
verified on a real anvil by ``EzklRoundVerifier.verifyRow`` through the reusable Halo2 verifier that
also verifies the round circuit; every forgery fails; ezkl's failures and panics are typed.

The round circuit of test_zk_onchain (4 slots, 32-wide sketches) and its row circuit are set up once
and cached under ``.cache/zk``. A row proves in about 2 s. Development SRS (gen_srs): test only."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import ezkl
import numpy as np
import pytest
from eth_abi import decode
from web3.contract import Contract

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import Artifacts
from marketplace.adapters.chain.market import encode_rule_version
from marketplace.adapters.ezkl.evm import deploy_halo2_verifier, deploy_round_verifier
from marketplace.adapters.ezkl.keys import CircuitKeys, RowKeys, setup, setup_row
from marketplace.adapters.ezkl.prover import FIELD_MODULUS, ProvingFailed, prove_row, prove_rows
from marketplace.protocol.commitment import commit_update, commitment_bytes, published_row
from marketplace.roles.verify import gas_to_succeed
from marketplace.round.prove import (
    NO_REFERENCE,
    EzklRowProver,
    HashProver,
    VerifyingKeyMismatch,
    local_row_proof,
    row_prover_for,
)
from marketplace.rule import RULE_VERSION
from tests.market_fixtures import Actors

N, K = 4, 32
ONE = 2**13


@pytest.fixture(scope="session")
def zk_keys() -> CircuitKeys:
    return setup(N, K)  # the round circuit, and the row circuit of its K


@pytest.fixture(scope="session")
def row_keys(zk_keys: CircuitKeys) -> RowKeys:
    return setup_row(K)


@pytest.fixture
def adapter(chain: ChainClient, zk_keys: CircuitKeys) -> Contract:
    """ezkl's reusable verifier (built from the round circuit's keys) and the adapter, which registers
    the round circuit's VKA and the row circuit's."""
    halo2 = deploy_halo2_verifier(chain, zk_keys)
    return deploy_round_verifier(chain, zk_keys, halo2.address)


def _row(seed: int) -> tuple[np.ndarray, bytes]:
    """A real committed row and its commitment."""
    return commit_update(np.random.default_rng(seed).normal(size=2_000), 11, K)


def _verifies(chain: ChainClient, adapter: Contract, commitment: bytes | int, ints: list[int], proof: bytes) -> bool:
    c = commitment if isinstance(commitment, bytes) else commitment.to_bytes(32, "big")
    return bool(chain.call(adapter.functions.verifyRow(c, ints, proof)))


def test_a_row_proof_verifies_on_chain_and_every_forgery_fails(
    chain: ChainClient, adapter: Contract, zk_keys: CircuitKeys, row_keys: RowKeys
) -> None:
    row, commitment = _row(1)
    other, other_commitment = _row(2)
    ints, other_ints = published_row(row), published_row(other)
    proof, other_proof = prove_row(row_keys, row), prove_row(row_keys, other)
    assert chain.call(adapter.functions.rowVka()) == row_keys.vka_words() != zk_keys.vka_words()

    def verifies(c: bytes | int, values: list[int], p: bytes = proof) -> bool:
        return _verifies(chain, adapter, c, values, p)

    assert verifies(commitment, ints) and verifies(other_commitment, other_ints, other_proof)
    gas = gas_to_succeed(chain, adapter.functions.verifyRow(commitment, ints, proof))
    print(f"verifyRow (K={K}): {len(proof)}-byte proof, {gas} gas")
    assert 300_000 < gas < 2_000_000, gas

    # Another row with the same commitment: an integer aliasing the same field element (x - p), refused
    # by the box before any proof is looked at (the forged proof is test_the_output_is_the_hashed_input).
    aliased = [ints[0] - FIELD_MODULUS, *ints[1:]]
    assert aliased[0] % FIELD_MODULUS == ints[0] % FIELD_MODULUS and not verifies(commitment, aliased)
    # A flipped value: one v entry, the log-norm, the presence bit.
    i = next(j for j, v in enumerate(ints[:K]) if v != 0)
    for j, value in ((i, -ints[i]), (i, ints[i] + 1), (K, ints[K] + 1), (K + 1, 0)):
        assert not verifies(commitment, [*ints[:j], value, *ints[j + 1 :]]), j
    # A wrong commitment: another row's, off by one, zero, at or beyond the field modulus.
    c = int.from_bytes(commitment, "big")
    for wrong in (other_commitment, c + 1, c - 1, 0, FIELD_MODULUS, c + FIELD_MODULUS, 2**256 - 1):
        assert not verifies(wrong, ints), wrong
    # Truncated, tampered or garbage proof bytes. (Bytes appended to a valid proof are ignored by ezkl's
    # verifier: proofs are not unique anyway, each proving run gives other bytes, and nothing keys on them.)
    tampered = bytearray(proof)
    tampered[len(proof) // 2] ^= 1
    garbage = os.urandom(len(proof))
    for bad in (proof[:-32], proof[:-1], proof[:100], b"", bytes(tampered), garbage):
        assert not verifies(commitment, ints, bad), len(bad)
    assert verifies(commitment, ints, proof + b"\0" * 32)
    # A row proof of another row, under either row's values.
    assert not verifies(commitment, ints, other_proof)
    assert not verifies(other_commitment, ints, other_proof) and not verifies(commitment, other_ints, other_proof)
    # Wrong lengths and rows off the box (with the honest proof).
    assert not verifies(commitment, ints[:-1]) and not verifies(commitment, [*ints, 0])
    for j, value in ((0, ONE + 1), (0, -ONE - 1), (K, 32 * ONE + 1), (K, -32 * ONE - 1), (K + 1, 2 * ONE)):
        assert not verifies(commitment, [*ints[:j], value, *ints[j + 1 :]]), (j, value)

    # A round proof of the same K, passed as a row proof: the round circuit's proof (as verifyRound takes
    # it and bare) fails under the row circuit's key, while verifyRound accepts it on the same verifier.
    rows = np.stack([row, other, np.zeros(K + 2), np.zeros(K + 2)])
    tag = bytes(range(32))
    rp = prove_rows(zk_keys, rows, tag)
    for as_row in (rp.proof, rp.halo2_proof):
        assert not verifies(commitment, ints, as_row)
    hashes = [h.to_bytes(32, "big") for h in rp.hashes[:2]]
    assert hashes == [commitment, other_commitment]
    assert chain.call(adapter.functions.verifyRound(tag, hashes, rp.scores[:2], rp.flags[:2], NO_REFERENCE, rp.proof))
    assert not chain.call(adapter.functions.verifyRound(tag, hashes, rp.scores[:2], rp.flags[:2], NO_REFERENCE, proof))


def test_rows_at_the_edges_of_the_box_prove(chain: ChainClient, adapter: Contract, row_keys: RowKeys) -> None:
    """v = +-1 everywhere, l = +-32, a = 1 (and the all-zero row of an empty slot): the extremes the
    market lets a trainer publish prove and verify."""
    signs = np.where(np.arange(K) % 2 == 0, 1.0, -1.0)
    for row in (
        np.concatenate([signs, [32.0], [1.0]]),
        np.concatenate([-signs, [-32.0], [1.0]]),
        np.concatenate([np.ones(K), [-32.0], [1.0]]),
        np.zeros(K + 2),
    ):
        ints = published_row(row)
        assert max(abs(v) for v in ints) <= 32 * ONE
        assert _verifies(chain, adapter, commitment_bytes(row), ints, prove_row(row_keys, row))


def _proof_from_witness(keys: RowKeys, witness: dict[str, object], workdir: Path) -> bytes:
    """What a malicious prover gets out of ezkl for a hand-edited ``witness``."""
    (workdir / "forged.json").write_text(json.dumps(witness))
    ezkl.prove(str(workdir / "forged.json"), str(keys.compiled), str(keys.pk), str(workdir / "proof.json"),
               srs_path=str(keys.srs))  # fmt: skip
    calldata = bytes(ezkl.encode_evm_calldata(str(workdir / "proof.json"), str(workdir / "calldata"), str(keys.vka)))
    return bytes(decode(["bytes", "uint256[]", "bytes32[]"], calldata[4:])[0])


def test_the_output_is_the_hashed_input(chain: ChainClient, adapter: Contract, row_keys: RowKeys) -> None:
    """The identity output is constrained to the hashed input cells (ezkl does not prune it): a proof made
    from a witness whose output is another row than its input (or whose hash is not its input's) verifies
    for neither row, so no proof shows another row under a trainer's commitment."""
    row, commitment = _row(3)
    other, other_commitment = _row(4)
    with tempfile.TemporaryDirectory(prefix="forged-row-") as tmp:
        d = Path(tmp)
        for name, values in (("row", row), ("other", other)):
            (d / f"{name}.json").write_text(json.dumps({"input_data": [[float(v) for v in values]]}))
            ezkl.gen_witness(str(d / f"{name}.json"), str(row_keys.compiled), str(d / f"{name}-witness.json"),
                             vk_path=str(row_keys.vk), srs_path=str(row_keys.srs))  # fmt: skip
        honest = json.loads((d / "row-witness.json").read_text())
        theirs = json.loads((d / "other-witness.json").read_text())
        out_swapped = {**honest, "outputs": theirs["outputs"]}  # hashes the row, outputs the other
        in_swapped = {**theirs, "outputs": honest["outputs"], "processed_inputs": honest["processed_inputs"]}
        forged = [_proof_from_witness(row_keys, w, d) for w in (out_swapped, in_swapped)]
        control = _proof_from_witness(row_keys, honest, d)  # the same path, unedited: it verifies
    assert _verifies(chain, adapter, commitment, published_row(row), control)
    claims = [
        (commitment, published_row(other)),
        (commitment, published_row(row)),
        (other_commitment, published_row(other)),
    ]
    for proof in forged:
        for c, ints in claims:
            assert not _verifies(chain, adapter, c, ints, proof)


def test_proving_failures_are_typed(zk_keys: CircuitKeys, row_keys: RowKeys, tmp_path: Path) -> None:
    """No witness (values far outside the box: beyond the circuit's range check) and ezkl panics (keys
    with an SRS too small for them) raise ProvingFailed, never a BaseException that kills a daemon."""
    with pytest.raises(ProvingFailed, match="ezkl failed"):
        prove_row(row_keys, np.full(K + 2, 1e6))
    with pytest.raises(ValueError, match="one row of 34 values"):
        prove_row(row_keys, np.zeros(K + 1))

    def with_small_srs(keys: CircuitKeys, name: str) -> Path:
        """A directory of ``keys``' files (linked) with an SRS of 2**8 rows."""
        root = tmp_path / name
        root.mkdir()
        for f in keys.root.iterdir():
            if f.name != "kzg.srs":
                (root / f.name).symlink_to(f)
        ezkl.gen_srs(str(root / "kzg.srs"), 8)
        return root

    small_row = RowKeys(1, K, with_small_srs(row_keys, "row"))
    with pytest.raises(ProvingFailed, match="panicked"):
        prove_row(small_row, _row(5)[0])
    small_round = CircuitKeys(N, K, with_small_srs(zk_keys, "round"))
    with pytest.raises(ProvingFailed, match="panicked"):
        prove_rows(small_round, np.zeros((N, K + 2)), bytes(32))


def test_the_hash_prover_row_proof_is_what_the_test_verifier_checks(chain: ChainClient, artifacts: Artifacts) -> None:
    """HashProver.prove_row makes what the local TestRoundVerifier.verifyRow accepts (it proves nothing)."""
    verifier = chain.deploy(artifacts["TestRoundVerifier"], K, encode_rule_version(RULE_VERSION))
    row, commitment = _row(6)
    other, _ = _row(7)
    proof = HashProver().prove_row(row)
    assert proof == local_row_proof(row)
    assert _verifies(chain, verifier, commitment, published_row(row), proof)
    assert not _verifies(chain, verifier, commitment, published_row(other), proof)
    assert not _verifies(chain, verifier, commitment, published_row(row), HashProver().prove_row(other))


def test_a_trainer_gets_the_row_prover_its_projects_verifier_needs(actors: Actors, row_keys: RowKeys) -> None:
    """row_prover_for: the ezkl row prover (the row circuit's keys only, checked against the adapter's
    rowVka()) for a project of an EzklRoundVerifier, the hash prover for the local test verifier."""
    chain = actors.chain
    zk_keys = setup(N, K)
    adapter = deploy_round_verifier(chain, zk_keys, deploy_halo2_verifier(chain, zk_keys).address)
    chain.transact(actors.admin.market.functions.setVerifierApproval(adapter.address, True))
    trainer = actors.trainers[0]
    zk_project = actors.create(verifier=adapter.address, max_trainers=N)
    prover = row_prover_for(trainer, zk_project)
    assert isinstance(prover, EzklRowProver) and prover.keys == row_keys
    row, commitment = _row(8)
    assert _verifies(chain, adapter, commitment, published_row(row), prover.prove_row(row))
    assert isinstance(row_prover_for(trainer, actors.create()), HashProver)
    with pytest.raises(VerifyingKeyMismatch, match="do not match the verifying key registered by verifier 0xabc"):
        EzklRowProver(row_keys, row_vka=[b"\x01" * 32], verifier="0xabc")
