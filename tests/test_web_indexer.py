"""The SQLite event index: incremental sync, reorgs (evm_revert), rebuilds for foreign or corrupt files,
proof documents (missing, invalid, non-finite numbers), strings on chain that are not UTF-8, and chart data
that stays strict JSON."""

# ruff: noqa: F811  (fixtures imported from tests.web_fixtures are used as test arguments)
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from eth_abi import encode
from eth_utils import function_abi_to_4byte_selector
from eth_utils.abi import collapse_if_tuple
from fastapi import FastAPI
from fastapi.testclient import TestClient

from marketplace.adapters.chain.market import Finalization, MarketClient
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.protocol.proof_document import ProofDocument
from marketplace.web.filters import tojson_script
from marketplace.web.indexer import Indexer
from marketplace.web.lenient_abi import lenient_contract
from marketplace.web.proof_docs import ProofDocUnavailable
from tests.market_fixtures import ETH, Actors, commitment_for, test_verifier_proof
from tests.web_fixtures import client, finalize, ipfs, ipfs_node, proof_document, web_app, web_settings  # noqa: F401


def make_indexer(actors: Actors, path: Path, **kwargs: object) -> Indexer:
    base = actors.admin
    start = min(c.block_number for c in actors.deployment.contracts.values()) - 1
    return Indexer(path, base.chain, base.market, base.registry, start_block=start, **kwargs)  # type: ignore[arg-type]


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
    other = Indexer(path, actors.admin.chain, actors.admin.market, actors.admin.registry, start_block=start)
    assert other.last_block == start - 1 and other.projects() == []
    other.sync()
    assert [p["project_id"] for p in other.projects()] == [pid]
    other.close()
    path.write_bytes(b"this is not an sqlite database" * 100)
    rebuilt = make_indexer(actors, path)
    rebuilt.sync()
    assert [p["project_id"] for p in rebuilt.projects()] == [pid]


def test_accuracy_comes_from_the_proof_document(actors: Actors, tmp_path: Path) -> None:
    pid = actors.training_project(2, rounds=2)
    document = ProofDocument(
        project=pid, round=0, prover="test-hash", commitments=[], scores=[], flags=[], proof="0x", model_cid="m",
        accuracy=0.9,
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
    assert rounds[1]["accuracy"] is None and rounds[1]["doc_state"] == "missing"
    index.sync()
    assert len(seen) == 2  # each document is read once


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
    assert page.status_code == 200 and "accuracy 75.0%" in page.text
    assert client.get("/projects").status_code == 200
    assert client.get(f"/api/projects/{pid}/rounds/0").json()["accuracy"] is None


def send_raw_strings(client: MarketClient, function: str, args: list[Any], value: int = 0) -> None:
    """Sends ``function(*args)`` to the market, signed by ``client``'s account, with every ``string`` argument
    given as raw bytes (any bytes, as anyone can send them; web3 would only encode valid text)."""
    abi = next(a for a in client.market.abi if a.get("type") == "function" and a["name"] == function)
    types = [collapse_if_tuple(dict(i)).replace("string", "bytes") for i in abi["inputs"]]
    chain, account = client.chain, client.chain.account
    w3 = chain.w3
    tx: dict[str, Any] = {
        "from": account.address, "to": client.market.address, "value": value, "chainId": chain.chain_id,
        "data": function_abi_to_4byte_selector(abi) + encode(types, args),
        "nonce": w3.eth.get_transaction_count(account.address),
    }  # fmt: skip
    tx["gas"] = int(w3.eth.estimate_gas(tx) * 1.2)  # type: ignore[arg-type]
    tx.update(chain.fees())
    receipt = chain.wait(w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction))
    assert receipt["status"] == 1


def test_strings_that_are_not_utf8_do_not_stop_the_index(actors: Actors, client: TestClient) -> None:
    """A CID is any bytes of the right length to the contract. An owner whose initial model CID and a trainer
    whose update CID are not UTF-8 made every sync raise (every page and API call failed, for every project);
    now they are shown with U+FFFD and the rest of the chain is indexed as usual."""
    config = actors.config(max_trainers=2)
    bad_initial = [*config.as_abi_tuple()[:-2], b"mlp", b"bafy\xff\xfeinitial"]  # (model name, initial CID)
    send_raw_strings(actors.owner, "createProject", [tuple(bad_initial)], value=config.escrow)
    open_id = actors.owner.project_count()
    actors.trainers[2].join(open_id, stake=config.stake)

    pid = actors.training_project(2)
    trainer = actors.trainers[0]
    send_raw_strings(trainer, "submitUpdate", [pid, 0, b"bafk\xc3(update", commitment_for(pid, 0, trainer.address)])
    actors.submit_all(pid, 0, actors.trainers[1:2])
    # (the aggregator's own client cannot read that submission either: it reads it leniently here)
    lenient = MarketClient(actors.chain, lenient_contract(actors.admin.market), lenient_contract(actors.admin.registry))
    proof = test_verifier_proof(lenient, pid, 0, [1, 1], [False, False])
    actors.aggregator.finalize_round(
        pid, 0, Finalization("bafkreimodel", "bafkreiproof", [1, 1], [False, False], proof)
    )
    later = actors.create()  # everything after the bad events is indexed too

    projects = client.get("/api/projects")
    assert projects.status_code == 200, projects.text
    assert [p["project_id"] for p in projects.json()] == [later, pid, open_id]
    opened = client.get(f"/api/projects/{open_id}")
    assert opened.status_code == 200, opened.text
    assert opened.json()["project"]["initial_model_cid"] == "bafy\ufffd\ufffdinitial"
    assert opened.json()["project"]["trainer_count"] == 1
    detail = client.get(f"/api/projects/{pid}")
    assert detail.status_code == 200, detail.text
    (round_,) = detail.json()["rounds"]
    assert round_["trainers"][0]["update_cid"] == "bafk\ufffd(update" and round_["trainers"][0]["submitted"]
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
