"""A thin typed client of the Kubo RPC API (``/api/v0``), on httpx.

Works with the project's local node (:mod:`marketplace.adapters.ipfs.node`) and with a user's own
Kubo ``ipfs daemon``: point it at the daemon's RPC URL (``http://127.0.0.1:5001``, or the
multiaddr form ``/ip4/127.0.0.1/tcp/5001`` from Kubo's config). Failures to connect are retried
with exponential backoff; a node that stops answering is not (:class:`IpfsTimeout` at once). Reads
that may have to wait for the swarm (``cat``, ``pin/add``) pass Kubo's ``timeout`` option, so a
CID nobody serves comes back as :class:`ContentUnavailable` after ``fetch_timeout`` seconds. Every
failure surfaces as an :class:`~marketplace.adapters.ipfs.errors.IpfsError` (or :class:`ObjectTooLarge`).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import httpx

from marketplace.adapters.ipfs.cid import normalize_cid
from marketplace.adapters.ipfs.errors import (
    ContentUnavailable,
    IpfsApiError,
    IpfsConnectionError,
    IpfsError,
    IpfsTimeout,
    NodeBusy,
    ObjectTooLarge,
    StorageError,
)
from marketplace.adapters.ipfs.unixfs import KUBO_DEFAULT, ImportProfile

T = TypeVar("T")
_NOT_FOUND = re.compile(
    r"not found locally|could not find|no link named|block not found|context deadline exceeded|content not available",
    re.I,
)
_TOO_LARGE = re.compile(r"over this (?:node|request)'s fetch limit", re.I)
_NOT_PINNED = re.compile(r"is not pinned", re.I)
FETCH_SLACK = 10.0  # at most this many seconds the HTTP read waits beyond the node's own fetch timeout
_MULTIADDR = re.compile(r"^/(ip4|ip6|dns|dns4|dns6)/([^/]+)/tcp/(\d+)(?:/(http|https))?/?$")


def normalize_api_url(url: str) -> str:
    """``http://host:port`` from a URL (with or without ``/api/v0``) or a Kubo multiaddr."""
    url = url.strip()
    match = _MULTIADDR.match(url)
    if match:
        proto, host, port, scheme = match.groups()
        host = f"[{host}]" if proto == "ip6" else host
        return f"{scheme or 'http'}://{host}:{port}"
    if not re.match(r"^https?://", url):
        raise ValueError(f"not an IPFS RPC URL: {url!r} (expected http://host:port or /ip4/.../tcp/PORT)")
    return re.sub(r"/api/v0/?$", "", url.rstrip("/"))


@dataclass(frozen=True)
class NodeId:
    """Answer of ``/api/v0/id``."""

    id: str
    agent_version: str
    addresses: list[str]


@dataclass(frozen=True)
class NodeVersion:
    """Answer of ``/api/v0/version``."""

    version: str
    repo: str
    system: str


@dataclass(frozen=True)
class SwarmPeer:
    """One connected peer from ``/api/v0/swarm/peers``: the connection's multiaddr and the peer ID."""

    addr: str
    peer: str


@dataclass(frozen=True)
class Bandwidth:
    """Answer of ``/api/v0/stats/bw``: bytes in and out since the node started, bytes per second now."""

    total_in: int
    total_out: int
    rate_in: float
    rate_out: float


#: Seconds the commands' clients let a node look for content it does not hold (Kubo's ``timeout`` option),
#: when the code does not say: e.g. a participant whose node runs with ``--fetch-timeout 10`` sets it to 10.
FETCH_TIMEOUT_ENV = "MARKETPLACE_IPFS_FETCH_TIMEOUT"


def fetch_timeout_from_env(default: float) -> float:
    """``$MARKETPLACE_IPFS_FETCH_TIMEOUT`` (positive seconds) if set, else ``default``."""
    raw = os.environ.get(FETCH_TIMEOUT_ENV, "").strip()
    if not raw:
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise StorageError(f"{FETCH_TIMEOUT_ENV}={raw!r}: expected a positive number of seconds")
    return seconds


class IpfsClient:
    """Client of one node's Kubo RPC API.

    ``timeout`` bounds connecting and each read (seconds); ``retries`` more attempts are made after
    a failure to connect, waiting ``backoff * 2**n`` seconds. ``fetch_timeout`` (default: ``timeout``) is
    how long the node may look for a CID in its swarm: it is sent as Kubo's ``timeout`` option of
    ``cat`` and ``pin/add``, whose reads wait that long plus as much again, at most :data:`FETCH_SLACK`
    more, for the node's answer. Objects are added with ``profile`` (Kubo's
    defaults: CIDv0, 256 KiB chunks), the profile :func:`~marketplace.adapters.ipfs.cid.verify_cid`
    can check.
    """

    def __init__(
        self,
        api_url: str = "http://127.0.0.1:5001",
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        fetch_timeout: float | None = None,
        profile: ImportProfile = KUBO_DEFAULT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.api_url = normalize_api_url(api_url)
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.fetch_timeout = fetch_timeout_from_env(timeout) if fetch_timeout is None else fetch_timeout
        self.profile = profile
        self._http = httpx.Client(
            base_url=f"{self.api_url}/api/v0",
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
        )

    # --- plumbing ----------------------------------------------------------------------------

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        """``call()``, again after a failure to connect; a node that accepted the request but does not
        answer in time is not asked again (:class:`IpfsTimeout` at once)."""
        for attempt in range(self.retries + 1):
            try:
                return call()
            except httpx.ConnectTimeout as exc:
                if attempt == self.retries:
                    raise IpfsTimeout(f"IPFS {what}: cannot connect to {self.api_url} in time ({exc})") from exc
            except httpx.TimeoutException as exc:
                raise IpfsTimeout(f"IPFS {what}: no answer from {self.api_url} in time ({exc})") from exc
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise IpfsConnectionError(
                        f"IPFS {what}: cannot reach {self.api_url} after {self.retries + 1} attempts: {exc}"
                    ) from exc
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    @staticmethod
    def _raise_for(what: str, response: httpx.Response) -> None:
        if response.status_code == 200:
            return
        try:
            response.read()
            text = response.text
        except httpx.HTTPError:
            text = ""
        try:
            message = str(json.loads(text).get("Message", text))
        except (ValueError, AttributeError):
            message = text
        message = message.strip() or f"HTTP {response.status_code}"
        if response.status_code == 413 or _TOO_LARGE.search(message):
            raise ObjectTooLarge(f"IPFS {what} failed: {message}")
        cls = (
            ContentUnavailable
            if _NOT_FOUND.search(message)
            else NodeBusy
            if response.status_code == 503
            else IpfsApiError
        )
        raise cls(f"IPFS {what} failed: {message}", response.status_code)

    def _fetch_options(self) -> tuple[dict[str, str], httpx.Timeout]:
        """Kubo's ``timeout`` option for a read that may search the swarm, and the HTTP timeout to match."""
        seconds = max(self.fetch_timeout, 0.001)
        read = httpx.Timeout(seconds + min(seconds, FETCH_SLACK), connect=min(self.timeout, 10.0))
        return {"timeout": f"{seconds:.3f}s"}, read

    def _post_json(self, endpoint: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """POST to ``endpoint`` and parse the last JSON line of the answer."""

        def call() -> Any:
            response = self._http.post(endpoint, params=params, **kwargs)
            self._raise_for(endpoint, response)
            lines = [line for line in response.text.splitlines() if line.strip()]
            try:
                return json.loads(lines[-1]) if lines else {}
            except ValueError as exc:
                raise IpfsApiError(f"IPFS {endpoint}: answer is not JSON: {response.text[:200]!r}") from exc

        return self._retrying(endpoint, call)

    # --- API ----------------------------------------------------------------------------------

    def add(self, data: bytes, *, name: str = "blob", pin: bool = True) -> str:
        """Add ``data`` as one file and return its CID (pinned unless ``pin=False``)."""
        params = {**self.profile.as_add_params(), "pin": "true" if pin else "false", "progress": "false"}
        files = {"file": (name, data, "application/octet-stream")}
        answer = self._post_json("add", params, files=files)
        try:
            return normalize_cid(str(answer["Hash"]))
        except KeyError as exc:
            raise IpfsApiError(f"IPFS add: unexpected answer {answer!r}") from exc

    def cat(self, cid: str, *, max_bytes: int | None = None) -> bytes:
        """The bytes of file ``cid``; :class:`ObjectTooLarge` as soon as more than ``max_bytes`` arrive.

        ``max_bytes`` is sent as Kubo's ``length`` option (``max_bytes + 1``): the project's node then fetches
        no object larger than that from its swarm (it answers :class:`ObjectTooLarge` from the root block
        alone), and a Kubo daemon streams no more than that."""
        cid = normalize_cid(cid)
        options, timeout = self._fetch_options()
        params: dict[str, str] = {"arg": cid, **options}
        if max_bytes is not None:
            params["length"] = str(max_bytes + 1)  # the node fetches and sends no more than that

        def call() -> bytes:
            with self._http.stream("POST", "cat", params=params, timeout=timeout) as response:
                self._raise_for("cat", response)
                announced = response.headers.get("X-Content-Length")
                if max_bytes is not None and announced and announced.isdigit() and int(announced) > max_bytes:
                    raise ObjectTooLarge(f"object {cid} is {int(announced)} bytes, over the limit of {max_bytes}")
                parts: list[bytes] = []
                received = 0
                for piece in response.iter_bytes():
                    received += len(piece)
                    if max_bytes is not None and received > max_bytes:
                        raise ObjectTooLarge(f"object {cid} is over the limit of {max_bytes} bytes (stopped reading)")
                    parts.append(piece)
                if response.headers.get("X-Stream-Error"):
                    raise IpfsApiError(f"IPFS cat {cid}: stream error {response.headers['X-Stream-Error']}")
                if announced and announced.isdigit() and max_bytes is None and received < int(announced):
                    # Kubo streams what it has and cuts the stream when a later block does not come in time
                    raise ContentUnavailable(
                        f"IPFS cat {cid}: content not available: the stream ended after {received} of "
                        f"{int(announced)} bytes"
                    )
                return b"".join(parts)

        return self._retrying("cat", call)

    def cat_prefix(self, cid: str, length: int) -> bytes:
        """The first ``length`` bytes of file ``cid`` (all of it when it is shorter): the node reads no further.
        (E.g. a safetensors header without the tensors.)"""
        cid = normalize_cid(cid)
        if length <= 0:
            return b""
        options, timeout = self._fetch_options()
        params: dict[str, str] = {"arg": cid, "length": str(length), **options}

        def call() -> bytes:
            with self._http.stream("POST", "cat", params=params, timeout=timeout) as response:
                self._raise_for("cat", response)
                parts: list[bytes] = []
                received = 0
                for piece in response.iter_bytes():
                    parts.append(piece[: length - received])
                    received += len(parts[-1])
                    if received >= length:
                        break
                else:
                    if response.headers.get("X-Stream-Error"):
                        raise IpfsApiError(f"IPFS cat {cid}: stream error {response.headers['X-Stream-Error']}")
                return b"".join(parts)

        return self._retrying("cat", call)

    def pin_add(self, cid: str) -> list[str]:
        """Pin ``cid`` recursively (fetching it from the swarm if needed); returns the pinned CIDs."""
        options, timeout = self._fetch_options()
        answer = self._post_json("pin/add", {"arg": normalize_cid(cid), **options}, timeout=timeout)
        return [str(c) for c in answer.get("Pins", [])]

    def pin_rm(self, cid: str) -> list[str]:
        """Remove the recursive pin of ``cid``."""
        answer = self._post_json("pin/rm", {"arg": normalize_cid(cid)})
        return [str(c) for c in answer.get("Pins", [])]

    def pin_ls(self, kind: str = "recursive") -> dict[str, str]:
        """Pinned CIDs of pin type ``kind`` (``recursive``, ``indirect``, ``direct``, ``all``) and their type."""
        answer = self._post_json("pin/ls", {"type": kind})
        return {str(c): str(v.get("Type", "")) for c, v in (answer.get("Keys") or {}).items()}

    def is_pinned(self, cid: str) -> bool:
        """True if ``cid`` is pinned recursively (the node is asked about that one CID, not for every pin)."""
        cid = normalize_cid(cid)
        try:
            answer = self._post_json("pin/ls", {"type": "recursive", "arg": cid})
        except IpfsApiError as exc:
            if _NOT_PINNED.search(str(exc)):
                return False
            raise
        return cid in {normalize_cid(str(c)) for c in (answer.get("Keys") or {})}

    def id(self) -> NodeId:
        """The node's identity."""
        a = self._post_json("id")
        return NodeId(str(a.get("ID", "")), str(a.get("AgentVersion", "")), list(a.get("Addresses") or []))

    def swarm_peers(self) -> list[SwarmPeer]:
        """The peers the node is connected to."""
        a = self._post_json("swarm/peers")
        return [SwarmPeer(str(p.get("Addr", "")), str(p.get("Peer", ""))) for p in (a.get("Peers") or [])]

    def swarm_connect(self, peer_addr: str) -> None:
        """Connect the node to the peer at ``peer_addr`` (a multiaddr ending in ``/p2p/<peer id>``)."""
        self._post_json("swarm/connect", {"arg": peer_addr})

    def bandwidth(self) -> Bandwidth:
        """The node's swarm traffic (``stats/bw``; on the project's node: its libp2p TCP connections)."""
        a = self._post_json("stats/bw")
        return Bandwidth(
            int(a.get("TotalIn", 0)), int(a.get("TotalOut", 0)), float(a.get("RateIn", 0)), float(a.get("RateOut", 0))
        )

    def swarm_stats(self) -> dict[str, Any]:
        """The project's node only: what it fetched from its peers (``stats/swarm``, see
        :class:`~marketplace.adapters.ipfs.fetch.FetchStats`) and its TCP traffic."""
        return dict(self._post_json("stats/swarm"))

    def version(self) -> NodeVersion:
        """The node's Kubo version."""
        a = self._post_json("version")
        return NodeVersion(str(a.get("Version", "")), str(a.get("Repo", "")), str(a.get("System", "")))

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> IpfsClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["Bandwidth", "IpfsClient", "IpfsError", "NodeId", "NodeVersion", "SwarmPeer", "normalize_api_url"]
