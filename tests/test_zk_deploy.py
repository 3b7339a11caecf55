"""``marketplace zk deploy`` is safe (through the CLI, against real anvils): permissions are checked
before anything is deployed, there is no default circuit size off the local chain, a development SRS
goes elsewhere only with ``--allow-dev-srs`` and a loud warning, and the deployment record keeps
every verifier ever deployed (size, rule version, SRS hash, address, approval, and the circuit's split
verifier and helper rounds go through, with their code hashes); ``zk info`` checks those codes against the
keys; ``zk revoke``; ``--reusable`` verifies rounds with the reusable verifier instead.

Deploys the 4 x 32 circuit's verifier with the development keys of tests/test_zk_onchain.py (set up
once and cached in .cache/zk/dev-srs, about a minute the first time)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.deploy import HALO2_VERIFIER, ZkVerifierRecord, read_record
from marketplace.adapters.ezkl import dedicated
from marketplace.adapters.ezkl.dedicated import code_hash
from marketplace.adapters.ezkl.keys import setup
from marketplace.cli.main import app
from marketplace.rule import RULE_VERSION

CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
TESTNET_ID = 11155111  # Sepolia's chain id: not the local chain


def run(cli: CliRunner, *args: str, code: int = 0) -> str:
    result = cli.invoke(app, list(args), terminal_width=200)
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())  # rich wraps long lines


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MARKETPLACE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MARKETPLACE_DEPLOYMENTS_DIR", str(tmp_path / "deployments"))
    monkeypatch.delenv("MARKETPLACE_PRIVATE_KEY", raising=False)
    monkeypatch.delenv("MARKETPLACE_KEYSTORE", raising=False)
    return tmp_path


@pytest.fixture
def local(dirs: Path) -> Iterator[CliRunner]:
    """A local chain (id 31337, ``marketplace chain up``) with the market deployed."""
    runner = CliRunner()
    run(runner, "chain", "up", "--port", "0")
    run(runner, "deploy")
    yield runner
    runner.invoke(app, ["chain", "down"])


@pytest.fixture
def testnet(dirs: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CliRunner, ChainClient]]:
    """An anvil with chain id 11155111 as network ``testnet`` (env profile), the market deployed by dev
    account 0 (its owner)."""
    with AnvilNode(chain_id=TESTNET_ID) as node:
        monkeypatch.setenv("MARKETPLACE_RPC_URL", node.url)
        monkeypatch.setenv("MARKETPLACE_CHAIN_ID", str(TESTNET_ID))
        monkeypatch.setenv("MARKETPLACE_PRIVATE_KEY", dev_accounts(1)[0].key.hex())
        runner = CliRunner()
        out = run(runner, "deploy", "--network", "testnet")
        assert "TestRoundVerifier" not in out
        yield runner, ChainClient(node.url, expected_chain_id=TESTNET_ID)


@pytest.fixture(scope="module")
def dev_keys_4x32() -> None:
    setup(4, 32)  # before the CLI runs, so that a command's duration is not a setup's


def _nonce(chain: ChainClient, index: int) -> int:
    return int(chain.w3.eth.get_transaction_count(dev_accounts(index + 1)[index].address))


def _verifiers(network: str) -> list[ZkVerifierRecord]:
    record = read_record(network)
    assert record is not None
    return record.zk_verifiers


def test_size_options_are_checked_before_anything(local: CliRunner) -> None:
    assert "a size is NxK" in run(local, "zk", "deploy", "--size", "4by32", code=2)
    assert "N in 2..64" in run(local, "zk", "deploy", "--size", "1x32", code=2)
    assert "give the circuit size once, not --size and --trainers" in run(
        local, "zk", "deploy", "--size", "4x32", "--trainers", "4", code=1
    )
    assert "--sketch 64 contradicts --size 4x32" in run(
        local, "zk", "setup", "--size", "4x32", "--sketch", "64", code=1
    )
    assert "no circuit for 65 trainers (at most 64)" in run(local, "zk", "deploy", "--max-trainers", "65", code=1)
    assert _verifiers("local") == []


def test_every_deployed_verifier_is_recorded_and_the_owner_only_deploys(local: CliRunner, dev_keys_4x32: None) -> None:
    chain = ChainClient(_local_url(), expected_chain_id=31337)
    out = run(local, "zk", "deploy", "--size", "4x32", "--dev-account", "3", code=1)
    stranger = dev_accounts(4)[3].address
    assert f"{stranger} is not the owner of market" in out and "Nothing was deployed" in out
    assert _nonce(chain, 3) == 0 and _verifiers("local") == []

    out = run(local, "zk", "deploy", "--size", "4x32")
    assert "development SRS (generated here): fine on the local chain" in out and "approved" in out
    [first] = _verifiers("local")
    keys = setup(4, 32)
    assert (first.size, first.rule_version, first.approved) == ("4x32", RULE_VERSION, True)
    assert (first.srs_sha256, first.development_srs) == (keys.srs_sha256, True)
    record = read_record("local")
    assert record is not None and record.address("EzklRoundVerifier-n4-k32") == first.address
    assert record.address(HALO2_VERIFIER) == first.halo2_verifier
    assert first.round_verifier and first.quotient_helper  # rounds go through the circuit's split verifier
    assert first.round_verifier_codehash == code_hash(chain.code(first.round_verifier))
    assert first.quotient_helper_codehash == code_hash(chain.code(first.quotient_helper))
    assert f"rounds go through the circuit's own verifier {first.round_verifier}" in out

    out = run(local, "zk", "deploy", "--trainers", "4")  # the same keys again: nothing to do
    assert f"verifier {first.address} (4x32, rule {RULE_VERSION}) with these keys is already deployed" in out
    assert len(_verifiers("local")) == 1

    out = run(local, "zk", "deploy", "--max-trainers", "3", "--again")  # circuit_for(3) is 4 x 32
    first_again, second = _verifiers("local")
    assert first_again == first and second.address != first.address and second.approved
    assert second.halo2_verifier == first.halo2_verifier  # the recorded Halo2 verifier is reused
    assert f"still approved: earlier verifier {first.address}" in out
    assert read_record("local").address("EzklRoundVerifier-n4-k32") == second.address  # type: ignore[union-attr]

    out = run(local, "zk", "info")
    for v in (first, second):
        assert f"verifier {v.address}: ezkl-halo2-kzg, size 4x32, rule {RULE_VERSION} (this code's), approved" in out
    assert out.count(f"recorded: DEVELOPMENT SRS (sha256 {keys.srs_sha256}") == 2
    assert out.count(f"round circuit match: {keys.root}") == 2 and "none match" not in out
    assert out.count("round verifier and helper: the codes compiled from these keys") == 2
    assert f"rounds: the circuit's own verifier {first.round_verifier} (quotient helper {first.quotient_helper})" in out
    assert second.round_verifier != first.round_verifier  # each verifier gets its own pair
    assert second.quotient_helper_codehash == first.quotient_helper_codehash  # the same helper code

    assert "is not the owner" in run(local, "zk", "revoke", first.address, "--dev-account", "3", code=1)
    assert "no longer approved for new projects (its record updated)" in run(local, "zk", "revoke", first.address)
    first_revoked, second_kept = _verifiers("local")
    assert (first_revoked.address, first_revoked.approved, second_kept) == (first.address, False, second)
    out = run(local, "zk", "info", "--verifier", first.address)
    assert (
        f"verifier {first.address}: ezkl-halo2-kzg, size 4x32, rule {RULE_VERSION} (this code's), not approved" in out
    )
    out = run(
        local, "project", "create", "--initial-cid", CID, "--max-trainers", "4", "--verifier", first.address, code=1
    )
    assert "VerifierNotApproved" in out

    # --reusable: rounds through the reusable verifier under the VKA (not a twin of the split ones).
    out = run(local, "zk", "deploy", "--size", "4x32", "--reusable")
    assert "rounds go through the reusable Halo2 verifier under the circuit's VKA" in out
    third = _verifiers("local")[-1]
    assert third.approved and third.round_verifier is None and third.quotient_helper is None
    out = run(local, "zk", "info", "--verifier", third.address)
    assert "rounds: the reusable Halo2 verifier under the circuit's VKA" in out and "codes compiled" not in out


def test_a_size_whose_split_does_not_fit_falls_back_to_the_reusable_verifier(
    local: CliRunner, dev_keys_4x32: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the 64 x 32 circuit does (its helper is 26,649 bytes): here the limit is lowered under the 4 x 32
    helper's 19,342 bytes. `zk deploy` says so, deploys the reusable path and records no round verifier."""
    monkeypatch.setattr(dedicated, "CODE_SIZE_LIMIT", 15_000)
    out = run(local, "zk", "deploy", "--size", "4x32")
    assert "the split verifier does not fit in 15,000 bytes per contract: Halo2QuotientEval" in out
    assert "rounds will go through the reusable verifier under the VKA" in out
    [entry] = _verifiers("local")
    assert entry.approved and entry.round_verifier is None and entry.quotient_helper is None
    assert "rounds go through the reusable Halo2 verifier under the circuit's VKA" in out


def test_off_the_local_chain_size_srs_and_owner_are_required_first(
    testnet: tuple[CliRunner, ChainClient], dev_keys_4x32: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli, chain = testnet
    owner_nonce = _nonce(chain, 0)
    out = run(cli, "zk", "deploy", "--network", "testnet", code=1)
    assert "give the verifier's circuit size: --size NxK" in out and "no default off the local chain" in out
    out = run(cli, "zk", "deploy", "--network", "testnet", "--size", "4x32", code=1)
    assert f"refusing a verifier made with a DEVELOPMENT SRS on chain {TESTNET_ID}" in out
    assert "Pass --srs FILE with a ceremony SRS" in out and "Nothing was deployed" in out
    assert _nonce(chain, 0) == owner_nonce and _verifiers("testnet") == []

    monkeypatch.setenv("MARKETPLACE_PRIVATE_KEY", dev_accounts(2)[1].key.hex())  # not the market's owner
    balance = chain.balance(dev_accounts(2)[1].address)
    out = run(cli, "zk", "deploy", "--network", "testnet", "--size", "4x32", "--allow-dev-srs", code=1)
    assert "is not the owner of market" in out
    assert _nonce(chain, 1) == 0 and chain.balance(dev_accounts(2)[1].address) == balance

    monkeypatch.setenv("MARKETPLACE_PRIVATE_KEY", dev_accounts(1)[0].key.hex())
    out = run(cli, "zk", "deploy", "--network", "testnet", "--max-trainers", "4", "--allow-dev-srs")
    assert f"WARNING: deploying a verifier made with a DEVELOPMENT SRS on chain {TESTNET_ID}" in out
    [entry] = _verifiers("testnet")
    assert (entry.size, entry.development_srs, entry.approved) == ("4x32", True, True)
    out = run(cli, "zk", "info", "--network", "testnet")
    assert f"verifier {entry.address}: ezkl-halo2-kzg, size 4x32" in out and "round circuit match" in out


def _local_url() -> str:
    from marketplace.adapters.chain.config import resolve_network

    return resolve_network("local").rpc_url
