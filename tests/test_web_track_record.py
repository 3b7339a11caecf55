"""What a trainer's reliability is made of, what a reliability bar requires and what a job costs, in the web app,
against a real chain (session anvil): a record built by finished rounds in two projects of different owners,
with a self-dealt project (its owner is its aggregator) that does not show up in it; a join refused for too
small an earned record, in a sentence naming the ETH required; and the job review's protocol fee and total."""

# ruff: noqa: F811  (fixtures imported from tests.web_fixtures are used as test arguments)
from __future__ import annotations

from decimal import Decimal

from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from marketplace.adapters.chain.market import PROTOCOL_FEE_BPS, MarketClient
from marketplace.web.schemas import eth
from marketplace.web.services.track_records import INDEPENDENCE_RULE
from tests.market_fixtures import ETH, Actors
from tests.test_web_api import job, send_prepared
from tests.web_fixtures import client, ipfs_node, web_app, web_settings  # noqa: F401

BURN = "0x000000000000000000000000000000000000dEaD"
WHY = "farming this bar by self-dealing burns at least the budget per slot it protects"


def run_project(
    actors: Actors, owner: MarketClient, aggregator: MarketClient, trainers: list[MarketClient], rounds: int,
    flagged_last: int | None = None,
) -> int:  # fmt: skip
    """A project of ``owner`` aggregated by ``aggregator`` that ``trainers`` join and finish: every round they
    all commit and reveal, equal scores; in the last round trainer ``flagged_last`` (an index) is flagged."""
    config = actors.config(
        aggregator=aggregator.address, rounds=rounds, min_trainers=len(trainers), max_trainers=len(trainers)
    )
    pid = owner.create_project(config)
    for t in trainers:
        t.join(pid)
    for round_ in range(rounds):
        actors.submit_all(pid, round_)
        flags = [round_ == rounds - 1 and i == flagged_last for i in range(len(trainers))]
        aggregator.finalize_round(pid, round_, actors.result(pid, round_, [1] * len(trainers), flags))
    return pid


def test_a_trainers_record_shows_independent_projects_only(client: TestClient, actors: Actors) -> None:
    """Trainer ``t`` contributes 2 rounds in a project of the owner (with ``u``, flagged in its last round), 1
    round in a project of another owner, and 2 rounds in a project whose owner is its own aggregator. Its page and
    resource show 3 contributed rounds in 2 projects of 2 distinct owners and the ETH earned in those two, as the
    registry counts it; the self-dealt project is listed as not in the record, and none of its rounds appear in
    the history."""
    t, u = actors.trainers[0], actors.trainers[1]
    first = run_project(actors, actors.owner, actors.aggregator, [t, u], rounds=2, flagged_last=1)
    second = run_project(actors, actors.stranger, actors.aggregator, [t], rounds=1)
    self_dealt = run_project(actors, actors.owner, actors.owner, [t], rounds=2)
    earned = {pid: actors.owner.trainer_info(pid, t.address).earned for pid in (first, second, self_dealt)}
    assert all(earned.values())  # the self-dealt project paid t too: only its record ignores it

    profile = client.get(f"/api/trainers/{t.address}").json()
    record = profile["track_record"]
    counted = earned[first] + earned[second]
    assert (record["contributed"], record["flagged"], record["missed"], record["rounds"]) == (3, 0, 0, 3)
    assert (record["projects"], record["owners"]) == (2, 2)
    assert record["earned"] == str(counted) and record["earned_eth"] == eth(counted)
    chain = actors.owner.track_record(t.address)
    assert (chain.contributed, chain.projects, chain.owners, chain.earned) == (3, 2, 2, counted)
    assert record["rule"] == INDEPENDENCE_RULE and "owner is not their aggregator" in record["rule"]
    assert record["summary"] == (
        f"3 rounds (3 contributed, 0 flagged, 0 missed) in 2 independent projects of 2 distinct owners; "
        f"{eth(counted)} ETH earned in them"
    )
    assert (profile["contributed"], profile["flagged"], profile["missed"]) == (3, 0, 0)
    assert {p["project_id"]: p["counted"] for p in profile["projects"]} == {
        first: True, second: True, self_dealt: False
    }  # fmt: skip
    assert {h["project_id"] for h in profile["history"]} == {first, second}  # no round of the self-dealt one
    assert profile["reliability_bps"] == actors.owner.reliability(t.address) == (3 + 1) * 10_000 // (3 + 2)

    flagged = client.get(f"/api/trainers/{u.address}").json()["track_record"]
    assert (flagged["contributed"], flagged["flagged"], flagged["projects"], flagged["owners"]) == (1, 1, 1, 1)

    page = client.get(f"/trainers/{t.address}").text
    assert f'<dd id="record-earned">{eth(counted)} ETH</dd>' in page
    assert '<dd id="record-projects">2</dd>' in page and '<dd id="record-owners">2</dd>' in page
    assert '<span id="record-contributed">3</span>' in page
    assert "Only projects whose owner is not their aggregator count" in page
    self_dealt_row = page[page.index(f'<tr data-project-id="{self_dealt}">') :].split("</tr>")[0]
    assert "no: its owner is its aggregator" in self_dealt_row
    history = page[page.index('id="reliability-history"') :].split("</table>")[0]
    assert f'href="/projects/{self_dealt}"' not in history and f'href="/projects/{second}"' in history
    # The registry's new events (ProjectCounted, RoundNotCounted) are not indexed, and not skipped as malformed.
    assert client.get("/api/status").json()["skipped_events"] == 0

    newcomer = client.get(f"/api/trainers/{actors.trainers[5].address}").json()["track_record"]
    assert newcomer["earned"] == "0" and newcomer["summary"].startswith("no rounds in independent projects yet")


def test_a_join_below_the_earned_record_a_bar_requires_is_refused_in_words(client: TestClient, actors: Actors) -> None:
    """A project with a reliability bar (10 ETH for 4 trainers) requires 2.5 ETH / 2 % = 125 ETH earned in
    independent projects: the project resource and page and the join page say so and why, and the join
    simulation refuses a newcomer with a sentence naming the ETH required. A trainer with enough earned joins a
    project whose requirement it meets."""
    victim = actors.create(reward_budget=10 * ETH, max_trainers=4, min_reliability_bps=5_000)
    required = actors.owner.required_track_record(victim)
    assert required == 125 * ETH

    bar = client.get(f"/api/projects/{victim}").json()["reliability_bar"]
    assert bar["required_earned"] == str(required) and bar["required_earned_eth"] == "125"
    assert (bar["protected_eth"], bar["min_reliability_bps"], bar["protocol_fee_bps"]) == ("2.5", 5_000, 200)
    assert bar["summary"] == (
        "at least 50% reliability and 125 ETH earned in independent projects: the budget per trainer slot (2.5 ETH) "
        f"divided by the 2% protocol fee, because {WHY}"
    )
    assert client.get(f"/api/projects/{actors.create()}").json()["reliability_bar"] is None  # no bar

    page = client.get(f"/projects/{victim}").text
    assert '<strong id="project-required-earned">125 ETH</strong>' in page and WHY in page
    join_page = client.get(f"/projects/{victim}/join").text
    assert 'data-required-earned="125000000000000000000"' in join_page
    assert '<dd id="join-required-earned"><strong>125 ETH</strong>' in join_page and WHY in join_page
    assert 'id="join-earned"' in join_page

    newcomer = actors.trainers[0].address
    refused = client.post("/api/tx/join", json={"project_id": victim, "sender": newcomer})
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert detail.startswith("the chain would reject this transaction: TrackRecordTooSmall(")
    assert (
        f"{newcomer} has earned 0 ETH in independent projects and project {victim} requires 125 ETH: its "
        "reliability bar also asks for an earned record of its budget per trainer slot divided by the 2% "
        f"protocol fee, because {WHY}" in detail
    )

    # Earn 10 ETH in an independent project (a whole budget): a bar protecting 0.2 ETH per slot (10 ETH required)
    # lets it in, and one protecting 4 wei more refuses it with what it has and what that bar requires.
    earner = actors.trainers[0]
    run_project(actors, actors.stranger, actors.aggregator, [earner], rounds=1)
    assert actors.owner.track_record(earner.address).earned == 10 * ETH  # the default budget, all of it
    met = actors.create(reward_budget=ETH // 5, min_trainers=1, max_trainers=1, min_reliability_bps=5_000)
    assert actors.owner.required_track_record(met) == 10 * ETH
    assert client.post("/api/tx/join", json={"project_id": met, "sender": earner.address}).status_code == 200
    short = actors.create(reward_budget=ETH // 5 + 4, min_trainers=1, max_trainers=1, min_reliability_bps=5_000)
    refused = client.post("/api/tx/join", json={"project_id": short, "sender": earner.address}).json()["detail"]
    needed = eth(actors.owner.required_track_record(short))
    assert f"has earned 10 ETH in independent projects and project {short} requires {needed} ETH" in refused


def test_a_join_below_the_minimum_reliability_is_refused_in_words(client: TestClient, actors: Actors) -> None:
    pid = actors.create(min_reliability_bps=6_000)
    trainer = actors.trainers[0].address
    detail = client.post("/api/tx/join", json={"project_id": pid, "sender": trainer}).json()["detail"]
    assert "ReliabilityTooLow(" in detail
    assert detail.endswith(f"{trainer} has a reliability of 50%; project {pid} requires at least 60%")


def test_the_job_review_shows_the_protocol_fee_and_the_total(
    client: TestClient, actors: Actors, accounts: list[LocalAccount]
) -> None:
    """The review step and the create transaction show the escrow, the protocol fee (burned) and the total sent;
    with a reliability bar, the earned record it will require of trainers, which is what the chain then asks.
    A budget whose fee is not a whole number of wei: the fee is rounded up, as the market takes it."""
    owner = accounts[1]
    budget = Decimal("2.000000000000000007")
    body = job(actors, budget_eth=str(budget), aggregator_fee_eth="0.2", max_trainers="3", min_reliability_pct="60")
    budget_wei = int(budget * ETH)
    fee = -(-budget_wei * PROTOCOL_FEE_BPS // 10_000)
    escrow, payment = budget_wei + ETH // 5, budget_wei + ETH // 5 + fee
    required = budget_wei * 10_000 // (3 * 200)  # TrainingMarket.requiredTrackRecord's formula

    verifier = {"verifier": actors.deployment.address("TestRoundVerifier")}
    form = client.post("/projects/new", data={**body, **verifier}, headers={"HX-Request": "true"})
    assert form.status_code == 200, form.text
    page = form.text
    assert f'<dd id="job-escrow">{eth(escrow)} ETH (' in page
    assert f'<dd id="job-protocol-fee">{eth(fee)} ETH, burned (2% of the reward budget)</dd>' in page
    assert f'<dd id="job-payment"><strong>{eth(payment)} ETH</strong>' in page
    assert f'<strong id="job-required-earned">{eth(required)} ETH</strong>' in page and WHY in page

    prepared = client.post("/api/tx/create-project", json={**body, "sender": owner.address}).json()
    costs = prepared["costs"]
    assert int(prepared["value"]) == payment == int(costs["payment"])
    assert (int(costs["escrow"]), int(costs["protocol_fee"])) == (escrow, fee)
    assert costs["reliability_bar"]["required_earned"] == str(required)
    assert (
        f"sending {eth(payment)} ETH: escrowing {eth(escrow)} ETH and burning a {eth(fee)} ETH" in prepared["summary"]
    )
    assert f"trainers need at least 60% reliability and {eth(required)} ETH earned" in prepared["summary"]

    burned = actors.chain.balance(BURN)
    pid = client.get(f"/api/tx/{send_prepared(actors.chain, owner, prepared)}").json()["project_id"]
    assert actors.chain.balance(BURN) - burned == fee
    assert actors.owner.get_project(pid).reward_budget == budget_wei
    assert actors.owner.required_track_record(pid) == required  # what the review said the bar would require

    plain = client.post("/projects/new", data={**job(actors), **verifier}, headers={"HX-Request": "true"}).text
    assert 'id="job-protocol-fee">0.03 ETH' in plain and 'id="job-required-earned"' not in plain
    assert client.post("/api/tx/create-project", json=job(actors)).json()["costs"]["reliability_bar"] is None
    assert "2% of it is burned on top as a protocol fee" in client.get("/projects/new").text
