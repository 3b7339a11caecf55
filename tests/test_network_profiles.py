"""Network profiles (``marketplace network init|show|list``) against a real anvil with chain id 5555, and the
README's "Public testnet, step by step" commands checked against the CLI's own ``--help``."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketplace.adapters.chain.accounts import create_keystore
from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts, free_port
from marketplace.adapters.chain.config import ProfileError, network_profile_path, resolve_network
from marketplace.cli.main import app

CHAIN_ID = 5555
PASSWORD = "profile-test-pw"
README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Public testnet, step by step"
ENV = (
    "MARKETPLACE_RPC_URL",
    "MARKETPLACE_CHAIN_ID",
    "MARKETPLACE_KEYSTORE",
    "MARKETPLACE_PRIVATE_KEY",
    "MARKETPLACE_LOG_BLOCK_RANGE",
    "MARKETPLACE_NETWORKS_DIR",
)


def run(runner: CliRunner, *args: str, code: int = 0) -> str:
    """Invoke the CLI; assert the exit code; return the output with whitespace collapsed."""
    result = runner.invoke(app, list(args), terminal_width=200)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.split())


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fresh state and deployments folders, and none of the MARKETPLACE_* network variables set."""
    monkeypatch.setenv("MARKETPLACE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MARKETPLACE_DEPLOYMENTS_DIR", str(tmp_path / "deployments"))
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def node() -> Iterator[AnvilNode]:
    """A real anvil with chain id 5555 standing in for a public testnet."""
    with AnvilNode(chain_id=CHAIN_ID) as anvil:
        yield anvil


@pytest.fixture
def keystore(dirs: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A keystore of dev account 0 (funded on anvil); its password only in the environment."""
    path = dirs / "owner.json"
    create_keystore(path, PASSWORD, dev_accounts(1)[0].key, kdf_iterations=2)
    monkeypatch.setenv("MARKETPLACE_KEYSTORE_PASSWORD", PASSWORD)
    return path


def test_init_writes_profile_without_secrets(dirs: Path, node: AnvilNode, keystore: Path) -> None:
    runner = CliRunner()
    out = run(
        runner,
        *("network", "init", "testnet", "--rpc-url", node.url, "--keystore", str(keystore)),
        *("--log-block-range", "2000", "--explorer", "https://explorer.example"),
    )
    assert f"chain id {CHAIN_ID}" in out
    path = network_profile_path("testnet")
    assert path.parent == dirs / "state" / "networks"
    data = json.loads(path.read_text())
    assert data["rpc_url"] == node.url and data["chain_id"] == CHAIN_ID
    assert data["keystore"] == str(keystore.resolve()) and data["log_block_range"] == 2000
    assert path.stat().st_mode & 0o077 == 0
    text = path.read_text().lower()
    assert PASSWORD.lower() not in text
    assert dev_accounts(1)[0].key.hex().lower().removeprefix("0x") not in text
    assert "crypto" not in text and "ciphertext" not in text  # the keystore's contents are not copied

    profile = resolve_network("testnet")
    assert (profile.rpc_url, profile.chain_id, profile.keystore) == (node.url, CHAIN_ID, keystore.resolve())
    assert profile.log_block_range == 2000 and profile.explorer_url == "https://explorer.example"
    assert profile.account().address == dev_accounts(1)[0].address

    # refuses to overwrite without --force, then overwrites with it
    assert "--force" in run(runner, "network", "init", "testnet", "--rpc-url", node.url, code=1)
    run(runner, "network", "init", "testnet", "--rpc-url", node.url, "--chain-id", str(CHAIN_ID), "--force")
    assert json.loads(path.read_text())["keystore"] is None

    listed = run(runner, "network", "list")
    assert "testnet" in listed and str(CHAIN_ID) in listed and "local" in listed
    shown = run(runner, "network", "show", "testnet")
    assert str(path) in shown and node.url in shown


def test_init_errors_are_one_line(dirs: Path, node: AnvilNode) -> None:
    runner = CliRunner()
    wrong = run(runner, "network", "init", "t", "--rpc-url", node.url, "--chain-id", "11155111", code=1)
    assert wrong.startswith("error:") and "expected 11155111" in wrong and str(CHAIN_ID) in wrong
    dead = run(runner, "network", "init", "t", "--rpc-url", f"http://127.0.0.1:{free_port()}", code=1)
    assert dead.startswith("error:") and "unreachable" in dead
    assert "--rpc-url" in run(runner, "network", "init", "t", "--rpc-url", "not-a-url", code=1)
    missing = run(runner, "network", "init", "t", "--rpc-url", node.url, "--keystore", str(dirs / "nope.json"), code=1)
    assert "does not exist" in missing
    assert "local" in run(runner, "network", "init", "local", "--rpc-url", node.url, code=1)
    assert "bad network name" in run(runner, "network", "init", "../x", "--rpc-url", node.url, code=1)
    assert not (dirs / "state" / "networks" / "t.json").exists()
    assert "network init nope" in run(runner, "network", "show", "nope", code=1)


def test_profile_refuses_unknown_fields(dirs: Path) -> None:
    path = network_profile_path("leaky")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"name": "leaky", "rpc_url": "http://x", "chain_id": 1, "private_key": "0x01"}))
    with pytest.raises(ProfileError, match="private_key"):
        resolve_network("leaky")


def test_environment_overrides_profile(
    dirs: Path, node: AnvilNode, keystore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(CliRunner(), "network", "init", "testnet", "--rpc-url", node.url, "--keystore", str(keystore))
    monkeypatch.setenv("MARKETPLACE_RPC_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("MARKETPLACE_CHAIN_ID", "77")
    monkeypatch.setenv("MARKETPLACE_LOG_BLOCK_RANGE", "500")
    other = dirs / "other.json"
    create_keystore(other, PASSWORD, dev_accounts(2)[1].key, kdf_iterations=2)
    monkeypatch.setenv("MARKETPLACE_KEYSTORE", str(other))
    profile = resolve_network("testnet")
    assert (profile.rpc_url, profile.chain_id, profile.log_block_range) == ("http://127.0.0.1:9", 77, 500)
    assert profile.account().address == dev_accounts(2)[1].address
    monkeypatch.delenv("MARKETPLACE_KEYSTORE")
    monkeypatch.setenv("MARKETPLACE_PRIVATE_KEY", dev_accounts(3)[2].key.hex())
    assert resolve_network("testnet").account().address == dev_accounts(3)[2].address
    shown = run(CliRunner(), "network", "show", "testnet")
    assert "overridden by the environment: rpc url, chain id" in shown


def test_cli_works_from_the_profile_alone(dirs: Path, node: AnvilNode, keystore: Path) -> None:
    runner = CliRunner()
    run(runner, "network", "init", "testnet", "--rpc-url", node.url, "--keystore", str(keystore))
    deployed = run(runner, "deploy", "--network", "testnet")
    assert f"chain {CHAIN_ID}" in deployed
    assert (dirs / "deployments" / "testnet.json").is_file()
    listed = run(runner, "project", "list", "--network", "testnet")
    assert "error" not in listed.lower()


# ------------------------------------------------------------------ the README walk-through
def _section_commands() -> list[list[str]]:
    """Every ``marketplace ...`` command line of the README's walk-through (continuations joined)."""
    text = README.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end > 0 else None]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("marketplace "):
                commands.append(shlex.split(line)[1:])
    return commands


def _flags(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", help_text))


def test_readme_walkthrough_commands_exist() -> None:
    commands = _section_commands()
    assert len(commands) >= 12
    runner = CliRunner()
    seen = set()
    for words in commands:
        sub = [words[0]]
        result = runner.invoke(app, [*sub, "--help"], terminal_width=400)
        assert result.exit_code == 0, (words, result.output)
        # a group's --help lists its commands: descend while the next word is one
        while "Commands" in result.output and len(sub) < len(words) and not words[len(sub)].startswith("-"):
            sub.append(words[len(sub)])
            result = runner.invoke(app, [*sub, "--help"], terminal_width=400)
            assert result.exit_code == 0, (words, result.output)
        known = _flags(result.output)
        for word in words:
            if word.startswith("--"):
                flag = word.split("=", 1)[0]
                assert flag in known, f"`marketplace {' '.join(sub)}` has no {flag}"
        seen.add(" ".join(sub))
    for expected in ("network init", "deploy", "zk setup", "zk deploy", "zk info", "model init", "project create"):
        assert expected in seen
    for expected in ("trainer join", "trainer run", "aggregator run", "verify", "audit", "web"):
        assert expected in seen
