"""Fetching a DAG the node does not hold from its swarm, with a deadline and a size limit per request.

The embedded library's ``Download`` never gives up and cannot be cancelled, so a fetch runs it in a
thread of its own (:meth:`EmbeddedKubo.fetch`, which holds no lock) and the request waits for that
thread with a timeout. One fetch runs per CID: requests for a CID already being fetched wait for the
same one. A request that times out answers :class:`ContentUnavailable`; its fetch goes on in the
background (the blocks may still arrive) until it ends or the node restarts.

Size: every request has a limit, its own ``max_bytes`` (e.g. ``offset + length`` of a ranged ``cat``)
or else the node's ``max_bytes``, never more than the node's. The root block is fetched first and
alone (:func:`root_block_cid`: the node cannot fetch part of a file, only all of it or its root), and
a root whose UnixFS ``filesize`` (or a raw root's length) is over the request's limit is refused at
once, for that request only: another request that may take more fetches it. Then the rest of the
DAG is fetched, and a monitor thread watches its blocks arrive in the repo's block store: the bytes
of the DAG's blocks may not exceed the largest limit of the requests waiting for it plus 1/64 and
1 MiB for the DAG's own structure (:func:`structure_allowance`), so a root that lies about its size
is caught too; nor may the file those blocks make (:func:`content_bound`: a DAG that links one block
many times is a small DAG of a huge file, which ``Download`` writes out whole), nor the file ``Download``
has written so far exceed that limit (a DAG that repeats blocks it has not got yet). The checks run every
``poll_seconds`` and once more when the download ends (on a fast link a whole object can arrive between
two checks). A DAG local already is refused when its file would be over the node's own limit (reading a
range of it writes the whole file). A fetch over that cap fails with
:class:`ObjectTooLarge`, and so does every later request for that CID whose limit is not larger
(the node remembers the last :data:`MAX_REMEMBERED` such CIDs with the cap they broke), even though
some or all of its blocks may have arrived.

Bounds: at most ``max_jobs`` fetches run at once (:class:`NodeBusy` beyond). A fetch that nobody
waits for any more is *abandoned*; when more than ``max_abandoned`` are, or when a fetch is over
its cap (it would otherwise download the whole object), the monitor restarts the Kubo
node (:meth:`EmbeddedKubo.restart`, about 0.05 s), which ends every ``Download``; fetches that
still have a waiting request start again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from multiformats import CID

from marketplace.adapters.ipfs.cid import normalize_cid, parse_cid
from marketplace.adapters.ipfs.errors import ContentUnavailable, IpfsApiError, NodeBusy, ObjectTooLarge
from marketplace.adapters.ipfs.kubo_embed import FETCH_INTERRUPTED, EmbeddedKubo
from marketplace.adapters.ipfs.unixfs import unixfs_file_size

DEFAULT_FETCH_TIMEOUT = 30.0
DEFAULT_MAX_FETCH_BYTES = 1 << 30
MAX_REMEMBERED = 4096  # CIDs refused as too large that the node keeps refusing


def structure_allowance(max_bytes: int) -> int:
    """Block bytes a file of ``max_bytes`` may take beyond its content (dag-pb/UnixFS framing, parents)."""
    return max_bytes // 64 + (1 << 20)


def root_block_cid(cid: CID) -> CID:
    """A CID naming the root block of ``cid`` alone: CIDv1, codec raw, the same multihash.

    Kubo keys its block store by multihash, so a peer serves the dag-pb root under this CID, and the
    block it sends lands where the node looks for the root of ``cid``; ``Download`` of this CID fetches
    that one block and no other (measured: 3,706 bytes of a 20 MB file's DAG). For a raw ``cid`` it is
    ``cid`` itself."""
    return CID("base32", 1, "raw", cid.digest)


def content_bound(kubo: EmbeddedKubo, root: CID) -> int | None:
    """At most how many bytes reading the file ``root`` yields (what ``Download`` writes), None while a block of
    its DAG is not local: a leaf's size, a parent's own size plus its children's bounds, each child counted as
    many times as it is linked. A DAG may link one block many times (honestly: a file of repeated chunks), so
    its file can be far larger than its blocks (measured: 260 kB of blocks made a 1 GiB file; 42 blocks of
    4 kB a 1 TiB one); each distinct block is looked at once."""
    bounds: dict[bytes, int] = {}
    links: dict[bytes, list[CID]] = {}
    stack = [root]
    while stack:
        cid = stack[-1]
        key = bytes(cid)
        if key in bounds:
            stack.pop()
            continue
        if key not in links:
            children = kubo.children(cid)
            if children is None:
                return None
            links[key] = children
            stack.extend(c for c in children if bytes(c) not in bounds)
            continue
        stack.pop()
        own = len(cid.raw_digest) if cid.hashfun.name == "identity" else kubo.block_size(cid)
        if own is None:
            return None
        bounds[key] = own + sum(bounds[bytes(c)] for c in links.pop(key))
    return bounds[bytes(root)]


def declared_size(kubo: EmbeddedKubo, cid: CID) -> int | None:
    """The file size the local root block of ``cid`` states (UnixFS ``filesize``, or a raw block's length);
    None when the block is not local or states no size (e.g. a directory)."""
    if cid.codec.name != "dag-pb":
        return kubo.block_size(cid)
    block = kubo.read_block(cid)
    return unixfs_file_size(block) if block is not None else None


@dataclass
class FetchStats:
    """Counters of the node's swarm fetches since it started.

    ``fetched_bytes``/``fetched_blocks``: blocks of fetched DAGs that were not in the store when the
    fetch began and arrived while it ran (the data this node got from its peers, block bytes without
    any network overhead). ``unavailable``/``too_large``: requests answered so. ``abandoned``: fetches
    running with nobody waiting, now. ``restarts``: Kubo restarts to end abandoned or oversized fetches.
    """

    fetches: int = 0
    completed: int = 0
    unavailable: int = 0
    too_large: int = 0
    fetched_bytes: int = 0
    fetched_blocks: int = 0
    abandoned: int = 0
    restarts: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return asdict(self)


class DagProgress:
    """Which blocks of the DAG under ``root`` are in the local store, found from the root down.

    :meth:`scan` looks again at the blocks not seen yet (cheap: one ``stat`` each) and counts those
    that appeared. ``declared`` is the file size the root block states, once the root is local; ``bound``
    the most its file can be (:func:`content_bound`), once every block is."""

    def __init__(self, kubo: EmbeddedKubo, root: CID) -> None:
        self.kubo = kubo
        self.root = root
        self.pending: list[CID] = [root]
        self.seen: set[bytes] = {bytes(root)}
        self.declared: int | None = None
        self.bound: int | None = None
        self.block_bytes = 0  # every local block of the DAG found so far
        self.arrived_bytes = 0  # of those, the ones that appeared after the first scan
        self.arrived_blocks = 0
        self._scanned = False
        self._lock = threading.Lock()

    def scan(self) -> tuple[int, int]:
        """Look for newly stored blocks; returns the bytes and the number of those that arrived since the
        last scan (the first scan finds what was local before the fetch and returns ``(0, 0)``)."""
        with self._lock:
            return self._scan()

    def _scan(self) -> tuple[int, int]:
        still: list[CID] = []
        gained = blocks = 0
        while self.pending:
            cid = self.pending.pop()
            size = self.kubo.block_size(cid)
            if size is None:
                still.append(cid)
                continue
            gained += size
            blocks += 1
            if cid == self.root:
                self.declared = declared_size(self.kubo, cid)
            for child in self.kubo.children(cid) or []:
                if bytes(child) not in self.seen:
                    self.seen.add(bytes(child))
                    self.pending.append(child)
        self.pending = still
        if not still and self.bound is None:
            self.bound = content_bound(self.kubo, self.root)
        self.block_bytes += gained
        if not self._scanned:
            self._scanned = True
            return 0, 0
        self.arrived_bytes += gained
        self.arrived_blocks += blocks
        return gained, blocks

    def over_limit(self, max_bytes: int, written: int = 0) -> str | None:
        """Why the DAG is over ``max_bytes``, or None; ``written``: the bytes of its file written so far."""
        if self.declared is not None and self.declared > max_bytes:
            return f"its root declares {self.declared} bytes"
        if self.block_bytes > max_bytes + structure_allowance(max_bytes):
            return f"more than {self.block_bytes} bytes of its blocks arrived"
        if self.bound is not None and self.bound > max_bytes + structure_allowance(max_bytes):
            return f"its blocks make a file of up to {self.bound} bytes"
        if written > max_bytes:
            return f"more than {written} bytes of its file were written"
        return None


class _Job:
    """One running ``Download`` of ``cid`` and the requests waiting for it; ``cap``: the largest limit of
    those requests (the file bytes the download may bring, plus :func:`structure_allowance`)."""

    def __init__(self, kubo: EmbeddedKubo, cid: str, cap: int) -> None:
        self.cid = cid
        self.cap = cap
        self.progress = DagProgress(kubo, parse_cid(cid))
        self.future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.future.set_running_or_notify_cancel()
        self.waiters = 0
        self.refused: str | None = None  # why the job was refused as too large
        self.started = time.monotonic()
        self.dest: Path | None = None  # where the running Download writes the file
        self.written = 0  # the most bytes of the file it was seen to have written

    def watch_written(self) -> int:
        """The most bytes of the file the download was seen to have written, now included."""
        dest = self.dest
        if dest is not None:
            with contextlib.suppress(OSError):  # not created yet, removed, or a directory
                if dest.is_file():
                    self.written = max(self.written, dest.stat().st_size)
        return self.written

    def settle(self, error: BaseException | None = None) -> bool:
        """Finish the job (with ``error``) unless it is finished already; True if this call did."""
        if self.future.done():
            return False
        if error is None:
            self.future.set_result(None)
        else:
            self.future.set_exception(error)
        return True


class SwarmFetcher:
    """Makes DAGs local by fetching them from the node's swarm; see the module docstring.

    ``has_peer_source``: whether the node can get peers on its own (configured peers or public mode),
    or has had a connected peer since it started; when neither and no peer is connected, a fetch is
    answered "not available" at once.
    ``before_restart`` is called before the monitor restarts the node (e.g. to sample traffic counters
    of the connections the restart closes)."""

    def __init__(
        self,
        kubo: EmbeddedKubo,
        work_dir: Path,
        *,
        max_bytes: int = DEFAULT_MAX_FETCH_BYTES,
        default_timeout: float = DEFAULT_FETCH_TIMEOUT,
        has_peer_source: bool = False,
        max_jobs: int = 16,
        max_abandoned: int = 4,
        poll_seconds: float = 0.05,
        before_restart: Callable[[], object] | None = None,
    ) -> None:
        self.kubo = kubo
        self.work_dir = work_dir
        self.max_bytes = max_bytes
        self.default_timeout = default_timeout
        self.has_peer_source = has_peer_source
        self.max_jobs = max_jobs
        self.max_abandoned = max_abandoned
        self.poll_seconds = poll_seconds
        self.before_restart = before_restart
        self.stats = FetchStats()
        self._jobs: dict[str, _Job] = {}
        self._too_large: dict[str, tuple[int, str]] = {}  # CID -> (cap it broke, why), oldest first
        self._mutex = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._monitor = threading.Thread(target=self._watch, name="ipfs-fetch-monitor", daemon=True)
        self._monitor.start()

    # --- requests -------------------------------------------------------------------------------

    def request_limit(self, max_bytes: int | None) -> int:
        """The size limit of a request that may take ``max_bytes`` (None: as much as the node allows)."""
        return self.max_bytes if max_bytes is None else max(0, min(max_bytes, self.max_bytes))

    async def ensure_local(self, cid: str, timeout: float | None = None, max_bytes: int | None = None) -> None:
        """Return once every block of ``cid`` is in the local store, fetching the missing ones.

        ``max_bytes`` is the most this request may take (the file's size; see :meth:`request_limit`):
        the root block is fetched first, alone, and a root that declares more is refused before any
        other block is asked for; blocks past that limit plus :func:`structure_allowance` (a root that
        lies), a file they make past it (:func:`content_bound`: blocks linked many times) or a written file
        past the limit stop the fetch. A DAG that is local already is checked against the node's limit only
        (any range of a stored object may be read).

        Raises :class:`ContentUnavailable` after ``timeout`` seconds (default: the node's), or at once
        when the node has no peer to ask; :class:`ObjectTooLarge` when the object is over this
        request's limit; :class:`NodeBusy` when ``max_jobs`` fetches run already."""
        timeout = self.default_timeout if timeout is None else timeout
        limit = self.request_limit(max_bytes)
        root = parse_cid(cid)
        with self._mutex:
            refused = self._too_large.get(cid)
        if refused and limit <= refused[0]:
            self._count("too_large")
            raise self._too_large_error(cid, limit, refused[1])
        if await self._local(cid, root):
            return
        connected = len(await asyncio.to_thread(self.kubo.peers))
        if connected:
            # A node that has had peers expects them back (after a drop or a restart: they redial): it
            # waits for the content instead of answering "not available" at once (attack review of
            # issue 14: a restart forced by one trainer's object otherwise failed every later fetch).
            self.has_peer_source = True
        if not connected and not self.has_peer_source:
            self._count("unavailable")
            raise ContentUnavailable(
                f"content not available: ipld: could not find {cid} (not in this node's store, and the node "
                "has no peer to fetch it from: start it with --peer, or let peers connect to it)"
            )
        deadline = time.monotonic() + timeout
        if await asyncio.to_thread(self.kubo.block_size, root) is None:
            # one block (a raw root is the whole file): the node's limit, the request's is checked below
            key = normalize_cid(bytes(root_block_cid(root)))
            await self._wait(key, self.max_bytes, cid, limit, deadline, timeout, connected)
        declared = await asyncio.to_thread(declared_size, self.kubo, root)
        if declared is not None and declared > limit:
            self._count("too_large")  # not remembered: a request that may take more gets it
            raise self._too_large_error(cid, limit, f"its root declares {declared} bytes")
        if not await self._local(cid, root):
            await self._wait(cid, limit, cid, limit, deadline, timeout, connected)

    async def _local(self, cid: str, root: CID) -> bool:
        """Whether every block of ``cid`` is local; :class:`ObjectTooLarge` if they are but make a file over the
        node's limit (reading it writes the whole file, whatever the request's range)."""
        bound = await asyncio.to_thread(content_bound, self.kubo, root)
        if bound is None:
            return False
        if bound > self.max_bytes + structure_allowance(self.max_bytes):
            self._count("too_large")
            raise self._too_large_error(cid, self.max_bytes, f"its blocks make a file of up to {bound} bytes")
        return True

    async def _wait(
        self, key: str, cap: int, cid: str, limit: int, deadline: float, timeout: float, connected: int
    ) -> None:
        """Wait until the fetch of ``key`` (joined with ``cap``) ends, at most until ``deadline``; errors
        name ``cid``, the CID the request asked for, and its ``limit``."""
        job = self._join(key, cap)
        try:
            left = max(deadline - time.monotonic(), 0.0)
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(job.future)), left)
        except TimeoutError:
            self._count("unavailable")
            raise ContentUnavailable(
                f"content not available: ipld: could not find {cid} (not in this node's store, and not "
                f"received from its {connected} connected peer(s) within {timeout:g} s)"
            ) from None
        except ObjectTooLarge as exc:
            self._count("too_large")
            if job.refused is None:
                raise
            raise self._too_large_error(cid, limit, job.refused) from exc
        finally:
            with self._mutex:
                job.waiters -= 1
            self._wake.set()

    def _count(self, name: str) -> None:
        with self._mutex:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    def _join(self, cid: str, cap: int) -> _Job:
        with self._mutex:
            job = self._jobs.get(cid)
            if job is None or job.future.done():
                if len(self._jobs) >= self.max_jobs:
                    raise NodeBusy(f"this node already runs {len(self._jobs)} swarm fetches: try again later", 503)
                job = _Job(self.kubo, cid, cap)
                self._jobs[cid] = job
                self.stats.fetches += 1
                threading.Thread(target=self._run, args=(job,), name=f"ipfs-fetch-{cid[:12]}", daemon=True).start()
            job.cap = max(job.cap, cap)
            job.waiters += 1
        self._wake.set()
        return job

    # --- the worker of one job ----------------------------------------------------------------

    def _run(self, job: _Job) -> None:
        """Run ``Download`` for ``job`` until it ends; again after a node restart if someone still waits."""
        try:
            self._scan(job)  # what is local before the download starts is not counted as fetched
            while True:
                dest = self.work_dir / f"{uuid.uuid4().hex}.fetch"
                job.dest = dest
                try:
                    rc = self.kubo.fetch(job.cid, dest)
                finally:
                    job.watch_written()
                    job.dest = None
                    if dest.is_dir():
                        shutil.rmtree(dest, ignore_errors=True)
                    else:
                        dest.unlink(missing_ok=True)
                if rc == FETCH_INTERRUPTED and job.waiters > 0 and not job.future.done():
                    continue
                break
            self._scan(job)
            why = job.progress.over_limit(job.cap, job.written)
            if why:  # the download ended before the monitor saw the size (a fast link)
                self._refuse(job, why)
            elif rc == 0 and self.kubo.has_dag(job.progress.root):
                with self._mutex:
                    self._too_large.pop(job.cid, None)  # stored now: no request is refused it
                if job.settle():
                    self._count("completed")
            elif rc == FETCH_INTERRUPTED:
                job.settle(ContentUnavailable(f"content not available: the fetch of {job.cid} was interrupted"))
            else:
                job.settle(IpfsApiError(f"Kubo could not fetch {job.cid} (code {rc}): is it a file?"))
        except Exception as exc:  # a malformed block, a full disk: the waiting requests get the error
            job.settle(exc)
        finally:
            with self._mutex:
                if self._jobs.get(job.cid) is job:
                    del self._jobs[job.cid]
            self._wake.set()

    def _refuse(self, job: _Job, why: str) -> bool:
        """Fail ``job`` as too large and remember its CID with its cap; True if this call settled it."""
        with self._mutex:
            if job.future.done():
                return False
            job.refused = why
            cap = max(job.cap, self._too_large.pop(job.cid, (0, ""))[0])
            self._too_large[job.cid] = (cap, why)
            while len(self._too_large) > MAX_REMEMBERED:
                del self._too_large[next(iter(self._too_large))]
        return job.settle(self._too_large_error(job.cid, job.cap, why))

    def _too_large_error(self, cid: str, limit: int, why: str) -> ObjectTooLarge:
        if limit >= self.max_bytes:
            return ObjectTooLarge(f"{cid} is over this node's fetch limit of {limit} bytes ({why})")
        return ObjectTooLarge(
            f"{cid} is over this request's fetch limit of {limit} bytes ({why}; the node fetches whole "
            "objects only: ask for all of it, or for a range of it once it is stored here)"
        )

    def _scan(self, job: _Job) -> None:
        new_bytes, new_blocks = job.progress.scan()
        with self._mutex:
            self.stats.fetched_bytes += new_bytes
            self.stats.fetched_blocks += new_blocks

    # --- the monitor ----------------------------------------------------------------------------

    def _watch(self) -> None:
        """Scan running jobs for size, count abandoned ones, restart the node when needed."""
        while not self._closed:
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            with self._mutex:
                jobs = [j for j in self._jobs.values() if not j.future.done()]
            restart = False
            for job in jobs:
                try:
                    self._scan(job)
                except Exception as exc:  # a malformed block in the DAG
                    job.settle(IpfsApiError(f"cannot read the DAG of {job.cid}: {exc}"))
                    restart = True
                    continue
                why = job.progress.over_limit(job.cap, job.watch_written())
                if why and self._refuse(job, why):
                    restart = True
            with self._mutex:
                abandoned = [j for j in self._jobs.values() if j.waiters <= 0 and not j.future.done()]
                self.stats.abandoned = len(abandoned)
            if restart or len(abandoned) > self.max_abandoned:
                for job in abandoned:
                    job.settle(ContentUnavailable(f"content not available: the fetch of {job.cid} was abandoned"))
                self._restart()

    def _restart(self) -> None:
        if self._closed:
            return
        with contextlib.suppress(Exception):  # a failed restart shows in the next requests' errors
            if self.before_restart:
                self.before_restart()
            self.kubo.restart()
        self._count("restarts")

    def snapshot(self) -> FetchStats:
        """A copy of the counters."""
        with self._mutex:
            return FetchStats(**self.stats.as_dict())

    def close(self) -> None:
        """Stop the monitor (the node's :meth:`EmbeddedKubo.stop` ends the downloads)."""
        self._closed = True
        self._wake.set()
