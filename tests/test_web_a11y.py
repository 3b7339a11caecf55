"""Every page of the web UI, on a phone (390 px) and a laptop (1366 px), in headless Chromium with a connected
wallet: axe-core finds no serious or critical violation, nothing is wider than the screen, the header fits,
and a screenshot of each is kept in ``reports/screenshots/<page>-<width>.png``
(:func:`tests.browser_fixtures.audit`).

The pages hold what real projects show: rounds with a trainer flagged by the scoring rule, a rejection that
was disputed and one that stands, odd amounts (0.200000000000000016 ETH), a round open for commits, the job
form with an error and its review step, and the error pages. Each page is also read the way assistive
technology reads it: a skip link to the content, text alternatives (a table) behind every chart, errors
announced (``role=alert``), amounts rounded with their unit and exact value, accounts as links.
"""

# ruff: noqa: F811  (fixtures imported from tests.web_fixtures are used as test arguments)
from __future__ import annotations

import re
from dataclasses import replace

import pytest
from eth_account.signers.local import LocalAccount
from playwright.sync_api import BrowserContext, Page, expect

from marketplace.adapters.chain.anvil import AnvilNode
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.web.filters import round_eth
from marketplace.web.server import BackgroundServer
from tests.browser_fixtures import VIEWPORTS, audit, browser_context, server, use_wallet, watch_errors  # noqa: F401
from tests.disputes import close_disputes
from tests.market_fixtures import ETH, Actors
from tests.test_disputes import _dispute, _finalization, _training_round
from tests.web_fixtures import INITIAL_CID, ipfs, ipfs_node, make_finished_project, proof_document, web_settings  # noqa: F401

pytestmark = pytest.mark.browser

ODD_BUDGET = 200000000000000016  # 0.200000000000000016 ETH: shown as 0.2 ETH
ODD_STAKE = ETH // 3  # 0.333333333333333333 ETH: shown as 0.3333 ETH


def disputed_project(actors: Actors, ipfs: IpfsClient) -> int:
    """A finished one-round project of five trainers in which the aggregator rejected two: one disputed (scored
    on its published row), the other's rejection stands (flagged, slashed)."""
    rnd = _training_round(actors)
    disputer, stands = rnd.trainers[1], rnd.trainers[2].address
    actors.aggregator.reject_submissions(rnd.pid, 0, [disputer.address, stands])
    _dispute(disputer, rnd)
    close_disputes(actors.owner, rnd.pid)
    result = _finalization(actors.aggregator, rnd, {stands})
    doc = proof_document(actors, rnd.pid, 0, result.scores, result.flags, 0.9).model_copy(
        update={"rejected": {stands.lower(): "IpfsTimeout: the update did not come in time"}}
    )
    actors.aggregator.finalize_round(rnd.pid, 0, replace(result, proof_cid=ipfs.add(doc.to_bytes())))
    return rnd.pid


def visit(page: Page, url: str) -> None:
    """Opens ``url`` and connects the wallet (the header then shows the account)."""
    page.goto(url)
    button = page.locator("#wallet-button")
    if button.is_visible():
        button.click()
        expect(page.locator("#wallet-address")).to_be_visible()


_COPY_JS = """
(selector) => {
  const el = document.querySelector(selector);
  const range = document.createRange();
  range.selectNodeContents(el);
  getSelection().removeAllRanges();
  getSelection().addRange(range);
  const data = new DataTransfer();
  el.dispatchEvent(new ClipboardEvent("copy", { clipboardData: data, bubbles: true, cancelable: true }));
  return data.getData("text/plain") || getSelection().toString();
}
"""


def copy_text(page: Page, selector: str) -> str:
    """What copying the text of the first element matching ``selector`` puts on the clipboard."""
    return page.evaluate(_COPY_JS, selector)


def test_every_page_is_accessible_and_fits_a_phone_and_a_laptop(
    server: BackgroundServer, browser_context: BrowserContext, anvil: AnvilNode, actors: Actors,
    accounts: list[LocalAccount], ipfs: IpfsClient,
) -> None:  # fmt: skip
    finished = make_finished_project(actors, ipfs)
    disputed = disputed_project(actors, ipfs)
    training = actors.training_project(2, rounds=1)
    open_pid = actors.create(reward_budget=ODD_BUDGET, stake=ODD_STAKE, min_reliability_bps=0)
    trainer = finished.trainers[0]
    use_wallet(browser_context, anvil.url, accounts[3])
    page = browser_context.new_page()
    errors = watch_errors(page)
    base = server.url
    problems: list[str] = []

    visit(page, f"{base}/projects")
    row = page.locator(f'tr[data-project-id="{open_pid}"]')
    expect(row.locator(".amount").first).to_have_text("0.2\N{NO-BREAK SPACE}ETH")
    expect(row.locator(".amount").first).to_have_attribute("data-copy", "0.200000000000000016")
    expect(row.locator("a.account")).to_have_attribute("href", f"/trainers/{actors.owner.address}")
    assert copy_text(page, f'tr[data-project-id="{open_pid}"] .amount') == "0.200000000000000016"
    assert copy_text(page, f'tr[data-project-id="{open_pid}"] a.account') == actors.owner.address
    for width, height in VIEWPORTS:  # its verifier (the test verifier) proves nothing: the list says so, at any width
        page.set_viewport_size({"width": width, "height": height})
        expect(row.locator(".verifier-proves-nothing")).to_be_visible()
        expect(row.locator(".verifier-proves-nothing")).to_have_text("proves nothing")
    problems += audit(page, "projects")

    visit(page, f"{base}/projects/new")
    page.fill("#f-initial_model_cid", INITIAL_CID)
    page.fill("#f-aggregator", actors.aggregator.address)
    page.fill("#f-min_trainers", "3")
    page.fill("#f-max_trainers", "2")
    problems += audit(page, "post-job")
    page.click("#job-submit")
    expect(page.locator("#form-errors")).to_have_attribute("role", "alert")
    problems += audit(page, "post-job-invalid")
    page.fill("#f-min_trainers", "2")
    page.click("#job-submit")
    expect(page.locator("#job-tx")).to_be_visible()
    problems += audit(page, "post-job-review")

    visit(page, f"{base}/projects/{finished.project_id}")
    expect(page.locator('#round-line-1 a[href$="/rounds/1"]').last).to_be_visible()  # flagged: see why
    for chart in ("accuracy", "contribution"):
        table = page.locator(f"#{chart}-table")  # the chart's text alternative
        expect(table.locator("tbody tr").first).to_be_attached()
    expect(page.locator("#model-card-missing")).to_contain_text("Not described")  # posted without a model card
    problems += audit(page, "project-finished")
    visit(page, f"{base}/projects/{finished.project_id}/rounds/1")
    expect(page.locator("#round-1 .round-table .amount").first).to_have_attribute("data-wei", re.compile(r"^\d+$"))
    expect(page.locator("#flag-causes-title")).to_be_visible()  # the rule's causes (or why not) have come in
    problems += audit(page, "round-flagged")
    expect(page.locator("#owner-reference")).to_contain_text("did not commit a reference")
    visit(page, f"{base}{page.locator('#about-owner-reference').get_attribute('href')}")
    expect(page.locator("#about-title")).to_have_text("The owner's reference")
    problems += audit(page, "about-owner-reference")

    visit(page, f"{base}/projects/{disputed}")
    problems += audit(page, "project-disputes")
    visit(page, f"{base}/projects/{disputed}/rounds/0")
    expect(page.locator("#round-0 .flag.disputed")).to_have_count(1)
    expect(page.locator("#round-0 .flag.rejected")).to_have_count(1)
    expect(page.locator('#round-0 [data-cause="disputed"]')).to_have_count(1)
    problems += audit(page, "round-disputes")

    visit(page, f"{base}/projects/{training}")
    expect(page.locator("#round-phase")).to_have_text("commit")
    problems += audit(page, "project-training")

    visit(page, f"{base}/projects/{open_pid}")
    problems += audit(page, "project-open")

    visit(page, f"{base}/projects/{open_pid}/join")
    expect(page.locator("#join-eligibility")).to_contain_text("you can join")
    stake = page.locator("#join-stake .amount")
    expect(stake).to_have_text(f"{round_eth(ODD_STAKE)}\N{NO-BREAK SPACE}ETH")
    problems += audit(page, "join")

    visit(page, f"{base}/trainers/{trainer}")
    rounds = page.locator("#reliability-history tbody tr").count()  # two here, one in the disputed project
    assert rounds == 3
    expect(page.locator("#reliability-table tbody tr")).to_have_count(rounds)  # behind the chart
    problems += audit(page, "trainer")

    visit(page, f"{base}/trainers")
    problems += audit(page, "trainers")

    visit(page, f"{base}/projects/{open_pid + 100}")
    expect(page.locator("#error-detail")).to_contain_text("does not exist")
    problems += audit(page, "error-not-found")
    visit(page, f"{base}/trainers/0x1234")
    problems += audit(page, "error-bad-address")

    # The skip link is the first thing the keyboard reaches, and it leads to the content.
    page.goto(f"{base}/projects")
    page.keyboard.press("Tab")
    skip = page.locator("a.skip-link")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.locator("main#content")).to_be_focused()

    assert errors == [], errors
    assert problems == [], "\n".join(problems)


BROKEN_PAGE = """<!doctype html><html lang="en"><head><title>broken</title>
<style>header.top { display: flex; width: 390px; } nav a { display: inline-block; width: 2.5rem; }
.pale { color: #bbb; } button[disabled] { color: #aaa; background: #ddd; }</style></head>
<body><header class="top"><nav><a href="#">Post a job</a></nav>
<button style="margin-left: 300px">Connect wallet</button></header>
<main><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="><p class="pale">pale text</p>
<button disabled>Join</button><div style="width: 900px">wide</div></main></body></html>"""


def test_the_audit_finds_what_it_looks_for(browser_context: BrowserContext) -> None:
    """The checks every page passes can fail: on a page built to break them, the audit reports a missing text
    alternative and low contrast (axe), the page's width, a header item off screen and one wrapped, and a
    disabled button's contrast, at both widths."""
    page = browser_context.new_page()
    page.set_content(BROKEN_PAGE)
    problems = "\n".join(audit(page, "broken", screenshots=False))
    for width in (390, 1366):
        assert f"broken at {width} px: axe critical image-alt" in problems
        assert f"broken at {width} px: axe serious color-contrast" in problems
        assert f'broken at {width} px: "Join" (button) has a contrast of' in problems
    assert "broken at 390 px: the page is" in problems and "sticking out: header.top, div)" in problems
    assert 'broken at 390 px: the header\'s "Connect wallet" is outside the screen' in problems
    assert 'the header\'s "Post a job" wraps over' in problems
