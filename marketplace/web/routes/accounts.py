"""Accounts: what one address has in this market (projects by role, earnings, what it can withdraw now,
reliability and its record, its rejection bonds), as JSON and as a page, and the form that opens one; and its
rejection bonds alone, with the transactions that withdraw them."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from marketplace.web.account_schemas import AccountBonds, AccountView
from marketplace.web.deps import BondsDep, PageDep, Synced
from marketplace.web.services.accounts import AccountService

api = APIRouter()
pages = APIRouter(include_in_schema=False)


def _service(services: Synced) -> AccountService:
    return AccountService(services.context, services.projects, services.trainers, services.bonds)


@api.get("/accounts/{address}", response_model=AccountView)
def account(services: Synced, address: str) -> AccountView:
    """An account's projects (owned, joined, aggregated) with what it earned, is owed, withdrew and can withdraw
    now (live) in each, and its reliability with the track record (live) and history behind it."""
    return _service(services).account(address)


@api.get("/accounts/{address}/bonds", response_model=AccountBonds)
def account_bonds(bonds: BondsDep, address: str) -> AccountBonds:
    """An account's rejection bonds: its credit (withdrawable now, live), what it withdrew, the bonds it posted as an
    aggregator still held and those of them returnable now (live), the rounds they concern, and the transactions
    that withdraw them (``withdraw_steps``: ``POST /api/tx/reclaim-bonds`` per returnable round, then
    ``POST /api/tx/withdraw-bonds``)."""
    return bonds.account_bonds(address)


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
