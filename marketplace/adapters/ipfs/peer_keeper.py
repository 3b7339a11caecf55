"""Keep the node connected to its configured peers by dialling them from Python once it runs.

A connection that Kubo makes while it starts is sometimes missed by the embedded Kubo's bitswap: it never
asks that peer for blocks, and fetches from it end as "content not available" (measured by the demo with
the peers in Kubo's ``Bootstrap`` and ``Peering`` lists: 7 of 128 node-to-peer pairs, against 0 of 128 when
the same connections were made through ``ConnectToPeer`` after the start; Kubo dials its ``Bootstrap`` peers
at once). So the swarm config never lists peers in ``Bootstrap``, and
:class:`PeerKeeper` dials each configured peer once the node is up, then every ``interval`` seconds
redials those that are not connected (after a drop, or after the node restarted to end abandoned fetches).

The ``--peer`` peers are also Kubo's ``Peering.Peers``, for one reason: its connection manager never trims
a peering peer (attack review of issue 14, finding 4). Kubo's own peering service dials a peer that is not
connected only 7.5 to 12.5 s after the start (boxo's ``peering``: a 5 s initial delay grown by half and a
random part), and the keeper has connected it by then; measured with both in place: 0 of 128 fresh nodes
failed to fetch from their ``--peer`` right after starting. Peers added with :meth:`PeerKeeper.add` (through
``swarm/connect``) are redialled but not protected: the embedded library exports no call to protect a
peer of a running node.
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
