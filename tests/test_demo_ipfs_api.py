"""``marketplace demo`` uses the IPFS node it is given (``--ipfs-api``, else ``$MARKETPLACE_IPFS_API``)
instead of starting its own: the models it reports are pinned on that node afterwards, and a node that
does not answer is an error before anything else happens."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketplace.adapters.chain.anvil import free_port
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.manager import LocalIpfsNode

ROOT = Path(__file__).resolve().parent.parent
DEMO = ["demo", "--no-zk", "--no-web", "--honest", "--trainers", "2", "--rounds", "1", "--epochs", "1"]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[IpfsClient]:
    """A fresh IPFS node of the test's own (nothing pinned yet)."""
    with LocalIpfsNode(tmp_path / "repo") as local, local.client() as client:
        assert client.pin_ls() == {}
        yield client


def demo(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "MARKETPLACE_IPFS_API"}
    return subprocess.run(
        [sys.executable, "-m", "marketplace.cli.main", *DEMO, "--plot", str(tmp_path / "demo.png"), *args],
        cwd=ROOT,
        env={**base, **(env or {}), "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("how", ["--ipfs-api", "MARKETPLACE_IPFS_API"])
def test_the_demo_pins_its_models_on_the_given_node(tmp_path: Path, node: IpfsClient, how: str) -> None:
    if how == "--ipfs-api":
        done = demo(tmp_path, "--ipfs-api", node.api_url)
    else:
        done = demo(tmp_path, env={"MARKETPLACE_IPFS_API": node.api_url})
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert f"IPFS API {node.api_url}" in out and "IPFS node" not in out, out  # it started none of its own
    model = re.search(r"model (Qm\w+)…", out)
    assert model, out
    pinned = node.pin_ls()
    assert any(cid.startswith(model.group(1)) for cid in pinned), (model.group(1), pinned)
    assert len(pinned) >= 4, pinned  # the initial model, two updates and the round's model at least


def test_a_node_that_does_not_answer_is_an_error(tmp_path: Path) -> None:
    done = demo(tmp_path, "--ipfs-api", f"http://127.0.0.1:{free_port()}")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert out.startswith("error: IPFS version: cannot reach http://127.0.0.1:") and "Traceback" not in out, out
