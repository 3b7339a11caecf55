"""RPC URLs are shown without their credentials: providers put API keys in the URL (a path segment, a
query value) and some endpoints take a user and password. ``/api/status`` and every error message of the
web app name the endpoint with those replaced by ``***``."""

# ruff: noqa: F811  (fixtures imported from tests.web_fixtures are used as test arguments)
from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from marketplace.adapters.ipfs.manager import LocalIpfsNode
from marketplace.web.main import create_app
from marketplace.web.redact import redact_url, redact_urls
from marketplace.web.settings import WebSettings
from tests.market_fixtures import Actors
from tests.web_fixtures import API_KEY, PASSWORD, KeyedRpcProxy, ipfs_node, keyed_rpc  # noqa: F401


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://eth-sepolia.g.alchemy.com/v2/AbCdEfGh1234567890abcdefGHIJKLMN",
            "https://eth-sepolia.g.alchemy.com/v2/***",
        ),
        ("https://mainnet.infura.io/v3/9aa3d95b3bc440fa88ea12eaa4456161", "https://mainnet.infura.io/v3/***"),
        ("https://user:pass@rpc.example.org:8545/", "https://***@rpc.example.org:8545/"),
        ("https://token@rpc.example.org/", "https://***@rpc.example.org/"),
        ("https://rpc.ankr.com/eth?apikey=abc&chain=1", "https://rpc.ankr.com/eth?apikey=***&chain=1"),
        ("https://x.quiknode.pro/0123456789abcdef0123456789abcdef01234567/", "https://x.quiknode.pro/***/"),
        ("https://rpc.example.org/?0123456789abcdefXYZ", "https://rpc.example.org/?***"),
        ("wss://rpc.example.org/ws#s3cret", "wss://rpc.example.org/ws#***"),
        # Nothing secret: shown as given.
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("http://[::1]:8545/", "http://[::1]:8545/"),
        ("https://ethereum-sepolia-rpc.publicnode.com", "https://ethereum-sepolia-rpc.publicnode.com"),
        ("https://rpc.example.org/eth/v2?chain=1&page=2", "https://rpc.example.org/eth/v2?chain=1&page=2"),
        # Not a URL at all: nothing of it is shown.
        ("not a url with s3cret", "***"),
        ("https://rpc.example.org:notaport/abc", "***"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_urls_in_a_message() -> None:
    message = (
        f"RPC https://alice:{PASSWORD}@eth.example/v2/{API_KEY} unreachable: eth_call failed "
        f"(last error HTTPError: 401 for url: https://eth.example/v2/{API_KEY}?key=abc)"
    )
    shown = redact_urls(message)
    assert API_KEY not in shown and PASSWORD not in shown and "key=abc" not in shown
    assert shown.startswith("RPC https://***@eth.example/v2/*** unreachable: eth_call failed")
    assert shown.endswith("for url: https://eth.example/v2/***?key=***)")


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
