"""EzklRoundVerifier: the instance layout it builds (the round tag's included), its VKA storage,
finalizeRound through it, and what it declares (proof system, rule version), from which the
aggregator picks its prover.

The ezkl verifier is replaced by a local mock that accepts keccak256(instances) as the "proof",
so these tests pin down the adapter's own logic; the real ezkl proof on chain is tested in zk."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from eth_abi import encode
from eth_utils import keccak

import marketplace.adapters.ezkl.keys
from marketplace.adapters.chain.market import (
    Finalization,
    MarketClient,
    ProjectConfig,
    VerifierInfo,
    encode_rule_version,
)
from marketplace.adapters.ezkl.evm import NO_ROUND_VERIFIER
from marketplace.adapters.ezkl.prover import encode_round_proof, round_instances
from marketplace.protocol.round_tag import tag_chunks
from marketplace.roles.aggregator import AggregatorNode
from marketplace.round.prove import (
    NO_REFERENCE,
    EzklProver,
    RuleVersionMismatch,
    UnknownProofSystem,
    prover_for,
    round_tag,
)
from marketplace.rule import RULE_VERSION
from tests.market_fixtures import Actors, commit, commitment_for, reveal_update, reverts
from tests.test_market import unreachable_store

R = 21888242871839275222246405745257275088548364400416034343698204186575808495617
ZERO_ROW = 12345
N = 4
TAG = keccak(text="a round's tag")
ROW_VKA = [keccak(text=f"row vka word {i}") for i in range(217)]  # the row circuit's (registered too)
#: The adapter's name and description (constructor arguments).
LABEL = ("ezkl verifier: 4 trainers x 32-wide sketches, development SRS", "what a proof shows")
TAG_HASH = 67890  # the mock does not hash: any field element stands for Poseidon(tag chunks)


def instances(
    commitments: list[bytes],
    flags: list[bool],
    scores: list[int],
    n: int = N,
    tag: bytes = TAG,
    tag_hash: int = TAG_HASH,
    reference: int = ZERO_ROW,
) -> list[int]:
    """``[h_0 .. h_{n-1}, h_ref, h_tag | flags | scores | tag chunks]``, as ezkl's calldata orders them
    (:func:`~marketplace.adapters.ezkl.prover.round_instances`, checked against real proofs in zk tests),
    with ``reference`` as ``h_ref`` (the zero row's hash: no reference row)."""
    hashes = [int.from_bytes(c, "big") or ZERO_ROW for c in commitments] + [ZERO_ROW] * (n - len(commitments))
    pad = [False] * (n - len(commitments))
    return round_instances(hashes, reference, tag_hash, [*flags, *pad], [*scores, *[0] * len(pad)], tag_chunks(tag))


def mock_proof(inst: list[int], tag_hash: int = TAG_HASH) -> bytes:
    """The mock Halo2 verifier's "proof" of ``inst``, with ``tag_hash`` as the adapter takes them."""
    return encode_round_proof(keccak(encode(["uint256[]"], [inst])), tag_hash)


def deploy(  # type: ignore[no-untyped-def]
    actors: Actors,
    vka: list[bytes] | None = None,
    rule_version: str = RULE_VERSION,
    round_verifier: str = NO_ROUND_VERIFIER,
):
    """The adapter in front of the mock reusable verifier; rounds go through ``round_verifier`` (default: none, the
    mock reusable verifier under the VKA)."""
    chain = actors.admin.chain
    mock = chain.deploy(actors.artifacts["MockHalo2Verifier"])
    words = vka or [keccak(text=f"vka word {i}") for i in range(337)]
    version = encode_rule_version(rule_version)
    adapter = chain.deploy(
        actors.artifacts["EzklRoundVerifier"],
        mock.address,
        words,
        ROW_VKA,
        N,
        32,
        ZERO_ROW,
        version,
        *LABEL,
        round_verifier,
    )
    return adapter, mock, words


def test_vka_is_registered_and_stored_as_code(actors: Actors) -> None:
    adapter, mock, words = deploy(actors)
    chain = actors.admin.chain
    assert chain.call(adapter.functions.vka()) == words
    digest = chain.call(adapter.functions.vkaDigest())
    assert digest == keccak(b"".join(words)) and chain.call(mock.functions.registered(digest))
    assert chain.call(adapter.functions.circuitSize()) == N == chain.call(adapter.functions.maxTrainers())
    assert chain.call(adapter.functions.sketchWidth()) == 32


def test_a_proof_verified_under_another_vka_is_refused(actors: Actors) -> None:
    adapter, mock, _ = deploy(actors)
    chain = actors.admin.chain
    commitments, flags, scores = [b"\x01" * 32], [False], [8192]
    good = mock_proof(instances(commitments, flags, scores))
    assert chain.call(adapter.functions.verifyRound(TAG, commitments, scores, flags, NO_REFERENCE, good))
    chain.transact(mock.functions.setReportedDigest(keccak(text="another circuit")))
    assert not chain.call(adapter.functions.verifyRound(TAG, commitments, scores, flags, NO_REFERENCE, good))


def test_rounds_go_through_the_round_verifier_and_count_only_one_word_equal_to_one(actors: Actors) -> None:
    """With a circuit-specific round verifier, rounds are its answer alone (not the reusable verifier's, nor the
    VKA's): accepted only when the call succeeds and answers exactly one word, 1. A revert, an empty, short or long
    answer, or another word (true-ish 2, a (1, digest) pair) is a refusal; rows still go through the reusable
    verifier."""
    chain = actors.admin.chain
    specific = chain.deploy(actors.artifacts["MockRoundVerifier"])
    adapter, _, _ = deploy(actors, round_verifier=specific.address)
    assert chain.call(adapter.functions.roundVerifier()) == specific.address
    commitments, flags, scores = [b"\x01" * 32], [False], [8192]
    good = mock_proof(instances(commitments, flags, scores))  # what the reusable (mock) verifier would accept

    def answers(answer: bytes, *, reverts: bool = False) -> bool:
        chain.transact(specific.functions.setAnswer(answer, reverts))
        return bool(chain.call(adapter.functions.verifyRound(TAG, commitments, scores, flags, NO_REFERENCE, good)))

    one, two = (1).to_bytes(32, "big"), (2).to_bytes(32, "big")
    assert answers(one)
    assert not answers(one, reverts=True)
    assert not answers(b"")  # the reusable verifier would have accepted this proof: it is not asked
    assert not answers(one[:31])
    assert not answers(one + bytes(32))
    assert not answers(two)
    assert not answers(bytes(32))
    assert not answers(one + keccak(text="a vka digest"))
    no_code, _, _ = deploy(actors, round_verifier="0x" + "11" * 20)  # an address without code answers nothing
    assert not chain.call(no_code.functions.verifyRound(TAG, commitments, scores, flags, NO_REFERENCE, good))


#: The last commit whose EzklRoundVerifier had no ``roundVerifier()`` (rounds through the reusable verifier only).
BEFORE_ROUND_VERIFIER = "4baec28022731e55cc372d86a62c88dc16c48cf2"


def test_an_adapter_from_before_the_round_verifier_is_described_as_using_the_reusable_one(actors: Actors) -> None:
    """Adapters deployed before ``roundVerifier()`` existed verify rounds through the reusable verifier: ``zk info``
    (describe_verifier) and the code check say so instead of taking them for something else."""
    from bench.gas import baseline_artifacts
    from marketplace.adapters.ezkl.evm import describe_verifier, round_verifier_of

    chain = actors.admin.chain
    mock = chain.deploy(actors.artifacts["MockHalo2Verifier"])
    words = [keccak(text=f"vka word {i}") for i in range(337)]
    old = chain.deploy(
        baseline_artifacts(BEFORE_ROUND_VERIFIER)["EzklRoundVerifier"],
        mock.address, words, ROW_VKA, N, 32, ZERO_ROW, encode_rule_version(RULE_VERSION), *LABEL,
    )  # fmt: skip
    assert round_verifier_of(chain, old.address) is None
    deployed = describe_verifier(actors.admin, old.address)
    assert deployed.vka == words and deployed.round_verifier is None and deployed.quotient_helper is None


def test_projects_larger_than_the_circuit_are_refused(actors: Actors) -> None:
    adapter, _, _ = deploy(actors)
    actors.admin.chain.transact(actors.admin.market.functions.setVerifierApproval(adapter.address, True))
    with reverts("VerifierTooSmall"):  # 5 trainers could join a 4-slot circuit's project
        actors.create(verifier=adapter.address, max_trainers=N + 1)
    assert actors.create(verifier=adapter.address, max_trainers=N) > 0


def test_instances_are_hashes_then_flags_then_scores_with_padding(actors: Actors) -> None:
    adapter, _, _ = deploy(actors)
    chain = actors.admin.chain
    commitments = [b"\x01" * 32, b"\x00" * 32, b"\x02" * 32]  # trainer 1 did not submit
    assert chain.call(adapter.functions.acceptsCommitment(b"\x01" * 32))
    assert not chain.call(adapter.functions.acceptsCommitment(b"\xff" * 32))  # >= the field modulus
    assert not chain.call(adapter.functions.acceptsCommitment(b"\x00" * 32))
    # The hash of the all-zero row is what an empty slot is: a "submission" of it contributes nothing.
    assert not chain.call(adapter.functions.acceptsCommitment(ZERO_ROW.to_bytes(32, "big")))
    assert chain.call(adapter.functions.acceptsCommitment((ZERO_ROW + 1).to_bytes(32, "big")))
    flags, scores = [False, False, True], [8192, 0, 0]
    good = mock_proof(instances(commitments, flags, scores))

    def verify(*args: object) -> object:
        return adapter.functions.verifyRound(TAG, *args[:-1], NO_REFERENCE, args[-1])

    assert chain.call(verify(commitments, scores, flags, good))
    assert not chain.call(verify(commitments, [8193, 0, 0], flags, good))  # a score changed
    assert not chain.call(verify(commitments, scores, [True, False, True], good))  # a flag changed
    assert not chain.call(verify([b"\x03" * 32, *commitments[1:]], scores, flags, good))  # swapped commitment
    # A non-submitter cannot be scored or flagged; values must be field elements; at most N trainers.
    assert not chain.call(
        verify(commitments, [8192, 1, 0], flags, mock_proof(instances(commitments, flags, [8192, 1, 0])))
    )
    big = [R, 0, 0]
    assert not chain.call(verify(commitments, big, flags, mock_proof(instances(commitments, flags, big))))
    five = [b"\x01" * 32] * 5
    assert not chain.call(verify(five, [0] * 5, [False] * 5, b"\x00" * 32))
    assert not chain.call(verify(commitments, scores, flags, b"not a proof"))


def test_the_reference_commitment_is_h_ref_and_zero_stands_for_the_zero_row(actors: Actors) -> None:
    """``verifyRound``'s reference commitment is the instance ``h_ref`` (index N): 0 (none revealed) is the
    all-zero row's hash; a proof made with one reference fails with another, with none, and a reference
    not below the field modulus is refused."""
    adapter, _, _ = deploy(actors)
    chain = actors.admin.chain
    commitments, flags, scores = [b"\x01" * 32, b"\x02" * 32], [False, False], [8192, 4096]
    ref = 424242
    with_ref = mock_proof(instances(commitments, flags, scores, reference=ref))
    without = mock_proof(instances(commitments, flags, scores))

    def verify(reference: bytes, proof: bytes) -> bool:
        return bool(chain.call(adapter.functions.verifyRound(TAG, commitments, scores, flags, reference, proof)))

    assert verify(ref.to_bytes(32, "big"), with_ref)
    assert not verify(NO_REFERENCE, with_ref)  # dropped
    assert not verify((ref + 1).to_bytes(32, "big"), with_ref)  # replaced
    assert verify(NO_REFERENCE, without) and verify(ZERO_ROW.to_bytes(32, "big"), without)  # 0 is the zero row
    assert not verify(ref.to_bytes(32, "big"), without)  # a reference the proof was not made with
    at_modulus = mock_proof(instances(commitments, flags, scores, reference=R))
    assert not verify(R.to_bytes(32, "big"), at_modulus)


def test_the_round_tag_is_bound_by_its_chunks_and_the_provers_tag_hash(actors: Actors) -> None:
    """The adapter fills in the tag's 8 chunks of 16 bits (its first 128 bits) from the tag the market
    passes and takes h_tag from the proof bytes, abi.encode(bytes halo2Proof, uint256 tagHash)."""
    adapter, _, _ = deploy(actors)
    chain = actors.admin.chain
    commitments, flags, scores = [b"\x01" * 32, b"\x02" * 32], [False, True], [8192, 0]
    inst = instances(commitments, flags, scores)
    assert inst[N] == ZERO_ROW and inst[N + 1] == TAG_HASH  # no reference row, then h_tag
    assert inst[-8:] == [int.from_bytes(TAG[2 * j : 2 * j + 2], "big") for j in range(8)]
    good = mock_proof(inst)

    def verify(tag: bytes, proof: bytes) -> bool:
        return bool(chain.call(adapter.functions.verifyRound(tag, commitments, scores, flags, NO_REFERENCE, proof)))

    assert verify(TAG, good)
    value = int.from_bytes(TAG, "big")
    last_bound, first_free = 1 << 128, 1 << 127  # the lowest of the high (bound) 128 bits, the highest of the rest
    assert not verify((value ^ last_bound).to_bytes(32, "big"), good)  # another tag: other chunks
    assert not verify(keccak(text="another round"), good)
    assert verify((value ^ first_free).to_bytes(32, "big"), good)  # the low 128 bits are not bound (see the NatSpec)
    assert not verify(TAG, mock_proof(inst, TAG_HASH + 1))  # h_tag is an instance: another one fails
    at_modulus = instances(commitments, flags, scores, tag_hash=R)
    assert not verify(TAG, mock_proof(at_modulus, R))  # h_tag must be a field element
    # Anything but abi.encode(bytes, uint256) is refused, whatever the bytes inside.
    halo2 = keccak(encode(["uint256[]"], [inst]))
    assert not verify(TAG, halo2)  # the bare Halo2 proof
    assert not verify(TAG, good[:-1])  # truncated
    assert not verify(TAG, good + b"\0" * 32)  # trailing bytes
    assert not verify(TAG, (96).to_bytes(32, "big") + good[32:])  # another head offset
    assert not verify(TAG, good[:64] + (2**255).to_bytes(32, "big") + good[96:])  # a length past the end


def test_finalize_through_the_adapter(actors: Actors) -> None:
    adapter, _, _ = deploy(actors)
    actors.admin.chain.transact(actors.admin.market.functions.setVerifierApproval(adapter.address, True))
    pid = actors.owner.create_project(
        ProjectConfig(**{**actors.config().model_dump(), "verifier": adapter.address, "max_trainers": 3, "rounds": 1})
    )
    for t in actors.trainers[:3]:
        t.join(pid)
    # Commitments must be field elements (Poseidon hashes are) and not the zero row's hash: anything
    # else is refused when it is revealed (a trainer that sealed one can never reveal).
    bad = actors.training_project(2, verifier=adapter.address, rounds=1)  # trainers 0 and 1 again
    refused = [(R + 5).to_bytes(32, "big"), ZERO_ROW.to_bytes(32, "big")]  # not a field element; the zero row
    for t, c in zip(actors.trainers[:2], refused, strict=True):
        commit(t, bad, 0, "bafkreiu", c)
    for t, c in zip(actors.trainers[:2], refused, strict=True):
        with reverts("CommitmentNotAccepted") as info:
            reveal_update(t, bad, 0, "bafkreiu", c)
        assert info.value.args_dict["commitment"] == c

    commitments = [
        (int.from_bytes(commitment_for(pid, 0, t.address), "big") % R).to_bytes(32, "big") for t in actors.trainers[:3]
    ]
    for t, c in zip(actors.trainers[:3], commitments, strict=True):
        commit(t, pid, 0, "bafkreiu", c)
    for t, c in zip(actors.trainers[:3], commitments, strict=True):
        reveal_update(t, pid, 0, "bafkreiu", c)
    flags, scores = [False, True, False], [3 * 8192, 0, 8192]
    tag = round_tag(actors.owner, pid, 0)
    proof = mock_proof(instances(commitments, flags, scores, tag=tag))
    tampered = Finalization("bafkreim", "bafkreip", [8192, 0, 3 * 8192], flags, proof)
    with reverts("InvalidProof"):
        actors.aggregator.finalize_round(pid, 0, tampered)
    receipt = actors.aggregator.finalize_round(pid, 0, Finalization("bafkreim", "bafkreip", scores, flags, proof))
    (event,) = actors.events(receipt, "RoundFinalized")
    assert event["rewards"] == [7_500_000_000_000_000_000, 0, 2_500_000_000_000_000_000]


# ---------------------------------------------------------------- what the adapter declares


class KeySetupReached(Exception):
    """Raised by the stubbed key setup: prover selection got as far as the circuit's keys."""


def _stub_key_setup(monkeypatch: pytest.MonkeyPatch, calls: list[tuple[int, int]]) -> None:
    """Key setup (``--srs``) and the lookup of cached keys (no ``--srs``) record the circuit asked for."""

    def setup(n: int, k: int, *, srs: Path | None = None) -> None:
        calls.append((n, k))
        raise KeySetupReached

    def find_keys(n: int, k: int, vka: list[bytes], *, root: Path | None = None) -> None:
        calls.append((n, k))
        raise KeySetupReached

    monkeypatch.setattr(marketplace.adapters.ezkl.keys, "setup", setup)
    monkeypatch.setattr(marketplace.adapters.ezkl.keys, "find_keys", find_keys)


def _approved_project(actors: Actors, adapter_address: str) -> int:
    actors.admin.chain.transact(actors.admin.market.functions.setVerifierApproval(adapter_address, True))
    return actors.create(verifier=adapter_address, max_trainers=N)


def test_the_adapter_declares_ezkl_and_the_rule_version_it_was_deployed_for(
    actors: Actors, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter, mock, words = deploy(actors)
    chain = actors.admin.chain
    assert chain.call(adapter.functions.proofSystem()) == b"ezkl-halo2-kzg".ljust(32, b"\0")
    assert chain.call(adapter.functions.ruleVersion()) == bytes.fromhex(RULE_VERSION)
    pid = _approved_project(actors, adapter.address)
    info = actors.owner.verifier_info(pid)
    assert info == VerifierInfo(adapter.address, "ezkl-halo2-kzg", RULE_VERSION, N, 32)
    calls: list[tuple[int, int]] = []
    _stub_key_setup(monkeypatch, calls)
    with pytest.raises(KeySetupReached):  # dispatched to the ezkl prover, which looks for the circuit's keys
        prover_for(actors.aggregator, pid)
    with pytest.raises(KeySetupReached):  # or, given an SRS file, sets them up
        prover_for(actors.aggregator, pid, srs=Path("ceremony.srs"))
    assert calls == [(N, 32), (N, 32)]
    with reverts("InvalidSetup"):
        chain.deploy(
            actors.artifacts["EzklRoundVerifier"],
            mock.address,
            words,
            ROW_VKA,
            N,
            32,
            ZERO_ROW,
            b"\0" * 8,
            *LABEL,
            NO_ROUND_VERIFIER,
        )


def test_aggregator_refuses_an_adapter_of_another_rule_version_before_any_key_or_proof(
    actors: Actors, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = f"{int(RULE_VERSION, 16) ^ 0xFF:016x}"
    adapter, _, _ = deploy(actors, rule_version=other)
    pid = _approved_project(actors, adapter.address)
    calls: list[tuple[int, int]] = []
    _stub_key_setup(monkeypatch, calls)

    def no_proof(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("a proof was computed")

    monkeypatch.setattr(EzklProver, "prove", no_proof)
    node = AggregatorNode(actors.aggregator, unreachable_store())
    with pytest.raises(
        RuleVersionMismatch, match=f"was built for rule {other}; this code implements rule {RULE_VERSION}"
    ):
        node.prover(pid)
    assert calls == []  # refused before the circuit's keys were even looked at


def test_the_aggregator_daemon_reports_a_project_it_cannot_prove_once_and_goes_on(
    actors: Actors, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project whose verifier this code cannot prove for (here: another rule version) is reported once, with
    its project id, and skipped: the daemon does not die with a traceback (issue 13: errors in one line)."""
    other = f"{int(RULE_VERSION, 16) ^ 0xFF:016x}"
    adapter, _, _ = deploy(actors, rule_version=other)
    pid = _approved_project(actors, adapter.address)
    _stub_key_setup(monkeypatch, [])
    node = AggregatorNode(actors.aggregator, unreachable_store())
    monkeypatch.setattr(node, "is_due", lambda project: True)  # the round is due: the prover is chosen first
    errors: list[Exception] = []
    node.run([pid], poll_seconds=0.01, on_error=errors.append)  # returns: the only project is skipped
    (error,) = errors
    assert isinstance(error, RuleVersionMismatch) and f"project {pid}" in getattr(error, "__notes__", [])


def test_an_unknown_proof_system_is_refused(actors: Actors) -> None:
    adapter, _, _ = deploy(actors)
    pid = _approved_project(actors, adapter.address)
    declared = actors.owner.verifier_info(pid)

    class Groth16Market(MarketClient):
        def verifier_info(self, project_id: int) -> VerifierInfo:
            return replace(declared, proof_system="groth16")

    market = Groth16Market(
        actors.aggregator.chain, actors.aggregator.market, actors.aggregator.registry, actors.aggregator.lens
    )
    with pytest.raises(UnknownProofSystem, match="'groth16'; this code proves only for 'test-hash', 'ezkl-halo2-kzg'"):
        prover_for(market, pid)
