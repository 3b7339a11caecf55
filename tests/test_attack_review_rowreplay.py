# ruff: noqa: F811  (the fixture imported from tests.ipfs_fixtures is used as a test argument)
"""Attack review of the record of published rows (``MarketState._publishedRows``, ``RowAlreadyPublished``), on a
real anvil with the local test verifier: every participant (owner, aggregator, any trainer, coalitions, anyone
reading the mempool) may deviate.

What holds (the tests pass):

- nobody can make an honest trainer's dispute revert ``RowAlreadyPublished``: its commitment is under its seal
  until its own reveal, so nobody can publish it in an earlier round of the project (not the owner through its
  reference, whose seal was committed before; not another trainer); a copy published first in the same round,
  from a fee-ordered mempool and against a dispute sent with exactly its estimated gas, does not make it revert;
- a dispute that fails (a bad proof, too little gas) records nothing, and the honest retry goes through;
- a published row has one encoding: trailing entries and another presence value are refused, ``-0.0`` is ``0``;
- the market and its disputes module lay their storage out alike, the record last, in the same slot;
- a trainer node whose dispute was refused, even restarted, reports it and trains on in the next round.

- the record does not see a published row changed by one grid unit (another commitment), nor a published row's
  commitment revealed again normally (only ``disputeRejection`` reads it); both are near copies of a row revealed
  in an earlier round, which anyone shows on chain (``challengeStale``): the replay is then rejected, unpaid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import solcx
from eth_abi import encode as abi_encode
from eth_utils import keccak

from marketplace.adapters.chain.compile import build_settings, collect_sources
from marketplace.adapters.chain.market import MarketClient, StaleEvidence
from marketplace.adapters.ipfs.cid import normalize_cid
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.manager import LocalIpfsNode
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.adapters.toolchain import project_root, solc_binary
from marketplace.fl.models import build_model
from marketplace.protocol.commitment import MAX_UNIT_INT, commit_update, commitment_bytes, published_row
from marketplace.roles.aggregator import AggregatorNode, RejectionsAnnounced, RoundReport
from marketplace.roles.trainer import Committed, Disputed, DisputeRefused, StepOutcome, TrainerNode
from marketplace.round.prove import HashProver
from marketplace.round.reference import commit_reference, reveal_reference
from tests.disputes import close_disputes
from tests.ipfs_fixtures import ipfs_node  # noqa: F401
from tests.market_fixtures import Actors, commit, reveal_update, reverts
from tests.mempool import Mempool
from tests.test_dispute_attacks import (
    DIM,
    Job,
    _cid,
    _play,
    _publish,
    _rewards,
    _round_rows,
    _settle,
    _start,
)
from tests.update_sources import FixedUpdate, agreeing_updates

# ---------------------------------------------------------------- helpers


def _storage_layouts() -> dict[str, list[dict[str, Any]]]:
    """solc's storage layout of the market and of its disputes module, compiled from contracts/ as deployed."""
    root = project_root()
    sources = collect_sources([root / "contracts"], root)
    settings = build_settings()
    settings["outputSelection"] = {"*": {"*": ["storageLayout"]}}
    output = solcx.compile_standard(
        {"language": "Solidity", "sources": {n: {"content": t} for n, t in sources.items()}, "settings": settings},
        solc_binary=solc_binary(),
        base_path=str(root),
        allow_paths=[str(root)],
    )
    return {
        name: output["contracts"][f"contracts/{name}.sol"][name]["storageLayout"]["storage"]
        for name in ("TrainingMarket", "MarketDisputes")
    }


#: The market's storage slot of ``_publishedRows`` (checked by the layout test below).
PUBLISHED_ROWS_SLOT = 9


def _recorded(actors: Actors, pid: int, commitment: bytes) -> int:
    """What the market's record holds for ``commitment`` in project ``pid``: 1 + the round it was first published
    in, 0 if never (read from the market's raw storage, as anyone can)."""
    inner = keccak(abi_encode(["uint256", "uint256"], [pid, PUBLISHED_ROWS_SLOT]))
    slot = keccak(abi_encode(["bytes32", "bytes32"], [commitment, inner]))
    word = actors.chain.w3.eth.get_storage_at(actors.owner.market.address, slot)
    return int.from_bytes(word, "big")


def _replay_round(actors: Actors, job: Job, replayer: MarketClient, row: np.ndarray, round_: int = 1) -> None:
    """Round ``round_`` where ``replayer`` commits ``row``'s commitment and every other trainer a fresh row."""
    rows = _round_rows(actors, job, round_)
    rows[replayer.address] = row
    _play(actors, job, round_, rows)


def _published_round_0(actors: Actors, job: Job) -> np.ndarray:
    """Round 0 of ``job``: trainer 0 is falsely rejected and disputes (its row is published on chain); the round is
    finalized. Returns the published row."""
    author = job.trainers[0]
    _play(actors, job, 0, _round_rows(actors, job, 0))
    actors.aggregator.reject_submissions(job.pid, 0, [author.address])
    _publish(author, job, 0)
    actors.aggregator.finalize_round(job.pid, 0, _settle(actors.owner, job, 0, set()))
    return job.rows[(0, author.address)]


# ---------------------------------------------------------------- storage layout (holds)


def test_the_market_and_its_disputes_module_lay_out_their_storage_alike() -> None:
    """The disputes module runs in the market's storage (DELEGATECALL): every variable either declares must sit at
    the same slot, offset and type in both, and the record of published rows is the last, in both at the slot this
    file reads, followed only by the rejection bonds' records (no variable of the market after ``MarketState``'s:
    transient storage takes no slot)."""
    layouts = _storage_layouts()

    def shape(name: str) -> list[tuple[str, str, int, str]]:
        return [(e["label"], e["slot"], e["offset"], e["type"]) for e in layouts[name]]

    assert shape("TrainingMarket") == shape("MarketDisputes")
    last = [e[:2] for e in shape("TrainingMarket")[-4:]]  # the bonds' two records and the rounds' commitments after
    slots = [str(PUBLISHED_ROWS_SLOT + i) for i in range(4)]
    names = ("_publishedRows", "_bondsHeld", "_bondCredits", "_roundCommitments")
    assert last == list(zip(names, slots, strict=True))


# ---------------------------------------------------------------- griefing an honest dispute (holds)


def test_the_owner_cannot_publish_a_trainers_commitment_before_the_trainers_dispute(actors: Actors) -> None:
    """The owner commits its reference in round 0's commit phase, before any commitment is public: a trainer's
    commit carries its seal only (its commitment is nowhere in the transaction), so the owner learns it at the
    trainer's reveal, too late to seal it. Its reference cannot open to the trainer's commitment (``SealMismatch``);
    the trainer, falsely rejected, disputes in that round and is paid."""
    job = _start(actors, rounds=2)
    victim = job.trainers[1]
    seed, k = actors.owner.sketch_seed(job.pid), actors.owner.sketch_width(job.pid)
    sealed = commit_reference(
        actors.owner, job.pid, 0, commit_update(np.random.default_rng(5).normal(size=DIM), seed, k)[0]
    )
    rows = _round_rows(actors, job, 0)
    committed = {t.address: commit(t, job.pid, 0, _cid(t, 0), commitment_bytes(rows[t.address])) for t in job.trainers}
    victim_commitment = commitment_bytes(rows[victim.address])
    tx = actors.chain.get_transaction(committed[victim.address]["transactionHash"])
    assert victim_commitment not in bytes(tx["input"])  # hidden under the seal until the reveal
    actors.open_reveals(job.pid)
    for t in job.trainers:
        reveal_update(t, job.pid, 0, _cid(t, 0), commitment_bytes(rows[t.address]))
    job.rows.update({(0, a): r for a, r in rows.items()})
    row = rows[victim.address]  # the owner can now make it from the victim's clear update: too late
    with reverts("SealMismatch"):
        actors.owner.reveal_reference(
            job.pid, 0, victim_commitment, sealed.salt, published_row(row), HashProver().prove_row(row)
        )
    reveal_reference(actors.owner, job.pid, 0, sealed, HashProver())
    actors.aggregator.reject_submissions(job.pid, 0, [victim.address])
    _publish(victim, job, 0)
    assert _recorded(actors, job.pid, victim_commitment) == 1  # published in round 0
    rewards = _rewards(actors, actors.aggregator.finalize_round(job.pid, 0, _settle(actors.owner, job, 0, set())))
    assert rewards[job.index(victim)] > 0


def test_a_copy_published_first_in_the_same_round_from_the_mempool_does_not_make_the_dispute_revert(
    actors: Actors,
) -> None:
    """A colluder that committed the author's very row after it (it knew the row; nobody else could) sees the
    author's pending dispute (sent with exactly the gas it was estimated at, before the row was recorded) and
    outbids it with its own: mined first, it records the row in this round. The author's dispute still goes through
    (a row recorded in the same round blocks nothing, and it costs less gas, not more, once recorded), and of the two
    identical rows only the author's earlier commit is paid. (The owner's reference cannot front-run a dispute at
    all: rejections are announced only once a committed reference was revealed or the reveal phase is over, when
    no reference can be revealed any more.)"""
    job = _start(actors)
    author, colluder = job.trainers[0], job.trainers[1]
    rows = _round_rows(actors, job, 0)
    rows[colluder.address] = rows[author.address]
    _play(actors, job, 0, rows)  # the author commits before the colluder
    actors.aggregator.reject_submissions(job.pid, 0, [author.address, colluder.address])
    row = rows[author.address]
    dispute = author.market.functions.disputeRejection(job.pid, 0, published_row(row), HashProver().prove_row(row))
    estimate = author.chain.estimate_gas(dispute)
    front = colluder.market.functions.disputeRejection(job.pid, 0, published_row(row), HashProver().prove_row(row))

    pool = Mempool(actors.chain)
    pool.automine(False)
    try:
        original = pool.send(author.chain.account, dispute, tip_gwei=1, gas=estimate)
        fronted = pool.send(colluder.chain.account, front, tip_gwei=100)
        receipts = {r["transactionHash"].to_0x_hex(): r for r in pool.mine()}
    finally:
        pool.automine(True)
    assert list(receipts) == [fronted, original]  # mined in fee order: the front-run first
    assert [r["status"] for r in receipts.values()] == [1, 1]
    assert receipts[original]["gasUsed"] < estimate
    assert _recorded(actors, job.pid, commitment_bytes(row)) == 1
    assert sorted(actors.owner.rejections(job.pid).disputed) == sorted([author.address, colluder.address])
    rewards = _rewards(actors, actors.aggregator.finalize_round(job.pid, 0, _settle(actors.owner, job, 0, set())))
    assert rewards[job.index(author)] > 0 and rewards[job.index(colluder)] == 0


def test_a_dispute_that_fails_records_nothing_and_the_retry_goes_through(actors: Actors) -> None:
    """The record is written before the verifier's call and reverted with it: a dispute with a bad proof
    (``InvalidRowProof``) or with too little gas (it runs out inside the market) leaves the row unrecorded, so
    a failed attempt, the trainer's own or one it was tricked into, never turns into a refusal later; the retry
    with the estimated gas is accepted and records the row."""
    job = _start(actors, rounds=2)
    victim = job.trainers[2]
    _play(actors, job, 0, _round_rows(actors, job, 0))
    actors.aggregator.reject_submissions(job.pid, 0, [victim.address])
    row = job.rows[(0, victim.address)]
    commitment = commitment_bytes(row)
    with reverts("InvalidRowProof"):
        victim.dispute_rejection(job.pid, 0, published_row(row), b"\x01" * 32)
    call = victim.market.functions.disputeRejection(job.pid, 0, published_row(row), HashProver().prove_row(row))
    estimate = victim.chain.estimate_gas(call)
    for gas in (estimate - 1, estimate - 15_000, estimate - 40_000):
        with pytest.raises(Exception) as starved:  # out of gas: the receipt's status is 0
            victim.chain.transact(call, gas=gas)
        assert "RowAlreadyPublished" not in str(starved.value)
    assert _recorded(actors, job.pid, commitment) == 0
    receipt = victim.chain.transact(call, gas=estimate)
    assert receipt["status"] == 1 and _recorded(actors, job.pid, commitment) == 1


# ---------------------------------------------------------------- one row, one encoding (holds)


def test_a_published_row_has_no_second_encoding(actors: Actors) -> None:
    """The commitment binds the row's K + 2 integers, and the market accepts one form of them: a replayer that
    commits the published row with a trailing entry or with another presence value (so that its commitment differs
    and the record does not see it) cannot dispute with it (``InvalidRowLength``, ``InvalidRowValue``); a ``-0.0``
    is the integer 0 and the same commitment (the zk verifier also refuses a commitment not below the field
    modulus, so no commitment has a second bytes32 form)."""
    job = _start(actors, rounds=3)
    published = _published_round_0(actors, job)
    signed_zero = np.where(published == 0.0, -0.0, published)
    assert published_row(signed_zero) == published_row(published)
    assert commitment_bytes(signed_zero) == commitment_bytes(published)

    replayer = job.trainers[3]
    variants = {
        "InvalidRowLength": np.concatenate([published, [0.0]]),
        "InvalidRowValue": np.concatenate([published[:-1], [2.0]]),  # presence 2 instead of 1
    }
    for round_, (error, variant) in enumerate(variants.items(), start=1):
        rows = _round_rows(actors, job, round_)
        job.rows.update({(round_, a): r for a, r in rows.items()})
        for t in job.trainers:
            c = commitment_bytes(variant if t is replayer else rows[t.address])
            commit(t, job.pid, round_, _cid(t, round_), c)
        actors.open_reveals(job.pid)
        for t in job.trainers:
            c = commitment_bytes(variant if t is replayer else rows[t.address])
            reveal_update(t, job.pid, round_, _cid(t, round_), c)
        actors.aggregator.reject_submissions(job.pid, round_, [replayer.address])
        ints = [round(v * MAX_UNIT_INT) for v in variant]
        with reverts(error):
            replayer.dispute_rejection(job.pid, round_, ints, HashProver().prove_row(variant))
        close_disputes(actors.owner, job.pid)
        actors.aggregator.finalize_round(job.pid, round_, _settle(actors.owner, job, round_, {replayer.address}))
        assert actors.owner.rejected_trainers(job.pid, round_) == [replayer.address]


# ---------------------------------------------------------------- replays the record does not see: stale challenges


def _challenge_stale(actors: Actors, job: Job, replayer: MarketClient, row: np.ndarray, round_: int = 1) -> Any:
    """Anyone (here the owner) shows that ``replayer``'s row of ``round_`` nearly copies trainer 0's row of round 0."""
    earlier = job.rows[(0, job.trainers[0].address)]
    evidence = StaleEvidence(
        replayer.address, tuple(published_row(row)), HashProver().prove_row(row), 0, 0,
        tuple(actors.owner.round_commitments(job.pid, 0)), tuple(published_row(earlier)),
        HashProver().prove_row(earlier),
    )  # fmt: skip
    return actors.owner.challenge_stale(job.pid, round_, evidence)


def _one_unit_off(row: np.ndarray, where: str) -> np.ndarray:
    """``row`` with one grid unit (2^-13) added to its largest-index ``v`` entry below 1, or to its ``l``."""
    k = row.size - 2
    tweaked = row.copy()
    i = k if where == "l" else max(j for j in range(k) if abs(row[j]) < 1.0)
    tweaked[i] += 1.0 / MAX_UNIT_INT
    return tweaked


@pytest.mark.parametrize("where", ["v", "l"])
def test_a_published_row_one_grid_unit_off_is_not_paid_again_in_a_later_round(actors: Actors, where: str) -> None:
    """Round 0's row published by a dispute, changed by one unit of one ``v`` entry or of ``l``, is committed in
    round 1 by another trainer that serves nothing; rejected, it disputes with that row (the record does not see it:
    another commitment); anyone then shows it a near copy of round 0's row, and nothing pays it."""
    job = _start(actors, rounds=2)
    published = _published_round_0(actors, job)
    replayer = job.trainers[3]
    tweaked = _one_unit_off(published, where)
    assert commitment_bytes(tweaked) != commitment_bytes(published)
    _replay_round(actors, job, replayer, tweaked)
    actors.aggregator.reject_submissions(job.pid, 1, [replayer.address])
    try:
        _publish(replayer, job, 1)
    except Exception as exc:  # the safe outcome: the market refuses the near-copy
        assert "RowAlreadyPublished" in str(exc)
        return
    _challenge_stale(actors, job, replayer, tweaked)
    close_disputes(actors.owner, job.pid)
    result = _settle(actors.owner, job, 1, {replayer.address}, published=False)
    receipt = actors.aggregator.finalize_round(job.pid, 1, result)
    assert _rewards(actors, receipt)[job.index(replayer)] == 0


def test_a_published_rows_commitment_revealed_again_with_an_update_is_not_paid(actors: Actors) -> None:
    """Round 0's published row is committed and revealed normally in round 1 by another trainer (its update, the
    disputing trainer's own, fetched from IPFS and matching): anyone shows it a copy of round 0's row (distance 0),
    and nothing pays it."""
    job = _start(actors, rounds=2)
    published = _published_round_0(actors, job)
    replayer = job.trainers[3]
    try:
        _replay_round(actors, job, replayer, published)
    except Exception as exc:  # the safe outcome: the market refuses the replayed commitment
        assert "RowAlreadyPublished" in str(exc)
        return
    _challenge_stale(actors, job, replayer, published)
    receipt = actors.aggregator.finalize_round(job.pid, 1, _settle(actors.owner, job, 1, {replayer.address}))
    assert _rewards(actors, receipt)[job.index(replayer)] == 0


# ---------------------------------------------------------------- the nodes (hold)


class _KeptLocally(ModelStore):
    """A trainer's store whose updates never reach the shared node (the aggregator cannot fetch them) but stay on
    the trainer's own disk, where the trainer finds them again after a restart."""

    def __init__(self, client: IpfsClient) -> None:
        super().__init__(client)
        self.kept: dict[str, bytes] = {}

    def publish(self, data: bytes, cid: str) -> None:
        """Keeps ``data`` here only."""
        self.kept[normalize_cid(cid)] = data

    def get_bytes(self, cid: str, max_bytes: int | None = None) -> bytes:
        """A kept object from here, anything else from the node."""
        kept = self.kept.get(normalize_cid(cid))
        return kept if kept is not None else super().get_bytes(cid, max_bytes)


def test_a_refused_trainer_node_restarted_reports_once_and_trains_on_in_the_next_round(
    actors: Actors, ipfs_node: LocalIpfsNode
) -> None:
    """A node replaying its published row (the same update every round, served to nobody) has its round-1 dispute
    refused; restarted in the window, the new node reports the refusal once more (it has no memory of it) without
    raising, the aggregator finalizes with the rejection standing (slashed once, for that round only), and in
    round 2 the node commits and reveals as usual: the refusal costs it that round, nothing else."""
    store = ModelStore(ipfs_node.client())
    initial = store.put_tensors(build_model("mlp", seed=8).state_dict(), {"kind": "model"})
    pid = actors.training_project(4, rounds=3, initial_model_cid=initial)
    updates = agreeing_updates(4, seed=29)
    lazy_store = _KeptLocally(ipfs_node.client())
    # bytes no other test pins: the session's IPFS node is shared, and another test's trainer 3 may have pinned
    # updates[3] of seed 29 in a project 1 round 0 too (the same bytes, the same CID: the aggregator fetched it)
    kept = (updates[3] * np.float32(1 + 2**-10)).astype(np.float32)
    lazy = TrainerNode(actors.trainers[3], lazy_store, FixedUpdate(kept))
    nodes = [TrainerNode(t, store, FixedUpdate(u)) for t, u in zip(actors.trainers[:3], updates[:3], strict=True)]
    aggregator = AggregatorNode(actors.aggregator, ModelStore(IpfsClient(ipfs_node.api_url, timeout=2.0, retries=0)))

    def submit_all() -> None:
        for n in [*nodes, lazy]:
            assert isinstance(n.step(pid), Committed)
        for n in [*nodes, lazy]:
            n.step(pid)

    submit_all()
    assert isinstance(aggregator.step(pid), RejectionsAnnounced)
    assert isinstance(lazy.step(pid), Disputed)
    assert isinstance(aggregator.step(pid), RoundReport)

    for node, update in zip(nodes, agreeing_updates(4, seed=31)[:3], strict=True):
        node.source = FixedUpdate(update)  # honest nodes train afresh (the same update again is a stale replay)
    submit_all()
    assert isinstance(aggregator.step(pid), RejectionsAnnounced)
    assert isinstance(lazy.step(pid), DisputeRefused)
    restarted = TrainerNode(actors.trainers[3], lazy_store, FixedUpdate(kept))
    assert isinstance(restarted.step(pid), DisputeRefused)
    assert restarted.step(pid) is StepOutcome.ALREADY_SUBMITTED
    close_disputes(actors.owner, pid)
    report = aggregator.step(pid)
    assert isinstance(report, RoundReport) and list(report.rejected) == [restarted.address]
    project = actors.owner.get_project(pid)
    left = actors.owner.trainer_info(pid, restarted.address).stake_left
    assert left == project.stake - project.stake * project.slash_bps // 10_000  # slashed once, for round 1

    lazy.source = FixedUpdate(kept * 0.9)  # a fresh update: a fresh row
    restarted.source = lazy.source
    nodes.append(restarted)
    for n in nodes:
        assert isinstance(n.step(pid), Committed)
    assert actors.owner.trainer_info(pid, restarted.address).stake_left == left
