# ruff: noqa: F811  (the fixture imported from tests.ipfs_fixtures is used as a test argument)
"""Attack review of disputed rejections, on a real anvil: every participant (owner, aggregator, any trainer,
any coalition, anyone reading the mempool) may deviate; the design holds when no coalition ends with more
than the honest finalization of the same round gives it and no trainer that follows the protocol loses
anything.

What holds is guarded here where ``tests/test_disputes.py`` does not already: the deadlines to the second
(a last-second announcement, a last-second dispute, abandonment only after the moved deadline, nothing
carried into the next round), a last-second dispute against a front-running finalization and copies of its
calldata in a fee-ordered mempool, crafted rows at the edges of the box (accepted, then flagged), the
escrow invariant through disputes, standing and withdrawn rejections and an abandonment, and a trainer node
restarted in the window (it disputes with the row recomputed from its own update).

Holes the review found and that are fixed since (the tests now pass): a standing rejection paid the owner
the rejected trainer's part of the pool (owner + aggregator turned a trainer the round flags anyway into a
rejected one; an owner filled a project with Sybils that serve nothing) — the pool now shrinks only when
fewer than 3 accepted submissions remain; abandonment ignored standing rejections — now they are slashed and
unpaid there too; the aggregator's record counted announcements as upheld — it counts rejections that stood;
a restarted aggregator lost the updates of its first pass — it pins every update it used; on the test
verifier a published row that is not the committed one stopped the whole daemon — it stops only its project;
a published row and its row proof are bound to the commitment only, so any trainer could replay them, with the
very calldata of the original dispute (or of the owner's reference reveal), in a later round, and was paid
without an update — the market now records every row published in a project and refuses a dispute that
publishes one again in a later round (``RowAlreadyPublished``; per project, and not in the round of the first
publication, so that nobody can make a fresh row's dispute revert by publishing it first).

Disputing used to cost a falsely rejected trainer its gas (about 1M with the zk verifier) while the aggregator
paid one announcement: now the aggregator posts a bond per rejected trainer (``MarketDisputes.rejectionBond``),
awarded to each trainer that disputes successfully and returned to the aggregator for the rejections nobody
disputed (``reclaimBonds`` after the window; ``withdrawBonds`` pays the credits out, once).

(A row never published on chain, e.g. one computed from a clear update revealed in an earlier round, can still
be committed again: the cross-round replay gap,
``test_a_replay_of_an_update_revealed_in_an_earlier_round_earns_nothing``.)

Rows are committed rows of random updates with their Poseidon commitments, finalizations are the paying
computation itself (``apply_published_rows`` + ``score_round``), through the local test verifier.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError

from marketplace.adapters.chain.deploy import DEFAULT_REJECTION_BOND
from marketplace.adapters.chain.market import Finalization, MarketClient, ProjectStatus
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.manager import LocalIpfsNode
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.fl.models import build_model
from marketplace.protocol.commitment import (
    MAX_LOG_INT,
    MAX_UNIT_INT,
    commit_update,
    commitment_bytes,
    published_row,
)
from marketplace.roles.aggregator import AggregatorNode, RejectionsAnnounced, RoundReport
from marketplace.roles.trainer import Committed, Disputed, DisputeRefused, StepOutcome, Submitted, TrainerNode
from marketplace.round.collect import PublishedRowMismatch, RoundInputs, apply_published_rows
from marketplace.round.prove import HashProver, local_hash_proof, recorded_verifier_inputs
from marketplace.round.reference import commit_reference, reveal_reference
from marketplace.round.score import score_round
from tests.disputes import close_disputes
from tests.ipfs_fixtures import ipfs_node  # noqa: F401
from tests.market_fixtures import Actors, commit, reveal_update, reverts
from tests.mempool import Mempool
from tests.test_disputes import (
    BUDGET,
    FEE,
    STAKE,
    N,
    _dispute,
    _finalization,
    _honest_payouts,
    _payouts,
    _training_round,
    _UnpublishedStore,
)
from tests.update_sources import FixedUpdate, agreeing_updates

DIM = 3_000  # parameters of the random updates (the sketch takes any length)
GWEI = 10**9
MAX_TIP = 2 * GWEI  # MarketDisputes.MAX_REIMBURSED_TIP
OVERHEAD_SLACK = 200  # gas: DISPUTE_GAS_OVERHEAD rounds the measured 36,071 up to 36,100 (its NatSpec)


@dataclass
class Job:
    """A training project of ``N`` trainers and the rows they committed, by round."""

    pid: int
    trainers: list[MarketClient]
    rows: dict[tuple[int, str], np.ndarray] = field(default_factory=dict)  # (round, trainer) -> committed row

    def index(self, trainer: MarketClient) -> int:
        """``trainer``'s position in the project (the order of scores, flags and rewards)."""
        return self.trainers.index(trainer)


def _start(actors: Actors, *, rounds: int = 1, slash_bps: int = 5_000) -> Job:
    pid = actors.training_project(
        N, reward_budget=BUDGET, aggregator_fee=FEE, stake=STAKE, rounds=rounds, slash_bps=slash_bps
    )
    return Job(pid, actors.trainers[:N])


def _round_rows(actors: Actors, job: Job, round_: int, noise: Collection[int] = ()) -> dict[str, np.ndarray]:
    """Committed rows of one round's updates: every round's updates share one direction (as consecutive rounds
    of early training do) plus each trainer's own noise; trainers in ``noise`` send large noise instead (the
    rule flags them)."""
    base = np.random.default_rng(0).normal(size=DIM)
    rng = np.random.default_rng(1_000 + round_)
    seed, k = actors.owner.sketch_seed(job.pid), actors.owner.sketch_width(job.pid)
    rows = {}
    for i, t in enumerate(job.trainers):
        update = 5.0 * rng.normal(size=DIM) if i in noise else base + 0.5 * rng.normal(size=DIM)
        rows[t.address] = commit_update(update, seed, k)[0]
    return rows


def _cid(trainer: MarketClient, round_: int) -> str:
    return f"bafkrei{trainer.address[2:14].lower()}r{round_}"


def _play(actors: Actors, job: Job, round_: int, rows: dict[str, np.ndarray]) -> None:
    """Every trainer commits the commitment of its row in ``rows`` (a CID of its own), then all reveal."""
    for t in job.trainers:
        commit(t, job.pid, round_, _cid(t, round_), commitment_bytes(rows[t.address]))
    actors.open_reveals(job.pid)
    for t in job.trainers:
        reveal_update(t, job.pid, round_, _cid(t, round_), commitment_bytes(rows[t.address]))
    job.rows.update({(round_, a): r for a, r in rows.items()})


def _settle(
    market: MarketClient, job: Job, round_: int, unavailable: set[str], *, published: bool = True
) -> Finalization:
    """What an aggregator finalizes for ``round_`` when it could not use the updates of ``unavailable``: the
    paying computation on the committed rows and (unless ``published`` is false) the rows published on chain
    since, as ``AggregatorNode`` does."""
    pid = job.pid
    trainers = market.trainers(pid)
    subs = {s.trainer: s for s in market.submissions(pid, round_)}
    k = market.sketch_width(pid)
    rows = np.zeros((len(trainers), k + 2))
    valid = np.zeros(len(trainers), dtype=bool)
    for i, t in enumerate(trainers):
        if t in subs and t not in unavailable:
            rows[i], valid[i] = job.rows[(round_, t)], True
    inputs = RoundInputs(
        pid, round_, market.sketch_seed(pid), k, trainers, subs, market.commits(pid, round_),
        np.zeros((len(trainers), 1), np.float32), rows, valid, {t: "unavailable" for t in unavailable},
    )  # fmt: skip
    scored = score_round(apply_published_rows(inputs, market.disputed_rows(pid, round_)) if published else inputs)
    proof = local_hash_proof(
        *recorded_verifier_inputs(market, pid, round_, scored.chain_scores, scored.flags, scored.rejected)
    )
    cids = f"bafkreimodel{pid}r{round_}", f"bafkreiproof{pid}r{round_}"
    return Finalization(*cids, scored.chain_scores, scored.flags, proof, scored.rejected)


def _publish(trainer: MarketClient, job: Job, round_: int) -> Any:
    """``trainer`` disputes its rejection in ``round_`` with the row it committed (the test verifier's row proof)."""
    row = job.rows[(round_, trainer.address)]
    return trainer.dispute_rejection(job.pid, round_, published_row(row), HashProver().prove_row(row))


def _rewards(actors: Actors, receipt: Any) -> list[int]:
    """The rewards of the ``RoundFinalized`` event in ``receipt``, in trainer order."""
    (finalized,) = actors.events(receipt, "RoundFinalized")
    return list(finalized["rewards"])


def _at(timestamp: int, client: MarketClient, call: ContractFunction, value: int = 0) -> Any:
    """Sends ``call`` (with ``value`` wei) from ``client`` in a block mined at exactly ``timestamp`` (fixed gas: an
    estimate would run at the latest block's time); a revert raises the decoded ContractRevert."""
    client.chain.w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])  # type: ignore[arg-type]
    return client.chain.transact(call, value=value, gas=2_000_000)


def _fee(receipt: Any) -> int:
    """Wei the sender paid for the transaction of ``receipt``."""
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


# ---------------------------------------------------------------- timing and the mempool (the design holds)


def test_the_dispute_window_and_the_deadlines_hold_to_the_second(actors: Actors) -> None:
    """An announcement at the last second of the aggregation deadline still gives the rejected trainers a full
    window, and moves the deadline on: abandonment waits for it. A dispute at the last second of the window
    counts, finalization in that second is refused, one second later the window is shut for everyone. The
    round can be finalized until the moved deadline, abandoned from one second later; nothing of the window
    reaches the next round."""
    job = _start(actors, rounds=2)
    _play(actors, job, 0, _round_rows(actors, job, 0))
    victim, silent = job.trainers[0], job.trainers[1]
    project = actors.owner.get_project(job.pid)
    a0 = actors.owner.round_deadlines(job.pid).aggregation
    reject = actors.aggregator.market.functions.rejectSubmissions(job.pid, 0, [victim.address, silent.address])
    abandon = actors.stranger.market.functions.abandon(job.pid)

    bonds = 2 * actors.owner.rejection_bond()
    snapshot = actors.chain.snapshot()
    with reverts("AggregationDeadlinePassed"):
        _at(a0 + 1, actors.aggregator, reject, bonds)
    actors.chain.revert(snapshot)
    _at(a0, actors.aggregator, reject, bonds)  # the last second
    deadline = actors.owner.rejections(job.pid).dispute_deadline
    a1 = actors.owner.round_deadlines(job.pid).aggregation
    assert deadline == a0 + project.reveal_period and a1 == deadline + project.aggregation_period
    with reverts("NotAllowedYet"):  # the announcement moved the deadline on
        _at(a0 + 1, actors.stranger, abandon)

    def finalize(result: Finalization) -> ContractFunction:
        return actors.aggregator.market.functions.finalizeRound(
            job.pid, 0, result.as_abi_tuple(actors.owner.trainers(job.pid))
        )

    def dispute(trainer: MarketClient) -> ContractFunction:
        row = job.rows[(0, trainer.address)]
        return trainer.market.functions.disputeRejection(job.pid, 0, published_row(row), HashProver().prove_row(row))

    both = {victim.address, silent.address}
    snapshot = actors.chain.snapshot()
    with reverts("DisputeWindowOpen"):
        _at(deadline, actors.aggregator, finalize(_settle(actors.owner, job, 0, both, published=False)))
    actors.chain.revert(snapshot)
    _at(deadline, victim, dispute(victim))  # the last second of the window
    with reverts("DisputeClosed"):
        _at(deadline + 1, silent, dispute(silent))
    result = _settle(actors.owner, job, 0, {silent.address})

    snapshot = actors.chain.snapshot()
    with reverts("NotAllowedYet"):
        _at(a1, actors.stranger, abandon)
    with reverts("AggregationDeadlinePassed"):
        _at(a1 + 1, actors.aggregator, finalize(result))
    _at(a1 + 2, actors.stranger, abandon)
    assert actors.owner.get_project(job.pid).status is ProjectStatus.CANCELLED
    actors.chain.revert(snapshot)

    rewards = _rewards(actors, _at(a1, actors.aggregator, finalize(result)))  # the last second
    assert rewards[job.index(victim)] > 0 and rewards[job.index(silent)] == 0
    state = actors.owner.rejections(job.pid)
    assert (state.rejected, state.disputed, state.dispute_deadline) == ([], [], 0)
    with reverts("WrongRound"):  # a late copy of the round-0 dispute
        victim.chain.transact(dispute(victim), gas=2_000_000)
    _play(actors, job, 1, _round_rows(actors, job, 1))
    with reverts("NotRejected"):  # rejected in round 0, not in round 1
        _publish(silent, job, 1)
    with reverts("InvalidRejection"):  # nor can round 0's rejection be applied in round 1
        actors.aggregator.finalize_round(job.pid, 1, _settle(actors.owner, job, 1, {silent.address}))


def test_a_last_second_dispute_is_mined_whatever_is_sent_to_front_run_it(actors: Actors) -> None:
    """In the last block of the window (automine off, fee-ordered pool) the aggregator outbids a pending dispute
    with a finalization that keeps the rejection, and mempool readers resend the dispute's calldata from their
    own addresses (a member not rejected, a stranger, the other rejected trainer) with higher tips. All of
    those are mined first and revert; the dispute goes through, and the rejection can no longer be applied."""
    rnd = _training_round(actors)
    victim, silent = rnd.trainers[1], rnd.trainers[2]
    actors.aggregator.reject_submissions(rnd.pid, 0, [victim.address, silent.address])
    deadline = actors.owner.rejections(rnd.pid).dispute_deadline
    both = {victim.address, silent.address}
    standing = _finalization(actors.aggregator, rnd, both, published=False)
    row = rnd.row_of(victim)
    dispute = victim.market.functions.disputeRejection(rnd.pid, 0, published_row(row), HashProver().prove_row(row))
    finalize = actors.aggregator.market.functions.finalizeRound(
        rnd.pid, 0, standing.as_abi_tuple(actors.owner.trainers(rnd.pid))
    )

    pool = Mempool(actors.chain)
    pool.automine(False)
    try:
        original = pool.send(victim.chain.account, dispute, tip_gwei=1)
        front = pool.send(actors.aggregator.chain.account, finalize, tip_gwei=100)
        (seen,) = [p for p in pool.pending() if p.hash == original]
        copies = [
            pool.send_raw(c.chain.account, {"to": seen.to, "data": seen.input}, tip_gwei=50)
            for c in (rnd.trainers[0], actors.stranger, silent)
        ]
        actors.chain.w3.provider.make_request("evm_setNextBlockTimestamp", [deadline])  # type: ignore[arg-type]
        receipts = {r["transactionHash"].to_0x_hex(): r for r in pool.mine()}
    finally:
        pool.automine(True)
    assert set(receipts) == {original, front, *copies}
    assert next(iter(receipts)) == front  # mined first
    assert receipts[original]["status"] == 1
    failed = [front, *copies]
    assert [receipts[h]["status"] for h in failed] == [0] * 4
    reasons = [getattr(actors.chain.revert_reason(receipts[h]), "name", None) for h in failed]
    assert reasons == ["DisputeWindowOpen", "NotRejected", "NotATrainer", "InvalidRowProof"]
    state = actors.owner.rejections(rnd.pid)
    assert state.rejected == [silent.address] and state.disputed == [victim.address]
    close_disputes(actors.owner, rnd.pid)
    with reverts("InvalidRejection"):
        actors.aggregator.finalize_round(rnd.pid, 0, standing)
    receipt = actors.aggregator.finalize_round(rnd.pid, 0, _finalization(actors.aggregator, rnd, {silent.address}))
    assert _rewards(actors, receipt)[rnd.trainers.index(victim)] > 0


# ---------------------------------------------------------------- rows and the escrow (the design holds)


def test_crafted_rows_at_the_edges_of_the_box_are_accepted_on_chain_and_flagged(actors: Actors) -> None:
    """Two trainers commit rows made without any update, at the corners of the box the market accepts, reveal
    CIDs nobody serves and dispute their rejections with those rows: v all at +1 with l at +32 (not a unit
    vector), and a unit v with l at -32 (a norm far below the others). The market takes both rows; the paying
    computation flags both (no reward, slashed) and the honest trainers split the whole round as if the two
    had served flagged updates."""
    job = _start(actors)
    rows = _round_rows(actors, job, 0)
    k = actors.owner.sketch_width(job.pid)
    corner, lazy = job.trainers[3], job.trainers[4]
    rows[corner.address] = np.array([MAX_UNIT_INT] * k + [MAX_LOG_INT, MAX_UNIT_INT]) / MAX_UNIT_INT
    rows[lazy.address] = np.array([MAX_UNIT_INT] + [0] * (k - 1) + [-MAX_LOG_INT, MAX_UNIT_INT]) / MAX_UNIT_INT
    _play(actors, job, 0, rows)
    crafted = {corner.address, lazy.address}
    actors.aggregator.reject_submissions(job.pid, 0, sorted(crafted))
    for t in (corner, lazy):
        (event,) = actors.events(_publish(t, job, 0), "RejectionDisputed")
        assert list(event["row"]) == published_row(rows[t.address])
    result = _settle(actors.owner, job, 0, crafted)
    rewards = _rewards(actors, actors.aggregator.finalize_round(job.pid, 0, result))
    for t in (corner, lazy):
        i = job.index(t)
        assert result.flags[i] and not result.rejected[i] and rewards[i] == 0
        assert actors.owner.trainer_info(job.pid, t.address).stake_left == STAKE // 2
    budget = actors.owner.get_project(job.pid).reward_budget
    assert budget - 3 <= sum(rewards) <= budget  # the whole round (but the rounding dust)
    assert all(rewards[i] > 0 for i in range(3))


def test_everything_escrowed_is_withdrawn_once_through_disputes_rejections_and_abandonment(actors: Actors) -> None:
    """Round 0: three rejections announced; one disputed (scored on its row), one standing (flagged, the pool
    shrunk), one withdrawn by the aggregator (the trainer is scored on its update after all). Round 1: a
    rejection stands and the aggregator stalls; the project is abandoned. Everyone withdraws: the sum is what
    was escrowed, the market's balance is back where it was, and nobody is owed anything more."""
    before = actors.chain.balance(actors.deployment.address("TrainingMarket"))
    job = _start(actors, rounds=2)
    disputer, standing, withdrawn, stalled = job.trainers[0], job.trainers[1], job.trainers[2], job.trainers[3]
    _play(actors, job, 0, _round_rows(actors, job, 0))
    actors.aggregator.reject_submissions(job.pid, 0, [disputer.address, standing.address, withdrawn.address])
    award = _award(actors, _publish(disputer, job, 0))
    close_disputes(actors.owner, job.pid)
    rewards = _rewards(
        actors, actors.aggregator.finalize_round(job.pid, 0, _settle(actors.owner, job, 0, {standing.address}))
    )
    assert rewards[job.index(withdrawn)] > 0 and rewards[job.index(disputer)] > 0 and rewards[job.index(standing)] == 0
    assert actors.owner.rejected_trainers(job.pid, 0) == [standing.address]

    _play(actors, job, 1, _round_rows(actors, job, 1))
    actors.aggregator.reject_submissions(job.pid, 1, [stalled.address])
    deadline = actors.owner.round_deadlines(job.pid).aggregation
    actors.chain.increase_time(deadline - actors.chain.timestamp() + 1)
    actors.stranger.abandon(job.pid)

    everyone = [actors.owner, actors.aggregator, *job.trainers]
    project = actors.owner.get_project(job.pid)
    withdrawn_total = sum(c.withdraw(job.pid) for c in everyone)
    assert withdrawn_total == project.reward_budget + project.aggregator_fee + N * STAKE
    bond = actors.owner.rejection_bond()
    bonds = {c.address: c.collect_bonds(job.pid) for c in everyone}  # four posted, one disputed: its cost awarded
    assert bonds[disputer.address] == award and bonds[actors.aggregator.address] == 4 * bond - award
    assert sum(bonds.values()) == 4 * bond
    assert actors.chain.balance(actors.deployment.address("TrainingMarket")) == before
    assert all(actors.owner.withdrawable(job.pid, c.address) == 0 for c in everyone)
    assert all(actors.owner.bond_credit(c.address) == 0 for c in everyone)
    assert [actors.owner.bonds_held(job.pid, r) for r in (0, 1)] == [0, 0]


# ---------------------------------------------------------------- economic holes (strict xfails)


def test_turning_a_flag_into_a_standing_rejection_takes_nothing_from_the_honest_trainers(actors: Actors) -> None:
    colluder = N - 1
    rnd = _training_round(actors, colluder=colluder)
    honest, _ = _honest_payouts(actors, rnd)
    cheat = rnd.trainers[colluder].address
    assert honest[cheat] == STAKE // 2  # the honest finalization flags it: no reward, half its stake
    actors.aggregator.reject_submissions(rnd.pid, 0, [cheat])  # "its update could not be fetched"
    close_disputes(actors.owner, rnd.pid)  # it does not dispute: nothing to gain
    actors.aggregator.finalize_round(rnd.pid, 0, _finalization(actors.aggregator, rnd, {cheat}))
    payouts = _payouts(actors, rnd.pid)
    coalition = (actors.owner.address, actors.aggregator.address, cheat)
    dust = N  # the reward split's rounding: at most one wei per trainer goes back to the owner
    assert sum(payouts[a] for a in coalition) <= sum(honest[a] for a in coalition) + dust
    others = [t.address for t in rnd.trainers if t.address != cheat]
    assert sum(payouts[a] for a in others) >= sum(honest[a] for a in others) - dust


def test_owner_sybils_that_serve_nothing_do_not_shrink_what_the_honest_trainers_are_paid(actors: Actors) -> None:
    job = _start(actors)
    sybils = {job.trainers[3].address, job.trainers[4].address}
    _play(actors, job, 0, _round_rows(actors, job, 0, noise=(3, 4)))
    coalition = (actors.owner.address, *sorted(sybils))

    snapshot = actors.chain.snapshot()  # had the Sybils served their (noise) updates: flagged
    result = _settle(actors.owner, job, 0, set())
    assert [result.flags[job.index(t)] for t in job.trainers] == [False, False, False, True, True]
    actors.aggregator.finalize_round(job.pid, 0, result)
    flagged = _payouts(actors, job.pid)
    actors.chain.revert(snapshot)

    actors.aggregator.reject_submissions(job.pid, 0, sorted(sybils))  # an honest aggregator: nothing was served
    close_disputes(actors.owner, job.pid)
    actors.aggregator.finalize_round(job.pid, 0, _settle(actors.owner, job, 0, sybils))
    rejected = _payouts(actors, job.pid)
    dust = len(job.trainers)  # the reward split's rounding: at most one wei per trainer goes back to the owner
    assert sum(rejected[a] for a in coalition) <= sum(flagged[a] for a in coalition) + dust
    honest_ones = [t.address for t in job.trainers[:3]]
    assert sum(rejected[a] for a in honest_ones) >= sum(flagged[a] for a in honest_ones) - dust


def test_stalling_after_a_rejection_stood_pays_the_rejected_trainer_nothing(actors: Actors) -> None:
    rnd = _training_round(actors)
    free_rider = rnd.trainers[2].address  # revealed a CID nobody serves
    actors.aggregator.reject_submissions(rnd.pid, 0, [free_rider])
    close_disputes(actors.owner, rnd.pid)  # it has no row worth publishing: the rejection stands
    snapshot = actors.chain.snapshot()
    actors.aggregator.finalize_round(rnd.pid, 0, _finalization(actors.aggregator, rnd, {free_rider}))
    honest = _payouts(actors, rnd.pid)
    actors.chain.revert(snapshot)

    deadline = actors.owner.round_deadlines(rnd.pid).aggregation
    actors.chain.increase_time(deadline - actors.chain.timestamp() + 1)  # the aggregator stalls
    actors.stranger.abandon(rnd.pid)
    stalled = _payouts(actors, rnd.pid)
    coalition = (actors.aggregator.address, free_rider)
    assert sum(stalled[a] for a in coalition) <= sum(honest[a] for a in coalition)
    assert stalled[free_rider] <= STAKE - STAKE // 2


def test_disputing_a_false_rejection_costs_the_trainer_nothing(actors: Actors) -> None:
    """An aggregator rejects every trainer falsely; each disputes. The escrow ends as after the honest
    finalization, and each trainer, paid the aggregator's bond for its rejection, ends at least as well off as
    after the honest round once its dispute's fee is counted; the bonds leave the aggregator's wallet for good."""
    rnd = _training_round(actors)
    honest, _ = _honest_payouts(actors, rnd)
    bond = actors.owner.rejection_bond()
    spent = actors.chain.balance(actors.aggregator.address)
    announce = actors.aggregator.reject_submissions(rnd.pid, 0, [t.address for t in rnd.trainers])
    assert spent - actors.chain.balance(actors.aggregator.address) == N * bond + _fee(announce)
    receipts = {t.address: _dispute(t, rnd) for t in rnd.trainers}
    actors.aggregator.finalize_round(rnd.pid, 0, _finalization(actors.aggregator, rnd, set()))
    payouts = _payouts(actors, rnd.pid)
    print(
        f"griefing a round of {N}: the aggregator's announcement {announce['gasUsed']} gas and {N * bond} wei of "
        f"bonds, the trainers' disputes {sum(int(r['gasUsed']) for r in receipts.values())} gas"
    )
    assert payouts == honest  # the escrow ends as after the honest finalization
    awards = {a: _award(actors, r) for a, r in receipts.items()}
    assert all(int(r["effectiveGasPrice"]) - _base_fee(actors, r) <= MAX_TIP for r in receipts.values())
    bonds = {t.address: t.withdraw_bonds() for t in rnd.trainers}
    assert bonds == awards and all(0 < award < bond for award in awards.values())
    assert all(payouts[a] + bonds[a] - _fee(r) >= honest[a] for a, r in receipts.items())
    returned = actors.aggregator.reclaim_bonds(rnd.pid, 0)  # the bonds less the disputes' costs
    assert returned == N * bond - sum(awards.values())


def _base_fee(actors: Actors, receipt: Any) -> int:
    """The base fee per gas of the block that mined ``receipt``'s transaction."""
    return int(actors.chain.w3.eth.get_block(receipt["blockNumber"])["baseFeePerGas"])


def _award(actors: Actors, receipt: Any) -> int:
    """The bond credited by the dispute of ``receipt`` (its ``BondAwarded`` event)."""
    (event,) = actors.events(receipt, "BondAwarded")
    return int(event["amount"])


def _calldata_slack(actors: Actors, receipt: Any) -> int:
    """Gas a dispute's reimbursement may count above the transaction's real gas: the contract counts 16 gas for
    every byte of the arguments' encoding (here the whole calldata), the chain 4 for a zero byte, so 12 per zero
    byte of the transaction's data, plus
    ``OVERHEAD_SLACK`` for the constant overhead's rounding."""
    data = bytes(actors.chain.w3.eth.get_transaction(receipt["transactionHash"])["input"])
    return 12 * data.count(0) + OVERHEAD_SLACK


def test_a_trainer_that_withholds_its_update_and_disputes_gains_nothing_from_the_bond(actors: Actors) -> None:
    """A trainer serves no update: the honest aggregator must reject it (it cannot build its row), and the trainer
    disputes with its committed row. It is paid its share like everyone, and the bond only reimburses its dispute's
    fee: the credit less the fee is at most the calldata bound's slack (a few thousand gas at the block's price),
    never the bond; the rest of the bond goes back to the aggregator."""
    rnd = _training_round(actors)
    honest, _ = _honest_payouts(actors, rnd)
    bond = actors.owner.rejection_bond()
    withholder = rnd.trainers[2]
    actors.aggregator.reject_submissions(rnd.pid, 0, [withholder.address])
    receipt = _dispute(withholder, rnd)
    actors.aggregator.finalize_round(rnd.pid, 0, _finalization(actors.aggregator, rnd, set()))
    assert _payouts(actors, rnd.pid) == honest  # paid for its row like everyone
    award, fee = _award(actors, receipt), _fee(receipt)
    slack = _calldata_slack(actors, receipt) * int(receipt["effectiveGasPrice"])
    print(f"withholding: dispute {receipt['gasUsed']} gas, fee {fee} wei, award {award} wei, slack {slack} wei")
    assert 0 <= award - fee <= slack and slack < bond // 50
    assert withholder.withdraw_bonds() == award
    assert actors.aggregator.reclaim_bonds(rnd.pid, 0) == bond - award


def test_an_inflated_tip_is_reimbursed_only_up_to_the_cap(actors: Actors) -> None:
    """A trainer pays a 100 gwei priority fee (a builder it colludes with could refund it off chain): its award
    counts at most ``basefee + MAX_REIMBURSED_TIP`` per gas, far below its fee; the aggregator gets the rest back."""
    assert actors.chain.call(actors.owner.market.functions.MAX_REIMBURSED_TIP()) == MAX_TIP
    rnd = _training_round(actors)
    bond = actors.owner.rejection_bond()
    trainer = rnd.trainers[0]
    actors.aggregator.reject_submissions(rnd.pid, 0, [trainer.address])
    row = rnd.row_of(trainer)
    call = trainer.market.functions.disputeRejection(rnd.pid, 0, published_row(row), HashProver().prove_row(row))
    receipt = _send_with_tip(trainer, call, 100 * GWEI)
    capped = _base_fee(actors, receipt) + MAX_TIP
    assert int(receipt["effectiveGasPrice"]) > capped
    award, gas = _award(actors, receipt), int(receipt["gasUsed"])
    assert gas * capped <= award <= (gas + _calldata_slack(actors, receipt)) * capped < _fee(receipt)
    close_disputes(actors.owner, rnd.pid)
    actors.aggregator.finalize_round(rnd.pid, 0, _finalization(actors.aggregator, rnd, set()))
    assert actors.aggregator.reclaim_bonds(rnd.pid, 0) == bond - award


def _send_with_tip(client: MarketClient, call: ContractFunction, tip: int) -> Any:
    """Sends ``call`` from ``client`` with a priority fee of ``tip`` wei per gas; returns the receipt."""
    w3 = client.chain.w3
    base = int(w3.eth.get_block("latest")["baseFeePerGas"])
    tx = call.build_transaction(
        {
            "from": client.address,
            "gas": 2_000_000,
            "maxPriorityFeePerGas": tip,  # type: ignore[typeddict-item]
            "maxFeePerGas": 2 * base + tip,  # type: ignore[typeddict-item]
            "nonce": w3.eth.get_transaction_count(client.address),
            "chainId": client.chain.chain_id,
        }
    )
    signed = client.chain.account.sign_transaction(tx)
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
    assert receipt["status"] == 1
    return receipt


def test_the_aggregator_gets_back_the_bonds_of_rejections_that_stood_once(actors: Actors) -> None:
    """Two rejections: one disputed (its bond goes to the trainer), one standing. The standing one's bond stays at
    stake until the window closes, comes back to the aggregator once (anyone may trigger the return), and is
    withdrawn once."""
    rnd = _training_round(actors)
    bond = actors.owner.rejection_bond()
    disputer, stood = rnd.trainers[0], rnd.trainers[1]
    announce = actors.aggregator.reject_submissions(rnd.pid, 0, [disputer.address, stood.address])
    assert actors.owner.bonds_held(rnd.pid, 0) == 2 * bond
    (posted,) = actors.events(announce, "BondPosted")
    assert posted["amount"] == 2 * bond and posted["aggregator"] == actors.aggregator.address
    award = _award(actors, _dispute(disputer, rnd))  # the dispute's cost, out of its bond
    assert 0 < award < bond and actors.owner.bond_credit(disputer.address) == award
    assert actors.owner.bonds_held(rnd.pid, 0) == 2 * bond - award
    reclaim = actors.stranger.market.functions.reclaimBonds(rnd.pid, 0)
    with reverts("BondsStillAtStake"):
        actors.stranger.chain.transact(reclaim)
    assert actors.aggregator.collect_bonds(rnd.pid) == 0  # the client leaves the open window's bonds alone
    assert actors.owner.bonds_held(rnd.pid, 0) == 2 * bond - award
    close_disputes(actors.owner, rnd.pid)
    actors.aggregator.finalize_round(rnd.pid, 0, _finalization(actors.aggregator, rnd, {stood.address}))
    returned = 2 * bond - award  # the standing rejection's bond and what the dispute's cost left of the other
    assert actors.stranger.reclaim_bonds(rnd.pid, 0) == returned  # anyone may; the credit is the aggregator's
    assert actors.owner.bond_credit(actors.aggregator.address) == returned
    with reverts("NoBondsHeld"):
        actors.stranger.chain.transact(reclaim)
    wallet = actors.chain.balance(actors.aggregator.address)
    receipt = actors.aggregator.chain.transact(actors.aggregator.market.functions.withdrawBonds())
    assert actors.chain.balance(actors.aggregator.address) == wallet + returned - _fee(receipt)
    with reverts("NoBondToWithdraw"):
        actors.aggregator.chain.transact(actors.aggregator.market.functions.withdrawBonds())
    assert disputer.withdraw_bonds() == award and disputer.withdraw_bonds() == 0


def test_an_announcement_takes_exactly_the_bond_per_rejected_trainer(actors: Actors) -> None:
    rnd = _training_round(actors)
    bond = actors.owner.rejection_bond()
    assert bond == DEFAULT_REJECTION_BOND > 0
    who = [t.address for t in rnd.trainers[:2]]
    call = actors.aggregator.market.functions.rejectSubmissions(rnd.pid, 0, who)
    for sent in (0, bond, 2 * bond - 1, 2 * bond + 1, 3 * bond):
        with reverts("WrongBond") as caught:
            actors.aggregator.chain.transact(call, value=sent)
        assert caught.value.args == {"expected": 2 * bond, "sent": sent}
    assert actors.owner.rejections(rnd.pid).dispute_deadline == 0
    actors.aggregator.chain.transact(call, value=2 * bond)
    assert actors.owner.bonds_held(rnd.pid, 0) == 2 * bond


def test_ether_sent_with_any_other_call_of_the_module_is_refused(actors: Actors) -> None:
    """Only ``rejectSubmissions`` takes ether through the market's (payable) fallback: the module's other functions,
    an unknown selector and a plain transfer revert with value, so no ether is stranded in the market."""
    rnd = _training_round(actors)
    actors.aggregator.reject_submissions(rnd.pid, 0, [rnd.trainers[0].address])
    fns = actors.owner.market.functions
    row = rnd.row_of(rnd.trainers[0])
    calls = [
        fns.disputeRejection(rnd.pid, 0, published_row(row), HashProver().prove_row(row)),
        fns.reclaimBonds(rnd.pid, 0),
        fns.withdrawBonds(),
        fns.bondsHeld(rnd.pid, 0),
        fns.rejectionBond(),
    ]
    market = actors.deployment.address("TrainingMarket")
    sender = rnd.trainers[0].address
    for call in calls:
        tx = {"from": sender, "to": market, "data": call._encode_transaction_data(), "value": 1}
        with pytest.raises(ContractLogicError) as refused:
            actors.chain.w3.eth.call(tx)  # type: ignore[arg-type]
        assert not isinstance(refused.value, ContractCustomError)  # the call value check, before anything else
    for tx in ({"value": 1}, {"data": "0x12345678", "value": 1}):
        with pytest.raises(ContractLogicError):
            actors.chain.w3.eth.call({"from": sender, "to": market, **tx})  # type: ignore[arg-type]
    assert actors.owner.bonds_held(rnd.pid, 0) == actors.owner.rejection_bond()


def _calldata(actors: Actors, receipt: Any) -> dict[str, Any]:
    """The arguments of the market call mined in ``receipt``, as anyone reads them from the chain."""
    tx = actors.chain.get_transaction(receipt["transactionHash"])
    _, args = actors.owner.market.decode_function_input(tx["input"])
    return args


def _refused_replay(actors: Actors, job: Job, round_: int, replayer: MarketClient, published: dict[str, Any]) -> int:
    """``replayer`` committed, in ``round_``, the commitment of a row ``published`` on chain (the calldata that
    published it) and served nothing: the aggregator rejects it, its dispute with that very calldata is refused
    (``RowAlreadyPublished``), the rejection stands and the round is finalized; its reward for the round."""
    actors.aggregator.reject_submissions(job.pid, round_, [replayer.address])  # its CID is served by nobody
    with reverts("RowAlreadyPublished") as refused:
        replayer.dispute_rejection(job.pid, round_, list(published["row"]), bytes(published["proof"]))
    assert refused.value.args["commitment"] == commitment_bytes(job.rows[(round_, replayer.address)])
    close_disputes(actors.owner, job.pid)
    receipt = actors.aggregator.finalize_round(job.pid, round_, _settle(actors.owner, job, round_, {replayer.address}))
    assert actors.owner.rejected_trainers(job.pid, round_) == [replayer.address]  # the rejection stood
    return _rewards(actors, receipt)[job.index(replayer)]


@pytest.mark.parametrize("replayer_index", [4, 0], ids=["another_trainer", "its_author"])
def test_a_row_published_in_a_dispute_cannot_be_replayed_for_pay_in_a_later_round(
    actors: Actors, replayer_index: int
) -> None:
    """The row published by a dispute in round 0 (its first dispute, with a fresh row, succeeds) is committed
    again two rounds later, by another trainer or by its author, and disputed with the original calldata: the
    market refuses, and the replayer is paid nothing for the round."""
    job = _start(actors, rounds=3)
    author, replayer = job.trainers[0], job.trainers[replayer_index]
    rows0 = _round_rows(actors, job, 0)
    _play(actors, job, 0, rows0)
    actors.aggregator.reject_submissions(job.pid, 0, [author.address])
    original = _publish(author, job, 0)
    assert actors.owner.rejections(job.pid).disputed == [author.address]  # a first dispute of a fresh row
    actors.aggregator.finalize_round(job.pid, 0, _settle(actors.owner, job, 0, set()))
    _play(actors, job, 1, _round_rows(actors, job, 1))
    actors.aggregator.finalize_round(job.pid, 1, _settle(actors.owner, job, 1, set()))

    rows2 = _round_rows(actors, job, 2)
    rows2[replayer.address] = rows0[author.address]  # it commits the published row's commitment
    _play(actors, job, 2, rows2)
    assert _refused_replay(actors, job, 2, replayer, _calldata(actors, original)) == 0


def test_the_owners_revealed_reference_row_cannot_be_replayed_by_a_trainers_dispute(actors: Actors) -> None:
    """The owner's reference row of round 0 is on chain (``revealReference``'s calldata, row and row proof): a
    trainer that commits its commitment in round 1 and serves nothing cannot dispute with it."""
    job = _start(actors, rounds=2)
    replayer = job.trainers[2]
    seed, k = actors.owner.sketch_seed(job.pid), actors.owner.sketch_width(job.pid)
    reference = commit_update(np.random.default_rng(7).normal(size=DIM), seed, k)[0]
    sealed = commit_reference(actors.owner, job.pid, 0, reference)
    _play(actors, job, 0, _round_rows(actors, job, 0))
    revealed = reveal_reference(actors.owner, job.pid, 0, sealed, HashProver())
    actors.aggregator.finalize_round(job.pid, 0, _settle(actors.owner, job, 0, set()))

    rows1 = _round_rows(actors, job, 1)
    rows1[replayer.address] = reference  # it commits the reference's commitment
    _play(actors, job, 1, rows1)
    assert _refused_replay(actors, job, 1, replayer, _calldata(actors, revealed)) == 0


def test_a_row_published_in_another_project_does_not_block_a_dispute_here(actors: Actors) -> None:
    """The record of published rows is per project: a row published by a dispute in another project (anyone can
    publish there first what it learned) does not make a dispute of the same commitment in a later round of this
    project revert; it is accepted and the rejection is lifted."""
    job = _start(actors, rounds=2)
    _play(actors, job, 0, _round_rows(actors, job, 0))
    actors.aggregator.finalize_round(job.pid, 0, _settle(actors.owner, job, 0, set()))

    elsewhere = _start(actors)
    rows = _round_rows(actors, elsewhere, 0)
    _play(actors, elsewhere, 0, rows)
    actors.aggregator.reject_submissions(elsewhere.pid, 0, [elsewhere.trainers[0].address])
    published = _calldata(actors, _publish(elsewhere.trainers[0], elsewhere, 0))

    trainer = job.trainers[3]
    rows1 = _round_rows(actors, job, 1)
    rows1[trainer.address] = rows[elsewhere.trainers[0].address]
    _play(actors, job, 1, rows1)
    actors.aggregator.reject_submissions(job.pid, 1, [trainer.address])
    receipt = trainer.dispute_rejection(job.pid, 1, list(published["row"]), bytes(published["proof"]))
    (event,) = actors.events(receipt, "RejectionDisputed")
    assert (event["projectId"], event["round"], event["trainer"]) == (job.pid, 1, trainer.address)
    state = actors.owner.rejections(job.pid)
    assert state.disputed == [trainer.address] and state.rejected == []


def test_a_row_first_published_in_this_round_does_not_block_another_dispute_of_the_round(actors: Actors) -> None:
    """Two trainers committed the same row in one round (the second copied it), both are rejected, and the copier
    disputes first: the author's dispute still goes through (nobody can make a fresh row's dispute revert by
    publishing it first), and of the two identical rows only the earlier commit is paid."""
    job = _start(actors)
    author, copier = job.trainers[0], job.trainers[1]
    rows = _round_rows(actors, job, 0)
    rows[copier.address] = rows[author.address]
    _play(actors, job, 0, rows)  # the author commits first
    actors.aggregator.reject_submissions(job.pid, 0, [author.address, copier.address])
    _publish(copier, job, 0)
    _publish(author, job, 0)
    assert sorted(actors.owner.rejections(job.pid).disputed) == sorted([author.address, copier.address])
    rewards = _rewards(actors, actors.aggregator.finalize_round(job.pid, 0, _settle(actors.owner, job, 0, set())))
    assert rewards[job.index(author)] > 0 and rewards[job.index(copier)] == 0


def test_an_aggregators_record_counts_as_upheld_only_rejections_that_stood(actors: Actors) -> None:
    rnd = _training_round(actors)
    honest, _ = _honest_payouts(actors, rnd)
    actors.aggregator.reject_submissions(rnd.pid, 0, [t.address for t in rnd.trainers])
    close_disputes(actors.owner, rnd.pid)  # nobody disputes (colluding, or offline)
    actors.aggregator.finalize_round(rnd.pid, 0, _finalization(actors.aggregator, rnd, set(), published=False))
    assert _payouts(actors, rnd.pid) == honest and actors.owner.rejected_trainers(rnd.pid, 0) == []
    record = actors.owner.aggregator_record(actors.aggregator.address)
    assert record.upheld == 0


# ---------------------------------------------------------------- the nodes (strict xfails)


def _submit(nodes: list[TrainerNode], pid: int) -> list[Submitted]:
    """Every node commits, then every node reveals."""
    assert all(isinstance(n.step(pid), Committed) for n in nodes)
    submitted = [n.step(pid) for n in nodes]
    assert all(isinstance(s, Submitted) for s in submitted)
    return submitted  # type: ignore[return-value]


def test_a_restarted_aggregator_finalizes_the_round_from_the_updates_it_pinned(
    actors: Actors, ipfs_node: LocalIpfsNode
) -> None:
    store = ModelStore(ipfs_node.client())
    initial = store.put_tensors(build_model("mlp", seed=3).state_dict(), {"kind": "model"})
    pid = actors.training_project(4, rounds=2, initial_model_cid=initial)
    cut_off = _UnpublishedStore(ipfs_node.client())
    nodes = [
        TrainerNode(t, cut_off if i == 3 else store, FixedUpdate(u))
        for i, (t, u) in enumerate(zip(actors.trainers[:4], agreeing_updates(4, seed=13), strict=True))
    ]
    submitted = _submit(nodes, pid)
    fetching = IpfsClient(ipfs_node.api_url, timeout=2.0, retries=0)
    first = AggregatorNode(actors.aggregator, ModelStore(fetching))
    announced = first.step(pid)
    assert isinstance(announced, RejectionsAnnounced) and list(announced.rejected) == [nodes[3].address]
    # The first pass pinned every update it used on the aggregator's own node: whatever its trainer does now
    # (stops serving it, unpins it on its own node), the aggregator keeps it for the second pass and the audit.
    assert all(fetching.is_pinned(s.cid) for s in submitted[:3])
    close_disputes(actors.owner, pid)  # the cut-off trainer does not dispute

    restarted = AggregatorNode(actors.aggregator, ModelStore(fetching))
    report = restarted.step(pid)
    assert isinstance(report, RoundReport) and report.tx_hash


def test_a_trainer_restarted_in_the_window_disputes_a_false_rejection_with_its_own_update(
    actors: Actors, ipfs_node: LocalIpfsNode
) -> None:
    """The aggregator announces a false rejection of a served, matching update, after the trainer's node
    restarted (its committed row was in memory only). The new node recomputes the row from its own update and
    its on-chain commitment, and disputes; an aggregator node then finalizes the round with that trainer scored
    on its update, not slashed."""
    store = ModelStore(ipfs_node.client())
    initial = store.put_tensors(build_model("mlp", seed=5).state_dict(), {"kind": "model"})
    pid = actors.training_project(4, rounds=2, initial_model_cid=initial)
    updates = agreeing_updates(4, seed=19)
    victim = actors.trainers[0]
    _submit([TrainerNode(t, store, FixedUpdate(u)) for t, u in zip(actors.trainers[:4], updates, strict=True)], pid)
    actors.aggregator.reject_submissions(pid, 0, [victim.address])  # false: the update is served and matches

    restarted = TrainerNode(victim, store, FixedUpdate(updates[0]))
    disputed = restarted.step(pid)
    assert isinstance(disputed, Disputed)
    seed, k = actors.owner.sketch_seed(pid), actors.owner.sketch_width(pid)
    assert disputed.row == published_row(commit_update(updates[0], seed, k)[0])
    report = AggregatorNode(actors.aggregator, store).step(pid)  # nobody left to wait for
    assert isinstance(report, RoundReport) and report.tx_hash and report.rejected == {}
    v = report.trainers.index(victim.address)
    assert not report.flags[v] and report.chain_scores[v] > 0
    assert actors.owner.trainer_info(pid, victim.address).stake_left == STAKE


class _Served(Exception):
    """Stops the aggregator's loop once the project it must keep serving was finalized."""


def test_a_mismatching_published_row_on_the_test_verifier_stops_only_its_own_project(
    actors: Actors, ipfs_node: LocalIpfsNode
) -> None:
    store = ModelStore(ipfs_node.client())
    initial = store.put_tensors(build_model("mlp", seed=4).state_dict(), {"kind": "model"})
    poisoned = actors.training_project(4, rounds=1, initial_model_cid=initial)
    other = actors.create(rounds=1, min_trainers=2, max_trainers=4, initial_model_cid=initial)
    for t in actors.trainers[4:8]:
        t.join(other)  # full: training starts
    updates = agreeing_updates(8, seed=17)
    cheat = actors.trainers[3]
    _submit(
        [
            TrainerNode(t, _UnpublishedStore(ipfs_node.client()) if t is cheat else store, FixedUpdate(u))
            for t, u in zip(actors.trainers[:4], updates[:4], strict=True)
        ],
        poisoned,
    )
    _submit(
        [TrainerNode(t, store, FixedUpdate(u)) for t, u in zip(actors.trainers[4:8], updates[4:], strict=True)], other
    )
    node = AggregatorNode(actors.aggregator, ModelStore(IpfsClient(ipfs_node.api_url, timeout=2.0, retries=0)))
    assert isinstance(node.step(poisoned), RejectionsAnnounced)

    seed, k = actors.owner.sketch_seed(poisoned), actors.owner.sketch_width(poisoned)
    forged = published_row(commit_update(updates[0], seed, k)[0])  # another trainer's row, not its own
    commitment = actors.owner.commitment(poisoned, 0, cheat.address)
    cheat.dispute_rejection(poisoned, 0, forged, keccak(abi_encode(["bytes32", "int256[]"], [commitment, forged])))

    errors: list[Exception] = []

    def served(report: RoundReport | RejectionsAnnounced) -> None:
        if isinstance(report, RoundReport) and report.project_id == other:
            raise _Served

    with pytest.raises(_Served):
        node.run([poisoned, other], poll_seconds=0.05, on_report=served, on_error=errors.append)
    assert any(isinstance(e, PublishedRowMismatch) for e in errors)


def test_a_trainer_node_replaying_its_published_row_reports_the_refused_dispute_once(
    actors: Actors, ipfs_node: LocalIpfsNode
) -> None:
    """A node that sends the same update every round and serves none of them: rejected in round 0, it disputes and
    its row is published; rejected again in round 1 with the same row, its dispute is refused. Its step reports
    that once (``DisputeRefused``: the commitment and the round the row was published in) and does not raise or
    try again; the aggregator node finalizes the round with the rejection standing, the node unpaid."""
    store = ModelStore(ipfs_node.client())
    initial = store.put_tensors(build_model("mlp", seed=6).state_dict(), {"kind": "model"})
    pid = actors.training_project(4, rounds=2, initial_model_cid=initial)
    updates = agreeing_updates(4, seed=23)
    lazy = TrainerNode(actors.trainers[3], _UnpublishedStore(ipfs_node.client()), FixedUpdate(updates[3]))
    nodes = [TrainerNode(t, store, FixedUpdate(u)) for t, u in zip(actors.trainers[:3], updates[:3], strict=True)]
    aggregator = AggregatorNode(actors.aggregator, ModelStore(IpfsClient(ipfs_node.api_url, timeout=2.0, retries=0)))

    _submit([*nodes, lazy], pid)
    assert isinstance(aggregator.step(pid), RejectionsAnnounced)
    assert isinstance(lazy.step(pid), Disputed)
    assert isinstance(aggregator.step(pid), RoundReport)  # every rejected trainer disputed: no waiting

    for node, update in zip(nodes, agreeing_updates(4, seed=24)[:3], strict=True):
        node.source = FixedUpdate(update)  # honest nodes train afresh (the same update again is a stale replay)
    submitted = _submit([*nodes, lazy], pid)
    assert isinstance(aggregator.step(pid), RejectionsAnnounced)
    refused = lazy.step(pid)
    assert refused == DisputeRefused(pid, 1, submitted[3].commitment, 0)
    assert lazy.step(pid) is StepOutcome.ALREADY_SUBMITTED  # reported once, not sent again
    close_disputes(actors.owner, pid)
    report = aggregator.step(pid)
    assert isinstance(report, RoundReport) and list(report.rejected) == [lazy.address]
    assert report.chain_scores[report.trainers.index(lazy.address)] == 0
    # round 0's bond paid the dispute's cost (the rest went back to the aggregator), round 1's stood: back too
    bond, award = actors.owner.rejection_bond(), actors.owner.bond_credit(lazy.address)
    assert 0 < award < bond and report.bonds_returned == bond and actors.owner.bonds_held(pid, 1) == 0
    assert actors.owner.bond_credit(actors.aggregator.address) == 2 * bond - award
    assert actors.owner.trainer_info(pid, lazy.address).stake_left < actors.owner.get_project(pid).stake  # slashed
