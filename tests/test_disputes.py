# ruff: noqa: F811  (the fixture imported from tests.ipfs_fixtures is used as a test argument)
"""Disputed rejections on a real anvil (issue 12 item 2): the aggregator's rejections are announced before
finalization, a rejected trainer publishes its committed row within the dispute window, and the round must
then be scored with that row. Attacks of an aggregator colluding with the owner or with a trainer, and
hypothesis properties over arbitrary rejection sets, compared with the honest finalization of the same round.

Rows are real committed rows of random updates with their Poseidon commitments, and every finalization is
the paying computation itself (``apply_published_rows`` + ``score_round``). The local test verifier checks
the round proof as a hash of the public values and accepts any row proof of the form it defines; that a
row proof binds the row to the commitment is the zk verifier's part (tests/test_zk_row.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.exceptions import ContractLogicError

from marketplace.adapters.chain.compile import compile_contracts
from marketplace.adapters.chain.deploy import DISPUTES, MARKET
from marketplace.adapters.chain.market import Finalization, MarketClient, ProjectStatus
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.manager import LocalIpfsNode
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.fl.models import build_model, param_spec, tensors_to_vector
from marketplace.protocol.commitment import MAX_LOG_INT, MAX_UNIT_INT, commit_update, published_row
from marketplace.roles.aggregator import AggregatorNode, RejectionsAnnounced, RoundReport
from marketplace.roles.audit import audit_round
from marketplace.roles.trainer import Committed, Disputed, StepOutcome, Submitted, TrainerNode
from marketplace.round.collect import RoundInputs, apply_published_rows
from marketplace.round.prove import HashProver, local_hash_proof, recorded_verifier_inputs
from marketplace.round.score import score_round
from marketplace.rule.aggregate import MAX_STEP, STEP_TARGET
from marketplace.rule.gram import GramConfig
from tests.disputes import close_disputes
from tests.ipfs_fixtures import ipfs_node  # noqa: F401
from tests.market_fixtures import ETH, Actors, cid_for, commit, commitment_for, reveal_update, reverts
from tests.update_sources import FixedUpdate, agreeing_updates

N = 5
BUDGET = 10 * ETH
FEE = 1 * ETH
STAKE = ETH // 10


@dataclass
class Round:
    """A training project of ``N`` trainers (one round) whose trainers all committed and revealed real rows."""

    pid: int
    trainers: list[MarketClient]
    rows: dict[str, np.ndarray]  # trainer address -> its committed row

    def row_of(self, trainer: MarketClient) -> np.ndarray:
        return self.rows[trainer.address]


def _updates(seed: int, colluder: int | None = None) -> list[np.ndarray]:
    """Honest updates share a direction; the colluder (if any) sends noise of its own."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=3_000)
    ups = [base + 0.5 * rng.normal(size=3_000) for _ in range(N)]
    if colluder is not None:
        ups[colluder] = 5.0 * rng.normal(size=3_000)
    return ups


def _training_round(actors: Actors, *, slash_bps: int = 5_000, colluder: int | None = None, seed: int = 0) -> Round:
    pid = actors.training_project(
        N, reward_budget=BUDGET, aggregator_fee=FEE, stake=STAKE, rounds=1, slash_bps=slash_bps
    )
    trainers = actors.trainers[:N]
    chain_seed, k = actors.owner.sketch_seed(pid), actors.owner.sketch_width(pid)
    rows, commitments = {}, []
    for t, update in zip(trainers, _updates(seed, colluder), strict=True):
        row, commitment = commit_update(update, chain_seed, k)
        rows[t.address] = row
        commitments.append(commitment)
        commit(t, pid, 0, _cid(t), commitment)
    for t, commitment in zip(trainers, commitments, strict=True):
        reveal_update(t, pid, 0, _cid(t), commitment)
    return Round(pid, trainers, rows)


def _cid(trainer: MarketClient) -> str:
    return f"bafkrei{trainer.address[2:14].lower()}"


def _finalization(market: MarketClient, rnd: Round, rejected: set[str], *, published: bool = True) -> Finalization:
    """What an aggregator that could not use the updates of ``rejected`` finalizes (with the rows published
    on chain since, unless ``published`` is false: an aggregator ignoring the disputes): the paying
    computation on the rows, as ``AggregatorNode`` does."""
    pid = rnd.pid
    trainers = market.trainers(pid)
    subs = {s.trainer: s for s in market.submissions(pid, 0)}
    k = market.sketch_width(pid)
    rows = np.zeros((len(trainers), k + 2))
    valid = np.zeros(len(trainers), dtype=bool)
    for i, t in enumerate(trainers):
        if t in subs and t not in rejected:
            rows[i], valid[i] = rnd.rows[t], True
    inputs = RoundInputs(
        pid, 0, market.sketch_seed(pid), k, trainers, subs, market.commits(pid, 0),
        np.zeros((len(trainers), 1), np.float32), rows, valid, {t: "unavailable" for t in rejected},
    )  # fmt: skip
    scored = score_round(apply_published_rows(inputs, market.disputed_rows(pid, 0)) if published else inputs)
    proof = local_hash_proof(
        *recorded_verifier_inputs(market, pid, 0, scored.chain_scores, scored.flags, scored.rejected)
    )
    return Finalization("bafkreimodel", "bafkreiproof", scored.chain_scores, scored.flags, proof, scored.rejected)


def _dispute(trainer: MarketClient, rnd: Round) -> object:
    """``trainer`` publishes its committed row with the row proof its project's verifier takes."""
    row = rnd.row_of(trainer)
    return trainer.dispute_rejection(rnd.pid, 0, published_row(row), HashProver().prove_row(row))


def _payouts(actors: Actors, pid: int) -> dict[str, int]:
    """What everyone can withdraw from the finished project."""
    accounts = [actors.owner.address, actors.aggregator.address, *(t.address for t in actors.trainers[:N])]
    return {a: actors.owner.withdrawable(pid, a) for a in accounts}


def _honest_payouts(actors: Actors, rnd: Round) -> tuple[dict[str, int], list[tuple[int, int, int]]]:
    """Payouts and reliability records after the honest finalization of the round (then undone)."""
    snapshot = actors.chain.snapshot()
    actors.aggregator.finalize_round(rnd.pid, 0, _finalization(actors.aggregator, rnd, set()))
    out = _payouts(actors, rnd.pid), [actors.owner.record(t.address) for t in rnd.trainers]
    actors.chain.revert(snapshot)
    return out


# ---------------------------------------------------------------- the rules of a dispute


def test_an_unannounced_rejection_cannot_be_finalized(actors: Actors) -> None:
    rnd = _training_round(actors)
    victim = rnd.trainers[1].address
    with reverts("InvalidRejection"):
        actors.aggregator.finalize_round(rnd.pid, 0, _finalization(actors.aggregator, rnd, {victim}))


def test_announcing_rejections_checks_caller_timing_and_trainers(actors: Actors) -> None:
    pid = actors.training_project(N, rounds=1)
    trainers = actors.trainers[:N]
    actors.submit_all(pid, 0, trainers[:3], reveal=False)
    with reverts("RoundStillOpen"):  # reveals not done
        actors.aggregator.reject_submissions(pid, 0, [trainers[0].address])
    actors.open_reveals(pid)
    for t in trainers[:3]:
        reveal_update(t, pid, 0, cid_for(pid, 0, t.address), commitment_for(pid, 0, t.address))
    with reverts("Unauthorized"):
        actors.owner.reject_submissions(pid, 0, [trainers[0].address])
    with reverts("WrongRound"):
        actors.aggregator.reject_submissions(pid, 1, [trainers[0].address])
    for bad in ([trainers[3].address], [actors.stranger.address], [trainers[0].address] * 2, []):
        with reverts("InvalidRejection"):  # did not reveal / not a member / twice / nobody
            actors.aggregator.reject_submissions(pid, 0, bad)
    before = actors.owner.round_deadlines(pid).aggregation
    receipt = actors.aggregator.reject_submissions(pid, 0, [trainers[0].address, trainers[2].address])
    events = actors.events(receipt, "RejectionAnnounced")
    assert [e["trainer"] for e in events] == [trainers[0].address, trainers[2].address]
    deadline = events[0]["disputeDeadline"]
    assert deadline == actors.chain.get_block(receipt["blockNumber"])["timestamp"] + 600  # revealPeriod
    state = actors.owner.rejections(pid)
    assert state.rejected == [trainers[0].address, trainers[2].address] and state.disputed == []
    assert state.dispute_deadline == deadline
    # The aggregation deadline moves to aggregationPeriod after the window.
    assert actors.owner.round_deadlines(pid).aggregation == max(before, deadline + 600)
    with reverts("RejectionsAlreadyAnnounced"):
        actors.aggregator.reject_submissions(pid, 0, [trainers[1].address])
    assert actors.owner.aggregator_record(actors.aggregator.address).rejected == 2


def test_the_disputes_run_in_the_markets_storage_and_their_module_alone_does_nothing(actors: Actors) -> None:
    """The rejections and their disputes live in the market's ``MarketDisputes`` module (the market's 24 KB limit):
    the market's fallback runs exactly those two functions in its own storage (the test above announced through it),
    its ``disputes`` is the module deployed with it, and the module called directly finds no project; nothing else
    reaches it (an unknown selector, or ether, sent to the market reverts)."""
    artifacts = compile_contracts()
    own = {f["name"] for f in artifacts[MARKET].abi if f.get("type") == "function"}
    added = {f["name"] for f in artifacts[DISPUTES].abi if f.get("type") == "function"} - own
    assert added == {
        "rejectSubmissions", "disputeRejection", "reclaimBonds", "withdrawBonds", "bondsHeld", "bondCredit",
        "rejectionBond", "DISPUTE_GAS_OVERHEAD", "RELAYED_DISPUTE_GAS_OVERHEAD", "NEW_CREDIT_GAS", "MAX_REIMBURSED_TIP",
        "challengeStale", "challengePeriod", "MAX_CHALLENGE_PERIOD", "NEAR_COPY_DIST", "OWN_COPY_DIST",
        "REFERENCE_AUTHOR", "CHALLENGE_GAS_OVERHEAD",
    }  # fmt: skip
    module = actors.deployment.address(DISPUTES)
    assert actors.chain.call(actors.owner.market.functions.disputes()) == module
    pid = actors.training_project(N, rounds=1)
    actors.submit_all(pid, 0)
    direct = actors.aggregator.chain.contract(artifacts[DISPUTES], module)
    with reverts("UnknownProject"):  # its own storage holds no project
        actors.aggregator.chain.transact(direct.functions.rejectSubmissions(pid, 0, [actors.trainers[0].address]))
    assert actors.owner.rejections(pid).dispute_deadline == 0
    market = actors.deployment.address(MARKET)
    for tx in ({"data": "0x12345678"}, {"value": 1}, {"data": "0x12345678", "value": 1}):
        with pytest.raises(ContractLogicError):
            actors.chain.w3.eth.call({"from": actors.stranger.address, "to": market, **tx})
    actors.aggregator.reject_submissions(pid, 0, [actors.trainers[0].address])  # through the market: announced
    assert actors.owner.rejections(pid).rejected == [actors.trainers[0].address]


def test_a_rejected_trainer_disputes_within_the_window_and_must_then_be_scored(actors: Actors) -> None:
    rnd = _training_round(actors)
    victim, other = rnd.trainers[1], rnd.trainers[2]
    actors.aggregator.reject_submissions(rnd.pid, 0, [victim.address, other.address])
    row = published_row(rnd.row_of(victim))
    proof = HashProver().prove_row(rnd.row_of(victim))
    with reverts("NotRejected"):
        rnd.trainers[0].dispute_rejection(rnd.pid, 0, row, proof)
    with reverts("NotATrainer"):
        actors.stranger.dispute_rejection(rnd.pid, 0, row, proof)
    with reverts("InvalidRowLength"):
        victim.dispute_rejection(rnd.pid, 0, row[:-1], proof)
    k = len(row) - 2
    for index, value in ((0, MAX_UNIT_INT + 1), (k - 1, -MAX_UNIT_INT - 1), (k, MAX_LOG_INT + 1), (k + 1, 0)):
        bad = list(row)
        bad[index] = value
        with reverts("InvalidRowValue"):  # outside the box every committed row lies in
            victim.dispute_rejection(rnd.pid, 0, bad, HashProver().prove_row(np.array(bad) / MAX_UNIT_INT))
    with reverts("InvalidRowProof"):  # a proof of another row
        victim.dispute_rejection(rnd.pid, 0, row, HashProver().prove_row(rnd.row_of(other)))
    with reverts("DisputeWindowOpen"):  # the other rejected trainer may still dispute
        actors.aggregator.finalize_round(rnd.pid, 0, _finalization(actors.aggregator, rnd, {other.address}))

    receipt = _dispute(victim, rnd)
    (event,) = actors.events(receipt, "RejectionDisputed")
    assert event["trainer"] == victim.address and list(event["row"]) == row
    state = actors.owner.rejections(rnd.pid)
    assert state.rejected == [other.address] and state.disputed == [victim.address]
    with reverts("NotRejected"):  # once
        _dispute(victim, rnd)
    close_disputes(actors.owner, rnd.pid)
    with reverts("DisputeClosed"):
        _dispute(other, rnd)
    # The disputed trainer cannot be rejected any more: the round is scored with its published row.
    with reverts("InvalidRejection"):
        actors.aggregator.finalize_round(
            rnd.pid, 0, _finalization(actors.aggregator, rnd, {victim.address, other.address}, published=False)
        )
    result = _finalization(actors.aggregator, rnd, {other.address})
    receipt = actors.aggregator.finalize_round(rnd.pid, 0, result)
    paid = dict(
        zip(actors.owner.trainers(rnd.pid), actors.events(receipt, "RoundFinalized")[0]["rewards"], strict=True)
    )
    assert paid[victim.address] > 0 and paid[other.address] == 0
    assert actors.owner.rejected_trainers(rnd.pid, 0) == [other.address]
    record = actors.owner.aggregator_record(actors.aggregator.address)
    assert (record.rounds, record.rejected, record.disputes_lost, record.upheld) == (1, 2, 1, 1)
    # A round with no rejection left may be finalized at once, and the state is cleared for the next round.
    assert actors.owner.rejections(rnd.pid).dispute_deadline == 0


def test_when_every_rejected_trainer_disputed_the_round_is_finalized_without_waiting(actors: Actors) -> None:
    rnd = _training_round(actors)
    victim = rnd.trainers[3]
    actors.aggregator.reject_submissions(rnd.pid, 0, [victim.address])
    _dispute(victim, rnd)
    actors.aggregator.finalize_round(rnd.pid, 0, _finalization(actors.aggregator, rnd, set()))
    assert actors.owner.get_project(rnd.pid).status is ProjectStatus.FINISHED


def test_an_aggregator_that_stalls_after_a_dispute_is_abandoned_and_every_revealer_paid(actors: Actors) -> None:
    rnd = _training_round(actors)
    victim = rnd.trainers[0]
    actors.aggregator.reject_submissions(rnd.pid, 0, [victim.address])
    _dispute(victim, rnd)
    deadline = actors.owner.round_deadlines(rnd.pid).aggregation
    actors.chain.increase_time(deadline - actors.chain.timestamp() + 1)
    actors.stranger.abandon(rnd.pid)
    payouts = _payouts(actors, rnd.pid)
    assert all(payouts[t.address] == STAKE + BUDGET // N for t in rnd.trainers)
    assert payouts[actors.aggregator.address] == 0


# ---------------------------------------------------------------- the attacks


def test_owner_and_aggregator_rejecting_every_trainer_take_nothing_when_the_trainers_dispute(actors: Actors) -> None:
    """Issue 12 item 2 (a): the aggregator (colluding with the owner, slashBps = 100 %) rejects every trainer.
    Each disputes; the round must be scored with their rows: everyone ends exactly as after the honest
    finalization, and nobody is slashed."""
    rnd = _training_round(actors, slash_bps=10_000)
    honest, honest_records = _honest_payouts(actors, rnd)
    actors.aggregator.reject_submissions(rnd.pid, 0, [t.address for t in rnd.trainers])
    for t in rnd.trainers:
        _dispute(t, rnd)
    everyone = {t.address for t in rnd.trainers}
    with reverts("InvalidRejection"):
        actors.aggregator.finalize_round(rnd.pid, 0, _finalization(actors.aggregator, rnd, everyone, published=False))
    actors.aggregator.finalize_round(rnd.pid, 0, _finalization(actors.aggregator, rnd, set()))
    assert _payouts(actors, rnd.pid) == honest
    assert [actors.owner.record(t.address) for t in rnd.trainers] == honest_records
    assert all(actors.owner.trainer_info(rnd.pid, t.address).stake_left == STAKE for t in rnd.trainers)


def test_a_colluding_noise_trainer_gains_nothing_by_having_the_honest_ones_rejected(actors: Actors) -> None:
    """Issue 12 item 2 (b): the aggregator rejects the 4 honest trainers so that the colluder's noise is the
    only row (fewer than 3 valid rows: nobody is flagged). The honest trainers dispute: the round is scored
    with their rows and the colluder is flagged, as in the honest finalization. Had they not disputed, the
    colluder would get at most its part of the shrunken pool (1/5 of the round), not the whole round."""
    colluder = N - 1
    rnd = _training_round(actors, colluder=colluder)
    honest, _ = _honest_payouts(actors, rnd)
    cheat = rnd.trainers[colluder].address
    assert honest[cheat] == STAKE // 2  # flagged when the round is scored honestly: no reward, half its stake
    honest_ones = [t for t in rnd.trainers if t.address != cheat]

    snapshot = actors.chain.snapshot()
    actors.aggregator.reject_submissions(rnd.pid, 0, [t.address for t in honest_ones])
    for t in honest_ones:
        _dispute(t, rnd)
    actors.aggregator.finalize_round(rnd.pid, 0, _finalization(actors.aggregator, rnd, set()))
    assert _payouts(actors, rnd.pid) == honest
    actors.chain.revert(snapshot)

    # Nobody disputes: the rejections stand, and the colluder's share is capped by the shrunken pool.
    actors.aggregator.reject_submissions(rnd.pid, 0, [t.address for t in honest_ones])
    close_disputes(actors.owner, rnd.pid)
    rejected = {t.address for t in honest_ones}
    receipt = actors.aggregator.finalize_round(rnd.pid, 0, _finalization(actors.aggregator, rnd, rejected))
    (finalized,) = actors.events(receipt, "RoundFinalized")
    assert sum(finalized["rewards"]) <= BUDGET // N
    assert all(actors.owner.trainer_info(rnd.pid, t.address).stake_left == STAKE // 2 for t in honest_ones)


# ---------------------------------------------------------------- properties over rejection sets


def test_false_rejections_change_nothing_for_anyone_when_disputed(actors: Actors) -> None:
    """For every set of falsely rejected trainers that dispute (and the same round with a noise trainer):
    owner, aggregator and every trainer end exactly as after the honest finalization, and no falsely
    rejected trainer loses stake or reliability. For every subset that does not dispute: those are flagged,
    and when fewer than 3 accepted submissions remain the trainers split at most the accepted part of the round's
    share (a shrunken round never pays one trainer the whole round); nobody else is slashed."""
    rnd = _training_round(actors, colluder=0)
    honest, honest_records = _honest_payouts(actors, rnd)
    addresses = [t.address for t in rnd.trainers]
    share = BUDGET  # one round

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        rejected=st.sets(st.integers(0, N - 1), min_size=1),
        silent=st.sets(st.integers(0, N - 1)),
    )
    def check(rejected: set[int], silent: set[int]) -> None:
        snapshot = actors.chain.snapshot()
        try:
            silent &= rejected  # rejected trainers that do not dispute
            actors.aggregator.reject_submissions(rnd.pid, 0, [addresses[i] for i in sorted(rejected)])
            for i in sorted(rejected - silent):
                _dispute(rnd.trainers[i], rnd)
            if silent:
                close_disputes(actors.owner, rnd.pid)
            standing = {addresses[i] for i in silent}
            receipt = actors.aggregator.finalize_round(rnd.pid, 0, _finalization(actors.aggregator, rnd, standing))
            payouts = _payouts(actors, rnd.pid)
            records = [actors.owner.record(a) for a in addresses]
            if not silent:
                assert payouts == honest
                assert records == honest_records
            else:
                rewards = actors.events(receipt, "RoundFinalized")[0]["rewards"]
                accepted = N - len(silent)
                assert sum(rewards) <= (share * accepted // N if accepted < 3 else share)  # shrunk below 3 only
                for i, a in enumerate(addresses):
                    if i in silent:  # flagged: no reward, one flagged round on its record
                        assert rewards[i] == 0 and records[i] == (0, 1, 0)
                    elif honest[a] >= STAKE:  # not flagged honestly: no stake lost now either
                        assert actors.owner.trainer_info(rnd.pid, a).stake_left == STAKE
            assert sum(payouts.values()) == BUDGET + FEE + N * STAKE  # nothing lost, nothing created
        finally:
            actors.chain.revert(snapshot)

    check()


def test_a_standing_rejection_is_flagged_and_counted_in_the_aggregators_record(actors: Actors) -> None:
    rnd = _training_round(actors)
    victim = rnd.trainers[2]
    actors.aggregator.reject_submissions(rnd.pid, 0, [victim.address])
    close_disputes(actors.owner, rnd.pid)
    actors.aggregator.finalize_round(rnd.pid, 0, _finalization(actors.aggregator, rnd, {victim.address}))
    assert actors.owner.record(victim.address) == (0, 1, 0)  # flagged
    assert actors.owner.trainer_info(rnd.pid, victim.address).stake_left == STAKE // 2
    record = actors.owner.aggregator_record(actors.aggregator.address)
    assert (record.rounds, record.rejected, record.disputes_lost, record.upheld) == (1, 1, 0, 1)


def test_dispute_events_are_read_back_exactly(actors: Actors) -> None:
    rnd = _training_round(actors)
    victim = rnd.trainers[4]
    actors.aggregator.reject_submissions(rnd.pid, 0, [victim.address])
    _dispute(victim, rnd)
    (event,) = actors.owner.disputed_rows(rnd.pid, 0)
    assert event.trainer == victim.address and list(event.row) == published_row(rnd.row_of(victim))
    (announced,) = actors.owner.announced_rejections(rnd.pid, 0)
    assert announced.trainer == victim.address and announced.dispute_deadline > 0


# ---------------------------------------------------------------- the nodes


class _UnpublishedStore(ModelStore):
    """A trainer's store whose updates never reach the shared node (a trainer cut off from the aggregator)."""

    def publish(self, data: bytes, cid: str) -> None:
        """Adds nothing: the CID was committed, the object never reaches any node the aggregator asks."""


def test_the_nodes_dispute_a_false_rejection_end_to_end(actors: Actors, ipfs_node: LocalIpfsNode) -> None:
    """Real trainer and aggregator nodes on a real IPFS node: one trainer's update never reaches the aggregator
    (rejected as unavailable). Its node disputes by itself with the row it committed; the aggregator waits for
    the window, then scores the round with the published row: the trainer is paid and not slashed, its update
    stays out of the model, and the audit agrees with every recorded value."""
    store = ModelStore(ipfs_node.client())
    initial = store.put_tensors(build_model("mlp", seed=1).state_dict(), {"kind": "model"})
    pid = actors.training_project(4, rounds=2, initial_model_cid=initial, slash_bps=5_000)
    updates = agreeing_updates(4, seed=63)  # a seed no other test uses: nothing else pins these updates
    cut_off = _UnpublishedStore(ipfs_node.client())
    nodes = [
        TrainerNode(t, cut_off if i == 3 else store, FixedUpdate(u))
        for i, (t, u) in enumerate(zip(actors.trainers[:4], updates, strict=True))
    ]
    for node in nodes:
        assert isinstance(node.step(pid), Committed)
    for node in nodes:
        assert isinstance(node.step(pid), Submitted)
    victim = nodes[3]
    aggregator = AggregatorNode(actors.aggregator, ModelStore(IpfsClient(ipfs_node.api_url, timeout=2.0, retries=0)))

    announced = aggregator.step(pid)  # it announces the rejection instead of finalizing
    assert isinstance(announced, RejectionsAnnounced) and list(announced.rejected) == [victim.address]
    state = actors.owner.rejections(pid)
    assert state.rejected == [victim.address] and state.dispute_deadline > 0
    assert aggregator.step(pid) is None  # and waits for the window
    assert [n.step(pid) for n in nodes[:3]] == [StepOutcome.ALREADY_SUBMITTED] * 3
    disputed = victim.step(pid)
    assert isinstance(disputed, Disputed) and disputed.gas_used > 0
    assert victim.step(pid) is StepOutcome.ALREADY_SUBMITTED  # once

    report = aggregator.step(pid)  # every rejected trainer disputed: no need to wait for the window
    assert isinstance(report, RoundReport) and report.tx_hash
    assert report.rejected == {} and victim.address in report.published
    # the one rejection was disputed: the victim is credited its dispute's cost, the rest of the bond returns
    bond, award = actors.owner.rejection_bond(), actors.owner.bond_credit(victim.address)
    assert 0 < award < bond and report.bonds_returned == bond - award
    v = report.trainers.index(victim.address)
    assert not report.flags[v] and report.chain_scores[v] > 0
    assert actors.owner.trainer_info(pid, victim.address).stake_left == STAKE
    assert actors.owner.trainer_info(pid, victim.address).earned > 0
    # The model is the previous one plus the step of the three updates the aggregator had (their mean, lengthened
    # towards their median norm at most MAX_STEP times); the victim's update is not in it, even unpaid.
    spec = param_spec("mlp")
    new = tensors_to_vector(store.get_tensors(report.model_cid, expected=spec), spec)
    old = tensors_to_vector(store.get_tensors(initial, expected=spec), spec)
    paid = [u for i, u in enumerate(updates) if i != 3 and report.chain_scores[report.trainers.index(nodes[i].address)]]
    assert not any(report.admitted)
    mean = np.mean(np.array(paid, dtype=np.float64), axis=0)
    radius = float(np.median(np.linalg.norm(np.array(paid, dtype=np.float64), axis=1)))
    stretch = min(max(STEP_TARGET * radius / float(np.linalg.norm(mean)), 1.0), MAX_STEP)
    assert np.allclose(new - old, stretch * mean, atol=1e-6)
    audit = audit_round(actors.owner, store, pid, 0)
    assert audit.agrees, audit
    record = actors.owner.aggregator_record(actors.aggregator.address)
    assert (record.rounds, record.rejected, record.disputes_lost) == (1, 1, 1)


def test_the_markets_fewest_valid_rows_is_the_rules(actors: Actors) -> None:
    """The pool shrinks when standing rejections leave fewer accepted submissions than the rule flags among:
    the market's constant and the rule's must be one number."""
    assert int(actors.chain.call(actors.owner.market.functions.MIN_VALID_ROWS())) == GramConfig().min_valid
