"""The SQLite event index: incremental sync, reorgs (evm_revert), rebuilds for foreign or corrupt files,
proof documents (missing, invalid, non-finite numbers), strings on chain that are not UTF-8, chart data
that stays strict JSON, and stale challenges (``StaleChallenged``: a real one indexed, junk ones skipped)."""

# ruff: noqa: F811  (fixtures imported from tests.web_fixtures are used as test arguments)
from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import event_abi_to_log_topic
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hexbytes import HexBytes

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.market import Finalization
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.protocol.model_card import ModelCard
from marketplace.protocol.proof_document import ProofDocument
from marketplace.web.filters import tojson_script
from marketplace.web.indexer import Indexer
from marketplace.web.model_cards import CardUnavailable
from marketplace.web.proof_docs import ProofDocUnavailable
from tests.market_fixtures import ETH, Actors, cid_for, commit, commitment_for, reveal_update
from tests.test_dispute_attacks import Job, _settle
from tests.test_stale_challenge import _evidence, _replay
from tests.test_web_disputes import InjectingChain, by_trainer
from tests.web_fixtures import client, finalize, ipfs, ipfs_node, proof_document, web_app, web_settings  # noqa: F401


def make_indexer(actors: Actors, path: Path, **kwargs: object) -> Indexer:
    base = actors.admin
    start = min(c.block_number for c in actors.deployment.contracts.values()) - 1
    return Indexer(path, base.chain, base.market, base.registry, base.lens, start_block=start, **kwargs)  # type: ignore[arg-type]


def test_sync_is_incremental_and_derives_status(actors: Actors, tmp_path: Path) -> None:
    index = make_indexer(actors, tmp_path / "i.sqlite")
    index.sync()
    assert index.projects() == [] and index.verifiers() == [actors.deployment.address("TestRoundVerifier")]
    pid = actors.training_project(2, rounds=1)
    assert index.sync() > 0
    (row,) = index.projects()
    assert (row["project_id"], row["status"], row["trainer_count"], row["rounds"]) == (pid, "training", 2, 1)
    assert index.sync() == 0  # nothing new
    assert index.last_block == actors.chain.block_number()

    actors.submit_all(pid, 0)
    actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [1, 1]))
    index.sync()
    assert index.project(pid)["status"] == "finished"  # type: ignore[index]
    assert len(index.submissions(pid, 0)) == 2 and index.rounds(pid)[0]["scores"] == [1, 1]
    assert [r["outcome"] for r in index.reliability_history(actors.trainers[0].address)] == [0]
    # Reopening the same file continues where it stopped (no rebuild).
    index.close()
    again = make_indexer(actors, tmp_path / "i.sqlite")
    assert again.last_block == actors.chain.block_number() and again.project(pid) is not None
    assert again.sync() == 0 and again.rebuilds == 0


def test_commits_reveals_and_missed_reveals_are_indexed(actors: Actors, tmp_path: Path) -> None:
    """Commit-reveal in the index: each commit with its seal and arrival (the round's order), each reveal with
    the arrival of its commit, and, once the round is finalized, who committed and never revealed; an index
    file of the schema before commit-reveal is rebuilt, not misread."""
    index = make_indexer(actors, tmp_path / "i.sqlite")
    pid = actors.training_project(3, rounds=1)
    a, b, c = actors.trainers[:3]
    for trainer in (c, a, b):
        commit(trainer, pid, 0, cid_for(pid, 0, trainer.address), commitment_for(pid, 0, trainer.address))
    index.sync()
    commits = index.commits(pid, 0)
    assert [(row["trainer"], row["arrival"]) for row in commits] == [(c.address, 1), (a.address, 2), (b.address, 3)]
    seal = actors.owner.committed_seal(pid, 0, c.address)
    assert commits[0]["seal"] == "0x" + seal.hex() and index.submissions(pid, 0) == []
    for trainer in (a, c):  # b never reveals
        reveal_update(trainer, pid, 0, cid_for(pid, 0, trainer.address), commitment_for(pid, 0, trainer.address))
    actors.chain.increase_time(actors.owner.round_deadlines(pid).reveal - actors.chain.timestamp() + 1)
    actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [1, 0, 1]))
    index.sync()
    reveals = index.submissions(pid, 0)
    assert [(row["trainer"], row["arrival"]) for row in reveals] == [(a.address, 2), (c.address, 1)]
    assert reveals[0]["cid"] == cid_for(pid, 0, a.address)
    assert index.reveals_missed(pid) == {0: {b.address}}
    assert index.project(pid)["reveal_period"] == 600  # type: ignore[index]
    index.close()

    old = sqlite3.connect(tmp_path / "i.sqlite")
    old.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")  # as written before commit-reveal
    old.commit()
    old.close()
    again = make_indexer(actors, tmp_path / "i.sqlite")
    assert again.projects() == [] and again.last_block == again.start_block - 1  # thrown away
    again.sync()
    assert again.reveals_missed(pid) == {0: {b.address}}


def test_reverted_blocks_are_dropped(actors: Actors, tmp_path: Path) -> None:
    index = make_indexer(actors, tmp_path / "i.sqlite")
    snapshot = actors.chain.snapshot()
    actors.create(reward_budget=7 * ETH)
    index.sync()
    assert index.projects()[0]["reward_budget"] == str(7 * ETH)
    actors.chain.revert(snapshot)
    actors.chain.mine(3)  # a different chain at the same heights
    actors.create(reward_budget=3 * ETH)
    index.sync()
    (row,) = index.projects()
    assert row["reward_budget"] == str(3 * ETH)


def test_foreign_or_corrupt_database_is_rebuilt(actors: Actors, tmp_path: Path) -> None:
    path = tmp_path / "i.sqlite"
    pid = actors.create()
    index = make_indexer(actors, path)
    index.sync()
    index.close()
    # The same file opened for another deployment (different start block here) is thrown away.
    start = index.start_block + 1
    other = Indexer(
        path, actors.admin.chain, actors.admin.market, actors.admin.registry, actors.admin.lens, start_block=start
    )
    assert other.last_block == start - 1 and other.projects() == []
    other.sync()
    assert [p["project_id"] for p in other.projects()] == [pid]
    other.close()
    path.write_bytes(b"this is not an sqlite database" * 100)
    rebuilt = make_indexer(actors, path)
    rebuilt.sync()
    assert [p["project_id"] for p in rebuilt.projects()] == [pid]


def test_accuracy_comes_from_the_proof_document(actors: Actors, tmp_path: Path) -> None:
    """The accuracy and the trainers kept out of the model by the owner's reference (``screened``: checksummed,
    each once, no value that is not an address) are read from the round's proof document, once; an index file of
    the schema before ``screened`` is rebuilt, not misread."""
    pid = actors.training_project(2, rounds=2)
    trainer = actors.owner.trainers(pid)[1]
    document = ProofDocument(
        project=pid, round=0, prover="test-hash", commitments=[], scores=[], flags=[], proof="0x", model_cid="m",
        accuracy=0.9, screened=[trainer.lower(), trainer, "nobody"],
    )  # fmt: skip
    docs = {f"bafkreiproof{pid}r0": document}  # round 1's document is unavailable
    seen: list[str] = []

    def reader(cid: str) -> ProofDocument | None:
        seen.append(cid)
        if cid not in docs:
            raise ProofDocUnavailable(cid)
        return docs[cid]

    for round_ in range(2):
        actors.submit_all(pid, round_)
        actors.aggregator.finalize_round(pid, round_, actors.result(pid, round_, [1, 2]))
    index = make_indexer(actors, tmp_path / "i.sqlite", proof_docs=reader)
    index.sync()
    rounds = index.rounds(pid)
    assert rounds[0]["accuracy"] == 0.9 and rounds[0]["doc_state"] == "ok"
    assert rounds[0]["screened"] == [trainer] and rounds[0]["admitted"] == []
    assert rounds[1]["accuracy"] is None and rounds[1]["doc_state"] == "missing" and rounds[1]["screened"] == []
    index.sync()
    assert len(seen) == 2  # each document is read once
    index.close()

    old = sqlite3.connect(tmp_path / "i.sqlite")
    old.execute("ALTER TABLE rounds DROP COLUMN screened")  # as written before the reference's screen
    old.execute("UPDATE meta SET value = '9' WHERE key = 'schema'")
    old.commit()
    old.close()
    again = make_indexer(actors, tmp_path / "i.sqlite", proof_docs=reader)
    assert again.rounds(pid) == [] and again.rebuilds == 0  # thrown away on opening
    again.sync()
    assert again.rounds(pid)[0]["screened"] == [trainer]


def test_model_cards_are_read_once_newest_first_and_never_stop_the_index(
    actors: Actors, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each project's card is read once: described, none (the reader found none, or failed in any way) or missing
    (IPFS did not deliver); newest project first; a sync stops reading cards once it spent its time on them."""
    card = ModelCard(task="digits")
    outcomes: dict[str, object] = {"cidA": card, "cidB": None, "cidC": CardUnavailable("slow"), "cidD": KeyError("x")}
    seen: list[str] = []

    def reader(cid: str) -> ModelCard | None:
        seen.append(cid)
        outcome = outcomes[cid]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome  # type: ignore[return-value]

    pids = [actors.create(initial_model_cid=cid) for cid in outcomes]
    index = make_indexer(actors, tmp_path / "i.sqlite", model_cards=reader)
    monkeypatch.setattr("marketplace.web.indexer.CARDS_SECONDS_PER_SYNC", -1.0)  # every read uses up the budget
    index.sync()
    assert seen == ["cidD"]  # the newest first, and one read spent this sync's time
    monkeypatch.setattr("marketplace.web.indexer.CARDS_SECONDS_PER_SYNC", 60.0)
    index.sync()
    assert seen == ["cidD", "cidC", "cidB", "cidA"]
    states = [index.model_card(pid) for pid in pids]
    assert states == [("described", card), ("none", None), ("missing", None), ("none", None)]
    index.sync()
    assert len(seen) == 4  # each card is read once
    without = make_indexer(actors, tmp_path / "other.sqlite")  # an index that reads no IPFS node
    without.sync()
    assert without.project(pids[0]) is not None and without.model_card(pids[0]) == ("unread", None)


def test_invalid_proof_documents_are_skipped(
    actors: Actors, ipfs: IpfsClient, web_app: FastAPI, client: TestClient
) -> None:
    """A proof document whose accuracy is a 401-digit integer (no float holds it) or ``Infinity`` is recorded as
    invalid and skipped: the next round's document is still read, and the pages keep working."""
    pid = actors.training_project(2, rounds=3)
    scores, flags = [600_000, 400_000], [False, False]
    bad_accuracies = ["1" + "0" * 400, "Infinity"]
    for round_, accuracy in enumerate(bad_accuracies):
        actors.submit_all(pid, round_)
        doc = proof_document(actors, pid, round_, scores, flags, 0.5).model_dump()
        raw = json.dumps(doc, sort_keys=True).replace('"accuracy": 0.5', f'"accuracy": {accuracy}').encode()
        assert f'"accuracy": {accuracy}'.encode() in raw
        finalize(actors, ipfs, pid, round_, scores, flags, None, document=raw)
    actors.submit_all(pid, 2)
    finalize(actors, ipfs, pid, 2, scores, flags, 0.75)

    detail = client.get(f"/api/projects/{pid}")
    assert detail.status_code == 200, detail.text
    assert [r["accuracy"] for r in detail.json()["rounds"]] == [None, None, 0.75]
    indexer: Indexer = web_app.state.services.context.indexer
    assert [r["doc_state"] for r in indexer.rounds(pid)] == ["invalid", "invalid", "ok"]
    page = client.get(f"/projects/{pid}")
    assert page.status_code == 200 and '<td role="cell" data-label="Accuracy" class="num">75.0%</td>' in page.text
    assert client.get("/projects").status_code == 200
    assert client.get(f"/api/projects/{pid}/rounds/0").json()["accuracy"] is None


class RewritingChain:
    """The index's chain client, except that the logs it reads have ``old`` bytes replaced by ``new`` (of the
    same length): what an index reads from a deployment whose contract took any bytes as a string (this market
    refuses CIDs and model names that are not letters and digits, older deployments did not)."""

    def __init__(self, chain: ChainClient, replacements: dict[bytes, bytes]) -> None:
        assert all(len(old) == len(new) for old, new in replacements.items())
        self._chain = chain
        self._replacements = replacements

    def get_logs_raw(self, params: Any) -> list[dict[str, Any]]:
        out = []
        for entry in self._chain.get_logs_raw(params):
            data = bytes(entry["data"])
            for old, new in self._replacements.items():
                data = data.replace(old, new)
            out.append({**entry, "data": HexBytes(data)})
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._chain, name)


def test_strings_that_are_not_utf8_do_not_stop_the_index(actors: Actors, web_app: FastAPI, client: TestClient) -> None:
    """A CID or model name in an event is any bytes to the ABI. An initial model CID and an update CID that are
    not UTF-8 made every sync raise (every page and API call failed, for every project); now they are shown with
    U+FFFD and the rest of the chain is indexed as usual. (This market refuses such strings, so the logs are
    rewritten on their way to the index, as a deployment that took them would have emitted them.)"""
    indexer: Indexer = web_app.state.services.context.indexer
    indexer.chain = RewritingChain(indexer.chain, {b"QQQQ": b"\xff\xfe\xff\xfe", b"ZZZZ": b"\xc3(\xc3("})  # type: ignore[assignment]
    open_id = actors.create(max_trainers=2, initial_model_cid="bafyQQQQinitial")
    actors.trainers[2].join(open_id)

    pid = actors.training_project(2)
    trainer = actors.trainers[0]
    bad_cid, commitment = "bafkZZZZupdate", commitment_for(pid, 0, trainer.address)
    commit(trainer, pid, 0, bad_cid, commitment)
    actors.submit_all(pid, 0, actors.trainers[1:2])  # everyone committed: the other one reveals
    reveal_update(trainer, pid, 0, bad_cid, commitment)
    actors.aggregator.finalize_round(pid, 0, actors.result(pid, 0, [1, 1]))
    later = actors.create()  # everything after the bad events is indexed too

    projects = client.get("/api/projects")
    assert projects.status_code == 200, projects.text
    assert [p["project_id"] for p in projects.json()["items"]] == [later, pid, open_id]
    opened = client.get(f"/api/projects/{open_id}")
    assert opened.status_code == 200, opened.text
    assert opened.json()["project"]["initial_model_cid"] == "bafy" + "\ufffd" * 4 + "initial"
    assert opened.json()["project"]["trainer_count"] == 1
    detail = client.get(f"/api/projects/{pid}")
    assert detail.status_code == 200, detail.text
    (round_,) = detail.json()["rounds"]
    assert round_["trainers"][0]["update_cid"] == "bafk\ufffd(\ufffd(update" and round_["trainers"][0]["submitted"]
    for page in (f"/projects/{pid}", f"/projects/{open_id}", "/projects", f"/trainers/{trainer.address}"):
        assert client.get(page).status_code == 200, page
    actions = client.get(f"/api/projects/{open_id}/actions")  # reads the project live from the chain
    assert actions.status_code == 200, actions.text
    assert actions.json()["status"] == "open"


def strict_json(text: str) -> Any:
    """``text`` parsed as ``JSON.parse`` would: ``NaN``, ``Infinity`` and ``-Infinity`` are errors."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_chart_data_is_strict_json_whatever_the_numbers() -> None:
    """``NaN``/``Infinity`` are not JSON: the browser's ``JSON.parse`` refused the chart data and the charts broke."""
    data = {"accuracy": [float("inf"), float("nan"), 0.5, None], "shares": [[-float("inf"), 1.0]], "big": 10**400}
    parsed = strict_json(str(tojson_script(data)))
    assert parsed["accuracy"] == [None, None, 0.5, None] and parsed["shares"] == [[None, 1.0]]
    assert parsed["big"] == 10**400  # an integer of any size is valid JSON (a browser reads it as Infinity)
    assert "<" not in str(tojson_script({"name": "</script><script>alert(1)</script>"}))


def test_an_accuracy_that_is_not_a_finite_fraction_is_not_charted(
    actors: Actors, web_app: FastAPI, client: TestClient
) -> None:
    """Whatever the proof document reader lets through, the index stores only a finite accuracy in [0, 1]: an
    infinite, NaN or out-of-range accuracy is neither shown nor charted, and the chart data stays strict JSON."""
    pid = actors.training_project(2, rounds=4)
    published = {0: float("inf"), 1: float("nan"), 2: 7.5, 3: 0.25}

    def reader(cid: str) -> ProofDocument:
        round_ = int(cid.rsplit("r", 1)[1])
        return ProofDocument.model_construct(accuracy=published[round_])  # no validation: any number at all

    web_app.state.services.context.indexer.proof_docs = reader
    for round_ in range(4):
        actors.submit_all(pid, round_)
        actors.aggregator.finalize_round(pid, round_, actors.result(pid, round_, [1, 2]))

    detail = client.get(f"/api/projects/{pid}")
    assert detail.status_code == 200, detail.text
    assert [r["accuracy"] for r in detail.json()["rounds"]] == [None, None, None, 0.25]
    page = client.get(f"/projects/{pid}")
    assert page.status_code == 200
    match = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', page.text)
    assert match is not None
    chart = strict_json(match.group(1))
    assert chart["accuracy"] == [None, None, None, 0.25]


@dataclass
class StaleRound:
    """Round 1 of a two-round project in which trainer 3 (``replayer``) revealed trainer 0's (``copied``) round-0 row
    and the stranger (``challenger``) showed it stale: ``award`` wei of the replayer's stake refunded its gas."""

    job: Job
    replayer: str
    copied: str
    challenger: str
    award: int
    earlier: bytes
    tx_hash: str
    block: int

    @property
    def pid(self) -> int:
        return self.job.pid


def challenge_replay(actors: Actors) -> StaleRound:
    """A real ``StaleChallenged`` on the session anvil (:func:`tests.test_stale_challenge._replay`); round 1 stays
    open (:func:`finalize_stale_round` finalizes it)."""
    job, replayer, row = _replay(actors)
    receipt = actors.stranger.challenge_stale(job.pid, 1, _evidence(actors, job, replayer.address, row))
    (event,) = actors.events(receipt, "StaleChallenged")
    tx_hash = HexBytes(receipt["transactionHash"]).to_0x_hex()
    return StaleRound(
        job, replayer.address, job.trainers[0].address, actors.stranger.address, int(event["award"]),
        bytes(event["earlier"]), tx_hash, int(receipt["blockNumber"]),
    )  # fmt: skip


def finalize_stale_round(actors: Actors, ipfs: IpfsClient, stale: StaleRound, why: str = "") -> Finalization:
    """Finalizes round 1 with the replayer rejected, as the market demands, its proof document pinned (``why``: the
    aggregator's stated reason for the rejection in it, if any)."""
    result = _settle(actors.owner, stale.job, 1, {stale.replayer})
    doc = proof_document(actors, stale.pid, 1, result.scores, result.flags, 0.8)
    if why:
        doc = doc.model_copy(update={"rejected": {stale.replayer: why}})
    pinned = replace(result, proof_cid=ipfs.add(doc.to_bytes()))
    actors.aggregator.finalize_round(stale.pid, 1, pinned)
    return pinned


def test_stale_challenges_are_indexed_and_an_index_from_before_them_is_rebuilt(actors: Actors, tmp_path: Path) -> None:
    """The challenge's values as the event gives them: the challenged round and trainer, the challenger, the earlier
    round and the author of the row copied, its commitment, the refund out of the stake; the trainer's stale rounds.
    An index file of the schema before stale challenges is thrown away on opening and rebuilt with them."""
    stale = challenge_replay(actors)
    index = make_indexer(actors, tmp_path / "i.sqlite")
    index.sync()
    shown = index.stale_challenges(stale.pid)
    assert list(shown) == [1] and list(shown[1]) == [stale.replayer], shown
    row = shown[1][stale.replayer]
    assert (row["challenger"], row["earlier_round"], row["author"]) == (stale.challenger, 0, 0), row
    assert (row["earlier"], row["award"]) == ("0x" + stale.earlier.hex(), str(stale.award)), row
    assert row["tx_hash"] == stale.tx_hash, row
    assert stale.award > 0 and index.skipped_events() == []
    assert index.stale_rounds_of(stale.replayer) == {(stale.pid, 1)} and index.stale_rounds_of(stale.copied) == set()
    index.close()

    old = sqlite3.connect(tmp_path / "i.sqlite")
    old.execute("DROP TABLE stale")  # as written before stale challenges
    old.execute("UPDATE meta SET value = '10' WHERE key = 'schema'")
    old.commit()
    old.close()
    again = make_indexer(actors, tmp_path / "i.sqlite")
    assert again.projects() == [] and again.rebuilds == 0  # thrown away on opening
    again.sync()
    assert again.stale_challenges(stale.pid) == shown


def test_junk_stale_challenges_are_skipped_and_never_shown(
    actors: Actors, ipfs: IpfsClient, web_app: FastAPI, client: TestClient
) -> None:
    """Logs served next to a real ``StaleChallenged``, each naming an honest trainer (trainer 1) stale in a way the
    market cannot: an earlier round that is not earlier, an author that is no member's index, a refund above the
    stake, a round beyond 64 bits, undecodable data, and a trainer that is not a member. Each is skipped, logged and
    listed; the real challenge is indexed; the round's JSON and page show the replayer stale and nobody else."""
    stale = challenge_replay(actors)
    market = actors.admin.market
    topic = {abi["name"]: HexBytes(event_abi_to_log_topic(abi)) for abi in market.abi if abi.get("type") == "event"}
    logs = actors.chain.get_logs_raw({"fromBlock": stale.block, "toBlock": stale.block, "address": market.address})
    (real,) = [e for e in logs if HexBytes(e["topics"][0]) == topic["StaleChallenged"]]
    honest = stale.job.trainers[1].address
    stake = int(actors.owner.get_project(stale.pid).stake)

    def log(index: int, earlier_round: int = 0, author: int = 0, award: int = 1, **topics: str | int) -> dict[str, Any]:
        """A ``StaleChallenged`` of ``honest`` in round 1 (``topics`` override ``round`` or ``trainer``)."""
        data = encode(["address", "uint256", "uint256", "bytes32", "uint256"],
                      [stale.challenger, earlier_round, author, stale.earlier, award])  # fmt: skip
        trainer = HexBytes(encode(["address"], [topics.get("trainer", honest)]))
        round_ = HexBytes(encode(["uint256"], [topics.get("round", 1)]))
        return {**real, "topics": [real["topics"][0], real["topics"][1], round_, trainer], "data": HexBytes(data),
                "logIndex": 100 + index}  # fmt: skip

    bad = [
        log(0, earlier_round=1),
        log(1, author=len(stale.job.trainers)),
        log(2, award=stake + 1),
        log(3, round=2**64),
        {**log(4), "data": HexBytes(b"\x01\x02\x03")},
        log(5, trainer=actors.stranger.address),
    ]
    indexer: Indexer = web_app.state.services.context.indexer
    indexer.chain = InjectingChain(indexer.chain, bad)  # type: ignore[assignment]
    finalize_stale_round(actors, ipfs, stale)

    round_ = client.get(f"/api/projects/{stale.pid}/rounds/1")
    assert round_.status_code == 200, round_.text
    assert round_.json()["stale"] == [stale.replayer], round_.json()
    entries = by_trainer(round_.json()["trainers"])
    assert entries[stale.replayer]["stale"]["challenger"] == stale.challenger
    assert [t for t, e in entries.items() if e["stale"] is not None] == [stale.replayer]
    skipped = indexer.skipped_events()
    assert [(s["name"], s["block"], s["log_index"]) for s in skipped] == [
        ("StaleChallenged", stale.block, b["logIndex"]) for b in bad
    ]
    reasons = [s["reason"] for s in skipped]
    assert "earlierRound 1 is not before the challenged round 1" in reasons[0], reasons
    assert f"author '{len(stale.job.trainers)}' is neither a trainer's index" in reasons[1], reasons
    assert f"award {stake + 1} is more than project {stale.pid}'s stake" in reasons[2], reasons
    assert "round" in reasons[3] and "cannot be decoded" in reasons[4], reasons
    assert f"{actors.stranger.address} is not a trainer of project {stale.pid}" in reasons[5], reasons
    page = client.get(f"/projects/{stale.pid}/rounds/1").text
    assert page.count(">STALE<") == 1 and page.count('class="stale-note"') == 1
    assert client.get("/api/status").json()["skipped_events"] == len(bad)
    project = client.get(f"/projects/{stale.pid}").text
    members = re.search(r'<table class="stack" role="table" id="members">(.*?)</table>', project, re.S)
    assert members and members[1].count("stale-mark") == 1, project  # the replayer's row only
    assert re.search(rf'data-trainer="{honest}">(?:(?!</tr>).)*stale-mark', members[1], re.S) is None
    for url in (f"/accounts/{honest}", f"/trainers/{honest}"):
        html = client.get(url)
        assert html.status_code == 200 and "stale-mark" not in html.text, url
    assert indexer.sync() == 0 and len(indexer.skipped_events()) == len(bad)  # each one once
