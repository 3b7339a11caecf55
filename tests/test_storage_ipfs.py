"""The Kubo RPC client against the real local node: add/cat/pin, limits, errors, restarts."""
# ruff: noqa: F811  (the fixtures imported from tests.ipfs_fixtures are used as test arguments)

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import httpx
import pytest

from marketplace.adapters.ipfs.errors import (
    IpfsApiError,
    IpfsConnectionError,
    IpfsNotFound,
    ObjectTooLarge,
)
from marketplace.adapters.ipfs.ipfs import IpfsClient, normalize_api_url
from marketplace.adapters.ipfs.manager import (
    LocalIpfsNode,
    NodeStartError,
    node_down,
    node_status,
    node_up,
    read_state,
    resolve_api_url,
)
from marketplace.adapters.ipfs.unixfs import CIDV1_RAW_LEAVES
from tests.ipfs_fixtures import ipfs, ipfs_node  # noqa: F401

MISSING = "QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n"  # a valid CID nobody added


def test_add_cat_pin_round_trip(ipfs: IpfsClient) -> None:
    data = os.urandom(50_000)
    cid = ipfs.add(data)
    assert ipfs.cat(cid) == data
    assert ipfs.is_pinned(cid)
    assert ipfs.pin_ls()[cid] == "recursive"
    assert ipfs.pin_rm(cid) == [cid]
    assert not ipfs.is_pinned(cid)
    assert ipfs.cat(cid) == data  # unpinned but still in the repo
    assert ipfs.pin_add(cid) == [cid]
    assert ipfs.is_pinned(cid)


def test_add_without_pin(ipfs: IpfsClient) -> None:
    cid = ipfs.add(b"not pinned " + os.urandom(8), pin=False)
    assert not ipfs.is_pinned(cid)


def test_children_of_a_pinned_dag_are_indirect(ipfs: IpfsClient) -> None:
    cid = ipfs.add(os.urandom(600_000))
    pins = ipfs.pin_ls("all")
    assert pins[cid] == "recursive"
    assert list(pins.values()).count("indirect") >= 3


def test_pin_rm_of_unpinned_cid_fails_clearly(ipfs: IpfsClient) -> None:
    with pytest.raises(IpfsApiError, match="not pinned"):
        ipfs.pin_rm(MISSING)


def test_missing_object_is_not_found_without_hanging(ipfs: IpfsClient) -> None:
    t0 = time.monotonic()
    with pytest.raises(IpfsNotFound, match="could not find"):
        ipfs.cat(MISSING)
    with pytest.raises(IpfsNotFound):
        ipfs.pin_add(MISSING)
    assert time.monotonic() - t0 < 5


def test_oversize_object_rejected_while_streaming(ipfs: IpfsClient) -> None:
    data = os.urandom(3_000_000)
    cid = ipfs.add(data)
    with pytest.raises(ObjectTooLarge, match="over the limit of 1000000"):
        ipfs.cat(cid, max_bytes=1_000_000)
    assert ipfs.cat(cid, max_bytes=len(data)) == data


def test_oversize_detected_from_stream_even_without_size_header(ipfs_node: LocalIpfsNode) -> None:
    """A node that announces no size is still cut off once max_bytes have arrived."""
    data = os.urandom(2_000_000)
    with IpfsClient(ipfs_node.api_url) as client:
        cid = client.add(data)

    def strip_header(response: httpx.Response) -> None:
        response.headers.pop("X-Content-Length", None)

    received: list[int] = []
    http = httpx.Client(base_url=f"{ipfs_node.api_url}/api/v0", event_hooks={"response": [strip_header]})
    client = IpfsClient(ipfs_node.api_url)
    client._http = http
    original = httpx.Response.iter_bytes

    def counting(self: httpx.Response, chunk_size: int | None = None):  # type: ignore[no-untyped-def]
        for piece in original(self, chunk_size):
            received.append(len(piece))
            yield piece

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(httpx.Response, "iter_bytes", counting)
        with pytest.raises(ObjectTooLarge, match="stopped reading"):
            client.cat(cid, max_bytes=100_000)
    assert 100_000 < sum(received) < 1_000_000
    client.close()


def test_id_and_version(ipfs: IpfsClient) -> None:
    assert ipfs.id().id.startswith("Qm") or ipfs.id().id.startswith("12D3")
    version = ipfs.version()
    assert version.version == "0.22.0"
    assert version.repo


def test_node_rejects_profiles_it_cannot_produce(ipfs_node: LocalIpfsNode) -> None:
    with (
        IpfsClient(ipfs_node.api_url, profile=CIDV1_RAW_LEAVES) as client,
        pytest.raises(IpfsApiError, match="cid-version must be 0"),
    ):
        client.add(b"x")


def test_node_refuses_get_and_browser_origins(ipfs_node: LocalIpfsNode) -> None:
    assert httpx.get(f"{ipfs_node.api_url}/api/v0/version").status_code == 405
    r = httpx.post(f"{ipfs_node.api_url}/api/v0/version", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_errors_retry_then_raise() -> None:
    client = IpfsClient(f"http://127.0.0.1:{_closed_port()}", retries=2, backoff=0.01, timeout=2)
    t0 = time.monotonic()
    with pytest.raises(IpfsConnectionError, match="after 3 attempts"):
        client.version()
    assert time.monotonic() - t0 < 3


def test_normalize_api_url() -> None:
    assert normalize_api_url("/ip4/127.0.0.1/tcp/5001") == "http://127.0.0.1:5001"
    assert normalize_api_url("http://127.0.0.1:5001/api/v0/") == "http://127.0.0.1:5001"
    assert normalize_api_url("/dns/localhost/tcp/5001/http") == "http://localhost:5001"
    with pytest.raises(ValueError, match="not an IPFS RPC URL"):
        normalize_api_url("ftp://x")


def test_restart_keeps_pinned_data(tmp_path: Path) -> None:
    data = os.urandom(400_000)
    with LocalIpfsNode(tmp_path / "repo") as node, node.client() as client:
        cid = client.add(data)
    with LocalIpfsNode(tmp_path / "repo") as node, node.client() as client:
        assert client.is_pinned(cid)
        assert client.cat(cid) == data


def test_second_node_on_same_repo_fails_clearly(ipfs_node: LocalIpfsNode) -> None:
    with pytest.raises(NodeStartError, match="exited"):
        LocalIpfsNode(ipfs_node.repo, state_file=ipfs_node.repo.parent / "other.json", startup_timeout=30).start()


def test_up_status_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MARKETPLACE_IPFS_API", raising=False)
    home = tmp_path / "home"
    assert not node_status(home).running
    status = node_up(home)
    try:
        assert status.running and status.api_url
        assert node_up(home).pid == status.pid  # idempotent
        assert resolve_api_url(home=home) == status.api_url
        with IpfsClient(resolve_api_url(home=home)) as client:
            assert client.version().version == "0.22.0"
    finally:
        assert node_down(home)
    assert not node_status(home).running
    assert read_state(home) is None
    assert not node_down(home)
    with pytest.raises(NodeStartError, match="MARKETPLACE_IPFS_API"):
        resolve_api_url(home=home)
    monkeypatch.setenv("MARKETPLACE_IPFS_API", "http://127.0.0.1:5001")
    assert resolve_api_url(home=home) == "http://127.0.0.1:5001"


def test_node_config_dials_nobody(ipfs_node: LocalIpfsNode) -> None:
    """The embedded library always builds an online node: the repo config must keep it to loopback."""
    import json

    cfg = json.loads((ipfs_node.repo / "config").read_text())
    assert cfg["Bootstrap"] == []
    assert cfg["Discovery"]["MDNS"]["Enabled"] is False
    assert cfg["Addresses"]["Swarm"] == ["/ip4/127.0.0.1/tcp/0"]
    assert cfg["Swarm"]["DisableNatPortMap"] is True
    assert "/ip4/128.0.0.0/ipcidr/1" in cfg["Swarm"]["AddrFilters"]
    peers = ipfs_node.repo / "kubo.log"
    assert peers.exists()
