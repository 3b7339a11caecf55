"""A disputed rejection end to end with real zero-knowledge proofs on a real anvil: a 4-trainer project on the
EzklRoundVerifier (4 slots, K = 32, the circuit of tests/test_zk_onchain.py), real committed rows of agreeing
updates; the aggregator rejects an honest trainer, which disputes with a real row proof (gas estimated, not
given); forged disputes are refused; the round is proven with ezkl over all four rows (the paying computation,
the published row in its slot) and verified by ``finalizeRound``: the disputed trainer is paid as in the honest
round and keeps its stake, and a finalization that still rejects it reverts.

``eth_estimateGas`` and ``verifyRow``'s try/catch: with too little gas for the inner Halo2 verifier, the
adapter catches the failure and returns false, so the market reverts with ``InvalidRowProof`` (a real proof,
refused for gas). The estimate searches for the least gas with which the transaction *succeeds*, so that
revert counts as a failure, and the work after the verifier's call (state writes, the event with the row) is
more than the 1/64 of gas the call leaves behind: the estimate is the least gas limit that works. The test
checks the estimate with ``eth_call``, sends a dispute with 20k gas less (mined: ``InvalidRowProof``), and
sends the real one with the client's estimate (+20 %).

Keys are set up once and cached under ``.cache/zk``; one row proof (~2 s) and one round proof (~20 s on 2
cores), plus a row proof of another trainer for the forgery. Development SRS (gen_srs): test only."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from web3.contract import Contract
from web3.exceptions import Web3RPCError

from marketplace.adapters.chain.client import GAS_MARGIN, ChainClient
from marketplace.adapters.chain.deploy import DEFAULT_REJECTION_BOND
from marketplace.adapters.chain.errors import ChainError
from marketplace.adapters.chain.market import Finalization, MarketClient
from marketplace.adapters.ezkl.evm import deploy_halo2_verifier, deploy_round_verifier
from marketplace.adapters.ezkl.keys import CircuitKeys, setup
from marketplace.protocol.commitment import MAX_UNIT_INT, commit_update, published_row
from marketplace.protocol.ordering import verifier_inputs
from marketplace.round.collect import RoundInputs, apply_published_rows
from marketplace.round.prove import EzklProver, EzklRowProver, prover_for, round_tag, row_prover_for
from marketplace.round.score import ScoredRound, score_round
from tests.market_fixtures import ETH, Actors, commit, reveal_update, reverts
from tests.update_sources import agreeing_updates

N, K = 4, 32
STAKE = ETH // 10
#: The order the trainers commit in (the arrival order), and the honest trainer the aggregator rejects.
ARRIVAL = (2, 0, 3, 1)
VICTIM = 1


@pytest.fixture(scope="session")
def zk_keys() -> CircuitKeys:
    return setup(N, K)  # the round circuit, and the row circuit of its K


def _zk_verifier(actors: Actors, keys: CircuitKeys) -> Contract:
    """ezkl's reusable verifier and the circuit's adapter (with the row circuit's VKA), approved in the market."""
    chain = actors.admin.chain
    halo2 = deploy_halo2_verifier(chain, keys)
    adapter = deploy_round_verifier(chain, keys, halo2.address)
    chain.transact(actors.admin.market.functions.setVerifierApproval(adapter.address, True))
    return adapter


def _inputs(market: MarketClient, pid: int, rows: dict[str, np.ndarray], rejected: set[str]) -> RoundInputs:
    """The round's inputs as an aggregator that could not use the updates of ``rejected`` collects them (the
    rows of the others; no updates: the model is not what this test checks)."""
    trainers = market.trainers(pid)
    subs = {s.trainer: s for s in market.submissions(pid, 0)}
    out = np.zeros((len(trainers), K + 2))
    valid = np.zeros(len(trainers), dtype=bool)
    for i, t in enumerate(trainers):
        if t not in rejected:
            out[i], valid[i] = rows[t], True
    return RoundInputs(
        pid, 0, market.sketch_seed(pid), K, trainers, subs, market.commits(pid, 0),
        np.zeros((len(trainers), 1), np.float32), out, valid, {t: "IpfsTimeout: unavailable" for t in rejected},
    )  # fmt: skip


def _least_gas(chain: ChainClient, call: Any, low: int, high: int) -> int:
    """The least gas limit (to 256 gas) with which ``call`` does not fail (``high`` must succeed, ``low``
    fail): by a revert or by running out of gas."""
    while high - low > 256:
        mid = (low + high) // 2
        try:
            chain.call(call, gas=mid)
        except (ChainError, Web3RPCError):  # a revert (ContractRevert) or out of gas
            low = mid
        else:
            high = mid
    return high


def _finalization(scored: ScoredRound, proof: bytes) -> Finalization:
    """The round's result for these trainer-order values and ``proof``."""
    return Finalization("bafkreimodel", "bafkreiproof", scored.chain_scores, scored.flags, proof, scored.rejected)


@pytest.mark.heavy  # ~45 s (row and round keys, two real proofs): make test-heavy, which CI runs after make test
def test_a_false_rejection_is_disputed_with_a_real_row_proof_and_the_round_proven_with_the_row(
    actors: Actors, zk_keys: CircuitKeys
) -> None:
    adapter = _zk_verifier(actors, zk_keys)
    pid = actors.training_project(N, verifier=adapter.address, rounds=1, stake=STAKE, slash_bps=5_000)
    trainers = actors.trainers[:N]
    seed = actors.owner.sketch_seed(pid)
    assert actors.owner.sketch_width(pid) == K
    committed = [commit_update(u, seed, K) for u in agreeing_updates(N, seed=7)]
    rows = {t.address: row for t, (row, _) in zip(trainers, committed, strict=True)}
    for i in ARRIVAL:
        commit(trainers[i], pid, 0, f"bafkreiupdate{i}", committed[i][1])
    for i in reversed(ARRIVAL):
        reveal_update(trainers[i], pid, 0, f"bafkreiupdate{i}", committed[i][1])
    assert actors.owner.arrival_order(pid, 0) == list(ARRIVAL)

    victim, other = trainers[VICTIM], trainers[ARRIVAL[0]]
    actors.aggregator.reject_submissions(pid, 0, [victim.address])
    assert actors.owner.rejections(pid).rejected == [victim.address]

    # The victim's row proof, made with the row circuit's keys only (checked against the adapter's rowVka()).
    row_prover = row_prover_for(victim, pid)
    assert isinstance(row_prover, EzklRowProver)
    t0 = time.perf_counter()
    proof = row_prover.prove_row(rows[victim.address])
    row_proof_seconds = time.perf_counter() - t0
    ints = published_row(rows[victim.address])

    # Forged disputes: another trainer's row with that row's own (valid) proof, the victim's row with a value
    # flipped, or with a value off the box.
    other_ints, other_proof = published_row(rows[other.address]), row_prover.prove_row(rows[other.address])
    assert actors.chain.call(adapter.functions.verifyRow(committed[ARRIVAL[0]][1], other_ints, other_proof))
    with reverts("InvalidRowProof"):
        victim.dispute_rejection(pid, 0, other_ints, other_proof)
    with reverts("InvalidRowProof"):
        victim.dispute_rejection(pid, 0, other_ints, proof)
    j = next(i for i, v in enumerate(ints[:K]) if v != 0)
    with reverts("InvalidRowProof"):
        victim.dispute_rejection(pid, 0, [*ints[:j], -ints[j], *ints[j + 1 :]], proof)
    with reverts("InvalidRowValue"):
        victim.dispute_rejection(pid, 0, [*ints[:j], MAX_UNIT_INT + 1, *ints[j + 1 :]], proof)
    with reverts("NotRejected"):  # the other trainer, with its own row and proof: it was not rejected
        other.dispute_rejection(pid, 0, other_ints, other_proof)

    # The gas the dispute needs, against what eth_estimateGas says. The estimate itself (without the client's
    # 20 % margin) is enough. With some 20k gas less, the adapter's try/catch turns the inner verifier's
    # out-of-gas into "false", and the market reverts with InvalidRowProof: a real proof, refused for gas.
    call = victim.market.functions.disputeRejection(pid, 0, ints, proof)
    estimate = victim.chain.estimate_gas(call)
    victim.chain.call(call, gas=estimate)
    least = _least_gas(victim.chain, call, 21_000, estimate)
    with reverts("InvalidRowProof") as short:
        victim.chain.transact(call, gas=least - 20_000)
    assert short.value.tx_hash  # a mined transaction, not a refused estimate

    receipt = victim.dispute_rejection(pid, 0, ints, proof)  # gas estimated (+20 %), not given
    dispute_gas = int(receipt["gasUsed"])
    assert dispute_gas <= estimate
    # The rejection bond's award is in it (README, docs/security.md: ~1.018M gas): the default bond reimburses this
    # dispute in full up to a gas price of ~5.9 gwei.
    (award,) = actors.events(receipt, "BondAwarded")
    assert 0 < award["amount"] < actors.owner.rejection_bond() == DEFAULT_REJECTION_BOND
    assert DEFAULT_REJECTION_BOND // dispute_gas >= 5_800_000_000
    (event,) = actors.events(receipt, "RejectionDisputed")
    assert event["trainer"] == victim.address and list(event["row"]) == ints
    state = actors.owner.rejections(pid)
    assert state.rejected == [] and state.disputed == [victim.address]

    # The paying computation with the published row in the victim's slot: the honest round's outcome.
    inputs = apply_published_rows(
        _inputs(actors.aggregator, pid, rows, {victim.address}), actors.aggregator.disputed_rows(pid, 0)
    )
    assert victim.address in inputs.published and not inputs.rejected
    scored = score_round(inputs)
    honest = score_round(_inputs(actors.aggregator, pid, rows, set()))
    assert (scored.chain_scores, scored.flags) == (honest.chain_scores, honest.flags)
    v = inputs.trainers.index(victim.address)
    assert not scored.flags[v] and scored.chain_scores[v] > 0 and not any(scored.rejected)

    prover = prover_for(actors.aggregator, pid)
    assert isinstance(prover, EzklProver)
    order = inputs.arrival_order
    commitments, scores, flags = verifier_inputs(inputs.commitments, scored.chain_scores, scored.flags,
                                                 scored.rejected, order)  # fmt: skip
    t0 = time.perf_counter()
    round_proof = prover.prove(commitments, scored.rows[order], scores, flags, round_tag(actors.aggregator, pid, 0))
    round_proof_seconds = time.perf_counter() - t0

    # Rejecting the disputed trainer anyway (scored without its row): refused whatever the proof.
    rejecting = score_round(_inputs(actors.aggregator, pid, rows, {victim.address}))
    assert rejecting.rejected[v]
    with reverts("InvalidRejection"):
        actors.aggregator.finalize_round(pid, 0, _finalization(rejecting, round_proof))

    receipt = actors.aggregator.finalize_round(pid, 0, _finalization(scored, round_proof))
    (finalized,) = actors.events(receipt, "RoundFinalized")
    assert list(finalized["scores"]) == scored.chain_scores
    assert finalized["rewards"][v] > 0 and all(r > 0 for r in finalized["rewards"])
    info = actors.owner.trainer_info(pid, victim.address)
    assert info.stake_left == STAKE and info.earned == finalized["rewards"][v]
    assert actors.owner.rejected_trainers(pid, 0) == []
    record = actors.owner.aggregator_record(actors.aggregator.address)
    assert (record.rounds, record.rejected, record.disputes_lost) == (1, 1, 1)

    print(
        f"\ndispute: {dispute_gas} gas used, estimate {estimate} (sent with {int(estimate * GAS_MARGIN)}), "
        f"least gas limit {least}; row proof {row_proof_seconds:.1f} s; round proof {round_proof_seconds:.1f} s; "
        f"finalizeRound {receipt['gasUsed']} gas"
    )
