"""Real ezkl proofs of a round's scoring, verified on chain by TrainingMarket through the
EzklRoundVerifier adapter and the circuit's own ezkl verifier, split in two contracts (what
``deploy_round_verifier`` deploys by default; tests/test_zk_split.py tests the split itself and the
reusable verifier's path); a proof is bound to its chain,
market, project and round (issue 12 item 3: another project's sybils with the victim's commitments
in the same order cannot use, nor use up, the victim's proof).

One small circuit (4 trainer slots, 32-wide sketches) is set up once and cached under
``.cache/zk``; each proof takes ~20 s on 2 cores. Development SRS (gen_srs): test only. ``heavy``:
one proof of the TopK layout (the sort the circuits of 32 and 64 slots use: a shuffle argument in
the EVM verifier) at 8 x 32, about a minute plus its setup. A round with the owner's reference row
proves the reference's scores, and ezkl's verifier accepts it on chain with the reference's
commitment as the instance ``h_ref``; the adapter, which the market calls, takes no reference yet."""

from __future__ import annotations

import numpy as np
import pytest
from web3.exceptions import ContractLogicError, Web3RPCError

from marketplace.adapters.chain.market import Finalization, MarketClient, ProjectConfig
from marketplace.adapters.ezkl.evm import deploy_halo2_verifier, deploy_round_verifier
from marketplace.adapters.ezkl.keys import CircuitKeys, setup
from marketplace.adapters.ezkl.prover import CircuitProof, encode_round_proof, prove_rows, round_instances
from marketplace.protocol import round_tag as tags
from marketplace.protocol.commitment import commit_update, commitment_bytes, quantize, zero_row_commitment
from marketplace.protocol.ordering import in_arrival_order
from marketplace.round.prove import NO_REFERENCE, EzklProver, prover_for, round_tag
from marketplace.rule.circuit import CircuitLayout
from marketplace.rule.gram import gram_rule_int, gram_rule_ref_int
from tests.market_fixtures import Actors, commit, reveal_update, reverts
from tests.zk_rounds import ONE, RoundSpec, build_reference, build_round

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


def _zk_verifier(actors: Actors, keys: CircuitKeys):  # type: ignore[no-untyped-def]
    """ezkl's verifier and the circuit's adapter, deployed and approved in the market."""
    chain = actors.admin.chain
    halo2 = deploy_halo2_verifier(chain, keys)
    adapter = deploy_round_verifier(chain, keys, halo2.address)
    chain.transact(actors.admin.market.functions.setVerifierApproval(adapter.address, True))
    return adapter


def _in_trainer_order(proof: CircuitProof, order: list[int]) -> tuple[list[int], list[bool]]:
    """The proof's scores and flags (in arrival order) back in trainer order, as finalizeRound takes them."""
    scores, flags = [0] * len(order), [False] * len(order)
    for slot, trainer in enumerate(order):
        scores[trainer], flags[trainer] = proof.scores[slot], proof.flags[slot]
    return scores, flags


def _submit(trainers: list[MarketClient], pid: int, round_: int, cids: list[str], commitments: list[bytes]) -> None:
    """The trainers commit in the order given, then reveal in the reverse order (the commit order is the
    arrival order)."""
    for t, cid, c in zip(trainers, cids, commitments, strict=True):
        commit(t, pid, round_, cid, c)
    for t, cid, c in reversed(list(zip(trainers, cids, commitments, strict=True))):
        reveal_update(t, pid, round_, cid, c)


def _tag_hash(tag: bytes) -> int:
    """Poseidon of the circuit's tag input, as the prover would hand it over for ``tag``."""
    return int.from_bytes(commitment_bytes(np.array(tags.tag_input(tag))), "big")


def test_real_proof_accepted_on_chain_and_every_forgery_rejected(actors: Actors, zk_keys: CircuitKeys) -> None:
    adapter = _zk_verifier(actors, zk_keys)
    cfg = {**actors.config().model_dump(), "verifier": adapter.address, "max_trainers": 4, "rounds": 2}
    pid = actors.owner.create_project(ProjectConfig(**cfg))
    prover = prover_for(actors.aggregator, pid)  # the adapter declares ezkl; its VKA is the cached keys'
    assert isinstance(prover, EzklProver) and prover.keys == zk_keys
    trainers = actors.trainers[:4]
    for t in trainers:
        t.join(pid)

    # Trainers commit to their rows (Poseidon); their commits arrive in the order 3, 0, 2, 1 (and their
    # reveals in the reverse order).
    seed = actors.owner.sketch_seed(pid)
    rows, commitments = zip(*(commit_update(u, seed, K) for u in _updates(1, 4)), strict=True)
    arrival = (3, 0, 2, 1)
    _submit([trainers[i] for i in arrival], pid, 0, [f"bafkreiupdate{i}" for i in arrival],
            [commitments[i] for i in arrival])  # fmt: skip
    order = actors.owner.arrival_order(pid, 0)
    assert order == [3, 0, 2, 1]
    slots = np.array(in_arrival_order(list(rows), order))

    tag = round_tag(actors.aggregator, pid, 0)
    proof = prove_rows(zk_keys, slots, tag)
    reference = gram_rule_int(quantize(slots))  # the quantized rule is the reference
    assert proof.flags == reference.flags.tolist() and proof.scores == reference.scores.tolist()
    assert proof.hashes == [int.from_bytes(c, "big") for c in in_arrival_order(list(commitments), order)]
    assert proof.flags[order.index(3)] and not any(proof.flags[order.index(i)] for i in (0, 1, 2))
    assert proof.tag == tags.tag_chunks(tag) and proof.tag_hash == _tag_hash(tag)

    # Back to trainer order for the contract, which hands them to the verifier in arrival order.
    scores, flags = _in_trainer_order(proof, order)

    def finalize(scores_: list[int], flags_: list[bool], proof_bytes: bytes, round_: int = 0):  # type: ignore[no-untyped-def]
        result = Finalization(f"bafkreimodel{round_}", f"bafkreiproof{round_}", scores_, flags_, proof_bytes)
        return actors.aggregator.finalize_round(pid, round_, result)

    tampered_proof = bytearray(proof.halo2_proof)
    tampered_proof[100] ^= 1
    with reverts("InvalidProof"):
        finalize(scores, flags, encode_round_proof(bytes(tampered_proof), proof.tag_hash))
    with reverts("InvalidProof"):  # a public output changed: one more unit of score for trainer 0
        finalize([scores[0] + 1, *scores[1:]], flags, proof.proof)
    with reverts("InvalidProof"):  # the flipped trainer unflagged
        finalize(scores, [False] * 4, proof.proof)

    receipt = finalize(scores, flags, proof.proof)
    (event,) = actors.events(receipt, "RoundFinalized")
    assert event["rewards"][3] == 0 and all(r > 0 for r in event["rewards"][:3])
    gas = receipt["gasUsed"]
    assert 1_000_000 < gas < 3_000_000, gas

    # Round 1, the same commitments again: a proof over the rows in another order (made for this
    # round) binds other commitments to the slots.
    _submit([trainers[i] for i in arrival], pid, 1, [f"bafkreiupdate{i}" for i in arrival],
            [commitments[i] for i in arrival])  # fmt: skip
    swap = [1, 0, 2, 3]
    swapped = prove_rows(zk_keys, slots[swap], round_tag(actors.aggregator, pid, 1))
    f2, s2 = [False] * 4, [0] * 4
    for slot, trainer in enumerate(order):
        f2[trainer], s2[trainer] = swapped.flags[swap[slot]], swapped.scores[swap[slot]]
    with reverts("InvalidProof"):
        finalize(s2, f2, swapped.proof, round_=1)


def test_a_proof_is_bound_to_its_chain_market_project_and_round(actors: Actors, zk_keys: CircuitKeys) -> None:
    """The attack of issue 12 item 3: an attacker's project whose sybils submitted the victim's
    commitments in the same order tries to finalize with the victim's real proof (read from IPFS or the
    mempool before the victim's finalizeRound is mined). It is refused, the victim finalizes afterwards,
    and the proof also fails in the victim's next round and for another market or chain id."""
    adapter = _zk_verifier(actors, zk_keys)
    base = {**actors.config().model_dump(), "verifier": adapter.address, "min_trainers": 4, "max_trainers": 4}
    victim = actors.owner.create_project(ProjectConfig(**{**base, "rounds": 2}))
    attacker: MarketClient = actors.stranger  # owner and aggregator of its own project
    sybils = actors.trainers[4:8]
    copycat = attacker.create_project(ProjectConfig(**{**base, "aggregator": attacker.address, "rounds": 1}))
    for t in actors.trainers[:4]:
        t.join(victim)
    for t in sybils:
        t.join(copycat)

    rows, commitments = zip(*(commit_update(u, 11, K) for u in _updates(2, 4)), strict=True)
    arrival = (3, 0, 2, 1)  # the same commitments, in the same order, in both projects
    in_order = [commitments[i] for i in arrival]
    _submit([actors.trainers[i] for i in arrival], victim, 0, [f"bafkreivictim{i}" for i in arrival], in_order)
    _submit([sybils[i] for i in arrival], copycat, 0, [f"bafkreicopy{i}" for i in arrival], in_order)
    order = actors.owner.arrival_order(victim, 0)
    assert order == actors.owner.arrival_order(copycat, 0) == [3, 0, 2, 1]
    tag = round_tag(actors.aggregator, victim, 0)
    proof = prove_rows(zk_keys, np.array(in_arrival_order(list(rows), order)), tag)
    scores, flags = _in_trainer_order(proof, order)
    victims = Finalization("bafkreimodel", "bafkreiproof", scores, flags, proof.proof)

    # The attacker's project: the victim's proof as is, or with the tag hash its own tag would need.
    with reverts("InvalidProof"):
        attacker.finalize_round(copycat, 0, victims)
    copycat_tag = round_tag(attacker, copycat, 0)
    assert tags.tag_chunks(copycat_tag) != tags.tag_chunks(tag)
    rehashed = encode_round_proof(proof.halo2_proof, _tag_hash(copycat_tag))
    with reverts("InvalidProof"):
        attacker.finalize_round(copycat, 0, Finalization("bafkreim", "bafkreip", scores, flags, rehashed))

    # The same public values for another market or chain: refused by the verifier itself.
    chain = actors.admin.chain
    commitments_in, scores_in, flags_in = (in_arrival_order(v, order) for v in (list(commitments), scores, flags))

    def verifies(tag_: bytes, proof_bytes: bytes = proof.proof) -> bool:
        call = adapter.functions.verifyRound(tag_, commitments_in, scores_in, flags_in, NO_REFERENCE, proof_bytes)
        return bool(chain.call(call))

    market = actors.admin.market.address
    assert verifies(tags.round_tag(chain.chain_id, market, victim, 0))
    assert not verifies(tags.round_tag(chain.chain_id + 1, market, victim, 0))  # another chain
    assert not verifies(tags.round_tag(chain.chain_id, actors.stranger.address, victim, 0))  # another market
    assert not verifies(tag, encode_round_proof(proof.halo2_proof, proof.tag_hash + 1))  # another tag hash

    # The victim finalizes with its proof after the attempts; in its next round the proof is refused.
    receipt = actors.aggregator.finalize_round(victim, 0, victims)
    (event,) = actors.events(receipt, "RoundFinalized")
    assert event["projectId"] == victim and list(event["scores"]) == scores
    _submit([actors.trainers[i] for i in arrival], victim, 1, [f"bafkreivictim{i}" for i in arrival], in_order)
    with reverts("InvalidProof"):
        actors.aggregator.finalize_round(victim, 1, victims)
    assert attacker.get_project(copycat).current_round == 0


def test_a_round_with_the_owners_reference_proves_its_scores_and_verifies_on_chain(
    actors: Actors, zk_keys: CircuitKeys
) -> None:
    """A round where the owner's reference decides (it pays trainer 0, whom the rule's gate leaves unpaid):
    the proof's scores are the reference rule's, its ``h_ref`` is the reference's commitment, and ezkl's
    reusable verifier accepts it on chain under the circuit's VKA with exactly those instances (not with
    the rule's scores without the reference, nor with the zero row's hash as ``h_ref``). Through the adapter
    it verifies with the reference's commitment only: dropped (0, the zero row) or replaced, it is refused;
    the proof without a reference verifies with 0 only."""
    spec = RoundSpec(44, ("honest", "honest", "flip", "honest"), reference="agree")
    rows_q = build_round(spec, N, K)
    ref_q = build_reference(spec, rows_q)
    with_ref, without = gram_rule_ref_int(rows_q, ref_q), gram_rule_int(rows_q)
    assert with_ref.stats["ref_ok"] and without.scores[0] == 0 < with_ref.scores[0]
    tag = tags.round_tag(31337, "0x" + "00" * 19 + "01", 1, 0)  # any tag: the verifiers are called directly
    proof = prove_rows(zk_keys, rows_q / ONE, tag, ref_q / ONE)
    assert proof.flags == with_ref.flags.tolist() and proof.scores == with_ref.scores.tolist()
    assert proof.reference_hash == int.from_bytes(commitment_bytes(ref_q / ONE), "big")

    chain = actors.admin.chain
    halo2 = deploy_halo2_verifier(chain, zk_keys)
    adapter = deploy_round_verifier(chain, zk_keys, halo2.address)
    digest = bytes(chain.call(adapter.functions.vkaDigest()))
    words = zk_keys.vka_words()

    def accepted(instances: list[int]) -> bool:
        """ezkl's verifier (STATICCALL, as the adapter makes it): true and this circuit's VKA digest. Its
        third return value is not decodable (IHalo2VerifierReusable), so only the first two words are read."""
        data = halo2.functions.verifyProof(proof.halo2_proof, instances, words)._encode_transaction_data()
        try:
            raw = bytes(chain.w3.eth.call({"to": halo2.address, "data": data, "gas": 30_000_000}))
        except (ContractLogicError, Web3RPCError):  # a revert is a refusal
            return False
        return int.from_bytes(raw[:32], "big") == 1 and raw[32:64] == digest

    assert accepted(proof.instances)
    zero = int.from_bytes(zero_row_commitment(K), "big")
    assert not accepted(round_instances(proof.hashes, zero, proof.tag_hash, proof.flags, proof.scores, proof.tag))
    base = [bool(f) for f in without.flags], without.scores.tolist()
    assert not accepted(round_instances(proof.hashes, proof.reference_hash, proof.tag_hash, *base, proof.tag))
    hashes = [h.to_bytes(32, "big") for h in proof.hashes]
    reference = proof.reference_hash.to_bytes(32, "big")

    def verifies(ref: bytes, scores: list[int], flags: list[bool], proof_bytes: bytes) -> bool:
        return bool(chain.call(adapter.functions.verifyRound(tag, hashes, scores, flags, ref, proof_bytes)))

    assert verifies(reference, proof.scores, proof.flags, proof.proof)  # the adapter with the reference's hash
    assert not verifies(NO_REFERENCE, proof.scores, proof.flags, proof.proof)  # the aggregator drops it
    forged = commitment_bytes(np.roll(ref_q, 1) / ONE)
    assert not verifies(forged, proof.scores, proof.flags, proof.proof)  # or replaces it
    plain = prove_rows(zk_keys, rows_q / ONE, tag)  # no reference: the rule without it, through the adapter
    assert plain.scores == without.scores.tolist() and plain.reference_hash == zero
    assert verifies(NO_REFERENCE, plain.scores, plain.flags, plain.proof)
    assert not verifies(reference, plain.scores, plain.flags, plain.proof)  # a reference added afterwards


@pytest.mark.heavy
def test_a_topk_layout_proof_verifies_on_chain(actors: Actors) -> None:
    """The TopK layout (ezkl's sort: a prover-supplied column pinned by a shuffle argument and
    neighbour comparisons, used from 32 slots on) proves a round with an absent slot, a sign-flipper and
    a later copy at 8 x 32: its outputs are the integer rule's, the circuit's split verifier accepts it
    through the adapter, and a changed score or flag is refused."""
    keys = setup(8, 32, layout=CircuitLayout(32, "topk", 2))
    assert keys.root.name == "gram-n8-k32-topk2"  # not the production 8-slot layout's keys
    updates = _updates(5, 8)  # the last one flipped
    updates[4] = updates[2]  # a later copy
    rows = np.array([commit_update(u, 3, 32)[0] for u in updates])
    rows[6] = 0.0  # an absent slot
    tag = tags.round_tag(31337, "0x" + "00" * 19 + "01", 1, 0)  # any tag: the adapter is called directly
    proof = prove_rows(keys, rows, tag)
    reference = gram_rule_int(quantize(rows))
    assert proof.flags == reference.flags.tolist() and proof.scores == reference.scores.tolist()
    assert proof.flags[7] and proof.flags[4] and not proof.flags[6] and proof.scores[6] == 0

    chain = actors.admin.chain
    halo2 = deploy_halo2_verifier(chain, keys)
    adapter = deploy_round_verifier(chain, keys, halo2.address)
    hashes = [h.to_bytes(32, "big") for h in proof.hashes]

    def verifies(scores: list[int], flags: list[bool]) -> bool:
        return bool(chain.call(adapter.functions.verifyRound(tag, hashes, scores, flags, NO_REFERENCE, proof.proof)))

    assert verifies(proof.scores, proof.flags)
    assert not verifies([proof.scores[0] + 1, *proof.scores[1:]], proof.flags)
    assert not verifies(proof.scores, [False] * 8)
