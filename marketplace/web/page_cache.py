"""Answers of the pages that read the index, shared by identical requests until the index changes.

:class:`PageCache` is an ASGI middleware. A ``GET`` of one of :data:`CACHED_PATHS` (the project list and a
project, their JSON twins, a project's rounds and round pages, its live part, a trainer, an aggregator, the model
list) is answered from the
cache when the same request (path, query, and the htmx headers that choose a partial) was answered ``200`` at the
same :attr:`~marketplace.web.services.context.MarketContext.version` (the index and the cached chain reads
unchanged) and, for an answer that shows the chain's time (a training project's open round: the app marks it with
the :data:`SHOWS_CHAIN_TIME` header, which is not passed on), at the same synced block; otherwise the app answers
it and the answer is kept. The first request after the index changed
gets the new answer; identical requests that arrive while it is being made get the answer before it (at most
one sync older) if there is one, else wait for it, instead of making it each. A cached answer is served in the
event loop, without a worker thread, so a burst of reads costs little more than writing the bytes.

It is on only while a background thread keeps the index fresh (``MarketContext.background``): when requests
sync the index themselves, the answer depends on that sync, which happens after this middleware would look.
Answers carry ``X-Index-Version``, the version they were made at, and (these paths, on or off)
``Server-Timing: app;dur=<ms>``, the time the server took to start answering.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from marketplace.web.services.context import MarketContext

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths whose ``GET`` answer depends only on the index, the cached chain reads and the query (a round's page and
#: the project's live part, which htmx polls while it trains, among them).
CACHED_PATHS = re.compile(
    r"^/(?:api/)?projects(?:/\d{1,18}(?:/rounds(?:/\d{1,18})?|/live)?)?$"
    r"|^/(?:api/)?trainers/[^/]{1,100}$"
    r"|^/api/aggregators/[^/]{1,100}$"
    r"|^/api/models$"
)
#: Request headers that change the answer (htmx asks for a partial).
VARYING_HEADERS = (b"hx-request", b"hx-target")
#: The header with which a route marks an answer that depends on the chain's time (the synced block), not only on
#: the index's version: kept only until the next block.
SHOWS_CHAIN_TIME = "x-shows-chain-time"
#: Answers kept at most (the least recently used go first).
MAX_ENTRIES = 1024
#: Largest answer kept, in bytes.
MAX_BODY = 1 << 20


@dataclass(frozen=True)
class CachedAnswer:
    version: tuple[int, int]
    head: int | None  # the synced block, for an answer that shows the chain's time; None for the others
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def current(self, version: tuple[int, int], head: int | None) -> bool:
        """Whether the answer is the one the app would give at ``version`` and ``head``."""
        return self.version == version and (self.head is None or self.head == head)


class PageCache:
    """The middleware (see the module docstring); ``context`` is the deployment whose version keys the answers."""

    def __init__(self, app: ASGIApp, context: MarketContext, max_entries: int = MAX_ENTRIES) -> None:
        self.app = app
        self.context = context
        self.max_entries = max_entries
        self._answers: OrderedDict[tuple[Any, ...], CachedAnswer] = OrderedDict()
        self._pending: dict[tuple[Any, ...], asyncio.Future[None]] = {}
        self.hits = 0
        self.misses = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not CACHED_PATHS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        send = _timed(send)
        if not self.context.background:
            await self.app(scope, receive, _without_time_mark(send))
            return
        headers = dict(scope.get("headers") or [])
        key = (scope["path"], scope.get("query_string", b""), *(headers.get(h) for h in VARYING_HEADERS))
        version, head = self.context.version, self.context.head
        while True:
            answer = self._answers.get(key)
            pending = self._pending.get(key)
            if answer is not None and (answer.current(version, head) or pending is not None):
                # the answer at this version, or, while someone makes that one, the one before it
                self.hits += 1
                self._answers.move_to_end(key)
                await _replay(answer, send)
                return
            if pending is None:
                break
            await asyncio.shield(pending)  # someone is answering this very request: take theirs
            version, head = self.context.version, self.context.head
        self.misses += 1
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[key] = done
        try:
            await self._answer_and_keep(key, version, head, scope, receive, send)
        finally:
            del self._pending[key]
            done.set_result(None)

    async def _answer_and_keep(
        self,
        key: tuple[Any, ...],
        version: tuple[int, int],
        head: int | None,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Lets the app answer, passing its messages on, and keeps a complete ``200`` answer under ``key``."""
        start: Message | None = None
        chunks: list[bytes] = []
        size = 0
        keep = True
        timed = False

        async def capture(message: Message) -> None:
            nonlocal start, size, keep, timed
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                timed = any(k.lower() == SHOWS_CHAIN_TIME.encode() for k, _ in headers)
                headers = [(k, v) for k, v in headers if k.lower() != SHOWS_CHAIN_TIME.encode()]
                start = {**message, "headers": headers}
                keep = message["status"] == 200
                message = {**message, "headers": [*headers, _version_header(version)]}
            elif message["type"] == "http.response.body" and keep:
                body = message.get("body", b"")
                size += len(body)
                keep = size <= MAX_BODY
                chunks.append(body)
            await send(message)

        await self.app(scope, receive, capture)
        if keep and start is not None:
            dropped = (b"x-index-version", b"server-timing")  # added again to each answer
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in dropped]
            answer = CachedAnswer(version, head if timed else None, start["status"], headers, b"".join(chunks))
            self._answers[key] = answer
            self._answers.move_to_end(key)
            while len(self._answers) > self.max_entries:
                self._answers.popitem(last=False)


def mark_chain_time(response: Response, shows: bool = True) -> Response:
    """``response`` marked (if it ``shows`` the chain's time: an open round's phase follows the clock) as an answer
    the cache keeps only until the next block (:data:`SHOWS_CHAIN_TIME`)."""
    if shows:
        response.headers[SHOWS_CHAIN_TIME] = "1"
    return response


def _timed(send: Send) -> Send:
    """``send`` that adds ``Server-Timing: app;dur=<ms>`` to the answer: how long the server took from here to the
    answer's start (browsers' developer tools show it; ``bench/web_load.py`` reads it)."""
    began = time.perf_counter()

    async def timed(message: Message) -> None:
        if message["type"] == "http.response.start":
            took = f"app;dur={(time.perf_counter() - began) * 1000:.2f}".encode()
            message = {**message, "headers": [*message.get("headers", []), (b"server-timing", took)]}
        await send(message)

    return timed


def _without_time_mark(send: Send) -> Send:
    """``send`` without the :data:`SHOWS_CHAIN_TIME` header (the cache's business only)."""

    async def unmarked(message: Message) -> None:
        if message["type"] == "http.response.start":
            kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != SHOWS_CHAIN_TIME.encode()]
            message = {**message, "headers": kept}
        await send(message)

    return unmarked


def _version_header(version: tuple[int, int]) -> tuple[bytes, bytes]:
    return b"x-index-version", f"{version[0]}.{version[1]}".encode()


async def _replay(answer: CachedAnswer, send: Send) -> None:
    headers = [*answer.headers, _version_header(answer.version)]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})
