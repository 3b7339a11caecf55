"""End to end in a real headless Chromium (Debian's, driven by Playwright): post a job (with initial
weights generated and pinned by the server) and join as a trainer through the page's wallet code
(an injected EIP-1193 provider that forwards to anvil and signs with a test account), see a
finished round's scores and verify its proof, withdraw the reward, and cancel a project as its
owner and withdraw the refund.

Screenshots of every page go to ``reports/screenshots/``.
"""

# ruff: noqa: F811  (fixtures imported from tests.web_fixtures are used as test arguments)
from __future__ import annotations

import re
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from playwright.sync_api import BrowserContext, expect

from marketplace.adapters.chain.anvil import AnvilNode
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.web.filters import bps, pct_bps, round_eth
from marketplace.web.schemas import eth
from marketplace.web.server import BackgroundServer
from marketplace.web.services.project_pages import SHARE_AXIS
from tests.browser_fixtures import audit, browser_context, chromium_context, server, use_wallet, watch_errors  # noqa: F401
from tests.market_fixtures import Actors, cid_for, commitment_for, reveal_update
from tests.test_web_track_record import required_record, run_project
from tests.web_fixtures import INITIAL_CID, finalize, ipfs, ipfs_node, web_settings  # noqa: F401

pytestmark = pytest.mark.browser


def test_post_job_join_and_verify_a_finished_round(
    server: BackgroundServer,
    browser_context: BrowserContext,
    anvil: AnvilNode,
    actors: Actors,
    accounts: list[LocalAccount],
    ipfs: IpfsClient,
) -> None:
    base = server.url
    owner, trainer = accounts[1], accounts[3]
    assert actors.trainers[0].address == trainer.address
    context = browser_context

    # ---- the owner posts a job; bad input first
    use_wallet(context, anvil.url, owner)
    page = context.new_page()
    errors = watch_errors(page)
    problems: list[str] = []  # what audit() found: axe violations, layout, at each width
    page.goto(f"{base}/projects/new")
    page.click("#wallet-button")
    expect(page.locator("#wallet-address")).to_have_text(f"{owner.address[:6]}…{owner.address[-4:]}")
    page.click("#generate-weights")  # the server builds the model and pins its initial weights to IPFS
    expect(page.locator("#generate-status")).to_contain_text("pinned mlp initial weights")
    initial_cid = page.input_value("#f-initial_model_cid")
    assert initial_cid and initial_cid != INITIAL_CID
    assert ipfs.cat(initial_cid, max_bytes=1 << 20)[:8]  # pinned on the node the server talks to
    page.fill("#f-aggregator", actors.aggregator.address)
    page.fill("#f-card_task", "Classify handwritten digits 0-9")  # the model card: what is being trained
    page.fill("#f-card_data", "8x8 digit images, labelled 0-9\none shard per trainer")
    page.fill("#f-card_metric", "accuracy on a held-out test set")
    page.fill("#f-rounds", "1")
    page.fill("#f-min_trainers", "3")
    page.fill("#f-max_trainers", "2")
    page.fill("#f-budget_eth", "2")
    page.fill("#f-aggregator_fee_eth", "0.2")
    page.fill("#f-stake_eth", "0.1")
    costs = page.locator("#job-costs-live")  # what the owner sends, computed as the market takes it
    expect(costs).to_have_text("2.24 ETH: 2.2 ETH escrowed + 0.04 ETH protocol fee (burned)")
    page.fill("#f-min_reliability_pct", "60")  # the bar divides the budget by the minimum trainers (3 here)
    bar = f"your reliability bar will require {round_eth(required_record(2 * 10**18, 3))} ETH of record available"
    expect(costs).to_contain_text(bar)
    expect(costs).to_contain_text("joining reserves it until withdrawal, a flagged round spends it")
    page.fill("#f-min_reliability_pct", "0")
    expect(costs).not_to_contain_text("reliability bar")
    page.click("#job-submit")
    expect(page.locator('.field-error[data-field="min_trainers"]')).to_contain_text("exceeds the maximum")
    problems += audit(page, "post-job-invalid")

    page.fill("#f-min_trainers", "2")
    page.click("#job-submit")
    expect(page.locator("#job-summary")).to_contain_text("sending 2.24 ETH: escrowing 2.2 ETH")
    expect(page.locator("#job-verifier")).to_contain_text("Test verifier — proves nothing")
    expect(page.locator("#job-verifier-warning")).to_contain_text("accepted without any proof")
    page.click("#job-edit")  # back to the form: what was typed is kept
    expect(page.locator("#f-budget_eth")).to_have_value("2")
    expect(page.locator("#f-aggregator")).to_have_value(actors.aggregator.address)
    expect(page.locator("#f-initial_model_cid")).to_have_value(initial_cid)
    page.click("#wallet-button")  # a new page: connect again
    page.click("#job-submit")
    expect(page.locator("#job-protocol-fee")).to_contain_text("0.04 ETH, burned")
    expect(page.locator("#job-payment")).to_contain_text("2.24 ETH")
    expect(page.locator("#job-weights-described")).to_contain_text(f"the weights of {initial_cid} with the model card")
    described = page.locator("#job-weights code.cid").first.inner_text()  # the weights with the card: a new CID
    expect(page.locator("#job-card .card-task")).to_have_text("Classify handwritten digits 0-9")
    status = page.locator("#job-status")
    page.evaluate("window.ethereum.hold()")  # the wallet stays open until the test answers for the user
    page.click("#job-sign")
    expect(status).to_have_attribute("data-state", "confirm")
    expect(status).to_contain_text("Confirm the transaction in your wallet")
    problems += audit(page, "post-job-confirm-in-wallet")
    page.evaluate("window.ethereum.release(false)")  # the user rejects it: Edit and the button stay
    expect(status).to_have_attribute("data-state", "failed")
    expect(status).to_contain_text("You rejected the request in your wallet")
    expect(page.locator("#job-edit")).to_be_visible()
    chain = actors.admin.chain
    chain.w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        page.click("#job-sign")
        expect(status).to_have_attribute("data-state", "pending")
        expect(status.locator(".tx-hash")).to_be_visible()  # the local chain has no explorer: the hash, no link
        expect(status.locator("a.tx-link")).to_have_count(0)
        expect(page.locator("#job-edit")).to_be_hidden()  # sent: it cannot be posted twice
        expect(page.locator("#job-sign")).to_be_hidden()
        problems += audit(page, "post-job-pending")
    finally:
        chain.w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
        chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    link = page.locator("#job-created-link")
    expect(link).to_be_visible()
    expect(status).to_have_attribute("data-state", "confirmed")
    problems += audit(page, "post-job-confirmed")
    pid = int(link.get_attribute("href").rsplit("/", 1)[1])  # type: ignore[union-attr]
    project = actors.owner.get_project(pid)
    assert project.owner == owner.address and project.reward_budget == 2 * 10**18 and project.max_trainers == 2
    assert actors.owner.initial_model_cid(pid) == described != initial_cid  # the chain keeps the CID, not the card
    assert "eth_sendTransaction" in page.evaluate("window.ethereum.log")

    # ---- a trainer joins with its wallet
    use_wallet(context, anvil.url, trainer)
    page = context.new_page()
    errors += watch_errors(page)
    page.goto(f"{base}/projects/{pid}/join")
    page.click("#join-connect")
    expect(page.locator("#join-reliability")).to_have_text("50.0%")
    expect(page.locator("#join-eligibility")).to_contain_text("you can join")
    page.click("#join-button")
    expect(page.locator("#join-done")).to_contain_text(f"Joined project {pid}")
    expect(page.locator("#join-eligibility")).not_to_contain_text("you can join")
    expect(page.locator("#join-eligibility")).to_contain_text("you are a trainer of this project")
    expect(page.locator("#join-button")).to_be_hidden()
    expect(page.locator("#trainer-command")).to_contain_text(f"marketplace trainer run {pid} --data")
    expect(page.locator("#commit-reveal")).to_contain_text("commit, then reveal")
    problems += audit(page, "join-as-trainer")
    assert actors.owner.trainers(pid) == [trainer.address]

    # ---- the second trainer joins (training starts): round 0 opens in its commit phase; both commit and
    # reveal, the aggregator finalizes
    actors.trainers[1].join(pid)
    page.goto(f"{base}/projects/{pid}")
    expect(page.locator("#round-phase")).to_have_text("commit")
    expect(page.locator("#open-round-trainers tbody tr")).to_have_count(2)
    expect(page.locator("#open-round-trainers .open-round-state").first).to_have_text("waiting to commit")
    problems += audit(page, "round-commit-phase")
    actors.submit_all(pid, 0, reveal=False)
    page.reload()
    expect(page.locator("#round-phase")).to_have_text("reveal")  # everyone committed: the reveal phase opened
    expect(page.locator("#round-phase-summary")).to_contain_text("0 of 2 revealed")
    for member in actors.trainers[:2]:
        reveal_update(member, pid, 0, cid_for(pid, 0, member.address), commitment_for(pid, 0, member.address))
    finalize(actors, ipfs, pid, 0, [700_000, 300_000], [False, False], accuracy=0.83)

    # ---- the finished round: scores, charts, proof verified by the verifier contract
    page.goto(f"{base}/projects/{pid}")
    expect(page.locator("#project-status")).to_have_text("finished")
    expect(page.locator("#aggregator-record")).to_have_text("1 round finalized, no rejections")
    assert page.evaluate("Chart.getChart(document.querySelector('#accuracy-chart')) !== undefined")
    assert page.evaluate("Chart.getChart(document.querySelector('#contribution-chart')) !== undefined")
    axis = "Chart.getChart(document.querySelector('#contribution-chart')).options.scales.y.title.text"
    data_axis = "JSON.parse(document.querySelector('#chart-data').textContent).axis"
    assert page.evaluate(axis) == page.evaluate(data_axis) == SHARE_AXIS  # the bars add up every round: it says so
    card = page.locator("#model-card")  # what is being trained, from the initial weights' header
    expect(card.locator(".card-task")).to_have_text("Classify handwritten digits 0-9")
    expect(card.locator(".card-data")).to_have_text("8x8 digit images, labelled 0-9\none shard per trainer")
    expect(card.locator(".card-metric")).to_have_text("accuracy on a held-out test set")
    expect(card.locator("#card-architecture")).to_contain_text("mlp")
    problems += audit(page, "project-detail")
    page.click("#round-line-0 a")  # the round's own page
    expect(page).to_have_url(f"{base}/projects/{pid}/rounds/0")
    rows = page.locator("#round-0 .round-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator(".score-share")).to_have_text("70.0%")
    expect(rows.nth(1).locator(".score-share")).to_have_text("30.0%")
    page.click("#round-0 .verify-button")
    verdict = page.locator("#verify-0 [data-valid=true]")
    expect(verdict).to_contain_text("accepted by the test verifier, which proves nothing")
    expect(verdict).not_to_contain_text("proof valid")
    problems += audit(page, "round-detail")
    page.click("#round-0 .wallet-verify")
    expect(verdict).to_contain_text("through your wallet")
    expect(verdict).to_contain_text("which proves nothing")
    page.goto(f"{base}/projects/{pid}")
    expect(page.locator("#project-verifier")).to_contain_text("Test verifier — proves nothing")

    # ---- the trainer withdraws its reward and stake from the Payouts section
    owed = eth(actors.owner.withdrawable(pid, trainer.address))
    expect(page.locator("#withdraw-amount")).to_contain_text("Connect your wallet")
    page.click("#wallet-button")
    expect(page.locator("#withdrawable")).to_have_text(
        f"{round_eth(actors.owner.withdrawable(pid, trainer.address))} ETH"
    )
    expect(page.locator("#withdrawable .amount")).to_have_attribute("data-copy", owed)  # the exact value on copy
    page.click("#withdraw-button")
    expect(page.locator("#withdraw-status #action-done")).to_contain_text(f"Withdraw {owed} ETH from project {pid}")
    row = page.locator(f'#payouts tr[data-account="{trainer.address}"]')
    expect(row.locator(".payout-withdrawn")).to_have_text(f"{owed} ETH")  # re-rendered from the Withdrawn event
    expect(page.locator("#withdraw-button")).to_be_disabled()
    expect(page.locator("#withdraw-amount")).to_contain_text("nothing to withdraw")
    problems += audit(page, "project-withdrawn")
    assert actors.owner.withdrawable(pid, trainer.address) == 0

    # ---- the owner cancels an open project from its page, then withdraws the refund
    use_wallet(context, anvil.url, owner)
    other = actors.create()
    page = context.new_page()
    errors += watch_errors(page)
    page.goto(f"{base}/projects/{other}")
    page.click("#wallet-button")
    expect(page.locator("[data-tx-action=cancel]")).to_be_visible()
    expect(page.locator("[data-tx-action=start]")).to_be_hidden()  # nobody joined yet
    page.click("[data-tx-action=cancel]")
    expect(page.locator("#action-result #action-done")).to_contain_text(f"Cancel project {other}")
    expect(page.locator("#project-status")).to_have_text("cancelled")
    refund = eth(actors.owner.withdrawable(other, owner.address))
    expect(page.locator("#withdrawable .amount")).to_have_attribute("data-copy", refund)
    page.click("#withdraw-button")
    expect(page.locator("#withdraw-status #action-done")).to_contain_text(f"Withdraw {refund} ETH")
    expect(page.locator(f'#payouts tr[data-account="{owner.address}"] .payout-withdrawn')).to_have_text(f"{refund} ETH")
    expect(page.locator("#withdraw-button")).to_be_disabled()
    problems += audit(page, "owner-cancel-and-refund")
    page.close()
    page = context.pages[-1]

    # ---- the trainer's profile and the project list
    page.goto(f"{base}/trainers/{trainer.address}")
    expect(page.locator("#trainer-reliability")).to_have_text("66.7%")
    expect(page.locator("#reliability-history tbody tr")).to_have_count(1)
    problems += audit(page, "trainer-profile")
    page.goto(f"{base}/projects")
    expect(page.locator(f'tr[data-project-id="{pid}"] .status')).to_have_text("finished")
    page.select_option("select[name=status]", "open")
    expect(page.locator(f'tr[data-project-id="{pid}"]')).to_have_count(0)
    page.select_option("select[name=status]", "")
    expect(page.locator(f'tr[data-project-id="{pid}"]')).to_have_count(1)
    problems += audit(page, "projects")
    page.goto(f"{base}/projects/{pid + 100}")
    expect(page.locator("#error-detail")).to_contain_text("does not exist")
    problems += audit(page, "not-found")

    assert errors == [], errors
    assert problems == [], "\n".join(problems)


def test_the_join_page_checks_the_earned_record_a_bar_requires(
    server: BackgroundServer, browser_context: BrowserContext, anvil: AnvilNode, actors: Actors,
    accounts: list[LocalAccount],
) -> None:  # fmt: skip
    """A newcomer meets a 50 % bar's reliability but has earned nothing: the join page shows the record the bar
    requires (the budget per guaranteed trainer over the 2 % fee) and why, the connected wallet's available record,
    and does not offer to join. Then the trainer earns 10 ETH and joins another barred project that reserves 6 ETH
    of it: a bar requiring 6 ETH is refused on the page (4 ETH available, though 10 ETH earned)."""
    budget = 40 * 10**18
    pid = actors.create(reward_budget=budget, min_trainers=2, max_trainers=4, min_reliability_bps=5_000)
    required = required_record(budget, 2)
    assert actors.owner.required_track_record(pid) == required
    use_wallet(browser_context, anvil.url, accounts[3])
    page = browser_context.new_page()
    errors = watch_errors(page)
    problems: list[str] = []
    page.goto(f"{server.url}/projects/{pid}/join")
    expect(page.locator("#join-required-earned")).to_contain_text(f"{round_eth(required)} ETH")
    expect(page.locator("#join-required-earned")).to_contain_text("budget per guaranteed trainer (minimum trainers")
    expect(page.locator("#join-bar-why")).to_contain_text(
        "burns at least the budget per guaranteed trainer (minimum trainers) it protects"
    )
    expect(page.locator("#join-bar-reservation")).to_contain_text("reserves this record until you withdraw")
    page.click("#join-connect")
    expect(page.locator("#join-reliability")).to_have_text("50.0%")
    expect(page.locator("#join-available")).to_have_text("0 ETH")
    expect(page.locator("#join-earned")).to_have_text("0 ETH")
    eligibility = page.locator("#join-eligibility")
    expect(eligibility).to_have_text(
        f"✗ you have 0 ETH of record available (0 ETH earned, 0 ETH reserved by other bars); this project requires "
        f"{round_eth(required)} ETH"
    )
    expect(page.locator("#join-button")).to_be_disabled()
    problems += audit(page, "join-below-earned-record")

    trainer = actors.trainers[0]
    assert trainer.address == accounts[3].address
    run_project(actors, actors.stranger, actors.aggregator, [trainer], rounds=1)  # earns the whole 10 ETH budget
    small = 12 * 10**18 // 100  # one guaranteed trainer: 0.12 ETH / 2 % = 6 ETH
    holding = actors.create(reward_budget=small, min_trainers=1, max_trainers=2, min_reliability_bps=5_000)
    trainer.join(holding)
    same = actors.create(reward_budget=small, min_trainers=1, max_trainers=2, min_reliability_bps=5_000)
    size = required_record(small, 1)
    earned = actors.owner.track_record(trainer.address).earned
    assert actors.owner.available_record(trainer.address) == earned - size < size <= earned
    page.goto(f"{server.url}/projects/{same}/join")
    page.click("#join-connect")  # the injected wallet forgets the connection on a new page
    expect(page.locator("#join-available")).to_have_text(f"{round_eth(earned - size)} ETH")
    expect(page.locator("#join-available .amount")).to_have_attribute(
        "title", re.compile(rf"^{eth(earned - size)} ETH")
    )
    expect(page.locator("#join-reserved")).to_have_text(f"{round_eth(size)} ETH")
    expect(eligibility).to_have_text(
        f"✗ you have {round_eth(earned - size)} ETH of record available ({round_eth(earned)} ETH earned, "
        f"{round_eth(size)} ETH reserved by other bars); this project requires {round_eth(size)} ETH"
    )
    expect(page.locator("#join-button")).to_be_disabled()
    problems += audit(page, "join-record-reserved")
    assert errors == [], errors
    assert problems == [], "\n".join(problems)


def test_page_without_a_wallet_explains_what_is_missing(server: BackgroundServer, tmp_path: Path) -> None:
    """No injected provider: connecting says a wallet is needed instead of failing silently."""
    for context in chromium_context(tmp_path, wallet=False):
        page = context.new_page()
        page.goto(f"{server.url}/projects/new")
        page.click("#wallet-button")
        expect(page.locator("#wallet-error")).to_contain_text("No browser wallet found")


def test_the_wallet_follows_account_and_network_changes(
    server: BackgroundServer, browser_context: BrowserContext, anvil: AnvilNode, accounts: list[LocalAccount]
) -> None:
    """The header shows the connected account's balance; another account chosen in the wallet replaces it; another
    network is named and "Switch network" brings the wallet back (adding the network when the wallet does not know
    it); "Disconnect" forgets the account."""
    first, second = accounts[3], accounts[4]
    use_wallet(browser_context, anvil.url, first)
    page = browser_context.new_page()
    errors = watch_errors(page)
    problems: list[str] = []
    page.goto(f"{server.url}/projects")
    page.click("#wallet-button")
    address = page.locator("#wallet-address")
    expect(address).to_have_text(f"{first.address[:6]}…{first.address[-4:]}")
    expect(address).to_have_attribute("href", f"/accounts/{first.address}")
    balance = page.locator("#wallet-balance")
    expect(balance).to_contain_text("balance")
    expect(balance).to_contain_text("ETH")
    problems += audit(page, "wallet-connected")

    page.evaluate(f"window.__TEST_WALLET__.account = '{second.address}'")
    page.evaluate(f"window.ethereum.emit('accountsChanged', ['{second.address}'])")
    expect(address).to_have_text(f"{second.address[:6]}…{second.address[-4:]}")
    expect(address).to_have_attribute("href", f"/accounts/{second.address}")  # "my account" follows the wallet

    page.evaluate("window.ethereum.onChain('0x1')")  # the user picked mainnet in the wallet
    switch = page.locator("#wallet-switch")
    expect(switch).to_be_visible()
    expect(page.locator("#wallet-error")).to_contain_text("Your wallet is on chain 1; this market is on chain")
    problems += audit(page, "wallet-other-network")
    page.evaluate("window.ethereum.forgetChain()")  # ...and it does not know this market's chain yet
    switch.click()
    expect(switch).to_be_hidden()
    expect(page.locator("#wallet-error")).to_be_hidden()
    added = page.evaluate("window.ethereum.added")
    assert [a["rpcUrls"] for a in added] == [[anvil.url]] and "blockExplorerUrls" not in added[0]

    page.click("#wallet-disconnect")
    expect(page.locator("#wallet-button")).to_be_visible()
    expect(address).to_be_hidden()
    expect(balance).to_be_hidden()
    page.reload()  # it stays disconnected on the next page until the user connects again
    expect(page.locator("#wallet-button")).to_be_visible()
    assert errors == [], errors
    assert problems == [], "\n".join(problems)


def test_amounts_and_percentages_computed_in_the_page_follow_the_servers_rules(
    server: BackgroundServer, browser_context: BrowserContext
) -> None:
    """app.js rounds amounts and percentages as marketplace/web/filters.py does (the same examples agree)."""
    page = browser_context.new_page()
    page.goto(f"{server.url}/projects")
    weis = [0, 1, 999, 123456789012345, 200000000000000016, 1334210915569622607, 12345500000000000000000,
            10**18, 99995 * 10**13, 5 * 10**13, 49999 * 10**12, 10**36 + 5 * 10**13, -1334210915569622607]  # fmt: skip
    shown = page.evaluate("(ws) => ws.map((w) => window.marketplaceFormat.roundEth(w))", [str(w) for w in weis])
    assert shown == [round_eth(w) for w in weis]
    values = [0, 5, 50, 5000, 6666, 6665, 6650, 10_000, 1, 9_995, 33]
    assert page.evaluate("(vs) => vs.map((v) => window.marketplaceFormat.pct(v))", values) == [
        pct_bps(v) for v in values
    ]
    assert page.evaluate("(vs) => vs.map((v) => window.marketplaceFormat.bps(v))", values) == [bps(v) for v in values]


def test_a_transaction_replaced_in_the_wallet_shows_as_replaced_with_the_new_hash(
    server: BackgroundServer, browser_context: BrowserContext, anvil: AnvilNode, actors: Actors,
    accounts: list[LocalAccount],
) -> None:  # fmt: skip
    """While a job's transaction is pending, the wallet replaces it (same nonce, higher fee): cancelled (0 ETH to
    itself), the page says "replaced" with the new hash and offers the job again; sped up (the same call), it says
    "replaced" with the new hash, confirmed, and the project it created."""
    owner = accounts[1]
    use_wallet(browser_context, anvil.url, owner)
    page = browser_context.new_page()
    errors = watch_errors(page)
    problems: list[str] = []
    page.goto(f"{server.url}/projects/new")
    page.click("#wallet-button")
    expect(page.locator("#wallet-address")).to_be_visible()
    page.fill("#f-initial_model_cid", INITIAL_CID)
    page.fill("#f-aggregator", actors.aggregator.address)
    page.click("#job-submit")
    expect(page.locator("#job-tx")).to_be_visible()
    status, sign = page.locator("#job-status"), page.locator("#job-sign")
    w3 = actors.admin.chain.w3
    before = w3.eth.get_transaction_count(owner.address)

    def send_and_replace(cancel: bool) -> tuple[str, str]:
        """Signs the job with mining paused, replaces it in the wallet, mines; the two hashes."""
        w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        try:
            sign.click()
            expect(status).to_have_attribute("data-state", "pending")
            sent = status.locator(".tx-hash").get_attribute("title") or ""
            replacement = page.evaluate("(cancel) => window.ethereum.replaceLast({ cancel })", cancel)
        finally:
            w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
            w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        assert sent.startswith("0x") and replacement != sent
        expect(status).to_have_attribute("data-state", "replaced", timeout=60_000)  # generous: a loaded machine
        expect(status.locator(f'.tx-hash[title="{sent}"]')).to_be_visible()
        expect(status.locator(f'.tx-hash[title="{replacement}"]')).to_be_visible()  # the new hash
        return sent, replacement

    _, cancelled = send_and_replace(cancel=True)
    expect(status).to_contain_text("Cancelled: transaction")
    expect(status).to_contain_text("what you asked for was not done")
    expect(sign).to_be_visible()  # the job was not posted: it is offered again
    expect(page.locator("#job-edit")).to_be_visible()
    expect(page.locator("#job-created-link")).to_have_count(0)
    assert w3.eth.get_transaction_receipt(cancelled)["to"] == owner.address  # type: ignore[index]
    problems += audit(page, "post-job-replaced-cancelled")

    _, sped_up = send_and_replace(cancel=False)
    expect(status.locator("#tx-replaced")).to_have_class("ok")
    expect(status).to_contain_text("Sped up: transaction")
    expect(status).to_contain_text("confirmed in block")
    link = page.locator("#job-created-link")
    expect(link).to_be_visible()
    pid = int(link.get_attribute("href").rsplit("/", 1)[1])  # type: ignore[union-attr]
    assert actors.owner.get_project(pid).owner == owner.address
    assert w3.eth.get_transaction_receipt(sped_up)["status"] == 1  # type: ignore[index]
    assert w3.eth.get_transaction_count(owner.address) == before + 2  # one nonce each: the originals never mined
    expect(sign).to_be_hidden()
    expect(page.locator("#job-edit")).to_be_hidden()
    problems += audit(page, "post-job-replaced-sped-up")
    assert errors == [], errors
    assert problems == [], "\n".join(problems)
