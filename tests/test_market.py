"""TrainingMarket and ReliabilityRegistry on a real anvil: every function's happy path and revert;
and what the test verifier declares, from which the aggregator picks its prover."""

from __future__ import annotations

import httpx
import pytest
from eth_utils import to_checksum_address

from marketplace.adapters.chain.market import (
    MAX_MODEL_NAME_LENGTH,
    Finalization,
    Outcome,
    ProjectStatus,
    encode_rule_version,
    round_records,
)
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.protocol.round_tag import round_tag as compute_round_tag
from marketplace.roles.aggregator import AggregatorNode
from marketplace.round.prove import (
    HashProver,
    RuleVersionMismatch,
    local_hash_proof,
    prover_for,
    recorded_verifier_inputs,
    round_tag,
)
from marketplace.rule import RULE_VERSION
from tests.disputes import close_disputes
from tests.market_fixtures import (
    ETH,
    Actors,
    cid_for,
    commit,
    commitment_for,
    own_seal,
    reveal_update,
    reverts,
    test_verifier_proof,
)

# ---------------------------------------------------------------- admin and registry


def test_deployment_wires_market_registry_and_test_verifier(actors: Actors) -> None:
    market, registry = actors.admin.market, actors.admin.registry
    assert actors.admin.chain.call(registry.functions.isAuthorizedMarket(market.address))
    lens = actors.admin.lens
    assert actors.admin.chain.call(lens.functions.isVerifierApproved(actors.deployment.address("TestRoundVerifier")))
    assert actors.admin.chain.call(market.functions.registry()) == registry.address
    assert actors.admin.project_count() == 0


def test_only_admin_approves_verifiers(actors: Actors) -> None:
    with reverts("OwnableUnauthorizedAccount"):
        actors.stranger.chain.transact(
            actors.stranger.market.functions.setVerifierApproval(actors.stranger.address, True)
        )
    with reverts("ZeroAddress"):
        actors.admin.chain.transact(actors.admin.market.functions.setVerifierApproval("0x" + "00" * 20, True))
    receipt = actors.admin.chain.transact(
        actors.admin.market.functions.setVerifierApproval(actors.stranger.address, True)
    )
    (event,) = actors.events(receipt, "VerifierApprovalChanged")
    assert event["verifier"] == actors.stranger.address and event["approved"] is True


OWNER, AGG = "0x" + "11" * 20, "0x" + "22" * 20  # an owner and an aggregator that are not the same


def test_registry_authorization_and_batched_record(actors: Actors) -> None:
    registry = actors.admin.registry
    stranger, admin = actors.stranger, actors.admin
    with reverts("OwnableUnauthorizedAccount"):
        stranger.chain.transact(stranger.registry.functions.setMarketAuthorization(stranger.address, True))
    with reverts("ZeroAddress"):
        admin.chain.transact(registry.functions.setMarketAuthorization("0x" + "00" * 20, True))
    who = [t.address for t in actors.trainers[:3]]
    with reverts("UnauthorizedMarket"):
        stranger.chain.transact(stranger.registry.functions.recordRound(1, 0, OWNER, AGG, who, [0, 1, 2], [0] * 3))
    admin.chain.transact(registry.functions.setMarketAuthorization(stranger.address, True))
    with reverts("LengthMismatch"):
        stranger.chain.transact(stranger.registry.functions.recordRound(1, 0, OWNER, AGG, who, [0, 1], [0] * 3))
    assert [admin.reliability(a) for a in who] == [5000, 5000, 5000]
    receipt = stranger.chain.transact(
        stranger.registry.functions.recordRound(7, 3, OWNER, AGG, who, [0, 1, 2], [5, 0, 0])
    )
    records = actors.admin.round_records(receipt)
    assert [(r.trainer, r.outcome, r.reliability_bps, r.project_id, r.round) for r in records] == [
        (who[0], Outcome.CONTRIBUTED, 6666, 7, 3),
        (who[1], Outcome.FLAGGED, 3333, 7, 3),
        (who[2], Outcome.MISSED, 3333, 7, 3),
    ]
    assert admin.record(who[0]) == (1, 0, 0)
    assert admin.record(who[1]) == (0, 1, 0)
    assert admin.record(who[2]) == (0, 0, 1)
    assert admin.track_record(who[0]).earned == 5 and admin.track_record(who[0]).projects == 0  # round 3, not 0
    assert {r.market for r in records} == {stranger.address} and not any(r.project_counted for r in records)


@pytest.mark.parametrize(
    "word",
    [3 << 160, 10_001 << 168, 1 << 186, 1 << 255],  # an unknown outcome, over 100 %, bits past the last flag
)
def test_a_round_recorded_word_the_registry_cannot_have_written_is_refused(word: int) -> None:
    event = {"market": OWNER, "projectId": 1, "round": 0, "records": [word]}
    with pytest.raises(ValueError, match="not a RoundRecorded word"):
        round_records(event)
    (fine,) = round_records({**event, "records": [int(AGG, 16) | (1 << 160) | (5_000 << 168) | (3 << 184)]})
    assert (fine.trainer, fine.outcome, fine.reliability_bps) == (to_checksum_address(AGG), Outcome.FLAGGED, 5_000)
    assert fine.project_counted and fine.new_owner and fine.market == to_checksum_address(OWNER)


# ---------------------------------------------------------------- create


def test_create_project_escrows_budget_and_fee(actors: Actors) -> None:
    chain = actors.chain
    before = chain.balance(actors.admin.market.address)
    pid = actors.create()
    assert pid == 1 and actors.admin.project_count() == 1
    assert chain.balance(actors.admin.market.address) - before == 11 * ETH
    p = actors.stranger.get_project(pid)
    assert p.owner == actors.owner.address and p.aggregator == actors.aggregator.address
    assert p.status is ProjectStatus.OPEN
    assert (p.reward_budget, p.aggregator_fee, p.stake, p.rounds) == (10 * ETH, ETH, ETH // 10, 2)
    assert p.model_name == "mlp" and p.latest_model_cid.startswith("bafkrei")
    assert p.join_deadline == chain.timestamp() + 3_600
    assert actors.stranger.sketch_seed(pid) != actors.stranger.sketch_seed(actors.create())


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"verifier": "0x" + "11" * 20}, "VerifierNotApproved"),
        ({"aggregator": "0x" + "00" * 20}, "ZeroAddress"),
        ({"rounds": 0}, "InvalidConfig"),
        ({"min_trainers": 0}, "InvalidConfig"),
        ({"max_trainers": 65}, "InvalidConfig"),
        ({"slash_bps": 10_001}, "InvalidConfig"),
        ({"min_reliability_bps": 10_001}, "InvalidConfig"),
        ({"join_period": 0}, "InvalidConfig"),
        ({"submission_period": 0}, "InvalidConfig"),
        ({"reveal_period": 0}, "InvalidConfig"),
        ({"aggregation_period": 0}, "InvalidConfig"),
        ({"model_name": ""}, "InvalidConfig"),
        ({"model_name": "m" * 65}, "ModelNameTooLong"),
        ({"initial_model_cid": ""}, "InvalidCid"),
        ({"initial_model_cid": "b" * 129}, "InvalidCid"),
    ],
)
def test_create_project_rejects_bad_config(actors: Actors, overrides: dict, error: str) -> None:
    cfg = actors.config().model_copy(update=overrides)  # bypass client-side validation on purpose
    with reverts(error):
        actors.owner.create_project(cfg)


def test_a_join_period_past_the_32_bit_deadline_is_refused(actors: Actors) -> None:
    """The join deadline is stored in 32 bits: a join period ending after 2**32 - 1 wrapped into the past (a project
    created, its budget escrowed, nobody able to join: ``JoinClosed``). Now refused; the longest that fits is kept."""
    now = actors.chain.timestamp()
    too_long = actors.config().model_copy(update={"join_period": 2**32 - 1})  # bypass client-side validation
    with reverts("InvalidConfig") as info:
        actors.owner.create_project(too_long)
    assert info.value.args_dict == {"reason": "periods"}
    longest = 2**32 - 1 - (now + 60)  # the next block's timestamp is later than now, by less than a minute here
    pid = actors.owner.create_project(actors.config().model_copy(update={"join_period": longest}))
    project = actors.owner.get_project(pid)
    assert project.join_deadline > now and project.join_deadline <= 2**32 - 1
    actors.trainers[0].join(pid)  # joinable
    assert actors.trainers[0].address in actors.owner.trainers(pid)


def test_model_name_is_at_most_64_bytes_on_chain_and_in_the_client(actors: Actors) -> None:
    """A 4 KB model name cost its creator 3.1M gas and every reader its size (issue 12 item 5):
    the contract refuses names over MAX_MODEL_NAME_LENGTH bytes, and so does ProjectConfig, in bytes."""
    market = actors.owner.market
    assert actors.chain.call(market.functions.MAX_MODEL_NAME_LENGTH()) == MAX_MODEL_NAME_LENGTH == 64
    assert actors.owner.get_project(actors.create(model_name="m" * 64)).model_name == "m" * 64
    too_long = actors.config().model_copy(update={"model_name": "m" * 4096})  # bypass client-side validation
    with reverts("ModelNameTooLong") as info:
        actors.owner.create_project(too_long)
    assert info.value.args_dict == {"length": 4096, "maxLength": 64}
    with reverts("ModelNameTooLong"):  # 22 characters, 66 bytes of UTF-8: the contract counts bytes
        actors.owner.create_project(actors.config().model_copy(update={"model_name": "\u20ac" * 22}))
    with pytest.raises(ValueError, match="is 66 bytes long; a model name has 1 to 64 bytes"):
        actors.config(model_name="\u20ac" * 22)
    with pytest.raises(ValueError, match="model_name"):
        actors.config(model_name="m" * 65)


def test_create_project_rejects_budget_not_above_fee(actors: Actors) -> None:
    cfg = actors.config()
    fn = actors.owner.market.functions.createProject(cfg.as_abi_tuple())
    with reverts("InvalidConfig") as info:
        actors.owner.chain.transact(fn, value=cfg.aggregator_fee)
    assert info.value.args_dict["reason"] == "budget"


def test_client_side_validation_catches_bad_config_before_sending(actors: Actors) -> None:
    with pytest.raises(ValueError, match="min_trainers"):
        actors.config(min_trainers=5, max_trainers=4)
    with pytest.raises(ValueError):
        actors.config(rounds=0)


# ---------------------------------------------------------------- join / start / cancel


def test_join_records_trainer_and_full_project_starts(actors: Actors) -> None:
    pid = actors.create(max_trainers=2)
    receipt = actors.trainers[0].join(pid)
    (event,) = actors.events(receipt, "TrainerJoined")
    assert event["trainer"] == actors.trainers[0].address and event["stake"] == ETH // 10
    info = actors.owner.trainer_info(pid, actors.trainers[0].address)
    assert info.member and info.index == 0 and info.stake_left == ETH // 10
    receipt = actors.trainers[1].join(pid)
    (started,) = actors.events(receipt, "TrainingStarted")
    assert started["trainerCount"] == 2
    p = actors.owner.get_project(pid)
    assert p.status is ProjectStatus.TRAINING and p.trainer_count == 2
    assert actors.owner.trainers(pid) == [actors.trainers[0].address, actors.trainers[1].address]
    deadlines = actors.owner.round_deadlines(pid)
    assert deadlines.commit == p.round_start + 600  # nobody committed yet: the phases follow the periods
    assert (deadlines.reveal_opens, deadlines.reveal, deadlines.aggregation) == (
        p.round_start + 601,
        p.round_start + 1_200,
        p.round_start + 1_800,
    )


def test_join_reverts(actors: Actors) -> None:
    pid = actors.create(max_trainers=3)
    t0, t1 = actors.trainers[0], actors.trainers[1]
    with reverts("UnknownProject"):
        t0.join(99, stake=0)
    with reverts("WrongStake"):
        t0.join(pid, stake=1)
    with reverts("RoleConflict"):
        actors.owner.join(pid)
    with reverts("RoleConflict"):
        actors.aggregator.join(pid)
    t0.join(pid)
    with reverts("AlreadyJoined"):
        t0.join(pid)
    actors.chain.increase_time(3_601)
    with reverts("JoinClosed"):
        t1.join(pid)


def test_join_requires_min_reliability(actors: Actors) -> None:
    pid = actors.create(min_reliability_bps=6_000)
    with reverts("ReliabilityTooLow") as info:
        actors.trainers[0].join(pid)
    assert info.value.args_dict["reliabilityBps"] == 5_000


def test_join_after_start_is_wrong_status(actors: Actors) -> None:
    pid = actors.training_project(2)
    with reverts("WrongStatus"):
        actors.trainers[5].join(pid)


def test_start_training_rules(actors: Actors) -> None:
    pid = actors.create(min_trainers=2, max_trainers=4)
    actors.trainers[0].join(pid)
    with reverts("NotEnoughTrainers"):
        actors.owner.start_training(pid)
    actors.trainers[1].join(pid)
    with reverts("NotAllowedYet"):
        actors.stranger.start_training(pid)
    actors.chain.increase_time(3_601)
    actors.stranger.start_training(pid)
    assert actors.owner.get_project(pid).status is ProjectStatus.TRAINING
    with reverts("WrongStatus"):
        actors.owner.start_training(pid)


def test_owner_may_start_early(actors: Actors) -> None:
    pid = actors.create(min_trainers=2, max_trainers=4)
    actors.trainers[0].join(pid)
    actors.trainers[1].join(pid)
    actors.owner.start_training(pid)
    assert actors.owner.get_project(pid).status is ProjectStatus.TRAINING


def test_cancel_rules_and_full_refund(actors: Actors) -> None:
    pid = actors.create(min_trainers=2, max_trainers=4)
    actors.trainers[0].join(pid)
    with reverts("NotAllowedYet"):
        actors.stranger.cancel(pid)
    actors.chain.increase_time(3_601)
    actors.stranger.cancel(pid)  # too few trainers joined in time: anyone may cancel
    assert actors.owner.get_project(pid).status is ProjectStatus.CANCELLED
    assert actors.owner.withdrawable(pid, actors.owner.address) == 11 * ETH
    assert actors.owner.withdrawable(pid, actors.trainers[0].address) == ETH // 10
    assert actors.owner.withdrawable(pid, actors.aggregator.address) == 0
    assert actors.owner.withdraw(pid) == 11 * ETH
    assert actors.trainers[0].withdraw(pid) == ETH // 10
    with reverts("WrongStatus"):
        actors.owner.cancel(pid)


def test_cancel_by_stranger_needs_too_few_trainers(actors: Actors) -> None:
    pid = actors.create(min_trainers=2, max_trainers=4)
    actors.trainers[0].join(pid)
    actors.trainers[1].join(pid)
    actors.chain.increase_time(3_601)
    with reverts("Unauthorized"):
        actors.stranger.cancel(pid)
    actors.owner.cancel(pid)  # the owner may cancel any open project
    assert actors.owner.get_project(pid).status is ProjectStatus.CANCELLED


def test_cannot_cancel_once_training(actors: Actors) -> None:
    pid = actors.training_project(2)
    with reverts("WrongStatus"):
        actors.owner.cancel(pid)


# ---------------------------------------------------------------- commit and reveal


def test_commit_then_reveal_records_seal_commitment_and_events(actors: Actors) -> None:
    pid = actors.training_project(2)
    t0, t1 = actors.trainers[:2]
    commitment, cid = commitment_for(pid, 0, t0.address), "bafkreiabc"
    receipt = commit(t0, pid, 0, cid, commitment)
    (committed,) = actors.events(receipt, "UpdateCommitted")
    assert (committed["trainer"], committed["round"], committed["arrival"]) == (t0.address, 0, 1)
    assert bytes(committed["seal"]) == actors.owner.committed_seal(pid, 0, t0.address) != b"\0" * 32
    assert actors.events(receipt, "UpdateSubmitted") == []
    assert actors.owner.commitment(pid, 0, t0.address) == b"\0" * 32  # nothing revealed yet
    p = actors.owner.get_project(pid)
    assert (p.commits, p.submissions) == (1, 0)
    (seen,) = actors.stranger.commits(pid, 0)
    assert (seen.trainer, seen.arrival, seen.seal) == (t0.address, 1, bytes(committed["seal"]))

    commit(t1, pid, 0, cid_for(pid, 0, t1.address), commitment_for(pid, 0, t1.address))
    receipt = reveal_update(t0, pid, 0, cid, commitment)  # everyone committed: the reveal phase is open
    (event,) = actors.events(receipt, "UpdateSubmitted")
    assert (event["trainer"], event["cid"], bytes(event["commitment"]), event["arrival"]) == (
        t0.address,
        cid,
        commitment,
        1,
    )
    assert actors.owner.commitment(pid, 0, t0.address) == commitment
    p = actors.owner.get_project(pid)
    assert (p.commits, p.submissions) == (2, 1)
    (sub,) = actors.stranger.submissions(pid, 0)
    assert (sub.trainer, sub.cid, sub.commitment, sub.round, sub.arrival) == (t0.address, cid, commitment, 0, 1)


def test_the_market_keeps_the_open_rounds_seals_and_commitments_and_the_events_keep_every_rounds(
    actors: Actors,
) -> None:
    """A trainer's submission is one word written again every round (cheaper than a new one): its seal from its
    commit, replaced by its commitment when it reveals. The market answers for the open round (a seal until the
    reveal, then the commitment), and the client reads everything else from the ``UpdateCommitted`` and
    ``UpdateSubmitted`` events, so a finalized round still verifies."""
    pid = actors.training_project(2)
    t0, t1 = actors.trainers[:2]
    view = actors.owner.lens.functions
    first = actors.submit_all(pid, 0, reveal=False)
    seal0 = actors.owner.committed_seal(pid, 0, t0.address)
    assert bytes(actors.chain.call(view.committedSeal(pid, 0, t0.address))) == seal0 != b"\0" * 32  # held
    assert bytes(actors.chain.call(view.commitmentOf(pid, 0, t0.address))) == b"\0" * 32  # not revealed
    actors.open_reveals(pid)
    for trainer, commitment in zip((t0, t1), first, strict=True):
        reveal_update(trainer, pid, 0, cid_for(pid, 0, trainer.address), commitment)
    assert bytes(actors.chain.call(view.committedSeal(pid, 0, t0.address))) == b"\0" * 32  # its commitment now
    assert bytes(actors.chain.call(view.commitmentOf(pid, 0, t0.address))) == first[0]
    assert actors.owner.committed_seal(pid, 0, t0.address) == seal0  # from the event
    finalized = actors.result(pid, 0, [1, 2])  # its proof: from the open round's commitments, as the market keeps them
    actors.aggregator.finalize_round(pid, 0, finalized)
    second = actors.submit_all(pid, 1, [t0])  # t1 sits round 1 out
    assert bytes(actors.chain.call(view.commitmentOf(pid, 0, t0.address))) == b"\0" * 32  # not kept
    assert bytes(actors.chain.call(view.commitmentOf(pid, 1, t0.address))) == second[0]
    assert bytes(actors.chain.call(view.committedSeal(pid, 0, t0.address))) == b"\0" * 32  # t0 committed since
    assert bytes(actors.chain.call(view.committedSeal(pid, 0, t1.address))) == b"\0" * 32  # a finalized round
    assert actors.owner.round_commitments(pid, 0) == first
    assert actors.owner.round_commitments(pid, 1) == [second[0], b"\0" * 32]
    assert [actors.owner.commitment(pid, 0, t.address) for t in (t0, t1)] == first
    assert actors.owner.committed_seal(pid, 0, t0.address) == seal0 != actors.owner.committed_seal(pid, 1, t0.address)
    assert actors.owner.committed_seal(pid, 0, t1.address) == own_seal(
        t1, pid, 0, cid_for(pid, 0, t1.address), first[1]
    )
    assert actors.owner.committed_seal(pid, 1, t1.address) == b"\0" * 32
    actors.aggregator.finalize_round(pid, 1, actors.result(pid, 1, [1, 0]))
    assert actors.owner.round_commitments(pid, 1) == [second[0], b"\0" * 32]  # finished: all from the events
    inputs = recorded_verifier_inputs(actors.owner, pid, 0, [1, 2], [False] * 2, [False] * 2)  # from the events
    assert local_hash_proof(*inputs) == finalized.proof


def test_commit_update_reverts(actors: Actors) -> None:
    seal = b"\x01" * 32
    open_pid = actors.create()
    with reverts("WrongStatus"):
        actors.trainers[0].commit_update(open_pid, 0, seal)
    pid = actors.training_project(2)
    t0 = actors.trainers[0]
    with reverts("UnknownProject"):
        t0.commit_update(99, 0, seal)
    with reverts("WrongRound"):
        t0.commit_update(pid, 1, seal)
    with reverts("NotATrainer"):
        actors.stranger.commit_update(pid, 0, seal)
    with reverts("ZeroSeal"):
        t0.commit_update(pid, 0, b"\x00" * 32)
    with reverts("NoteTooLong") as info:
        t0.commit_update(pid, 0, seal, b"n" * 193)
    assert info.value.args_dict == {"length": 193, "maxLength": 192}
    t0.commit_update(pid, 0, seal, b"n" * 192)
    with reverts("AlreadyCommitted"):
        t0.commit_update(pid, 0, b"\x02" * 32)
    actors.chain.increase_time(601)
    with reverts("SubmissionClosed"):  # the commit phase is over
        actors.trainers[1].commit_update(pid, 0, seal)


def test_reveal_update_reverts(actors: Actors) -> None:
    """A reveal must open its own trainer's seal in the open round, and what it opens to must be a
    submission the market accepts (a nonzero commitment the verifier takes, a CID of 1 to 128 letters
    and digits): a trainer that sealed anything else can never reveal it."""
    open_pid = actors.create()
    with reverts("WrongStatus"):
        actors.trainers[0].reveal_update(open_pid, 0, "bafkreiabc", b"\x01" * 32, b"\x02" * 32)
    pid = actors.training_project(4)
    t0, t1, t2, t3 = actors.trainers[:4]
    good = commitment_for(pid, 0, t3.address)
    commit(t0, pid, 0, "bafkreiabc", b"\0" * 32)
    commit(t1, pid, 0, "", good)
    commit(t2, pid, 0, "b" * 129, good)
    commit(t3, pid, 0, "bafkreiabc", good)
    with reverts("WrongRound"):
        reveal_update(t3, pid, 1, "bafkreiabc", good)
    with reverts("NotATrainer"):
        reveal_update(actors.stranger, pid, 0, "bafkreiabc", good)
    with reverts("ZeroCommitment"):
        reveal_update(t0, pid, 0, "bafkreiabc", b"\0" * 32)
    with reverts("InvalidCid"):
        reveal_update(t1, pid, 0, "", good)
    with reverts("InvalidCid"):
        reveal_update(t2, pid, 0, "b" * 129, good)
    reveal_update(t3, pid, 0, "bafkreiabc", good)
    with reverts("AlreadySubmitted"):
        reveal_update(t3, pid, 0, "bafkreiabc", good)
    deadlines = actors.owner.round_deadlines(pid)
    actors.chain.increase_time(deadlines.reveal - actors.chain.timestamp() + 1)
    with reverts("RevealClosed"):
        reveal_update(t0, pid, 0, "bafkreiabc", b"\0" * 32)


# ---------------------------------------------------------------- finalize


def test_finalize_pays_by_contribution_slashes_flagged_and_updates_registry(actors: Actors) -> None:
    pid = actors.training_project(4)
    actors.submit_all(pid, 0)
    result = actors.result(pid, 0, [3, 1, 0, 9], [False, False, False, True])
    receipt = actors.aggregator.finalize_round(pid, 0, result)
    (event,) = actors.events(receipt, "RoundFinalized")
    # Round share = 5 ETH split 3:1:0 among unflagged; the flagged trainer's score is ignored.
    assert event["rewards"] == [3_750_000_000_000_000_000, 1_250_000_000_000_000_000, 0, 0]
    assert list(event["flags"]) == [False, False, False, True]
    (slash,) = actors.events(receipt, "StakeSlashed")
    assert slash["trainer"] == actors.trainers[3].address and slash["amount"] == ETH // 20
    rel = actors.admin.round_records(receipt)
    assert [r.outcome for r in rel] == [0, 0, 0, 1]
    p = actors.owner.get_project(pid)
    assert (p.current_round, p.submissions, p.latest_model_cid) == (1, 0, result.model_cid)
    assert p.slashed == ETH // 20 and p.total_earned == 5 * ETH
    assert actors.owner.reliability(actors.trainers[3].address) == 3_333
    assert actors.owner.trainer_info(pid, actors.trainers[3].address).stake_left == ETH // 20
    (fin,) = actors.stranger.finalized_rounds(pid)
    assert fin.scores == [3, 1, 0, 9] and fin.rewards[0] == 3_750_000_000_000_000_000


def test_finalize_after_deadline_with_missing_trainer_records_missed(actors: Actors) -> None:
    pid = actors.training_project(3)
    actors.submit_all(pid, 0, actors.trainers[:2], reveal=False)
    with reverts("RoundStillOpen"):  # the commit phase is still open: the third trainer may commit
        actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [0, 0, 0]))
    actors.open_reveals(pid)
    with reverts("RoundStillOpen"):  # commits closed, but the two committed trainers have not revealed
        actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [0, 0, 0]))
    for t in actors.trainers[:2]:
        reveal_update(t, pid, 0, cid_for(pid, 0, t.address), commitment_for(pid, 0, t.address))
    with reverts("NoSubmission"):
        actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [1, 1, 1]))
    with reverts("NoSubmission"):
        actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [1, 1, 0], [False, False, True]))
    receipt = actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [1, 1, 0]))
    rel = actors.admin.round_records(receipt)
    assert [r.outcome for r in rel] == [Outcome.CONTRIBUTED, Outcome.CONTRIBUTED, Outcome.MISSED]


def test_finalize_reverts(actors: Actors) -> None:
    pid = actors.training_project(2)
    actors.submit_all(pid, 0)
    good = actors.result(pid, 0, [1, 2])
    with reverts("Unauthorized"):
        actors.owner.finalize_round(pid, 0, good)
    with reverts("WrongRound"):
        actors.aggregator.finalize_round(pid, 1, good)
    with reverts("LengthMismatch"):
        actors.aggregator.finalize_round(pid, 0, Finalization("bafkreim", "bafkreip", [1], [False], good.proof))
    members = actors.owner.trainers(pid)
    for listed in (
        [members[1], members[0]],
        [members[0], actors.stranger.address],
        members[:1],
        [*members, members[0]],
    ):
        with reverts("TrainerListMismatch"):  # the market checks the list the aggregator hands it against its members
            fn = actors.aggregator.market.functions.finalizeRound(pid, 0, good.as_abi_tuple(listed))
            actors.aggregator.chain.transact(fn)
    with reverts("InvalidProof"):  # a score changed after proving
        actors.aggregator.finalize_round(
            pid, 0, Finalization(good.model_cid, good.proof_cid, [1, 3], good.flags, good.proof)
        )
    with reverts("InvalidProof"):  # a flag changed after proving
        actors.aggregator.finalize_round(
            pid, 0, Finalization(good.model_cid, good.proof_cid, good.scores, [True, False], good.proof)
        )
    with reverts("InvalidCid"):
        actors.aggregator.finalize_round(pid, 0, Finalization("", good.proof_cid, good.scores, good.flags, good.proof))
    with reverts("ScoreTooLarge"):
        actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [2**128, 1]))
    deadline = actors.owner.round_deadlines(pid).aggregation
    actors.chain.increase_time(deadline - actors.chain.timestamp() + 1)
    with reverts("AggregationDeadlinePassed"):
        actors.aggregator.finalize_round(pid, 0, good)


def test_the_round_tag_names_chain_market_project_and_round(actors: Actors) -> None:
    """finalizeRound hands the verifier keccak256(abi.encode(chainid, market, project, round)) (the lens's
    ``roundTag``; the proof tests below check what the market hands over); the aggregator, `marketplace verify` and
    the web app compute the same tag (round.prove.round_tag)."""
    market = actors.owner.market
    chain_id, address = actors.chain.chain_id, market.address
    tags = set()
    for pid, round_ in [(1, 0), (1, 1), (2, 0), (2, 1)]:
        on_chain = bytes(actors.chain.call(actors.owner.lens.functions.roundTag(pid, round_)))
        assert on_chain == round_tag(actors.owner, pid, round_) == compute_round_tag(chain_id, address, pid, round_)
        tags.add(on_chain)
    assert len(tags) == 4
    assert compute_round_tag(chain_id + 1, address, 1, 0) not in tags  # another chain
    assert compute_round_tag(chain_id, actors.stranger.address, 1, 0) not in tags  # another market


def submit_fixed(actors: Actors, pid: int, round_: int, commitments: list[bytes]) -> None:
    """The first trainers commit and reveal these ``commitments`` (one each, the same CID for all)."""
    chosen = actors.trainers[: len(commitments)]
    for trainer, c in zip(chosen, commitments, strict=True):
        commit(trainer, pid, round_, "bafkreisame", c)
    for trainer, c in zip(chosen, commitments, strict=True):
        reveal_update(trainer, pid, round_, "bafkreisame", c)


def test_a_proof_is_valid_for_its_own_round_of_its_own_project_only(actors: Actors) -> None:
    """Same commitments in the same order in two rounds and in another project: a proof of one round
    is refused in every other (InvalidProof), and no project can use up another's proof."""
    fixed = [b"\x07" * 32, b"\x08" * 32]
    victim = actors.training_project(2)
    copycat = actors.training_project(2)  # the same trainers, submitting the same commitments
    for pid in (victim, copycat):
        submit_fixed(actors, pid, 0, fixed)
    victims = actors.result(victim, 0, [1, 1])
    with reverts("InvalidProof"):  # the victim's proof in the other project
        actors.aggregator.finalize_round(copycat, 0, victims)
    actors.aggregator.finalize_round(victim, 0, victims)  # ... does not stop the victim
    actors.aggregator.finalize_round(copycat, 0, actors.result(copycat, 0, [1, 1]))

    submit_fixed(actors, victim, 1, fixed)
    with reverts("InvalidProof"):  # round 0's proof again in round 1
        actors.aggregator.finalize_round(victim, 1, victims)
    actors.aggregator.finalize_round(victim, 1, actors.result(victim, 1, [1, 1]))


def test_last_round_finishes_project_and_everyone_withdraws_exactly_the_escrow(actors: Actors) -> None:
    chain = actors.chain
    market_before = chain.balance(actors.admin.market.address)
    pid = actors.training_project(4, rounds=2)
    for round_ in range(2):
        actors.submit_all(pid, round_)
        receipt = actors.aggregator.finalize_round(
            pid, round_, actors.result(pid, round_, [5, 3, 2, 7], [False, False, False, round_ == 1])
        )
    (finished,) = actors.events(receipt, "ProjectFinished")
    assert finished["finalModelCid"] == "bafkreimodel1r1"
    assert actors.owner.get_project(pid).status is ProjectStatus.FINISHED
    with reverts("WrongStatus"):
        actors.trainers[0].commit_update(pid, 2, b"\x01" * 32)
    with reverts("WrongStatus"):
        reveal_update(actors.trainers[0], pid, 1, cid_for(pid, 1, actors.trainers[0].address), b"\x01" * 32)
    paid = sum(client.withdraw(pid) for client in [actors.owner, actors.aggregator, *actors.trainers[:4]])
    assert paid == 11 * ETH + 4 * (ETH // 10)
    assert chain.balance(actors.admin.market.address) == market_before
    for client in [actors.owner, actors.aggregator, actors.trainers[0]]:
        with reverts("NothingToWithdraw"):
            client.withdraw(pid)


def test_withdraw_reverts_while_running_and_for_strangers(actors: Actors) -> None:
    pid = actors.training_project(2)
    with reverts("WrongStatus"):
        actors.trainers[0].withdraw(pid)
    assert actors.owner.withdrawable(pid, actors.trainers[0].address) == 0
    actors.chain.increase_time(actors.owner.round_deadlines(pid).aggregation - actors.chain.timestamp() + 1)
    actors.stranger.abandon(pid)
    with reverts("NothingToWithdraw"):
        actors.stranger.withdraw(pid)


def test_owner_who_is_also_aggregator_is_paid_both_roles_once(actors: Actors) -> None:
    pid = actors.owner.create_project(actors.config(aggregator=actors.owner.address, rounds=1, max_trainers=2))
    for t in actors.trainers[:2]:
        t.join(pid)
    actors.submit_all(pid, 0)
    actors.owner.finalize_round(pid, 0, actors.result(pid, 0, [1, 0]))
    # Fee (1 ETH) + nothing left of the budget: trainer 0 earned all 10 ETH.
    assert actors.owner.withdraw(pid) == ETH
    assert actors.trainers[0].withdraw(pid) == 10 * ETH + ETH // 10


# ---------------------------------------------------------------- abandon


def test_abandon_pays_submitters_of_the_stalled_round_and_refunds_the_rest(actors: Actors) -> None:
    pid = actors.training_project(4, rounds=4)
    actors.submit_all(pid, 0)
    actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [1, 1, 1, 1]))
    actors.submit_all(pid, 1, actors.trainers[:3])
    deadline = actors.owner.round_deadlines(pid).aggregation
    with reverts("NotAllowedYet") as info:
        actors.stranger.abandon(pid)
    assert info.value.args_dict["notBefore"] == deadline + 1
    actors.chain.increase_time(deadline - actors.chain.timestamp() + 1)
    receipt = actors.stranger.abandon(pid)
    (event,) = actors.events(receipt, "ProjectAbandoned")
    share = (10 * ETH // 4) // 3
    assert (event["round"], event["submitters"], event["rewardEach"]) == (1, 3, share)
    stake = ETH // 10
    round0 = 10 * ETH // 4 // 4
    assert actors.owner.withdrawable(pid, actors.trainers[0].address) == round0 + share + stake
    assert actors.owner.withdrawable(pid, actors.trainers[3].address) == round0 + stake
    assert actors.owner.withdrawable(pid, actors.aggregator.address) == ETH // 4
    total = sum(
        actors.owner.withdrawable(pid, c.address) for c in [actors.owner, actors.aggregator, *actors.trainers[:4]]
    )
    assert total == 11 * ETH + 4 * stake
    with reverts("WrongStatus"):
        actors.stranger.abandon(pid)
    with reverts("WrongStatus"):
        actors.aggregator.finalize_round(pid, 1, actors.result(pid, 1, [1, 1, 1, 0]))


def test_unknown_project_views_revert(actors: Actors) -> None:
    with reverts("UnknownProject"):
        actors.stranger.get_project(42)
    with reverts("UnknownProject"):
        actors.stranger.trainers(42)


def test_verifier_sees_values_in_arrival_order(actors: Actors) -> None:
    pid = actors.training_project(3)
    t0, t1, t2 = actors.trainers[:3]
    # Trainer 2 commits first, then trainer 0; trainer 1 never does (its slot comes last, empty).
    actors.submit_all(pid, 0, [t2, t0])
    assert actors.owner.arrival_order(pid, 0) == [2, 0, 1]
    scores, flags = [5, 0, 7], [False, False, False]
    commitments = [actors.owner.commitment(pid, 0, t.address) for t in (t0, t1, t2)]
    tag = round_tag(actors.owner, pid, 0)
    in_trainer_order = local_hash_proof(tag, commitments, scores, flags)
    with reverts("InvalidProof"):
        actors.aggregator.finalize_round(pid, 0, Finalization("bafkreim", "bafkreip", scores, flags, in_trainer_order))
    in_arrival = local_hash_proof(tag, [commitments[2], commitments[0], commitments[1]], [7, 5, 0], [False] * 3)
    assert in_arrival == test_verifier_proof(actors.owner, pid, 0, scores, flags)
    receipt = actors.aggregator.finalize_round(pid, 0, Finalization("bafkreim", "bafkreip", scores, flags, in_arrival))
    (event,) = actors.events(receipt, "RoundFinalized")
    assert event["scores"] == scores  # recorded in trainer order, as submitted by the aggregator


def test_rejected_update_is_an_empty_slot_for_the_verifier_and_recorded_as_flagged(actors: Actors) -> None:
    pid = actors.training_project(3, slash_bps=5_000)
    t0, t1, t2 = actors.trainers[:3]
    actors.submit_all(pid, 0, [t1, t0, t2])
    actors.aggregator.reject_submissions(pid, 0, [t1.address])  # announced, and not disputed in the window
    close_disputes(actors.owner, pid)
    scores, flags, rejected = [5, 0, 7], [False, True, False], [False, True, False]
    commitments = [actors.owner.commitment(pid, 0, t.address) for t in (t0, t1, t2)]
    # The verifier sees trainer 1 (arrived first) as an empty slot: commitment 0, not flagged.
    tag = round_tag(actors.owner, pid, 0)
    empty_slot = local_hash_proof(tag, [b"\0" * 32, commitments[0], commitments[2]], [0, 5, 7], [False] * 3)
    assert empty_slot == test_verifier_proof(actors.owner, pid, 0, scores, flags, rejected)
    as_submitted = local_hash_proof(
        tag, [commitments[1], commitments[0], commitments[2]], [0, 5, 7], [True, False, False]
    )
    with reverts("InvalidProof"):  # a proof over the rejected trainer's commitment does not fit
        forged = Finalization("bafkreim", "bafkreip", scores, flags, as_submitted, rejected)
        actors.aggregator.finalize_round(pid, 0, forged)
    with reverts("InvalidRejection"):  # rejected must also be flagged ...
        actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, scores, [False] * 3, rejected))
    with reverts("InvalidRejection"):  # ... and have no score
        actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [5, 1, 7], flags, rejected))
    with reverts("LengthMismatch"):
        actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, scores, flags, [False, True]))

    receipt = actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, scores, flags, rejected))
    (event,) = actors.events(receipt, "SubmissionRejected")
    assert event["trainer"] == t1.address and event["round"] == 0
    (slashed,) = actors.events(receipt, "StakeSlashed")
    assert slashed["trainer"] == t1.address
    rel = actors.admin.round_records(receipt)
    assert [r.outcome for r in rel] == [Outcome.CONTRIBUTED, Outcome.FLAGGED, Outcome.CONTRIBUTED]
    assert actors.owner.rejected_trainers(pid, 0) == [t1.address]


def test_rejecting_a_non_submitter_reverts(actors: Actors) -> None:
    pid = actors.training_project(3)
    actors.submit_all(pid, 0, actors.trainers[:2])  # commits closed at the deadline, both revealed
    third = [False, False, True]
    with reverts("NoSubmission"):
        actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [1, 1, 0], third, third))
    with reverts("InvalidRejection"):
        actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [1, 1, 0], [False] * 3, third))


# ---------------------------------------------------------------- what the verifier declares


def unreachable_store() -> ModelStore:
    """A store whose every IPFS request fails the test: choosing a prover must not fetch anything."""

    def refuse(request: httpx.Request) -> httpx.Response:
        pytest.fail(f"unexpected IPFS request {request.url}")

    return ModelStore(IpfsClient(transport=httpx.MockTransport(refuse)))


def test_test_verifier_declares_its_proof_system_and_rule_version(actors: Actors) -> None:
    pid = actors.create()
    info = actors.owner.verifier_info(pid)
    assert info.address == actors.deployment.address("TestRoundVerifier")
    assert (info.proof_system, info.rule_version) == ("test-hash", RULE_VERSION)
    assert (info.max_trainers, info.sketch_width) == (2**256 - 1, 64)
    assert isinstance(prover_for(actors.aggregator, pid), HashProver)
    with reverts("InvalidSetup"):
        actors.chain.deploy(actors.artifacts["TestRoundVerifier"], 64, b"\0" * 8)


def test_aggregator_refuses_a_test_verifier_of_another_rule_version(
    actors: Actors, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = f"{int(RULE_VERSION, 16) ^ 1:016x}"
    verifier = actors.chain.deploy(actors.artifacts["TestRoundVerifier"], 64, encode_rule_version(other))
    actors.chain.transact(actors.admin.market.functions.setVerifierApproval(verifier.address, True))
    pid = actors.training_project(2, verifier=verifier.address)

    def no_proof(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("a proof was computed")

    monkeypatch.setattr(HashProver, "prove", no_proof)
    node = AggregatorNode(actors.aggregator, unreachable_store())
    with pytest.raises(RuleVersionMismatch) as refused:
        node.prover(pid)
    assert (refused.value.verifier_version, refused.value.local_version) == (other, RULE_VERSION)
    assert f"was built for rule {other}; this code implements rule {RULE_VERSION}" in str(refused.value)
    assert isinstance(node.prover(actors.create()), HashProver)  # the deployment's own verifier is fine
