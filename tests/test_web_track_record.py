"""What a trainer's reliability is made of, what a reliability bar requires and what a job costs, in the web app,
against a real chain (session anvil): a record built by finished rounds in two projects of different owners,
with a self-dealt project (its owner is its aggregator) that does not show up in it; a join refused for too
small an available record, in a sentence naming the ETH available and required; a record reserved by one bar
(available < earned) that refuses a second bar of the same size until the trainer withdraws; and the job
review's protocol fee and total."""

# ruff: noqa: F811  (fixtures imported from tests.web_fixtures are used as test arguments)
from __future__ import annotations

from decimal import Decimal

from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from marketplace.adapters.chain.market import PROTOCOL_FEE_BPS, MarketClient
from marketplace.web.filters import amount
from marketplace.web.schemas import eth
from marketplace.web.services.track_records import INDEPENDENCE_RULE
from tests.market_fixtures import ETH, Actors
from tests.test_web_api import form, job, send_prepared
from tests.web_fixtures import client, ipfs_node, web_app, web_settings  # noqa: F401

BURN = "0x000000000000000000000000000000000000dEaD"
WHY = "farming this bar by self-dealing burns at least the budget per guaranteed trainer (minimum trainers) it protects"
RESERVES = "joining reserves it until the trainer withdraws, and a round it is flagged in spends it"


def required_record(reward_budget: int, min_trainers: int) -> int:
    """``TrainingMarket.requiredTrackRecord``'s formula: the budget per guaranteed trainer over the fee rate."""
    return reward_budget * 10_000 // (min_trainers * PROTOCOL_FEE_BPS)


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
    assert (record["reserved"], record["available"]) == ("0", str(counted))  # no bar reserved any of it
    chain = actors.owner.track_record(t.address)
    assert (chain.contributed, chain.projects, chain.owners, chain.earned) == (3, 2, 2, counted)
    assert record["rule"] == INDEPENDENCE_RULE and "owner is not their aggregator" in record["rule"]
    assert record["summary"] == (
        f"3 rounds (3 contributed, 0 flagged, 0 missed) in 2 independent projects of 2 distinct owners; "
        f"{eth(counted)} ETH earned in them, 0 ETH of it reserved by reliability bars, {eth(counted)} ETH available"
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
    assert f'<dd id="record-earned">{amount(counted)}</dd>' in page
    assert f'<dd id="record-reserved">{amount(0)}</dd>' in page
    assert f'<dd id="record-available"><strong>{amount(counted)}</strong>' in page
    assert '<dd id="record-projects">2</dd>' in page and '<dd id="record-owners">2</dd>' in page
    assert '<span id="record-contributed">3</span>' in page
    assert "Only projects whose owner is not their aggregator count" in page
    self_dealt_row = page[page.index(f'data-project-id="{self_dealt}">') :].split("</tr>")[0]
    assert "no: its owner is its aggregator" in self_dealt_row
    history = page[page.index('id="reliability-history"') :].split("</table>")[0]
    assert f'href="/projects/{self_dealt}"' not in history and f'href="/projects/{second}"' in history
    # The registry's RoundNotCounted is not indexed, and RoundRecorded is: nothing was skipped as malformed.
    assert client.get("/api/status").json()["skipped_events"] == 0

    newcomer = client.get(f"/api/trainers/{actors.trainers[5].address}").json()["track_record"]
    assert newcomer["earned"] == "0" and newcomer["summary"].startswith("no rounds in independent projects yet")


def test_a_join_below_the_earned_record_a_bar_requires_is_refused_in_words(client: TestClient, actors: Actors) -> None:
    """A project with a reliability bar (10 ETH for at least 2 trainers, at most 4) requires the budget per
    guaranteed trainer, 10 / 2 = 5 ETH, over 2 % = 250 ETH of available record: the project resource and page and
    the join page say so and why, and the join simulation refuses a newcomer with a sentence naming the ETH
    available and required. A trainer with enough available joins a project whose requirement it meets."""
    budget, guaranteed = 10 * ETH, 2
    victim = actors.create(reward_budget=budget, min_trainers=guaranteed, max_trainers=4, min_reliability_bps=5_000)
    required, protected = required_record(budget, guaranteed), budget // guaranteed
    assert actors.owner.required_track_record(victim) == required
    assert required > required_record(budget, 4)  # the bar divides by minTrainers, not maxTrainers

    bar = client.get(f"/api/projects/{victim}").json()["reliability_bar"]
    assert bar["required_earned"] == str(required) and bar["required_earned_eth"] == eth(required)
    assert (bar["protected"], bar["protected_eth"]) == (str(protected), eth(protected))
    assert (bar["min_reliability_bps"], bar["protocol_fee_bps"]) == (5_000, PROTOCOL_FEE_BPS)
    assert bar["summary"] == (
        f"at least 50% reliability and {eth(required)} ETH of record earned in independent projects and not "
        f"reserved by another bar: the budget per guaranteed trainer (minimum trainers), {eth(protected)} ETH, "
        f"divided by the 2% protocol fee, because {WHY}; {RESERVES}"
    )
    assert "until the trainer withdraws" in bar["reservation_rule"] and "spends" in bar["reservation_rule"]
    assert client.get(f"/api/projects/{actors.create()}").json()["reliability_bar"] is None  # no bar

    page = client.get(f"/projects/{victim}").text
    assert f'<strong id="project-required-earned">{amount(required)}</strong>' in page and WHY in page
    assert "per trainer slot" not in page
    join_page = client.get(f"/projects/{victim}/join").text
    assert f'data-required-earned="{required}"' in join_page
    assert f'<dd id="join-required-earned"><strong>{amount(required)}</strong>' in join_page and WHY in join_page
    assert 'id="join-available"' in join_page and 'id="join-reserved"' in join_page
    assert "Joining reserves this record until you withdraw" in join_page

    newcomer = actors.trainers[0].address
    refused = client.post("/api/tx/join", json={"project_id": victim, "sender": newcomer})
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert refused.json()["code"] == "TrackRecordTooSmall"
    assert detail.startswith(f"The chain would refuse to join project {victim}: ")
    assert (
        f"{newcomer} has 0 ETH of its record available (earned in independent projects and not reserved by another "
        f"bar it joined) and project {victim} requires {eth(required)} ETH: its reliability bar asks for a record of "
        f"its budget per guaranteed trainer (minimum trainers) divided by the 2% protocol fee, because {WHY}; "
        f"{RESERVES}" in detail
    )

    # Earn 10 ETH in an independent project (a whole budget): a bar whose one guaranteed trainer can be paid
    # 0.2 ETH (10 ETH required) lets it in, and one protecting 4 wei more refuses it with what it has available.
    earner = actors.trainers[0]
    run_project(actors, actors.stranger, actors.aggregator, [earner], rounds=1)
    assert actors.owner.track_record(earner.address).earned == 10 * ETH  # the default budget, all of it
    assert actors.owner.available_record(earner.address) == 10 * ETH
    met = actors.create(reward_budget=ETH // 5, min_trainers=1, max_trainers=1, min_reliability_bps=5_000)
    assert actors.owner.required_track_record(met) == required_record(ETH // 5, 1) == 10 * ETH
    assert client.post("/api/tx/join", json={"project_id": met, "sender": earner.address}).status_code == 200
    short = actors.create(reward_budget=ETH // 5 + 4, min_trainers=1, max_trainers=1, min_reliability_bps=5_000)
    refused = client.post("/api/tx/join", json={"project_id": short, "sender": earner.address}).json()["detail"]
    needed = eth(required_record(ETH // 5 + 4, 1))
    assert needed == eth(actors.owner.required_track_record(short))
    assert "has 10 ETH of its record available (earned in independent projects and not reserved" in refused
    assert f"and project {short} requires {needed} ETH" in refused


def test_a_record_reserved_by_one_bar_does_not_open_a_second_until_withdrawal(
    client: TestClient, actors: Actors, accounts: list[LocalAccount]
) -> None:
    """A trainer earns 10 ETH in an independent project and joins a barred project whose one guaranteed trainer
    can be paid 0.12 ETH: the bar reserves 0.12 / 2 % = 6 ETH. Its resource and page show 10 ETH earned, 6 ETH
    reserved (by that project) and 4 ETH available, and a second bar of the same size is refused with a sentence
    naming the 4 ETH available. Once the first project is cancelled and the trainer withdraws (the reservation is
    released), the second bar lets it in."""
    trainer = actors.trainers[0]
    assert accounts[3].address == trainer.address
    run_project(actors, actors.stranger, actors.aggregator, [trainer], rounds=1)
    earned = actors.owner.track_record(trainer.address).earned
    assert earned == 10 * ETH  # the default budget, all of it

    budget = 12 * ETH // 100
    first = actors.create(reward_budget=budget, min_trainers=1, max_trainers=2, min_reliability_bps=5_000)
    second = actors.create(reward_budget=budget, min_trainers=1, max_trainers=2, min_reliability_bps=5_000)
    size = required_record(budget, 1)
    assert size == 6 * ETH and actors.owner.required_track_record(second) == size
    assert client.post("/api/tx/join", json={"project_id": second, "sender": trainer.address}).status_code == 200
    trainer.join(first)
    available = earned - size
    assert actors.owner.available_record(trainer.address) == available < earned

    profile = client.get(f"/api/trainers/{trainer.address}").json()
    record = profile["track_record"]
    assert (record["earned"], record["reserved"], record["available"]) == (str(earned), str(size), str(available))
    assert (record["earned_eth"], record["reserved_eth"], record["available_eth"]) == ("10", "6", "4")
    assert record["summary"].endswith(
        "10 ETH earned in them, 6 ETH of it reserved by reliability bars, 4 ETH available"
    )
    reserved_by = {p["project_id"]: p["reserved"] for p in profile["projects"]}
    assert reserved_by[first] == str(size)
    page = client.get(f"/trainers/{trainer.address}").text
    assert f'<dd id="record-reserved">{amount(6 * ETH)}</dd>' in page
    assert f'<dd id="record-available"><strong>{amount(4 * ETH)}</strong>' in page
    first_row = page[page.index(f'data-project-id="{first}">') :].split("</tr>")[0]
    assert f'class="num record-reserved">{amount(6 * ETH)}</td>' in first_row

    refused = client.post("/api/tx/join", json={"project_id": second, "sender": trainer.address})
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert refused.json()["code"] == "TrackRecordTooSmall"
    assert (
        f"{trainer.address} has {eth(available)} ETH of its record available (earned in independent projects and "
        f"not reserved by another bar it joined) and project {second} requires {eth(size)} ETH" in detail
    )

    actors.owner.cancel(first)
    withdraw = client.post("/api/tx/withdraw", json={"project_id": first, "sender": trainer.address}).json()
    status = client.get(f"/api/tx/{send_prepared(actors.chain, accounts[3], withdraw)}").json()
    assert status["status"] == "confirmed" and {"Withdrawn", "RecordReleased"} <= set(status["events"])
    released = client.get(f"/api/trainers/{trainer.address}").json()["track_record"]
    assert (released["reserved"], released["available"]) == ("0", str(earned))
    assert client.post("/api/tx/join", json={"project_id": second, "sender": trainer.address}).status_code == 200


def test_a_join_below_the_minimum_reliability_is_refused_in_words(client: TestClient, actors: Actors) -> None:
    pid = actors.create(min_reliability_bps=6_000)
    trainer = actors.trainers[0].address
    refused = client.post("/api/tx/join", json={"project_id": pid, "sender": trainer}).json()
    assert refused["code"] == "ReliabilityTooLow"
    assert refused["detail"].endswith(f"{trainer} has a reliability of 50%, and project {pid} requires at least 60%.")


def test_the_job_review_shows_the_protocol_fee_and_the_total(
    client: TestClient, actors: Actors, accounts: list[LocalAccount]
) -> None:
    """The review step and the create transaction show the escrow, the protocol fee (burned) and the total sent;
    with a reliability bar, the record it will require of trainers (the budget per guaranteed trainer over the
    fee rate), which is what the chain then asks.
    A budget whose fee is not a whole number of wei: the fee is rounded up, as the market takes it."""
    owner = accounts[1]
    budget = Decimal("2.000000000000000007")
    body = form(
        actors, budget_eth=str(budget), aggregator_fee_eth="0.2", min_trainers="2", max_trainers="3",
        min_reliability_pct="60",
    )  # fmt: skip
    api_body = job(
        actors, reward_budget_eth=str(budget), aggregator_fee_eth="0.2", min_trainers=2, max_trainers=3,
        min_reliability_bps=6_000,
    )  # fmt: skip
    budget_wei = int(budget * ETH)
    fee = -(-budget_wei * PROTOCOL_FEE_BPS // 10_000)
    escrow, payment = budget_wei + ETH // 5, budget_wei + ETH // 5 + fee
    required = required_record(budget_wei, 2)  # minimum trainers (2), not maximum (3)

    review = client.post("/projects/new", data=body, headers={"HX-Request": "true"})
    assert review.status_code == 200, review.text
    page = review.text
    assert f'<dd id="job-escrow">{amount(escrow)} (' in page
    assert f'<dd id="job-protocol-fee">{amount(fee)}, burned (2% of the reward budget)</dd>' in page
    assert f'<dd id="job-payment"><strong>{amount(payment, exact=True)}</strong>' in page
    assert f"exactly {eth(payment)}\N{NO-BREAK SPACE}ETH" in page  # what the wallet sends, to the wei
    assert f'<strong id="job-required-earned">{amount(required)}</strong>' in page and WHY in page

    prepared = client.post("/api/tx/create-project", json={**api_body, "sender": owner.address}).json()
    costs = prepared["costs"]
    assert int(prepared["value"]) == payment == int(costs["payment"])
    assert (int(costs["escrow"]), int(costs["protocol_fee"])) == (escrow, fee)
    assert costs["reliability_bar"]["required_earned"] == str(required)
    assert (
        f"sending {eth(payment)} ETH: escrowing {eth(escrow)} ETH and burning a {eth(fee)} ETH" in prepared["summary"]
    )
    assert f"trainers need at least 60% reliability and {eth(required)} ETH of record earned" in prepared["summary"]

    burned = actors.chain.balance(BURN)
    pid = client.get(f"/api/tx/{send_prepared(actors.chain, owner, prepared)}").json()["project_id"]
    assert actors.chain.balance(BURN) - burned == fee
    assert actors.owner.get_project(pid).reward_budget == budget_wei
    assert actors.owner.required_track_record(pid) == required  # what the review said the bar would require

    plain = client.post("/projects/new", data=form(actors), headers={"HX-Request": "true"}).text
    assert f'id="job-protocol-fee">{amount(3 * ETH // 100)}' in plain and 'id="job-required-earned"' not in plain
    assert client.post("/api/tx/create-project", json=job(actors)).json()["costs"]["reliability_bar"] is None
    assert "2% of it is burned on top as a protocol fee" in client.get("/projects/new").text
