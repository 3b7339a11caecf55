"""Commit-reveal in TrainingMarket on a real anvil (issue 12 item 1): the phases of a round and their
errors, when a round may be finalized, arrival order fixed by the commits, what happens to a trainer
that commits and does not reveal, which strings a CID and a model name may be, and the seal computed
on chain agreeing with ``marketplace.protocol.seal``.

A round: commits until ``roundStart + submissionPeriod`` (or until every trainer committed); reveals
from the moment the commit phase closed until ``revealPeriod`` after it; finalization once every
committed trainer revealed or the reveal deadline passed, until ``aggregationPeriod`` after it.
"""

from __future__ import annotations

import dataclasses
import string

import pytest
from eth_utils import to_checksum_address
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from web3.contract.contract import ContractFunction

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.errors import ContractRevert
from marketplace.adapters.chain.market import Finalization, MarketClient, Outcome, ProjectStatus
from marketplace.protocol.seal import RoundAddress, derive_salt, seal
from marketplace.round.prove import local_hash_proof, round_tag
from tests.market_fixtures import ETH, Actors, cid_for, commit, commitment_for, reveal_update, reverts

EMPTY = b"\0" * 32
STAKE = ETH // 10
ALPHANUMERIC = string.ascii_letters + string.digits
ALPHANUMERIC_SORTED = sorted(ALPHANUMERIC)


def at(timestamp: int, client: MarketClient, call: ContractFunction) -> object:
    """Sends ``call`` from ``client`` in a block mined at exactly ``timestamp`` (fixed gas: an estimate
    would run at the latest block's time); a revert raises the decoded ContractRevert."""
    client.chain.w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])  # type: ignore[arg-type]
    return client.chain.transact(call, gas=2_000_000)


def block_time(chain: ChainClient, receipt: object) -> int:
    return int(chain.get_block(receipt["blockNumber"])["timestamp"])  # type: ignore[index]


def commit_call(trainer: MarketClient, pid: int, round_: int = 0) -> ContractFunction:
    """``commitUpdate`` of ``trainer``'s own submission, sealed as :func:`commit` seals it."""
    cid, commitment = cid_for(pid, round_, trainer.address), commitment_for(pid, round_, trainer.address)
    where = trainer.round_address(pid, round_)
    sealed = seal(commitment, cid, trainer.address, where, derive_salt(trainer.chain.account, where, commitment))
    return trainer.market.functions.commitUpdate(pid, round_, sealed, b"")


def reveal_call(trainer: MarketClient, pid: int, round_: int = 0) -> ContractFunction:
    """``revealUpdate`` of what :func:`commit_call` sealed."""
    cid, commitment = cid_for(pid, round_, trainer.address), commitment_for(pid, round_, trainer.address)
    salt = derive_salt(trainer.chain.account, trainer.round_address(pid, round_), commitment)
    return trainer.market.functions.revealUpdate(pid, round_, cid, commitment, salt)


def finalize_call(actors: Actors, pid: int, scores: list[int]) -> ContractFunction:
    result = actors.result(pid, 0, scores)
    return actors.aggregator.market.functions.finalizeRound(pid, 0, result.as_abi_tuple(actors.owner.trainers(pid)))


def commit_own(trainer: MarketClient, pid: int, round_: int = 0) -> object:
    """``trainer`` commits its own distinct submission (:func:`cid_for`, :func:`commitment_for`)."""
    return commit(
        trainer, pid, round_, cid_for(pid, round_, trainer.address), commitment_for(pid, round_, trainer.address)
    )


def reveal_own(trainer: MarketClient, pid: int, round_: int = 0) -> object:
    """``trainer`` reveals what :func:`commit_own` sealed."""
    cid, commitment = cid_for(pid, round_, trainer.address), commitment_for(pid, round_, trainer.address)
    return reveal_update(trainer, pid, round_, cid, commitment)


# ---------------------------------------------------------------- phases


def test_the_commit_phase_closes_at_its_deadline(actors: Actors) -> None:
    pid = actors.training_project(3)
    t0, t1, t2 = actors.trainers[:3]
    deadline = actors.owner.round_deadlines(pid).commit
    assert deadline == actors.owner.get_project(pid).round_start + 600
    at(deadline, t0, commit_call(t0, pid))  # at the deadline itself: still open
    with reverts("SubmissionClosed") as info:
        at(deadline + 1, t1, commit_call(t1, pid))
    assert info.value.args_dict == {"projectId": pid, "round": 0, "deadline": deadline}
    with reverts("SubmissionClosed"):
        commit_own(t2, pid)
    assert actors.owner.get_project(pid).commits == 1


def test_the_commit_phase_closes_once_everyone_committed_and_reveals_open_at_once(actors: Actors) -> None:
    pid = actors.training_project(3)
    p = actors.owner.get_project(pid)
    for t in actors.trainers[:2]:
        commit_own(t, pid)
    assert actors.owner.round_deadlines(pid).reveal_opens == p.round_start + 601  # some have not committed
    with reverts("RevealNotOpen"):
        reveal_own(actors.trainers[0], pid)
    last = commit_own(actors.trainers[2], pid)
    closed = block_time(actors.chain, last)
    assert closed < p.round_start + 600  # well before the commit deadline
    deadlines = actors.owner.round_deadlines(pid)
    assert (deadlines.commit, deadlines.reveal_opens) == (p.round_start + 600, closed)
    assert (deadlines.reveal, deadlines.aggregation) == (closed + 600, closed + 1_200)
    for t in actors.trainers[:3]:  # nobody can commit any more: every member has
        with reverts("AlreadyCommitted"):
            t.commit_update(pid, 0, b"\x01" * 32)
    with reverts("NotATrainer"):
        actors.stranger.commit_update(pid, 0, b"\x01" * 32)
    receipt = reveal_own(actors.trainers[1], pid)  # early reveal, before the commit deadline
    assert block_time(actors.chain, receipt) < deadlines.commit
    assert actors.owner.commitment(pid, 0, actors.trainers[1].address) == commitment_for(
        pid, 0, actors.trainers[1].address
    )


def test_a_reveal_waits_for_the_commit_phase_to_close_and_ends_at_the_reveal_deadline(actors: Actors) -> None:
    pid = actors.training_project(3)
    t0, t1 = actors.trainers[:2]
    commit_own(t0, pid)
    commit_own(t1, pid)  # the third trainer never commits: the commit phase runs to its deadline
    d = actors.owner.round_deadlines(pid)
    assert (d.reveal_opens, d.reveal, d.aggregation) == (d.commit + 1, d.commit + 600, d.commit + 1_200)
    with reverts("RevealNotOpen") as info:
        reveal_own(t0, pid)
    assert info.value.args_dict["opensAt"] == d.commit + 1
    with reverts("RevealNotOpen"):  # the last second of the commit phase
        at(d.commit, t0, reveal_call(t0, pid))
    at(d.reveal_opens, t0, reveal_call(t0, pid))  # its first second
    with reverts("AlreadySubmitted"):
        reveal_own(t0, pid)
    at(d.reveal, t1, reveal_call(t1, pid))  # the last second of the reveal phase
    assert actors.owner.get_project(pid).submissions == 2

    other = actors.training_project(2)
    commit_own(t0, other)
    commit_own(t1, other)
    closes = actors.owner.round_deadlines(other).reveal
    reveal_own(t0, other)
    with reverts("RevealClosed") as info:
        at(closes + 1, t1, reveal_call(t1, other))
    assert info.value.args_dict["deadline"] == closes
    assert actors.owner.commitment(other, 0, t1.address) == EMPTY


def test_reveal_without_commit_and_twice_and_commit_twice_revert(actors: Actors) -> None:
    pid = actors.training_project(3)
    t0, t1, t2 = actors.trainers[:3]
    commit_own(t0, pid)
    with reverts("AlreadyCommitted"):
        commit_own(t0, pid)
    with reverts("AlreadyCommitted"):  # not even with another seal
        t0.commit_update(pid, 0, b"\x07" * 32)
    commit_own(t1, pid)
    actors.open_reveals(pid)
    with reverts("NotCommitted") as info:
        reveal_own(t2, pid)
    assert info.value.args_dict == {"projectId": pid, "round": 0, "trainer": t2.address}
    reveal_own(t0, pid)
    with reverts("AlreadySubmitted"):
        reveal_own(t0, pid)
    assert actors.owner.get_project(pid).submissions == 1


def test_a_seal_opens_only_to_its_own_values_for_its_own_trainer(actors: Actors) -> None:
    pid = actors.training_project(2)
    t0, t1 = actors.trainers[:2]
    cid, commitment = cid_for(pid, 0, t0.address), commitment_for(pid, 0, t0.address)
    where = t0.round_address(pid, 0)
    salt = derive_salt(t0.chain.account, where, commitment)
    sealed = seal(commitment, cid, t0.address, where, salt)
    t0.commit_update(pid, 0, sealed)
    t1.commit_update(pid, 0, sealed)  # t1 committed t0's very seal
    assert actors.owner.committed_seal(pid, 0, t1.address) == sealed
    wrong = {
        "salt": (cid, commitment, bytes(a ^ 1 for a in salt)),
        "cid": (cid + "x", commitment, salt),
        "commitment": (cid, commitment_for(pid, 0, t1.address), salt),
    }
    for what, (c, m, s) in wrong.items():
        with reverts("SealMismatch") as info:
            t0.reveal_update(pid, 0, c, m, s)
        assert info.value.args_dict["trainer"] == t0.address, what
    with reverts("SealMismatch") as info:  # another trainer with the original's values and salt
        t1.reveal_update(pid, 0, cid, commitment, salt)
    assert info.value.args_dict["trainer"] == t1.address
    receipt = t0.reveal_update(pid, 0, cid, commitment, salt)
    (event,) = actors.events(receipt, "UpdateSubmitted")
    assert (event["trainer"], event["cid"]) == (t0.address, cid)
    assert actors.owner.commitment(pid, 0, t1.address) == EMPTY


# ---------------------------------------------------------------- finalization timing


def test_finalization_waits_for_the_reveals_of_everyone_who_committed(actors: Actors) -> None:
    pid = actors.training_project(3)
    t0, t1, t2 = actors.trainers[:3]
    for t in (t0, t1, t2):
        commit_own(t, pid)
    scores = [1, 1, 1]
    with reverts("RoundStillOpen") as info:  # all committed, nobody revealed
        actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [0, 0, 0]))
    assert info.value.args_dict["revealDeadline"] == actors.owner.round_deadlines(pid).reveal
    reveal_own(t0, pid)
    reveal_own(t2, pid)
    with reverts("RoundStillOpen"):  # t1 may still reveal
        actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [1, 0, 1]))
    reveal_own(t1, pid)
    d = actors.owner.round_deadlines(pid)
    receipt = actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, scores))
    assert block_time(actors.chain, receipt) < d.commit  # all revealed: no deadline is waited for
    assert actors.owner.get_project(pid).current_round == 1


def test_a_missing_reveal_is_waited_for_until_the_reveal_deadline(actors: Actors) -> None:
    pid = actors.training_project(3)
    t0, t1, t2 = actors.trainers[:3]
    for t in (t0, t1, t2):
        commit_own(t, pid)
    reveal_own(t0, pid)
    reveal_own(t1, pid)  # t2 never reveals
    d = actors.owner.round_deadlines(pid)
    with reverts("RoundStillOpen"):  # t2 could still reveal in this very second
        at(d.reveal, actors.aggregator, finalize_call(actors, pid, [1, 1, 0]))
    at(d.reveal + 1, actors.aggregator, finalize_call(actors, pid, [1, 1, 0]))
    assert actors.owner.get_project(pid).current_round == 1


def test_with_commits_missing_finalization_waits_for_the_commit_deadline_then_the_reveals(actors: Actors) -> None:
    pid = actors.training_project(3)
    t0, t1 = actors.trainers[:2]
    commit_own(t0, pid)
    commit_own(t1, pid)
    d = actors.owner.round_deadlines(pid)
    with reverts("RoundStillOpen"):  # the third trainer may still commit
        at(d.commit, actors.aggregator, finalize_call(actors, pid, [0, 0, 0]))
    at(d.reveal_opens, t0, reveal_call(t0, pid))
    reveal_own(t1, pid)
    actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [1, 1, 0]))  # reveals done: at once
    assert actors.owner.get_project(pid).current_round == 1

    empty = actors.training_project(2)  # nobody commits: due right after the commit deadline
    d = actors.owner.round_deadlines(empty)
    with reverts("RoundStillOpen"):
        at(d.commit, actors.aggregator, finalize_call(actors, empty, [0, 0]))
    receipt = at(d.commit + 1, actors.aggregator, finalize_call(actors, empty, [0, 0]))
    rel = actors.admin.round_records(receipt)
    assert [r.outcome for r in rel] == [Outcome.MISSED, Outcome.MISSED]


def test_finalization_and_abandonment_follow_the_aggregation_deadline_after_the_reveals(actors: Actors) -> None:
    pid = actors.training_project(2)
    actors.submit_all(pid, 0)
    d = actors.owner.round_deadlines(pid)
    with reverts("NotAllowedYet"):
        at(d.aggregation, actors.stranger, actors.stranger.market.functions.abandon(pid))
    with reverts("AggregationDeadlinePassed"):
        at(d.aggregation + 1, actors.aggregator, finalize_call(actors, pid, [1, 1]))
    actors.stranger.abandon(pid)
    assert actors.owner.get_project(pid).status is ProjectStatus.CANCELLED


# ---------------------------------------------------------------- arrival order


def test_arrival_is_commit_order_whatever_the_order_of_the_reveals(actors: Actors) -> None:
    pid = actors.training_project(4)
    t = actors.trainers[:4]
    commit_order, reveal_order = [2, 0, 3, 1], [1, 3, 0, 2]
    for i in commit_order:
        commit_own(t[i], pid)
    arrivals = {}
    for i in reveal_order:
        (event,) = actors.events(reveal_own(t[i], pid), "UpdateSubmitted")
        arrivals[i] = event["arrival"]
    assert arrivals == {i: commit_order.index(i) + 1 for i in range(4)}
    assert actors.owner.arrival_order(pid, 0) == commit_order
    assert [s.trainer for s in actors.owner.submissions(pid, 0)] == [t[i].address for i in reveal_order]

    # The verifier is handed the values in commit order: the test verifier's proof is the hash of exactly
    # what it is handed, so only a proof over the commit order is accepted.
    scores, flags = [10, 20, 30, 40], [False] * 4
    commitments = [commitment_for(pid, 0, x.address) for x in t]
    tag = round_tag(actors.owner, pid, 0)

    def proof(order: list[int]) -> Finalization:
        values = local_hash_proof(tag, [commitments[i] for i in order], [scores[i] for i in order], flags)
        return Finalization("bafkreimodel", "bafkreiproof", scores, flags, values)

    for wrong in (reveal_order, [0, 1, 2, 3]):
        with reverts("InvalidProof"):
            actors.aggregator.finalize_round(pid, 0, proof(wrong))
    receipt = actors.aggregator.finalize_round(pid, 0, proof(commit_order))
    (event,) = actors.events(receipt, "RoundFinalized")
    assert list(event["scores"]) == scores  # recorded in trainer order


# ---------------------------------------------------------------- a trainer that does not reveal


def test_a_trainer_that_commits_and_does_not_reveal_is_slashed_flagged_and_unpaid_in_an_empty_slot(
    actors: Actors,
) -> None:
    pid = actors.training_project(3, rounds=1, slash_bps=5_000)
    t0, t1, t2 = actors.trainers[:3]
    for x in (t1, t0, t2):  # t1 commits first, and never reveals
        commit_own(x, pid)
    reveal_own(t0, pid)
    reveal_own(t2, pid)
    actors.chain.increase_time(actors.owner.round_deadlines(pid).reveal - actors.chain.timestamp() + 1)
    with reverts("NoSubmission"):  # nothing revealed: it cannot be scored ...
        actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [1, 5, 1]))
    with reverts("NoSubmission"):  # ... nor flagged by the aggregator
        actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [1, 0, 1], [False, True, False]))
    with reverts("InvalidRejection"):  # ... nor rejected
        actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [1, 0, 1], [False] * 3, [False, True, False]))

    # Its slot, first in arrival order, is empty: commitment 0, score 0, not flagged.
    tag = round_tag(actors.owner, pid, 0)
    c0, c2 = (commitment_for(pid, 0, x.address) for x in (t0, t2))
    empty_slot = local_hash_proof(tag, [EMPTY, c0, c2], [0, 3, 1], [False] * 3)
    receipt = actors.aggregator.finalize_round(
        pid, 0, Finalization("bafkreim", "bafkreip", [3, 0, 1], [False] * 3, empty_slot)
    )
    (missed,) = actors.events(receipt, "RevealMissed")
    assert (missed["trainer"], missed["round"]) == (t1.address, 0)
    (slashed,) = actors.events(receipt, "StakeSlashed")
    assert (slashed["trainer"], slashed["amount"]) == (t1.address, STAKE // 2)
    (event,) = actors.events(receipt, "RoundFinalized")
    assert event["rewards"] == [7_500_000_000_000_000_000, 0, 2_500_000_000_000_000_000]
    rel = actors.admin.round_records(receipt)
    assert [r.outcome for r in rel] == [Outcome.CONTRIBUTED, Outcome.FLAGGED, Outcome.CONTRIBUTED]
    assert actors.owner.record(t1.address) == (0, 1, 0)
    assert actors.owner.get_project(pid).slashed == STAKE // 2

    assert t1.withdraw(pid) == STAKE // 2  # what is left of its stake, nothing more
    assert t0.withdraw(pid) == 7_500_000_000_000_000_000 + STAKE
    assert actors.owner.withdraw(pid) == STAKE // 2  # the slashed half goes to the owner


def test_abandonment_pays_only_the_trainers_who_revealed(actors: Actors) -> None:
    pid = actors.training_project(3, rounds=2)
    t0, t1, t2 = actors.trainers[:3]
    for x in (t0, t1, t2):
        commit_own(x, pid)
    reveal_own(t0, pid)
    reveal_own(t2, pid)  # t1 committed and did not reveal
    actors.chain.increase_time(actors.owner.round_deadlines(pid).aggregation - actors.chain.timestamp() + 1)
    receipt = actors.stranger.abandon(pid)
    (event,) = actors.events(receipt, "ProjectAbandoned")
    share = 10 * ETH // 2 // 2
    assert (event["submitters"], event["rewardEach"]) == (2, share)
    # t1 withheld its reveal: slashed as at finalization (the default slashBps is 50 %), nothing earned
    assert [e["trainer"] for e in actors.events(receipt, "RevealMissed")] == [t1.address]
    half = STAKE // 2
    assert [actors.owner.withdrawable(pid, x.address) for x in (t0, t1, t2)] == [share + STAKE, half, share + STAKE]
    # budget left + fee + the slashed half stake
    assert actors.owner.withdrawable(pid, actors.owner.address) == 10 * ETH - 2 * share + ETH + half


# ---------------------------------------------------------------- strings


def creates(actors: Actors, **overrides: object) -> bool:
    """Whether ``createProject`` accepts the default config with ``overrides`` (simulated, not mined);
    False on ``InvalidCid`` / ``InvalidModelName`` / ``ModelNameTooLong`` / ``InvalidConfig``."""
    cfg = actors.config().model_copy(update=overrides)  # bypass client-side validation
    try:
        actors.owner.chain.call(actors.owner.market.functions.createProject(cfg.as_abi_tuple()), value=cfg.payment)
    except ContractRevert as exc:
        assert exc.name in ("InvalidCid", "InvalidModelName", "ModelNameTooLong", "InvalidConfig"), exc
        return False
    return True


def is_cid(text: str) -> bool:
    return 1 <= len(text.encode()) <= 128 and all(c in ALPHANUMERIC for c in text)


def is_model_name(text: str) -> bool:
    return 1 <= len(text.encode()) <= 64 and all(c in ALPHANUMERIC + "_-." for c in text)


def strings(allowed: str, max_size: int) -> st.SearchStrategy[str]:
    """Mostly allowed characters, sometimes anything (any UTF-8 text: ASCII punctuation, controls, multibyte)."""
    mostly = st.text(st.sampled_from(allowed) | st.characters(codec="utf-8"), max_size=max_size)
    return st.text(st.sampled_from(allowed), max_size=max_size) | mostly


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(cid=strings(ALPHANUMERIC, 140))
@example(cid="")
@example(cid="b" * 128)
@example(cid="b" * 129)
@example(cid="bafkrei" + "\u00e9")  # two bytes over 127
@example(cid="".join(chr(c) for c in range(0x21, 0x7F) if not chr(c).isalnum()))  # every ASCII symbol at once
@example(cid="b" * 31 + "/")  # the market checks 32 bytes at a time: a bad byte at each edge of a word
@example(cid="b" * 32 + "/")
@example(cid="/" + "b" * 63)
@example(cid="b" * 58 + "\x00")  # a zero byte inside the CID, where the last word is zero-padded
@example(cid="b" * 95 + "@" + "b" * 32)  # "@" and "[" sit just below "A" and above "Z", "`" and "{" around a-z
@example(cid="Z" * 64 + "[")
@example(cid="a" * 100 + "`")
@example(cid="{" + "z" * 127)
def test_a_cid_is_1_to_128_letters_and_digits(actors: Actors, cid: str) -> None:
    assert creates(actors, initial_model_cid=cid) == is_cid(cid)


@SETTINGS
@given(name=strings(ALPHANUMERIC + "_-.", 70))
@example(name="cnn_v2.1-small")
@example(name="m" * 65)
def test_a_model_name_is_1_to_64_letters_digits_underscores_dashes_and_dots(actors: Actors, name: str) -> None:
    assert creates(actors, model_name=name) == is_model_name(name)


def test_every_other_byte_is_refused_in_a_cid_and_a_model_name(actors: Actors) -> None:
    """Byte by byte: in a CID only letters and digits, in a model name also ``_``, ``-`` and ``.``."""
    ascii_ = [chr(c) for c in range(0x80)]
    assert [c for c in ascii_ if creates(actors, initial_model_cid=f"bafkrei{c}x")] == ALPHANUMERIC_SORTED
    assert [c for c in ascii_ if creates(actors, model_name=f"mlp{c}2")] == sorted(ALPHANUMERIC + "_-.")
    assert not creates(actors, initial_model_cid="bafkrei\u00ff") and not creates(actors, model_name="mlp\u0100")


@pytest.mark.parametrize("cid", ["bafkrei/x", "bafkrei x", "bafkrei\n", "<script>", "bafkrei\u00e9", "Qm.."])
def test_a_reveal_or_a_finalization_with_a_cid_that_is_not_alphanumeric_is_refused(actors: Actors, cid: str) -> None:
    assert not creates(actors, initial_model_cid=cid)
    pid = actors.training_project(2)
    t0, t1 = actors.trainers[:2]
    commit(t0, pid, 0, cid, commitment_for(pid, 0, t0.address))
    commit_own(t1, pid)
    with reverts("InvalidCid"):
        reveal_update(t0, pid, 0, cid, commitment_for(pid, 0, t0.address))
    reveal_own(t1, pid)
    actors.chain.increase_time(actors.owner.round_deadlines(pid).reveal - actors.chain.timestamp() + 1)
    good = actors.result(pid, 0, [0, 1])
    with reverts("InvalidCid"):
        actors.aggregator.finalize_round(pid, 0, dataclasses.replace(good, model_cid=cid))
    with reverts("InvalidCid"):
        actors.aggregator.finalize_round(pid, 0, dataclasses.replace(good, proof_cid=cid))
    actors.aggregator.finalize_round(pid, 0, good)


# ---------------------------------------------------------------- the seal


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    commitment=st.binary(min_size=32, max_size=32),
    cid=st.text(st.characters(codec="utf-8"), max_size=200),
    trainer=st.binary(min_size=20, max_size=20),
    project_id=st.integers(0, 2**256 - 1),
    round_=st.integers(0, 2**256 - 1),
    salt=st.binary(min_size=32, max_size=32),
)
def test_seal_of_on_chain_is_the_protocols_seal(
    actors: Actors, commitment: bytes, cid: str, trainer: bytes, project_id: int, round_: int, salt: bytes
) -> None:
    market = actors.owner.market
    address = to_checksum_address("0x" + trainer.hex())
    lens = actors.owner.lens.functions  # the market's own seal is what every reveal opens (next test)
    on_chain = bytes(actors.chain.call(lens.sealOf(commitment, cid, address, project_id, round_, salt)))
    where = RoundAddress(actors.chain.chain_id, market.address, project_id, round_)
    assert on_chain == seal(commitment, cid, address, where, salt)
