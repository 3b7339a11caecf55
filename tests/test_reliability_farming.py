"""Reliability that cannot be farmed cheaply (issue 12 item 4), on a real anvil.

Before: with the owner as its own aggregator, a 1 wei budget and no stake, 8 sybils reached 90 % reliability
in 8 rounds for about 0.002 ETH each and then joined a project requiring 90 % that a fresh trainer could not.
Now: a round of a project whose owner is its aggregator counts for nothing; a record shows what it is made of
(rounds, projects, distinct owners, wei earned); every project burns a protocol fee of 2 % of its budget; and a
project with a reliability bar also requires the trainer to have earned, in independent projects, its budget
per trainer slot divided by the fee rate. Rewards earned in self-dealt projects were escrowed by the farmer
with 2 % of them burned, so farming a bar burns at least the budget per slot: the value the bar protects.
"""

from __future__ import annotations

from typing import Any

from marketplace.adapters.chain.market import PROTOCOL_FEE_BPS, Finalization, MarketClient, Outcome
from marketplace.round.prove import local_hash_proof, recorded_verifier_inputs
from tests.market_fixtures import ETH, Actors, cid_for, commit, commitment_for, reveal_update, reverts

BURN = "0x000000000000000000000000000000000000dEaD"


def _run_rounds(actors: Actors, pid: int, aggregator: MarketClient, trainers: list[MarketClient]) -> list[Any]:
    """Every round of ``pid``: the trainers commit and reveal, ``aggregator`` finalizes (equal scores); returns
    the finalizations' receipts."""
    project = aggregator.get_project(pid)
    receipts = []
    for round_ in range(project.current_round, project.rounds):
        for t in trainers:
            commit(t, pid, round_, cid_for(pid, round_, t.address), commitment_for(pid, round_, t.address))
        for t in trainers:
            reveal_update(t, pid, round_, cid_for(pid, round_, t.address), commitment_for(pid, round_, t.address))
        members = aggregator.trainers(pid)
        scores, flags = [1 if m in {t.address for t in trainers} else 0 for m in members], [False] * len(members)
        proof = local_hash_proof(
            *recorded_verifier_inputs(aggregator, pid, round_, scores, flags, [False] * len(members))
        )
        receipts.append(
            aggregator.finalize_round(pid, round_, Finalization("bafkreim", "bafkreip", scores, flags, proof))
        )
    return receipts


def test_the_protocol_fee_is_burned_and_the_budget_escrowed_exactly(actors: Actors) -> None:
    chain = actors.chain
    cfg = actors.config(reward_budget=10 * ETH + 7)  # a budget whose fee is not a whole number of wei
    burned, held = chain.balance(BURN), chain.balance(actors.owner.market.address)
    pid = actors.owner.create_project(cfg)
    assert cfg.protocol_fee == -(-(10 * ETH + 7) * PROTOCOL_FEE_BPS // 10_000)
    assert chain.balance(BURN) - burned == cfg.protocol_fee
    assert chain.balance(actors.owner.market.address) - held == cfg.escrow
    assert actors.owner.get_project(pid).reward_budget == cfg.reward_budget
    assert int(chain.call(actors.owner.market.functions.PROTOCOL_FEE_BPS())) == PROTOCOL_FEE_BPS


def test_rounds_of_a_project_whose_owner_is_its_aggregator_count_for_nothing(actors: Actors) -> None:
    pid = actors.owner.create_project(actors.config(aggregator=actors.owner.address, rounds=2, max_trainers=2))
    trainers = actors.trainers[:2]
    for t in trainers:
        t.join(pid)
    receipts = _run_rounds(actors, pid, actors.owner, trainers)
    for receipt in receipts:
        (skipped,) = actors.events(receipt, "RoundNotCounted", registry=True)
        assert skipped["owner"] == actors.owner.address and actors.owner.round_records(receipt) == []
    for t in trainers:
        assert actors.owner.reliability(t.address) == 5000  # unchanged: a newcomer's
        record = actors.owner.track_record(t.address)
        assert (record.rounds, record.projects, record.owners, record.earned) == (0, 0, 0, 0)
        assert actors.owner.trainer_info(pid, t.address).earned > 0  # paid all the same: only the record is empty


def test_a_record_shows_rounds_projects_distinct_owners_and_wei_earned(actors: Actors) -> None:
    t = actors.trainers[0]
    other_owner = actors.stranger
    earned, entries = 0, []
    for owner in (actors.owner, actors.owner, other_owner):
        pid = owner.create_project(actors.config(rounds=2, min_trainers=1, max_trainers=1))
        t.join(pid)
        receipts = _run_rounds(actors, pid, actors.aggregator, [t])
        entries += [entry for receipt in receipts for entry in actors.owner.round_records(receipt)]
        earned += actors.owner.trainer_info(pid, t.address).earned
    record = actors.owner.track_record(t.address)
    assert (record.contributed, record.flagged, record.missed) == (6, 0, 0)
    assert (record.projects, record.owners) == (3, 2)
    assert record.earned == earned == 3 * 10 * ETH
    # The registry's one event per round says the same, round by round: each project's first round counted it
    # (and the first project of each owner a new owner), and the reliability after each round.
    assert [(e.trainer, e.outcome, e.round, e.project_counted, e.new_owner) for e in entries] == [
        (t.address, Outcome.CONTRIBUTED, 0, True, True), (t.address, Outcome.CONTRIBUTED, 1, False, False),
        (t.address, Outcome.CONTRIBUTED, 0, True, False), (t.address, Outcome.CONTRIBUTED, 1, False, False),
        (t.address, Outcome.CONTRIBUTED, 0, True, True), (t.address, Outcome.CONTRIBUTED, 1, False, False),
    ]  # fmt: skip
    assert [e.reliability_bps for e in entries] == [(c + 1) * 10_000 // (c + 2) for c in range(1, 7)]


def test_farming_a_reliability_bar_burns_at_least_the_value_it_protects(actors: Actors) -> None:
    """The issue's farmer, now: a victim project (10 ETH for at least 4 trainers, 90 % required) protects
    2.5 ETH per guaranteed trainer and requires 125 ETH earned in independent projects. Reliability alone,
    farmed in a self-dealt project with separate owner and aggregator addresses and a tiny budget, does not get
    the farmer in; the earned value does, and farming it burned at least the 2.5 ETH the bar protects. Joining
    reserves that record: it opens no second bar until the farmer withdraws from the first."""
    victim = actors.create(reward_budget=10 * ETH, min_trainers=4, max_trainers=4, min_reliability_bps=9_000)
    second = actors.create(reward_budget=10 * ETH, min_trainers=4, max_trainers=4, min_reliability_bps=9_000)
    required = actors.owner.required_track_record(victim)
    assert required == 10 * ETH // 4 * 10_000 // PROTOCOL_FEE_BPS == 125 * ETH
    farmer, sybil_owner, sybil_aggregator = actors.trainers[0], actors.trainers[1], actors.trainers[2]
    chain = actors.chain
    burned_before = chain.balance(BURN)

    def farm(budget: int, rounds: int) -> None:
        cfg = actors.config(aggregator=sybil_aggregator.address, reward_budget=budget, rounds=rounds,
                            min_trainers=1, max_trainers=1, stake=0)  # fmt: skip
        pid = sybil_owner.create_project(cfg)
        farmer.join(pid)
        _run_rounds(actors, pid, sybil_aggregator, [farmer])

    farm(budget=1_000, rounds=8)  # 8 rounds contributed: 90 % for a few wei
    assert actors.owner.reliability(farmer.address) == 9_000
    with reverts("TrackRecordTooSmall"):
        farmer.join(victim)
    farm(budget=required, rounds=1)  # earn what the bar requires, paying oneself
    farmer.join(victim)
    burned = chain.balance(BURN) - burned_before
    protected = actors.owner.get_project(victim).reward_budget // 4
    assert burned >= protected
    assert actors.owner.track_record(farmer.address).earned >= required
    assert actors.owner.available_record(farmer.address) < required  # reserved by the victim's bar
    with reverts("TrackRecordTooSmall"):
        farmer.join(second)


def test_a_bar_counts_the_guaranteed_trainers_not_the_slots(actors: Actors) -> None:
    """A project that may start with one trainer can pay that one the whole budget: its bar protects the
    budget per minimum trainer."""
    pid = actors.create(reward_budget=10 * ETH, min_trainers=1, max_trainers=4, min_reliability_bps=1)
    assert actors.owner.required_track_record(pid) == 10 * ETH * 10_000 // PROTOCOL_FEE_BPS


def test_a_project_without_a_reliability_bar_requires_no_record(actors: Actors) -> None:
    pid = actors.create(min_reliability_bps=0)
    assert actors.owner.required_track_record(pid) == 0
    actors.trainers[0].join(pid)


def test_a_budget_too_small_to_survive_the_fee_is_refused(actors: Actors) -> None:
    cfg = actors.config(reward_budget=1, aggregator_fee=0)
    with reverts("InvalidConfig"):
        actors.owner.chain.transact(
            actors.owner.market.functions.createProject(cfg.as_abi_tuple()), value=1
        )  # 1 wei: no budget left after the fee
