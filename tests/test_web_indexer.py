"""The SQLite event index: incremental sync, reorgs (evm_revert), rebuilds for foreign or corrupt files,
proof documents (missing, invalid)."""

# ruff: noqa: F811  (fixtures imported from tests.web_fixtures are used as test arguments)
from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.protocol.proof_document import ProofDocument
from marketplace.web.indexer import Indexer
from marketplace.web.proof_docs import ProofDocUnavailable
from tests.market_fixtures import ETH, Actors
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
