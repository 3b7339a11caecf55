# ruff: noqa: F811  (fixtures imported from tests.web_fixtures and tests.browser_fixtures are used as test arguments)
"""Rejection bonds in the web app, against a real chain (session anvil) and IPFS node: a round of real committed rows
in which the aggregator announces two rejections with their bonds, one trainer disputes (and is reimbursed its
dispute's gas out of its bond) and the other lets its rejection stand. The project and round pages show each
rejection's bond and where it went; an account shows its bond credit; the web's withdrawal collects the bonds as
``marketplace project withdraw`` does (the held bonds returned to the aggregator, the credits withdrawn, the payout),
each transaction unsigned for the wallet; in the browser, the trainer that won its dispute sees its credit and
withdraws it, its balance rising by it. The bookkeeping itself is also checked without a chain."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from markupsafe import escape
from playwright.sync_api import BrowserContext, expect

from marketplace.adapters.chain.anvil import AnvilNode
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.web.filters import round_eth
from marketplace.web.schemas import eth
from marketplace.web.server import BackgroundServer
from marketplace.web.services.bond_ledger import Ledger, ledgers, round_bonds, trainer_bond
from tests.browser_fixtures import audit, browser_context, server, use_wallet, watch_errors  # noqa: F401
from tests.disputes import close_disputes
from tests.market_fixtures import Actors
from tests.test_disputes import Round, _dispute, _finalization, _training_round
from tests.test_web_a11y import visit
from tests.test_web_api import send_prepared
from tests.web_fixtures import client, ipfs, ipfs_node, proof_document, web_app, web_settings  # noqa: F401

NBSP = "\N{NO-BREAK SPACE}"
A, B, C = "0x" + "a" * 40, "0x" + "b" * 40, "0x" + "c" * 40


# ---------------------------------------------------------------- the bookkeeping (no chain)


def test_a_rounds_bonds_add_up_and_each_rejections_bond_says_where_it_went() -> None:
    rows = [
        {"kind": "posted", "round": 0, "account": A, "amount": "600"},
        {"kind": "awarded", "round": 0, "account": B, "amount": "150"},
        {"kind": "posted", "round": 1, "account": A, "amount": "300"},
        {"kind": "returned", "round": 0, "account": A, "amount": "450"},
        {"kind": "awarded", "round": 2, "account": B, "amount": "9"},  # no posting: not the market's
    ]
    books = ledgers(rows, {0: [B, C], 1: [C]})
    assert list(books) == [0, 1]
    first, second = books[0], books[1]
    assert (first.bond, first.reimbursed, first.returned, first.held) == (300, 150, 450, 0)
    assert (second.bond, second.reimbursed, second.returned, second.held) == (300, 0, None, 300)
    view = round_bonds(first)
    assert int(view.posted) == int(view.reimbursed) + int(view.returned) + int(view.held)
    assert view.summary == (
        f"{eth(600)} ETH posted by the aggregator for 2 rejections ({eth(300)} ETH each); {eth(150)} ETH reimbursed to "
        f"1 disputing trainer for its dispute's gas; {eth(450)} ETH returned to the aggregator"
    )
    assert round_bonds(second).summary.endswith(
        f"{eth(300)} ETH held until the round's dispute window is over, then returned to it"
    )

    won = trainer_bond(first, B)
    assert won is not None and (won.bond, won.reimbursed, won.returned) == ("300", "150", "150")
    assert won.summary == (
        f"bond {eth(300)} ETH posted by the aggregator: {eth(150)} ETH reimbursed to the trainer for its dispute's "
        f"gas, {eth(150)} ETH returned to the aggregator"
    )
    stood = trainer_bond(first, C)
    assert stood is not None and (stood.reimbursed, stood.returned) == ("0", "300")
    held = trainer_bond(second, C)
    assert held is not None and held.returned is None and "held" in held.summary
    assert trainer_bond(first, A) is None and trainer_bond(None, B) is None  # not rejected; no bonds
    assert trainer_bond(Ledger(3, A, 0, (B,)), B) is None  # a market without bonds


# ---------------------------------------------------------------- on a real chain


def _rejected_round(actors: Actors) -> tuple[Round, LocalAccount | Any, str, int]:
    """A training round whose aggregator announced two rejections with their bonds (trainers 1 and 2); returns the
    round, the trainer that will dispute, the one whose rejection will stand, and the bond per rejection."""
    rnd = _training_round(actors)
    disputer, stands = rnd.trainers[1], rnd.trainers[2].address
    actors.aggregator.reject_submissions(rnd.pid, 0, [disputer.address, stands])
    return rnd, disputer, stands, actors.owner.rejection_bond()


def _finalize(actors: Actors, ipfs: IpfsClient, rnd: Round, stands: str) -> None:
    """Finalizes the round once its dispute window is over, the standing rejection rejected."""
    close_disputes(actors.owner, rnd.pid)
    result = _finalization(actors.aggregator, rnd, {stands})
    doc = proof_document(actors, rnd.pid, 0, result.scores, result.flags, 0.9)
    actors.aggregator.finalize_round(rnd.pid, 0, replace(result, proof_cid=ipfs.add(doc.to_bytes())))


def _by_trainer(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["trainer"]: e for e in entries}


def test_the_project_and_round_pages_show_each_rejections_bond_and_where_it_went(
    client: TestClient, actors: Actors, ipfs: IpfsClient
) -> None:
    """Announced: each rejected trainer's bond is held (open round, project's bonds). Disputed: the disputer's
    reimbursement is its ``BondAwarded``. Finalized and reclaimed: the rest of the disputer's bond and the whole
    standing rejection's bond are returned to the aggregator; posted = reimbursed + returned, nothing held."""
    rnd, disputer, stands, bond = _rejected_round(actors)
    pid = rnd.pid
    detail = client.get(f"/api/projects/{pid}").json()
    (posted,) = detail["bonds"]
    assert (posted["round"], posted["rejections"], posted["bond"]) == (0, 2, str(bond))
    assert posted["posted"] == posted["held"] == detail["bonds_held"] == str(2 * bond)
    states = _by_trainer(detail["open_round"]["trainers"])
    assert states[disputer.address]["bond"]["returned"] is None
    assert states[stands]["bond"]["bond"] == str(bond) and states[stands]["bond"]["summary"].startswith(
        f"bond {eth(bond)} ETH posted by the aggregator: held"
    )
    page = client.get(f"/projects/{pid}").text
    assert page.count('<small class="bond-note">') == 2 and escape(states[stands]["bond"]["summary"]) in page
    assert states[rnd.trainers[0].address]["bond"] is None

    (award,) = actors.events(_dispute(disputer, rnd), "BondAwarded")
    reimbursed = int(award["amount"])
    assert 0 < reimbursed < bond
    live = client.get(f"/api/projects/{pid}").json()["bonds"][0]
    assert (live["reimbursed"], live["held"]) == (str(reimbursed), str(2 * bond - reimbursed))

    _finalize(actors, ipfs, rnd, stands)
    held = client.get(f"/api/projects/{pid}").json()
    assert held["bonds"][0]["held"] == str(2 * bond - reimbursed)  # finalized, not yet returned
    entries = _by_trainer(held["rounds"][0]["trainers"])
    assert entries[disputer.address]["bond"]["returned"] is None

    assert actors.aggregator.reclaim_bonds(pid, 0) == 2 * bond - reimbursed
    detail = client.get(f"/api/projects/{pid}").json()
    (returned,) = detail["bonds"]
    assert (returned["reimbursed"], returned["returned"], returned["held"]) == (
        str(reimbursed), str(2 * bond - reimbursed), "0"
    )  # fmt: skip
    assert detail["bonds_held"] == "0" and detail["rounds"][0]["bonds"] == returned
    entries = _by_trainer(detail["rounds"][0]["trainers"])
    won, lost = entries[disputer.address]["bond"], entries[stands]["bond"]
    assert (won["bond"], won["reimbursed"], won["returned"]) == (str(bond), str(reimbursed), str(bond - reimbursed))
    assert (lost["reimbursed"], lost["returned"]) == ("0", str(bond))
    assert entries[rnd.trainers[0].address]["bond"] is None

    page = client.get(f"/projects/{pid}").text
    line = page[page.index('<table class="stack" role="table" id="bonds">') :].split("</table>")[0]
    assert 'data-round="0"' in line and f"{round_eth(2 * bond)}{NBSP}ETH" in line
    assert f"{round_eth(reimbursed)}{NBSP}ETH" in line and f"{round_eth(2 * bond - reimbursed)}{NBSP}ETH" in line
    round0 = client.get(f"/projects/{pid}/rounds/0").text
    assert f'id="round-bonds" data-posted="{2 * bond}" data-held="0">{escape(returned["summary"])}.' in round0
    assert escape(won["summary"]) in round0 and escape(lost["summary"]) in round0
    assert f"{eth(reimbursed)} ETH reimbursed to the trainer for its dispute's gas" in won["summary"]


def _actions(client: TestClient, pid: int, account: str) -> dict[str, Any]:
    response = client.get(f"/api/projects/{pid}/actions", params={"account": account})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_webs_withdrawal_collects_the_bonds_as_the_command_line_does(
    client: TestClient, actors: Actors, accounts: list[LocalAccount], ipfs: IpfsClient
) -> None:
    """The disputer's withdrawal is its bond credit, then its payout; the aggregator's first returns the round's held
    bonds (only its own withdrawal does that), then withdraws its credit and fee. Each step is an unsigned
    transaction the wallet signs; a step that cannot go through now is refused in words (409), bad input with the
    usual errors."""
    rnd, disputer, stands, bond = _rejected_round(actors)
    pid, aggregator = rnd.pid, actors.aggregator.address
    early = client.post("/api/tx/reclaim-bonds", json={"project_id": pid, "round": 0, "sender": aggregator})
    assert early.status_code == 409 and early.json()["code"] == "BondsStillAtStake"
    assert early.json()["detail"].startswith(
        f"The chain would refuse to return the rejection bonds of round 0 of project {pid}: the bonds of round 0 of "
        f"project {pid} come back only after its dispute window, open until "
    )
    (award,) = actors.events(_dispute(disputer, rnd), "BondAwarded")
    credit = int(award["amount"])
    _finalize(actors, ipfs, rnd, stands)
    key = {a.address: a for a in accounts}

    plan = _actions(client, pid, disputer.address)
    owed = actors.owner.withdrawable(pid, disputer.address)
    assert plan["bond_credit"] == str(credit) == str(actors.owner.bond_credit(disputer.address))
    assert [(s["action"], s["amount"]) for s in plan["withdraw_steps"]] == [
        ("withdraw-bonds", str(credit)), ("withdraw", str(owed))
    ]  # fmt: skip
    mine = client.get(f"/api/accounts/{disputer.address}").json()["bonds"]
    assert (mine["credit"], mine["held"], mine["withdrawn"]) == (str(credit), "0", "0")
    assert [(r["project_id"], r["round"], r["role"], r["credited"]) for r in mine["rounds"]] == [
        (pid, 0, "trainer", str(credit))
    ]
    prepared = client.post("/api/tx/withdraw-bonds", json={"sender": disputer.address.lower()})
    assert prepared.status_code == 200, prepared.text
    tx = prepared.json()
    assert tx["to"] == actors.deployment.address("TrainingMarket") and tx["value"] == "0"
    assert tx["data"] == ChainClient.calldata(actors.owner.market.functions.withdrawBonds())
    assert tx["summary"] == f"Withdraw {eth(credit)} ETH of rejection bonds credited to {disputer.address}"
    before = actors.chain.w3.eth.get_balance(disputer.address)
    tx_hash = send_prepared(actors.chain, key[disputer.address], tx)
    status = client.get(f"/api/tx/{tx_hash}").json()
    assert status["status"] == "confirmed" and status["events"] == ["BondWithdrawn"]
    receipt = actors.chain.w3.eth.get_transaction_receipt(tx_hash)
    fee = int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
    assert actors.chain.w3.eth.get_balance(disputer.address) == before + credit - fee
    mine = client.get(f"/api/accounts/{disputer.address}").json()["bonds"]
    assert (mine["credit"], mine["withdrawn"], mine["withdraw_steps"]) == ("0", str(credit), [])
    assert [s["action"] for s in _actions(client, pid, disputer.address)["withdraw_steps"]] == ["withdraw"]
    again = client.post("/api/tx/withdraw-bonds", json={"sender": disputer.address})
    assert again.status_code == 409 and again.json()["code"] == "NoBondToWithdraw"
    assert again.json()["detail"] == (
        f"The chain would refuse to withdraw your rejection bonds: no rejection bond is credited to {disputer.address}."
    )

    # The aggregator: the round's held bonds are returned first (the node did not: this test finalized by hand).
    held = 2 * bond - credit
    others = _actions(client, pid, rnd.trainers[0].address)["withdraw_steps"]
    assert [s["action"] for s in others] == ["withdraw"]  # nobody else is asked to pay for the return
    steps = _actions(client, pid, aggregator)["withdraw_steps"]
    fee_owed = actors.owner.withdrawable(pid, aggregator)
    assert [(s["action"], s["round"], s["amount"]) for s in steps] == [
        ("reclaim-bonds", 0, str(held)), ("withdraw-bonds", None, str(held)), ("withdraw", None, str(fee_owed)),
    ]  # fmt: skip
    theirs = client.get(f"/api/accounts/{aggregator}/bonds").json()
    assert (theirs["held"], theirs["reclaimable"], theirs["credit"]) == (str(held), str(held), "0")
    assert [s["action"] for s in theirs["withdraw_steps"]] == ["reclaim-bonds", "withdraw-bonds"]
    assert theirs["rounds"][0]["role"] == "aggregator" and theirs["rounds"][0]["posted"] == str(2 * bond)
    reclaim = client.post("/api/tx/reclaim-bonds", json={"project_id": pid, "round": 0, "sender": aggregator})
    assert reclaim.status_code == 200, reclaim.text
    assert reclaim.json()["summary"] == (
        f"Return the {eth(held)} ETH of rejection bonds held for round 0 of project {pid} to its aggregator "
        f"{aggregator}"
    )
    status = client.get(f"/api/tx/{send_prepared(actors.chain, key[aggregator], reclaim.json())}").json()
    assert status["status"] == "confirmed" and status["events"] == ["BondReturned"]
    assert actors.owner.bond_credit(aggregator) == held
    assert [s["action"] for s in _actions(client, pid, aggregator)["withdraw_steps"]] == ["withdraw-bonds", "withdraw"]
    done = client.post("/api/tx/reclaim-bonds", json={"project_id": pid, "round": 0})
    assert done.status_code == 409 and done.json()["code"] == "NoBondsHeld"

    # Bad input: the usual answers.
    unknown = client.post("/api/tx/reclaim-bonds", json={"project_id": 999, "round": 0})
    assert unknown.status_code == 404 and unknown.json()["detail"] == "project 999 does not exist on local"
    bad = client.post("/api/tx/withdraw-bonds", json={"sender": "0x1234"})
    assert bad.status_code == 404 and bad.json()["detail"] == "'0x1234' is not an Ethereum address"
    assert client.get("/api/accounts/0x1234/bonds").status_code == 404
    missing = client.post("/api/tx/withdraw-bonds", json={})
    assert missing.status_code == 422 and missing.json()["field"] == "sender"
    negative = client.post("/api/tx/reclaim-bonds", json={"project_id": pid, "round": -1})
    assert negative.status_code == 422 and negative.json()["field"] == "round"
    stranger = client.post("/api/tx/withdraw-bonds", json={"sender": actors.stranger.address})
    assert stranger.status_code == 409 and stranger.json()["code"] == "NoBondToWithdraw"
    assert client.get(f"/api/projects/999/actions?account={aggregator}").status_code == 404


@pytest.mark.browser
def test_a_trainer_that_won_its_dispute_sees_its_bond_credit_and_withdraws_it(
    server: BackgroundServer, browser_context: BrowserContext, anvil: AnvilNode, actors: Actors,
    accounts: list[LocalAccount], ipfs: IpfsClient,
) -> None:  # fmt: skip
    """On its account page the trainer sees the bond credit its won dispute earned and withdraws it with "Withdraw
    bonds": its balance rises by the credit, less the transaction's fee. The round page says where each bond went,
    the project page lists the round's bonds; both pass the browser audit."""
    rnd, disputer, stands, bond = _rejected_round(actors)
    pid = rnd.pid
    (award,) = actors.events(_dispute(disputer, rnd), "BondAwarded")
    credit = int(award["amount"])
    _finalize(actors, ipfs, rnd, stands)
    actors.aggregator.reclaim_bonds(pid, 0)
    wallet = next(a for a in accounts if a.address == disputer.address)
    use_wallet(browser_context, anvil.url, wallet)
    page = browser_context.new_page()
    errors = watch_errors(page)

    visit(page, f"{server.url}/projects/{pid}/rounds/0")
    note = page.locator(f'tr[data-trainer="{disputer.address}"] .bond-note')
    expect(note).to_contain_text(f"{eth(credit)} ETH reimbursed to the trainer for its dispute's gas")
    expect(page.locator("#round-bonds")).to_contain_text(f"{eth(2 * bond - credit)} ETH returned to the aggregator")
    problems = audit(page, "round-bonds")
    visit(page, f"{server.url}/projects/{pid}")
    expect(page.locator('#bonds tr[data-round="0"] .bond-reimbursed')).to_have_text(f"{round_eth(credit)}{NBSP}ETH")
    problems += audit(page, "project-bonds")

    visit(page, f"{server.url}/accounts/{disputer.address}")  # connects the wallet: this account's own
    expect(page.locator("#account-bond-credit")).to_have_text(f"{round_eth(credit)}{NBSP}ETH")
    expect(page.locator("#account-bond-credit .amount")).to_have_attribute("data-copy", eth(credit))
    rounds = page.locator(f'#account-bonds-table tr[data-project-id="{pid}"][data-round="0"]')
    expect(rounds.locator(".bond-credited")).to_have_text(f"{round_eth(credit)}{NBSP}ETH")
    button = page.locator("#account-withdraw-bonds")
    expect(button).to_be_visible()
    expect(button).to_have_attribute("aria-label", f"Withdraw bonds: {eth(credit)} ETH")
    problems += audit(page, "account-bonds")
    before = actors.chain.w3.eth.get_balance(disputer.address)
    button.click()
    expect(page.locator("#account-bonds-done")).to_contain_text(
        f"Withdraw {eth(credit)} ETH of rejection bonds credited to {disputer.address}", timeout=60_000
    )
    expect(page.locator("#account-bond-credit")).to_have_text(f"0{NBSP}ETH")  # re-rendered from the chain
    expect(page.locator("#account-bonds-withdrawn")).to_have_text(f"{round_eth(credit)}{NBSP}ETH")
    expect(page.locator("#account-withdraw-bonds")).to_have_count(0)
    tx_hash = page.locator("#account-bonds-done .tx-hash").get_attribute("data-copy")
    receipt = actors.chain.w3.eth.get_transaction_receipt(tx_hash)
    fee = int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
    assert actors.chain.w3.eth.get_balance(disputer.address) == before + credit - fee
    assert actors.owner.bond_credit(disputer.address) == 0
    problems += audit(page, "account-bonds-withdrawn")
    assert errors == [], errors
    assert problems == [], "\n".join(problems)
