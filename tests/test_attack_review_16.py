"""Attack review of issue 16 (batched commits, batched reveals, the commit inbox), on a real anvil, a real IPFS node
and the real HTTP inbox on 127.0.0.1. Each test is an attack found by the review: it fails without its fix.

- A signed commit stays valid until its round closes, and a trainer restarted after handing one over may sign
  another one (an envelope's random nonce, or training that is not bit-for-bit repeatable, changes its seal):
  whoever holds the first (the aggregator, anyone on the inbox's path) may commit it. The trainer then reveals
  the commit that landed (its note on chain says what it sealed), never the one it handed over last.
- A signature ``ecrecover`` refuses (``v`` other than 27 or 28: eth_account recovers ``v`` = 0, 1, 35-38 too) is
  refused by the inbox: else anyone holding a trainer's signed commit replaces it in the inbox with a twin that
  never lands, and the trainer, told its commit is held, waits until half the commit period to commit itself.
- A client that sends its body slowly holds no request slot: 16 such clients made the inbox answer 503 to everyone
  for hours (a body of 2,048 bytes at one byte per 9 s); the body is now read within one deadline, before a slot is
  taken; a ``Content-Length`` of Unicode digits (``"²"``) is answered 411 (the handler died without an answer).
"""

# ruff: noqa: F811  (the fixture imported from tests.ipfs_fixtures is used as a test argument)

from __future__ import annotations

import select
import socket
import time
from dataclasses import replace

from marketplace.adapters.ipfs.manager import LocalIpfsNode
from marketplace.protocol.signed_commit import SignedCommitDocument, sign_commit
from marketplace.roles.trainer import StepOutcome, Submitted, TrainerNode
from marketplace.round.commit_inbox import HAND_OVER_SECONDS, MAX_CONCURRENT_REQUESTS, InboxServer, hand_over
from tests.ipfs_fixtures import ipfs_node  # noqa: F401
from tests.market_fixtures import Actors
from tests.test_batched_commit_nodes import _post, at_commit_fraction, inbox, project, store_of  # noqa: F401
from tests.update_sources import FixedUpdate, agreeing_updates

EMPTY = b"\0" * 32


def test_a_trainer_restarted_after_handing_over_reveals_the_commit_that_landed(
    actors: Actors, ipfs_node: LocalIpfsNode, inbox: InboxServer
) -> None:
    """The trainer hands over S1, restarts (its memory gone), makes another update and hands over S2 (the inbox
    replaces S1 with it); a stranger holding S1 commits it with ``commitBatch``. The restarted trainer must reveal
    S1, whose note it can open, not S2: before the fix it took S2 for committed, and its reveal reverted
    ``SealMismatch`` until the reveal deadline (a missed reveal: flagged and slashed)."""
    store = store_of(ipfs_node)
    pid = project(actors, store, n=2)
    first_update, second_update, other = agreeing_updates(3, seed=161)
    trainer, peer = actors.trainers[:2]
    before = TrainerNode(trainer, store, FixedUpdate(first_update), commit_inbox=inbox.url)
    assert before.step(pid) is StepOutcome.WAITING_FOR_COMMIT_BATCH
    (first,) = inbox.inbox.held(pid, 0)
    after = TrainerNode(trainer, store, FixedUpdate(second_update), commit_inbox=inbox.url)  # the restarted node
    assert after.step(pid) is StepOutcome.WAITING_FOR_COMMIT_BATCH
    (second,) = inbox.inbox.held(pid, 0)
    assert second.seal != first.seal
    actors.stranger.commit_batch(pid, 0, [first])  # valid until the round closes: anyone may commit it
    assert actors.owner.committed_seal(pid, 0, trainer.address) == first.seal
    outcome = after.step(pid)
    assert outcome is StepOutcome.COMMITTED_ELSEWHERE, outcome
    assert TrainerNode(peer, store, FixedUpdate(other)).step(pid) is not None  # the last commit closes the phase
    actors.chain.increase_time(1)
    revealed = after.step(pid)
    assert isinstance(revealed, Submitted), revealed
    (mine,) = [s for s in actors.owner.submissions(pid, 0) if s.trainer == trainer.address]
    assert actors.owner.commitment(pid, 0, trainer.address) == revealed.commitment != EMPTY
    assert mine.cid == revealed.cid
    assert actors.owner.committed_seal(pid, 0, trainer.address) == first.seal  # S1's opening, from S1's note


def test_the_inbox_refuses_a_signature_twin_that_ecrecover_would_not_recover(
    actors: Actors, ipfs_node: LocalIpfsNode, inbox: InboxServer
) -> None:
    """A trainer's signed commit with ``v`` = 0 (or 35, 36, ...) recovers to the trainer in eth_account but to
    nobody in ``commitBatch``. Posted by anyone who saw the original, it replaced the original in the inbox (same
    trainer): the batch dropped it and the trainer, told 202, paid its own commit at half the period."""
    store = store_of(ipfs_node)
    pid = project(actors, store, n=2)
    (update,) = agreeing_updates(1, seed=162)
    node = TrainerNode(actors.trainers[0], store, FixedUpdate(update), commit_inbox=inbox.url)
    assert node.step(pid) is StepOutcome.WAITING_FOR_COMMIT_BATCH
    (good,) = inbox.inbox.held(pid, 0)
    where = actors.owner.round_address(pid, 0)
    for v in {good.v - 27, good.v + 8, good.v + 10}:  # the parities eth_account maps to good.v
        twin = replace(good, v=v)
        assert not actors.owner.commit_would_land(pid, 0, twin)
        status, error = _post(inbox.url, SignedCommitDocument.of(where, twin).to_bytes())
        assert status == 422 and "signature" in error, (v, status, error)
    assert inbox.inbox.held(pid, 0) == [good]
    assert actors.owner.commit_would_land(pid, 0, good)


def _slow_client(url: str, length: int) -> socket.socket:
    """A connection that sent its headers (a ``Content-Length`` of ``length``) and one byte of the body."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(f"POST /commits HTTP/1.0\r\nContent-Length: {length}\r\n\r\n{{".encode())
    return s


def test_clients_sending_their_body_slowly_do_not_hold_the_inbox(actors: Actors, inbox: InboxServer) -> None:
    """``MAX_CONCURRENT_REQUESTS`` clients send headers and then their body at a byte per few seconds (each byte
    within the socket timeout): the inbox still answers others at once, and each slow client is cut off once its
    request has taken longer than the deadline."""
    pid = actors.training_project(2)
    trainer = actors.trainers[0]
    where = trainer.round_address(pid, 0)
    document = SignedCommitDocument.of(where, sign_commit(trainer.chain.account, where, b"\x01" * 32, b"note"))
    slow = [_slow_client(inbox.url, 2000) for _ in range(MAX_CONCURRENT_REQUESTS)]
    try:
        time.sleep(1.0)
        hand_over(inbox.url, document)  # answered (202, not 503) while they are connected
        assert [c.trainer for c in inbox.inbox.held(pid, 0)] == [trainer.address]
        started, cut = time.monotonic(), set()
        while len(cut) < len(slow) and time.monotonic() - started < 2 * HAND_OVER_SECONDS + 15:
            for i, s in enumerate(slow):
                if i in cut:
                    continue
                readable, _, _ = select.select([s], [], [], 0)
                if readable:  # the inbox answered (408) or closed the connection
                    cut.add(i)
                    continue
                s.sendall(b" ")  # a byte each, well within the per-operation timeout
            time.sleep(2.0)
        assert len(cut) == len(slow), f"{len(slow) - len(cut)} slow clients still connected"
    finally:
        for s in slow:
            s.close()


def test_a_content_length_of_unicode_digits_is_answered_411(inbox: InboxServer) -> None:
    """``"²".isdigit()`` is True and ``int("²")`` raises: the handler died without an answer (a traceback on the
    aggregator's stderr per request) instead of answering 411."""
    host, port = inbox.url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall("POST /commits HTTP/1.0\r\nContent-Length: \u00b2\r\n\r\n".encode("latin-1"))
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.0 411"), answer[:80]
