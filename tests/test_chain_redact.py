"""RPC URLs are shown without their credentials: providers put API keys in the URL (a path segment, a
query value) and some endpoints take a user and password. :mod:`marketplace.adapters.chain.redact` hides
them, and the chain client passes every message it makes, and its ``repr``, through it: the errors of an
unreachable endpoint, of one that refuses the key and of one on another chain, as every command that
prints them shows them, name the endpoint with ``***`` in their place."""

# ruff: noqa: F811  (fixtures imported from tests.web_fixtures are used as test arguments)
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketplace.adapters.chain.anvil import free_port
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.config import DeployedContract, Deployment, write_deployment
from marketplace.adapters.chain.errors import ChainIdMismatch, RpcUnavailable
from marketplace.adapters.chain.redact import HIDDEN, redact_endpoint, redact_url, redact_urls, secrets_of
from marketplace.cli.main import app
from marketplace.web import server
from tests.web_fixtures import API_KEY, PASSWORD, KeyedRpcProxy, keyed_rpc  # noqa: F401


def keyed_url(port: int) -> str:
    """An endpoint URL with credentials, as :class:`KeyedRpcProxy` hands them out, on ``port``."""
    return f"http://alice:{PASSWORD}@127.0.0.1:{port}/v2/{API_KEY}?apikey={API_KEY}"


def assert_hidden(text: str, port: int) -> None:
    """``text`` names the endpoint (host, port, the path without its key) and none of its credentials."""
    assert f"127.0.0.1:{port}/v2/{HIDDEN}" in text, text
    assert API_KEY not in text and PASSWORD not in text and "alice" not in text, text


# ------------------------------------------------------------------ URLs and messages
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


def test_the_secrets_of_an_endpoint_are_hidden_wherever_a_message_quotes_them() -> None:
    """urllib3 quotes only the path and query of the URL it could not reach (no scheme, so no URL pattern
    finds it): the endpoint's own secrets are hidden there too, and nothing that merely resembles them."""
    url = f"https://rpc:{PASSWORD}@eth.example/v2/{API_KEY}?apikey=s%2Bcret&chain=1#frag"
    assert secrets_of(url) == sorted(
        {f"rpc:{PASSWORD}", "rpc", PASSWORD, API_KEY, "s%2Bcret", "s+cret", "frag"}, key=len, reverse=True
    )
    message = (
        f"RPC {url} unreachable: eth_rpc_call failed (last error ConnectionError: HTTPConnectionPool("
        f"host='eth.example', port=443): Max retries exceeded with url: /v2/{API_KEY}?apikey=s%2Bcret&chain=1)"
    )
    shown = redact_endpoint(message, url)
    assert shown == (
        "RPC https://***@eth.example/v2/***?apikey=***&chain=1#*** unreachable: eth_rpc_call failed (last error "
        "ConnectionError: HTTPConnectionPool(host='eth.example', port=443): Max retries exceeded with url: "
        "/v2/***?apikey=***&chain=1)"
    )  # "eth_rpc_call" keeps its "rpc" (the user name), "chain=1" its value
    assert secrets_of("http://127.0.0.1:8545") == [] and secrets_of("not a url") == ["not a url"]


# ------------------------------------------------------------------ the chain client
def test_the_chain_client_never_shows_the_rpc_credentials(keyed_rpc: KeyedRpcProxy) -> None:
    """Every error the client raises about its endpoint, and the client's repr, name the endpoint without
    its credentials: nothing listens (the HTTP library quotes the path and key itself), the endpoint serves
    another chain, the provider refuses the key."""
    port = free_port()
    with pytest.raises(RpcUnavailable) as unreachable:
        ChainClient(keyed_url(port), expected_chain_id=31337, retries=2, backoff=0.01)
    assert "unreachable: eth_chainId failed" in str(unreachable.value)
    assert_hidden(str(unreachable.value), port)
    assert_hidden(repr(ChainClient(keyed_url(port))), port)
    assert_hidden(str(ChainClient(keyed_url(port))), port)

    with pytest.raises(ChainIdMismatch) as mismatch:
        ChainClient(keyed_rpc.url, expected_chain_id=1)
    assert (mismatch.value.expected, mismatch.value.actual) == (1, 31337)
    assert_hidden(str(mismatch.value), keyed_rpc.port)

    client = ChainClient(keyed_rpc.url, expected_chain_id=31337)
    assert client.block_number() >= 0 and client.rpc_url == keyed_rpc.url  # the client itself uses the key
    keyed_rpc.revoke()
    with pytest.raises(RpcUnavailable) as refused:
        client.block_number()
    assert "refused eth_blockNumber" in str(refused.value) and "401" in str(refused.value)
    assert_hidden(str(refused.value), keyed_rpc.port)


# ------------------------------------------------------------------ commands
@pytest.fixture
def remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A network ``remote`` on chain 1 whose RPC URL comes from the environment, with a deployment record;
    ``marketplace web`` must never get as far as serving (it would block the test)."""
    monkeypatch.setenv("MARKETPLACE_DEPLOYMENTS_DIR", str(tmp_path / "deployments"))
    monkeypatch.setenv("MARKETPLACE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MARKETPLACE_CHAIN_ID", "1")
    contracts = {
        name: DeployedContract(address="0x" + digit * 40, block_number=1)
        for name, digit in (("ReliabilityRegistry", "1"), ("TrainingMarket", "2"))
    }
    write_deployment(Deployment(network="remote", chain_id=1, contracts=contracts))

    def serve(*args: object, **kwargs: object) -> None:
        raise AssertionError("the web app started on an endpoint it cannot use")

    monkeypatch.setattr(server, "serve_in_background", serve)  # how `marketplace web` serves
    return "remote"


@pytest.mark.parametrize("command", [["project", "list"], ["project", "show", "1"], ["web"]])
def test_commands_never_print_the_rpc_credentials(
    remote: str, keyed_rpc: KeyedRpcProxy, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """``connect_market`` (every command that talks to the market) and ``marketplace web`` print the chain
    client's error and exit 1 when the endpoint cannot be used; the error names it without credentials."""
    port = free_port()
    monkeypatch.setenv("MARKETPLACE_RPC_URL", keyed_url(port))  # nothing listens there
    result = CliRunner().invoke(app, [*command, "--network", remote], terminal_width=300)
    assert result.exit_code == 1 and "unreachable" in result.output, result.output
    assert_hidden(result.output, port)

    monkeypatch.setenv("MARKETPLACE_RPC_URL", keyed_rpc.url)  # a provider, but of chain 31337
    result = CliRunner().invoke(app, [*command, "--network", remote], terminal_width=300)
    assert result.exit_code == 1 and "chain id mismatch" in result.output, result.output
    assert_hidden(result.output, keyed_rpc.port)
