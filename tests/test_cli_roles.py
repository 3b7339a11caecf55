"""Trainers, an aggregator and the owner's reference node as separate processes, driven only through the command
line, on a real local chain and IPFS node: the way people would run them on their own machines."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketplace.adapters.chain.config import resolve_network
from marketplace.adapters.chain.deploy import connect
from marketplace.cli.main import app
from tests.web_fixtures import API_KEY, PASSWORD, KeyedRpcProxy

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    values = {
        "MARKETPLACE_STATE_DIR": str(tmp_path / "state"),
        "MARKETPLACE_DEPLOYMENTS_DIR": str(tmp_path / "deployments"),
        "MARKETPLACE_IPFS_HOME": str(tmp_path / "ipfs"),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MARKETPLACE_PRIVATE_KEY", raising=False)
    monkeypatch.delenv("MARKETPLACE_IPFS_API", raising=False)
    runner = CliRunner()
    assert runner.invoke(app, ["chain", "up", "--port", "0"]).exit_code == 0
    assert runner.invoke(app, ["ipfs", "up"]).exit_code == 0
    yield {**os.environ, **values}
    runner.invoke(app, ["ipfs", "down"])
    runner.invoke(app, ["chain", "down"])


def cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args), terminal_width=200)
    assert result.exit_code == code, result.output
    return result.output


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "marketplace.cli.main", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[str], seconds: float = 180.0) -> None:
    """Waits until something listens on 127.0.0.1:``port`` (``process`` is starting it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port} after {seconds} s")


def test_trainers_and_aggregator_processes_complete_a_job(env: dict[str, str], tmp_path: Path) -> None:
    cli("deploy", "--challenge-period", "0")
    cli("data", "partition", "--trainers", "3", "--out", str(tmp_path / "shards"))
    assert "mlp: 2,410 parameters" in cli("model", "list")
    cli("model", "init", "--model", "resnet", code=1)
    cid = cli("model", "init", "--model", "mlp").strip()  # the owner pins initial weights
    out = cli(
        "project", "create", "--initial-cid", cid, "--rounds", "2", "--min-trainers", "3", "--max-trainers", "3",
        "--aggregator", "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",  # dev account 2
    )  # fmt: skip
    assert "project 1 created" in out
    out = cli("trainer", "join", "1", "--dev-account", "3")
    assert "joined project 1" in out and "reliability 50%" in out
    cli("trainer", "join", "1", "--dev-account", "3", code=1)  # twice: AlreadyJoined
    for i in (4, 5):
        cli("trainer", "join", "1", "--dev-account", str(i))

    port = free_port()
    aggregator = spawn(
        env, "aggregator", "run", "--project", "1", "--dev-account", "2", "--poll", "0.5",
        "--eval-data", str(tmp_path / "shards" / "test.npz"), "--commit-inbox", f"127.0.0.1:{port}",
    )  # fmt: skip
    wait_for_port(port, aggregator)  # its commit inbox is up: a trainer that found none would commit itself
    inbox = f"http://127.0.0.1:{port}/commits"
    trainers = [  # trainers 0 and 1 hand their commits and openings to the aggregator; trainer 2 does both itself
        spawn(env, "trainer", "run", "1", "--data", str(tmp_path / "shards" / f"trainer_{i:03d}.npz"),
              "--dev-account", str(3 + i), "--poll", "0.5",
              *(["--reveal-via", "self"] if i == 2 else ["--commit-via", inbox]))
        for i in range(3)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=240)[0] for p in [aggregator, *trainers]]
    assert [p.returncode for p in [aggregator, *trainers]] == [0, 0, 0, 0], outputs
    assert "round 0 finalized" in outputs[0] and "round 1 finalized" in outputs[0]
    # one commitBatch and one revealBatch per round for the two trainers that hand theirs over; the third does both
    assert f"commit inbox: {inbox}" in " ".join(outputs[0].split()), outputs[0]
    assert " ".join(outputs[0].split()).count("committed 2 trainer(s) in one batch") == 2, outputs[0]
    assert " ".join(outputs[0].split()).count("revealed 2 trainer(s) in one batch") == 2, outputs[0]
    for i, o in enumerate(outputs[1:]):  # each trainer commits, then is revealed, each round (gas and timings)
        for round_ in (0, 1):
            assert f"round {round_}: committed the seal of " in o and f"round {round_}: revealed " in o, o
        assert o.index("round 1: committed") < o.index("round 1: revealed") < o.index("project ended"), o
        revealed = "commit + reveal gas" if i == 2 else "by the aggregator's batch (no reveal gas"
        assert revealed in " ".join(o.split()) and "seal " in o, o  # (rich wraps long lines)
        committed_by_batch = " ".join(o.split()).count("by the aggregator's batch, no gas")
        assert committed_by_batch == (0 if i == 2 else 2), o
    out = cli("project", "show", "1")
    assert "finished" in out
    out = cli("audit", "1", "1")
    assert "round 1 checks out: 0 invalid update(s)" in out
    cli("audit", "1", "5", code=1)  # not finalized
    out = cli("verify", "1", "0")
    assert "valid" in out and "gas" in out and "ipfs://" in out
    out = cli("project", "withdraw", "1")  # dev account 0 is the owner: the rounding dust of the payouts
    assert "withdrew" in out and "wei" in out
    out = cli("project", "withdraw", "1", code=1)  # nothing left
    assert "NothingToWithdraw" in out


def test_the_owners_reference_process_commits_and_reveals_and_the_round_is_scored_with_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    """``project reference run``: only the owner may run it; started before the trainers, it commits the round's
    reference, reveals it once every trainer committed, and the aggregator finalizes the round with it (the
    verifier gets its commitment: ``verify`` holds, the audit agrees)."""
    cli("deploy", "--challenge-period", "0")
    shards = tmp_path / "shards"
    cli("data", "partition", "--trainers", "3", "--out", str(shards))
    cid = cli("model", "init", "--model", "mlp").strip()
    cli(
        "project", "create", "--initial-cid", cid, "--rounds", "1", "--min-trainers", "3", "--max-trainers", "3",
        "--aggregator", "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",  # dev account 2; the owner is dev account 0
    )  # fmt: skip
    validation = str(shards / "validation.npz")
    out = cli("project", "reference", "run", "1", "--data", validation, "--dev-account", "3", code=1)
    assert "is not the owner of project 1" in " ".join(out.split()), out
    assert "not training" in cli("project", "reference", "run", "1", "--data", validation, "--once")
    for i in (3, 4, 5):
        cli("trainer", "join", "1", "--dev-account", str(i))  # the third join starts training

    owner = spawn(env, "project", "reference", "run", "1", "--data", validation, "--poll", "0.5")
    market = connect("local", read_only=True)
    deadline = time.monotonic() + 240
    while not market.reference_of(1, 0).committed:  # the trainers' commits would close the commit phase early
        assert owner.poll() is None and time.monotonic() < deadline, owner.communicate()[0]
        time.sleep(0.5)
    aggregator = spawn(env, "aggregator", "run", "--project", "1", "--dev-account", "2", "--poll", "0.5")
    trainers = [
        spawn(env, "trainer", "run", "1", "--data", str(shards / f"trainer_{i:03d}.npz"), "--dev-account", str(3 + i),
              "--poll", "0.5")
        for i in range(3)
    ]  # fmt: skip
    outputs = [" ".join(p.communicate(timeout=300)[0].split()) for p in [owner, aggregator, *trainers]]
    assert [p.returncode for p in [owner, aggregator, *trainers]] == [0] * 5, outputs
    reference = market.reference_of(1, 0)
    assert reference.revealed
    commitment = f"commitment 0x{reference.commitment.hex()}"
    assert f"round 0: committed the reference ({commitment}" in outputs[0], outputs[0]
    assert f"round 0: revealed the reference ({commitment}" in outputs[0] and "gas " in outputs[0], outputs[0]
    assert outputs[0].index("committed the reference") < outputs[0].index("revealed the reference"), outputs[0]
    assert "project 1 ended" in outputs[0], outputs[0]
    assert "round 0 finalized" in outputs[1] and "the owner's reference was revealed and" in outputs[1], outputs[1]
    out = cli("verify", "1", "0")  # the recorded inputs carry the reference's commitment: the proof holds with it
    assert "valid" in out, out
    assert "round 0 checks out" in cli("audit", "1", "0")


def test_audit_and_verify_never_print_the_rpc_credentials(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider's RPC URL carries its API key (and sometimes a password): when the provider refuses the
    key, ``marketplace audit`` and ``verify`` say which endpoint failed without printing the credentials."""
    cli("deploy", "--challenge-period", "0")
    deployments = Path(env["MARKETPLACE_DEPLOYMENTS_DIR"])
    shutil.copy(deployments / "local.json", deployments / "remote.json")  # the same chain, through a provider
    proxy = KeyedRpcProxy(resolve_network("local").rpc_url)
    try:
        monkeypatch.setenv("MARKETPLACE_RPC_URL", proxy.url)
        monkeypatch.setenv("MARKETPLACE_CHAIN_ID", "31337")
        proxy.revoke()  # the provider answers eth_chainId (the client connects), then refuses the key
        for command in ("audit", "verify"):
            out = cli(command, "1", "0", "--network", "remote", code=1)
            assert f"127.0.0.1:{proxy.port}/v2/***" in out and "refused" in out, out
            assert API_KEY not in out and PASSWORD not in out, out
    finally:
        proxy.close()
