"""The chain reads the pages show beside the index (an aggregator's record, a trainer's reliability and track
record, a project's round deadlines and reliability bar), cached so that a page does not wait on the chain.

A read's answer is kept until :meth:`ChainReads.refresh` reads it again, which the deployment's context calls
right after a sync that applied new events (:attr:`~marketplace.web.indexer.Indexer.event_version`): these
views change only in transactions to the market or the registry, and every such transaction emits an event the
index reads. An answer also gets stale after :data:`MAX_AGE` seconds at most (a refresh reads it again then,
whatever the events say). Only the first read of an answer (after a start, or once unused for
:data:`MAX_AGE`) waits on the chain; concurrent first reads of the same answer wait for one call.

Uncached (``cached=False``) every read goes to the chain, as before issue 15 (the ``before`` mode of
``bench/web_load.py``). What a transaction is checked against (simulations, withdrawable amounts, what an
account may do now) is never read from here: it is read live by
:mod:`~marketplace.web.services.transactions`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from marketplace.adapters.chain.errors import ChainError
from marketplace.adapters.chain.market import (
    AggregatorRecord,
    MarketClient,
    RoundDeadlines,
    TrackRecord,
    VerifierInfo,
    read_verifier_info,
)

#: Seconds after which an answer is read again even without new events.
MAX_AGE = 60.0
#: Answers kept at most (the least recently used go first).
MAX_ENTRIES = 4096

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class _Entry:
    value: Any
    read_at: float
    used_at: float
    call: Callable[[], Any]


class ChainReads:
    """The market's and registry's views that pages show, cached (see the module docstring)."""

    def __init__(self, market: MarketClient, *, cached: bool = True, max_entries: int = MAX_ENTRIES) -> None:
        self.market = market
        self.cached = cached
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[Any, ...], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._first_reads: dict[tuple[Any, ...], threading.Lock] = {}
        self.chain_calls = 0  # reads that went to the chain (for tests and the benchmark)
        self._version = 0

    @property
    def version(self) -> int:
        """A number that changes whenever :meth:`refresh` changed a cached answer (or :meth:`clear` dropped them)."""
        return self._version

    # ------------------------------------------------------------------ the views

    def aggregator_record(self, aggregator: str) -> AggregatorRecord:
        """``MarketLens.aggregatorRecord``."""
        return self._read(("aggregator_record", aggregator), lambda: self.market.aggregator_record(aggregator))

    def required_track_record(self, project_id: int) -> int:
        """``TrainingMarket.requiredTrackRecord``."""
        return self._read(("required_track_record", project_id), lambda: self.market.required_track_record(project_id))

    def round_deadlines(self, project_id: int) -> RoundDeadlines:
        """``MarketLens.roundDeadlines``."""
        return self._read(("round_deadlines", project_id), lambda: self.market.round_deadlines(project_id))

    def awaits_reference(self, project_id: int) -> bool:
        """Whether the open round waits for the owner's reference (:meth:`MarketClient.awaits_reference`: the
        project expects it, ``getProject``, and the owner has not committed it, ``referenceOf``)."""
        market = self.market
        return self._read(
            ("awaits_reference", project_id), lambda: market.awaits_reference(market.get_project(project_id))
        )

    def reference_revealed(self, project_id: int, round_: int) -> bool:
        """Whether the owner revealed its reference row in ``round_`` (``MarketLens.referenceOf``: a revealed
        commitment). Only a revealed reference can screen an update out of a round's model."""
        key = ("reference_revealed", project_id, round_)
        return self._read(key, lambda: self.market.reference_of(project_id, round_).revealed)

    def reliability(self, trainer: str) -> int:
        """``ReliabilityRegistry.reliabilityOf``."""
        return self._read(("reliability", trainer), lambda: self.market.reliability(trainer))

    def track_record(self, trainer: str) -> TrackRecord:
        """``ReliabilityRegistry.trackRecordOf``."""
        return self._read(("track_record", trainer), lambda: self.market.track_record(trainer))

    def available_record(self, trainer: str) -> int:
        """``ReliabilityRegistry.availableOf``."""
        return self._read(("available_record", trainer), lambda: self.market.available_record(trainer))

    def reserved_record(self, project_id: int, trainer: str) -> int:
        """``ReliabilityRegistry.reservedOf`` of this market's ``project_id``."""
        key = ("reserved_record", project_id, trainer)
        return self._read(key, lambda: self.market.reserved_record(project_id, trainer))

    def verifier_info(self, address: str) -> VerifierInfo:
        """A round verifier's declarations (``IRoundVerifier``: proof system, rule version, size, sketch width)."""
        return self._read(("verifier_info", address), lambda: read_verifier_info(self.market.chain, address))

    # ------------------------------------------------------------------ the cache

    def refresh(self, *, everything: bool = True) -> int:
        """Reads again the answers used in the last :data:`MAX_AGE` seconds (all of them, or with
        ``everything=False`` only those older than :data:`MAX_AGE`) and forgets the others; returns how many it
        read. An answer the chain does not give now keeps its previous value (logged)."""
        if not self.cached:
            return 0
        now = time.monotonic()
        with self._lock:
            for key in [k for k, e in self._entries.items() if now - e.used_at > MAX_AGE]:
                del self._entries[key]
            due = [(k, e.call) for k, e in self._entries.items() if everything or now - e.read_at > MAX_AGE]
        for key, call in due:
            try:
                self.chain_calls += 1
                value = call()
            except ChainError as exc:
                log.warning("keeping the cached %s: the chain did not answer (%s)", key[0], exc)
                continue
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    if entry.value != value:
                        self._version += 1
                    entry.value, entry.read_at = value, time.monotonic()
        return len(due)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._version += 1

    def _read(self, key: tuple[Any, ...], call: Callable[[], T]) -> T:
        if not self.cached:
            self.chain_calls += 1
            return call()
        hit = self._hit(key)
        if hit is not None:
            return hit.value  # type: ignore[no-any-return]
        with self._lock:
            first = self._first_reads.setdefault(key, threading.Lock())
        with first:  # one chain call for concurrent first reads of the same answer
            hit = self._hit(key)
            if hit is not None:
                return hit.value  # type: ignore[no-any-return]
            self.chain_calls += 1
            try:
                value = call()
            finally:
                with self._lock:
                    self._first_reads.pop(key, None)
            now = time.monotonic()
            with self._lock:
                self._entries[key] = _Entry(value, now, now, call)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
            return value

    def _hit(self, key: tuple[Any, ...]) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.used_at = time.monotonic()
                self._entries.move_to_end(key)
            return entry
