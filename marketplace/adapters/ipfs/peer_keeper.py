"""Keep the node connected to its configured peers by dialling them from Python once it runs.

Peers given to Kubo's config (``Peering.Peers``/``Bootstrap``) are dialled while the node starts, and the
embedded Kubo's bitswap sometimes misses a connection made then: it never asks that peer for blocks, and
fetches from it end as "content not available" (measured by the demo: 7 of 128 node-to-peer pairs, against
0 of 128 when the same connections were made through ``ConnectToPeer`` after the start). So the swarm
config leaves the peer lists empty and :class:`PeerKeeper` dials each configured peer once the node is
up, then every ``interval`` seconds redials those that are not connected (after a drop, or after the node
restarted to end abandoned fetches).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence

from marketplace.adapters.ipfs.kubo_embed import EmbeddedKubo, KuboLibraryError
from marketplace.adapters.ipfs.swarm import split_peer_addr

DEFAULT_INTERVAL = 2.0


class PeerKeeper:
    """A daemon thread that keeps ``kubo`` connected to ``peers`` (full multiaddrs ending in ``/p2p/<id>``)."""

    def __init__(self, kubo: EmbeddedKubo, peers: Sequence[str], interval: float = DEFAULT_INTERVAL) -> None:
        self.kubo = kubo
        self.peers = [(addr, split_peer_addr(addr)[1]) for addr in peers]
        self.interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ipfs-peer-keeper", daemon=True)

    def start(self) -> None:
        """Dial every peer now (in the thread) and keep doing so; returns at once."""
        self._thread.start()

    def add(self, peer_addr: str) -> None:
        """Keep ``peer_addr`` (``.../p2p/<id>``) connected too, e.g. a peer connected through the API."""
        entry = (peer_addr, split_peer_addr(peer_addr)[1])
        with self._lock:
            if entry not in self.peers:
                self.peers = [*self.peers, entry]

    def dial_missing(self) -> int:
        """Dial the configured peers that are not connected; returns how many were dialled."""
        connected = {peer_id for _, peer_id in self.kubo.peers()}
        dialled = 0
        with self._lock:
            peers = list(self.peers)
        for addr, peer_id in peers:
            if peer_id not in connected:
                dialled += 1
                with contextlib.suppress(KuboLibraryError):  # unreachable now: tried again next time
                    self.kubo.connect(addr)
        return dialled

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(KuboLibraryError):
                if self.peers:
                    self.dial_missing()
            self._stop.wait(self.interval)

    def stop(self) -> None:
        """Stop redialling (a dial in progress ends by libp2p's own timeout)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.interval + 1)
