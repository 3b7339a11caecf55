"""A finalized round's rule recomputed from public data, once per round, for what the round's page says about it:
the rule's causes of its flags (:mod:`~marketplace.web.services.flag_reasons`) and what the owner's reference
changed in its pay (:mod:`~marketplace.web.services.reference_effects`).

:func:`public_recompute` reads the round as ``marketplace audit`` does: the revealed updates fetched from IPFS and
checked against their on-chain commitments (:func:`~marketplace.round.collect.collect_round`, the rows published in
disputes applied), the owner's reference row from its ``ReferenceRevealed`` event
(:func:`~marketplace.round.reference.revealed_reference`). :class:`RecomputeService` keeps the answers (bounded),
remembers a failure for a while, and runs one recomputation of a round at a time: a second request for the round
(the page asks for its flag causes and its reference's changes at once) waits for the first's answer instead of
fetching the updates again (and instead of being refused the one fetch slot a visitor has).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from marketplace.adapters.chain.market import MarketClient
from marketplace.adapters.ipfs.errors import StorageError
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.protocol.commitment import InvalidPublishedRow
from marketplace.round.reference import ReferenceMismatch, revealed_reference
from marketplace.web.schemas import ReferenceChanges
from marketplace.web.services.flag_reasons import FlagCause, flag_causes
from marketplace.web.services.ipfs_fetches import FailureMemory, WebFetches
from marketplace.web.services.reference_effects import reference_changes

#: Finalized rounds whose recomputation is kept in memory (a finalized round never changes).
CACHE_ROUNDS = 256


@dataclass(frozen=True)
class Recomputed:
    """A finalized round's rule recomputed from public data: ``causes`` of its flags by trainer address (only
    flagged trainers whose recorded flag the recomputation reproduced), what the owner's reference changed
    (``reference``: None if it revealed none), or why the round could not be recomputed (``unavailable``)."""

    causes: dict[str, list[FlagCause]]
    unavailable: str | None = None
    reference: ReferenceChanges | None = None


#: Recomputes one finalized round for a client: ``(project_id, round_, client) -> Recomputed`` (see
#: :class:`RecomputeService`).
Recompute = Callable[[int, int, str], Recomputed]


class RecomputeService:
    """Each finalized round's recomputation (:data:`Recompute`), made once per round and kept (bounded); a round
    that could not be recomputed is not tried again for ``failure_ttl`` seconds."""

    def __init__(
        self, recompute: Recompute, failure_ttl: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._recompute = recompute
        self._cache: dict[tuple[int, int], Recomputed] = {}
        self._running: dict[tuple[int, int], threading.Lock] = {}
        self._failures = FailureMemory(failure_ttl, clock)
        self._lock = threading.Lock()

    def get(self, project_id: int, round_: int, client: str = "") -> Recomputed:
        """Round ``round_`` of ``project_id`` recomputed, on first use (for ``client``: the recomputation's IPFS
        fetches count as one of its own, :class:`~.ipfs_fetches.WebFetches`). While it runs, another request for
        the round waits for its answer. An unavailable answer (IPFS down, an update nobody serves) is remembered for
        ``failure_ttl`` seconds: asking again within that time gets it from memory, without a fetch; later, the round
        is recomputed. :class:`~.errors.Unavailable` (not remembered) when the server runs all the IPFS fetches it
        allows for visitors now."""
        key = (project_id, round_)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            running = self._running.setdefault(key, threading.Lock())
        try:
            with running:
                return self._answer(key, client)
        finally:
            with self._lock:
                if self._running.get(key) is running:
                    del self._running[key]

    def _answer(self, key: tuple[int, int], client: str) -> Recomputed:
        """The cached or remembered answer for ``key``, or a new recomputation (kept, or remembered if unavailable)."""
        with self._lock:
            if key in self._cache:  # made while this request waited
                return self._cache[key]
        recalled = self._failures.recall(key)
        if recalled is not None:
            reason, age, left = recalled
            return Recomputed({}, f"{reason} ({age} seconds ago: this server tries again in {left} seconds)")
        result = self._recompute(key[0], key[1], client)
        if result.unavailable is None:
            with self._lock:
                if len(self._cache) >= CACHE_ROUNDS:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = result
        else:
            self._failures.remember(key, result.unavailable)
        return result


def public_recompute(market: MarketClient, fetches: WebFetches) -> Recompute:
    """A :data:`Recompute` that reads the chain through ``market`` and the updates through ``fetches`` (one of
    its slots for the whole recomputation; no node: every round is unavailable)."""

    def recompute(project_id: int, round_: int, client: str) -> Recomputed:
        if fetches.ipfs_api is None:
            return Recomputed({}, "this server has no IPFS node to fetch the round's updates from")
        from marketplace.round.collect import collect_round  # lazy: it imports torch (the model architectures)

        recorded = next((r for r in market.finalized_rounds(project_id) if r.round == round_), None)
        if recorded is None:
            return Recomputed({}, f"round {round_} of project {project_id} is not finalized")
        model = market.get_project(project_id).model_name
        rejected_on_chain = set(market.rejected_trainers(project_id, round_))
        try:
            with fetches.slot(client), fetches.client() as ipfs:
                inputs = collect_round(market, ModelStore(ipfs), project_id, round_, model)
        except (StorageError, KeyError, ValueError) as exc:
            return Recomputed({}, f"the updates could not be read ({type(exc).__name__}: {exc})")
        unread = set(inputs.rejected) - rejected_on_chain
        if unread:
            return Recomputed({}, f"{len(unread)} revealed update(s) cannot be read by the public (encrypted to the "
                                  "aggregator, or no longer served): the rule cannot be recomputed")  # fmt: skip
        try:
            row = revealed_reference(market, project_id, round_, inputs.sketch_width)
        except (InvalidPublishedRow, ReferenceMismatch) as exc:
            reference: ReferenceChanges | None = ReferenceChanges(
                state="unavailable",
                summary=f"The owner's revealed reference row cannot be used: {exc}.",
                unavailable=f"the revealed reference row cannot be used ({type(exc).__name__})",
            )
        else:
            reference = None if row is None else reference_changes(inputs, row, recorded.scores)
        return Recomputed(flag_causes(inputs, recorded.flags), reference=reference)

    return recompute
