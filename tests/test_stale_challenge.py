"""Stale challenges (``MarketDisputes.challengeStale``) on a real anvil with the local test verifier: anyone shows that
a trainer's revealed row nearly copies a row revealed in an earlier round of the project; the submission is then
rejected beyond dispute, unpaid, slashed, and the honest trainers share the whole round. Every bad challenge is
refused with its own error, and a market deployed with a challenge period cannot finalize a round before it. The
history a round is checked against is rebuilt from the chain (``project_history``): published rows, references and
stale rows as the market takes them."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.deploy import deploy_marketplace
from marketplace.adapters.chain.market import REFERENCE_AUTHOR, MarketClient, StaleEvidence
from marketplace.protocol.commitment import published_row
from marketplace.round.collect import RoundInputs
from marketplace.round.prove import HashProver
from marketplace.round.reference import commit_reference, reveal_reference
from marketplace.round.stale import (
    OWN_COPY_DIST,
    RoundCollector,
    project_history,
    squared_distance,
    stale_evidence,
    stale_match,
)
from tests.disputes import close_disputes
from tests.market_fixtures import Actors, market_client, reverts
from tests.test_attack_review_bonds import _data, _send
from tests.test_dispute_attacks import Job, _fee, _play, _publish, _rewards, _round_rows, _settle, _start

ROW_PROVER = HashProver()
#: How much less than its fee a plain account's challenge may be credited: ``CHALLENGE_GAS_OVERHEAD`` is rounded down
#: to a ~2.4 KB challenge's, and the market's copy of longer calldata costs ~0.21 gas a byte more (its NatSpec).
UNDERPAID = 0.01


def _evidence(actors: Actors, job: Job, who: str, row: np.ndarray, author: int = 0, earlier_round: int = 0) -> Any:
    """Evidence that ``who``'s ``row`` of the open round copies trainer ``author``'s row of ``earlier_round``."""
    earlier = job.rows[(earlier_round, job.trainers[author].address)]
    return StaleEvidence(
        who, tuple(published_row(row)), ROW_PROVER.prove_row(row), earlier_round, author,
        tuple(actors.owner.round_commitments(job.pid, earlier_round)), tuple(published_row(earlier)),
        ROW_PROVER.prove_row(earlier),
    )  # fmt: skip


def _replay(actors: Actors, *, rounds: int = 2, own: bool = False) -> tuple[Job, Any, np.ndarray]:
    """Round 0 played and finalized; in round 1 trainer 3 replays trainer 0's round-0 row (its own with ``own``)."""
    job = _start(actors, rounds=rounds)
    _play(actors, job, 0, _round_rows(actors, job, 0))
    actors.aggregator.finalize_round(job.pid, 0, _settle(actors.owner, job, 0, set()))
    replayer = job.trainers[3]
    rows = _round_rows(actors, job, 1)
    source = replayer if own else job.trainers[0]
    rows[replayer.address] = job.rows[(0, source.address)]
    _play(actors, job, 1, rows)
    return job, replayer, rows[replayer.address]


def test_a_replay_is_shown_stale_unpaid_slashed_and_the_others_share_the_whole_round(actors: Actors) -> None:
    """Anyone (a stranger) challenges: the replayer is rejected beyond dispute, paid nothing, slashed after paying the
    challenger's gas out of its stake; the honest three share the round's whole share; the escrow balances."""
    job, replayer, row = _replay(actors)
    receipt = actors.stranger.challenge_stale(job.pid, 1, _evidence(actors, job, replayer.address, row))
    (event,) = actors.events(receipt, "StaleChallenged")
    assert (event["trainer"], event["challenger"], event["earlierRound"]) == (
        replayer.address,
        actors.stranger.address,
        0,
    )
    award = event["award"]
    assert 0 < award <= _fee(receipt)
    assert actors.owner.bond_credit(actors.stranger.address) == award
    print(f"\nchallengeStale gas (test verifier): {receipt['gasUsed']}")
    with reverts("AlreadyShownStale"):  # nor can it dispute its rejection
        _publish(replayer, job, 1)
    with reverts("StaleNotRejected"):  # the aggregator cannot ignore it
        actors.aggregator.finalize_round(job.pid, 1, _settle(actors.owner, job, 1, set()))
    receipt = actors.aggregator.finalize_round(job.pid, 1, _settle(actors.owner, job, 1, {replayer.address}))
    rewards = _rewards(actors, receipt)
    project = actors.owner.get_project(job.pid)
    share = project.reward_budget - project.reward_budget // 2
    assert rewards[job.index(replayer)] == 0 and share - 3 <= sum(rewards) <= share
    info = actors.owner.trainer_info(job.pid, replayer.address)
    left = project.stake - award
    assert info.stake_left == left - min(left, project.stake * project.slash_bps // 10_000)
    paid_out = sum(actors.owner.withdrawable(job.pid, t.address) for t in job.trainers)
    owner_part = actors.owner.withdrawable(job.pid, actors.owner.address)
    fee = actors.owner.withdrawable(job.pid, actors.aggregator.address)
    escrowed = project.reward_budget + project.aggregator_fee + len(job.trainers) * project.stake
    assert paid_out + owner_part + fee + award == escrowed  # the award left the project as a bond credit


def test_an_honest_round_pays_as_without_challenges(actors: Actors) -> None:
    """No challenge: the round's rewards are what the rule pays, every trainer paid, the whole share out."""
    job = _start(actors, rounds=2)
    _play(actors, job, 0, _round_rows(actors, job, 0))
    actors.aggregator.finalize_round(job.pid, 0, _settle(actors.owner, job, 0, set()))
    _play(actors, job, 1, _round_rows(actors, job, 1))
    result = _settle(actors.owner, job, 1, set())
    rewards = _rewards(actors, actors.aggregator.finalize_round(job.pid, 1, result))
    project = actors.owner.get_project(job.pid)
    assert all(r > 0 for r in rewards)
    total = sum(result.scores)
    share = project.reward_budget - project.reward_budget // 2
    assert rewards == [share * s // total for s in result.scores]


def test_bad_challenges_are_refused_each_with_its_error(actors: Actors) -> None:
    """A row that is not the trainer's revealed one, an earlier row not revealed there, the wrong round's commitments,
    a round that is not earlier, a non-near-copy, a second challenge: each refused (an announced rejection may be
    challenged: ``tests/test_attack_review_stale.py``)."""
    job, replayer, row = _replay(actors)
    honest = job.trainers[1]
    good = _evidence(actors, job, replayer.address, row)
    other = job.rows[(1, honest.address)]
    near = row.copy()
    near[0] += 1 / 8192  # one grid unit off: a near copy of both, but neither's committed row
    shown = {"row": tuple(published_row(near)), "proof": ROW_PROVER.prove_row(near)}
    with reverts("InvalidRowProof"):  # another row than the one the replayer's commitment hides
        actors.stranger.challenge_stale(job.pid, 1, replace(good, **shown))
    earlier = {"earlier_row": tuple(published_row(near)), "earlier_proof": ROW_PROVER.prove_row(near)}
    with reverts("InvalidEarlierRowProof"):  # an earlier row nobody revealed under that commitment
        actors.stranger.challenge_stale(job.pid, 1, replace(good, **earlier))
    forged = (bytes(32), *good.commitments[1:])
    with reverts("RoundCommitmentsMismatch"):
        actors.stranger.challenge_stale(job.pid, 1, replace(good, commitments=forged))
    with reverts("NotAnEarlierRound"):
        actors.stranger.challenge_stale(job.pid, 1, replace(good, earlier_round=1))
    with reverts("NotRevealedEarlier"):
        actors.stranger.challenge_stale(job.pid, 1, replace(good, author=REFERENCE_AUTHOR))  # no reference there
    with reverts("NotANearCopy"):  # an honest row is far from every earlier row of another trainer
        actors.stranger.challenge_stale(job.pid, 1, _evidence(actors, job, honest.address, other))
    actors.stranger.challenge_stale(job.pid, 1, good)
    with reverts("AlreadyShownStale"):
        actors.stranger.challenge_stale(job.pid, 1, good)


def test_an_absent_slot_and_a_finalized_round_cannot_be_challenged(actors: Actors) -> None:
    """A trainer that did not reveal has no row to show (``NoSubmission``); once the round is finalized, or its
    aggregation deadline passed, it is too late (``WrongRound``, ``ChallengeClosed``)."""
    job, replayer, row = _replay(actors, rounds=3)
    good = _evidence(actors, job, replayer.address, row)
    actors.aggregator.finalize_round(job.pid, 1, _settle(actors.owner, job, 1, set()))
    with reverts("WrongRound"):
        actors.stranger.challenge_stale(job.pid, 1, good)
    absent = job.trainers[1]
    with reverts("NoSubmission"):  # round 2: nobody revealed yet
        actors.stranger.challenge_stale(job.pid, 2, replace(good, trainer=absent.address))
    _play(actors, job, 2, {**_round_rows(actors, job, 2), replayer.address: job.rows[(0, job.trainers[0].address)]})
    deadline = actors.owner.round_deadlines(job.pid).aggregation
    actors.chain.w3.provider.make_request("evm_setNextBlockTimestamp", [deadline + 1])  # type: ignore[arg-type]
    actors.chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    with reverts("ChallengeClosed"):
        actors.stranger.challenge_stale(job.pid, 2, good)


def test_the_own_earlier_row_counts_only_almost_equal(actors: Actors) -> None:
    """Against its own earlier row a trainer's row is stale only within 2^-10: its exact replay is, a row one
    2^-6-sized step away (a near copy of another's) is not (``NotANearCopy`` with the own bar)."""
    job, replayer, row = _replay(actors, own=True)
    own = job.index(replayer)
    shifted = row.copy()
    shifted[0] += 0.05  # a squared distance of 0.0025 * 2^26: over 2^16, under 2^20
    assert squared_distance(row, shifted) > OWN_COPY_DIST
    evidence = _evidence(actors, job, replayer.address, row, author=own)
    tampered = replace(evidence, earlier_row=tuple(published_row(shifted)), earlier_proof=ROW_PROVER.prove_row(shifted))
    with reverts("NotANearCopy"):
        actors.stranger.challenge_stale(job.pid, 1, tampered)
    actors.stranger.challenge_stale(job.pid, 1, evidence)


def test_a_market_with_a_challenge_period_finalizes_no_sooner(actors: Actors, accounts: list[Any]) -> None:
    """Deployed with a 120 s window, a round whose reveals are all in cannot be finalized for 120 s after the latest
    reveal (``ChallengeWindowOpen``), so a colluding aggregator cannot cut a challenge off; then it can."""
    deployment = deploy_marketplace(actors.admin.chain, actors.artifacts, challenge_period=120)
    base = market_client(actors.admin.chain, deployment, actors.artifacts)
    windowed = replace(
        actors, admin=base, owner=base.as_account(accounts[1]), aggregator=base.as_account(accounts[2]),
        trainers=[base.as_account(a) for a in accounts[3:11]], stranger=base.as_account(accounts[11]),
        deployment=deployment,
    )  # fmt: skip
    assert windowed.owner.challenge_period() == 120
    job = _start(windowed, rounds=1)
    _play(windowed, job, 0, _round_rows(windowed, job, 0))
    result = _settle(windowed.owner, job, 0, set())
    end = windowed.owner.challenge_window_end(job.pid)
    with reverts("ChallengeWindowOpen"):
        windowed.aggregator.finalize_round(job.pid, 0, result)
    chain: ChainClient = windowed.chain
    chain.w3.provider.make_request("evm_setNextBlockTimestamp", [end - 1])  # type: ignore[arg-type]
    chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    with reverts("ChallengeWindowOpen"):  # a second before the end
        windowed.aggregator.finalize_round(job.pid, 0, result)
    chain.w3.provider.make_request("evm_setNextBlockTimestamp", [end])  # type: ignore[arg-type]
    chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    windowed.aggregator.finalize_round(job.pid, 0, result)


def _challenge_padded(actors: Actors, padding: bytes) -> tuple[Any, int, int]:
    """A fresh project's replay challenged by the stranger's own transaction, ``padding`` appended to the calldata
    (the ABI decoder ignores it); returns the receipt, the award and what the arguments' encoding costs as calldata
    (4 gas a zero byte, 16 another: each fresh replay's rows and proofs have their own count of zero bytes)."""
    job, replayer, row = _replay(actors)
    call = actors.stranger.market.functions.challengeStale(
        job.pid, 1, _evidence(actors, job, replayer.address, row).as_abi_tuple()
    )
    data = _data(call)
    receipt = _send(actors.stranger, actors.stranger.market.address, data + padding)
    assert receipt["status"] == 1
    (event,) = actors.events(receipt, "StaleChallenged")
    return receipt, int(event["award"]), sum(4 if b == 0 else 16 for b in data[4:])


def test_a_plain_accounts_challenge_is_credited_at_most_its_fee_and_nearly_all_of_it(actors: Actors) -> None:
    """The stranger challenges from its plain account, a first credit then a second one: each is credited its fee
    less at most 1 % (the gas measured, the arguments' encoding at its real price, ``CHALLENGE_GAS_OVERHEAD``, the
    first credit's extra). Zero bytes appended after the arguments earn nothing: not reimbursed at all, so the
    padded challenge is credited no more gas, beyond its arguments' calldata, than a challenge without them (but for
    the counting loop's last step and the measured work, under 1,000 gas; each challenge is a fresh replay, whose
    arguments have their own calldata cost: up to ~3.5k gas apart)."""
    overhead = int(actors.chain.call(actors.owner.market.functions.CHALLENGE_GAS_OVERHEAD()))
    unpadded = 0
    for i, padding in enumerate((b"", b"", bytes(4_000), bytes(100_000))):
        receipt, award, args_gas = _challenge_padded(actors, padding)
        fee, price = _fee(receipt), int(receipt["effectiveGasPrice"])  # a 1 gwei tip: under the reimbursed cap
        measured_overhead = int(receipt["gasUsed"]) - award // price + overhead
        credit = "a first" if i == 0 else "a second"
        print(
            f"\nchallengeStale (test verifier, {credit} credit, {len(padding)} bytes appended): {receipt['gasUsed']}"
            f" gas, fee {fee} wei, award {award} wei ({award / fee:.4f} of the fee),"
            f" overhead measured {measured_overhead}"
        )
        assert award <= fee
        if padding:  # compared in gas (each block has its own base fee), less the arguments' own calldata
            assert award // price - args_gas <= unpadded + 1_000, "bytes appended after the arguments were reimbursed"
        else:
            assert award >= (1 - UNDERPAID) * fee
            unpadded = award // price - args_gas


def _collector(market: MarketClient, job: Job, unusable: dict[int, set[str]], asked: list[int]) -> RoundCollector:
    """What an aggregator collects from ``job``'s rounds when it could not use the updates of ``unusable[round]``
    (rejected, rows published since not added; nothing marked stale); each round asked is appended to ``asked``."""

    def collect(round_: int) -> RoundInputs:
        asked.append(round_)
        pid, trainers, k = job.pid, market.trainers(job.pid), market.sketch_width(job.pid)
        subs = {s.trainer: s for s in market.submissions(pid, round_)}
        bad = unusable.get(round_, set())
        rows, valid = np.zeros((len(trainers), k + 2)), np.array([t in subs and t not in bad for t in trainers])
        for i in np.flatnonzero(valid):
            rows[i] = job.rows[(round_, trainers[i])]
        return RoundInputs(
            pid, round_, market.sketch_seed(pid), k, trainers, subs, market.commits(pid, round_),
            np.zeros((len(trainers), 1), np.float32), rows, valid, {t: "unavailable" for t in bad},
        )  # fmt: skip

    return collect


def test_the_project_history_holds_what_the_market_takes_as_earlier_rows(
    actors: Actors, caplog: pytest.LogCaptureFixture
) -> None:
    """Round 0: trainers 1 and 2 rejected, 1 publishes its row in its dispute. Round 1: the owner's reference, and
    trainer 3 replays trainer 0's round-0 row (shown stale). Round 2 open, with a reference too. The history of
    rounds 0-1, rebuilt by a collector that adds no published row: round 0's usable rows and trainer 1's published
    one, round 1's rows but the stale one, round 1's reference; not trainer 2's unknown row (a warning names it), nor
    anything of round 2. A replay of the published row in round 2 is found in it, and the market takes the evidence."""
    job = _start(actors, rounds=3)
    t = job.trainers
    _play(actors, job, 0, _round_rows(actors, job, 0))
    actors.aggregator.reject_submissions(job.pid, 0, [t[1].address, t[2].address])
    _publish(t[1], job, 0)
    close_disputes(actors.owner, job.pid)
    actors.aggregator.finalize_round(job.pid, 0, _settle(actors.owner, job, 0, {t[1].address, t[2].address}))
    references = {r: _round_rows(actors, job, 10 + r)[t[0].address] for r in (1, 2)}  # rows of their own
    sealed = commit_reference(actors.owner, job.pid, 1, references[1])
    _play(actors, job, 1, {**_round_rows(actors, job, 1), t[3].address: job.rows[(0, t[0].address)]})
    reveal_reference(actors.owner, job.pid, 1, sealed, ROW_PROVER)
    actors.stranger.challenge_stale(job.pid, 1, _evidence(actors, job, t[3].address, job.rows[(0, t[0].address)]))
    actors.aggregator.finalize_round(job.pid, 1, _settle(actors.owner, job, 1, {t[3].address}))
    sealed = commit_reference(actors.owner, job.pid, 2, references[2])
    replay = job.rows[(0, t[1].address)]  # trainer 1's row, known from its dispute only
    _play(actors, job, 2, {**_round_rows(actors, job, 2), t[4].address: replay})
    reveal_reference(actors.owner, job.pid, 2, sealed, ROW_PROVER)

    asked: list[int] = []
    collect = _collector(actors.stranger, job, {0: {t[1].address, t[2].address}}, asked)
    with caplog.at_level(logging.WARNING, logger="marketplace.round.stale"):
        history = project_history(actors.stranger, collect, job.pid, 2, actors.owner.sketch_width(job.pid))
    assert asked == [0, 1]
    assert [(e.round, e.author) for e in history] == [(0, 0), (0, 1), (0, 3), (0, 4), (1, 0), (1, 1), (1, 2), (1, 4),
                                                      (1, REFERENCE_AUTHOR)]  # fmt: skip
    for e in history:
        expected = references[1] if e.author == REFERENCE_AUTHOR else job.rows[(e.round, t[e.author].address)]
        assert squared_distance(e.row, expected) == 0
    (warning,) = [r for r in caplog.records if r.name == "marketplace.round.stale"]
    assert t[2].address in warning.getMessage() and "round 0" in warning.getMessage()
    match = stale_match(t[4].address, 4, replay, history)
    assert match is not None and (match.earlier.round, match.earlier.author, match.distance) == (0, 1, 0)
    receipt = actors.stranger.challenge_stale(job.pid, 2, stale_evidence(actors.stranger, job.pid, match, ROW_PROVER))
    (event,) = actors.events(receipt, "StaleChallenged")
    assert (event["trainer"], event["earlierRound"], event["author"]) == (t[4].address, 0, 1)
