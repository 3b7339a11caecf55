"""Real ezkl proofs of a round's scoring, verified on chain by TrainingMarket through the
EzklRoundVerifier adapter and ezkl's reusable Halo2 verifier.

One small circuit (4 trainer slots, 32-wide sketches) is set up once and cached under
``.cache/zk``; each proof takes ~20 s on 2 cores. Development SRS (gen_srs): test only."""

from __future__ import annotations

import numpy as np
import pytest

from marketplace.adapters.chain.market import Finalization, ProjectConfig
from marketplace.adapters.ezkl.evm import deploy_halo2_verifier, deploy_round_verifier
from marketplace.adapters.ezkl.keys import CircuitKeys, setup
from marketplace.adapters.ezkl.prover import prove_rows
from marketplace.protocol.commitment import commit_update, quantize
from marketplace.protocol.ordering import in_arrival_order
from marketplace.round.prove import EzklProver, prover_for
from marketplace.rule.gram import gram_rule_int
from tests.market_fixtures import Actors, reverts

N, K = 4, 32


@pytest.fixture(scope="session")
def zk_keys() -> CircuitKeys:
    return setup(N, K)


def _updates(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=2_000)
    ups = [base + rng.normal(size=2_000) * 0.6 for _ in range(n)]
    ups[-1] = -ups[-1]  # the last trainer flips its update: the rule must flag it
    return ups


def test_real_proof_accepted_on_chain_and_every_forgery_rejected(actors: Actors, zk_keys: CircuitKeys) -> None:
    chain = actors.admin.chain
    halo2 = deploy_halo2_verifier(chain, zk_keys)
    adapter = deploy_round_verifier(chain, zk_keys, halo2.address)
    chain.transact(actors.admin.market.functions.setVerifierApproval(adapter.address, True))
    cfg = {**actors.config().model_dump(), "verifier": adapter.address, "max_trainers": 4, "rounds": 2}
    pid = actors.owner.create_project(ProjectConfig(**cfg))
    prover = prover_for(actors.aggregator, pid)  # the adapter declares ezkl; its VKA is the cached keys'
    assert isinstance(prover, EzklProver) and prover.keys == zk_keys
    trainers = actors.trainers[:4]
    for t in trainers:
        t.join(pid)

    # Trainers commit to their rows (Poseidon); they arrive in the order 3, 0, 2, 1.
    seed = actors.owner.sketch_seed(pid)
    rows, commitments = zip(*(commit_update(u, seed, K) for u in _updates(1, 4)), strict=True)
    for i in (3, 0, 2, 1):
        trainers[i].submit_update(pid, 0, f"bafkreiupdate{i}", commitments[i])
    order = actors.owner.arrival_order(pid, 0)
    assert order == [3, 0, 2, 1]
    slots = np.array(in_arrival_order(list(rows), order))

    proof = prove_rows(zk_keys, slots)
    reference = gram_rule_int(quantize(slots))  # the quantized rule is the reference
    assert proof.flags == reference.flags.tolist() and proof.scores == reference.scores.tolist()
    assert proof.hashes == [int.from_bytes(c, "big") for c in in_arrival_order(list(commitments), order)]
    assert proof.flags[order.index(3)] and not any(proof.flags[order.index(i)] for i in (0, 1, 2))

    # Back to trainer order for the contract, which hands them to the verifier in arrival order.
    flags = [False] * 4
    scores = [0] * 4
    for slot, trainer in enumerate(order):
        flags[trainer], scores[trainer] = proof.flags[slot], proof.scores[slot]

    def finalize(scores_: list[int], flags_: list[bool], proof_bytes: bytes, round_: int = 0):  # type: ignore[no-untyped-def]
        result = Finalization(f"bafkreimodel{round_}", f"bafkreiproof{round_}", scores_, flags_, proof_bytes)
        return actors.aggregator.finalize_round(pid, round_, result)

    tampered_proof = bytearray(proof.proof)
    tampered_proof[100] ^= 1
    with reverts("InvalidProof"):
        finalize(scores, flags, bytes(tampered_proof))
    with reverts("InvalidProof"):  # a public output changed: one more unit of score for trainer 0
        finalize([scores[0] + 1, *scores[1:]], flags, proof.proof)
    with reverts("InvalidProof"):  # the flipped trainer unflagged
        finalize(scores, [False] * 4, proof.proof)

    receipt = finalize(scores, flags, proof.proof)
    (event,) = actors.events(receipt, "RoundFinalized")
    assert event["rewards"][3] == 0 and all(r > 0 for r in event["rewards"][:3])
    gas = receipt["gasUsed"]
    assert 1_000_000 < gas < 3_000_000, gas

    # Round 1: the same commitments again cannot reuse round 0's proof (replay) ...
    for i in (3, 0, 2, 1):
        trainers[i].submit_update(pid, 1, f"bafkreiupdate{i}", commitments[i])
    with reverts("ProofAlreadyUsed"):
        finalize(scores, flags, proof.proof, round_=1)
    # ... and a proof over the rows in another order binds other commitments to the slots.
    swap = [1, 0, 2, 3]
    swapped = prove_rows(zk_keys, slots[swap])
    f2, s2 = [False] * 4, [0] * 4
    for slot, trainer in enumerate(order):
        f2[trainer], s2[trainer] = swapped.flags[swap[slot]], swapped.scores[swap[slot]]
    with reverts("InvalidProof"):
        finalize(s2, f2, swapped.proof, round_=1)
