"""Limits on what the server pins to its IPFS node for people without a wallet (``POST /api/models/{name}/init``
builds a registered model's initial weights and pins them; the job form's review step pins initial weights again
with a model card in their header: anyone can ask, so each ask is bounded):

* **size**: weights larger than ``max_bytes`` are not pinned (a registered model's size is known before it is
  built: its parameters, 4 bytes each; weights given a card are not read past ``max_bytes``);
* **rate**: at most ``per_client`` pins per client (its IPv4 address or IPv6 /64, as the server sees it:
  :func:`~marketplace.web.services.client_keys.client_key`) and ``total`` pins from everyone within any
  ``window`` seconds; the next ask is refused with :class:`~marketplace.web.services.errors.TooManyRequests`,
  which says when to try again.

Asking again for weights the server pinned already (the same model and seed give the same bytes, so the same CID)
does not count: :class:`~marketplace.web.services.models.ModelService` answers it with the CID it remembers.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from marketplace.web.services.errors import TooManyRequests

#: Clients remembered at most (the longest unseen are forgotten first).
MAX_CLIENTS = 10_000


class PinLimiter:
    """Sliding-window limits on pins, per client and in all (see the module docstring)."""

    def __init__(
        self, per_client: int, total: int, window: float = 3600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_client = per_client
        self.total = total
        self.window = window
        self.clock = clock
        self._clients: OrderedDict[str, deque[float]] = OrderedDict()
        self._all: deque[float] = deque()
        self._lock = threading.Lock()

    def take(self, client: str) -> None:
        """Counts one pin for ``client``; :class:`TooManyRequests` (nothing counted) if that would exceed a limit."""
        self._admit(client, count=True)

    def check(self, client: str) -> None:
        """:class:`TooManyRequests` if a pin for ``client`` would exceed a limit now; counts nothing (to refuse
        before costly work whose end may pin)."""
        self._admit(client, count=False)

    def _admit(self, client: str, *, count: bool) -> None:
        with self._lock:
            now = self.clock()
            mine = self._clients.pop(client, None) or deque()
            for times in (mine, self._all):
                while times and now - times[0] >= self.window:
                    times.popleft()
            self._clients[client] = mine
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
            minutes = round(self.window / 60)
            if len(mine) >= self.per_client:
                wait = int(self.window - (now - mine[0])) + 1
                raise TooManyRequests(
                    f"This server pins at most {self.per_client} sets of initial weights per client every {minutes} "
                    f"minutes, and you reached that: try again in {wait} seconds, or pin the weights yourself and "
                    "paste their CID.",
                    wait,
                )
            if len(self._all) >= self.total:
                wait = int(self.window - (now - self._all[0])) + 1
                raise TooManyRequests(
                    f"This server pins at most {self.total} sets of initial weights every {minutes} minutes for "
                    f"everyone, and that is reached: try again in {wait} seconds, or pin the weights yourself and "
                    "paste their CID.",
                    wait,
                )
            if count:
                mine.append(now)
                self._all.append(now)
