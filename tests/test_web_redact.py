"""RPC URLs are shown without their credentials: providers put API keys in the URL (a path segment, a
query value) and some endpoints take a user and password. ``/api/status`` and every error message of the
web app name the endpoint with those replaced by ``***``. (How URLs are redacted, and that the chain
client's own messages are: ``tests/test_chain_redact.py``.)"""

# ruff: noqa: F811  (fixtures imported from tests.web_fixtures are used as test arguments)
from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from marketplace.adapters.ipfs.manager import LocalIpfsNode
from marketplace.web.main import create_app
from marketplace.web.settings import WebSettings
from tests.market_fixtures import Actors
from tests.web_fixtures import API_KEY, PASSWORD, KeyedRpcProxy, ipfs_node, keyed_rpc  # noqa: F401


def test_the_web_app_never_shows_the_rpc_credentials(
    tmp_path: Path, actors: Actors, ipfs_node: LocalIpfsNode, keyed_rpc: KeyedRpcProxy
) -> None:
    """``/api/status`` names the endpoint without its credentials; so does the 503 every page and API call
    answers when the provider refuses the key (the error names the endpoint it could not use)."""
    settings = WebSettings(
        rpc_url=keyed_rpc.url,
        deployment=actors.deployment,
        db_path=tmp_path / "index.sqlite",
        ipfs_api=ipfs_node.api_url,
        sync_interval=0,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        status = client.get("/api/status")
        assert status.status_code == 200, status.text
        assert status.json()["rpc_url"] == f"http://***@127.0.0.1:{keyed_rpc.port}/v2/***?apikey=***"

        keyed_rpc.revoke()
        answers = [client.get("/api/projects"), client.get("/projects"), client.get("/api/status")]
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert f"127.0.0.1:{keyed_rpc.port}/v2/***" in answer.text  # which endpoint failed is still said
            assert API_KEY not in answer.text and PASSWORD not in answer.text
