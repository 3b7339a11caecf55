"""A stale challenge with real zero-knowledge proofs on a real anvil: a 2-round, 4-trainer project on the
EzklRoundVerifier (4 slots, K = 32, the circuit of tests/test_zk_dispute.py), round 0 proven with ezkl and finalized;
in round 1 a trainer reveals again another trainer's round-0 commitment, and a stranger shows it stale with two real
row proofs (``challengeStale``, gas estimated). The stranger, a plain account, is credited its fee out of the
replayer's stake, at most that fee and within 1 % of it (the calldata counted at what it cost,
``CHALLENGE_GAS_OVERHEAD`` for the rest). Keys cached under ``.cache/zk``; one round proof (~20 s on 2 cores) and
two row proofs (~2 s each). Development SRS (gen_srs): test only."""

from __future__ import annotations

import pytest

from marketplace.adapters.chain.market import StaleEvidence
from marketplace.adapters.ezkl.keys import CircuitKeys
from marketplace.protocol.commitment import commit_update, published_row
from marketplace.protocol.ordering import verifier_inputs
from marketplace.round.prove import EzklProver, EzklRowProver, prover_for, round_tag, row_prover_for
from marketplace.round.score import score_round
from tests.market_fixtures import Actors, commit, reveal_update
from tests.test_attack_review_bonds import _data, _send
from tests.test_dispute_attacks import _fee
from tests.test_stale_challenge import UNDERPAID
from tests.test_zk_dispute import ARRIVAL, STAKE, K, N, _finalization, _inputs, _zk_verifier, zk_keys  # noqa: F401
from tests.update_sources import agreeing_updates

REPLAYER, SOURCE = 3, 0  # in round 1 trainer 3 reveals trainer 0's round-0 commitment


@pytest.mark.heavy  # ~40 s (keys cached, one round proof, two row proofs): make test-heavy
def test_a_zk_stale_challenge_is_credited_at_most_its_fee_and_nearly_all_of_it(
    actors: Actors,
    zk_keys: CircuitKeys,  # noqa: F811
) -> None:
    adapter = _zk_verifier(actors, zk_keys)
    pid = actors.training_project(N, verifier=adapter.address, rounds=2, stake=STAKE, slash_bps=5_000)
    trainers = actors.trainers[:N]
    seed = actors.owner.sketch_seed(pid)
    committed = [commit_update(u, seed, K) for u in agreeing_updates(N, seed=7)]
    rows = {t.address: row for t, (row, _) in zip(trainers, committed, strict=True)}
    for i in ARRIVAL:
        commit(trainers[i], pid, 0, f"bafkreiupdate{i}", committed[i][1])
    for i in reversed(ARRIVAL):
        reveal_update(trainers[i], pid, 0, f"bafkreiupdate{i}", committed[i][1])
    inputs = _inputs(actors.aggregator, pid, rows, set())
    scored = score_round(inputs)
    prover = prover_for(actors.aggregator, pid)
    assert isinstance(prover, EzklProver)
    order = inputs.arrival_order
    commitments, scores, flags = verifier_inputs(inputs.commitments, scored.chain_scores, scored.flags,
                                                 scored.rejected, order)  # fmt: skip
    proof = prover.prove(commitments, scored.rows[order], scores, flags, round_tag(actors.aggregator, pid, 0))
    actors.aggregator.finalize_round(pid, 0, _finalization(scored, proof))

    fresh = [commit_update(u, seed, K) for u in agreeing_updates(N, seed=8)]
    fresh[REPLAYER] = committed[SOURCE]  # the replay: another trainer's revealed commitment of round 0
    for i, t in enumerate(trainers):
        commit(t, pid, 1, f"bafkreiround1update{i}", fresh[i][1])
    for i, t in enumerate(trainers):
        reveal_update(t, pid, 1, f"bafkreiround1update{i}", fresh[i][1])

    row_prover = row_prover_for(actors.stranger, pid)
    assert isinstance(row_prover, EzklRowProver)
    row = fresh[REPLAYER][0]
    ints = tuple(published_row(row))
    evidence = StaleEvidence(
        trainers[REPLAYER].address, ints, row_prover.prove_row(row), 0, SOURCE,
        tuple(actors.owner.round_commitments(pid, 0)), ints, row_prover.prove_row(committed[SOURCE][0]),
    )  # fmt: skip
    call = actors.stranger.market.functions.challengeStale(pid, 1, evidence.as_abi_tuple())
    gas = actors.stranger.chain.estimate_gas(call)
    receipt = _send(actors.stranger, actors.stranger.market.address, _data(call), gas=gas + gas // 5)
    assert receipt["status"] == 1
    (event,) = actors.events(receipt, "StaleChallenged")
    award, fee = int(event["award"]), _fee(receipt)
    print(
        f"\nchallengeStale (zk verifier, K = {K}): {receipt['gasUsed']} gas, {len(_data(call))} calldata bytes,"
        f" fee {fee} wei, award {award} wei ({award / fee:.4f} of the fee)"
    )
    assert (1 - UNDERPAID) * fee <= award <= fee
    assert actors.owner.trainer_info(pid, trainers[REPLAYER].address).stake_left == STAKE - award
