"""pytest fixtures for the storage layer: one real local IPFS node per test session.

Use from conftest (``pytest_plugins = ["tests.ipfs_fixtures"]``) or import the fixtures in a test
module. Either way the node is started once per session (per xdist worker): the fixtures share
a module-level node, so several modules importing them still start one node.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from marketplace.adapters.ipfs.ipfs import IpfsClient  # noqa: E402
from marketplace.adapters.ipfs.manager import LocalIpfsNode  # noqa: E402

_shared: dict[str, LocalIpfsNode] = {}


@pytest.fixture(scope="session")
def ipfs_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalIpfsNode]:
    """The project's local IPFS node (embedded Kubo, offline) on a free port, for the session."""
    node = _shared.get("node")
    if node is None or node.process is None:
        node = LocalIpfsNode(tmp_path_factory.mktemp("ipfs") / "repo")
        node.start()
        _shared["node"] = node
    yield node
    node.stop()
    _shared.pop("node", None)


@pytest.fixture
def ipfs(ipfs_node: LocalIpfsNode) -> Iterator[IpfsClient]:
    """A Kubo RPC client of the session's node."""
    with IpfsClient(ipfs_node.api_url, timeout=30.0, retries=2, backoff=0.05) as client:
        yield client
