"""The one mapping from errors to HTTP answers: under ``/api`` a JSON :class:`~marketplace.web.schemas.Problem`
``{"detail": "...", "errors": {field: message}}``, elsewhere the error page, with the same status:

* 400: a request body that is not UTF-8 JSON (FastAPI's own answer);
* 404: :class:`NotFound` (unknown project, round, transaction, model; a malformed address), and no such page;
* 409: :class:`Conflict` (the project's state does not allow the transaction now: still running, nothing to
  withdraw, deadline not passed);
* 422: :class:`Rejected` (the chain would reject the transaction), :class:`InvalidInput` and
  :class:`~marketplace.web.forms.FormErrors` (bad input, per field), and request validation errors;
* 503: :class:`~marketplace.adapters.chain.errors.ChainError` (the chain node does not answer) and
  :class:`Unavailable` (the IPFS node does not answer or is not configured);
* 500: anything else, logged; the answer says nothing about it.

Every message is passed through :func:`~marketplace.adapters.chain.redact.redact_urls` first: an unreachable RPC
endpoint is named in the error, and its URL may carry the provider's API key.

:data:`API_ERRORS`, :data:`BAD_BODY` and :data:`CONFLICT` document these answers in the OpenAPI schema.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from marketplace.adapters.chain.errors import ChainError
from marketplace.adapters.chain.redact import redact_urls
from marketplace.web.deps import get_page
from marketplace.web.forms import FormErrors
from marketplace.web.schemas import Problem
from marketplace.web.services.errors import Conflict, InvalidInput, NotFound, Rejected, Unavailable

log = logging.getLogger(__name__)

API_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Unknown project, round, transaction or address"},
    422: {"model": Problem, "description": "Invalid input, or the chain would reject it"},
    503: {"model": Problem, "description": "The chain node (or IPFS node) does not answer or is not configured"},
}
#: Operations with a JSON body: a body that is not UTF-8 cannot even be parsed (FastAPI answers 400).
BAD_BODY: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The request body is not UTF-8 JSON"},
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": Problem,
        "description": "The project's state does not allow it now (running, nothing owed, too early)",
    },
}

#: What the services and the job form raise: status and the error page's title (a class's nearest
#: listed base decides: a Conflict is a Rejected).
STATUS: dict[type[Exception], tuple[int, str]] = {
    NotFound: (404, "Not found"),
    Conflict: (409, "Not now"),
    Rejected: (422, "Rejected"),
    InvalidInput: (422, "Invalid request"),
    FormErrors: (422, "Invalid request"),
    Unavailable: (503, "Unavailable"),
}


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api")


def error_response(
    request: Request, status: int, title: str, detail: str, errors: dict[str, str] | None = None
) -> Response:
    """JSON ``{detail, errors}`` under /api, else the error page (URLs in messages without credentials)."""
    detail = redact_urls(detail)
    errors = {field: redact_urls(message) for field, message in (errors or {}).items()}
    if wants_json(request):
        return JSONResponse({"detail": detail, "errors": errors}, status_code=status)
    return get_page(request).render("error.html", {"status": status, "title": title, "detail": detail}, status)


async def typed_error(request: Request, exc: Exception) -> Response:
    """A :data:`STATUS` error: its status, its message, and its per-field messages if it has any."""
    status, title = next(STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS)
    errors = exc.errors if isinstance(exc, InvalidInput | FormErrors) else None
    return error_response(request, status, title, str(exc), errors)


async def chain_down(request: Request, exc: ChainError) -> Response:
    return error_response(request, 503, "Chain unavailable", f"the chain node could not answer: {exc}")


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    title = "Not found" if exc.status_code == 404 else "Error"
    detail = "no such page" if exc.status_code == 404 and exc.detail == "Not Found" else str(exc.detail)
    return error_response(request, exc.status_code, title, detail)


async def bad_request(request: Request, exc: RequestValidationError) -> Response:
    errors = {}
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        errors[".".join(loc) or "request"] = str(error.get("msg", "invalid"))
    detail = "; ".join(f"{k}: {v}" for k, v in errors.items())
    return error_response(request, 422, "Invalid request", detail, errors)


async def unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.url.path)
    return error_response(request, 500, "Something went wrong", "an internal error occurred; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    """Registers the mapping above on ``app``."""
    handlers: dict[type[Exception], Any] = {
        **dict.fromkeys(STATUS, typed_error),
        ChainError: chain_down,
        StarletteHTTPException: http_error,
        RequestValidationError: bad_request,
        Exception: unexpected,
    }
    for cls, handler in handlers.items():
        app.add_exception_handler(cls, handler)
