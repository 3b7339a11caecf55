"""Fixtures for the web app tests: the app on the session anvil (fresh index per test), a real IPFS
node for proof documents, a finished project with a flagged trainer to render, and
:class:`KeyedRpcProxy`, an RPC endpoint whose URL carries credentials the way providers hand them out.

Import them in a test module (``from tests.web_fixtures import ...``); they build on the market
fixtures (``actors``: chain state is snapshot-reverted after each test).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from marketplace.adapters.chain.anvil import AnvilNode
from marketplace.adapters.chain.market import Finalization
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.manager import LocalIpfsNode
from marketplace.protocol.proof_document import ProofDocument
from marketplace.web.main import create_app
from marketplace.web.settings import WebSettings
from tests.http_server import LoopbackServer, QuietHandler
from tests.ipfs_fixtures import ipfs, ipfs_node
from tests.market_fixtures import ETH, Actors, test_verifier_proof

INITIAL_CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
ACCURACIES = [0.61, 0.78]


@pytest.fixture
def web_settings(tmp_path: Path, anvil: AnvilNode, actors: Actors, ipfs_node: LocalIpfsNode) -> WebSettings:
    """Settings for an app on the session chain; the index is a fresh file and re-syncs on every request."""
    return WebSettings(
        rpc_url=anvil.url,
        deployment=actors.deployment,
        db_path=tmp_path / "index.sqlite",
        ipfs_api=ipfs_node.api_url,
        sync_interval=0,
    )


@pytest.fixture
def web_app(web_settings: WebSettings) -> FastAPI:
    return create_app(web_settings)


@pytest.fixture
def client(web_app: FastAPI) -> Iterator[TestClient]:
    """FastAPI's test client (runs the app's startup: a first index sync)."""
    with TestClient(web_app, raise_server_exceptions=False) as test_client:
        yield test_client


@dataclass
class FinishedProject:
    """A two-round project with three trainers; trainer 2 is flagged in round 1."""

    project_id: int
    trainers: list[str]
    proof_cids: list[str]
    scores: list[list[int]]
    flags: list[list[bool]]


def proof_document(
    actors: Actors, pid: int, round_: int, scores: list[int], flags: list[bool], accuracy: float | None
) -> ProofDocument:
    """Round ``round_``'s proof document as the aggregator makes it (with the test verifier's proof)."""
    members = actors.owner.trainers(pid)
    commitments = [actors.owner.commitment(pid, round_, m) for m in members]
    proof = test_verifier_proof(actors.owner, pid, round_, scores, flags)
    return ProofDocument(
        project=pid, round=round_, prover="test-hash", commitments=["0x" + c.hex() for c in commitments],
        scores=scores, flags=flags, proof="0x" + proof.hex(), model_cid=f"bafkreimodel{pid}r{round_}",
        accuracy=accuracy,
    )  # fmt: skip


def finalize(actors: Actors, ipfs: IpfsClient, pid: int, round_: int, scores: list[int], flags: list[bool],
             accuracy: float | None, document: bytes | None = None) -> str:  # fmt: skip
    """Finalizes ``round_`` as the aggregator does: proof document pinned to IPFS (``document`` instead, if
    given), proof on chain."""
    doc = proof_document(actors, pid, round_, scores, flags, accuracy)
    proof_cid = ipfs.add(doc.to_bytes() if document is None else document)
    result = Finalization(doc.model_cid, proof_cid, scores, flags, doc.proof_bytes)
    actors.aggregator.finalize_round(pid, round_, result)
    return proof_cid


def make_finished_project(actors: Actors, ipfs: IpfsClient) -> FinishedProject:
    pid = actors.training_project(3, rounds=2, reward_budget=3 * ETH, aggregator_fee=ETH // 2)
    scores = [[500_000, 300_000, 200_000], [600_000, 400_000, 0]]
    flags = [[False, False, False], [False, False, True]]
    cids = []
    for round_ in range(2):
        actors.submit_all(pid, round_)
        cids.append(finalize(actors, ipfs, pid, round_, scores[round_], flags[round_], ACCURACIES[round_]))
    return FinishedProject(pid, actors.owner.trainers(pid), cids, scores, flags)


@pytest.fixture
def finished_project(actors: Actors, ipfs: IpfsClient) -> FinishedProject:
    return make_finished_project(actors, ipfs)


#: What a provider's URL hides: an API key in the path and the query, and a password in the userinfo.
API_KEY = "Xk3vT9qLw2ZpR7sN4bYc8dHf1jMg6uEa"
PASSWORD = "hunter2-s3cret"


class KeyedRpcProxy:
    """An RPC endpoint on 127.0.0.1 forwarding to ``upstream`` whose :attr:`url` holds credentials
    (``http://alice:<password>@127.0.0.1:<port>/v2/<key>?apikey=<key>``), like a provider's.

    After :meth:`revoke` it answers every method but ``eth_chainId`` with HTTP 401, as a provider does for a
    revoked key: the client then fails at once, with an error that names the endpoint's URL.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.revoked = False
        proxy = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    method = json.loads(body).get("method")
                except (ValueError, AttributeError):
                    method = None
                if proxy.revoked and method != "eth_chainId":
                    self.answer(401, b'{"error": "invalid API key"}')
                    return
                headers = {"Content-Type": "application/json"}
                request = urllib.request.Request(proxy.upstream, data=body, headers=headers)
                with urllib.request.urlopen(request, timeout=30) as response:
                    self.answer(response.status, response.read())

        self._server = LoopbackServer(Handler)
        self.port = self._server.port
        self.url = f"http://alice:{PASSWORD}@127.0.0.1:{self.port}/v2/{API_KEY}?apikey={API_KEY}"

    def revoke(self) -> None:
        """From now on, refuse every method but ``eth_chainId`` (HTTP 401)."""
        self.revoked = True

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def keyed_rpc(anvil: AnvilNode) -> Iterator[KeyedRpcProxy]:
    proxy = KeyedRpcProxy(anvil.url)
    yield proxy
    proxy.close()


__all__ = [
    "ACCURACIES",
    "API_KEY",
    "INITIAL_CID",
    "PASSWORD",
    "FinishedProject",
    "KeyedRpcProxy",
    "client",
    "finalize",
    "finished_project",
    "ipfs",
    "ipfs_node",
    "keyed_rpc",
    "make_finished_project",
    "proof_document",
    "web_app",
    "web_settings",
]
