"""The owner's reference row on chain (docs/design/robust-reference.md section 6): ``commitReference`` by the
project's owner only, once per round, in the commit phase; ``revealReference`` in the reveal phase, opening the
seal, its row in the box and shown (the verifier's row proof) to hash to the commitment; the finalization waits for
a committed reference until the reveal deadline and hands the verifier the revealed commitment, so a proof that
drops or replaces it is refused; without a reveal the round is the rule without a reference. A project whose owner
expects its reference (``expectReference``, set while the project is open and fixed from then on) holds each round's
commit phase open after every trainer committed until the owner commits it (or the commit deadline), so the last
trainer cannot shut it out from the mempool, and an owner that never commits only makes the round wait for the
deadline. Anvil and the test verifier (its row and round "proofs" are hashes: they bind the same values a real proof
binds)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest

from marketplace.adapters.chain.market import Finalization, ProjectStatus
from marketplace.protocol.commitment import commit_update, commitment_bytes, published_row
from marketplace.protocol.seal import reference_seal
from marketplace.round.prove import NO_REFERENCE, HashProver, local_hash_proof, recorded_verifier_inputs
from marketplace.round.reference import SealedReference, commit_reference, reveal_reference, seal_reference
from marketplace.web.services.round_phase import describe, round_phase
from tests.market_fixtures import Actors, cid_for, commit, commitment_for, own_seal, reveal_update, reverts
from tests.mempool import race_project
from tests.test_commit_batch import N, Race, signed


def _row(actors: Actors, pid: int, seed: int = 0) -> np.ndarray:
    """A committed row of a random update, with the project's sketch seed and width."""
    update = np.random.default_rng(seed).normal(size=300)
    return commit_update(update, actors.owner.sketch_seed(pid), actors.owner.sketch_width(pid))[0]


def _to_reveal_deadline(actors: Actors, pid: int) -> None:
    actors.chain.increase_time(actors.owner.round_deadlines(pid).reveal - actors.chain.timestamp() + 1)


def test_only_the_owner_commits_a_reference_once_in_the_commit_phase(actors: Actors) -> None:
    pid = actors.training_project(3)
    sealed = seal_reference(actors.owner.chain.account, actors.owner.round_address(pid, 0), _row(actors, pid))
    for other in (actors.stranger, actors.aggregator, actors.trainers[0]):
        with reverts("Unauthorized"):  # the owner's seal copied from the mempool counts for nobody else
            other.commit_reference(pid, 0, sealed.seal)
    with reverts("WrongRound"):
        actors.owner.commit_reference(pid, 1, sealed.seal)
    with reverts("ZeroSeal"):
        actors.owner.commit_reference(pid, 0, b"\0" * 32)
    receipt = actors.owner.commit_reference(pid, 0, sealed.seal)
    (event,) = actors.events(receipt, "ReferenceCommitted")
    assert (event["projectId"], event["round"], bytes(event["seal"])) == (pid, 0, sealed.seal)
    assert actors.owner.reference_of(pid, 0).seal == sealed.seal and not actors.owner.reference_of(pid, 0).revealed
    with reverts("AlreadyCommitted"):
        actors.owner.commit_reference(pid, 0, b"\1" * 32)

    # The commit phase closes at the deadline, or as soon as every trainer committed.
    early = actors.training_project(3)
    actors.submit_all(early, 0, reveal=False)
    with reverts("SubmissionClosed"):
        commit_reference(actors.owner, early, 0, _row(actors, early))
    late = actors.training_project(3)
    actors.chain.increase_time(actors.owner.round_deadlines(late).commit - actors.chain.timestamp() + 1)
    with reverts("SubmissionClosed"):
        commit_reference(actors.owner, late, 0, _row(actors, late))
    opened = actors.create()  # not training yet
    with reverts("WrongStatus"):
        actors.owner.commit_reference(opened, 0, sealed.seal)


def test_the_reveal_opens_the_seal_with_a_row_that_hashes_to_the_commitment(actors: Actors) -> None:
    pid = actors.training_project(3)
    row, other = _row(actors, pid, 1), _row(actors, pid, 2)
    sealed = commit_reference(actors.owner, pid, 0, row)
    ints, proof = published_row(row), HashProver().prove_row(row)
    with reverts("RevealNotOpen"):
        actors.owner.reveal_reference(pid, 0, sealed.commitment, sealed.salt, ints, proof)
    actors.submit_all(pid, 0)
    with reverts("Unauthorized"):  # the owner's reveal copied from the mempool
        actors.stranger.reveal_reference(pid, 0, sealed.commitment, sealed.salt, ints, proof)
    with reverts("SealMismatch"):
        actors.owner.reveal_reference(pid, 0, sealed.commitment, b"\2" * 32, ints, proof)
    with reverts("SealMismatch"):  # another row's commitment: the seal does not open to it
        actors.owner.reveal_reference(pid, 0, commitment_bytes(other), sealed.salt, ints, proof)
    # The seal opens, but the row is not the one behind the commitment (its own proof, or one for the commitment).
    wrong = published_row(other)
    with reverts("InvalidRowProof"):
        actors.owner.reveal_reference(pid, 0, sealed.commitment, sealed.salt, wrong, HashProver().prove_row(other))
    with reverts("InvalidRowProof"):
        actors.owner.reveal_reference(pid, 0, sealed.commitment, sealed.salt, wrong, proof)
    with reverts("InvalidRowValue"):  # outside the box (presence 0: an empty slot is no reference)
        actors.owner.reveal_reference(pid, 0, sealed.commitment, sealed.salt, [*ints[:-1], 0], proof)
    with reverts("InvalidRowLength"):
        actors.owner.reveal_reference(pid, 0, sealed.commitment, sealed.salt, ints[:-1], proof)
    receipt = reveal_reference(actors.owner, pid, 0, sealed, HashProver())
    (event,) = actors.events(receipt, "ReferenceRevealed")
    assert bytes(event["commitment"]) == sealed.commitment and list(event["row"]) == ints
    (read,) = actors.owner.revealed_references(pid, 0)
    assert read.row == tuple(ints) and actors.owner.reference_of(pid, 0).commitment == sealed.commitment
    with reverts("AlreadySubmitted"):
        reveal_reference(actors.owner, pid, 0, sealed, HashProver())

    # Without a commit there is nothing to reveal; after the reveal deadline nothing is revealed.
    bare = actors.training_project(3)
    actors.submit_all(bare, 0)
    with reverts("NotCommitted"):
        reveal_reference(actors.owner, bare, 0, sealed, HashProver())
    late = actors.training_project(3)
    late_sealed = commit_reference(actors.owner, late, 0, _row(actors, late))
    actors.submit_all(late, 0)
    _to_reveal_deadline(actors, late)
    with reverts("RevealClosed"):
        reveal_reference(actors.owner, late, 0, late_sealed, HashProver())


def _result_with(actors: Actors, pid: int, scores: list[int], reference: bytes) -> Finalization:
    """A round-0 result whose test proof covers ``reference`` as the reference commitment."""
    inputs = recorded_verifier_inputs(actors.owner, pid, 0, scores, [False] * len(scores), [False] * len(scores))
    return replace(actors.result(pid, 0, scores), proof=local_hash_proof(*inputs[:4], reference))


def test_the_verifier_gets_the_revealed_reference_and_refuses_a_dropped_or_forged_one(actors: Actors) -> None:
    pid = actors.training_project(3)
    sealed: SealedReference = commit_reference(actors.owner, pid, 0, _row(actors, pid))
    actors.submit_all(pid, 0)
    scores = [3, 2, 1]
    with reverts("RoundStillOpen"):  # every trainer revealed, but the committed reference is waited for
        actors.aggregator.finalize_round(pid, 0, _result_with(actors, pid, scores, NO_REFERENCE))
    reveal_reference(actors.owner, pid, 0, sealed, HashProver())
    assert (
        recorded_verifier_inputs(actors.owner, pid, 0, scores, [False] * 3, [False] * 3).reference == sealed.commitment
    )
    with reverts("InvalidProof"):  # the aggregator drops the reference
        actors.aggregator.finalize_round(pid, 0, _result_with(actors, pid, scores, NO_REFERENCE))
    with reverts("InvalidProof"):  # or replaces it
        forged = commitment_bytes(_row(actors, pid, 9))
        actors.aggregator.finalize_round(pid, 0, _result_with(actors, pid, scores, forged))
    actors.aggregator.finalize_round(pid, 0, _result_with(actors, pid, scores, sealed.commitment))
    assert actors.owner.get_project(pid).current_round == 1
    assert actors.owner.reference_of(pid, 0).commitment == sealed.commitment  # kept for every round
    assert actors.owner.reference_of(pid, 1).seal == NO_REFERENCE


def test_a_reference_committed_and_not_revealed_leaves_the_round_to_todays_rule(actors: Actors) -> None:
    """The owner withholds its reveal: the round waits until the reveal deadline, then is finalized exactly as
    without a reference (the verifier gets 0), and the owner's seal commits it to nothing."""
    pid = actors.training_project(3)
    commit_reference(actors.owner, pid, 0, _row(actors, pid))
    actors.submit_all(pid, 0)
    with reverts("RoundStillOpen"):
        actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [1, 1, 1]))
    _to_reveal_deadline(actors, pid)
    inputs = recorded_verifier_inputs(actors.owner, pid, 0, [1, 1, 1], [False] * 3, [False] * 3)
    assert inputs.reference == NO_REFERENCE
    actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [1, 1, 1]))


def test_a_reference_seal_binds_the_owner_and_is_no_trainers_seal(actors: Actors) -> None:
    """The seal is the market's seal with an empty CID and the owner as trainer (the lens's ``sealOf``)."""
    pid = actors.training_project(3)
    sealed = commit_reference(actors.owner, pid, 0, _row(actors, pid))
    where = actors.owner.round_address(pid, 0)
    on_chain = actors.chain.call(
        actors.owner.lens.functions.sealOf(sealed.commitment, "", actors.owner.address, pid, 0, sealed.salt)
    )
    assert bytes(on_chain) == sealed.seal == reference_seal(sealed.commitment, actors.owner.address, where, sealed.salt)
    assert reference_seal(sealed.commitment, actors.stranger.address, where, sealed.salt) != sealed.seal


@pytest.fixture
def expecting_race() -> Iterator[Race]:
    """A fee-ordered anvil with one training project of ``N`` trainers whose owner expects its reference."""
    with race_project(N, expect_reference=True) as r:
        yield r


def test_the_last_trainer_cannot_shut_the_owners_pending_reference_out(expecting_race: Race) -> None:
    """Every trainer but the last committed; the owner's ``commitReference`` is pending (the rows are sealed: it
    cannot have seen any). The last trainer, one the reference would unpay, reads the mempool and commits with a
    higher fee. The project expects the owner's reference: its commit still lands, closes the phase, and the round
    is proven with it. (Without the setting the last commit closed the phase and the owner's commit reverted
    ``SubmissionClosed``: ``test_only_the_owner_commits_a_reference_once_in_the_commit_phase``.)"""
    race = expecting_race
    pid, last = race.pid, race.trainers[-1]
    for t in race.trainers[:-1]:
        commit(t, pid, 0, cid_for(pid, 0, t.address), commitment_for(pid, 0, t.address))
    update = np.random.default_rng(5).normal(size=300)
    row = commit_update(update, race.owner.sketch_seed(pid), race.owner.sketch_width(pid))[0]
    sealed = seal_reference(race.owner.chain.account, race.owner.round_address(pid, 0), row)
    race.mempool.automine(False)
    try:
        race.mempool.send(race.owner.chain.account, race.owner.market.functions.commitReference(pid, 0, sealed.seal),
                          tip_gwei=1)  # fmt: skip
        (pending,) = race.mempool.pending()
        assert pending.sender == race.owner.address  # what the last trainer sees
        seal = own_seal(last, pid, 0, cid_for(pid, 0, last.address), commitment_for(pid, 0, last.address))
        race.mempool.send(last.chain.account, last.market.functions.commitUpdate(pid, 0, seal, b""), tip_gwei=50)
        first, second = race.mempool.mine()
    finally:
        race.mempool.automine(True)
    assert first["from"] == last.address and first["status"] == 1  # every trainer committed: the phase stayed open
    assert second["from"] == race.owner.address
    assert second["status"] == 1, race.owner.chain.revert_reason(second)
    # The owner's commit closed the phase: the reveals open at once, and the round is proven with the reference.
    assert (
        race.owner.round_deadlines(pid).reveal_opens == race.admin.w3.eth.get_block(second["blockNumber"])["timestamp"]
    )
    for t in race.trainers:
        reveal_update(t, pid, 0, cid_for(pid, 0, t.address), commitment_for(pid, 0, t.address))
    reveal_reference(race.owner, pid, 0, sealed, HashProver())
    scores, flags = [1] * N, [False] * N
    inputs = recorded_verifier_inputs(race.owner, pid, 0, scores, flags, flags)
    assert inputs.reference == sealed.commitment
    proof = local_hash_proof(*inputs[:4], sealed.commitment)
    race.aggregator.finalize_round(pid, 0, Finalization("bafkreimodel", "bafkreiproof", scores, flags, proof))
    assert race.owner.get_project(pid).status is ProjectStatus.FINISHED


def test_only_the_owner_sets_the_expectation_and_only_while_the_project_is_open(actors: Actors) -> None:
    """``expectReference`` is the owner's, and fixed once training starts: nobody can switch it in the middle of a
    round (on: holding a phase that was about to close; off: closing it under the owner's pending reference)."""
    pid = actors.create(min_trainers=2, max_trainers=3)
    for other in (actors.stranger, actors.aggregator, actors.trainers[0]):
        with reverts("Unauthorized"):
            other.expect_reference(pid)
    receipt = actors.owner.expect_reference(pid)
    (event,) = actors.events(receipt, "ReferenceExpected")
    assert (event["projectId"], event["expected"]) == (pid, True)
    assert actors.trainers[0].get_project(pid).reference_expected  # what a trainer reads before it joins
    actors.owner.expect_reference(pid, False)  # open: the owner may change its mind
    assert not actors.owner.get_project(pid).reference_expected
    actors.owner.expect_reference(pid)
    for t in actors.trainers[:3]:
        t.join(pid)  # the project is full: training started, round 0 is open
    for expected in (False, True):
        with reverts("WrongStatus") as caught:
            actors.owner.expect_reference(pid, expected)
        assert (caught.value.args_dict["expected"], caught.value.args_dict["actual"]) == (
            ProjectStatus.OPEN,
            ProjectStatus.TRAINING,
        )
    first = actors.trainers[0]
    commit(first, pid, 0, cid_for(pid, 0, first.address), commitment_for(pid, 0, first.address))
    with reverts("WrongStatus"):  # mid-round
        actors.owner.expect_reference(pid, False)
    with reverts("Unauthorized"):
        actors.stranger.expect_reference(pid, False)
    assert actors.owner.get_project(pid).reference_expected
    cancelled = actors.create()
    actors.owner.cancel(cancelled)
    with reverts("WrongStatus"):
        actors.owner.expect_reference(cancelled)
    with reverts("UnknownProject"):
        actors.owner.expect_reference(cancelled + 1)


def test_an_expected_reference_closes_the_phase_with_the_last_of_the_trainers_and_the_owner(actors: Actors) -> None:
    """In a project that expects the reference the commit phase closes early once every trainer and the owner
    committed, whoever is last: the last trainer after the owner, the owner after the trainers, or after a batch of
    every trainer's signed commits (which closed it without the setting)."""
    owner_first = actors.training_project(3, expect_reference=True)
    commit_reference(actors.owner, owner_first, 0, _row(actors, owner_first))
    actors.submit_all(owner_first, 0, reveal=False)
    opens = actors.owner.round_deadlines(owner_first).reveal_opens
    assert opens == actors.chain.timestamp() < actors.owner.round_deadlines(owner_first).commit

    batched = actors.training_project(3, expect_reference=True)
    members = [t for t in actors.trainers if t.address in actors.owner.trainers(batched)]
    actors.stranger.commit_batch(batched, 0, [signed(t, batched, 0) for t in members])
    deadlines = actors.owner.round_deadlines(batched)
    assert deadlines.reveal_opens == deadlines.commit + 1  # every trainer committed, and the phase is open
    project = actors.trainers[0].get_project(batched)
    assert project.commits == project.trainer_count and actors.trainers[0].awaits_reference(project)
    phase = round_phase(actors.chain.timestamp(), deadlines, 3, 3, 0, actors.trainers[0].awaits_reference(project))
    assert phase.name == "commit" and "waits for the owner's reference" in describe(phase, str)
    with reverts("RevealNotOpen"):
        reveal_update(members[0], batched, 0, cid_for(batched, 0, members[0].address),
                      commitment_for(batched, 0, members[0].address))  # fmt: skip
    commit_reference(actors.owner, batched, 0, _row(actors, batched))
    assert actors.owner.round_deadlines(batched).reveal_opens == actors.chain.timestamp()
    assert not actors.trainers[0].awaits_reference(actors.trainers[0].get_project(batched))
    reveal_update(members[0], batched, 0, cid_for(batched, 0, members[0].address),
                  commitment_for(batched, 0, members[0].address))  # fmt: skip


def _paid_round(actors: Actors, pid: int, scores: list[int]) -> list[int]:
    """Every trainer commits in round 0, the reveals open (at the commit deadline if the phase did not close),
    every trainer reveals and the round is finalized with ``scores`` and no reference: the rewards credited."""
    actors.submit_all(pid, 0)
    inputs = recorded_verifier_inputs(actors.owner, pid, 0, scores, [False] * len(scores), [False] * len(scores))
    assert inputs.reference == NO_REFERENCE
    receipt = actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, scores))
    (event,) = actors.events(receipt, "RoundFinalized")
    return list(event["rewards"])


def test_an_owner_that_expects_a_reference_and_never_commits_only_makes_the_round_wait_for_the_deadline(
    actors: Actors,
) -> None:
    """The owner expects its reference and never commits it: every trainer committed, but the commit phase stays
    open until the commit deadline (no reveal before it); then the phase closes as it does when a trainer does not
    commit (the reveals open a second later, the reveal and aggregation deadlines follow from it), the owner can no
    longer commit, and the round runs exactly as without a reference: the same rewards as a project without the
    setting, nobody flagged or slashed. The next round waits for the owner again."""
    scores = [3, 2, 1]
    plain_rewards = _paid_round(actors, actors.training_project(3), scores)  # the same round without the setting
    expecting = actors.training_project(3, expect_reference=True)
    for t in actors.trainers[:3]:
        commit(t, expecting, 0, cid_for(expecting, 0, t.address), commitment_for(expecting, 0, t.address))
    project = actors.owner.get_project(expecting)
    deadlines = actors.owner.round_deadlines(expecting)
    assert deadlines.reveal_opens == deadlines.commit + 1
    assert deadlines.reveal == deadlines.commit + project.reveal_period
    assert deadlines.aggregation == deadlines.reveal + project.aggregation_period
    with reverts("RevealNotOpen"):
        reveal_update(actors.trainers[0], expecting, 0, cid_for(expecting, 0, actors.trainers[0].address),
                      commitment_for(expecting, 0, actors.trainers[0].address))  # fmt: skip
    with reverts("RoundStillOpen"):
        actors.aggregator.finalize_round(expecting, 0, actors.result(expecting, 0, scores))
    actors.chain.increase_time(deadlines.commit - actors.chain.timestamp() + 1)
    with reverts("SubmissionClosed"):  # the deadline closed the phase: the owner is too late
        commit_reference(actors.owner, expecting, 0, _row(actors, expecting))
    assert actors.owner.round_deadlines(expecting) == deadlines  # the deadlines did not move
    for t in actors.trainers[:3]:
        reveal_update(t, expecting, 0, cid_for(expecting, 0, t.address), commitment_for(expecting, 0, t.address))
    receipt = actors.aggregator.finalize_round(expecting, 0, actors.result(expecting, 0, scores))
    assert not actors.events(receipt, "StakeSlashed") and not actors.events(receipt, "RevealMissed")
    (event,) = actors.events(receipt, "RoundFinalized")
    assert list(event["rewards"]) == plain_rewards
    assert [actors.owner.trainer_info(expecting, t.address).stake_left for t in actors.trainers[:3]] == [
        actors.owner.get_project(expecting).stake
    ] * 3
    round1 = actors.owner.get_project(expecting)
    assert round1.current_round == 1 and round1.reference_expected and actors.owner.awaits_reference(round1)
