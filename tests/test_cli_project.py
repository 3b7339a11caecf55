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
    assert "each round: commit 10 min, reveal 10 min, aggregation 10 min" in out and "commit phase" not in out
    assert "withdrawals open when the project is finished or cancelled" in " ".join(out.split())
    assert "0 rounds finalized, 0 rejections announced" in " ".join(out.split())
    run(cli, "project", "cancel", "1")
    out = " ".join(run(cli, "project", "show", "1").split())
    assert "withdrawable: owner (also the aggregator) 3 ETH" in out, out
    out = run(cli, "project", "show", "7", code=1)
    assert "UnknownProject(projectId=7)" in out


def test_a_round_has_a_commit_and_a_reveal_period_and_show_says_which_is_open(cli: CliRunner) -> None:
    """``project create --reveal-period`` sets how long trainers have to reveal what they committed; ``project
    show`` prints the round's periods and, while training, the open round's phase with its deadlines."""
    run(cli, "deploy")
    help_text = run(cli, "project", "create", "--help")
    assert "--reveal-period" in help_text and "reveal" in help_text and "commit" in help_text
    out = run(
        cli, "project", "create", "--initial-cid", CID, "--min-trainers", "1", "--max-trainers", "1",
        "--submission-period", "1200", "--reveal-period", "5400", "--aggregation-period", "7200",
    )  # fmt: skip
    assert "project 1 created" in out
    out = run(cli, "project", "show", "1")
    assert "each round: commit 20 min, reveal 90 min, aggregation 2 h" in out
    run(cli, "trainer", "join", "1", "--dev-account", "3")  # the project is full: training starts
    out = " ".join(run(cli, "project", "show", "1").split())  # (rich wraps lines at 80 columns)
    assert "round 0: Commit phase: trainers commit sealed updates until" in out
    assert "(0/1 committed)" in out and "(0/0 revealed)" in out and "aggregation until" in out
    out = run(cli, "project", "create", "--initial-cid", CID, "--reveal-period", "0", code=2)
    assert "--reveal-period" in out


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
    # Without --verifier: the recorded zk verifier that fits, not the test verifier; too large a project is refused.
    out = " ".join(run(cli, "project", "create", "--initial-cid", CID, "--max-trainers", "3").split())
    assert f"verifier {adapter} (from deployments/local.json" in out and "project 2 created" in out
    out = " ".join(run(cli, "project", "create", "--initial-cid", CID, "--max-trainers", "5").split())
    test_verifier = read_deployment("local").address("TestRoundVerifier")  # on the local chain it fits any size
    assert f"verifier {test_verifier}" in out and "project 3 created" in out
