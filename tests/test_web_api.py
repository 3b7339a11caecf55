"""The JSON API and the HTML pages against a real chain (session anvil) and a real IPFS node."""

# ruff: noqa: F811  (fixtures imported from tests.web_fixtures are used as test arguments)
from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from marketplace.adapters.chain.anvil import AnvilNode
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.market import encode_rule_version
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.fl.models import build_model, num_params
from marketplace.rule import RULE_VERSION
from marketplace.web.main import create_app
from marketplace.web.page_cache import PageCache, mark_chain_time
from marketplace.web.schemas import ProjectDetail, eth
from marketplace.web.services.client_keys import client_key
from marketplace.web.services.errors import TooManyRequests
from marketplace.web.services.pin_limits import PinLimiter
from marketplace.web.settings import WebSettings
from tests.disputes import close_disputes
from tests.http_server import LoopbackServer, QuietHandler
from tests.market_fixtures import ETH, Actors, cid_for, commit, commitment_for, reveal_update
from tests.web_fixtures import (  # noqa: F401
    ACCURACIES,
    INITIAL_CID,
    FinishedProject,
    client,
    finished_project,
    ipfs,
    ipfs_node,
    web_app,
    web_settings,
)

#: An EzklRoundVerifier's `roundVerifier` when rounds go through the (mock) reusable verifier.
NO_ROUND_VERIFIER = "0x" + "00" * 20


def send_prepared(chain: ChainClient, account: LocalAccount, tx: dict[str, Any]) -> str:
    """Signs and sends an unsigned transaction from the API the way a wallet does, and waits until it is mined
    (the wallet's "confirmed": on a loaded machine anvil's receipt can lag the send); returns its hash."""
    w3 = chain.w3
    params: dict[str, Any] = {
        "from": account.address, "to": tx["to"], "data": tx["data"], "value": int(tx["value"]),
        "chainId": tx["chain_id"], "nonce": w3.eth.get_transaction_count(account.address),
    }  # fmt: skip
    params["gas"] = int(w3.eth.estimate_gas(params) * 1.2)  # type: ignore[arg-type]
    params.update(chain.fees())
    raw = account.sign_transaction(params).raw_transaction
    tx_hash = w3.eth.send_raw_transaction(raw)
    w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    return tx_hash.to_0x_hex()


def job(actors: Actors, **overrides: Any) -> dict[str, Any]:
    """A job for the JSON API: amounts in ETH (or wei), percentages in basis points, periods in seconds."""
    body = {
        "model_name": "mlp", "rounds": 2, "min_trainers": 2, "max_trainers": 3, "reward_budget_eth": "1.5",
        "aggregator_fee_eth": "0.1", "stake_eth": "0.05", "aggregator": actors.aggregator.address,
        "min_reliability_bps": 0, "initial_model_cid": INITIAL_CID,
    }  # fmt: skip
    body.update(overrides)
    return body


def form(actors: Actors, **overrides: str) -> dict[str, str]:
    """The "post a job" form as the browser sends it: text, in ETH, percent and minutes."""
    data = {
        "model_name": "mlp", "rounds": "2", "min_trainers": "2", "max_trainers": "3", "budget_eth": "1.5",
        "aggregator_fee_eth": "0.1", "stake_eth": "0.05", "aggregator": actors.aggregator.address,
        "verifier": actors.deployment.address("TestRoundVerifier"), "min_reliability_pct": "0",
        "initial_model_cid": INITIAL_CID,
    }  # fmt: skip
    data.update(overrides)
    return data


def reject_undisputed(actors: Actors, pid: int, round_: int, rejected: list[bool]) -> None:
    """The aggregator announces the rejections (trainer order) and nobody disputes them before the window closes."""
    members = actors.owner.trainers(pid)
    actors.aggregator.reject_submissions(pid, round_, [t for t, r in zip(members, rejected, strict=True) if r])
    close_disputes(actors.owner, pid)


# ---------------------------------------------------------------------------- reading


def test_projects_list_filter_and_sort(client: TestClient, actors: Actors, finished_project: FinishedProject) -> None:
    open_id = actors.create(reward_budget=20 * ETH, min_reliability_bps=6_000)
    page = client.get("/api/projects").json()
    projects = page["items"]
    assert (page["total"], page["limit"], page["offset"]) == (2, 50, 0)
    assert [p["project_id"] for p in projects] == [open_id, finished_project.project_id]  # newest first
    finished = projects[1]
    assert finished["status"] == "finished"
    assert finished["rounds_done"] == 2 and finished["trainer_count"] == 3
    assert finished["reward_budget_eth"] == "3" and finished["stake_eth"] == "0.1"
    assert finished["aggregator_fee"] == str(ETH // 2) and finished["aggregator_fee_eth"] == "0.5"
    assert projects[0]["status"] == "open" and projects[0]["min_reliability_bps"] == 6_000

    def ids(query: str) -> list[int]:
        return [p["project_id"] for p in client.get(f"/api/projects?{query}").json()["items"]]

    assert ids("status=open") == [open_id]
    assert ids("max_reliability_bps=5000") == [finished_project.project_id]
    assert ids("max_reliability_bps=6000") == [open_id, finished_project.project_id]
    assert ids("sort=oldest")[0] == finished_project.project_id
    assert ids("min_budget_eth=10") == [open_id] == ids(f"min_budget={10 * ETH}")
    assert ids("limit=1") == [open_id] and ids("limit=1&offset=1") == [finished_project.project_id]
    assert client.get("/api/projects?limit=1&offset=1").json()["total"] == 2
    bad = client.get("/api/projects?status=bogus")
    assert bad.status_code == 422 and bad.json()["field"] == "status"
    assert bad.json()["errors"]["status"] == "must be one of: open, training, finished or cancelled"


def test_project_detail_rounds_scores_accuracy_payouts(
    client: TestClient, actors: Actors, finished_project: FinishedProject
) -> None:
    pid = finished_project.project_id
    detail = ProjectDetail.model_validate(client.get(f"/api/projects/{pid}").json())
    assert detail.settled and detail.project.status == "finished"
    assert [r.accuracy for r in detail.rounds] == ACCURACIES  # read from the proof documents on IPFS
    r1 = detail.rounds[1]
    assert r1.proof_cid == finished_project.proof_cids[1]
    assert [e.flagged for e in r1.trainers] == [False, False, True]
    assert [e.score for e in r1.trainers] == ["600000", "400000", "0"]
    assert abs(r1.trainers[0].share - 0.6) < 1e-9 and r1.trainers[2].share == 0
    assert int(r1.trainers[2].slashed) == ETH // 10 // 2  # 50% of the 0.1 ETH stake
    assert all(e.submitted and e.update_cid for e in r1.trainers)

    # Entitlements mirror the contract: they add up to the escrow and match withdrawable().
    assert sum(int(p.entitled) for p in detail.payouts) == int(detail.escrowed)
    for payout in detail.payouts:
        assert int(payout.entitled) == actors.owner.withdrawable(pid, payout.account)
    trainer = next(t for t in actors.trainers if t.address == finished_project.trainers[0])
    amount = trainer.withdraw(pid)
    after = ProjectDetail.model_validate(client.get(f"/api/projects/{pid}").json())
    assert next(p for p in after.payouts if p.account == trainer.address).withdrawn == str(amount)
    assert client.get(f"/api/projects/{pid}/rounds/0").json()["round"] == 0
    rounds = client.get(f"/api/projects/{pid}/rounds").json()
    assert rounds["total"] == 2 and [r["round"] for r in rounds["items"]] == [0, 1]
    assert [r["round"] for r in client.get(f"/api/projects/{pid}/rounds?offset=1").json()["items"]] == [1]


def test_verify_round_with_the_verifier(client: TestClient, finished_project: FinishedProject) -> None:
    pid = finished_project.project_id
    result = client.post(f"/api/projects/{pid}/rounds/1/verify").json()
    assert result["valid"] is True and result["error"] is None
    assert result["gas_estimate"] > 21_000
    assert result["proof_source"].startswith("calldata of 0x")
    proof = client.get(f"/api/projects/{pid}/rounds/1/proof").json()
    assert proof["flags"] == [False, False, True] and proof["scores"] == ["600000", "400000", "0"]
    assert len(proof["commitments"]) == 3 and len(bytes.fromhex(proof["proof"][2:])) == 32  # keccak(tag, values)

    missing = client.post(f"/api/projects/{pid}/rounds/7/verify")
    assert missing.status_code == 404 and "not finalized" in missing.json()["detail"]
    assert client.post("/api/projects/999/rounds/0/verify").status_code == 404


def test_verify_a_round_with_a_rejected_submission(client: TestClient, actors: Actors) -> None:
    """The contract hands a rejected submission to the verifier as an empty slot; "Verify on chain" must
    send the same values (it sent the rejected trainer's commitment and flag, and called a valid round invalid)."""
    pid = actors.training_project(3)
    actors.submit_all(pid, 0)
    rejected = [False, True, False]
    reject_undisputed(actors, pid, 0, rejected)
    result_ = actors.result(pid, 0, [600_000, 0, 400_000], [False, True, False], rejected)
    actors.aggregator.finalize_round(pid, 0, result_)
    result = client.post(f"/api/projects/{pid}/rounds/0/verify").json()
    assert result["valid"] is True and result["error"] is None
    proof = client.get(f"/api/projects/{pid}/rounds/0/proof").json()
    slot = proof["arrival_order"].index(1)  # the rejected trainer's slot
    assert proof["commitments"][slot] == "0x" + "00" * 32 and proof["flags"][slot] is False


def test_rejected_submissions_are_shown(client: TestClient, actors: Actors) -> None:
    """``SubmissionRejected`` is indexed: the API's round entries say which submission the aggregator rejected
    (``rejected``, besides ``flagged``), and the project page marks it."""
    pid = actors.training_project(3, rounds=2)
    actors.submit_all(pid, 0)
    rejected = [False, True, False]
    reject_undisputed(actors, pid, 0, rejected)
    actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [600_000, 0, 400_000], rejected, rejected))
    actors.submit_all(pid, 1)
    actors.aggregator.finalize_round(pid, 1, actors.result(pid, 1, [500_000, 0, 500_000], [False, False, True]))

    rounds = client.get(f"/api/projects/{pid}/rounds").json()["items"]
    assert [e["rejected"] for e in rounds[0]["trainers"]] == rejected
    assert [e["flagged"] for e in rounds[0]["trainers"]] == rejected  # a rejection is recorded as flagged
    assert [e["rejected"] for e in rounds[1]["trainers"]] == [False, False, False]  # flagged by the rule only
    assert [e["flagged"] for e in rounds[1]["trainers"]] == [False, False, True]
    assert client.get(f"/api/projects/{pid}/rounds/0").json()["trainers"][1]["rejected"] is True
    assert [e["dispute"] for e in rounds[0]["trainers"]] == [None, "upheld", None]

    round0 = client.get(f"/projects/{pid}/rounds/0").text  # each round has its own page
    round1 = client.get(f"/projects/{pid}/rounds/1").text
    assert round0.count("REJECTED") == 1 and "REJECTED" not in round1 and "FLAGGED" in round1


def test_the_open_round_shows_its_commit_reveal_phase_and_who_committed_and_revealed(
    client: TestClient, actors: Actors
) -> None:
    """A training project's page and API say which phase the open round is in (commit, reveal, aggregation),
    until when, and each trainer's commit (its arrival position: the round's order) and reveal; a trainer that
    committed and never revealed is shown as such, and once the round is finalized as a missed reveal: flagged,
    slashed, unpaid, in every round view."""
    pid = actors.training_project(3, rounds=2, stake=ETH // 10)
    a, b, c = (t for t in actors.trainers if t.address in actors.owner.trainers(pid))

    def open_round() -> dict[str, Any]:
        body = client.get(f"/api/projects/{pid}").json()
        assert body["pending_commits"] == body["open_round"]["commits"]
        return body["open_round"]

    def states(round_: dict[str, Any]) -> list[str]:
        return [t["state"] for t in round_["trainers"]]

    start = open_round()
    deadlines = actors.owner.round_deadlines(pid)
    assert (start["round"], start["phase"], start["commits"], start["reveals"]) == (0, "commit", 0, 0)
    assert (start["commit_deadline"], start["reveal_deadline"]) == (deadlines.commit, deadlines.reveal)
    assert start["aggregation_deadline"] == deadlines.aggregation
    assert states(start) == ["waiting to commit"] * 3
    assert "Commit phase" in start["summary"] and "0 of 3" in start["summary"]
    page = client.get(f"/projects/{pid}").text
    assert 'data-phase="commit"' in page and "Commit phase" in page and "commit 10 min, reveal 10 min" in page

    for trainer in (b, a):  # commit order b, a: b is #1 although a joined first
        commit(trainer, pid, 0, cid_for(pid, 0, trainer.address), commitment_for(pid, 0, trainer.address))
    two = open_round()
    assert two["phase"] == "commit" and two["commits"] == 2
    assert [t["arrival"] for t in two["trainers"]] == [2, 1, None]
    assert states(two) == ["committed #2, waiting to reveal", "committed #1, waiting to reveal", "waiting to commit"]

    commit(c, pid, 0, cid_for(pid, 0, c.address), commitment_for(pid, 0, c.address))
    revealing = open_round()  # everyone committed: the reveal phase opens at once
    assert revealing["phase"] == "reveal" and revealing["reveal_opens"] <= revealing["now"]
    for trainer in (a, b):  # c never reveals
        reveal_update(trainer, pid, 0, cid_for(pid, 0, trainer.address), commitment_for(pid, 0, trainer.address))
    waiting = open_round()
    assert waiting["phase"] == "reveal" and "2 of 3 revealed" in waiting["summary"]
    assert states(waiting) == ["revealed (commit #2)", "revealed (commit #1)", "committed #3, waiting to reveal"]

    actors.chain.increase_time(waiting["reveal_deadline"] - actors.chain.timestamp() + 1)
    late = open_round()
    assert late["phase"] == "aggregation" and "1 committed trainer(s) did not reveal" in late["summary"]
    assert states(late)[2] == "committed #3, did not reveal in time"
    page = client.get(f"/projects/{pid}").text
    assert 'data-phase="aggregation"' in page and "did not reveal in time" in page

    actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [500_000, 500_000, 0]))
    (round0,) = client.get(f"/api/projects/{pid}/rounds").json()["items"]
    by_trainer = {e["trainer"]: e for e in round0["trainers"]}
    assert [by_trainer[t.address]["arrival"] for t in (a, b, c)] == [2, 1, 3]
    assert [by_trainer[t.address]["submitted"] for t in (a, b, c)] == [True, True, False]
    missed = by_trainer[c.address]
    assert missed["committed"] and missed["reveal_missed"] and missed["flagged"] and missed["update_cid"] is None
    assert missed["reward"] == "0" and int(missed["slashed"]) == ETH // 10 // 2
    assert not any(by_trainer[t.address]["reveal_missed"] for t in (a, b))
    assert client.get(f"/api/projects/{pid}").json()["open_round"]["round"] == 1  # the next round is open
    round0_html = client.get(f"/projects/{pid}/rounds/0").text
    assert round0_html.count("MISSED REVEAL") == 1 and "REJECTED" not in round0_html
    assert client.post(f"/api/projects/{pid}/rounds/0/verify").json()["valid"] is True  # its slot is empty


def test_trainer_profile_history(client: TestClient, finished_project: FinishedProject) -> None:
    flagged = finished_project.trainers[2]
    profile = client.get(f"/api/trainers/{flagged}").json()
    assert [h["outcome"] for h in profile["history"]] == ["contributed", "flagged"]
    assert [h["reliability_bps"] for h in profile["history"]] == [6666, 5000]
    assert profile["reliability_bps"] == 5000 and (profile["contributed"], profile["flagged"]) == (1, 1)
    assert profile["projects"][0]["flagged_rounds"] == 1
    assert client.get(f"/api/trainers/{flagged.lower()}").json()["address"] == flagged
    bad = client.get("/api/trainers/0x1234")
    assert bad.status_code == 404 and "not an Ethereum address" in bad.json()["detail"]


def test_unknown_things_are_404_with_a_message(client: TestClient) -> None:
    for path in ["/api/projects/999", "/api/projects/999/rounds", "/api/tx/0x" + "ab" * 32, "/api/tx/nothex"]:
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["detail"], path
    page = client.get("/projects/999")
    assert page.status_code == 404 and "project 999 does not exist" in page.text
    assert "Traceback" not in page.text
    assert client.get("/no/such/page").status_code == 404


# ---------------------------------------------------------------------------- writing (wallet signs)


def test_create_project_transaction_is_signed_by_the_wallet(
    client: TestClient, actors: Actors, accounts: list[LocalAccount]
) -> None:
    owner = accounts[1]
    prepared = client.post("/api/tx/create-project", json={**job(actors), "sender": owner.address})
    assert prepared.status_code == 200, prepared.text
    tx = prepared.json()
    assert tx["to"] == actors.deployment.address("TrainingMarket")
    # The value is the escrow (1.5 ETH budget + 0.1 ETH aggregator fee) plus the 2 % protocol fee on the budget.
    paid = 16 * ETH // 10 + 3 * ETH // 100
    assert int(tx["value"]) == paid and tx["value_hex"] == hex(paid)
    assert (tx["costs"]["escrow_eth"], tx["costs"]["protocol_fee_eth"], tx["costs"]["payment_eth"]) == (
        "1.6", "0.03", "1.63"
    )  # fmt: skip
    market_before = actors.chain.balance(tx["to"])
    tx_hash = send_prepared(actors.chain, owner, tx)
    status = client.get(f"/api/tx/{tx_hash}").json()
    assert status["status"] == "confirmed" and "ProjectCreated" in status["events"]
    pid = status["project_id"]
    assert actors.chain.balance(tx["to"]) - market_before == 16 * ETH // 10  # the market holds the escrow only
    project = client.get(f"/api/projects/{pid}").json()["project"]
    assert project["owner"] == owner.address and project["status"] == "open"
    assert project["reward_budget"] == str(15 * ETH // 10)
    assert (project["rounds"], project["min_trainers"], project["max_trainers"]) == (2, 2, 3)
    assert project["stake"] == str(5 * ETH // 100) and project["aggregator_fee"] == str(ETH // 10)
    assert project["submission_period"] == 600 and project["join_deadline"] > 0
    assert project["reveal_period"] == 600 and project["aggregation_period"] == 600

    # Joining: prepared for the trainer, refused (decoded) for the owner.
    trainer = accounts[3]
    join = client.post("/api/tx/join", json={"project_id": pid, "sender": trainer.address}).json()
    assert int(join["value"]) == 5 * ETH // 100
    joined = client.get(f"/api/tx/{send_prepared(actors.chain, trainer, join)}").json()
    assert joined["status"] == "confirmed" and "TrainerJoined" in joined["events"]
    assert client.get(f"/api/projects/{pid}").json()["trainers"][0]["trainer"] == trainer.address
    refused = client.post("/api/tx/join", json={"project_id": pid, "sender": owner.address})
    assert refused.status_code == 422 and refused.json()["code"] == "RoleConflict"
    assert refused.json()["detail"] == (
        f"The chain would refuse to join project {pid}: {owner.address} is the project's owner or aggregator, and "
        "may not also train in it."
    )
    again = client.post("/api/tx/join", json={"project_id": pid, "sender": trainer.address})
    assert again.status_code == 422 and again.json()["code"] == "AlreadyJoined"
    assert f"{trainer.address} already joined project {pid}" in again.json()["detail"]


def test_the_job_form_refuses_a_model_name_longer_than_the_contract_takes(client: TestClient, actors: Actors) -> None:
    """``createProject`` refuses model names over 64 bytes (``ModelNameTooLong``); the form says so
    first, counting bytes as the contract does (22 characters, 66 bytes of UTF-8)."""
    response = client.post("/api/tx/create-project", json=job(actors, model_name="\u20ac" * 22))
    assert response.status_code == 422
    assert response.json()["errors"]["model_name"] == "is 66 bytes long; a model name has 1 to 64 bytes"


def test_the_job_takes_a_reveal_period(client: TestClient, actors: Actors, accounts: list[LocalAccount]) -> None:
    """Each round's reveal period is part of the job: the form shows it with its default (minutes), the API takes
    it in seconds (as it answers periods) and it reaches the contract; a period that is not a whole number of
    minutes from 5 (the market's shortest phase) to a year is refused with a sentence on the form, and one out of
    300 s to a year by the API."""
    page = client.get("/projects/new").text
    assert 'name="reveal_period_minutes"' in page and "Reveal period" in page and "Commit period" in page
    assert 'id="f-reveal_period_minutes" type="number" value="10"' in page

    owner = accounts[1]
    prepared = client.post(
        "/api/tx/create-project", json={**job(actors, reveal_period=25 * 60), "sender": owner.address}
    )
    assert prepared.status_code == 200, prepared.text
    pid = client.get(f"/api/tx/{send_prepared(actors.chain, owner, prepared.json())}").json()["project_id"]
    assert actors.owner.get_project(pid).reveal_period == 25 * 60
    assert client.get(f"/api/projects/{pid}").json()["project"]["reveal_period"] == 25 * 60

    bounds = {0: "must be at least 300", 299: "must be at least 300", 31_536_001: "must be at most 31,536,000"}
    for bad, words in bounds.items():
        refused = client.post("/api/tx/create-project", json=job(actors, reveal_period=bad))
        assert refused.status_code == 422, bad
        assert refused.json()["errors"] == {"reveal_period": words} and refused.json()["field"] == "reveal_period"
    words = "must be a whole number of minutes from 5 to 525,600 (a year)"
    for typed in ("0", "4", "-5", "1.5", "soon", "525601"):
        page = client.post(
            "/projects/new", data=form(actors, reveal_period_minutes=typed), headers={"HX-Request": "true"}
        )
        assert page.status_code == 422 and f"Reveal period {words}" in page.text, typed


def test_join_refused_below_min_reliability(client: TestClient, actors: Actors) -> None:
    pid = actors.create(min_reliability_bps=6_000)
    refused = client.post("/api/tx/join", json={"project_id": pid, "sender": actors.trainers[0].address})
    assert refused.status_code == 422 and refused.json()["code"] == "ReliabilityTooLow"
    assert f"has a reliability of 50%, and project {pid} requires at least 60%" in refused.json()["detail"]


def test_bad_job_input_gets_field_messages(client: TestClient, actors: Actors) -> None:
    cases: dict[str, dict[str, Any]] = {
        "min_trainers": {"min_trainers": 5, "max_trainers": 3},
        "aggregator": {"aggregator": "0x1234"},
        "reward_budget_eth": {"reward_budget_eth": "lots"},
        "initial_model_cid": {"initial_model_cid": "not-a-cid"},
        "model_name": {"model_name": "gpt"},
        "rounds": {"rounds": 0},
        "min_reliability_bps": {"min_reliability_bps": 15_000},
        "verifier": {"verifier": actors.stranger.address},
        "reward_budget": {"reward_budget": "1.5"},
    }
    for field, override in cases.items():
        body = job(actors, **override)
        if field == "reward_budget":
            del body["reward_budget_eth"]
        response = client.post("/api/tx/create-project", json=body)
        assert response.status_code == 422, field
        problem = response.json()
        assert field in problem["errors"] and problem["field"] == field, (field, problem)
        assert "Traceback" not in response.text and "nput should" not in response.text
    assert client.post("/api/tx/create-project", json=job(actors, reward_budget_eth="lots")).json()["errors"] == {
        "reward_budget_eth": "must be a number"
    }
    both = client.post("/api/tx/create-project", json=job(actors, reward_budget=str(ETH)))
    assert both.json()["errors"] == {
        "reward_budget": "is given twice: give reward_budget (wei) or reward_budget_eth (ETH), not both"
    }
    # Valid input, but the sender cannot pay the escrow: the simulation explains it, in words.
    poor = client.post("/api/tx/create-project", json={**job(actors), "sender": "0x" + "42" * 20})
    assert poor.status_code == 422 and poor.json()["code"] == "InsufficientFunds"
    assert poor.json()["detail"] == (
        "The chain would refuse to create this project: the sending wallet cannot pay the 1.63 ETH it sends plus gas."
    )


# ---------------------------------------------------------------------------- pages and schema


def test_html_pages_render(client: TestClient, finished_project: FinishedProject) -> None:
    pid = finished_project.project_id
    listing = client.get("/projects")
    assert listing.status_code == 200 and f'data-project-id="{pid}"' in listing.text
    detail = client.get(f"/projects/{pid}")
    assert detail.status_code == 200
    assert 'id="chart-data"' in detail.text and f'href="/projects/{pid}/rounds/1"' in detail.text
    round1 = client.get(f"/projects/{pid}/rounds/1").text
    assert "Verify on chain" in round1 and "FLAGGED" in round1
    verified = client.post(f"/projects/{pid}/rounds/0/verify")
    assert 'data-valid="true"' in verified.text
    assert client.get(f"/projects/{pid}/join").status_code == 200
    assert f"marketplace trainer run {pid} --data" in client.get(f"/projects/{pid}/join").text
    assert client.get(f"/trainers/{finished_project.trainers[0]}").status_code == 200
    assert client.get("/projects/new").status_code == 200
    partial = client.get("/projects?status=finished", headers={"HX-Request": "true", "HX-Target": "project-table"})
    assert partial.text.lstrip().startswith('<div id="project-table">')
    lenient = client.get("/projects?min_budget_eth=abc")
    assert lenient.status_code == 200 and "not a number" in lenient.text
    for page in (listing.text, detail.text):
        page = re.sub(r' data-rpc-url="[^"]*"', "", page)  # what a wallet adding the network is offered, not a load
        assert "http://" not in page.replace("http://testserver", "") and "https://" not in page  # no CDN


def test_job_form_shows_messages_not_traces(client: TestClient, actors: Actors) -> None:
    bad = form(actors, min_trainers="4", max_trainers="2", stake_eth="-1")
    response = client.post("/projects/new", data=bad, headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert 'data-field="stake_eth"' in response.text and "Trainer stake must not be negative" in response.text
    assert "Traceback" not in response.text and "<form" in response.text
    ok = client.post("/projects/new", data=form(actors), headers={"HX-Request": "true"})
    assert ok.status_code == 200 and 'id="job-tx"' in ok.text and "Sign and send with wallet" in ok.text


def test_openapi_schema_lists_the_api(client: TestClient) -> None:
    schema = client.get("/api/openapi.json").json()
    paths = schema["paths"]
    for path in [
        "/api/projects", "/api/projects/{project_id}", "/api/projects/{project_id}/rounds/{round_}/verify",
        "/api/trainers/{address}", "/api/tx/create-project", "/api/tx/join", "/api/tx/{tx_hash}", "/api/status",
        "/api/tx/{action}", "/api/projects/{project_id}/actions", "/api/models/{name}/init",
        "/api/aggregators/{address}", "/api/models",
    ]:  # fmt: skip
        assert path in paths, path
    assert not any(p.startswith("/projects") for p in paths)  # pages are not part of the API
    status = client.get("/api/status").json()
    assert status["chain_id"] == 31337 and status["indexed_block"] == status["head_block"]
    assert status["skipped_events"] == 0
    assert {m["name"] for m in client.get("/api/models").json()["items"]} >= {"mlp", "cnn"}


# ---------------------------------------------------------------------------- project actions (wallet signs)


def actions_of(client: TestClient, pid: int, account: str) -> dict[str, dict[str, Any]]:
    body = client.get(f"/api/projects/{pid}/actions", params={"account": account}).json()
    return {a["action"]: a for a in body["actions"]}


def test_withdraw_transaction_for_the_connected_account(
    client: TestClient, actors: Actors, accounts: list[LocalAccount], finished_project: FinishedProject
) -> None:
    pid = finished_project.project_id
    trainer = next(a for a in accounts if a.address == finished_project.trainers[0])
    owed = actors.owner.withdrawable(pid, trainer.address)
    state = client.get(f"/api/projects/{pid}/actions", params={"account": trainer.address.lower()}).json()
    assert state["account"] == trainer.address and state["withdrawable"] == str(owed) and owed > 0
    assert [(a["action"], a["allowed"]) for a in state["actions"]] == [("withdraw", True)]

    prepared = client.post("/api/tx/withdraw", json={"project_id": pid, "sender": trainer.address})
    assert prepared.status_code == 200, prepared.text
    tx = prepared.json()
    assert tx["to"] == actors.deployment.address("TrainingMarket") and tx["value"] == "0"
    assert tx["data"] == ChainClient.calldata(actors.owner.market.functions.withdraw(pid))
    assert tx["summary"] == f"Withdraw {eth(owed)} ETH from project {pid}"
    status = client.get(f"/api/tx/{send_prepared(actors.chain, trainer, tx)}").json()
    assert status["status"] == "confirmed" and status["events"] == ["Withdrawn"]
    payouts = client.get(f"/api/projects/{pid}").json()["payouts"]
    assert next(p for p in payouts if p["account"] == trainer.address)["withdrawn"] == str(owed)

    # Nothing left: 409 with the contract's decoded custom error, and the button's reason says so.
    again = client.post("/api/tx/withdraw", json={"project_id": pid, "sender": trainer.address})
    assert again.status_code == 409 and again.json()["code"] == "NothingToWithdraw"
    assert again.json()["detail"] == (
        f"The chain would refuse to withdraw from project {pid}: nothing to withdraw: project {pid} owes "
        f"{trainer.address} nothing (not a participant, or already withdrawn)."
    )
    withdraw = actions_of(client, pid, trainer.address)["withdraw"]
    assert withdraw["allowed"] is False and "already withdrawn" in withdraw["reason"]
    stranger = client.post("/api/tx/withdraw", json={"project_id": pid, "sender": actors.stranger.address})
    assert stranger.status_code == 409 and stranger.json()["code"] == "NothingToWithdraw"

    missing = client.post("/api/tx/withdraw", json={"project_id": pid})
    assert missing.status_code == 422 and missing.json()["field"] == "sender"
    assert client.post("/api/tx/withdraw", json={"project_id": 999, "sender": trainer.address}).status_code == 404
    bogus = client.post("/api/tx/explode", json={"project_id": pid})
    assert bogus.status_code == 422 and bogus.json()["errors"] == {
        "action": "must be one of: withdraw, abandon, start or cancel"
    }


def test_withdraw_refused_while_the_project_runs(client: TestClient, actors: Actors) -> None:
    pid = actors.training_project(2)
    trainer = actors.trainers[0].address
    running = client.post("/api/tx/withdraw", json={"project_id": pid, "sender": trainer})
    assert running.status_code == 409 and running.json()["code"] == "WrongStatus"
    assert running.json()["detail"] == (
        f"The chain would refuse to withdraw from project {pid}: project {pid} is training, and that is possible "
        "only while it is finished."
    )
    assert actions_of(client, pid, trainer).keys() == {"abandon"}  # no withdraw button while training


def test_abandon_after_the_aggregation_deadline(
    client: TestClient, actors: Actors, accounts: list[LocalAccount]
) -> None:
    pid = actors.training_project(2)
    actors.submit_all(pid, 0)
    anyone = accounts[11]  # the stranger: anyone may abandon
    early = client.post("/api/tx/abandon", json={"project_id": pid, "sender": anyone.address})
    assert early.status_code == 409 and early.json()["code"] == "NotAllowedYet"
    assert "not allowed yet: possible from" in early.json()["detail"]
    state = client.get(f"/api/projects/{pid}/actions", params={"account": anyone.address}).json()
    assert state["actions"] == [
        {"action": "abandon", "label": "Abandon", "allowed": False, "reason": state["actions"][0]["reason"]}
    ]
    assert state["actions"][0]["reason"].startswith("not allowed yet: possible from")
    deadline = actors.owner.round_deadlines(pid).aggregation
    assert state["aggregation_deadline"] == deadline
    assert client.get(f"/api/projects/{pid}").json()["open_round"]["phase"] == "aggregation"

    actors.chain.increase_time(deadline - actors.chain.timestamp() + 1)
    assert actions_of(client, pid, anyone.address)["abandon"]["allowed"] is True
    overdue = client.get(f"/api/projects/{pid}").json()["open_round"]
    assert overdue["phase"] == "overdue" and "anyone may abandon" in overdue["summary"]
    tx = client.post("/api/tx/abandon", json={"project_id": pid, "sender": anyone.address}).json()
    assert tx["value"] == "0" and tx["summary"] == f"Abandon project {pid}"
    status = client.get(f"/api/tx/{send_prepared(actors.chain, anyone, tx)}").json()
    assert status["status"] == "confirmed" and status["events"] == ["ProjectAbandoned"]
    assert client.get(f"/api/projects/{pid}").json()["project"]["status"] == "cancelled"
    # Both submitters now have their stake and the stalled round's share to withdraw.
    assert actions_of(client, pid, actors.trainers[0].address)["withdraw"]["allowed"] is True


def test_owner_starts_or_cancels_an_open_project(
    client: TestClient, actors: Actors, accounts: list[LocalAccount]
) -> None:
    owner, trainer = accounts[1], actors.trainers[0]
    pid = actors.create(min_trainers=2, max_trainers=4)
    trainer.join(pid)
    too_few = client.post("/api/tx/start", json={"project_id": pid, "sender": owner.address})
    assert too_few.status_code == 409 and too_few.json()["code"] == "NotEnoughTrainers"
    assert "only 1 of the 2 required trainers joined" in too_few.json()["detail"]
    not_owner = client.post("/api/tx/cancel", json={"project_id": pid, "sender": trainer.address})
    assert not_owner.status_code == 409 and not_owner.json()["code"] == "NotAllowedYet"  # before the deadline
    theirs = actions_of(client, pid, trainer.address)
    assert theirs.keys() == {"start", "cancel"} and not any(a["allowed"] for a in theirs.values())
    mine = actions_of(client, pid, owner.address)
    assert (mine["start"]["allowed"], mine["cancel"]["allowed"]) == (False, True)
    assert "only 1 of the 2 required trainers joined" in mine["start"]["reason"]

    actors.trainers[1].join(pid)
    assert actions_of(client, pid, owner.address)["start"]["allowed"] is True
    start = client.post("/api/tx/start", json={"project_id": pid, "sender": owner.address}).json()
    assert start["data"] == ChainClient.calldata(actors.owner.market.functions.startTraining(pid))
    assert "TrainingStarted" in client.get(f"/api/tx/{send_prepared(actors.chain, owner, start)}").json()["events"]
    late = client.post("/api/tx/cancel", json={"project_id": pid, "sender": owner.address})
    assert late.status_code == 409 and f"project {pid} is training" in late.json()["detail"]
    assert client.post("/api/tx/cancel", json={"project_id": pid}).status_code == 409  # no sender: status check

    other = actors.create()
    cancel = client.post("/api/tx/cancel", json={"project_id": other, "sender": owner.address}).json()
    assert client.get(f"/api/tx/{send_prepared(actors.chain, owner, cancel)}").json()["events"] == ["ProjectCancelled"]
    refund = actions_of(client, other, owner.address)["withdraw"]
    assert refund["allowed"] is True


# ---------------------------------------------------------------------------- initial weights


def test_generate_initial_weights_pins_the_model(client: TestClient, ipfs: IpfsClient) -> None:
    made = client.post("/api/models/mlp/init", json={"seed": 7})
    assert made.status_code == 200, made.text
    body = made.json()
    assert body["model"] == "mlp" and body["seed"] == 7 and body["params"] == num_params("mlp")
    bundle = ModelStore(ipfs, framework="torch").get_tensors(body["cid"])
    expected = build_model("mlp", seed=7).state_dict()
    assert sorted(bundle.tensors) == sorted(expected)
    assert all(torch.equal(bundle.tensors[k], v) for k, v in expected.items())
    assert bundle.metadata["model"] == "mlp"
    assert client.post("/api/models/mlp/init", json={"seed": 7}).json()["cid"] == body["cid"]  # deterministic
    assert client.post("/api/models/cnn/init").json()["params"] == num_params("cnn")  # seed is optional

    unknown = client.post("/api/models/gpt/init")
    assert unknown.status_code == 404 and "There is no model 'gpt'" in unknown.json()["detail"]
    assert client.post("/api/models/mlp/init", json={"seed": -1}).status_code == 422
    form = client.get("/projects/new").text
    assert 'id="generate-weights"' in form and 'id="generate-weights" disabled' not in form


def test_generate_initial_weights_without_ipfs_is_503(web_settings: WebSettings) -> None:
    app = create_app(web_settings.model_copy(update={"ipfs_api": None}))
    with TestClient(app, raise_server_exceptions=False) as no_ipfs:
        response = no_ipfs.post("/api/models/mlp/init")
        assert response.status_code == 503 and "no IPFS API configured" in response.json()["detail"]
        form = no_ipfs.get("/projects/new").text
        assert 'id="generate-weights" disabled' in form and "no IPFS API configured" in form


def test_a_job_without_a_verifier_gets_the_smallest_approved_one_that_proves_and_fits(
    client: TestClient, actors: Actors
) -> None:
    """Issue 13: the API picked the first approved verifier (the local test verifier, which proves nothing). Now
    a job naming none gets the smallest approved verifier that proves something and fits its size, and the
    test verifier only when nothing else fits."""
    chain = actors.admin.chain
    mock = chain.deploy(actors.artifacts["MockHalo2Verifier"])
    words = [keccak(text=f"vka word {i}") for i in range(8)]
    row_words = [keccak(text=f"row vka word {i}") for i in range(8)]
    version = encode_rule_version(RULE_VERSION)
    label = ("zk 4x32", "a 4x32 circuit")
    zk4 = chain.deploy(
        actors.artifacts["EzklRoundVerifier"],
        mock.address,
        words,
        row_words,
        4,
        32,
        12345,
        version,
        *label,
        NO_ROUND_VERIFIER,
    )
    chain.transact(actors.admin.market.functions.setVerifierApproval(zk4.address, True))

    def chosen(max_trainers: int) -> str:
        prepared = client.post("/api/tx/create-project", json=job(actors, max_trainers=max_trainers))
        assert prepared.status_code == 200, prepared.text
        _, args = actors.admin.market.decode_function_input(prepared.json()["data"])
        return str(args["cfg"]["verifier"])  # ProjectConfig.verifier

    assert chosen(3) == zk4.address  # proves something, and 3 trainers fit its 4 slots
    assert chosen(5) == actors.deployment.address("TestRoundVerifier")  # nothing else fits 5
    page = client.get("/projects/new").text
    assert f'<option value="{zk4.address}" selected>' in page  # the job form preselects it too


# ---------------------------------------------------------------------------- the API's conventions and docs


def schema_properties(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(component, property, its schema, the component's properties) of every component of the OpenAPI schema."""
    out = []
    for name, component in schema["components"]["schemas"].items():
        props = component.get("properties", {})
        out += [(name, prop, spec, props) for prop, spec in props.items()]
    return out


def kinds(spec: dict[str, Any]) -> set[str]:
    """The JSON types a property takes (through ``anyOf``)."""
    return {s.get("type", "") for s in spec.get("anyOf", [spec])}


def test_the_api_has_one_unit_per_kind_of_value_and_pages_its_lists(client: TestClient) -> None:
    """Every amount has its wei and ETH forms, percentages are basis points and periods seconds, in and out (the
    schema says so), and every list is a page with its total."""
    schema = client.get("/api/openapi.json").json()
    for component, prop, spec, props in schema_properties(schema):
        where = f"{component}.{prop}"
        description = spec.get("description", "")
        assert not prop.endswith(("_pct", "_minutes", "_share", "_percent")), where
        if prop.endswith("_eth"):  # an amount in ETH: beside it, the same in wei
            wei = props.get(prop.removesuffix("_eth"))
            assert wei is not None and "wei" in wei.get("description", ""), where
        if spec.get("pattern") == "^[0-9]+$":  # an amount in wei: beside it, the same in ETH
            assert f"{prop}_eth" in props and "wei" in description, where
        if prop.endswith("_bps"):
            assert kinds(spec) <= {"integer", "null"} and "basis points" in description, where
        if prop.endswith("_period"):
            assert kinds(spec) == {"integer"} and "seconds" in description, where
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                assert not parameter["name"].endswith(("_pct", "_minutes")), (path, parameter["name"])
            answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
            assert answer.get("type") != "array", f"{method} {path} answers a list without paging it"
            if answer.get("$ref", "").startswith("#/components/schemas/Paged_"):
                names = {p["name"] for p in operation.get("parameters", [])}
                assert {"limit", "offset"} <= names, path
    description = schema["info"]["description"]
    assert "basis points" in description and "seconds" in description and "wei" in description


def test_api_docs_are_served_from_vendored_assets(client: TestClient) -> None:
    """``/api/docs`` was a 404: now Swagger UI over the app's schema, every asset from this server."""
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    assert "SwaggerUIBundle" in docs.text and "'/api/openapi.json'" in docs.text
    assert "http://" not in docs.text and "https://" not in docs.text and "//cdn" not in docs.text  # no CDN
    assets = re.findall(r'(?:src|href)="(/[^"]+)"', docs.text)
    assert set(assets) == {
        "/static/vendor/swagger-ui.css", "/static/vendor/swagger-ui-bundle.js",
        "/static/vendor/swagger-ui-favicon-32x32.png",
    }  # fmt: skip
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    assert "SwaggerUIBundle" in client.get("/static/vendor/swagger-ui-bundle.js").text
    assert '"validatorUrl": null' in docs.text  # no badge fetched from the validator's site
    versions = client.get("/static/vendor/versions.json").json()
    assert (
        versions["swagger-ui-dist"] == json.loads(Path("package.json").read_text())["dependencies"]["swagger-ui-dist"]
    )


# ---------------------------------------------------------------------------- pinning without a wallet


def test_pinning_initial_weights_is_limited_per_client_and_in_size(web_settings: WebSettings) -> None:
    """Anyone may have the server pin a model's initial weights, without a wallet: at most ``pins_per_client``
    per client and window (429 with Retry-After, in words), and none larger than ``max_pin_bytes`` (422)."""
    app = create_app(web_settings.model_copy(update={"pins_per_client": 2, "pins_total": 3}))
    first = TestClient(app, raise_server_exceptions=False, client=("10.0.0.1", 40000))
    assert [first.post("/api/models/mlp/init", json={"seed": s}).status_code for s in (1, 2)] == [200, 200]
    refused = first.post("/api/models/mlp/init", json={"seed": 3})
    assert refused.status_code == 429 and refused.json()["code"] == "TooManyRequests"
    assert 3500 < int(refused.headers["Retry-After"]) <= 3601
    assert refused.json()["detail"].startswith(
        "This server pins at most 2 sets of initial weights per client every 60 minutes"
    )
    second = TestClient(app, raise_server_exceptions=False, client=("10.0.0.2", 40000))  # the same app, still up
    assert second.post("/api/models/mlp/init", json={"seed": 4}).status_code == 200  # another client
    everyone = second.post("/api/models/mlp/init", json={"seed": 5})
    assert everyone.status_code == 429 and "for everyone" in everyone.json()["detail"]
    small = create_app(web_settings.model_copy(update={"max_pin_bytes": 1_000}))
    with TestClient(small, raise_server_exceptions=False) as client:
        large = client.post("/api/models/mlp/init")
        assert large.status_code == 422 and large.json()["field"] == "name"
        assert (
            f"The mlp weights are {4 * num_params('mlp'):,} bytes, more than this server pins" in large.json()["detail"]
        )


def test_the_pin_limiter_forgets_pins_older_than_its_window() -> None:
    now = [0.0]
    limiter = PinLimiter(per_client=1, total=10, window=60, clock=lambda: now[0])
    limiter.take("a")
    with pytest.raises(TooManyRequests) as refused:
        limiter.take("a")
    assert refused.value.retry_after == 61
    now[0] = 59.5
    with pytest.raises(TooManyRequests):
        limiter.take("a")
    now[0] = 60.0
    limiter.take("a")  # the first pin is out of the window
    limiter.take("b")


def test_the_pin_limiter_checks_without_counting() -> None:
    """``check`` refuses what ``take`` would, before costly work (the model card's fetch and load), and counts
    nothing: checking many times leaves the one pin allowed."""
    limiter = PinLimiter(per_client=1, total=10, window=60, clock=lambda: 0.0)
    for _ in range(5):
        limiter.check("a")
    limiter.take("a")
    with pytest.raises(TooManyRequests):
        limiter.check("a")
    limiter.check("b")


def test_pinning_the_same_weights_again_answers_their_cid_without_counting_again(
    web_settings: WebSettings, ipfs: IpfsClient
) -> None:
    """The same model and seed are the same bytes, so the same CID: asking again for weights the server pinned is
    answered with their CID and does not count against the client's pins (attack review of issue 14, finding 7).
    Once the node no longer holds them pinned, they are built and pinned again, and that counts."""
    app = create_app(web_settings.model_copy(update={"pins_per_client": 2, "pins_total": 10}))
    one = TestClient(app, raise_server_exceptions=False, client=("10.0.0.1", 40000))
    first = one.post("/api/models/mlp/init", json={"seed": 7771})
    assert first.status_code == 200
    cid = first.json()["cid"]
    for _ in range(3):
        again = one.post("/api/models/mlp/init", json={"seed": 7771})
        assert again.status_code == 200 and again.json()["cid"] == cid  # not counted
    assert one.post("/api/models/mlp/init", json={"seed": 7772}).status_code == 200  # the second pin counted
    assert one.post("/api/models/mlp/init", json={"seed": 7773}).status_code == 429
    ipfs.pin_rm(cid)
    assert not ipfs.is_pinned(cid)
    assert one.post("/api/models/mlp/init", json={"seed": 7771}).status_code == 429  # to pin again: a new pin
    other = TestClient(app, raise_server_exceptions=False, client=("10.0.0.2", 40000))
    assert other.post("/api/models/mlp/init", json={"seed": 7771}).json()["cid"] == cid
    assert ipfs.is_pinned(cid)


def test_clients_of_one_ipv6_64_share_their_pin_limit(web_settings: WebSettings) -> None:
    """An IPv6 host picks its addresses in its /64 at will: the /64 is the client the limit counts."""
    app = create_app(web_settings.model_copy(update={"pins_per_client": 1, "pins_total": 10}))

    def pin(host: str, seed: int) -> int:
        client = TestClient(app, raise_server_exceptions=False, client=(host, 40000))
        return client.post("/api/models/mlp/init", json={"seed": seed}).status_code

    assert pin("2001:db8:5:6::1", 7781) == 200
    assert pin("2001:db8:5:6:ffff:ffff:ffff:fffe", 7782) == 429  # the same /64
    assert pin("2001:db8:5:7::1", 7783) == 200  # the next /64
    assert pin("192.0.2.1", 7784) == 200 and pin("192.0.2.2", 7785) == 200  # IPv4: each address


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),  # IPv4-mapped (a dual-stack socket): the IPv4 client
        ("fe80::1%eth0", "fe80::/64"),
        ("::1", "::/64"),
        ("testclient", "testclient"),  # not an address: as it is
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_a_client_is_its_ipv4_address_or_its_ipv6_64(host: str | None, key: str) -> None:
    assert client_key(host) == key


# ---------------------------------------------------------------------------- pages that read the index


class StallingRpc:
    """An RPC endpoint forwarding to ``upstream`` that, once :meth:`stall` is called, holds every request until
    :meth:`release` (a chain node that stopped answering)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.running = threading.Event()
        self.running.set()
        self.held = 0
        proxy = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not proxy.running.is_set():
                    proxy.held += 1
                    proxy.running.wait(60)
                request = urllib.request.Request(
                    proxy.upstream, data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=30) as response:
                    self.answer(response.status, response.read())

        self._server = LoopbackServer(Handler)
        self.url = f"http://127.0.0.1:{self._server.port}"

    def stall(self) -> None:
        self.running.clear()

    def release(self) -> None:
        self.running.set()

    def close(self) -> None:
        self.release()
        self._server.close()


def test_pages_that_read_the_index_do_not_wait_on_the_chain(
    web_settings: WebSettings, anvil: AnvilNode, actors: Actors, finished_project: FinishedProject
) -> None:
    """With the index synced in the background (``sync_interval`` > 0), the project list, a project, their JSON
    twins and a trainer page answer from the index and the cached chain reads: while the chain node does not
    answer at all, they still answer at once. What happens on chain shows within the sync interval."""
    rpc = StallingRpc(anvil.url)
    settings = web_settings.model_copy(update={"rpc_url": rpc.url, "sync_interval": 0.05})
    pid, trainer = finished_project.project_id, finished_project.trainers[0]
    training = actors.training_project(2)
    paths = [
        "/projects", f"/projects/{pid}", f"/projects/{training}", "/api/projects", f"/api/projects/{pid}",
        f"/api/projects/{training}", f"/trainers/{trainer}", f"/api/trainers/{trainer}",
    ]  # fmt: skip
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            context = client.app.state.services.context  # type: ignore[attr-defined]
            assert context.background
            first = {path: client.get(path) for path in paths}  # the first reads go to the chain once
            assert all(r.status_code == 200 for r in first.values()), {p: r.status_code for p, r in first.items()}
            calls = context.reads.chain_calls
            again = {path: client.get(path) for path in paths}
            assert context.reads.chain_calls == calls  # answered from the index and the cache
            assert all(again[p].headers["x-index-version"] == first[p].headers["x-index-version"] for p in paths)

            rpc.stall()
            for path in paths:
                started = time.monotonic()
                answer = client.get(path)
                assert answer.status_code == 200 and time.monotonic() - started < 1.0, path
                assert answer.text == again[path].text, path
            deadline = time.monotonic() + 5
            while rpc.held == 0 and time.monotonic() < deadline:  # the background sync is the one waiting
                time.sleep(0.02)
            assert rpc.held > 0
            rpc.release()

            created = actors.create()
            deadline = time.monotonic() + 10
            while created not in [p["project_id"] for p in client.get("/api/projects").json()["items"]]:
                assert time.monotonic() < deadline, "a new project did not show within 10 s"
                time.sleep(0.05)
            assert client.get(f"/api/projects/{created}").json()["project"]["status"] == "open"
    finally:
        rpc.close()


def test_an_app_that_syncs_in_requests_reads_the_chain_live(web_settings: WebSettings, actors: Actors) -> None:
    """``serve_from_index=False`` (the benchmark's "before"): every request syncs and reads the chain live."""
    app = create_app(web_settings.model_copy(update={"serve_from_index": False, "sync_interval": 1.0}))
    pid = actors.training_project(2)
    with TestClient(app, raise_server_exceptions=False) as client:
        context = client.app.state.services.context  # type: ignore[attr-defined]
        assert not context.background and not context.reads.cached
        before = context.reads.chain_calls
        for _ in range(3):
            assert client.get(f"/api/projects/{pid}").status_code == 200
        assert context.reads.chain_calls >= before + 6  # aggregator record and round deadlines, every time
        assert "x-index-version" not in client.get("/api/projects").headers


@dataclass
class Versioned:
    """What the page cache reads of the deployment's context: its version, and whether it syncs in the
    background."""

    version: tuple[int, int] = (1, 0)
    head: int | None = 100
    background: bool = True


def test_the_page_cache_shares_answers_per_version_and_serves_the_last_one_while_the_next_is_made() -> None:
    """Identical GETs at one version are answered once; after a change the first request gets the new answer,
    and identical ones arriving while it is made get the previous one instead of waiting; other answers (not
    200, other paths, htmx partials) are kept apart or not at all."""
    context = Versioned()
    made: list[str] = []
    release = asyncio.Event()

    async def project(request: Request) -> PlainTextResponse:
        made.append(request.url.path)
        if request.query_params.get("slow"):
            await release.wait()
        partial = request.headers.get("hx-request", "")
        answer = PlainTextResponse(
            f"v{context.version[0]}{partial}", status_code=int(request.query_params.get("s", 200))
        )
        return mark_chain_time(answer, bool(request.query_params.get("phase")))

    app = PageCache(Starlette(routes=[Route("/projects/{pid}", project)]), context)  # type: ignore[arg-type]

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            first, second = await client.get("/projects/1"), await client.get("/projects/1")
            assert (first.text, second.text, len(made)) == ("v1", "v1", 1)
            assert first.headers["x-index-version"] == "1.0"
            assert (await client.get("/projects/1", headers={"HX-Request": "true"})).text == "v1true"
            assert [(await client.get("/projects/2?s=404")).status_code for _ in range(2)] == [404, 404]
            assert len(made) == 4  # the partial apart, the 404s not kept

            release.set()
            assert (await client.get("/projects/3?slow=1")).text == "v1"  # made once, at version 1
            release.clear()
            context.version = (2, 0)
            slow = asyncio.create_task(client.get("/projects/3?slow=1"))  # the first after the change: makes v2
            await asyncio.sleep(0.05)
            meanwhile = await client.get("/projects/3?slow=1")
            assert meanwhile.text == "v1" and meanwhile.headers["x-index-version"] == "1.0"  # the one before
            release.set()
            assert (await slow).text == "v2"
            assert (await client.get("/projects/3?slow=1")).text == "v2"
            assert made.count("/projects/3") == 2

            # a new block without events: only the answers that show the chain's time are made again
            assert (await client.get("/projects/4?phase=1")).headers.get("x-shows-chain-time") is None
            context.head = 101
            assert (await client.get("/projects/4?phase=1")).text == "v2" and made.count("/projects/4") == 2
            assert (await client.get("/projects/3?slow=1")).text == "v2" and made.count("/projects/3") == 2

            context.background = False  # requests sync the index themselves: nothing is kept
            before = len(made)
            await client.get("/projects/1")
            await client.get("/projects/1")
            assert len(made) == before + 2

    asyncio.run(scenario())
