"""Rejections, their disputes and the aggregator's track record in the web app, against a real chain (session
anvil) and IPFS node: a round of real committed rows in which the aggregator announces two rejections, one
trainer disputes (publishes its row) and the other lets its rejection stand; and an index fed malformed
dispute events, which it skips and reports without stopping."""

# ruff: noqa: F811  (fixtures imported from tests.web_fixtures are used as test arguments)
from __future__ import annotations

from dataclasses import replace
from typing import Any

from eth_abi import encode
from eth_utils import event_abi_to_log_topic
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hexbytes import HexBytes

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.protocol.commitment import MAX_UNIT_INT
from marketplace.web.filters import when
from marketplace.web.indexer import MAX_ROW_LENGTH, Indexer
from tests.disputes import close_disputes
from tests.market_fixtures import Actors
from tests.test_disputes import _dispute, _finalization, _training_round
from tests.web_fixtures import client, ipfs, ipfs_node, proof_document, web_app, web_settings  # noqa: F401

#: What the aggregator's proof document says about the two rejected trainers (its word, shown as the cause).
WHY_DISPUTED = "IpfsTimeout: the update did not come in time"
WHY_UPHELD = "CommitmentMismatch: the committed row of the update does not hash to its commitment"


def by_trainer(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["trainer"]: e for e in entries}


def test_rejections_disputes_and_the_aggregators_record_are_shown(
    client: TestClient, actors: Actors, ipfs: IpfsClient
) -> None:
    """Announced: the open round says until when each rejected trainer may dispute. Disputed: the trainer is
    scored on its published row. Not disputed: once finalized, the rejection stands (flagged, unpaid). The
    aggregator's record (rounds finalized, rejections, disputes lost, share overturned) is on the project page
    next to its address, in the project resource and at ``/api/aggregators/{address}``."""
    rnd = _training_round(actors)
    pid, aggregator = rnd.pid, actors.aggregator.address
    honest, disputer, stands = rnd.trainers[0].address, rnd.trainers[1], rnd.trainers[2].address
    actors.aggregator.reject_submissions(pid, 0, [disputer.address, stands])
    deadline = actors.owner.rejections(pid).dispute_deadline

    def open_round() -> dict[str, Any]:
        return client.get(f"/api/projects/{pid}").json()["open_round"]

    announced = open_round()
    assert announced["dispute_deadline"] == deadline
    states = by_trainer(announced["trainers"])
    assert states[disputer.address]["dispute"] == states[stands]["dispute"] == "announced"
    assert states[disputer.address]["state"].endswith(
        f"rejected by the aggregator — dispute window open until {when(deadline)}"
    )
    assert states[honest]["dispute"] is None and "rejected" not in states[honest]["state"]
    page = client.get(f"/projects/{pid}").text
    assert 'id="dispute-window"' in page and f"dispute window open until {when(deadline)}" in page

    _dispute(disputer, rnd)
    states = by_trainer(open_round()["trainers"])
    assert states[disputer.address]["dispute"] == "disputed"
    assert "disputed, scored on its published row" in states[disputer.address]["state"]
    assert states[stands]["dispute"] == "announced"
    close_disputes(actors.owner, pid)
    states = by_trainer(open_round()["trainers"])
    assert states[stands]["state"].endswith(
        f"not disputed before {when(deadline)}: the rejection stands once the round is finalized"
    )

    result = _finalization(actors.aggregator, rnd, {stands})
    doc = proof_document(actors, pid, 0, result.scores, result.flags, 0.9).model_copy(
        update={"rejected": {stands.lower(): WHY_UPHELD}, "published": {disputer.address: WHY_DISPUTED}}
    )
    actors.aggregator.finalize_round(pid, 0, replace(result, proof_cid=ipfs.add(doc.to_bytes())))

    detail = client.get(f"/api/projects/{pid}").json()
    assert detail["project"]["status"] == "finished" and detail["open_round"] is None
    entries = by_trainer(detail["rounds"][0]["trainers"])
    won = entries[disputer.address]
    assert (won["dispute"], won["rejected"], won["flagged"]) == ("disputed", False, False)
    assert int(won["reward"]) > 0 and won["dispute_deadline"] == deadline
    assert won["reason"] == (
        f"rejected by the aggregator: {WHY_DISPUTED} — disputed, scored on its published row "
        "(its update stays out of the model)"
    )
    lost = entries[stands]
    assert (lost["dispute"], lost["rejected"], lost["flagged"], lost["reward"]) == ("upheld", True, True, "0")
    assert (
        lost["reason"]
        == f"rejected by the aggregator: {WHY_UPHELD} — rejection stands: not disputed before {when(deadline)}"
    )
    for address in (t.address for t in rnd.trainers if t.address not in (disputer.address, stands)):
        entry = entries[address]
        assert entry["dispute"] is None and not entry["rejected"]
        assert entry["reason"] == ("flagged by the scoring rule" if entry["flagged"] else None)

    summary = "1 round finalized, 2 rejections announced, 1 dispute lost (50% of its rejections overturned)"
    record = {
        "rounds_finalized": 1, "rejections": 2, "disputes_lost": 1, "upheld": 1, "overturned_bps": 5000,
        "summary": summary,
    }  # fmt: skip
    assert detail["aggregator_record"] == record
    chain_record = actors.owner.aggregator_record(aggregator)
    assert (chain_record.rounds, chain_record.rejected, chain_record.disputes_lost) == (1, 2, 1)
    profile = client.get(f"/api/aggregators/{aggregator.lower()}")
    assert profile.status_code == 200, profile.text
    assert profile.json() == {"address": aggregator, "record": record, "projects": [pid]}
    stranger = client.get(f"/api/aggregators/{actors.stranger.address}").json()
    assert stranger["projects"] == [] and stranger["record"]["summary"] == "0 rounds finalized, no rejections"
    assert stranger["record"]["overturned_bps"] is None
    bad = client.get("/api/aggregators/0x1234")
    assert bad.status_code == 404 and "not an Ethereum address" in bad.json()["detail"]

    page = client.get(f"/projects/{pid}").text
    assert '<small id="aggregator-record"' in page and summary in page
    round0 = client.get(f"/projects/{pid}/rounds/0").text
    assert round0.count(">DISPUTED<") == 1 and round0.count(">REJECTED<") == 1
    assert "disputed, scored on its published row" in round0
    assert f"rejection stands: not disputed before {when(deadline)}" in round0 and WHY_UPHELD in round0


class InjectingChain:
    """The index's chain client, except that ``get_logs_raw`` also returns ``extra`` logs (those in the range
    asked for): what an index reads from a node that serves logs this market never emitted."""

    def __init__(self, chain: ChainClient, extra: list[dict[str, Any]]) -> None:
        self._chain = chain
        self._extra = extra

    def get_logs_raw(self, params: Any) -> list[dict[str, Any]]:
        low, high = int(params["fromBlock"]), int(params["toBlock"])
        return [*self._chain.get_logs_raw(params), *(e for e in self._extra if low <= e["blockNumber"] <= high)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._chain, name)


def test_malformed_dispute_events_are_skipped_and_reported_not_fatal(
    actors: Actors, web_app: FastAPI, client: TestClient
) -> None:
    """Logs served next to the market's own in the same block: a dispute deadline beyond 64 bits, an
    announcement whose data does not decode, a dispute with a row longer than any project's, one with values
    outside the committed rows' box, one whose trainer is not an address (a padded topic) and one whose data is
    not an array. Each is skipped, logged and listed (``skipped_events``, ``/api/status``); the real
    announcement and dispute of that block are indexed, and every page still answers."""
    rnd = _training_round(actors)
    pid, disputer, stands = rnd.pid, rnd.trainers[1], rnd.trainers[2].address
    actors.aggregator.reject_submissions(pid, 0, [disputer.address, stands])
    receipt = _dispute(disputer, rnd)
    block = int(receipt["blockNumber"])  # type: ignore[index]
    market = actors.admin.market
    topic = {abi["name"]: HexBytes(event_abi_to_log_topic(abi)) for abi in market.abi if abi.get("type") == "event"}
    (real,) = [
        e for e in actors.chain.get_logs_raw({"fromBlock": block, "toBlock": block, "address": market.address})
        if HexBytes(e["topics"][0]) == topic["RejectionDisputed"]
    ]  # fmt: skip

    def log(event: str, data: bytes, index: int, trainer_topic: bytes | None = None) -> dict[str, Any]:
        topics = [topic[event], *real["topics"][1:]]
        if trainer_topic is not None:
            topics[3] = HexBytes(trainer_topic)
        return {**real, "topics": topics, "data": HexBytes(data), "logIndex": 100 + index}

    row = [MAX_UNIT_INT] * 66
    bad = [
        log("RejectionAnnounced", encode(["uint256"], [2**256 - 1]), 0),
        log("RejectionAnnounced", b"\x01\x02\x03", 1),
        log("RejectionDisputed", encode(["int256[]"], [[MAX_UNIT_INT] * (MAX_ROW_LENGTH + 1)]), 2),
        log("RejectionDisputed", encode(["int256[]"], [[10**6] * 64 + row[-2:]]), 3),
        log("RejectionDisputed", encode(["int256[]"], [row]), 4, trainer_topic=b"\xff" * 32),
        log("RejectionDisputed", encode(["uint256"], [7]), 5),
    ]
    indexer: Indexer = web_app.state.services.context.indexer
    indexer.chain = InjectingChain(indexer.chain, bad)  # type: ignore[assignment]

    detail = client.get(f"/api/projects/{pid}")
    assert detail.status_code == 200, detail.text
    states = by_trainer(detail.json()["open_round"]["trainers"])
    assert states[disputer.address]["dispute"] == "disputed" and states[stands]["dispute"] == "announced"
    assert {t: s["dispute"] for t, s in states.items() if s["dispute"]} == {
        disputer.address: "disputed",
        stands: "announced",
    }
    skipped = indexer.skipped_events()
    names = ["RejectionAnnounced"] * 2 + ["RejectionDisputed"] * 4
    assert [(s["name"], s["block"], s["log_index"]) for s in skipped] == [
        (name, block, b["logIndex"]) for name, b in zip(names, bad, strict=True)
    ]
    reasons = [s["reason"] for s in skipped]
    assert "disputeDeadline" in reasons[0] and "cannot be decoded" in reasons[1]
    assert f"a row of {MAX_ROW_LENGTH + 1} values" in reasons[2] and "v entries" in reasons[3]
    assert "Padding bytes were not empty" in reasons[4] and "cannot be decoded" in reasons[5]
    assert client.get("/api/status").json()["skipped_events"] == len(bad)
    for page in (f"/projects/{pid}", "/projects", f"/api/aggregators/{actors.aggregator.address}"):
        assert client.get(page).status_code == 200, page
    assert indexer.sync() == 0 and len(indexer.skipped_events()) == len(bad)  # each one once
