"""Answers of the pages that read the index, shared by identical requests until the index changes.

:class:`PageCache` is an ASGI middleware. A ``GET`` of one of :data:`CACHED_PATHS` (the project list and a
project, their JSON twins, a project's rounds and round pages, its live part, a trainer, an aggregator, the model
list) is answered from the
cache when the same request (path, query, and the htmx headers that choose a partial) was answered ``200`` at the
same :attr:`~marketplace.web.services.context.MarketContext.version` (the index and the cached chain reads
unchanged); otherwise the app answers it and the answer is kept. The first request after the index changed
gets the new answer; identical requests that arrive while it is being made get the answer before it (at most
one sync older) if there is one, else wait for it, instead of making it each. A cached answer is served in the
event loop, without a worker thread, so a burst of reads costs little more than writing the bytes.

It is on only while a background thread keeps the index fresh (``MarketContext.background``): when requests
sync the index themselves, the answer depends on that sync, which happens after this middleware would look.
Answers carry ``X-Index-Version``, the version they were made at.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

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
#: Answers kept at most (the least recently used go first).
MAX_ENTRIES = 1024
#: Largest answer kept, in bytes.
MAX_BODY = 1 << 20


@dataclass(frozen=True)
class CachedAnswer:
    version: tuple[int, int]
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


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
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not self.context.background
            or not CACHED_PATHS.match(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        key = (scope["path"], scope.get("query_string", b""), *(headers.get(h) for h in VARYING_HEADERS))
        version = self.context.version
        while True:
            answer = self._answers.get(key)
            pending = self._pending.get(key)
            if answer is not None and (answer.version == version or pending is not None):
                # the answer at this version, or, while someone makes that one, the one before it
                self.hits += 1
                self._answers.move_to_end(key)
                await _replay(answer, send)
                return
            if pending is None:
                break
            await asyncio.shield(pending)  # someone is answering this very request: take theirs
            version = self.context.version
        self.misses += 1
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[key] = done
        try:
            await self._answer_and_keep(key, version, scope, receive, send)
        finally:
            del self._pending[key]
            done.set_result(None)

    async def _answer_and_keep(
        self, key: tuple[Any, ...], version: tuple[int, int], scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Lets the app answer, passing its messages on, and keeps a complete ``200`` answer under ``key``."""
        start: Message | None = None
        chunks: list[bytes] = []
        size = 0
        keep = True

        async def capture(message: Message) -> None:
            nonlocal start, size, keep
            if message["type"] == "http.response.start":
                start = message
                keep = message["status"] == 200
                message = {**message, "headers": [*message.get("headers", []), _version_header(version)]}
            elif message["type"] == "http.response.body" and keep:
                body = message.get("body", b"")
                size += len(body)
                keep = size <= MAX_BODY
                chunks.append(body)
            await send(message)

        await self.app(scope, receive, capture)
        if keep and start is not None:
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"x-index-version"]
            self._answers[key] = CachedAnswer(version, start["status"], headers, b"".join(chunks))
            self._answers.move_to_end(key)
            while len(self._answers) > self.max_entries:
                self._answers.popitem(last=False)


def _version_header(version: tuple[int, int]) -> tuple[bytes, bytes]:
    return b"x-index-version", f"{version[0]}.{version[1]}".encode()


async def _replay(answer: CachedAnswer, send: Send) -> None:
    headers = [*answer.headers, _version_header(answer.version)]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})
