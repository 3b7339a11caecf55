"""Attack review of the anti-farming rules (ReliabilityRegistry, the protocol fee, ``requiredTrackRecord``), on a
real anvil, by an outsider who controls as many addresses as it likes: a farmer trainer, a Sybil owner and a
Sybil aggregator (so every address check passes), and honest trainers and owners beside it.

The claim under attack (docs/security.md, "Reliability that cannot be farmed cheaply"): a project with a
reliability bar protects ``V`` = its budget per guaranteed trainer (``minTrainers``) and requires ``V / 2 %`` wei
earned in independent projects and not reserved by another bar; rewards earned by self-dealing were escrowed
by the farmer with 2 % burned, so reaching a bar by self-dealing burns at least ``V``.

What holds, and is guarded here where no other test does:

- only a finalized round writes a record: a cancelled project, abandonment's equal split (also a 1-trainer
  project whose aggregator stalls) and withdrawals leave every record as it was, so a record cannot earn wei that
  a refund or an abandoned round paid;
- wei earned in a record never exceed 50 times the protocol fees burned for them, whatever the reward split's
  rounding, the stakes at risk or slashed (a slashed stake goes to the owner and is nobody's earned) and however
  often the same ETH is escrowed again;
- ``createProject`` splits every value exactly into budget, aggregator fee and a burned fee of at least 2 % of
  the budget (1 wei budgets, budgets and fees at 2^96 - 1), refuses what leaves no budget or does not fit, and
  locks nothing; a budget near 2^96 pays out without overflow and saturates a record at 2^96 - 1 wei; a bar no
  record can reach (above 2^96 - 1 wei) is cancelled and refunded.

Holes the review found, fixed since (their tests now pass):

- a record was never spent: one farmed record (``V`` burned) opened every bar of the same size at once — joining
  now reserves the required record in the registry until the trainer withdraws;
- reliability lost by being flagged in a barred project was farmed back with dust rounds for gas only, the
  earned part untouched — a round the trainer is flagged in now spends the reservation (debited from earned);
- the bar assumed a full project: a trainer alone in a project that starts with ``minTrainers`` < ``maxTrainers``
  was paid the whole budget, ``maxTrainers`` times what its record burned — the bar now divides the budget by
  ``minTrainers``.

Measured before the fixes (anvil, gas at 1 gwei, a victim of 10 ETH for 4 slots with a 90 % bar: ``V`` = 2.5 ETH,
125 ETH earned required): farming the record burned 2.5 ETH plus ~0.003 ETH of gas (1.001x ``V``); the same
record then joined 3 such bars (0.33x); after being flagged twice, 18 dust rounds (~0.005 ETH of gas) cleared
the bar again (0.002x ``V``); alone in a 4-slot project the farmer was paid all 10 ETH (4x what it burned).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from marketplace.adapters.chain.errors import ContractRevert
from marketplace.adapters.chain.market import MarketClient, ProjectConfig, ProjectStatus, TrackRecord
from tests.market_fixtures import ETH, Actors, cid_for, commit, commitment_for, reveal_update, reverts

BURN = "0x000000000000000000000000000000000000dEaD"
GWEI = 10**9
BAR = 9_000  # the victims' reliability bar: 90 %
SLOTS = 4
VICTIM_BUDGET = 10 * ETH
PROTECTED = VICTIM_BUDGET // SLOTS  # V: the budget per trainer slot a victim's bar protects
ROUNDS_FOR_BAR = 8  # (8 + 1) / (8 + 2) = 90 %
DUST = 1_000  # wei: the budget of a project that only adds rounds to a record
MAX_SCORE = 2**128 - 1  # TrainingMarket.MAX_SCORE
RECORD_CAP = 2**96 - 1  # a record's earned wei saturate here (uint96)


def _gas(receipt: Any) -> int:
    return int(receipt["gasUsed"])


@dataclass
class Farmer:
    """A farmer's three addresses and what its farming cost so far: protocol fees burned and gas used."""

    trainer: MarketClient
    owner: MarketClient  # a Sybil owner of the farming projects
    aggregator: MarketClient  # a Sybil aggregator of them (not the owner: their rounds count)
    burned: int = 0
    gas: int = 0

    def cost(self, gwei: int = 1) -> int:
        """Wei farming cost so far: fees burned plus gas at ``gwei`` per gas."""
        return self.burned + self.gas * gwei * GWEI

    def farm(self, actors: Actors, budget: int, rounds: int) -> int:
        """A self-dealt project of ``budget`` wei over ``rounds`` rounds with the farmer as its only trainer, every
        round finalized with the farmer paid; returns its id. Counts what it burned and the gas of every step."""
        cfg = actors.config(aggregator=self.aggregator.address, reward_budget=budget, aggregator_fee=0, stake=0,
                            rounds=rounds, min_trainers=1, max_trainers=1)  # fmt: skip
        pid, gas = _create(actors, self.owner, cfg)
        self.burned += cfg.protocol_fee
        self.gas += gas + _gas(self.trainer.join(pid))
        for round_ in range(rounds):
            self.gas += _play(actors, pid, round_, self.aggregator, [self.trainer])
        assert self.owner.get_project(pid).status is ProjectStatus.FINISHED
        return pid


def _create(actors: Actors, owner: MarketClient, cfg: ProjectConfig) -> tuple[int, int]:
    """``owner`` creates ``cfg`` sending ``cfg.payment``; returns (project id, gas used)."""
    receipt = owner.chain.transact(owner.market.functions.createProject(cfg.as_abi_tuple()), value=cfg.payment)
    (event,) = actors.events(receipt, "ProjectCreated")
    return int(event["projectId"]), _gas(receipt)


def _play(
    actors: Actors,
    pid: int,
    round_: int,
    aggregator: MarketClient,
    submitters: list[MarketClient],
    flagged: frozenset[str] = frozenset(),
) -> int:
    """``submitters`` commit and reveal in ``round_``; ``aggregator`` finalizes it, paying every unflagged
    submitter equally and flagging those in ``flagged``. Returns the gas of all of it."""
    gas = 0
    for t in submitters:
        gas += _gas(commit(t, pid, round_, cid_for(pid, round_, t.address), commitment_for(pid, round_, t.address)))
    actors.open_reveals(pid)
    for t in submitters:
        cid, commitment = cid_for(pid, round_, t.address), commitment_for(pid, round_, t.address)
        gas += _gas(reveal_update(t, pid, round_, cid, commitment))
    paid = {t.address for t in submitters} - flagged
    members = actors.owner.trainers(pid)
    scores, flags = [1 if m in paid else 0 for m in members], [m in flagged for m in members]
    return gas + _gas(aggregator.finalize_round(pid, round_, actors.result(pid, round_, scores, flags)))


def _withdraw_all(pid: int, accounts: list[MarketClient]) -> int:
    """Everything ``accounts`` withdraw from ``pid`` (0 for one owed nothing)."""
    total = 0
    for account in accounts:
        try:
            total += account.withdraw(pid)
        except ContractRevert as e:
            assert e.name == "NothingToWithdraw", e
    return total


def _farmer(actors: Actors) -> Farmer:
    return Farmer(trainer=actors.trainers[0], owner=actors.trainers[6], aggregator=actors.trainers[7])


def _victim(actors: Actors, **overrides: Any) -> int:
    """A project of the honest owner protecting ``PROTECTED`` per slot with a 90 % bar."""
    fields: dict[str, Any] = {"reward_budget": VICTIM_BUDGET, "max_trainers": SLOTS, "min_reliability_bps": BAR}
    return actors.create(**(fields | overrides))


def _rounds_to_reach(record: TrackRecord, bar: int) -> int:
    """Contributed rounds to add to ``record`` before its reliability is at least ``bar`` (the registry's Beta(1, 1)
    mean)."""
    k = 0
    while (record.contributed + k + 1) * 10_000 // (record.rounds + k + 2) < bar:
        k += 1
    return k


def _earn_honest_records(actors: Actors, trainers: list[MarketClient], each: int) -> None:
    """``trainers`` earn ``each`` wei and 90 % reliability in an independent project (the stranger's), as honest
    trainers with a real history would have."""
    cfg = actors.config(reward_budget=each * len(trainers), aggregator_fee=0, stake=0, rounds=ROUNDS_FOR_BAR,
                        min_trainers=len(trainers), max_trainers=len(trainers))  # fmt: skip
    pid, _ = _create(actors, actors.stranger, cfg)
    for t in trainers:
        t.join(pid)
    for round_ in range(ROUNDS_FOR_BAR):
        _play(actors, pid, round_, actors.aggregator, trainers)


# ---------------------------------------------------------------- what holds


def test_only_a_finalized_round_writes_a_record_not_cancel_abandon_or_withdraw(actors: Actors) -> None:
    """Join-then-cancel, abandonment's equal split (the farmer alone in a self-dealt project whose aggregator
    stalls: its round's whole share is credited in the market) and withdrawals move no record: a record cannot
    hold wei that a refund or an abandoned round paid, and half a farmed record opens no bar."""
    farmer = _farmer(actors)
    half_bar = _victim(actors, min_reliability_bps=5_000)  # a bar 2 rounds of reliability pass: earned decides
    required = actors.owner.required_track_record(half_bar)
    chain = actors.chain

    # Join, then the owner cancels: the stake comes back, the record does not move.
    before = actors.owner.track_record(farmer.trainer.address)
    open_pid = actors.create(min_reliability_bps=0)
    farmer.trainer.join(open_pid)
    actors.owner.cancel(open_pid)
    assert farmer.trainer.withdraw(open_pid) == actors.owner.get_project(open_pid).stake
    assert actors.owner.track_record(farmer.trainer.address) == before

    # A self-dealt project paying the whole bar in 2 rounds: round 0 finalized, round 1 revealed and stalled.
    cfg = actors.config(aggregator=farmer.aggregator.address, reward_budget=required, aggregator_fee=0, stake=0,
                        rounds=2, min_trainers=1, max_trainers=1)  # fmt: skip
    pid, _ = _create(actors, farmer.owner, cfg)
    farmer.trainer.join(pid)
    _play(actors, pid, 0, farmer.aggregator, [farmer.trainer])
    after_round_0 = actors.owner.track_record(farmer.trainer.address)
    assert after_round_0.earned == required // 2
    cid, commitment = cid_for(pid, 1, farmer.trainer.address), commitment_for(pid, 1, farmer.trainer.address)
    commit(farmer.trainer, pid, 1, cid, commitment)
    reveal_update(farmer.trainer, pid, 1, cid, commitment)
    deadline = actors.owner.round_deadlines(pid).aggregation
    chain.increase_time(deadline - chain.timestamp() + 1)
    actors.stranger.abandon(pid)
    assert actors.owner.get_project(pid).status is ProjectStatus.CANCELLED
    assert actors.owner.trainer_info(pid, farmer.trainer.address).earned == required  # both rounds' shares
    assert actors.owner.track_record(farmer.trainer.address) == after_round_0  # the split is not a record
    assert farmer.trainer.withdraw(pid) == required
    assert actors.owner.track_record(farmer.trainer.address) == after_round_0
    with reverts("TrackRecordTooSmall"):
        farmer.trainer.join(half_bar)


def test_earned_never_exceeds_fifty_times_the_fees_burned_whatever_the_split_stakes_slashes_or_recycling(
    actors: Actors,
) -> None:
    """Three farmer addresses in self-dealt projects: an odd budget split between two of them (rounding), the
    third flagged and its whole 20 ETH stake slashed to the Sybil owner, who can only fund its next project (3
    rounds, 2 trainers) with that recycled stake. Every record's earned wei are what the market credited, the
    slashed stake is nobody's earned, and all earned wei together are at most 50 times the fees burned (2 %);
    the market ends holding nothing of it."""
    t, u, s = actors.trainers[0], actors.trainers[1], actors.trainers[2]
    owner, aggregator = actors.trainers[6], actors.trainers[7]
    chain = actors.chain
    held, burned_before = chain.balance(owner.market.address), chain.balance(BURN)
    budgets = [30 * ETH + 1, 10 * ETH + 1]

    cfg = actors.config(aggregator=aggregator.address, reward_budget=budgets[0], aggregator_fee=ETH, stake=20 * ETH,
                        slash_bps=10_000, rounds=1, min_trainers=3, max_trainers=3)  # fmt: skip
    chain.set_balance(owner.address, cfg.payment + ETH // 10)  # gas; the next project needs the slashed stake
    p1, _ = _create(actors, owner, cfg)
    for trainer in (t, u, s):
        trainer.join(p1)
    _play(actors, p1, 0, aggregator, [t, u, s], flagged=frozenset({s.address}))
    assert actors.owner.get_project(p1).slashed == 20 * ETH
    # the flagged one's part goes to the others by score (equal here); what rounding leaves goes to the owner
    assert owner.withdraw(p1) == budgets[0] - 2 * (budgets[0] // 2) + 20 * ETH
    assert _withdraw_all(p1, [t, u, s]) == 2 * (budgets[0] // 2 + 20 * ETH)  # rewards and their stakes
    assert aggregator.withdraw(p1) == ETH

    cfg = actors.config(aggregator=aggregator.address, reward_budget=budgets[1], aggregator_fee=0, stake=0,
                        rounds=3, min_trainers=2, max_trainers=2)  # fmt: skip
    p2, _ = _create(actors, owner, cfg)
    for trainer in (t, u):
        trainer.join(p2)
    for round_ in range(3):
        _play(actors, p2, round_, aggregator, [t, u])
    assert _withdraw_all(p2, [owner, t, u]) == budgets[1]

    credited = {
        who.address: sum(actors.owner.trainer_info(p, who.address).earned for p in (p1, p2)) for who in (t, u, s)
    }
    records = {who.address: actors.owner.track_record(who.address) for who in (t, u, s)}
    assert {a: r.earned for a, r in records.items()} == credited
    assert records[s.address].earned == 0 and records[s.address].flagged == 1
    burned = chain.balance(BURN) - burned_before
    earned = sum(credited.values())
    assert earned <= sum(budgets)
    assert earned * 200 <= burned * 10_000
    assert chain.balance(owner.market.address) == held


@pytest.mark.parametrize(
    ("aggregator_fee", "value"),
    [
        (0, 2),  # 1 wei of budget, 1 wei burned (50 %)
        (5, 7),
        (0, 103),
        (0, 2**96 - 1),  # the largest budget that fits
        (2**96 - 1, 2**96 - 1 + 2),  # the largest aggregator fee, the smallest budget
        (2**96 - 1, 2 * (2**96 - 1)),  # both at their largest
    ],
)
def test_create_project_splits_every_value_exactly_and_burns_at_least_two_percent(
    actors: Actors, aggregator_fee: int, value: int
) -> None:
    chain = actors.chain
    owner = actors.owner
    chain.set_balance(owner.address, 2**100)
    held, burned_before = chain.balance(owner.market.address), chain.balance(BURN)
    cfg = actors.config(reward_budget=1, aggregator_fee=aggregator_fee, min_reliability_bps=1)
    receipt = owner.chain.transact(owner.market.functions.createProject(cfg.as_abi_tuple()), value=value)
    (event,) = actors.events(receipt, "ProjectCreated")
    pid = int(event["projectId"])
    budget = owner.get_project(pid).reward_budget
    assert budget == (value - aggregator_fee) * 10_000 // 10_200
    fee = chain.balance(BURN) - burned_before
    assert chain.balance(owner.market.address) - held == budget + aggregator_fee
    assert fee == value - aggregator_fee - budget
    assert fee * 10_000 >= budget * 200  # at least 2 % of the budget burned
    assert owner.required_track_record(pid) == budget * 10_000 // (cfg.min_trainers * 200)
    owner.cancel(pid)
    assert owner.withdraw(pid) == budget + aggregator_fee
    assert chain.balance(owner.market.address) == held


@pytest.mark.parametrize(
    ("aggregator_fee", "value"),
    [(0, 0), (0, 1), (5, 5), (5, 6), (0, 2**96), (2**96 - 1, 2**96 - 1 + 2**96), (2**96 - 1, 2**96 - 2)],
)
def test_create_project_refuses_a_value_that_leaves_no_budget_or_does_not_fit(
    actors: Actors, aggregator_fee: int, value: int
) -> None:
    owner = actors.owner
    actors.chain.set_balance(owner.address, 2**100)
    cfg = actors.config(reward_budget=1, aggregator_fee=aggregator_fee)
    with reverts("InvalidConfig"):
        owner.chain.transact(owner.market.functions.createProject(cfg.as_abi_tuple()), value=value)


def test_a_budget_near_two_to_the_96_pays_out_caps_the_record_and_an_unreachable_bar_locks_nothing(
    actors: Actors,
) -> None:
    """Two self-dealt projects of the largest budget (scores ``MAX_SCORE`` and 1: no overflow in the split) pay
    out in full; the farmer's record saturates at 2^96 - 1 wei instead of reverting the second finalization. A
    bar requiring more than that (budget per slot over 2 %) is out of every record's reach: nobody joins, anyone
    cancels after the join deadline and the owner gets its escrow back."""
    chain = actors.chain
    farmer = _farmer(actors)
    for who in (farmer.owner, farmer.trainer, actors.owner):
        chain.set_balance(who.address, 2**100)
    held = chain.balance(actors.owner.market.address)
    helper = actors.trainers[1]
    largest = (2**96 - 1) * 10_000 // 10_200
    for _ in range(2):
        cfg = actors.config(aggregator=farmer.aggregator.address, reward_budget=largest, aggregator_fee=0, stake=0,
                            rounds=1, min_trainers=2, max_trainers=2)  # fmt: skip
        pid, _ = _create(actors, farmer.owner, cfg)
        assert actors.owner.get_project(pid).reward_budget == largest
        farmer.trainer.join(pid)
        helper.join(pid)
        for t in (farmer.trainer, helper):
            commit(t, pid, 0, cid_for(pid, 0, t.address), commitment_for(pid, 0, t.address))
        for t in (farmer.trainer, helper):
            reveal_update(t, pid, 0, cid_for(pid, 0, t.address), commitment_for(pid, 0, t.address))
        farmer.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [MAX_SCORE, 1]))
        assert _withdraw_all(pid, [farmer.trainer, helper, farmer.owner]) == largest
    assert actors.owner.track_record(farmer.trainer.address).earned == RECORD_CAP  # saturated, not reverted
    assert chain.balance(actors.owner.market.address) == held

    out_of_reach = _victim(actors, reward_budget=largest, max_trainers=1, min_trainers=1, min_reliability_bps=1)
    assert actors.owner.required_track_record(out_of_reach) > RECORD_CAP
    with reverts("TrackRecordTooSmall"):
        farmer.trainer.join(out_of_reach)
    chain.increase_time(actors.owner.get_project(out_of_reach).join_deadline - chain.timestamp() + 1)
    actors.stranger.cancel(out_of_reach)
    assert actors.owner.withdraw(out_of_reach) == largest + ETH  # budget and aggregator fee; the burned fee is gone
    assert chain.balance(actors.owner.market.address) == held


# ---------------------------------------------------------------- holes the review found, fixed since


def test_one_farmed_record_does_not_open_more_bars_than_it_burned_for(actors: Actors) -> None:
    farmer = _farmer(actors)
    victims = [_victim(actors) for _ in range(3)]
    farmer.farm(actors, actors.owner.required_track_record(victims[0]), ROUNDS_FOR_BAR)
    assert farmer.cost() >= PROTECTED  # one bar: the claim holds
    joined = 0
    for victim in victims:
        try:
            farmer.trainer.join(victim)
            joined += 1
        except ContractRevert as e:
            assert e.name in {"TrackRecordTooSmall", "ReliabilityTooLow"}
    assert joined >= 1
    assert farmer.cost() >= joined * PROTECTED


def test_a_trainer_flagged_in_a_barred_project_cannot_clear_the_bar_again_for_gas(actors: Actors) -> None:
    farmer = _farmer(actors)
    honest = actors.trainers[1:SLOTS]
    first, second = _victim(actors), _victim(actors)
    required = actors.owner.required_track_record(first)
    _earn_honest_records(actors, honest, required)
    farmer.farm(actors, required, ROUNDS_FOR_BAR)
    for t in [farmer.trainer, *honest]:
        t.join(first)  # full: training starts
    for round_ in range(2):  # the farmer sends junk; the rule flags it
        _play(actors, first, round_, actors.aggregator, [farmer.trainer, *honest], frozenset({farmer.trainer.address}))
    record = actors.owner.track_record(farmer.trainer.address)
    assert actors.owner.reliability(farmer.trainer.address) < BAR
    assert record.earned < required  # the first flag spent the record the bar had reserved
    with reverts("ReliabilityTooLow"):
        farmer.trainer.join(second)  # the bar does its job

    spent = farmer.cost()
    farmer.farm(actors, DUST, _rounds_to_reach(record, BAR))
    try:
        farmer.trainer.join(second)
    except ContractRevert:
        return  # dust rounds do not clear the bar again: safe
    assert farmer.cost() - spent >= PROTECTED


def test_a_trainer_alone_in_a_barred_project_is_paid_no_more_than_its_record_burned(actors: Actors) -> None:
    farmer = _farmer(actors)
    victim = _victim(actors, min_trainers=1)
    farmer.farm(actors, actors.owner.required_track_record(victim), ROUNDS_FOR_BAR)
    farmer.trainer.join(victim)
    chain = actors.chain
    chain.increase_time(actors.owner.get_project(victim).join_deadline - chain.timestamp() + 1)  # nobody else came
    farmer.trainer.start_training(victim)
    for round_ in range(actors.owner.get_project(victim).rounds):
        _play(actors, victim, round_, actors.aggregator, [farmer.trainer])
    paid = actors.owner.trainer_info(victim, farmer.trainer.address).earned
    assert paid <= farmer.cost()
