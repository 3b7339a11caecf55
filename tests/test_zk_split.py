"""The round circuit's own ezkl verifier (its verifying key compiled in), split in two contracts under the
24,576-byte limit (:mod:`marketplace.adapters.ezkl.dedicated`): both parts fit; a real proof verifies through
it and through the adapter; a changed proof byte or instance, a lying helper, a helper whose answer is not one
word, a helper without code are refused; the deployed codes are checked against the keys; a generated source
of another shape is refused by the split, never turned into a verifier.

Real proofs of the 4 x 32 circuit with the development keys of tests/test_zk_onchain.py (cached in
.cache/zk/dev-srs; one proof, ~20 s). ``heavy``: every offered size's verifier splits, and both parts fit up
to 32 slots but not at 64 (sets up the keys of the sizes not cached yet: minutes)."""

from __future__ import annotations

import numpy as np
import pytest
from web3.exceptions import Web3Exception

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import CODE_SIZE_LIMIT
from marketplace.adapters.ezkl.dedicated import (
    END,
    ENTRY,
    START,
    DoesNotFit,
    UnexpectedRoundVerifier,
    UnrecognisedTemplate,
    generated_source,
    split_artifacts,
    split_verifier,
)
from marketplace.adapters.ezkl.evm import (
    check_round_verifier,
    deploy_halo2_verifier,
    deploy_round_verifier,
    deploy_split_verifier,
)
from marketplace.adapters.ezkl.keys import CIRCUIT_SIZES, CircuitKeys, setup
from marketplace.adapters.ezkl.prover import CircuitProof, prove_rows
from marketplace.protocol import round_tag as tags
from marketplace.protocol.commitment import commit_update
from marketplace.round.prove import NO_REFERENCE
from tests.market_fixtures import Actors

N, K = 4, 32
TAG = tags.round_tag(31337, "0x" + "00" * 19 + "01", 1, 0)  # any tag: the verifiers are called directly


@pytest.fixture(scope="module")
def zk_keys() -> CircuitKeys:
    return setup(N, K)


@pytest.fixture(scope="module")
def proof(zk_keys: CircuitKeys) -> CircuitProof:
    """A real proof of a round of 4: three honest updates and a sign-flipper (flagged)."""
    rng = np.random.default_rng(7)
    base = rng.normal(size=2_000)
    updates = [base + rng.normal(size=2_000) * 0.6 for _ in range(N)]
    updates[-1] = -updates[-1]
    rows = np.array([commit_update(u, 5, K)[0] for u in updates])
    made = prove_rows(zk_keys, rows, TAG)
    assert made.flags[-1] and not any(made.flags[:-1])
    return made


def _instances(p: CircuitProof) -> list[int]:
    """The public instances in the circuit's order, as the adapter hands them to the round verifier."""
    return p.instances


def _accepts(chain: ChainClient, verifier: object, proof: bytes, instances: list[int]) -> bool:
    """Whether ``verifier.verifyProof(proof, instances)`` answers 1 (a revert is a refusal)."""
    call = verifier.functions.verifyProof(proof, instances)  # type: ignore[attr-defined]
    try:
        raw = chain.w3.eth.call({"to": call.address, "data": call._encode_transaction_data(), "gas": 10_000_000})
    except (Web3Exception, ValueError):  # a revert is a refusal
        return False
    return bytes(raw) == (1).to_bytes(32, "big")


def test_both_parts_fit_and_are_generated_beside_the_keys(zk_keys: CircuitKeys) -> None:
    split = split_artifacts(zk_keys)
    assert generated_source(zk_keys) == zk_keys.root / "dedicated" / "Halo2Verifier.sol"
    assert all(0 < size < CODE_SIZE_LIMIT for size in split.sizes.values()), split.sizes
    assert 0 < split.snapshot <= 0x2000
    assert split_artifacts(zk_keys) == split  # cached: the same artifacts again


@pytest.mark.heavy
@pytest.mark.parametrize("n", sorted(CIRCUIT_SIZES))
def test_every_offered_size_splits_and_both_parts_fit_but_64(n: int) -> None:
    """Every offered size's verifier splits (the TopK sizes' memory layout ends above 0x2000: the snapshot
    follows it); both parts fit at 4 to 32 slots. At 64 slots (3 inner columns: more gates) the helper is
    26,649 bytes: refused as not fitting, and `zk deploy` falls back to the reusable verifier there."""
    keys = setup(n, CIRCUIT_SIZES[n])
    if n == 64:
        with pytest.raises(DoesNotFit, match="Halo2QuotientEval") as caught:
            split_artifacts(keys)
        assert caught.value.sizes["Halo2QuotientEval"] > CODE_SIZE_LIMIT >= caught.value.sizes["Halo2Verifier"]
        return
    split = split_artifacts(keys)
    assert all(0 < size < CODE_SIZE_LIMIT for size in split.sizes.values()), (n, split.sizes)


def test_a_changed_template_is_refused(zk_keys: CircuitKeys) -> None:
    source = generated_source(zk_keys).read_text()
    split_verifier(source)  # the template as generated splits
    opening = START + "            {\n"
    assert source.count(opening) == 1

    def inside_block(line: str) -> str:
        return source.replace(opening, opening + f"                {line}\n")

    changed = {
        "no start marker": source.replace(START, ""),
        "no end marker": source.replace(END, ""),
        "two start markers": source.replace(END, START + END),
        "markers swapped": source.replace(START, "@@").replace(END, START).replace("@@", END),
        "another entry point": source.replace(ENTRY, ENTRY.replace("public", "external")),
        "another contract name": source.replace("contract Halo2Verifier {", "contract Verifier {"),
        "the verifier's state": inside_block("success := 0"),
        "a verifier function": inside_block("let t := batch_invert(1, 0x00, 0x00)"),
        "a call": inside_block("pop(staticcall(gas(), 0x05, 0x00, 0x00, 0x00, 0x00))"),
        "another memory write": inside_block("mstore(0x1c00, 0)"),
        "a computed memory write": inside_block("mstore(add(0x00, 0x20), 0)"),
        "memory above the layout": inside_block("let t := mload(0x4000)"),
        "memory at a computed address": inside_block("let t := mload(add(0x00, 0x20))"),
        "an early return": inside_block("return(0x00, 0x20)"),
    }
    for what, text in changed.items():
        with pytest.raises(UnrecognisedTemplate):
            split_verifier(text)
            pytest.fail(f"split a template with {what}")


def test_a_real_proof_verifies_through_the_split_verifier_and_a_wrong_helper_is_refused(
    actors: Actors, zk_keys: CircuitKeys, proof: CircuitProof
) -> None:
    chain = actors.admin.chain
    split = split_artifacts(zk_keys)
    deployed = deploy_split_verifier(chain, zk_keys)
    verifier = chain.contract(split.verifier, deployed.verifier)
    assert chain.call(verifier.functions.helper()) == deployed.helper
    assert chain.code(deployed.verifier) and chain.code(deployed.helper)
    instances = _instances(proof)
    assert _accepts(chain, verifier, proof.halo2_proof, instances)

    changed_byte = bytearray(proof.halo2_proof)
    changed_byte[200] ^= 1
    assert not _accepts(chain, verifier, bytes(changed_byte), instances)
    for i in (0, N, N + 1, N + 2, 2 * N + 2, len(instances) - 1):  # hash, h_ref, tag hash, flag, score, chunk
        other = list(instances)
        other[i] ^= 1
        assert not _accepts(chain, verifier, proof.halo2_proof, other), i
    assert not _accepts(chain, verifier, proof.halo2_proof[:-32], instances)

    def with_helper(helper: str) -> object:
        return chain.deploy(split.verifier, helper)

    def forwarding(mode: int) -> str:
        return chain.deploy(actors.artifacts["MockQuotientHelper"], deployed.helper, mode).address

    assert _accepts(chain, with_helper(forwarding(0)), proof.halo2_proof, instances)  # a faithful relay works
    for mode in (1, 2, 3):  # its answer plus one; the right answer and a second word; 31 bytes of it
        assert not _accepts(chain, with_helper(forwarding(mode)), proof.halo2_proof, instances), mode
    assert not _accepts(chain, with_helper("0x" + "22" * 20), proof.halo2_proof, instances)  # no code there
    ones = chain.deploy(actors.artifacts["MockRoundVerifier"])  # answers the word 1 to anything
    chain.transact(ones.functions.setAnswer((1).to_bytes(32, "big"), False))
    assert not _accepts(chain, with_helper(ones.address), proof.halo2_proof, instances)

    # Through the adapter, as finalizeRound asks it; the deployed codes are the keys'.
    halo2 = deploy_halo2_verifier(chain, zk_keys).address
    adapter = deploy_round_verifier(chain, zk_keys, halo2)
    hashes = [h.to_bytes(32, "big") for h in proof.hashes]

    def verifies(scores: list[int], flags: list[bool], proof_bytes: bytes = proof.proof) -> bool:
        return bool(chain.call(adapter.functions.verifyRound(TAG, hashes, scores, flags, NO_REFERENCE, proof_bytes)))

    assert verifies(proof.scores, proof.flags)
    assert not verifies([proof.scores[0] + 1, *proof.scores[1:]], proof.flags)
    assert not verifies(proof.scores, [False] * N)
    found = check_round_verifier(chain, adapter.address, zk_keys)
    assert found is not None and found.verifier == chain.call(adapter.functions.roundVerifier())
    assert found.helper == chain.call(chain.contract(split.verifier, found.verifier).functions.helper())

    # An adapter whose round verifier calls a relay (same verifier code, other helper code) or is no split
    # verifier at all verifies the same proof, but is not what the keys compile to.
    for round_verifier in (with_helper(forwarding(0)).address, ones.address):  # type: ignore[attr-defined]
        relayed = chain.deploy(
            actors.artifacts["EzklRoundVerifier"],
            halo2,
            zk_keys.vka_words(),
            [bytes(w) for w in chain.call(adapter.functions.rowVka())],
            N,
            K,
            chain.call(adapter.functions.zeroRowHash()),
            chain.call(adapter.functions.ruleVersion()),
            "relay",
            "a round verifier that is not the keys'",
            round_verifier,
        )
        with pytest.raises(UnexpectedRoundVerifier):
            check_round_verifier(chain, relayed.address, zk_keys)
    reusable = deploy_round_verifier(chain, zk_keys, halo2, specific=False)
    assert check_round_verifier(chain, reusable.address, zk_keys) is None
    call = reusable.functions.verifyRound(TAG, hashes, proof.scores, proof.flags, NO_REFERENCE, proof.proof)
    assert bool(chain.call(call))
