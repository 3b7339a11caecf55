# ruff: noqa: F811  (the fixture imported from tests.ipfs_fixtures is used as a test argument)
"""Attack review of stale challenges (``MarketDisputes.challengeStale``), on a real anvil with the local test verifier:
every party (owner, aggregator, any trainer, coalitions, mempool readers) may deviate. The design holds when no honest
trainer can be shown stale, no stale row escapes a challenge sent in the window, a challenger is reimbursed its gas
and never more, and the market's ether always covers what it owes.

Holes the review found, fixed since (the tests pass):

- the challenger's reimbursement counted 16 gas for every byte of the call's data: zero bytes appended after the
  arguments (4 gas each, 10 under EIP-7623's floor) earned 12 (6) gas apiece out of the stale trainer's stake, which
  the slash would otherwise have paid the owner; a stale trainer's own Sybil padding its challenge recovered its
  stake. Now only the arguments' ABI encoding is counted (as for disputes);
- an announced rejection could not be challenged (``AlreadyRejected``): an aggregator colluding with a stale trainer
  announced its rejection at once, the trainer disputed it after the challenge window, and the aggregator finalized
  in the same block, the stale row paid. Now a rejected submission may be challenged (it then stands beyond dispute);
- the owner's reference, which costs the owner nothing, was evidence with the looser bar against another author
  (2^-6): an owner could publish an honest trainer's earlier row as its reference and have the trainer's later rows
  within 2^-6 of it shown stale, the slash its own. Now the reference is evidence only within the own bar (2^-10);
- the aggregator node's own challenge, refused because another challenger's was mined first (``AlreadyShownStale``),
  left the row scored as valid: the finalization reverted ``StaleNotRejected``. Now it reads the challenges again;
- the aggregator node kept the earlier rounds' rows in memory only: restarted mid-project (a crash, a redeploy) it
  knew none, and a replay of a row revealed before the restart was paid. Now a node without them rebuilds them once
  from the chain and IPFS (``AggregatorNode.stale_history``), opening encrypted updates with its key.

Still open (strict xfail): a colluding *trainer* can launder an honest trainer's row the same way (its own
submission, a copy of the honest row, is itself stale but nobody has to challenge it); measured on the robustness
task (``bench/stale_laundering.py``) an honest row comes within the looser bar of such a copy in 0 of 1,300 (victim,
round) pairs over 15 rounds and in 3 of 1,140 over 40 rounds (Dirichlet(0.5) shards; 0 on IID).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import typer

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.errors import ContractRevert
from marketplace.adapters.chain.market import REFERENCE_AUTHOR, MarketClient, StaleEvidence
from marketplace.adapters.chain.update_keys import UpdateKeysClient, update_keys_client
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.manager import LocalIpfsNode
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.cli.challenge import challenge_open_round
from marketplace.fl.models import build_model
from marketplace.protocol.commitment import commit_update, published_row
from marketplace.protocol.envelope import is_envelope
from marketplace.roles.aggregator import AggregatorNode, RoundReport, publish_update_key
from marketplace.roles.trainer import Committed, TrainerNode
from marketplace.round.prove import HashProver
from marketplace.round.reference import commit_reference, reveal_reference
from marketplace.round.stale import NEAR_COPY_DIST, OWN_COPY_DIST, squared_distance
from tests.disputes import close_disputes
from tests.ipfs_fixtures import ipfs_node  # noqa: F401
from tests.market_fixtures import Actors, reverts
from tests.test_attack_review_bonds import _no_automine, _send
from tests.test_dispute_attacks import DIM, Job, _play, _publish, _round_rows, _settle, _start
from tests.test_disputes import STAKE
from tests.update_sources import FixedUpdate, agreeing_updates

PROVER = HashProver()
GWEI = 10**9


# ---------------------------------------------------------------- helpers


def _evidence(
    actors: Actors, job: Job, who: MarketClient, row: np.ndarray, earlier_round: int, author: int, earlier: np.ndarray
) -> StaleEvidence:
    """Evidence that ``who``'s ``row`` of the open round copies ``earlier``, revealed in ``earlier_round`` by trainer
    number ``author`` (:data:`REFERENCE_AUTHOR`: the owner's reference, no commitments)."""
    commitments = () if author == REFERENCE_AUTHOR else tuple(actors.owner.round_commitments(job.pid, earlier_round))
    return StaleEvidence(
        who.address, tuple(published_row(row)), PROVER.prove_row(row), earlier_round, author, commitments,
        tuple(published_row(earlier)), PROVER.prove_row(earlier),
    )  # fmt: skip


def _lands(client: MarketClient, pid: int, round_: int, evidence: StaleEvidence) -> bool:
    """Whether ``client``'s challenge with ``evidence`` is accepted (False: the market refused it)."""
    try:
        client.challenge_stale(pid, round_, evidence)
    except ContractRevert:
        return False
    return True


def _drift(job_seed: int, seed: int, k: int, base: np.ndarray) -> np.ndarray:
    """An honest later row of the trainer whose update was ``base``: its update moved a little (cosine ~0.995), so
    that its row is over the own bar from ``base``'s row but within the looser one, as a trainer's consecutive rows
    of a long Dirichlet run measured (bench/stale_laundering.py: up to 0.9955)."""
    noise = np.random.default_rng(seed).normal(size=base.size)
    first = commit_update(base, job_seed, k)[0]
    for eps in np.linspace(0.02, 0.2, 37):
        row = commit_update(base + eps * noise, job_seed, k)[0]
        if 4 * OWN_COPY_DIST < squared_distance(row, first) <= NEAR_COPY_DIST // 2:
            return row
    raise AssertionError("no drift within the bars")


def _trajectory(actors: Actors, job: Job) -> tuple[np.ndarray, np.ndarray]:
    """Trainer 0's honest update of round 0 (its committed row) and its row two rounds later, drifted a little."""
    seed, k = actors.owner.sketch_seed(job.pid), actors.owner.sketch_width(job.pid)
    base = np.random.default_rng(41).normal(size=DIM)
    return commit_update(base, seed, k)[0], _drift(seed, 42, k, base)


def _replayed(actors: Actors, rounds: int = 2) -> tuple[Job, MarketClient, np.ndarray]:
    """Round 0 finalized; in round 1 trainer 3 replays trainer 0's round-0 row (revealed, not yet challenged)."""
    job = _start(actors, rounds=rounds)
    _play(actors, job, 0, _round_rows(actors, job, 0))
    actors.aggregator.finalize_round(job.pid, 0, _settle(actors.owner, job, 0, set()))
    replayer = job.trainers[3]
    original = job.rows[(0, job.trainers[0].address)]
    _play(actors, job, 1, {**_round_rows(actors, job, 1), replayer.address: original})
    return job, replayer, original


def _award(actors: Actors, receipt: Any) -> int:
    (event,) = actors.events(receipt, "StaleChallenged")
    return int(event["award"])


def _price(actors: Actors, receipt: Any) -> int:
    base = int(actors.chain.w3.eth.get_block(receipt["blockNumber"])["baseFeePerGas"])
    return min(int(receipt["effectiveGasPrice"]), base + 2 * GWEI)


# ---------------------------------------------------------------- 1. griefing honest trainers


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="laundering: a colluding trainer's copy of an honest trainer's round-0 row, revealed in round 1 (stale "
    "itself, but nobody has to challenge it), is evidence against that trainer's round-2 row with the other-author "
    "bar 2^-6 instead of the own bar 2^-10. Fix (not done: a rebuttal window or the trainer's own rows on chain): "
    "an earlier row that nearly copies the challenged trainer's own earlier row cannot be evidence against it with "
    "the looser bar (the trainer rebuts by showing it). Measured rare: 3 of 1,140 pairs over 40 Dirichlet rounds",
)
def test_a_colluders_copy_of_an_honest_row_cannot_show_that_trainers_later_row_stale(actors: Actors) -> None:
    """Honest X's round-2 row is within 2^-6 of its own round-0 row but over 2^-10 (an honest drift): X's own row
    cannot show it stale. Colluder Y copied X's round-0 row in round 1 (nobody challenged it); Y's copy must not
    show X stale either."""
    job = _start(actors, rounds=3)
    x, y = job.trainers[0], job.trainers[3]
    x0, x2 = _trajectory(actors, job)
    _play(actors, job, 0, {**_round_rows(actors, job, 0), x.address: x0})
    actors.aggregator.finalize_round(job.pid, 0, _settle(actors.owner, job, 0, set()))
    _play(actors, job, 1, {**_round_rows(actors, job, 1), y.address: x0})  # Y launders X's row
    actors.aggregator.finalize_round(job.pid, 1, _settle(actors.owner, job, 1, set()))
    _play(actors, job, 2, {**_round_rows(actors, job, 2), x.address: x2})
    with reverts("NotANearCopy"):
        actors.stranger.challenge_stale(job.pid, 2, _evidence(actors, job, x, x2, 0, 0, x0))
    laundered = _evidence(actors, job, x, x2, 1, job.index(y), x0)
    assert not _lands(actors.stranger, job.pid, 2, laundered), "X's honest row shown stale through Y's copy"


def test_the_owners_reference_copy_of_an_honest_row_cannot_show_that_trainers_later_row_stale(actors: Actors) -> None:
    """The owner publishes honest X's round-0 row as its round-1 reference (free for it; the slash would be its own):
    X's round-2 row, an honest drift within 2^-6 of it, is not shown stale (the reference counts only within 2^-10);
    a trainer that replays the reference itself is."""
    job = _start(actors, rounds=3)
    x, replayer = job.trainers[0], job.trainers[4]
    x0, x2 = _trajectory(actors, job)
    _play(actors, job, 0, {**_round_rows(actors, job, 0), x.address: x0})
    actors.aggregator.finalize_round(job.pid, 0, _settle(actors.owner, job, 0, set()))
    sealed = commit_reference(actors.owner, job.pid, 1, x0)
    _play(actors, job, 1, _round_rows(actors, job, 1))
    reveal_reference(actors.owner, job.pid, 1, sealed, PROVER)
    actors.aggregator.finalize_round(job.pid, 1, _settle(actors.owner, job, 1, set()))
    _play(actors, job, 2, {**_round_rows(actors, job, 2), x.address: x2, replayer.address: x0})
    with reverts("NotANearCopy"):
        actors.stranger.challenge_stale(job.pid, 2, _evidence(actors, job, x, x2, 1, REFERENCE_AUTHOR, x0))
    with reverts("NotAnEarlierRound"):  # nor the reference of the open round
        actors.stranger.challenge_stale(job.pid, 2, _evidence(actors, job, x, x2, 2, REFERENCE_AUTHOR, x0))
    assert _lands(actors.stranger, job.pid, 2, _evidence(actors, job, replayer, x0, 1, REFERENCE_AUTHOR, x0))


def test_forged_commitments_another_projects_rows_and_absent_authors_are_refused(actors: Actors) -> None:
    """Evidence from another project's round (its commitments, its reference), a commitments list padded, reordered
    or cut, and an author slot with no reveal: each refused; the honest trainer is never shown stale."""
    job, replayer, original = _replayed(actors)
    other = _start(actors, rounds=2)  # the same trainers, another project
    _play(actors, other, 0, {**_round_rows(actors, other, 0), other.trainers[1].address: original})
    honest = job.trainers[1]
    mine = job.rows[(1, honest.address)]
    foreign = replace(
        _evidence(actors, job, honest, mine, 0, 1, original),
        commitments=tuple(actors.owner.round_commitments(other.pid, 0)),
    )
    with reverts("RoundCommitmentsMismatch"):  # project B's open round-0 commitments are not project A's record
        actors.stranger.challenge_stale(job.pid, 1, foreign)
    with reverts("NotRevealedEarlier"):  # no reference in A's round 0
        actors.stranger.challenge_stale(job.pid, 1, _evidence(actors, job, honest, mine, 0, REFERENCE_AUTHOR, original))
    good = _evidence(actors, job, replayer, original, 0, 0, original)
    for forged in (
        (*good.commitments, bytes(32)),
        good.commitments[::-1],
        good.commitments[:-1],
    ):
        with reverts("RoundCommitmentsMismatch"):
            actors.stranger.challenge_stale(job.pid, 1, replace(good, commitments=forged))
    with reverts("NotRevealedEarlier"):  # an index past the list
        actors.stranger.challenge_stale(job.pid, 1, replace(good, author=len(good.commitments)))
    assert _lands(actors.stranger, job.pid, 1, good)


# ---------------------------------------------------------------- 2. the window


def test_a_stale_trainer_cannot_hide_behind_an_announced_rejection_and_dispute_it_late(actors: Actors) -> None:
    """The aggregator, colluding with replayer Z, announces Z's rejection at once (so that a challenge would be
    refused) and Z means to dispute it after the challenge window, the aggregator finalizing in the same block.
    The rejected submission can be challenged: it then stands beyond dispute, counted once in the aggregator's
    record; Z is unpaid and slashed."""
    job, replayer, original = _replayed(actors)
    rejections = actors.owner.aggregator_record(actors.aggregator.address).rejected
    actors.aggregator.reject_submissions(job.pid, 1, [replayer.address])
    receipt = actors.stranger.challenge_stale(job.pid, 1, _evidence(actors, job, replayer, original, 0, 0, original))
    assert actors.owner.aggregator_record(actors.aggregator.address).rejected == rejections + 1
    with reverts("AlreadyShownStale"):
        _publish(replayer, job, 1)
    close_disputes(actors.owner, job.pid)
    earned = actors.owner.trainer_info(job.pid, replayer.address).earned  # round 0's
    actors.aggregator.finalize_round(job.pid, 1, _settle(actors.owner, job, 1, {replayer.address}))
    assert actors.owner.trainer_info(job.pid, replayer.address).earned == earned  # nothing for round 1
    cut = STAKE * actors.owner.get_project(job.pid).slash_bps // 10_000
    assert actors.owner.trainer_info(job.pid, replayer.address).stake_left == STAKE - _award(actors, receipt) - cut


def test_no_challenge_after_finalization_or_abandonment(actors: Actors) -> None:
    """Once the round is finalized (``WrongRound``) or the project abandoned (``WrongStatus``), no challenge lands."""
    job, replayer, original = _replayed(actors, rounds=3)
    good = _evidence(actors, job, replayer, original, 0, 0, original)
    snapshot = actors.chain.snapshot()
    actors.aggregator.finalize_round(job.pid, 1, _settle(actors.owner, job, 1, set()))
    with reverts("WrongRound"):
        actors.stranger.challenge_stale(job.pid, 1, good)
    actors.chain.revert(snapshot)
    actors.chain.increase_time(actors.owner.round_deadlines(job.pid).aggregation - actors.chain.timestamp() + 1)
    actors.stranger.abandon(job.pid)
    with reverts("WrongStatus"):
        actors.stranger.challenge_stale(job.pid, 1, good)


# ---------------------------------------------------------------- 3. money


def test_padded_calldata_earns_the_challenger_nothing_beyond_its_gas(actors: Actors) -> None:
    """A stale trainer's Sybil (or any challenger) appends 60,000 zero bytes to the challenge's calldata: it pays
    for them and is reimbursed no more than without them (only the arguments' encoding is counted); its award is at
    most its fee plus the encoding's documented slack (12 gas a zero byte of it), so the slash still takes its cut."""
    job, replayer, original = _replayed(actors)
    sybil = actors.trainers[7]
    evidence = _evidence(actors, job, replayer, original, 0, 0, original)
    call = sybil.market.functions.challengeStale(job.pid, 1, evidence.as_abi_tuple())
    data = bytes.fromhex(ChainClient.calldata(call)[2:])
    market = actors.deployment.address("TrainingMarket")
    snapshot = actors.chain.snapshot()
    plain = _send(sybil, market, data)
    actors.chain.revert(snapshot)
    padded = _send(sybil, market, data + bytes(60_000))
    assert plain["status"] == padded["status"] == 1
    award, fee = _award(actors, padded), int(padded["gasUsed"]) * int(padded["effectiveGasPrice"])
    slack = 12 * data.count(0) * _price(actors, padded)
    assert award <= fee + slack
    assert award - _award(actors, plain) <= 2_000 * _price(actors, padded)  # the padding earned nothing
    actors.aggregator.finalize_round(job.pid, 1, _settle(actors.owner, job, 1, {replayer.address}))
    cut = STAKE * actors.owner.get_project(job.pid).slash_bps // 10_000
    assert actors.owner.trainer_info(job.pid, replayer.address).stake_left == STAKE - award - cut


def test_a_sybil_front_running_the_challenge_recaptures_only_its_gas(actors: Actors) -> None:
    """Automine off, fee-ordered mempool: the stale trainer's Sybil copies a pending challenge with a higher tip and
    is mined first; the original reverts (``AlreadyShownStale``, nothing credited). Trainer and Sybil together end
    with no more than the stake less the slash: the Sybil's award is at most its fee."""
    job, replayer, original = _replayed(actors)
    sybil = actors.trainers[7]
    evidence = _evidence(actors, job, replayer, original, 0, 0, original).as_abi_tuple()
    with _no_automine(actors) as pool:
        honest_tx = pool.send(
            actors.stranger.chain.account, actors.stranger.market.functions.challengeStale(job.pid, 1, evidence),
            tip_gwei=1,
        )  # fmt: skip
        (pending,) = [p for p in pool.pending() if p.hash == honest_tx]
        copy_tx = pool.send_raw(sybil.chain.account, {"to": pending.to, "data": pending.input, "value": 0}, tip_gwei=50)
        mined = pool.mine()
    by_hash = {r["transactionHash"].to_0x_hex(): r for r in mined}
    assert [r["transactionHash"].to_0x_hex() for r in mined] == [copy_tx, honest_tx]
    assert by_hash[copy_tx]["status"] == 1 and by_hash[honest_tx]["status"] == 0
    award = _award(actors, by_hash[copy_tx])
    assert award <= int(by_hash[copy_tx]["gasUsed"]) * int(by_hash[copy_tx]["effectiveGasPrice"]) + 12 * len(
        pending.input
    ) * _price(actors, by_hash[copy_tx])
    assert actors.owner.bond_credit(actors.stranger.address) == 0
    actors.aggregator.finalize_round(job.pid, 1, _settle(actors.owner, job, 1, {replayer.address}))
    cut = STAKE * actors.owner.get_project(job.pid).slash_bps // 10_000
    assert actors.owner.trainer_info(job.pid, replayer.address).stake_left == STAKE - award - cut


def test_the_market_owes_what_it_holds_through_a_challenge_and_an_abandonment(actors: Actors) -> None:
    """The market's balance is escrow + credits after the challenge (the award moved from the stake to a credit),
    after the abandonment (every account's due + credits: the stale trainer unpaid and slashed, the others sharing
    the round) and after everyone withdrew (nothing left of the project)."""
    market = actors.deployment.address("TrainingMarket")
    before = actors.chain.balance(market)
    job, replayer, original = _replayed(actors)
    project = actors.owner.get_project(job.pid)
    escrow = project.reward_budget + project.aggregator_fee + len(job.trainers) * project.stake
    receipt = actors.stranger.challenge_stale(job.pid, 1, _evidence(actors, job, replayer, original, 0, 0, original))
    award = _award(actors, receipt)
    assert 0 < award == actors.owner.bond_credit(actors.stranger.address)
    assert actors.chain.balance(market) - before == escrow
    actors.chain.increase_time(actors.owner.round_deadlines(job.pid).aggregation - actors.chain.timestamp() + 1)
    earned = actors.owner.trainer_info(job.pid, replayer.address).earned  # round 0's
    actors.stranger.abandon(job.pid)
    everyone = [actors.owner, actors.aggregator, *job.trainers]
    due = {c.address: c.withdrawable(job.pid, c.address) for c in everyone}
    assert actors.chain.balance(market) - before == sum(due.values()) + award
    assert due[replayer.address] == earned + STAKE - award - STAKE * project.slash_bps // 10_000  # unpaid, slashed
    for c in everyone:
        if due[c.address]:
            c.withdraw(job.pid)
    assert actors.chain.balance(market) - before == award
    assert actors.stranger.withdraw_bonds() == award
    assert actors.chain.balance(market) == before


# ---------------------------------------------------------------- 4. the aggregator node


class _FrontRun(MarketClient):
    """The aggregator's market client whose challenges another challenger's identical one is mined just before."""

    def __init__(self, market: MarketClient, rival: MarketClient) -> None:
        super().__init__(market.chain, market.market, market.registry, market.lens)
        self.rival = rival

    def challenge_stale(self, project_id: int, round_: int, evidence: StaleEvidence) -> Any:
        self.rival.challenge_stale(project_id, round_, evidence)
        return super().challenge_stale(project_id, round_, evidence)


def test_the_aggregator_node_finalizes_when_another_challenger_is_mined_first(
    actors: Actors, ipfs_node: LocalIpfsNode
) -> None:
    """Real nodes: in round 1 a trainer replays another's round-0 update. The aggregator node finds it, but a
    stranger's challenge is mined just before its own (refused ``AlreadyShownStale``): the node still rejects the
    row and finalizes the round (it does not revert ``StaleNotRejected``)."""
    store = ModelStore(ipfs_node.client())
    initial = store.put_tensors(build_model("mlp", seed=8).state_dict(), {"kind": "model"})
    pid = actors.training_project(4, rounds=2, initial_model_cid=initial)
    updates = agreeing_updates(4, seed=29)
    nodes = [TrainerNode(t, store, FixedUpdate(u)) for t, u in zip(actors.trainers[:4], updates, strict=True)]
    market = _FrontRun(actors.aggregator, actors.stranger)
    aggregator = AggregatorNode(market, ModelStore(IpfsClient(ipfs_node.api_url, timeout=2.0, retries=0)))

    submit_all(nodes, pid)
    assert isinstance(aggregator.step(pid), RoundReport)
    for node, update in zip(nodes[:3], agreeing_updates(4, seed=31)[:3], strict=True):
        node.source = FixedUpdate(update)
    nodes[3].source = FixedUpdate(updates[0])  # a replay of trainer 0's round-0 update
    submit_all(nodes, pid)
    report = aggregator.step(pid)
    assert isinstance(report, RoundReport) and list(report.rejected) == [nodes[3].address]
    (challenge,) = actors.owner.stale_challenges(pid, 1)
    assert challenge.challenger == actors.stranger.address


def submit_all(nodes: list[TrainerNode], pid: int) -> None:
    """A round as the trainers play it: every node commits, then every node reveals."""
    for n in nodes:
        assert isinstance(n.step(pid), Committed)
    for n in nodes:
        n.step(pid)


def _keys(actors: Actors, client: MarketClient) -> UpdateKeysClient:
    """The deployment's ``UpdateKeys`` acting as ``client``'s account."""
    keys = update_keys_client(client.chain, actors.deployment, actors.artifacts)
    assert keys is not None
    return keys


def _aggregator_process(actors: Actors, ipfs_node: LocalIpfsNode, keys: UpdateKeysClient | None) -> AggregatorNode:
    """A fresh aggregator node of ``actors``' aggregator (``keys``: its ``UpdateKeys``), as ``marketplace aggregator
    run`` starts one: nothing in memory."""
    store = ModelStore(IpfsClient(ipfs_node.api_url, timeout=2.0, retries=0))
    return AggregatorNode(actors.aggregator, store, update_keys=keys)


def _replayed_after_round_0(
    actors: Actors, ipfs_node: LocalIpfsNode, *, encrypted: bool = False
) -> tuple[int, list[TrainerNode]]:
    """Real nodes, four trainers: one aggregator node finalizes round 0 (everyone paid) and its process ends; in round
    1 trainer 3 replays trainer 0's round-0 update (in an encrypted project sealed anew for its own submission, so
    it opens) and everyone reveals. Returns the project and the trainer nodes."""
    store = ModelStore(ipfs_node.client())
    initial = store.put_tensors(build_model("mlp", seed=8).state_dict(), {"kind": "model"})
    pid = actors.training_project(4, rounds=2, initial_model_cid=initial)
    keys = {c.address: _keys(actors, c) for c in (actors.aggregator, *actors.trainers[:4])} if encrypted else {}
    if encrypted:
        publish_update_key(actors.aggregator, keys[actors.aggregator.address], pid)
    updates = agreeing_updates(4, seed=29)
    nodes = [
        TrainerNode(t, store, FixedUpdate(u), update_keys=keys.get(t.address))
        for t, u in zip(actors.trainers[:4], updates, strict=True)
    ]

    submit_all(nodes, pid)
    first = _aggregator_process(actors, ipfs_node, keys.get(actors.aggregator.address)).step(pid)
    assert isinstance(first, RoundReport) and first.rejected == {} and all(s > 0 for s in first.chain_scores)
    if encrypted:  # what round 0 revealed is sealed: only the aggregator's key opens it
        assert all(is_envelope(store.get_bytes(s.cid)) for s in actors.owner.submissions(pid, 0))
    for node, update in zip(nodes[:3], agreeing_updates(4, seed=31)[:3], strict=True):
        node.source = FixedUpdate(update)
    nodes[3].source = FixedUpdate(updates[0])  # a replay of trainer 0's round-0 update
    submit_all(nodes, pid)
    return pid, nodes


@pytest.mark.parametrize("encrypted", [False, True], ids=["public", "encrypted"])
def test_a_restarted_aggregator_node_challenges_a_replay_of_a_row_revealed_before_the_restart(
    actors: Actors, ipfs_node: LocalIpfsNode, encrypted: bool
) -> None:
    """Round 0 finalized by one aggregator node, trainer 3 replaying trainer 0's round-0 update in round 1
    (:func:`_replayed_after_round_0`); a new node (the same account, nothing in memory: a restart) serves round 1.
    It rebuilds the project's earlier rows from the chain and IPFS (opening encrypted updates with its key) and shows
    the replay stale itself: rejected, scored 0, unpaid; the others paid."""
    pid, nodes = _replayed_after_round_0(actors, ipfs_node, encrypted=encrypted)
    replayer = nodes[3]
    earned = {n.address: actors.owner.trainer_info(pid, n.address).earned for n in nodes}
    keys = _keys(actors, actors.aggregator) if encrypted else None
    report = _aggregator_process(actors, ipfs_node, keys).step(pid)
    assert isinstance(report, RoundReport) and report.tx_hash
    assert list(report.rejected) == [replayer.address] and report.rejected[replayer.address].startswith("stale:")
    (challenge,) = actors.owner.stale_challenges(pid, 1)
    assert (challenge.trainer, challenge.challenger) == (replayer.address, actors.aggregator.address)
    assert (challenge.earlier_round, challenge.author) == (0, 0)
    assert report.chain_scores[3] == 0 and all(s > 0 for s in report.chain_scores[:3])
    paid = {n.address: actors.owner.trainer_info(pid, n.address).earned - earned[n.address] for n in nodes}
    assert paid[replayer.address] == 0 and all(paid[n.address] > 0 for n in nodes[:3])


def test_the_challenge_stale_command_finds_a_replay_in_the_rebuilt_history(
    actors: Actors, ipfs_node: LocalIpfsNode
) -> None:
    """``marketplace project challenge-stale`` (its body, as the stranger): it rebuilds round 0's rows from the chain
    and IPFS, finds trainer 3's round-1 row an exact copy of trainer 0's and shows it stale, credited its gas; the
    aggregator node then finalizes the round without it. An honest trainer's row is refused with the closest
    distance, nothing sent."""
    pid, nodes = _replayed_after_round_0(actors, ipfs_node)
    replayer = nodes[3].address
    with pytest.raises(typer.Exit):
        challenge_open_round(actors.stranger, pid, nodes[1].address, ipfs_node.api_url)
    assert actors.owner.stale_challenges(pid, 1) == []
    message = challenge_open_round(actors.stranger, pid, replayer, ipfs_node.api_url)
    assert f"{replayer}'s submission of round 1 shown stale" in message and "trainer #0's row of round 0" in message
    (challenge,) = actors.owner.stale_challenges(pid, 1)
    assert (challenge.trainer, challenge.challenger, challenge.earlier_round) == (replayer, actors.stranger.address, 0)
    assert actors.owner.bond_credit(actors.stranger.address) == challenge.award > 0
    report = _aggregator_process(actors, ipfs_node, None).step(pid)
    assert isinstance(report, RoundReport) and list(report.rejected) == [replayer]
