# ruff: noqa: F811  (fixtures imported from tests.web_fixtures are used as test arguments)
"""The account page and its JSON twin (issue 15, beyond the anchors): for a finished project with an owner, an
aggregator and trainers, each account sees the project under its role, what its work earned, what it can withdraw
now (as the market's ``withdrawable`` says, and 0 once withdrawn), and its reliability with the record behind it;
the page passes the browser audit at a phone's and a laptop's width. On the session anvil and a real IPFS node."""

from __future__ import annotations

import re
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from playwright.sync_api import BrowserContext, expect

from marketplace.adapters.chain.anvil import AnvilNode
from marketplace.web.filters import round_eth
from marketplace.web.schemas import eth
from marketplace.web.server import BackgroundServer
from tests.browser_fixtures import audit, browser_context, server, use_wallet, watch_errors  # noqa: F401
from tests.market_fixtures import ETH, Actors
from tests.test_web_a11y import visit
from tests.web_fixtures import (  # noqa: F401
    FinishedProject,
    client,
    finished_project,
    ipfs,
    ipfs_node,
    web_app,
    web_settings,
)

NBSP = "\N{NO-BREAK SPACE}"


def _account(client: TestClient, address: str) -> dict[str, Any]:
    response = client.get(f"/api/accounts/{address}")
    assert response.status_code == 200, response.text
    return response.json()


def _project(view: dict[str, Any], pid: int) -> dict[str, Any]:
    return next(p for p in view["projects"] if p["project_id"] == pid)


def test_each_role_sees_the_project_its_earnings_and_what_it_can_withdraw(
    client: TestClient, actors: Actors, finished_project: FinishedProject
) -> None:
    pid = finished_project.project_id
    market = actors.owner
    trainer = actors.trainers[0]
    assert finished_project.trainers[0] == trainer.address
    stake = market.get_project(pid).stake

    owner = _account(client, actors.owner.address)
    assert (owner["owned"], owner["joined"], owner["aggregated"]) == ([pid], [], [])
    assert _project(owner, pid)["roles"] == ["owner"]
    assert _project(owner, pid)["earned"] == "0"  # a refund is not earned
    owner_back = market.withdrawable(pid, actors.owner.address)
    assert owner_back > 0 and _project(owner, pid)["withdrawable"] == str(owner_back)

    aggregator = _account(client, actors.aggregator.address)
    assert (aggregator["owned"], aggregator["joined"], aggregator["aggregated"]) == ([], [], [pid])
    fee = _project(aggregator, pid)
    assert fee["roles"] == ["aggregator"] and fee["earned"] == str(ETH // 2)  # both rounds finalized: the whole fee
    assert fee["withdrawable"] == str(market.withdrawable(pid, actors.aggregator.address)) == str(ETH // 2)

    mine = _account(client, trainer.address)
    assert (mine["owned"], mine["joined"], mine["aggregated"]) == ([], [pid], [])
    row = _project(mine, pid)
    assert row["roles"] == ["trainer"] and row["counted"] is True and row["flagged_rounds"] == 0
    owed = market.withdrawable(pid, trainer.address)
    assert int(row["earned"]) > 0 and int(row["earned"]) + stake == owed  # never flagged: stake back plus rewards
    assert row["withdrawable"] == row["entitled"] == str(owed) and row["withdrawn"] == "0"
    assert mine["withdrawable"] == str(owed) and mine["earned"] == row["earned"]
    assert mine["reliability_bps"] == market.reliability(trainer.address) and len(mine["history"]) == 2
    assert mine["track_record"]["contributed"] == 2

    flagged = _project(_account(client, finished_project.trainers[2]), pid)
    assert flagged["flagged_rounds"] == 1

    assert trainer.withdraw(pid) == owed
    after = _project(_account(client, trainer.address), pid)
    assert (after["withdrawable"], after["withdrawn"], after["earned"]) == ("0", str(owed), row["earned"])

    page = client.get(f"/accounts/{trainer.address}").text
    assert re.search(rf'id="account-joined"><a href="/projects/{pid}">project {pid}</a>', page)
    line = page[page.index(f'data-project-id="{pid}"') :].split("</tr>")[0]
    assert f"{round_eth(owed)}{NBSP}ETH" in line.split('account-withdrawn">')[1].split("</td>")[0]
    assert f"0{NBSP}ETH" in line.split('account-withdrawable">')[1]


def test_an_owner_aggregating_its_own_project_has_both_roles_and_a_stranger_none(
    client: TestClient, actors: Actors
) -> None:
    pid = actors.create(aggregator=actors.owner.address)
    actors.trainers[0].join(pid)
    owner = _account(client, actors.owner.address)
    assert owner["owned"] == owner["aggregated"] == [pid] and _project(owner, pid)["roles"] == ["owner", "aggregator"]
    trainer = _project(_account(client, actors.trainers[0].address), pid)
    assert trainer["counted"] is False and trainer["status"] == "open" and trainer["withdrawable"] == "0"

    stranger = _account(client, actors.stranger.address)
    assert stranger["projects"] == [] and stranger["reliability_bps"] == 5000
    assert "No project owned, joined or aggregated" in client.get(f"/accounts/{actors.stranger.address}").text
    assert client.get("/api/accounts/0x1234").status_code == 404
    lookup = client.get("/accounts", params={"address": f" {actors.owner.address} "}, follow_redirects=False)
    assert lookup.status_code == 303 and lookup.headers["location"] == f"/accounts/{actors.owner.address}"


@pytest.mark.browser
def test_the_account_page_is_accessible_and_fits_a_phone_and_a_laptop(
    server: BackgroundServer, browser_context: BrowserContext, anvil: AnvilNode, actors: Actors,
    accounts: list[LocalAccount], finished_project: FinishedProject,
) -> None:  # fmt: skip
    """The connected wallet's own account page offers "Withdraw" on each project with something to withdraw now and
    follows the transaction to its confirmation; another account's page offers nothing to this wallet; "My account"
    in the header leads to the connected wallet's page."""
    pid = finished_project.project_id
    trainer = finished_project.trainers[0]
    assert accounts[3].address == trainer
    use_wallet(browser_context, anvil.url, accounts[3])
    page = browser_context.new_page()
    errors = watch_errors(page)
    visit(page, f"{server.url}/accounts")
    mine = page.locator("#my-account")
    expect(mine).to_be_visible()
    expect(mine).to_have_attribute("href", f"/accounts/{trainer}")
    page.fill("#account-lookup input[name=address]", trainer)
    page.click("#account-lookup button[type=submit]")
    expect(page.locator("h1")).to_contain_text(trainer)
    page.click("#wallet-button")  # the test wallet forgets the connection on a new page
    row = page.locator(f'#account-projects tr[data-project-id="{pid}"]')
    expect(row.locator(".account-roles")).to_have_text("trainer")
    expect(page.locator("#account-history tbody tr")).to_have_count(2)
    expect(mine).to_have_attribute("aria-current", "page")
    owed = actors.owner.withdrawable(pid, trainer)
    button = row.locator("[data-account-withdraw]")
    expect(button).to_be_visible()  # this account's own wallet: it can withdraw here
    expect(button).to_have_attribute("aria-label", f"Withdraw {eth(owed)} ETH from project {pid}")
    expect(page.locator("#account-withdraw-note")).to_be_hidden()
    problems = audit(page, "account")

    button.click()
    status = page.locator("#account-withdraw-status")
    expect(status).to_have_attribute("data-state", "confirmed", timeout=60_000)
    expect(status.locator(".tx-hash")).to_be_visible()
    expect(page.locator("#account-withdraw-done")).to_contain_text(f"Withdraw {eth(owed)} ETH from project {pid}")
    expect(row.locator(".account-withdrawable")).to_have_text(f"0{NBSP}ETH")  # re-rendered from the chain
    expect(row.locator(".account-withdrawn")).to_have_text(f"{round_eth(owed)}{NBSP}ETH")
    expect(row.locator("[data-account-withdraw]")).to_have_count(0)
    assert actors.owner.withdrawable(pid, trainer) == 0
    problems += audit(page, "account-withdrawn")

    aggregator = actors.aggregator.address  # its fee is withdrawable, but not by this wallet
    visit(page, f"{server.url}/accounts/{aggregator}")
    other = page.locator(f'#account-projects tr[data-project-id="{pid}"]')
    expect(other.locator(".account-withdrawable")).not_to_have_text(f"0{NBSP}ETH")
    expect(other.locator("[data-account-withdraw]")).to_be_hidden()
    expect(page.locator("#account-withdraw-note")).to_contain_text(
        "only this account's own wallet can withdraw its funds"
    )
    expect(mine).not_to_have_attribute("aria-current", "page")
    problems += audit(page, "account-of-another-wallet")
    mine.click()
    expect(page).to_have_url(f"{server.url}/accounts/{trainer}")
    assert actors.owner.withdrawable(pid, aggregator) > 0
    assert errors == [], errors
    assert problems == [], "\n".join(problems)
