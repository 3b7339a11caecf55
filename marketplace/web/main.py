"""The web app factory: :func:`create_app` wires the settings, the services (chain client, event index,
optional IPFS reader), the lifespan (first index sync, closing the index), the JSON API and page
routers, the static files, the error handlers and the page cache (:mod:`~marketplace.web.page_cache`) together.
Nothing else happens here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from marketplace.adapters.chain.errors import ChainError
from marketplace.web.errors import install_error_handlers
from marketplace.web.page_cache import PageCache
from marketplace.web.routes import api_router, pages_router
from marketplace.web.services.container import Services
from marketplace.web.settings import WebSettings
from marketplace.web.templating import build_templates

STATIC_DIR = Path(__file__).resolve().parent / "static"
API_DESCRIPTION = """Projects, rounds, proofs and trainers of a TrainingMarket deployment, read from the chain, and
unsigned transactions for your wallet (the server never signs).

One unit per kind of value, in and out: every amount `<name>` is **wei** as a decimal string, beside
`<name>_eth`, the same amount in ETH (a request takes either); percentages are **basis points** (`*_bps`,
1 bps = 0.01 %); periods are **seconds** (`*_period`) and points in time unix seconds. Lists come a page at a
time (`limit`, `offset`; the answer has `items` and `total`). An error is a `Problem`: `detail` says what went
wrong in a sentence, `code` names it for programs (the contract's custom error, e.g. `WrongStatus`), `field`
and `errors` name the fields at fault."""
log = logging.getLogger(__name__)


def create_app(settings: WebSettings) -> FastAPI:
    """The FastAPI app for one deployment (ChainError if its chain does not answer with the deployment's
    chain id). The index syncs at startup, then every ``sync_interval`` seconds in a background thread (or in
    requests: :class:`~marketplace.web.services.context.MarketContext`)."""
    services = Services.for_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            services.context.refresh(force=True)
        except ChainError as exc:  # serve anyway: pages explain the chain is unreachable
            log.warning("initial index sync failed: %s", exc)
        services.context.start()
        yield
        services.context.close()

    app = FastAPI(
        title="Training marketplace",
        description=API_DESCRIPTION,
        version="1",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's Swagger UI and ReDoc load from a CDN: /api/docs serves a vendored Swagger UI
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.services = services
    app.state.templates = build_templates()
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    app.include_router(api_router)
    app.include_router(pages_router)
    install_error_handlers(app)
    app.add_middleware(PageCache, context=services.context)
    return app
