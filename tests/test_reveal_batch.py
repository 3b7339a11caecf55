"""Batched reveals (issue 16, step 3 of docs/design/gas-per-trainer.md), on a real anvil: ``revealBatch`` lets
anyone (the aggregator) reveal several trainers' openings in one transaction. A seal binds its trainer, chain,
market, project and round, so an opening reveals exactly what its trainer committed, for nobody else; openings
that reveal nothing are skipped, not a revert; a trainer left out of a batch reveals itself and is paid.

Front-running is played on an anvil with automine off and a fee-ordered mempool (tests/mempool.py): a trainer's
own reveal, or a copy of the pending batch, is mined first, and the batch still lands or refuses cleanly.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from marketplace.adapters.chain.market import Finalization, MarketClient, Opening
from marketplace.protocol.seal import derive_salt
from tests.market_fixtures import (
    Actors,
    cid_for,
    commit,
    commitment_for,
    reveal_update,
    reverts,
    test_verifier_proof,
)
from tests.mempool import Race, race_project

N = 4


def opening(trainer: MarketClient, pid: int, round_: int) -> Opening:
    """What ``trainer`` committed in ``round_`` (as :func:`tests.market_fixtures.commit` sealed it), opened."""
    commitment = commitment_for(pid, round_, trainer.address)
    salt = derive_salt(trainer.chain.account, trainer.round_address(pid, round_), commitment)
    return Opening(trainer.address, cid_for(pid, round_, trainer.address), commitment, salt)


def committed_round(actors: Actors, rounds: int = 1) -> tuple[int, list[MarketClient]]:
    """A training project of ``N`` trainers that all committed in round 0, with its reveal phase open."""
    pid = actors.training_project(N, rounds=rounds)
    trainers = actors.trainers[:N]
    actors.submit_all(pid, 0, trainers, reveal=False)
    actors.open_reveals(pid)
    return pid, trainers


def finalize(actors: Actors, pid: int, round_: int = 0) -> list[int]:
    """Finalizes ``round_`` with equal scores for every revealed trainer; returns the rewards credited."""
    members = actors.owner.trainers(pid)
    revealed = {s.trainer for s in actors.owner.submissions(pid, round_)}
    scores = [100 if t in revealed else 0 for t in members]
    receipt = actors.aggregator.finalize_round(pid, round_, actors.result(pid, round_, scores))
    (event,) = actors.events(receipt, "RoundFinalized")
    return list(event["rewards"])


def test_a_batch_with_bad_openings_still_reveals_the_others(actors: Actors) -> None:
    pid, trainers = committed_round(actors)
    good = [opening(t, pid, 0) for t in trainers]
    wrong_salt = Opening(good[0].trainer, good[0].cid, good[0].commitment, good[1].salt)
    wrong_cid = Opening(good[1].trainer, good[2].cid, good[1].commitment, good[1].salt)
    stranger = Opening(actors.stranger.address, good[2].cid, good[2].commitment, good[2].salt)
    batch = [wrong_salt, wrong_cid, stranger, good[2], good[3], good[3]]  # a duplicate too
    receipt = actors.aggregator.reveal_batch(pid, 0, batch)
    assert actors.aggregator.batch_revealed(receipt) == [trainers[2].address, trainers[3].address]
    events = actors.events(receipt, "UpdateSubmitted")
    assert [(e["cid"], bytes(e["commitment"])) for e in events] == [(o.cid, o.commitment) for o in good[2:]]
    assert [actors.owner.commitment(pid, 0, t.address) for t in trainers] == [
        b"\0" * 32,
        b"\0" * 32,
        good[2].commitment,
        good[3].commitment,
    ]
    assert actors.owner.get_project(pid).submissions == 2
    with reverts("NothingRevealed"):  # everything in it is revealed or bad now
        actors.aggregator.reveal_batch(pid, 0, batch)
    for t in trainers[:2]:  # the two whose openings were bad reveal themselves
        reveal_update(t, pid, 0, cid_for(pid, 0, t.address), commitment_for(pid, 0, t.address))
    assert all(r > 0 for r in finalize(actors, pid))


def test_a_trainer_left_out_of_the_batch_reveals_itself_and_is_paid(actors: Actors) -> None:
    pid, trainers = committed_round(actors)
    censored = trainers[1]
    receipt = actors.aggregator.reveal_batch(pid, 0, [opening(t, pid, 0) for t in trainers if t is not censored])
    assert censored.address not in actors.aggregator.batch_revealed(receipt)
    reveal_update(censored, pid, 0, cid_for(pid, 0, censored.address), commitment_for(pid, 0, censored.address))
    rewards = finalize(actors, pid)
    assert rewards[1] == rewards[0] > 0
    assert actors.owner.trainer_info(pid, censored.address).earned == rewards[1]


def test_an_opening_reveals_nothing_for_another_trainer_round_or_project(actors: Actors) -> None:
    """An opening handed to the aggregator (or read by anyone) opens its trainer's seal in its round and project
    only: under another trainer's address, in the next round, or in another project of the same trainers, it
    reveals nothing."""
    pid, trainers = committed_round(actors, rounds=2)
    other = actors.training_project(N, rounds=2)
    actors.submit_all(other, 0, trainers, reveal=False)
    actors.open_reveals(other)
    mine = opening(trainers[0], pid, 0)
    as_other_trainer = Opening(trainers[1].address, mine.cid, mine.commitment, mine.salt)
    with reverts("NothingRevealed"):
        actors.aggregator.reveal_batch(pid, 0, [as_other_trainer])
    with reverts("NothingRevealed"):  # the same trainer's opening of project pid, in project `other`
        actors.aggregator.reveal_batch(other, 0, [mine])
    actors.aggregator.reveal_batch(pid, 0, [opening(t, pid, 0) for t in trainers])
    finalize(actors, pid)
    actors.submit_all(pid, 1, trainers, reveal=False)  # round 1: everyone commits anew
    actors.open_reveals(pid)
    with reverts("NothingRevealed"):  # round 0's opening, replayed in round 1
        actors.aggregator.reveal_batch(pid, 1, [Opening(mine.trainer, mine.cid, mine.commitment, mine.salt)])
    with reverts("WrongRound"):
        actors.aggregator.reveal_batch(pid, 0, [mine])


def test_a_batch_is_refused_outside_the_reveal_phase(actors: Actors) -> None:
    pid = actors.training_project(N)
    trainers = actors.trainers[:N]
    actors.submit_all(pid, 0, trainers[:2], reveal=False)  # two of four committed: the commit phase is open
    with reverts("RevealNotOpen"):
        actors.aggregator.reveal_batch(pid, 0, [opening(trainers[0], pid, 0)])
    deadlines = actors.owner.round_deadlines(pid)
    actors.chain.increase_time(deadlines.reveal - actors.chain.timestamp() + 1)
    with reverts("RevealClosed"):
        actors.aggregator.reveal_batch(pid, 0, [opening(trainers[0], pid, 0)])
    with reverts("UnknownProject"):
        actors.aggregator.reveal_batch(pid + 1_000, 0, [])


# ------------------------------------------------------------------ front-running, fee-ordered mempool
@pytest.fixture
def race() -> Iterator[Race]:
    """A fee-ordered anvil with one project of ``N`` trainers that all committed (round 0, reveal phase open)."""
    with race_project(N) as r:
        for t in r.trainers:
            commit(t, r.pid, 0, cid_for(r.pid, 0, t.address), commitment_for(r.pid, 0, t.address))
        yield r


def _paid_all(race: Race) -> list[int]:
    members = race.owner.trainers(race.pid)
    scores = [100] * len(members)
    proof = test_verifier_proof(race.owner, race.pid, 0, scores, [False] * len(members))
    receipt = race.aggregator.finalize_round(
        race.pid, 0, Finalization("bafkreimodel", "bafkreiproof", scores, [False] * len(members), proof)
    )
    (event,) = race.aggregator.chain.events(receipt, race.aggregator.market, "RoundFinalized")
    return list(event["args"]["rewards"])


def test_a_batch_front_run_by_a_trainers_own_reveal_still_lands(race: Race) -> None:
    pid, first = race.pid, race.trainers[0]
    openings = [opening(t, pid, 0) for t in race.trainers]
    race.mempool.automine(False)
    try:
        batch = race.mempool.send(
            race.aggregator.chain.account,
            race.aggregator.market.functions.revealBatch(pid, 0, [o.as_abi_tuple() for o in openings]),
            tip_gwei=1,
        )
        own = race.mempool.send(
            first.chain.account,
            first.market.functions.revealUpdate(pid, 0, openings[0].cid, openings[0].commitment, openings[0].salt),
            tip_gwei=50,
        )
        receipts = race.mempool.mine()
    finally:
        race.mempool.automine(True)
    assert [r["transactionHash"].to_0x_hex() for r in receipts] == [own, batch]  # the trainer's own reveal first
    assert all(r["status"] == 1 for r in receipts)
    assert race.aggregator.batch_revealed(receipts[1]) == [t.address for t in race.trainers[1:]]
    assert all(r > 0 for r in _paid_all(race))


def test_a_copied_batch_mined_first_reveals_the_same_and_the_original_reverts_cleanly(race: Race) -> None:
    """A mempool reader that copies the pending batch and outbids it reveals exactly the trainers' own values (and
    pays for it); the original batch then reveals nothing and reverts ``NothingRevealed``; everyone is paid."""
    pid = race.pid
    openings = [opening(t, pid, 0) for t in race.trainers]
    race.mempool.automine(False)
    try:
        race.mempool.send(
            race.aggregator.chain.account,
            race.aggregator.market.functions.revealBatch(pid, 0, [o.as_abi_tuple() for o in openings]),
            tip_gwei=1,
        )
        (pending,) = race.mempool.pending()
        race.mempool.send_raw(
            race.copier.chain.account, {"to": pending.to, "data": pending.input, "value": 0}, tip_gwei=50
        )
        copied, original = race.mempool.mine()
    finally:
        race.mempool.automine(True)
    assert copied["from"] == race.copier.address and copied["status"] == 1
    assert original["status"] == 0
    assert race.aggregator.chain.revert_reason(original).name == "NothingRevealed"  # type: ignore[attr-defined]
    assert [race.owner.commitment(pid, 0, t.address) for t in race.trainers] == [o.commitment for o in openings]
    assert all(r > 0 for r in _paid_all(race))
