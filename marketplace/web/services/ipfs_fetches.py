"""IPFS fetches that visitors' requests start: a round's model and proof document (the downloads) and the revealed
updates its flag causes are recomputed from. A visitor chooses what is fetched, and the server's IPFS node may be
the aggregator's, whose swarm-fetch slots (16) are shared: a CID nobody serves holds one until the fetch times out.
So these fetches are bounded (attack review of issue 14, finding 1):

* **cached**: the content at a CID never changes, so an object once fetched (and checked against its CID) is kept
  by CID, ``cache_bytes`` in all (the least recently used go first), and served again without asking the node;
  a fetch that failed is remembered for ``failure_ttl`` seconds, and asking for it again within that time is
  answered from memory (:class:`~marketplace.web.services.errors.Unavailable`, 503, ``Retry-After``: the seconds
  left) without asking the node;
* **few at once**: at most ``total`` fetches run for all visitors together and ``per_client`` for one client
  (:func:`~marketplace.web.services.client_keys.client_key`); a request beyond is answered at once with
  :class:`Unavailable` (503) saying in how many seconds the first running fetch will have given up
  (``Retry-After``);
* **short**: a fetch searches the swarm for ``timeout`` seconds at most (sent as Kubo's ``timeout`` option, which
  the node obeys instead of its own 30 s), so a slot is held that long at most, plus the node's answer.

What this does not bound: a fetch the node gave up on is *abandoned* there, not ended (the embedded node cannot
cancel a download), and keeps its slot until the node restarts Kubo, which it does once more than 4 are abandoned
(:mod:`marketplace.adapters.ipfs.fetch`). Visitors' fetches thus hold ``total`` running and up to 4 abandoned slots
of the node's 16 (for an instant ``total`` more abandoned, until the node's monitor restarts Kubo), and visitors
asking for ever new CIDs nobody serves make the node restart about every ``ceil(5 / total)`` times ``timeout``
seconds (measured, 8 visitors at it: 3 restarts in 80 s with 3 and 10 s, 6 in 60 s with 3 and 5 s).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator

from marketplace.adapters.ipfs.cid import normalize_cid
from marketplace.adapters.ipfs.errors import StorageError
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.web.services.errors import Unavailable

NO_NODE = "this server has no IPFS node to fetch from"
#: Failures remembered at most (the oldest are forgotten first).
MAX_FAILURES = 4096


def _seconds(value: float) -> int:
    """Whole seconds, rounded up, at least 1 (a ``Retry-After``)."""
    return max(1, math.ceil(value))


class FailureMemory:
    """Failures remembered for ``ttl`` seconds each, by key (at most :data:`MAX_FAILURES`, the oldest forgotten
    first); ``ttl`` 0 remembers nothing."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._failures: OrderedDict[Hashable, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, key: Hashable, reason: str) -> None:
        """``reason`` is why ``key`` failed, now."""
        if self.ttl <= 0:
            return
        with self._lock:
            self._failures.pop(key, None)
            self._failures[key] = (self.clock(), reason)
            while len(self._failures) > MAX_FAILURES:
                self._failures.popitem(last=False)

    def recall(self, key: Hashable) -> tuple[str, int, int] | None:
        """Why ``key`` failed, how many seconds ago and in how many it may be tried again; None when it did not
        fail within the last ``ttl`` seconds."""
        with self._lock:
            found = self._failures.get(key)
            if found is None:
                return None
            at, reason = found
            age = self.clock() - at
            if age >= self.ttl:
                del self._failures[key]
                return None
            return reason, int(age), _seconds(self.ttl - age)


class ObjectCache:
    """Objects by CID, ``max_bytes`` in all (the least recently used are forgotten first; a larger object is not
    kept)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._objects: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, cid: str) -> bytes | None:
        with self._lock:
            data = self._objects.get(cid)
            if data is not None:
                self._objects.move_to_end(cid)
            return data

    def keep(self, cid: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            old = self._objects.pop(cid, None)
            self.size -= len(old) if old is not None else 0
            while self._objects and self.size + len(data) > self.max_bytes:
                self.size -= len(self._objects.popitem(last=False)[1])
            self._objects[cid] = data
            self.size += len(data)


class FetchSlots:
    """At most ``total`` fetches at once, ``per_client`` for one client; each expected to end within ``hold``
    seconds (what ``Retry-After`` is computed from)."""

    def __init__(self, total: int, per_client: int, hold: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.per_client = per_client
        self.hold = hold
        self.clock = clock
        self._running: dict[object, tuple[str, float]] = {}
        self._lock = threading.Lock()

    @property
    def running(self) -> int:
        """Fetches running now."""
        with self._lock:
            return len(self._running)

    @contextlib.contextmanager
    def take(self, client: str) -> Iterator[None]:
        """One slot for ``client`` while the block runs; :class:`Unavailable` (with ``retry_after``) at once when
        none is free."""
        token = object()
        with self._lock:
            now = self.clock()
            mine = [started for who, started in self._running.values() if who == client]
            if len(mine) >= self.per_client:
                wait = _seconds(min(mine) + self.hold - now)
                raise Unavailable(
                    f"This server runs at most {self.per_client} IPFS fetch(es) at a time for one visitor, and yours "
                    f"is still running: try again in {wait} seconds.",
                    wait,
                )
            if len(self._running) >= self.total:
                wait = _seconds(min(started for _, started in self._running.values()) + self.hold - now)
                raise Unavailable(
                    f"This server runs at most {self.total} IPFS fetches at a time for its visitors, and that many "
                    f"are running: try again in {wait} seconds.",
                    wait,
                )
            self._running[token] = (client, now)
        try:
            yield
        finally:
            with self._lock:
                del self._running[token]


class WebFetches:
    """The IPFS fetches of web requests on the node at ``ipfs_api`` (None: there is none), bounded as the module
    docstring says."""

    def __init__(
        self,
        ipfs_api: str | None,
        *,
        total: int = 3,
        per_client: int = 1,
        timeout: float = 10.0,
        failure_ttl: float = 60.0,
        cache_bytes: int = 128 << 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ipfs_api = ipfs_api
        self.timeout = timeout
        self.slots = FetchSlots(total, per_client, timeout, clock)
        self.failures = FailureMemory(failure_ttl, clock)
        self.objects = ObjectCache(cache_bytes)

    def client(self) -> IpfsClient:
        """A client of the node whose fetches search the swarm ``timeout`` seconds at most, asked once."""
        if self.ipfs_api is None:
            raise Unavailable(f"{NO_NODE[:1].upper()}{NO_NODE[1:]}.")
        return IpfsClient(self.ipfs_api, timeout=self.timeout, fetch_timeout=self.timeout, retries=0)

    def slot(self, client: str) -> contextlib.AbstractContextManager[None]:
        """A fetch slot for ``client`` (see :meth:`FetchSlots.take`), for work that fetches several objects."""
        return self.slots.take(client)

    def get_bytes(self, cid: str, max_bytes: int, client: str) -> bytes:
        """The object at ``cid`` (at most ``max_bytes``, checked against the CID) for ``client``: from memory, or
        fetched within the limits. :class:`Unavailable` (503) when there is no node, when the fetch fails or failed
        less than ``failure_ttl`` seconds ago (``retry_after``: when it will be asked again) and when no slot is free
        (``retry_after``: when the first running fetch will have given up)."""
        if self.ipfs_api is None:
            raise Unavailable(f"{NO_NODE[:1].upper()}{NO_NODE[1:]}.")
        with contextlib.suppress(StorageError):  # one key per object, however its CID is written (a malformed
            cid = normalize_cid(cid)  # one fails below, remembered as it is)
        data = self.objects.get(cid)
        if data is not None and len(data) <= max_bytes:
            return data
        key = (cid, max_bytes)
        recalled = self.failures.recall(key)
        if recalled is not None:
            reason, age, left = recalled
            raise Unavailable(
                f"The IPFS node did not deliver {cid} {age} seconds ago ({reason}); this server asks it again in "
                f"{left} seconds.",
                left,
            )
        with self.slot(client), self.client() as ipfs:
            try:
                data = ModelStore(ipfs).get_bytes(cid, max_bytes=max_bytes)
            except StorageError as exc:
                reason = f"{type(exc).__name__}: {exc}"
                self.failures.remember(key, reason)
                ttl = self.failures.ttl
                again = f"; this server asks it again in {_seconds(ttl)} seconds" if ttl > 0 else ""
                raise Unavailable(
                    f"The IPFS node did not deliver {cid} ({reason}){again}.", _seconds(ttl) if ttl > 0 else None
                ) from None
        self.objects.keep(cid, data)
        return data
