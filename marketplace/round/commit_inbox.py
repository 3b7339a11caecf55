"""The aggregator's commit inbox: a small HTTP endpoint where trainers hand over their signed commits
(:mod:`marketplace.protocol.signed_commit`), so that the aggregator commits them all in one ``commitBatch``.

Why HTTP: a signed commit must reach the aggregator *before* anything is on chain (a reveal's opening is found
through the commit's note; a commit has nothing to be found through), across hosts. The embedded IPFS node
(Kubo 0.22 as a library, :mod:`marketplace.adapters.ipfs.kubo_embed`) exposes no pubsub, so the aggregator's
node serves one plain endpoint: ``POST /commits`` with one :class:`SignedCommitDocument` as JSON. Its URL is the
aggregator's to publish (``aggregator run --commit-inbox HOST:PORT`` prints it; ``trainer run --commit-via URL``).

The channel is untrusted both ways, and nothing depends on it:

- A signed commit is safe in anyone's hands (the seal hides the update; the note is the trainer's own cipher):
  plain HTTP is enough, and a copy can only commit what the trainer signed.
- Everything received is checked before it is held (:meth:`CommitInbox.accept`): at most
  :data:`MAX_SIGNED_COMMIT_BYTES` read, strict JSON, this market and chain, a project this account aggregates,
  its open round, a member that has not committed yet, a signature that recovers to that member. Anything else
  is answered with an HTTP error and a JSON ``{"error": ...}`` saying why, and held nowhere. At most one
  commit per trainer and round is held (a newer one replaces it, keeping its place in line): what the inbox
  holds is bounded by the members of the rounds it serves.
- The trainer never waits on the inbox for long (:func:`hand_over` times out) and commits itself when its commit
  is not on chain by half the commit period; the aggregator checks each held commit with an ``eth_call`` before
  batching it. A refused, lost or withheld signed commit costs the trainer its own commit's gas, never the round.
"""

from __future__ import annotations

import io
import ipaddress
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING

from eth_utils import to_checksum_address

from marketplace.adapters.chain.errors import ChainError, ContractRevert
from marketplace.adapters.chain.market import MarketClient, ProjectStatus
from marketplace.adapters.host_interfaces import IpAddress, IpInterface, dialable_addresses
from marketplace.protocol.signed_commit import (
    MAX_SIGNED_COMMIT_BYTES,
    InvalidSignedCommit,
    SignedCommit,
    SignedCommitDocument,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

#: Where the inbox takes signed commits.
INBOX_PATH = "/commits"
#: Seconds a trainer waits for the inbox's answer, and the inbox for a request's bytes.
HAND_OVER_SECONDS = 10.0
#: Requests checked against the chain at once; more are answered 503 at once (a flood costs the aggregator threads,
#: not memory). A request takes its slot once its body has arrived: a client sending slowly holds none.
MAX_CONCURRENT_REQUESTS = 16
#: Seconds a request may take to arrive whole (request line, headers and body), however it trickles in: a
#: connection past it is closed (attack review 16: 16 clients sending a byte every 9 s held every request slot,
#: and the inbox answered 503 to everyone, for hours).
REQUEST_SECONDS = HAND_OVER_SECONDS
_EMPTY = b"\0" * 32


class CommitRefused(ValueError):
    """A signed commit the inbox refuses; ``status`` is the HTTP status it answers (4xx: the commit's fault, it will
    be refused again; 5xx: the inbox's trouble, it may be accepted later)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class InboxUnavailable(ConnectionError):
    """The inbox did not answer (no server at the URL, a timeout, not an answer of this inbox)."""


class CommitInbox:
    """The signed commits handed to ``market``'s account as aggregator, held by project and round until batched.
    Thread-safe: the HTTP server's threads :meth:`accept`, the aggregator's loop reads :meth:`held` and
    :meth:`drop`s what it batched. It reads the chain through its own client (a copy of ``market``'s)."""

    def __init__(self, market: MarketClient) -> None:
        self.market = market.as_account(market.chain.account)
        self.aggregator = market.address
        self.chain_id = market.chain.chain_id
        self.market_address = to_checksum_address(market.market.address)
        self._lock = threading.Lock()
        self._held: dict[tuple[int, int], dict[str, SignedCommit]] = {}

    def accept(self, raw: bytes) -> SignedCommit:
        """Checks and holds the signed commit document in ``raw``; raises :class:`CommitRefused` saying why not (and
        :class:`ChainError` if the chain cannot be read: nothing is known about it then)."""
        try:
            document = SignedCommitDocument.parse(raw)
        except InvalidSignedCommit as exc:
            raise CommitRefused(400, f"not a signed commit: {exc}") from None
        if (document.chain_id, document.market) != (self.chain_id, self.market_address):
            raise CommitRefused(
                422, f"for market {document.market} on chain {document.chain_id}; this inbox takes commits for "
                f"{self.market_address} on chain {self.chain_id}"
            )  # fmt: skip
        pid, round_, trainer = document.project, document.round, document.trainer
        try:
            project = self.market.get_project(pid)
        except ContractRevert:
            raise CommitRefused(422, f"project {pid} does not exist") from None
        if project.aggregator != self.aggregator:
            raise CommitRefused(422, f"project {pid} is not aggregated by {self.aggregator}")
        if project.status is not ProjectStatus.TRAINING or round_ != project.current_round:
            raise CommitRefused(409, f"round {round_} of project {pid} is not open for commits")
        signed = document.signed_commit()
        if signed.signer(document.where) != trainer:
            raise CommitRefused(422, f"the signature is not {trainer}'s")
        if not self.market.trainer_info(pid, trainer).member:
            raise CommitRefused(422, f"{trainer} is not a trainer of project {pid}")
        if self.market.committed_seal(pid, round_, trainer) != _EMPTY:
            raise CommitRefused(409, f"{trainer} already committed in round {round_} of project {pid}")
        with self._lock:
            self._held.setdefault((pid, round_), {})[trainer] = signed
        return signed

    def held(self, project_id: int, round_: int) -> list[SignedCommit]:
        """The signed commits held for ``round_`` of ``project_id``, in the order their trainers first handed one."""
        with self._lock:
            return list(self._held.get((project_id, round_), {}).values())

    def drop(self, project_id: int, round_: int, trainers: Iterable[str]) -> None:
        """Forgets the signed commits of ``trainers`` in ``round_`` (batched, or useless), and every earlier round's."""
        with self._lock:
            for key in [k for k in self._held if k[0] == project_id and k[1] < round_]:
                del self._held[key]
            held = self._held.get((project_id, round_), {})
            for trainer in trainers:
                held.pop(trainer, None)


class _DeadlineReader(io.RawIOBase):
    """A connection's incoming bytes until ``deadline`` (``time.monotonic()``); each read past it raises
    :class:`TimeoutError`, which :class:`BaseHTTPRequestHandler` answers by closing the connection."""

    def __init__(self, connection: socket.socket, deadline: float) -> None:
        super().__init__()
        self._connection = connection
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the request took over {REQUEST_SECONDS:g} s to arrive")
        self._connection.settimeout(left)
        return self._connection.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    """``POST /commits``: one signed commit document; answers JSON (202 held, 4xx refused, 5xx try later). The
    request must arrive whole within :data:`REQUEST_SECONDS`."""

    server: InboxServer
    timeout = HAND_OVER_SECONDS  # per socket operation (the answer's writes)
    protocol_version = "HTTP/1.0"  # one request per connection

    def setup(self) -> None:
        super().setup()
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, time.monotonic() + REQUEST_SECONDS))

    def do_POST(self) -> None:
        if self.path != INBOX_PATH:
            return self._answer(404, {"error": f"signed commits are posted to {INBOX_PATH}"})
        length = self.headers.get("Content-Length", "")
        if not (length.isascii() and length.isdigit()):  # "²" is a digit to str.isdigit, not to int()
            return self._answer(411, {"error": "a Content-Length is required"})
        if int(length) > MAX_SIGNED_COMMIT_BYTES:
            return self._answer(413, {"error": f"a signed commit has at most {MAX_SIGNED_COMMIT_BYTES} bytes"})
        raw = self.rfile.read(int(length))  # before taking a slot: within the request's deadline
        if not self.server.slots.acquire(blocking=False):
            return self._answer(503, {"error": "busy: try again"})
        try:
            self._take(raw)
        finally:
            self.server.slots.release()

    def _take(self, raw: bytes) -> None:
        try:
            signed = self.server.inbox.accept(raw)
        except CommitRefused as exc:
            return self._answer(exc.status, {"error": exc.reason})
        except ChainError:
            return self._answer(503, {"error": "the aggregator cannot read its chain now: try again"})
        self._answer(202, {"held": signed.trainer})

    def do_GET(self) -> None:
        self._answer(405, {"error": f"POST a signed commit to {INBOX_PATH}"})

    do_PUT = do_DELETE = do_PATCH = do_GET

    def _answer(self, status: int, body: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # refusals are answered to their sender; the aggregator reports what it batches


class InboxServer(ThreadingHTTPServer):
    """``inbox`` served over HTTP on ``host:port`` (port 0: a free one) in a background thread, from construction
    until :meth:`close` (or the end of a ``with`` block). ``host`` is an IPv4 or IPv6 address (or a name of an IPv4
    one); ``0.0.0.0`` or ``::`` serves every address of this host. :meth:`urls` are what trainers are given."""

    daemon_threads = True

    def __init__(self, inbox: CommitInbox, host: str = "127.0.0.1", port: int = 0) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)
        self.inbox = inbox
        self.slots = threading.BoundedSemaphore(MAX_CONCURRENT_REQUESTS)
        self._thread = threading.Thread(target=self.serve_forever, name="commit-inbox", daemon=True)
        self._thread.start()

    @property
    def bound(self) -> IpAddress:
        """The address the inbox listens on (unspecified: every address of this host)."""
        return ipaddress.ip_address(str(self.server_address[0]))

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        """The inbox's URL on the address it listens on; this machine's loopback one if it listens on every
        address (:meth:`urls` lists the others)."""
        loopback = ipaddress.ip_address("::1" if self.bound.version == 6 else "127.0.0.1")
        return inbox_url(loopback if self.bound.is_unspecified else self.bound, self.port)

    def addresses(self, interfaces: Sequence[IpInterface] | None = None) -> list[IpAddress]:
        """The addresses trainers may dial the inbox at (:func:`dialable_addresses` of this host's ``interfaces``,
        default its own): the one it listens on, or for an inbox on every address each of this host's, loopback
        last."""
        v6only = self.bound.version == 4 or self.socket.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
        return dialable_addresses(self.bound, interfaces, dual_stack=not v6only)

    def urls(self, interfaces: Sequence[IpInterface] | None = None) -> list[str]:
        """The URLs of :meth:`addresses`: what trainers are given (``trainer run --commit-via URL``)."""
        return [inbox_url(address, self.port) for address in self.addresses(interfaces)]

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join()

    def __enter__(self) -> InboxServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def inbox_url(address: IpAddress, port: int) -> str:
    """The URL of an inbox on ``address:port`` (an IPv6 address in brackets)."""
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{host}:{port}{INBOX_PATH}"


def hand_over(url: str, document: SignedCommitDocument, timeout: float = HAND_OVER_SECONDS) -> None:
    """Posts ``document`` to the commit inbox at ``url``. Raises :class:`CommitRefused` (the inbox's answer: 4xx,
    or 5xx) or :class:`InboxUnavailable` (no answer of an inbox)."""
    if not url.startswith(("http://", "https://")):
        raise InboxUnavailable(f"a commit inbox is an http(s) URL, not {url[:100]!r}")
    request = urllib.request.Request(
        url, data=document.to_bytes(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read(4096)
    except urllib.error.HTTPError as exc:
        try:
            reason = str(json.loads(exc.read(4096))["error"])
        except (ValueError, KeyError, TypeError):
            raise InboxUnavailable(f"{url} answered {exc.code}, not as a commit inbox") from None
        raise CommitRefused(exc.code, reason) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:  # refused, unreachable, timeout, a bad URL
        raise InboxUnavailable(f"no commit inbox at {url}: {exc}") from None
