"""Accounts: what one address has in this market (projects by role, earnings, what it can withdraw now,
reliability and its record), as JSON and as a page, and the form that opens one."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from marketplace.web.account_schemas import AccountView
from marketplace.web.deps import PageDep, Synced
from marketplace.web.services.accounts import AccountService

api = APIRouter()
pages = APIRouter(include_in_schema=False)


def _service(services: Synced) -> AccountService:
    return AccountService(services.context, services.projects, services.trainers)


@api.get("/accounts/{address}", response_model=AccountView)
def account(services: Synced, address: str) -> AccountView:
    """An account's projects (owned, joined, aggregated) with what it earned, is owed, withdrew and can withdraw
    now (live) in each, and its reliability with the track record (live) and history behind it."""
    return _service(services).account(address)


@pages.get("/accounts")
def account_lookup(page: PageDep, address: str = "") -> Response:
    """The lookup form's target: a redirect to the account page of ``address``; without one, the form."""
    if address.strip():
        return RedirectResponse(f"/accounts/{address.strip()}", status_code=303)
    return page.render("account.html", {"a": None})


@pages.get("/accounts/{address}")
def account_page(page: PageDep, services: Synced, address: str) -> Response:
    view = _service(services).account(address)
    return page.render("account.html", {"a": view})
