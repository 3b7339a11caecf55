# ruff: noqa: F811  (fixtures imported from tests.web_fixtures and tests.browser_fixtures are used as test arguments)
"""What the owner's reference changed in a round's pay (issue 16 follow-up), as the web says it: the round's
reference JSON (``/api/projects/{id}/rounds/{n}/reference``, its ``effect``) and the round's page (an htmx partial),
recomputed from public data only.

The round is a real one, on the session anvil and a real IPFS node, run by the nodes (the trainers', the owner's
reference node and the aggregator's, :func:`tests.test_reference_nodes.reference_round`): the owner's reference
unpays a below-median trainer that disagrees with it, whom the rule without the reference pays, and moves nobody
else. The JSON and the page must name that trainer, and nobody else, as unpaid by the reference; in Chromium the
partial comes in and the page stays accessible on a phone and a laptop.

The page asks for a round's flag causes and its reference's changes at once; both come from one recomputation
(:class:`~marketplace.web.services.round_recompute.RecomputeService`), which a second request waits for instead of
fetching the round's updates again.
"""

from __future__ import annotations

import re
import threading

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import BrowserContext, expect

from marketplace.adapters.ipfs.manager import LocalIpfsNode
from marketplace.web.server import BackgroundServer
from marketplace.web.services.client_keys import client_key
from marketplace.web.services.round_recompute import Recomputed, RecomputeService
from tests.browser_fixtures import audit, browser_context, server, watch_errors  # noqa: F401
from tests.market_fixtures import Actors
from tests.test_batched_reveal_nodes import store_of
from tests.test_reference_nodes import AT, reference_round
from tests.web_fixtures import client, ipfs_node, web_app, web_settings  # noqa: F401


def test_the_round_names_the_trainer_the_reference_unpaid_and_nobody_else(
    web_app: FastAPI, client: TestClient, actors: Actors, ipfs_node: LocalIpfsNode
) -> None:
    """While the visitor's one IPFS fetch slot is taken, the JSON and the partial answer 503 with ``Retry-After``.
    Then the JSON's ``effect``: state ``used``, the trainer at :data:`AT` alone unpaid by the reference (its score
    without the reference the rule's, 0 with it), nobody added; the page loads the partial, which lists that trainer
    alone under "Unpaid by the reference"."""
    pid, s = reference_round(actors, store_of(ipfs_node))
    members = actors.owner.trainers(pid)
    without = s.outcome.stats["base_scores"]

    # While this visitor's one IPFS fetch slot is taken, nothing is recomputed: 503 with Retry-After, in words.
    with web_app.state.services.fetches.slot(client_key("testclient")):
        busy = client.get(f"/api/projects/{pid}/rounds/0/reference")
        part = client.get(f"/projects/{pid}/rounds/0/reference-changes", headers={"HX-Request": "true"})
    assert busy.status_code == 503 and int(busy.headers["Retry-After"]) >= 1, busy.text
    assert "yours is still running" in busy.json()["detail"], busy.text
    assert part.status_code == 503 and int(part.headers["Retry-After"]) >= 1 and "Not recomputed now" in part.text

    answer = client.get(f"/api/projects/{pid}/rounds/0/reference")
    assert answer.status_code == 200, answer.text
    reference = answer.json()
    assert reference["revealed"] is True
    effect = reference["effect"]
    assert effect["state"] == "used", effect
    assert [m["trainer"] for m in effect["unpaid"]] == [members[AT]], effect
    assert effect["added"] == [] and effect["undecided"] == [], effect
    (unpaid,) = effect["unpaid"]
    assert unpaid["index"] == AT and unpaid["score_without"] == str(without[AT]) != "0" and unpaid["score_with"] == "0"
    assert unpaid["share_without_bps"] > 0 and unpaid["share_with_bps"] == 0
    assert unpaid["reference_cosine"] < 0 and unpaid["typicality"] < effect["median_typicality"]
    assert effect["reference_median"] > 0
    assert f"left 1 trainer(s) unpaid that the rule without it pays (#{AT})" in effect["summary"], effect["summary"]
    recorded = client.get(f"/api/projects/{pid}/rounds/0").json()["trainers"]
    assert [t["score"] == "0" for t in recorded] == [i == AT for i in range(len(members))]  # as recorded on chain
    assert not any(t["flagged"] for t in recorded)

    page = client.get(f"/projects/{pid}/rounds/0").text
    assert f'hx-get="/projects/{pid}/rounds/0/reference-changes"' in page
    part = client.get(f"/projects/{pid}/rounds/0/reference-changes", headers={"HX-Request": "true"})
    assert part.status_code == 200 and 'data-state="used"' in part.text, part.text
    listed = re.search(r'<ul id="reference-unpaid"[^>]*>(.*?)</ul>', part.text, re.S)
    assert listed, part.text
    assert re.findall(r'data-trainer="(0x[0-9a-fA-F]{40})"', listed[1]) == [members[AT]]
    assert 'id="reference-added"' not in part.text and 'id="reference-undecided"' not in part.text


@pytest.mark.browser
def test_the_round_page_shows_whom_the_reference_unpaid(
    server: BackgroundServer, browser_context: BrowserContext, actors: Actors, ipfs_node: LocalIpfsNode
) -> None:
    """In Chromium: the partial replaces its placeholder, lists the unpaid trainer alone and marks its row in the
    round's table, and the page passes the accessibility and layout audit at a phone's and a laptop's width."""
    pid, _ = reference_round(actors, store_of(ipfs_node))
    member = actors.owner.trainers(pid)[AT]
    page = browser_context.new_page()
    errors = watch_errors(page)
    page.goto(f"{server.url}/projects/{pid}/rounds/0")
    changes = page.locator("section#reference-changes")
    expect(changes).to_have_attribute("data-state", "used")
    expect(page.locator("#reference-changes-busy")).to_have_count(0)
    expect(page.locator("#reference-unpaid li")).to_have_count(1)
    expect(page.locator("#reference-unpaid li")).to_have_attribute("data-trainer", member)
    expect(page.locator("#reference-added")).to_have_count(0)
    marks = page.locator(".round-table [data-reference]")  # the trainer's own row says it too
    expect(marks).to_have_count(1)
    expect(page.locator(f'tr[data-trainer="{member}"] [data-reference="unpaid"]')).to_have_text(
        "unpaid by the owner's reference"
    )
    problems = audit(page, "round-reference")
    assert errors == [], errors
    assert problems == [], "\n".join(problems)


def test_a_round_is_recomputed_once_for_requests_that_come_together() -> None:
    """Two requests for one round while it is being recomputed: the recomputation runs once and both get its
    answer (before, the second one recomputed too, and the page's second partial was refused the one IPFS fetch
    slot a visitor has)."""
    started, release = threading.Event(), threading.Event()
    calls: list[tuple[int, int, str]] = []

    def recompute(project_id: int, round_: int, client: str) -> Recomputed:
        calls.append((project_id, round_, client))
        started.set()
        assert release.wait(30)
        return Recomputed({"0xabc": []})

    service = RecomputeService(recompute)
    answers: list[Recomputed] = []
    first = threading.Thread(target=lambda: answers.append(service.get(1, 0, "a")), daemon=True)
    first.start()
    assert started.wait(30)
    second = threading.Thread(target=lambda: answers.append(service.get(1, 0, "a")), daemon=True)
    second.start()
    second.join(0.5)
    assert second.is_alive()  # it waits for the first one's answer
    release.set()
    first.join(30)
    second.join(30)
    assert calls == [(1, 0, "a")] and len(answers) == 2 and answers[0] is answers[1]
    assert service.get(1, 0, "b") is answers[0]  # kept
