"""Batched reveals on the nodes (issue 16, step 3 of docs/design/gas-per-trainer.md), on a real anvil and a real
IPFS node: trainers (``RevealVia.AGGREGATOR``) point their commit's note to an opening document that they add to
IPFS once the commit phase has closed on chain; the aggregator fetches and checks the documents and reveals
every trainer in one ``revealBatch``. A trainer that the batch did not reveal by half the reveal period reveals
itself; a trainer's node never releases its opening while commits are open, whatever its own clock says; a
malformed or forged opening is left out of the batch, never an error.
"""

# ruff: noqa: F811  (the fixture imported from tests.ipfs_fixtures is used as a test argument)

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from marketplace.adapters.chain.market import MarketClient, ProjectStatus
from marketplace.adapters.ipfs.cid import compute_cid
from marketplace.adapters.ipfs.errors import StorageError
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.manager import LocalIpfsNode
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.fl.models import build_model
from marketplace.protocol.opening import (
    MAX_OPENING_BYTES,
    InvalidOpening,
    OpeningDocument,
    note_with_pointer,
    split_note,
)
from marketplace.protocol.seal import derive_salt, seal, seal_note
from marketplace.roles.aggregator import AggregatorNode, RevealsBatched, RoundReport
from marketplace.roles.trainer import (
    Committed,
    OpeningTooEarly,
    RevealVia,
    StepOutcome,
    Submitted,
    TrainerNode,
)
from marketplace.round.openings import find_openings, opening_store
from tests.ipfs_fixtures import ipfs_node  # noqa: F401
from tests.market_fixtures import Actors, commitment_for
from tests.update_sources import FixedUpdate, agreeing_updates

N = 4


def store_of(ipfs_node: LocalIpfsNode) -> ModelStore:
    return ModelStore(IpfsClient(ipfs_node.api_url, timeout=10.0, retries=1))


def project(actors: Actors, store: ModelStore, n: int = N) -> int:
    initial = store.put_tensors(build_model("mlp", seed=1).state_dict(), {"kind": "model"})
    return actors.training_project(n, rounds=1, initial_model_cid=initial)


def trainer_nodes(actors: Actors, store: ModelStore, n: int = N, seed: int = 7) -> list[TrainerNode]:
    updates = agreeing_updates(n, seed)
    return [
        TrainerNode(t, store, FixedUpdate(u), reveal_via=RevealVia.AGGREGATOR)
        for t, u in zip(actors.trainers[:n], updates, strict=True)
    ]


def commit_all(nodes: list[TrainerNode], pid: int) -> None:
    for node in nodes:
        assert isinstance(node.step(pid), Committed)


def at_half_reveal(actors: Actors, pid: int, fraction: float = 0.5) -> None:
    """Moves the chain's clock to ``revealOpens + fraction * revealPeriod``."""
    deadlines, period = actors.owner.round_deadlines(pid), actors.owner.get_project(pid).reveal_period
    target = deadlines.reveal_opens + int(period * fraction)
    now = actors.chain.timestamp()
    if now < target:
        actors.chain.increase_time(target - now)


def finalize(aggregator: AggregatorNode, pid: int) -> RoundReport:
    report = aggregator.step(pid)
    assert isinstance(report, RoundReport), report
    assert aggregator.market.get_project(pid).status is ProjectStatus.FINISHED
    return report


def test_the_aggregator_reveals_every_trainer_in_one_batch_and_everyone_is_paid(
    actors: Actors, ipfs_node: LocalIpfsNode
) -> None:
    store = store_of(ipfs_node)
    pid = project(actors, store)
    nodes = trainer_nodes(actors, store)
    commit_all(nodes, pid)  # everyone committed: the commit phase is closed
    assert all(split_note(c.note)[0] is not None for c in actors.owner.commits(pid, 0))
    assert [n.step(pid) for n in nodes] == [StepOutcome.WAITING_FOR_AGGREGATOR] * N
    aggregator = AggregatorNode(actors.aggregator, store)
    batch = aggregator.reveal_openings(pid)
    assert isinstance(batch, RevealsBatched), batch
    assert batch.revealed == [n.address for n in nodes] and batch.missing == {}
    assert aggregator.reveal_openings(pid) is None  # once per round
    outcomes = [n.step(pid) for n in nodes]
    assert all(isinstance(o, Submitted) and o.revealed_by is RevealVia.AGGREGATOR for o in outcomes), outcomes
    assert [n.step(pid) for n in nodes] == [StepOutcome.ALREADY_SUBMITTED] * N
    report = finalize(aggregator, pid)
    assert report.rejected == {} and not any(report.flags) and all(s > 0 for s in report.chain_scores)
    assert all(actors.owner.trainer_info(pid, n.address).earned > 0 for n in nodes)
    reveals = [s.block_number for s in actors.owner.submissions(pid, 0)]
    assert len(set(reveals)) == 1  # one transaction revealed them all


def test_a_trainer_reports_the_batch_that_revealed_it_even_when_the_round_closed_before_it_looked(
    actors: Actors, ipfs_node: LocalIpfsNode
) -> None:
    """The aggregator batches and finalizes (here: the project's last round) between two steps of a trainer: the
    trainer still reports, once, that the batch revealed its update, then that the project ended."""
    store = store_of(ipfs_node)
    pid = project(actors, store)
    nodes = trainer_nodes(actors, store, seed=9)
    commit_all(nodes, pid)
    assert [n.step(pid) for n in nodes] == [StepOutcome.WAITING_FOR_AGGREGATOR] * N
    aggregator = AggregatorNode(actors.aggregator, store)
    assert isinstance(aggregator.reveal_openings(pid), RevealsBatched)
    finalize(aggregator, pid)
    outcomes = [n.step(pid) for n in nodes]
    assert all(isinstance(o, Submitted) and o.revealed_by is RevealVia.AGGREGATOR for o in outcomes), outcomes
    assert [n.step(pid) for n in nodes] == [StepOutcome.FINISHED] * N


def test_when_the_aggregator_withholds_the_batch_trainers_reveal_themselves_by_half_the_period(
    actors: Actors, ipfs_node: LocalIpfsNode
) -> None:
    store = store_of(ipfs_node)
    pid = project(actors, store)
    nodes = trainer_nodes(actors, store, seed=8)
    commit_all(nodes, pid)
    at_half_reveal(actors, pid, 0.5 - 10 / actors.owner.get_project(pid).reveal_period)  # 10 s before half
    assert [n.step(pid) for n in nodes] == [StepOutcome.WAITING_FOR_AGGREGATOR] * N
    at_half_reveal(actors, pid)
    outcomes = [n.step(pid) for n in nodes]
    assert all(isinstance(o, Submitted) and o.revealed_by is RevealVia.SELF for o in outcomes), outcomes
    aggregator = AggregatorNode(actors.aggregator, store)
    assert aggregator.reveal_openings(pid) is None  # too late for a batch: the trainers reveal themselves
    report = finalize(aggregator, pid)
    assert all(s > 0 for s in report.chain_scores) and not any(report.flags)
    assert all(actors.owner.trainer_info(pid, n.address).earned > 0 for n in nodes)


def test_a_trainer_never_publishes_its_opening_while_the_commit_phase_is_open(
    actors: Actors, ipfs_node: LocalIpfsNode
) -> None:
    store = store_of(ipfs_node)
    pid = project(actors, store, n=2)
    honest = trainer_nodes(actors, store, n=2, seed=172)[0]  # an update no other test pins
    opens_at = 0

    def lying_clock() -> int:  # says the reveal phase is open, while the chain says commits are
        return opens_at

    liar = TrainerNode(honest.market, store, honest.source, reveal_via=RevealVia.AGGREGATOR, now=lying_clock)
    assert isinstance(liar.step(pid), Committed)  # the other trainer has not committed: commits stay open
    opens_at = actors.owner.round_deadlines(pid).reveal_opens
    assert actors.chain.timestamp() < opens_at
    (commit,) = actors.owner.commits(pid, 0)
    pointer, _ = split_note(commit.note)
    assert pointer is not None
    assert liar.step(pid) is StepOutcome.WAITING_FOR_REVEAL  # its clock lies; the chain decides
    with pytest.raises(OpeningTooEarly):
        liar.publish_opening(pid, 0)
    with pytest.raises(StorageError):  # nobody can fetch it: the node never added it
        opening_store(store, fetch_seconds=1.0).get_bytes(pointer)
    actors.open_reveals(pid)  # the commit deadline passed: the phase is closed
    restarted = TrainerNode(honest.market, store, honest.source, reveal_via=RevealVia.AGGREGATOR)
    assert restarted.publish_opening(pid, 0) is True  # rebuilt from its note on chain: the same CID
    document = OpeningDocument.parse(opening_store(store).get_bytes(pointer))
    document.check(actors.owner.round_address(pid, 0), liar.address, commit.seal)


def forged_commit(market: MarketClient, store: ModelStore, pid: int, document: bytes) -> None:
    """``market``'s trainer commits a seal of its own, its note pointing to ``document`` (added to IPFS)."""
    where = market.round_address(pid, 0)
    commitment, cid = commitment_for(pid, 0, market.address), f"bafkreiforged{market.address[2:10].lower()}"
    salt = derive_salt(market.chain.account, where, commitment)
    pointer = store.put_bytes(document, name="opening.json")
    note = note_with_pointer(seal_note(market.chain.account, where, commitment, cid), pointer)
    market.commit_update(pid, 0, seal(commitment, cid, market.address, where, salt), note)


def test_a_malformed_or_forged_opening_is_left_out_of_the_batch(actors: Actors, ipfs_node: LocalIpfsNode) -> None:
    store = store_of(ipfs_node)
    pid = project(actors, store, n=N)
    nodes = trainer_nodes(actors, store, n=2, seed=9)
    commit_all(nodes, pid)
    malformed, forger = actors.trainers[2], actors.trainers[3]
    forged_commit(malformed, store, pid, b'{"kind": "marketplace.opening/1", "salt": [[[[]]]]}')
    where = forger.round_address(pid, 0)
    commitment = commitment_for(pid, 0, forger.address)
    cid = f"bafkreiforged{forger.address[2:10].lower()}"
    wrong_salt = OpeningDocument.of(where, forger.address, cid, commitment, b"\x01" * 32).to_bytes()
    forged_commit(forger, store, pid, wrong_salt)  # everyone committed: the commit phase is closed
    assert [n.step(pid) for n in nodes] == [StepOutcome.WAITING_FOR_AGGREGATOR] * 2
    aggregator = AggregatorNode(actors.aggregator, store)
    assert aggregator.reveal_openings(pid) is None  # some openings are missing: it waits a quarter period
    at_half_reveal(actors, pid, 0.25)
    batch = aggregator.reveal_openings(pid)
    assert isinstance(batch, RevealsBatched), batch
    assert batch.revealed == [n.address for n in nodes]
    assert set(batch.missing) == {malformed.address, forger.address}
    assert batch.missing[malformed.address].startswith("InvalidOpening"), batch.missing
    assert batch.missing[forger.address].startswith("OpeningMismatch"), batch.missing


@pytest.mark.parametrize(
    "raw",
    [
        b"x" * (MAX_OPENING_BYTES + 1),
        b"not json",
        b"[1, 2]",
        b'{"kind": "marketplace.opening/1"}',
        b'{"a": ' * 5 + b"1" + b"}" * 5,
    ],
)
def test_an_opening_document_is_parsed_strictly(raw: bytes) -> None:
    with pytest.raises(InvalidOpening):
        OpeningDocument.parse(raw)


def test_an_opening_document_refuses_extra_fields_and_loose_types() -> None:
    good = OpeningDocument(
        kind="marketplace.opening/1", chain_id=1, market="0x" + "11" * 20, project=1, round=0,
        trainer="0x" + "22" * 20, cid="bafkreiabc", commitment="0x" + "33" * 32, salt="0x" + "44" * 32,
    )  # fmt: skip
    data = json.loads(good.to_bytes())
    assert OpeningDocument.parse(good.to_bytes()) == good
    for change in ({"extra": 1}, {"project": "1"}, {"round": True}, {"cid": "ba fy"}, {"salt": "0x12"}):
        with pytest.raises(InvalidOpening):
            OpeningDocument.parse(json.dumps({**data, **change}).encode())
    assert compute_cid(good.to_bytes()) == compute_cid(OpeningDocument.parse(good.to_bytes()).to_bytes())
    assert split_note(b"\xa7\x01\xff" + b"x" * 10) == (None, b"\xa7\x01\xff" + b"x" * 10)
    assert split_note(note_with_pointer(b"n", "Qmabc")) == ("Qmabc", b"n")


class _BatchMinedFirst(MarketClient):
    """A trainer's market on which, just before its own reveal is sent, the aggregator's late reveal batch lands:
    the race at half the reveal period, where the trainer saw no reveal on chain and sends its own."""

    def __init__(self, market: MarketClient, batch: Callable[[], object]) -> None:
        super().__init__(market.chain, market.market, market.registry, market.lens)
        self.batch = batch

    def reveal_update(self, project_id: int, round_: int, cid: str, commitment: bytes, salt: bytes) -> Any:
        self.batch()
        return super().reveal_update(project_id, round_, cid, commitment, salt)


def test_a_trainer_whose_own_reveal_loses_the_race_to_a_late_batch_reports_the_batch(
    actors: Actors, ipfs_node: LocalIpfsNode
) -> None:
    """The batch and a trainer's own reveal (sent at half the reveal period) race: the batch is mined first, so the
    trainer's reveal reverts ``AlreadySubmitted``. The trainer reports that the batch revealed its commit (no
    error, no reveal gas); it is paid like the others."""
    store = store_of(ipfs_node)
    pid = project(actors, store)
    nodes = trainer_nodes(actors, store, seed=77)
    commit_all(nodes, pid)
    assert [n.step(pid) for n in nodes] == [StepOutcome.WAITING_FOR_AGGREGATOR] * N
    found = find_openings(actors.aggregator, opening_store(store), pid, 0)
    assert len(found.openings) == N  # the batch the aggregator sent before half the period, mined only now:
    late = TrainerNode(
        _BatchMinedFirst(nodes[0].market, lambda: actors.aggregator.reveal_batch(pid, 0, found.openings)),
        store,
        FixedUpdate(agreeing_updates(N, 77)[0]),
        reveal_via=RevealVia.AGGREGATOR,
    )  # the same trainer's node, restarted: it reads what it sealed from its note on chain
    at_half_reveal(actors, pid)
    outcome = late.step(pid)
    assert isinstance(outcome, Submitted) and outcome.revealed_by is RevealVia.AGGREGATOR, outcome
    assert outcome.commitment == actors.owner.commitment(pid, 0, late.address)
    assert len({s.block_number for s in actors.owner.submissions(pid, 0)}) == 1  # all revealed by the batch
    report = finalize(AggregatorNode(actors.aggregator, store), pid)
    assert all(s > 0 for s in report.chain_scores)
    assert actors.owner.trainer_info(pid, late.address).earned > 0
