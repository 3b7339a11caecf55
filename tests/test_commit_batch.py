"""Batched signed commits (issue 16, step 4 of docs/design/gas-per-trainer.md), on a real anvil: ``commitBatch`` lets
anyone (the aggregator) commit several trainers' EIP-712-signed commits in one transaction. A signature names the
chain, market, project, round, seal and note, and must recover to its trainer, so a signed commit commits exactly
what its trainer signed, for nobody else, nowhere else; entries that commit nothing are skipped, not a revert; a
trainer left out of a batch commits itself and is paid.

Front-running is played on an anvil with automine off and a fee-ordered mempool (tests/mempool.py): a trainer's
own commit, or a copy of the pending batch, is mined first, and the batch still lands or refuses cleanly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from marketplace.adapters.chain.deploy import TEST_VERIFIER, deploy_marketplace, market_client
from marketplace.adapters.chain.market import Finalization, MarketClient
from marketplace.protocol.signed_commit import SignedCommit, sign_commit
from tests.market_fixtures import (
    Actors,
    cid_for,
    commit,
    commitment_for,
    own_seal,
    reveal_update,
    reverts,
    test_verifier_proof,
)
from tests.mempool import Race, race_project

N = 4


def signed(
    trainer: MarketClient, pid: int, round_: int, note: bytes = b"", signer: MarketClient | None = None
) -> SignedCommit:
    """``trainer``'s commit of its distinct test submission in ``round_`` (sealed as :func:`commit` seals it), signed
    by ``signer`` (default: the trainer itself) for ``trainer``'s market."""
    seal = own_seal(
        trainer, pid, round_, cid_for(pid, round_, trainer.address), commitment_for(pid, round_, trainer.address)
    )
    by = signer or trainer
    signature = sign_commit(by.chain.account, trainer.round_address(pid, round_), seal, note)
    return replace(signature, trainer=trainer.address)


def reveal_all(trainers: list[MarketClient], pid: int, round_: int) -> None:
    for t in trainers:
        reveal_update(t, pid, round_, cid_for(pid, round_, t.address), commitment_for(pid, round_, t.address))


def finalize(actors: Actors, pid: int, round_: int = 0) -> list[int]:
    """Finalizes ``round_`` with equal scores for every revealed trainer; returns the rewards credited."""
    members = actors.owner.trainers(pid)
    revealed = {s.trainer for s in actors.owner.submissions(pid, round_)}
    scores = [100 if t in revealed else 0 for t in members]
    receipt = actors.aggregator.finalize_round(pid, round_, actors.result(pid, round_, scores))
    (event,) = actors.events(receipt, "RoundFinalized")
    return list(event["rewards"])


def test_a_batch_commits_every_trainer_in_batch_order_and_everyone_is_paid(actors: Actors) -> None:
    pid = actors.training_project(N)
    trainers = actors.trainers[:N]
    order = [trainers[2], trainers[0], trainers[3], trainers[1]]
    batch = [signed(t, pid, 0, note=bytes([i]) * (40 + i)) for i, t in enumerate(order)]
    receipt = actors.aggregator.commit_batch(pid, 0, batch)
    assert actors.aggregator.batch_committed(receipt) == [t.address for t in order]
    events = actors.events(receipt, "UpdateCommitted")
    assert [(e["trainer"], bytes(e["seal"]), e["arrival"], bytes(e["note"])) for e in events] == [
        (c.trainer, c.seal, i + 1, c.note) for i, c in enumerate(batch)
    ]
    assert [actors.owner.committed_seal(pid, 0, t.address) for t in order] == [c.seal for c in batch]
    assert actors.owner.round_deadlines(pid).reveal_opens == actors.chain.timestamp()  # everyone committed
    assert actors.owner.arrival_order(pid, 0) == [actors.owner.trainers(pid).index(t.address) for t in order]
    reveal_all(trainers, pid, 0)
    assert all(r > 0 for r in finalize(actors, pid))


def test_entries_that_commit_nothing_are_skipped_and_a_batch_of_nothing_reverts(actors: Actors) -> None:
    pid = actors.training_project(N)
    trainers = actors.trainers[:N]
    commit(trainers[3], pid, 0, cid_for(pid, 0, trainers[3].address), commitment_for(pid, 0, trainers[3].address))
    other_key = signed(trainers[0], pid, 0, signer=trainers[1])  # trainer 0's seal, signed by trainer 1
    stranger = signed(actors.stranger, pid, 0)  # signed by itself, but not a member
    good = signed(trainers[1], pid, 0, note=b"n")
    changed_note = replace(signed(trainers[2], pid, 0, note=b"a"), note=b"b")  # the note is signed too
    long_note = sign_commit(trainers[2].chain.account, trainers[2].round_address(pid, 0), good.seal, b"")
    long_note = replace(long_note, note=b"x" * 193)
    zero_seal = replace(good, seal=b"\0" * 32)
    bad_v = replace(signed(trainers[2], pid, 0), v=29)
    already = signed(trainers[3], pid, 0)  # committed itself above
    batch = [other_key, stranger, changed_note, long_note, zero_seal, bad_v, already, good, good]
    receipt = actors.aggregator.commit_batch(pid, 0, batch)
    assert actors.aggregator.batch_committed(receipt) == [trainers[1].address]  # once: the duplicate is skipped
    assert actors.owner.committed_seal(pid, 0, trainers[0].address) == b"\0" * 32
    assert actors.owner.committed_seal(pid, 0, trainers[2].address) == b"\0" * 32
    with reverts("NothingCommitted"):
        actors.aggregator.commit_batch(pid, 0, batch)
    with reverts("NothingCommitted"):  # a commit signed by another key, alone
        actors.aggregator.commit_batch(pid, 0, [other_key])
    assert not actors.aggregator.commit_would_land(pid, 0, other_key)
    assert actors.aggregator.commit_would_land(pid, 0, signed(trainers[0], pid, 0))


def test_a_signed_commit_commits_nothing_in_another_round_project_or_market(actors: Actors) -> None:
    """A signature names its round, project and market (and chain): replayed anywhere else it commits nothing."""
    pid = actors.training_project(N)
    trainers = actors.trainers[:N]
    other = actors.training_project(N)
    mine = signed(trainers[0], pid, 0)
    with reverts("NothingCommitted"):  # project pid's signed commit, in project `other`
        actors.aggregator.commit_batch(other, 0, [mine])
    with reverts("WrongRound"):
        actors.aggregator.commit_batch(pid, 1, [mine])
    # Another deployment of the market on the same chain, with a project of the same id and trainers.
    second = deploy_marketplace(actors.admin.chain, actors.artifacts)
    base = market_client(actors.admin.chain, second, actors.artifacts)
    owner2 = base.as_account(actors.owner.chain.account)
    config = actors.config(verifier=second.address(TEST_VERIFIER), max_trainers=N, min_trainers=N)
    while (pid2 := owner2.create_project(config)) < pid:
        pass
    assert pid2 == pid
    for t in trainers:
        base.as_account(t.chain.account).join(pid2)
    with reverts("NothingCommitted"):  # a signature for the first market
        base.as_account(actors.aggregator.chain.account).commit_batch(pid2, 0, [mine])
    # Round 0 is committed, revealed and finalized; its signed commit is useless in round 1.
    actors.aggregator.commit_batch(pid, 0, [signed(t, pid, 0) for t in trainers])
    reveal_all(trainers, pid, 0)
    finalize(actors, pid)
    assert actors.owner.get_project(pid).current_round == 1
    with reverts("NothingCommitted"):
        actors.aggregator.commit_batch(pid, 1, [mine])
    with reverts("WrongRound"):
        actors.aggregator.commit_batch(pid, 0, [mine])
    receipt = actors.aggregator.commit_batch(pid, 1, [signed(trainers[0], pid, 1)])  # round 1's own signature
    assert actors.aggregator.batch_committed(receipt) == [trainers[0].address]


def test_a_batch_is_refused_once_the_commit_phase_is_over(actors: Actors) -> None:
    pid = actors.training_project(N)
    trainers = actors.trainers[:N]
    deadline = actors.owner.round_deadlines(pid).commit
    actors.chain.increase_time(deadline - actors.chain.timestamp() + 1)
    with reverts("SubmissionClosed"):
        actors.aggregator.commit_batch(pid, 0, [signed(trainers[0], pid, 0)])
    with reverts("UnknownProject"):
        actors.aggregator.commit_batch(pid + 1_000, 0, [])
    open_project = actors.create()
    with reverts("WrongStatus"):
        actors.aggregator.commit_batch(open_project, 0, [])


def test_a_trainer_left_out_of_the_batch_commits_itself_and_is_paid(actors: Actors) -> None:
    pid = actors.training_project(N)
    trainers = actors.trainers[:N]
    censored = trainers[1]
    receipt = actors.aggregator.commit_batch(pid, 0, [signed(t, pid, 0) for t in trainers if t is not censored])
    assert censored.address not in actors.aggregator.batch_committed(receipt)
    assert actors.owner.get_project(pid).commits == N - 1  # the commit phase stays open for it
    commit(censored, pid, 0, cid_for(pid, 0, censored.address), commitment_for(pid, 0, censored.address))
    reveal_all(trainers, pid, 0)
    rewards = finalize(actors, pid)
    assert rewards[1] == rewards[0] > 0
    assert actors.owner.trainer_info(pid, censored.address).earned == rewards[1]


# ------------------------------------------------------------------ front-running, fee-ordered mempool
@pytest.fixture
def race() -> Iterator[Race]:
    """A fee-ordered anvil with one training project of ``N`` trainers (round 0, nobody committed yet)."""
    with race_project(N) as r:
        yield r


def _revealed_and_paid(race: Race) -> list[int]:
    for t in race.trainers:
        reveal_update(t, race.pid, 0, cid_for(race.pid, 0, t.address), commitment_for(race.pid, 0, t.address))
    members = race.owner.trainers(race.pid)
    scores = [100] * len(members)
    proof = test_verifier_proof(race.owner, race.pid, 0, scores, [False] * len(members))
    receipt = race.aggregator.finalize_round(
        race.pid, 0, Finalization("bafkreimodel", "bafkreiproof", scores, [False] * len(members), proof)
    )
    (event,) = race.aggregator.chain.events(receipt, race.aggregator.market, "RoundFinalized")
    return list(event["args"]["rewards"])


def test_a_batch_front_run_by_a_trainers_own_commit_still_lands(race: Race) -> None:
    pid, first = race.pid, race.trainers[0]
    batch = [signed(t, pid, 0) for t in race.trainers]
    race.mempool.automine(False)
    try:
        sent = race.mempool.send(
            race.aggregator.chain.account,
            race.aggregator.market.functions.commitBatch(pid, 0, [c.as_abi_tuple() for c in batch]),
            tip_gwei=1,
        )
        own = race.mempool.send(
            first.chain.account, first.market.functions.commitUpdate(pid, 0, batch[0].seal, b""), tip_gwei=50
        )
        receipts = race.mempool.mine()
    finally:
        race.mempool.automine(True)
    assert [r["transactionHash"].to_0x_hex() for r in receipts] == [own, sent]  # the trainer's own commit first
    assert all(r["status"] == 1 for r in receipts)
    assert race.aggregator.batch_committed(receipts[1]) == [t.address for t in race.trainers[1:]]
    assert race.owner.arrival_order(pid, 0) == [0, 1, 2, 3]
    assert all(r > 0 for r in _revealed_and_paid(race))


def test_a_copied_batch_mined_first_commits_the_same_and_the_original_reverts_cleanly(race: Race) -> None:
    """A mempool reader that copies the pending batch and outbids it commits exactly the trainers' own seals in the
    batch's order (and pays for it); the original batch then commits nothing and reverts ``NothingCommitted``;
    nobody gains: everyone is paid as without the copy."""
    pid = race.pid
    order = list(reversed(race.trainers))
    batch = [signed(t, pid, 0) for t in order]
    race.mempool.automine(False)
    try:
        race.mempool.send(
            race.aggregator.chain.account,
            race.aggregator.market.functions.commitBatch(pid, 0, [c.as_abi_tuple() for c in batch]),
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
    assert race.aggregator.chain.revert_reason(original).name == "NothingCommitted"  # type: ignore[attr-defined]
    assert [race.owner.committed_seal(pid, 0, t.address) for t in order] == [c.seal for c in batch]
    members = race.owner.trainers(pid)
    assert race.owner.arrival_order(pid, 0) == [members.index(t.address) for t in order]  # the batch's order
    assert all(r > 0 for r in _revealed_and_paid(race))
