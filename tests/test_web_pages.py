# ruff: noqa: F811  (fixtures imported from tests.web_fixtures are used as test arguments)
"""The project page as a summary, a finalized round's own page with the reasons of its flags, the live part
polled while training, and the downloads (issue 15), on the session anvil and a real IPFS node; a round's owner's
reference row (issue 16): committed, revealed, its commitment, and the page saying what it is.

The rule's causes are checked on real committed rows (:func:`rule_causes`): updates made far, lazy, boosted and
duplicated are each named by the test that flags them. A submission shown stale on chain (``StaleChallenged``) is
marked and explained on the open round, its round's JSON and page, the project page and its trainer's pages.
"""

from __future__ import annotations

import json
import re

import numpy as np
from fastapi.testclient import TestClient
from markupsafe import escape

from marketplace.adapters.chain.market import Finalization
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.protocol.commitment import commit_update, committed_rows
from marketplace.protocol.sketch import sketch_rows
from marketplace.round.prove import HashProver
from marketplace.round.reference import commit_reference, reveal_reference
from marketplace.web.filters import short
from marketplace.web.schemas import eth
from marketplace.web.services.flag_reasons import rule_causes
from marketplace.web.services.stale import project_roles, stale_shown
from tests.market_fixtures import Actors
from tests.test_web_a11y import disputed_project
from tests.test_web_disputes import by_trainer
from tests.test_web_indexer import challenge_replay, finalize_stale_round
from tests.web_fixtures import (  # noqa: F401
    FinishedProject,
    client,
    finalize,
    finished_project,
    ipfs,
    ipfs_node,
    proof_document,
    web_app,
    web_settings,
)


def test_the_project_page_is_a_summary_linking_each_round(
    client: TestClient, finished_project: FinishedProject
) -> None:
    pid = finished_project.project_id
    page = client.get(f"/projects/{pid}").text
    for round_ in (0, 1):
        assert f'href="/projects/{pid}/rounds/{round_}"' in page
        assert f'href="/projects/{pid}/rounds/{round_}/proof-document"' in page
    assert "round-table" not in page  # the per-trainer tables live on the round pages
    assert 'id="download-latest-model"' in page and "Final model" in page
    # The chart's shares are of everything paid: all trainers' bars add up to 100 %, not to the number of rounds.
    data = json.loads(re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', page, re.S)[1])
    assert abs(sum(sum(row) for row in data["shares"]) - 1.0) < 1e-9
    assert data["axis"] == "share of all rewards paid so far (%)"
    assert "share of the round's reward" not in page
    assert 'hx-trigger="every 5s"' not in page  # a finished project does not poll


def test_a_round_page_gives_each_flag_its_reasons(client: TestClient, actors: Actors, ipfs: IpfsClient) -> None:
    pid = disputed_project(actors, ipfs)
    page = client.get(f"/projects/{pid}/rounds/0")
    assert page.status_code == 200
    html = page.text
    assert html.count('data-cause="disputed"') == 1
    assert html.count('data-cause="rejected" data-source="chain"') == 1
    assert "IpfsTimeout: the update did not come in time (the aggregator&#39;s word, not proven)" in html
    assert "did not dispute it before" in html
    assert client.get(f"/projects/{pid}/rounds/1").status_code == 404


def test_a_round_lists_the_unpaid_trainers_whose_update_is_in_the_model(
    client: TestClient, actors: Actors, ipfs: IpfsClient
) -> None:
    """The proof document names the unpaid trainers whose update the new model takes (issue 16: agreeing with the
    paid updates, clipped) and the trainers whose update the owner's reference kept out of it, paid as scored: the
    round's JSON lists them, each one's entry says so and the page says it in words, next to its update too. What
    the document may claim is bounded: a paid trainer named admitted, an unpaid one named screened (its update is
    out of the model anyway), a stranger and a value that is no address are not shown. A document without the
    lists (as made before them) names nobody. (The owner revealed its reference in round 0: without one the page
    shows no screened trainer, ``tests/test_attack_review_screen.py``.)"""
    pid = actors.training_project(3, rounds=2)
    members = actors.owner.trainers(pid)
    scores, flags = [500_000, 300_000, 0], [False, False, True]
    claimed = [members[2].lower(), members[0], "0x" + "11" * 20, "nobody"]
    kept_out = [members[1].lower(), members[2], "0x" + "22" * 20, "nobody"]
    row = commit_update(np.random.default_rng(5).normal(size=300), actors.owner.sketch_seed(pid),
                        actors.owner.sketch_width(pid))[0]  # fmt: skip
    sealed = commit_reference(actors.owner, pid, 0, row)
    actors.submit_all(pid, 0)
    reveal_reference(actors.owner, pid, 0, sealed, HashProver())
    doc = proof_document(actors, pid, 0, scores, flags, 0.5).model_copy(
        update={"admitted": claimed, "screened": kept_out}
    )
    finalize(actors, ipfs, pid, 0, scores, flags, 0.5, document=doc.to_bytes())
    actors.submit_all(pid, 1)
    older = json.loads(proof_document(actors, pid, 1, scores, flags, 0.5).to_bytes())
    del older["admitted"], older["screened"]  # a document from before the lists: names nobody
    finalize(actors, ipfs, pid, 1, scores, flags, 0.5, document=json.dumps(older).encode())

    api = client.get(f"/api/projects/{pid}/rounds/0").json()
    assert api["admitted"] == [members[2]], api
    assert [t["admitted"] for t in api["trainers"]] == [False, False, True]
    html = client.get(f"/projects/{pid}/rounds/0").text
    cell = re.search(r'<dd id="admitted-trainers">(.*?)</dd>', html, re.S)
    assert cell and members[2] in cell[1] and members[0] not in cell[1], html
    assert "in the new model although unpaid, clipped to the paid updates" in " ".join(cell[1].split())
    row = re.search(rf'<tr role="row" class="flagged" data-trainer="{members[2]}">(.*?)</tr>', html, re.S)
    assert row and 'data-admitted="true">in the model, unpaid, clipped<' in row[1], html
    assert html.count('data-admitted="true"') == 1

    assert api["screened"] == [members[1]], api
    assert [t["screened"] for t in api["trainers"]] == [False, True, False]
    cell = re.search(r'<dd id="screened-trainers">(.*?)</dd>', html, re.S)
    assert cell and members[1] in cell[1] and members[2] not in cell[1], html
    words = " ".join(cell[1].split())
    assert "its committed row points against the owner's reference, so its update is kept out of the new model" in words
    assert "it is paid as the rule scores it" in words, words
    row = re.search(rf'<tr role="row" class="" data-trainer="{members[1]}">(.*?)</tr>', html, re.S)
    assert row and 'data-screened="true">not in the model, paid: against the owner' in row[1], html
    assert html.count('data-screened="true"') == 1
    later = client.get(f"/api/projects/{pid}/rounds/1").json()
    assert later["admitted"] == later["screened"] == [] and later["trainers"][1]["screened"] is False, later
    html = client.get(f"/projects/{pid}/rounds/1").text
    assert 'id="admitted-trainers"' not in html and 'id="screened-trainers"' not in html


def test_a_training_project_polls_its_live_part_and_shows_its_initial_model(client: TestClient, actors: Actors) -> None:
    pid = actors.training_project(2, rounds=1)
    page = client.get(f"/projects/{pid}").text
    assert f'hx-get="/projects/{pid}/live" hx-trigger="every 5s"' in page
    assert "Initial model" in page and "no round is finalized yet" in page
    assert client.get(f"/projects/{pid}/model").status_code == 404  # nothing trained yet
    live = client.get(f"/projects/{pid}/live", headers={"HX-Request": "true"}).text
    assert 'id="open-round"' in live and 'id="rounds-done" hx-swap-oob="true"' in live
    assert '<section id="rounds-list" aria-labelledby="rounds-title" hx-swap-oob="true">' in live


def test_downloads_are_the_pinned_objects(client: TestClient, actors: Actors, ipfs: IpfsClient) -> None:
    pid = actors.training_project(3, rounds=1)
    actors.submit_all(pid, 0)
    weights = b"model bytes of round 0"
    model_cid = ipfs.add(weights)
    scores, flags = [500_000, 300_000, 200_000], [False, False, False]
    doc = proof_document(actors, pid, 0, scores, flags, 0.5).model_copy(update={"model_cid": model_cid})
    proof_cid = ipfs.add(doc.to_bytes())
    actors.aggregator.finalize_round(pid, 0, Finalization(model_cid, proof_cid, scores, flags, doc.proof_bytes))
    proof = client.get(f"/projects/{pid}/rounds/0/proof-document")
    assert proof.status_code == 200 and proof.content == doc.to_bytes()
    assert "attachment" in proof.headers["content-disposition"]
    for url in (f"/projects/{pid}/rounds/0/model", f"/projects/{pid}/model"):
        answer = client.get(url)
        assert answer.status_code == 200 and answer.content == weights


def test_the_rule_names_the_test_that_flags_each_update() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=3_000)
    ups = [base + 0.5 * rng.normal(size=3_000) for _ in range(6)]
    ups.append(-base + 0.1 * rng.normal(size=3_000))  # points against the others
    ups.append(ups[1] * 8)  # scaled up
    ups.append(ups[2].copy())  # a copy of an earlier update
    ups.append(ups[3] * 0.01)  # barely trained
    rows = committed_rows(sketch_rows(np.stack(ups), 64, 7))
    causes = rule_causes(rows, np.ones(len(ups), bool), None, 64)
    assert causes[:6] == [[]] * 6
    assert causes[6] == ["far"]
    assert causes[7] == ["boosted", "duplicate"]  # same direction as trainer 1: a duplicate too
    assert causes[8] == ["duplicate"]
    assert causes[9][0] == "lazy"
    # Arrival order decides which copy is the duplicate: the copy arriving first is not flagged as one.
    order = [8, *range(8), 9]
    assert "duplicate" not in rule_causes(rows, np.ones(len(ups), bool), order, 64)[8]


def test_a_round_page_says_whether_the_owners_reference_was_committed_and_revealed(
    client: TestClient, actors: Actors, ipfs: IpfsClient
) -> None:
    """Read from the chain (``referenceOf``): round 0 revealed (its commitment shown), round 1 committed and not
    revealed, round 2 none; each in words, linking to the page that says what the reference is. What the reference
    changed: nothing where it was not revealed (no partial on the page); in round 0 the trainers' updates are not on
    IPFS (made-up CIDs), so their rows, on chain only as hashes, cannot be made again: the JSON and the page's partial
    say so, and name the one unflagged trainer paid nothing (by the rule's own test or by the reference)."""
    pid = actors.training_project(3, rounds=3)
    row = commit_update(np.random.default_rng(5).normal(size=300), actors.owner.sketch_seed(pid),
                        actors.owner.sketch_width(pid))[0]  # fmt: skip
    sealed = commit_reference(actors.owner, pid, 0, row)
    actors.submit_all(pid, 0)
    reveal_reference(actors.owner, pid, 0, sealed, HashProver())
    finalize(actors, ipfs, pid, 0, [3, 2, 0], [False] * 3, 0.5)  # the test proof covers the revealed commitment
    withheld = commit_reference(actors.owner, pid, 1, row)
    actors.submit_all(pid, 1)
    actors.chain.increase_time(actors.owner.round_deadlines(pid).reveal - actors.chain.timestamp() + 1)
    finalize(actors, ipfs, pid, 1, [3, 2, 1], [False] * 3, 0.5)
    actors.submit_all(pid, 2)
    finalize(actors, ipfs, pid, 2, [3, 2, 1], [False] * 3, 0.5)

    commitment = "0x" + sealed.commitment.hex()
    seals = ["0x" + sealed.seal.hex(), "0x" + withheld.seal.hex(), None]
    expected = {
        0: (True, True, commitment, "committed a reference and revealed it: the round was scored and proven with it"),
        1: (True, False, None, "committed a reference but did not reveal it: the round was scored without it"),
        2: (False, False, None, "did not commit a reference: the round was scored by the rule alone"),
    }
    for round_, (committed, revealed, shown, words) in expected.items():
        api = client.get(f"/api/projects/{pid}/rounds/{round_}/reference").json()
        assert (api["committed"], api["revealed"], api["commitment"]) == (committed, revealed, shown), api
        assert api["seal"] == seals[round_] and words in api["status"], api
        html = client.get(f"/projects/{pid}/rounds/{round_}").text
        cell = re.search(r'<dd id="owner-reference"(.*?)</dd>', html, re.S)
        assert cell, html
        assert f'data-committed="{str(committed).lower()}" data-revealed="{str(revealed).lower()}"' in cell[1]
        assert words in " ".join(cell[1].split()), cell[1]
        assert (f'data-copy="{commitment}"' in cell[1]) is revealed, cell[1]
        assert 'href="/about/owner-reference"' in cell[1]
        effect = api["effect"]
        assert effect["state"] == ("unavailable" if revealed else "none"), effect
        assert effect["unpaid"] == effect["added"] == [], effect
        assert (f"/projects/{pid}/rounds/{round_}/reference-changes" in html) is revealed
    members = actors.owner.trainers(pid)
    effect = client.get(f"/api/projects/{pid}/rounds/0/reference").json()["effect"]
    assert "3 revealed update(s) cannot be read by the public" in effect["unavailable"], effect
    summary = effect["summary"]
    assert "cannot be recomputed from public data" in summary and "on chain only as hashes" in summary, summary
    assert effect["undecided"] == [members[2]]  # unflagged, paid nothing: by the rule's test or by the reference
    assert "1 unflagged trainer(s) were paid nothing (#2)" in summary, summary
    part = client.get(f"/projects/{pid}/rounds/0/reference-changes", headers={"HX-Request": "true"})
    assert part.status_code == 200 and 'data-state="unavailable"' in part.text
    assert "cannot be recomputed from public data" in part.text
    listed = re.search(r'<ul id="reference-undecided"[^>]*>(.*?)</ul>', part.text, re.S)
    assert listed and re.findall(r'data-trainer="(0x[0-9a-fA-F]{40})"', listed[1]) == [members[2]], part.text
    assert client.get(f"/api/projects/{pid}/rounds/3/reference").status_code == 404  # not finalized
    about = client.get("/about/owner-reference")
    assert about.status_code == 200 and "It flags nobody" in about.text and "robust-reference.md" in about.text
    screen = re.search(r'<p id="reference-screen">(.*?)</p>', about.text, re.S)
    words = " ".join(screen[1].split()) if screen else about.text
    assert "(a cosine of \u22120.3 or less) is kept out of the round's new model" in words, words
    assert "the same with it as without it, so an owner cannot use it to take anyone's pay" in words, words


def _row(html: str, trainer: str) -> str:
    """The table row of ``trainer`` in ``html`` (the first one)."""
    found = re.search(rf'<tr role="row"[^>]*data-trainer="{trainer}">(.*?)</tr>', html, re.S)
    assert found, html
    return found[1]


def _history_outcomes(html: str, table: str) -> dict[int, str]:
    """Round -> the Outcome cell of each row of the history table ``table`` (one project)."""
    body = re.search(rf'id="{table}">(.*?)</table>', html, re.S)
    assert body, html
    cells = re.findall(r'data-label="Round">(\d+)</td><td role="cell" data-label="Outcome">(.*?)</td>', body[1], re.S)
    return {int(round_): outcome for round_, outcome in cells}


def test_a_submission_shown_stale_is_marked_and_explained(client: TestClient, actors: Actors, ipfs: IpfsClient) -> None:
    """Trainer 3 replays trainer 0's round-0 row in round 1 and the stranger shows it stale on chain. While the round
    is open, its line says so; once finalized, the round's JSON and page mark it STALE and say which earlier row it
    copies (round, whose), who showed it and the refund taken from its stake, as a rejection nobody can dispute (not
    the aggregator's word, though its proof document gives one), with how to avoid it; the payout is the stake less
    the refund and the slash, as the market owes it; the project page counts it in the round's line and the trainer's,
    and the trainer's history (account and trainer pages) marks that round, not the one before."""
    stale = challenge_replay(actors)
    opened = by_trainer(client.get(f"/api/projects/{stale.pid}").json()["open_round"]["trainers"])
    assert [t for t, e in opened.items() if e["stale"]] == [stale.replayer], opened
    assert "shown stale by " + short(stale.challenger) in opened[stale.replayer]["state"]
    live = re.search(r'id="open-round-trainers">(.*?)</table>', client.get(f"/projects/{stale.pid}").text, re.S)
    assert live and live[1].count(">STALE<") == 1 and ">STALE<" in _row(live[1], stale.replayer)
    finalize_stale_round(actors, ipfs, stale, why="stale: a near copy of a row revealed in round 0")

    api = client.get(f"/api/projects/{stale.pid}/rounds/1").json()
    assert api["stale"] == [stale.replayer], api
    entry = by_trainer(api["trainers"])[stale.replayer]
    shown = entry["stale"]
    assert (shown["earlier_round"], shown["author"], shown["author_address"]) == (0, 0, stale.copied), shown
    assert (shown["own"], shown["challenger"], shown["tx_hash"]) == (False, stale.challenger, stale.tx_hash), shown
    assert shown["refund"] == str(stale.award) and shown["refund_eth"] == eth(stale.award), shown
    summary = shown["summary"]
    said = [f"shown stale by {short(stale.challenger)}", f"the row of trainer #0 ({short(stale.copied)})",
            "revealed in round 0", "rejected beyond dispute",
            f"{eth(stale.award)} ETH of its stake refunded"]  # fmt: skip
    assert all(words in summary for words in said), summary
    assert entry["flagged"] and entry["rejected"] and entry["reward"] == "0" and entry["reason"] == summary, entry
    slashed = int(entry["slashed"])
    project = client.get(f"/api/projects/{stale.pid}").json()
    (payout,) = [p for p in project["payouts"] if p["account"] == stale.replayer]
    (member,) = [m for m in project["trainers"] if m["trainer"] == stale.replayer]
    kept = int(project["project"]["stake"]) - stale.award - slashed  # round 0's reward besides
    owed = actors.owner.withdrawable(stale.pid, stale.replayer)
    assert int(payout["entitled"]) == owed == kept + int(member["earned"]), (payout, member)

    html = client.get(f"/projects/{stale.pid}/rounds/1").text
    assert html.count(">STALE<") == 1 and html.count('data-cause="stale"') == 1, html
    row = _row(html, stale.replayer)
    assert ">STALE<" in row and ">REJECTED<" not in row and 'data-cause="rejected"' not in row, row
    assert "rejected by the aggregator" not in row and str(escape(summary)) in row, row
    words = " ".join(row.split())
    assert "cannot be disputed" in words and "submit a fresh update each round" in words, words
    assert f'data-challenger="{stale.challenger}" data-refund="{stale.award}"' in row, row
    assert f'href="/projects/{stale.pid}/rounds/0">round 0</a>' in row, row

    page = client.get(f"/projects/{stale.pid}").text
    line = re.search(r'id="round-line-1"(.*?)</tr>', page, re.S)
    assert line and "(1 stale)" in line[1] and "stale" not in re.search(r'id="round-line-0"(.*?)</tr>', page, re.S)[1]
    assert "(1 stale)" in _row(page, stale.replayer)
    histories = {f"/accounts/{stale.replayer}": "account-history", f"/trainers/{stale.replayer}": "reliability-history"}
    for url, table in histories.items():
        outcomes = _history_outcomes(client.get(url).text, table)
        assert "stale-mark" in outcomes[1] and "stale-mark" not in outcomes[0], (url, outcomes)
    credit = client.get(f"/accounts/{stale.challenger}").text
    assert f'id="account-bond-credit" data-wei="{stale.award}"' in credit
    assert "refunded for its stale challenges" in credit


def test_a_stale_challenge_names_the_copied_row_and_the_challenger() -> None:
    """Whose earlier row: another trainer's (its index and address), the trainer's own, the owner's reference; who
    challenged: an account, or the project's aggregator or owner by role."""
    owner, aggregator, a, b = ("0x" + c * 40 for c in "0ab1")
    members = {0: a, 1: b}
    roles = project_roles(owner, aggregator)
    row = {"earlier_round": 2, "author": 0, "challenger": b, "award": "3000000000000000", "tx_hash": "0x" + "5" * 64}
    other = stale_shown(row, b, members, roles)
    assert other.author_address == a and not other.own and other.refund_eth == "0.003"
    assert other.summary.startswith(f"shown stale by the trainer itself ({short(b)}): its row nearly copies the row of "
                                    f"trainer #0 ({short(a)}) revealed in round 2"), other.summary  # fmt: skip
    own = stale_shown({**row, "challenger": aggregator}, a, members, roles)
    assert own.own, own
    assert f"shown stale by the aggregator ({short(aggregator)}): its row nearly copies its own row" in own.summary
    reference = stale_shown({**row, "author": None, "challenger": owner}, a, members, roles)
    assert reference.author is None and reference.author_address is None and not reference.own
    assert f"by the owner ({short(owner)}): its row nearly copies the owner's reference row revealed in round 2" in (
        reference.summary
    )
    assert "0.003 ETH of its stake refunded the challenger's gas" in reference.summary
