"""The web app factory: ``create_app(settings)`` wires the chain client, the event index, the
optional IPFS reader, the HTML pages, the JSON API and the error pages together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.deploy import market_client
from marketplace.adapters.chain.errors import ChainError
from marketplace.web import filters
from marketplace.web.indexer import Indexer, ProofDocReader
from marketplace.web.schemas import ModelInit
from marketplace.web.service import Conflict, MarketService, NotFound, Rejected
from marketplace.web.settings import WebSettings

HERE = Path(__file__).resolve().parent
log = logging.getLogger(__name__)
PROOF_DOC_MAX_BYTES = 4 * 1024 * 1024
#: A proof document is a flat object of lists; a deeply nested one could crash the JSON parser (see safejson).
PROOF_DOC_MAX_DEPTH = 8


@lru_cache(maxsize=1)
def model_registry() -> dict[str, str]:
    """Registered architectures (name -> description); imported lazily (it pulls in torch)."""
    from marketplace.fl.models import REGISTRY

    return {name: arch.description for name, arch in sorted(REGISTRY.items())}


def proof_doc_reader(api_url: str, timeout: float) -> ProofDocReader:
    """Reads a round's JSON proof document from an IPFS node; None when it cannot."""
    from marketplace.adapters.ipfs.ipfs import IpfsClient
    from marketplace.protocol.safejson import loads_bounded

    client = IpfsClient(api_url, timeout=timeout, retries=0)

    def read(cid: str) -> dict[str, Any] | None:
        try:
            doc = loads_bounded(client.cat(cid, max_bytes=PROOF_DOC_MAX_BYTES), PROOF_DOC_MAX_DEPTH)
        except Exception as exc:  # unreachable node, unknown CID, not JSON: the page just omits it
            log.info("proof document %s unavailable: %s", cid, exc)
            return None
        return doc if isinstance(doc, dict) else None

    return read


def pin_initial_weights(api_url: str, name: str, seed: int, timeout: float = 30.0) -> Response | ModelInit:
    """Builds registry model ``name`` with ``seed`` and pins its state dict to IPFS (503 if the node fails)."""
    from marketplace.adapters.ipfs.errors import StorageError
    from marketplace.adapters.ipfs.ipfs import IpfsClient
    from marketplace.adapters.ipfs.store import ModelStore
    from marketplace.fl.models import build_model, num_params

    state = build_model(name, seed=seed).state_dict()
    try:
        with IpfsClient(api_url, timeout=timeout, retries=1) as client:
            cid = ModelStore(client).put_tensors(state, {"kind": "model", "model": name, "seed": str(seed)})
    except StorageError as exc:
        detail = f"the IPFS node at {api_url} did not take the weights: {exc}"
        return JSONResponse({"detail": detail, "errors": {}}, status_code=503)
    return ModelInit(cid=cid, model=name, params=num_params(name), seed=seed)


def build_service(settings: WebSettings) -> MarketService:
    """The chain client (read-only: the server holds no keys), index and service for ``settings``."""
    chain = ChainClient(settings.rpc_url, None, expected_chain_id=settings.deployment.chain_id)
    market = market_client(chain, settings.deployment)
    blocks = [c.block_number for c in settings.deployment.contracts.values()]
    start = max(0, min(blocks) - 1) if blocks else 0
    reader = proof_doc_reader(settings.ipfs_api, settings.ipfs_timeout) if settings.ipfs_api else None
    indexer = Indexer(settings.db_path, chain, market.market, market.registry, start_block=start, proof_docs=reader)
    return MarketService(chain, market, indexer, settings.network, settings.sync_interval)


def templates() -> Jinja2Templates:
    t = Jinja2Templates(directory=str(HERE / "templates"))
    filters.register(t.env)
    return t


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api")


def create_app(settings: WebSettings) -> FastAPI:
    """The FastAPI app for one deployment. The index syncs lazily (at most every ``sync_interval`` s)."""
    service = build_service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            service.refresh(force=True)
        except ChainError as exc:  # serve anyway: pages explain the chain is unreachable
            log.warning("initial index sync failed: %s", exc)
        yield
        service.indexer.close()

    app = FastAPI(
        title="Training marketplace",
        description="Projects, rounds, proofs and trainers of a TrainingMarket deployment, read from the chain.",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc load from a CDN; the schema is at /api/openapi.json
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.service = service
    app.state.templates = templates()
    app.state.models = model_registry()
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    from marketplace.web.api import router as api_router
    from marketplace.web.pages import router as pages_router

    app.include_router(api_router)
    app.include_router(pages_router)
    _install_error_handlers(app)
    return app


def error_response(
    request: Request, status: int, title: str, detail: str, errors: dict[str, str] | None = None
) -> Response:
    """JSON ``{detail, errors}`` under /api, else the error page."""
    if wants_json(request):
        return JSONResponse({"detail": detail, "errors": errors or {}}, status_code=status)
    context = {**base_context(request), "status": status, "title": title, "detail": detail}
    return request.app.state.templates.TemplateResponse(request, "error.html", context, status_code=status)


def base_context(request: Request) -> dict[str, Any]:
    """What every page's layout needs (nothing here calls the chain)."""
    settings: WebSettings = request.app.state.settings
    return {
        "settings": settings,
        "chain_id": settings.deployment.chain_id,
        "market_address": request.app.state.service.market.market.address,
        "htmx": request.headers.get("HX-Request") == "true",
    }


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> Response:
        return error_response(request, 404, "Not found", str(exc))

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict) -> Response:
        return error_response(request, 409, "Not now", str(exc))

    @app.exception_handler(Rejected)
    async def rejected(request: Request, exc: Rejected) -> Response:
        return error_response(request, 422, "Rejected", str(exc))

    @app.exception_handler(ChainError)
    async def chain_down(request: Request, exc: ChainError) -> Response:
        return error_response(request, 503, "Chain unavailable", f"the chain node could not answer: {exc}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        title = "Not found" if exc.status_code == 404 else "Error"
        detail = "no such page" if exc.status_code == 404 and exc.detail == "Not Found" else str(exc.detail)
        return error_response(request, exc.status_code, title, detail)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        errors = {}
        for error in exc.errors():
            loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
            errors[".".join(loc) or "request"] = str(error.get("msg", "invalid"))
        detail = "; ".join(f"{k}: {v}" for k, v in errors.items())
        return error_response(request, 422, "Invalid request", detail, errors)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return error_response(request, 500, "Something went wrong", "an internal error occurred; it has been logged")
