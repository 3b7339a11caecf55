"""Batched signed commits on the nodes (issue 16, step 4 of docs/design/gas-per-trainer.md), on a real anvil, a real
IPFS node and a real HTTP inbox on 127.0.0.1: trainers given the aggregator's commit inbox sign their commits
(EIP-712) and hand them over; the aggregator checks each with an ``eth_call`` and commits them all in one
``commitBatch``; with batched reveals too, the round finalizes and pays everyone. A trainer whose commit is not on
chain by half the commit period (the chain's clock) commits itself; an inbox that refuses or does not answer makes
it commit itself at once; the inbox refuses garbage with a clear error and holds nothing of it.
"""

# ruff: noqa: F811  (the fixture imported from tests.ipfs_fixtures is used as a test argument)

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from dataclasses import replace

import pytest

from marketplace.adapters.chain.market import MarketClient, ProjectStatus
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.manager import LocalIpfsNode
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.fl.models import build_model
from marketplace.protocol.signed_commit import (
    MAX_SIGNED_COMMIT_BYTES,
    InvalidSignedCommit,
    SignedCommitDocument,
    sign_commit,
)
from marketplace.roles.aggregator import AggregatorNode, CommitsBatched, RevealsBatched, RoundReport
from marketplace.roles.trainer import Committed, CommitVia, RevealVia, StepOutcome, Submitted, TrainerNode
from marketplace.round.commit_inbox import INBOX_PATH, CommitInbox, CommitRefused, InboxServer, hand_over
from tests.ipfs_fixtures import ipfs_node  # noqa: F401
from tests.market_fixtures import Actors, cid_for, commit, commitment_for, own_seal
from tests.update_sources import FixedUpdate, agreeing_updates

N = 4


@pytest.fixture
def inbox(actors: Actors) -> Iterator[InboxServer]:
    """The aggregator's commit inbox, served on 127.0.0.1 (a free port)."""
    with InboxServer(CommitInbox(actors.aggregator)) as server:
        yield server


def store_of(ipfs_node: LocalIpfsNode) -> ModelStore:
    return ModelStore(IpfsClient(ipfs_node.api_url, timeout=10.0, retries=1))


def project(actors: Actors, store: ModelStore, n: int = N) -> int:
    initial = store.put_tensors(build_model("mlp", seed=1).state_dict(), {"kind": "model"})
    return actors.training_project(n, rounds=1, initial_model_cid=initial)


def trainer_nodes(actors: Actors, store: ModelStore, inbox_url: str, n: int = N, seed: int = 21) -> list[TrainerNode]:
    return [
        TrainerNode(t, store, FixedUpdate(u), reveal_via=RevealVia.AGGREGATOR, commit_inbox=inbox_url)
        for t, u in zip(actors.trainers[:n], agreeing_updates(n, seed), strict=True)
    ]


def at_commit_fraction(actors: Actors, pid: int, fraction: float) -> None:
    """Moves the chain's clock to ``roundStart + fraction * submissionPeriod``."""
    p = actors.owner.get_project(pid)
    target = p.round_start + int(p.submission_period * fraction)
    now = actors.chain.timestamp()
    if now < target:
        actors.chain.increase_time(target - now)


def reveal_in_batch_and_finalize(
    actors: Actors, aggregator: AggregatorNode, nodes: list[TrainerNode], pid: int
) -> None:
    assert [n.step(pid) for n in nodes] == [StepOutcome.WAITING_FOR_AGGREGATOR] * len(nodes)
    reveals = aggregator.reveal_openings(pid)
    assert isinstance(reveals, RevealsBatched) and reveals.revealed == [n.address for n in nodes], reveals
    outcomes = [n.step(pid) for n in nodes]
    assert all(isinstance(o, Submitted) and o.revealed_by is RevealVia.AGGREGATOR for o in outcomes), outcomes
    report = aggregator.step(pid)
    assert isinstance(report, RoundReport), report
    assert actors.owner.get_project(pid).status is ProjectStatus.FINISHED
    assert report.rejected == {} and not any(report.flags) and all(s > 0 for s in report.chain_scores)
    assert all(actors.owner.trainer_info(pid, n.address).earned > 0 for n in nodes)


def test_a_round_with_batched_commits_and_batched_reveals_finalizes_and_pays(
    actors: Actors, ipfs_node: LocalIpfsNode, inbox: InboxServer
) -> None:
    store = store_of(ipfs_node)
    pid = project(actors, store)
    nodes = trainer_nodes(actors, store, inbox.url)
    assert [n.step(pid) for n in nodes] == [StepOutcome.WAITING_FOR_COMMIT_BATCH] * N
    assert actors.owner.commits(pid, 0) == []  # handed over: nothing on chain, no update published
    aggregator = AggregatorNode(actors.aggregator, store, commit_inbox=inbox.inbox)
    batch = aggregator.commit_signed(pid)  # it holds every trainer's: no need to wait
    assert isinstance(batch, CommitsBatched), batch
    assert batch.committed == [n.address for n in nodes] and batch.dropped == []
    assert aggregator.commit_signed(pid) is None  # nothing left to batch
    assert len({c.block_number for c in actors.owner.commits(pid, 0)}) == 1  # one transaction
    outcomes = [n.step(pid) for n in nodes]
    assert all(isinstance(o, Committed) and o.committed_by is CommitVia.AGGREGATOR for o in outcomes), outcomes
    assert all(isinstance(o, Committed) and o.gas_used == 0 for o in outcomes)
    reveal_in_batch_and_finalize(actors, aggregator, nodes, pid)


def test_when_the_aggregator_withholds_the_batch_a_trainer_commits_itself_by_half_the_commit_period(
    actors: Actors, ipfs_node: LocalIpfsNode, inbox: InboxServer
) -> None:
    store = store_of(ipfs_node)
    pid = project(actors, store)
    nodes = trainer_nodes(actors, store, inbox.url, seed=22)
    assert [n.step(pid) for n in nodes] == [StepOutcome.WAITING_FOR_COMMIT_BATCH] * N
    period = actors.owner.get_project(pid).submission_period
    at_commit_fraction(actors, pid, 0.5 - 10 / period)  # 10 s before half
    assert [n.step(pid) for n in nodes] == [StepOutcome.WAITING_FOR_COMMIT_BATCH] * N
    at_commit_fraction(actors, pid, 0.5)
    outcomes = [n.step(pid) for n in nodes]
    assert all(isinstance(o, Committed) and o.committed_by is CommitVia.SELF and o.gas_used > 0 for o in outcomes)
    aggregator = AggregatorNode(actors.aggregator, store, commit_inbox=inbox.inbox)
    assert aggregator.commit_signed(pid) is None  # too late for a batch, and everyone committed
    assert inbox.inbox.held(pid, 0) == []
    reveal_in_batch_and_finalize(actors, aggregator, nodes, pid)


def test_the_aggregator_checks_each_held_commit_and_batches_only_those_that_land(
    actors: Actors, ipfs_node: LocalIpfsNode, inbox: InboxServer
) -> None:
    """Two trainers hand over; one of them then commits itself (as after half the period): at a quarter of the
    period the aggregator's ``eth_call`` finds that commit would not land and batches the other one only."""
    store = store_of(ipfs_node)
    pid = project(actors, store)
    nodes = trainer_nodes(actors, store, inbox.url, seed=23)[:2]
    assert [n.step(pid) for n in nodes] == [StepOutcome.WAITING_FOR_COMMIT_BATCH] * 2
    (held_first, _) = inbox.inbox.held(pid, 0)
    nodes[0].market.commit_update(pid, 0, held_first.seal, held_first.note)  # its own commit of the same seal
    aggregator = AggregatorNode(actors.aggregator, store, commit_inbox=inbox.inbox)
    assert aggregator.commit_signed(pid) is None  # two trainers have handed nothing in yet: it waits
    at_commit_fraction(actors, pid, 0.25)
    batch = aggregator.commit_signed(pid)
    assert isinstance(batch, CommitsBatched), batch
    assert batch.committed == [nodes[1].address] and batch.dropped == [nodes[0].address]
    assert inbox.inbox.held(pid, 0) == []
    outcomes = [n.step(pid) for n in nodes]
    assert all(isinstance(o, Committed) for o in outcomes), outcomes
    assert [o.committed_by for o in outcomes if isinstance(o, Committed)] == [CommitVia.AGGREGATOR] * 2


def test_an_inbox_that_does_not_answer_makes_the_trainer_commit_itself_at_once(
    actors: Actors, ipfs_node: LocalIpfsNode
) -> None:
    store = store_of(ipfs_node)
    pid = project(actors, store, n=2)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}{INBOX_PATH}"
    (node, _) = trainer_nodes(actors, store, closed, n=2, seed=24)
    outcome = node.step(pid)
    assert isinstance(outcome, Committed) and outcome.committed_by is CommitVia.SELF and outcome.gas_used > 0
    assert "no commit inbox" in outcome.handover_error
    assert actors.owner.committed_seal(pid, 0, node.address) != b"\0" * 32


def _post(
    url: str, body: bytes, *, path: str = INBOX_PATH, method: str = "POST", length: bool = True
) -> tuple[int, str]:
    """Sends ``body`` raw to the inbox at ``url`` (optionally without a Content-Length); its status and error."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.putrequest(method, path)
        if length:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        if length:
            connection.send(body)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read()).get("error", "")
    finally:
        connection.close()


def test_the_inbox_refuses_garbage_with_a_clear_error_and_holds_nothing(actors: Actors, inbox: InboxServer) -> None:
    pid = actors.training_project(N)
    trainers = actors.trainers[:N]
    where = trainers[0].round_address(pid, 0)

    def document(
        t: MarketClient = trainers[0], by: MarketClient | None = None, round_: int = 0, project: int = pid
    ) -> SignedCommitDocument:
        """``t``'s signed commit of its test submission, signed by ``by`` (default: ``t``)."""
        at = t.round_address(project, round_)
        seal = own_seal(
            t, project, round_, cid_for(project, round_, t.address), commitment_for(project, round_, t.address)
        )
        signed = sign_commit((by or t).chain.account, at, seal, b"note")
        return SignedCommitDocument.of(at, replace(signed, trainer=t.address))

    good = document()
    foreign_market = good.model_copy(update={"market": actors.owner.registry.address})
    other_chain = good.model_copy(update={"chain_id": 1})
    commit(trainers[3], pid, 0, cid_for(pid, 0, trainers[3].address), commitment_for(pid, 0, trainers[3].address))
    not_aggregated = actors.create(aggregator=actors.stranger.address)
    cases: list[tuple[bytes, int, str]] = [
        (b"x" * (MAX_SIGNED_COMMIT_BYTES + 1), 413, "at most"),
        (b"not json", 400, "not a signed commit"),
        (b"[1, 2]", 400, "not a JSON object"),
        (b'{"kind": "marketplace.signed-commit/1"}', 400, "not a signed commit"),
        (b'{"a": ' * 5 + b"1" + b"}" * 5, 400, "not a signed commit"),
        (foreign_market.to_bytes(), 422, "this inbox takes commits for"),
        (other_chain.to_bytes(), 422, "this inbox takes commits for"),
        (document(project=pid + 1_000).to_bytes(), 422, "does not exist"),
        (document(project=not_aggregated).to_bytes(), 422, "is not aggregated by"),
        (document(round_=1).to_bytes(), 409, "is not open for commits"),
        (document(trainers[1], by=trainers[2]).to_bytes(), 422, "the signature is not"),
        (document(actors.stranger).to_bytes(), 422, "is not a trainer of project"),
        (document(trainers[3]).to_bytes(), 409, "already committed"),
    ]
    for raw, status, error in cases:
        answer = _post(inbox.url, raw)
        assert answer[0] == status and error in answer[1], (raw[:80], answer)
        with pytest.raises(CommitRefused, match=error):
            inbox.inbox.accept(raw)
    assert _post(inbox.url, b"{}", length=False)[0] == 411
    assert _post(inbox.url, good.to_bytes(), path="/other")[0] == 404
    assert _post(inbox.url, b"", method="GET", length=False)[0] == 405
    assert inbox.inbox.held(pid, 0) == [] and inbox.inbox.held(not_aggregated, 0) == []
    hand_over(inbox.url, good)  # the inbox still serves, and takes a good one
    assert [c.trainer for c in inbox.inbox.held(pid, 0)] == [trainers[0].address]
    assert where == good.where


@pytest.mark.parametrize(
    "raw",
    [
        b"x" * (MAX_SIGNED_COMMIT_BYTES + 1),
        b'{"kind": "marketplace.signed-commit/1", "extra": 1}',
        b'{"kind": "marketplace.signed-commit/1", "chain_id": "1"}',
    ],
)
def test_a_signed_commit_document_is_parsed_strictly(raw: bytes) -> None:
    with pytest.raises(InvalidSignedCommit):
        SignedCommitDocument.parse(raw)
