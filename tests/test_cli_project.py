"""The owner's command line against a real local chain: chain up, deploy, create, list, show."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketplace.cli.main import app

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("MARKETPLACE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MARKETPLACE_DEPLOYMENTS_DIR", str(tmp_path / "deployments"))
    monkeypatch.delenv("MARKETPLACE_PRIVATE_KEY", raising=False)
    runner = CliRunner()
    up = runner.invoke(app, ["chain", "up", "--port", "0"])
    assert up.exit_code == 0, up.output
    yield runner
    runner.invoke(app, ["chain", "down"])


def run(cli: CliRunner, *args: str, code: int = 0) -> str:
    result = cli.invoke(app, list(args), terminal_width=200)
    assert result.exit_code == code, result.output
    return result.output


def test_owner_flow_through_the_cli(cli: CliRunner) -> None:
    out = run(cli, "project", "list", code=1)
    assert "run `marketplace deploy --network local` first" in out
    out = run(cli, "deploy")
    assert "TrainingMarket" in out and "TestRoundVerifier" in out
    out = run(cli, "project", "create", "--initial-cid", CID, "--budget", "2.5", "--fee", "0.5", "--rounds", "4")
    assert "project 1 created, 3 ETH escrowed" in out
    out = run(cli, "project", "list")
    assert "open" in out and "2.5 ETH" in out and "0/4" in out
    out = run(cli, "project", "show", "1")
    assert "project 1" in out and CID in out
    out = run(cli, "project", "show", "7", code=1)
    assert "UnknownProject(projectId=7)" in out


def test_bad_input_gets_clear_messages(cli: CliRunner) -> None:
    run(cli, "deploy")
    out = run(cli, "project", "create", "--initial-cid", CID, "--min-trainers", "5", "--max-trainers", "3", code=1)
    assert "min_trainers (5) exceeds max_trainers (3)" in out
    out = run(cli, "project", "create", "--initial-cid", CID, "--budget", "lots", code=2)
    assert "not an ETH amount" in out
    out = run(cli, "project", "withdraw", "1", code=1)
    assert "UnknownProject" in out


def test_zk_verifier_deployed_approved_and_usable_by_a_project(cli: CliRunner) -> None:
    run(cli, "deploy")
    out = run(cli, "zk", "setup", "--trainers", "4", "--sketch", "32")
    assert "development SRS" in out and "logrows 15" in out
    out = run(cli, "zk", "deploy", "--trainers", "4", "--sketch", "32")
    assert "approved" in out
    from marketplace.adapters.chain.config import read_deployment

    adapter = read_deployment("local").address("EzklRoundVerifier-n4-k32")
    out = run(cli, "project", "create", "--initial-cid", CID, "--max-trainers", "4", "--verifier", adapter)
    assert "project 1 created" in out
