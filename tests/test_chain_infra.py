"""Chain infrastructure against a real anvil: compile, deploy, events, reverts, accounts, CLI."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import function_abi_to_4byte_selector
from typer.testing import CliRunner
from web3.contract import Contract

from marketplace.adapters.chain.accounts import AccountError, create_keystore, load_account
from marketplace.adapters.chain.anvil import AnvilError, AnvilNode, dev_accounts, free_port, pid_alive
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import Artifact, Artifacts, CompilationError, compile_contracts
from marketplace.adapters.chain.config import (
    ConfigError,
    DeployedContract,
    Deployment,
    read_deployment,
    resolve_network,
)
from marketplace.adapters.chain.config import write_deployment as save_deployment
from marketplace.adapters.chain.deploy import REGISTRY
from marketplace.adapters.chain.errors import ChainIdMismatch, ContractRevert, RpcUnavailable
from marketplace.adapters.toolchain import install_svm_solc, solc_binary
from marketplace.cli.main import app

FIXTURES = Path(__file__).parent / "fixtures" / "contracts"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Artifacts, Path, float]:
    """Probe.sol compiled fresh into a temporary artifacts file (with the compile time)."""
    out = tmp_path_factory.mktemp("build") / "probe.json"
    started = time.perf_counter()
    artifacts = compile_contracts([FIXTURES], out)
    return artifacts, out, time.perf_counter() - started


@pytest.fixture(scope="module")
def probe_artifact(compiled: tuple[Artifacts, Path, float]) -> Artifact:
    return compiled[0]["Probe"]


@pytest.fixture
def probe(chain: ChainClient, probe_artifact: Artifact) -> Contract:
    return chain.deploy(probe_artifact, 5)


# ------------------------------------------------------------------ toolchain
def test_solc_wrapper_answers_version() -> None:
    result = subprocess.run([str(solc_binary()), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "Version: 0.8.28" in result.stdout


def test_compile_outputs_and_cache(compiled: tuple[Artifacts, Path, float]) -> None:
    artifacts, out, first_duration = compiled
    probe = artifacts["Probe"]
    assert probe.source.endswith("tests/fixtures/contracts/Probe.sol")
    assert 0 < probe.deployed_size < 24_576 and probe.is_deployable
    assert any(e["type"] == "error" and e["name"] == "SubmissionClosed" for e in probe.abi)
    assert "Ownable" not in artifacts  # imported library contracts are not ours
    mtime = out.stat().st_mtime_ns
    started = time.perf_counter()
    again = compile_contracts([FIXTURES], out)
    duration = time.perf_counter() - started
    assert again.cached and again == artifacts
    assert out.stat().st_mtime_ns == mtime
    assert duration < first_duration / 5


def test_compile_error_and_svm_wrapper(tmp_path: Path) -> None:
    broken = tmp_path / "src" / "Broken.sol"
    broken.parent.mkdir()
    broken.write_text("pragma solidity ^0.8.20; contract Broken { function f() public { undefinedThing(); } }")
    with pytest.raises(CompilationError) as info:
        compile_contracts([broken.parent], tmp_path / "out.json")
    assert any("undefinedThing" in m for m in info.value.messages)
    assert not (tmp_path / "out.json").exists()
    wrapper = install_svm_solc("0.8.20", home=tmp_path)
    assert wrapper == tmp_path / ".svm" / "0.8.20" / "solc-0.8.20"
    assert "SOLC_SHIM_PACKAGE=solc-0.8.20" in wrapper.read_text() and wrapper.stat().st_mode & 0o111


# --------------------------------------------------------------- transactions
def test_deploy_payable_and_events(chain: ChainClient, probe: Contract) -> None:
    receipt = chain.transact(probe.functions.deposit("hello"), value=1_000)
    (event,) = chain.events(receipt, probe, "Deposited")
    assert event["args"] == {"from": chain.address, "amount": 1_000, "note": "hello"}
    assert event["event"] == "Deposited" and event["block_number"] == receipt["blockNumber"]
    assert event["tx_hash"] == receipt["transactionHash"].to_0x_hex()
    assert chain.call(probe.functions.total()) == 1_005
    assert chain.balance(probe.address) == 1_000
    logs = chain.get_logs(probe, "Deposited", from_block=receipt["blockNumber"])
    assert [log["args"]["note"] for log in logs] == ["hello"]
    assert logs[0]["block_number"] == receipt["blockNumber"]


def test_strings_that_are_not_utf8_decode_with_replacement_characters(chain: ChainClient, probe: Contract) -> None:
    """A Solidity ``string`` is any bytes: someone who sends raw bytes that are not UTF-8 (web3 itself only
    encodes text) must not make reading the event raise. The client reads them with U+FFFD; encoding stays
    web3's strict one (a ``bytes32`` of 31 bytes is refused before anything is sent)."""
    abi = next(a for a in probe.abi if a.get("name") == "deposit")
    account = chain.account
    tx: dict[str, Any] = {
        "from": account.address, "to": probe.address, "value": 7, "chainId": chain.chain_id, "gas": 200_000,
        "nonce": chain.w3.eth.get_transaction_count(account.address),
        "data": function_abi_to_4byte_selector(abi) + encode(["bytes"], [b"caf\xc3( \xff ok"]),
        **chain.fees(),
    }  # fmt: skip
    receipt = chain.wait(chain.w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction))
    assert receipt["status"] == 1
    (event,) = chain.events(receipt, probe, "Deposited")
    assert event["args"]["note"] == "caf\ufffd( \ufffd ok" and event["args"]["amount"] == 7
    logs = chain.get_logs(probe, "Deposited", from_block=receipt["blockNumber"])
    assert [log["args"]["note"] for log in logs] == ["caf\ufffd( \ufffd ok"]
    assert chain.w3.is_encodable("string", "café") and not chain.w3.is_encodable("bytes32", b"\x01" * 31)


def test_quick_transactions_from_threads(chain: ChainClient, probe: Contract) -> None:
    with ThreadPoolExecutor(4) as pool:
        receipts = list(pool.map(lambda i: chain.transact(probe.functions.deposit(f"n{i}"), value=1), range(8)))
    assert all(r["status"] == 1 for r in receipts)
    assert chain.call(probe.functions.total()) == 5 + 8


def test_custom_error_with_args(chain: ChainClient, probe: Contract) -> None:
    with pytest.raises(ContractRevert) as info:
        chain.call(probe.functions.failCustom(1, 2))
    err = info.value
    assert err.name == "SubmissionClosed"
    assert err.args["projectId"] == 1 and err.args["round"] == 2
    assert err.args["deadline"] == chain.timestamp() or err.args["deadline"] > 0
    assert str(err).startswith("SubmissionClosed(projectId=1, round=2, deadline=")
    assert err.raw[:4] == err.selector and len(err.raw) == 4 + 3 * 32


def test_require_string_and_panics(chain: ChainClient, probe: Contract) -> None:
    with pytest.raises(ContractRevert) as info:
        chain.call(probe.functions.failRequire(3))
    assert info.value.name == "Error" and info.value.message == "x too small"
    with pytest.raises(ContractRevert) as info:
        chain.call(probe.functions.failPanic(3))
    assert info.value.name == "Panic" and info.value.args["code"] == 0x32
    with pytest.raises(ContractRevert) as info:
        chain.call(probe.functions.failDivide(1, 0))
    assert info.value.name == "Panic" and info.value.args["code"] == 0x12
    with pytest.raises(ContractRevert) as info:
        chain.call(probe.functions.failBare())
    assert info.value.name == "Revert" and info.value.raw == b""


def test_revert_during_gas_estimation(anvil: AnvilNode, probe: Contract, probe_artifact: Artifact) -> None:
    stranger = ChainClient(anvil.url, dev_accounts(2)[1])
    contract = stranger.contract(probe_artifact, probe.address)
    with pytest.raises(ContractRevert) as info:
        stranger.transact(contract.functions.setTotal(7))
    assert info.value.name == "Unauthorized"
    assert info.value.args == {"caller": stranger.address}
    with pytest.raises(ContractRevert) as info:  # error inherited from OpenZeppelin's Ownable
        stranger.transact(contract.functions.onlyOwnerAction())
    assert str(info.value) == f"OwnableUnauthorizedAccount(account={stranger.address})"


def test_mined_transaction_revert_is_decoded(chain: ChainClient, probe: Contract) -> None:
    with pytest.raises(ContractRevert) as info:
        chain.transact(probe.functions.failRequire(1), gas=100_000)  # no estimate: mined, status 0
    assert info.value.message == "x too small"
    assert info.value.tx_hash is not None
    chain.transact(probe.functions.deposit("after"))  # nonce bookkeeping still right


def test_an_access_list_is_declared_only_where_it_makes_the_transaction_cheaper(chain: ChainClient) -> None:
    """``transact(access_list=True)`` (what the aggregator's batches and finalization use): a call that touches many
    cold slots once, here a reliability registry recording 24 trainers, declares them (EIP-2930) and costs less than
    the same call on a twin registry without, with the same effects; a call that touches one slot of the contract
    it calls (whose declaration, 2,400 gas, buys nothing: it is warm) is sent without a list."""
    artifact = compile_contracts()[REGISTRY]
    me = chain.account.address
    registries = [chain.deploy(artifact, me) for _ in range(2)]
    authorized = [chain.transact(r.functions.setMarketAuthorization(me, True), access_list=True) for r in registries]
    assert all(chain.get_transaction(a["transactionHash"]).get("accessList", []) == [] for a in authorized)
    trainers = [Account.create().address for _ in range(24)]
    owner, aggregator = "0x" + "11" * 20, "0x" + "22" * 20

    def record(registry: Contract, access_list: bool) -> Any:
        fn = registry.functions.recordRound(1, 0, owner, aggregator, trainers, [0] * 24, [10**15] * 24)
        return chain.transact(fn, access_list=access_list)

    plain, listed = record(registries[0], False), record(registries[1], True)
    declared = chain.get_transaction(listed["transactionHash"])["accessList"]
    assert chain.get_transaction(plain["transactionHash"]).get("accessList", []) == []
    assert sum(len(entry["storageKeys"]) for entry in declared) >= 24
    assert listed["gasUsed"] < plain["gasUsed"] - 24 * 100
    assert [chain.call(registries[1].functions.trackRecordOf(t)) for t in trainers] == [
        chain.call(registries[0].functions.trackRecordOf(t)) for t in trainers
    ]


def test_snapshot_revert_and_time(chain: ChainClient, probe: Contract) -> None:
    snap = chain.snapshot()
    chain.transact(probe.functions.deposit("x"), value=10)
    assert chain.call(probe.functions.total()) == 15
    chain.revert(snap)
    assert chain.call(probe.functions.total()) == 5
    chain.transact(probe.functions.deposit("y"), value=1)  # nonce resynced after revert
    before = chain.timestamp()
    chain.increase_time(3_600)
    assert chain.timestamp() >= before + 3_600
    chain.set_balance(probe.address, 42)
    assert chain.balance(probe.address) == 42


def test_chain_id_mismatch(anvil: AnvilNode) -> None:
    with pytest.raises(ChainIdMismatch) as info:
        ChainClient(anvil.url, expected_chain_id=1)
    assert (info.value.expected, info.value.actual) == (1, 31337)
    assert "1" in str(info.value) and "31337" in str(info.value)


def test_unreachable_rpc_is_reported() -> None:
    with pytest.raises(RpcUnavailable, match="unreachable"):
        ChainClient(f"http://127.0.0.1:{free_port()}", expected_chain_id=31337, retries=2, backoff=0.01)


def test_anvil_refuses_busy_port(anvil: AnvilNode) -> None:
    with pytest.raises(AnvilError, match="already answers"):
        AnvilNode(anvil.port).start()


# ------------------------------------------------------------------- accounts
def test_keystore_round_trip_never_leaks_key(tmp_path: Path, anvil: AnvilNode, monkeypatch: pytest.MonkeyPatch) -> None:
    account = Account.create()
    key_hex = account.key.hex().removeprefix("0x")
    path = tmp_path / "keystore.json"
    assert create_keystore(path, "s3cret", account.key, kdf_iterations=2**10) == account.address
    assert path.stat().st_mode & 0o777 == 0o600
    assert key_hex not in path.read_text()
    loaded = load_account(path, "s3cret")
    assert loaded.address == account.address

    monkeypatch.setenv("MARKETPLACE_KEYSTORE_PASSWORD", "s3cret")
    assert load_account(path).address == account.address
    with pytest.raises(AccountError) as bad_password:
        load_account(path, "wrong")
    monkeypatch.delenv("MARKETPLACE_KEYSTORE_PASSWORD")

    monkeypatch.delenv("MARKETPLACE_KEYSTORE", raising=False)
    monkeypatch.setenv("MARKETPLACE_PRIVATE_KEY", "0x" + key_hex)
    assert load_account(None).address == account.address
    monkeypatch.setenv("MARKETPLACE_PRIVATE_KEY", "0x" + key_hex[:-2])
    with pytest.raises(AccountError) as malformed:
        load_account(None)
    monkeypatch.delenv("MARKETPLACE_PRIVATE_KEY")
    with pytest.raises(AccountError, match="no signing account"):
        load_account(None)

    client = ChainClient(anvil.url, loaded)
    texts = [
        repr(loaded),
        str(loaded),
        repr(client),
        str(client),
        str(bad_password.value),
        repr(bad_password.value),
        str(malformed.value),
        repr(malformed.value),
    ]
    for exc in (bad_password.value, malformed.value):
        assert exc.__cause__ is None and exc.__suppress_context__
    for text in texts:
        assert key_hex[:-2] not in text and key_hex not in text


# ------------------------------------------------------------------ config
def test_network_profiles_and_deployments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETPLACE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MARKETPLACE_DEPLOYMENTS_DIR", str(tmp_path / "deployments"))
    monkeypatch.delenv("MARKETPLACE_RPC_URL", raising=False)
    local = resolve_network("local")
    assert (local.rpc_url, local.chain_id, local.is_local) == ("http://127.0.0.1:8545", 31337, True)
    assert local.account().address == dev_accounts(1)[0].address
    with pytest.raises(ConfigError, match="MARKETPLACE_RPC_URL"):
        resolve_network("testnet")
    monkeypatch.setenv("MARKETPLACE_RPC_URL", "https://rpc.example")
    monkeypatch.setenv("MARKETPLACE_CHAIN_ID", "11155111")
    testnet = resolve_network("testnet")
    assert (testnet.rpc_url, testnet.chain_id, testnet.is_local) == ("https://rpc.example", 11155111, False)

    record = Deployment(
        network="local",
        chain_id=31337,
        contracts={"Probe": DeployedContract(address="0x" + "11" * 20, block_number=3)},
    )
    path = save_deployment(record)
    assert path == tmp_path / "deployments" / "local.json"
    assert read_deployment("local") == record
    assert read_deployment("nowhere") is None


# ----------------------------------------------------------------------- CLI
def test_cli_chain_up_status_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETPLACE_STATE_DIR", str(tmp_path))
    runner = CliRunner()
    up = runner.invoke(app, ["chain", "up", "--port", "0"])
    assert up.exit_code == 0, up.output
    profile = resolve_network("local")
    pid = int((tmp_path / "chain.json").read_text().split('"pid": ')[1].split(",")[0])
    try:
        assert pid_alive(pid)
        assert profile.rpc_url != "http://127.0.0.1:8545"
        assert ChainClient(profile.rpc_url, expected_chain_id=31337).block_number() >= 0
        status = runner.invoke(app, ["chain", "status"])
        assert status.exit_code == 0 and "up" in status.output
        again = runner.invoke(app, ["chain", "up", "--port", "0"])
        assert again.exit_code == 1 and "already running" in again.output
    finally:
        down = runner.invoke(app, ["chain", "down"])
    assert down.exit_code == 0 and "stopped" in down.output
    assert not pid_alive(pid)
    assert not (tmp_path / "chain.json").exists()
    assert runner.invoke(app, ["chain", "status"]).exit_code == 1
