"""The HTML side: the Jinja2 templates (with :mod:`~marketplace.web.filters`) and :class:`Page`, which
renders one of them for a request with what every page's layout needs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from marketplace.adapters.chain.redact import redact_url
from marketplace.web.filters import register as register_filters
from marketplace.web.settings import WebSettings

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def build_templates() -> Jinja2Templates:
    """The app's templates, with the project's filters registered."""
    templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    register_filters(templates.env)
    return templates


def wallet_rpc_url(rpc_url: str) -> str:
    """The RPC URL a wallet may be offered when it adds this network (``wallet_addEthereumChain``): the server's,
    unless it carries credentials (an API key in the path or query, a password), which never leave the server;
    then "" (the user adds the network with an RPC of their own)."""
    return rpc_url if redact_url(rpc_url) == rpc_url else ""


@dataclass(frozen=True)
class Page:
    """Renders templates in answer to ``request``."""

    request: Request
    templates: Jinja2Templates
    settings: WebSettings
    market_address: str

    @property
    def htmx(self) -> bool:
        """Whether htmx sent the request (it swaps the answer into the page)."""
        return self.request.headers.get("HX-Request") == "true"

    @property
    def htmx_target(self) -> str | None:
        """The id of the element htmx swaps the answer into, if any."""
        return self.request.headers.get("HX-Target")

    def layout_context(self) -> dict[str, Any]:
        """What every page's layout needs (nothing here calls the chain)."""
        return {
            "settings": self.settings,
            "chain_id": self.settings.deployment.chain_id,
            "market_address": self.market_address,
            "htmx": self.htmx,
            "explorer_url": (self.settings.explorer_url or "").rstrip("/"),
            "wallet_rpc_url": wallet_rpc_url(self.settings.rpc_url),
        }

    def render(self, name: str, context: dict[str, Any], status: int = 200) -> Response:
        """Template ``name`` with the layout's context and ``context``."""
        return self.templates.TemplateResponse(
            self.request, name, {**self.layout_context(), **context}, status_code=status
        )
