"""Event logs are read in pages from the deployment block (issue 13): behind an RPC proxy that refuses
``eth_getLogs`` over more than 10,000 blocks, as public providers do, a whole job runs on a chain more than
20,000 blocks past the deployment: trainers, aggregator, ``verify_round``, ``audit_round``, the CLI's
``project show``, ``verify`` and ``audit``, and the web index and verify endpoint. The pager itself: exact
ranges, halving on "range too large", and a one-line typed error when logs cannot be read at all.

``anvil_mine`` costs time linear in the chain's height per block (measured on anvil 1.7.1: 1,000 blocks in
0.8 s at height 0, 5 s at height 2,600), so 20,000 mined blocks would take minutes; :func:`jump` instead
reloads anvil's state (``anvil_dumpState`` / ``anvil_loadState``) with a head block that many numbers higher.
The numbers in between hold no block (anvil answers logs over them with nothing), which is all a provider's
range limit looks at.
"""

from __future__ import annotations

import copy
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hexbytes import HexBytes
from typer.testing import CliRunner

from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
from marketplace.adapters.chain.client import (
    DEFAULT_LOG_BLOCK_RANGE,
    LOG_BLOCK_RANGE_ENV,
    ChainClient,
    LogsUnavailable,
    RangeTooLarge,
    paged_logs,
    says_range_too_large,
)
from marketplace.adapters.chain.config import ConfigError, resolve_network, write_deployment
from marketplace.adapters.chain.deploy import MARKET, TEST_VERIFIER, deploy_marketplace, market_client
from marketplace.adapters.chain.market import MarketClient, ProjectConfig, ProjectStatus
from marketplace.adapters.ipfs.manager import LocalIpfsNode
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.cli.main import app
from marketplace.demo.job import LocalStack
from marketplace.fl.data import load_npz, partition_digits
from marketplace.fl.models import build_model
from marketplace.roles.aggregator import AggregatorNode
from marketplace.roles.audit import audit_round
from marketplace.roles.trainer import Committed, LocalTraining, Submitted, TrainerNode, TrainingSettings
from marketplace.roles.verify import verify_round
from marketplace.web.main import create_app
from marketplace.web.settings import WebSettings
from tests.disputes import step_through_disputes
from tests.test_faults import FaultyRpcProxy

ETH = 10**18
LIMIT = 10_000  # the proxy's largest eth_getLogs range, in blocks
N_TRAINERS = 3


# ------------------------------------------------------------------ the pager, alone
def pages(start: int, end: int, size: int) -> list[tuple[int, int]]:
    """The ranges :func:`paged_logs` asks for when nothing is refused (and checks it returns every block)."""
    asked: list[tuple[int, int]] = []

    def fetch(lo: int, hi: int) -> list[int]:
        asked.append((lo, hi))
        return list(range(lo, hi + 1))

    blocks, kept = paged_logs(fetch, start, end, size)
    assert blocks == list(range(start, end + 1)) and kept == size
    return asked


def test_pages_cover_the_blocks_exactly_once_from_the_first() -> None:
    assert pages(1_234, 31_000, 10_000) == [(1_234, 11_233), (11_234, 21_233), (21_234, 31_000)]
    assert pages(0, 9_999, 10_000) == [(0, 9_999)]
    assert pages(0, 10_000, 10_000) == [(0, 9_999), (10_000, 10_000)]
    assert pages(5, 25, 10) == [(5, 14), (15, 24), (25, 25)]
    assert pages(7, 7, 1) == [(7, 7)]
    assert pages(8, 7, 10) == []
    with pytest.raises(ValueError):
        pages(0, 10, 0)


def test_a_range_too_large_is_halved_and_the_smaller_size_kept() -> None:
    """A provider that takes at most 3,000 blocks: 10,000 and 5,000 are refused, 2,500 works and stays."""
    asked: list[tuple[int, int, bool]] = []

    def fetch(lo: int, hi: int) -> list[int]:
        refused = hi - lo + 1 > 3_000
        asked.append((lo, hi, refused))
        if refused:
            raise RangeTooLarge("query exceeds max block range 3000", lo, hi)
        return list(range(lo, hi + 1))

    blocks, size = paged_logs(fetch, 100, 7_599, 10_000)
    assert asked == [
        (100, 7_599, True),  # the whole 7,500 blocks
        (100, 3_849, True),  # halved: 3,750
        (100, 1_974, False),  # halved again: 1,875, kept from now on
        (1_975, 3_849, False),
        (3_850, 5_724, False),
        (5_725, 7_599, False),
    ]
    assert blocks == list(range(100, 7_600)) and size == 1_875


def test_a_single_block_too_large_is_an_error() -> None:
    def fetch(lo: int, hi: int) -> list[int]:
        raise RangeTooLarge("response size exceeded", lo, hi)

    with pytest.raises(RangeTooLarge) as caught:
        paged_logs(fetch, 50, 60, 4)
    assert (caught.value.lo, caught.value.hi) == (50, 50)


@pytest.mark.parametrize(
    ("answer", "smaller_may_work"),
    [
        ("query exceeds max block range 10000", True),
        ("eth_getLogs is limited to a 10,000 range", True),
        ("block range is too wide", True),
        ("query returned more than 10000 results. Try with this block range [0x1, 0x2]", True),
        ("Log response size exceeded.", True),
        ("Block range too large", True),
        ("rate limit exceeded: too many requests", False),
        ("the method eth_getLogs does not exist/is not available", False),
        ("invalid argument 0: hex string without 0x prefix", False),
    ],
)
def test_provider_answers_that_ask_for_a_smaller_range(answer: str, smaller_may_work: bool) -> None:
    assert says_range_too_large(answer) is smaller_may_work


def test_the_range_is_a_network_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETPLACE_RPC_URL", "http://127.0.0.1:9")
    monkeypatch.delenv(LOG_BLOCK_RANGE_ENV, raising=False)
    assert resolve_network("remote").log_block_range == DEFAULT_LOG_BLOCK_RANGE == 10_000
    monkeypatch.setenv(LOG_BLOCK_RANGE_ENV, "2000")
    assert resolve_network("remote").log_block_range == 2_000
    assert resolve_network("local").log_block_range == 2_000
    assert ChainClient("http://127.0.0.1:9").log_block_range == 2_000
    for bad in ("0", "-5", "lots"):
        monkeypatch.setenv(LOG_BLOCK_RANGE_ENV, bad)
        with pytest.raises(ConfigError, match=LOG_BLOCK_RANGE_ENV):
            resolve_network("remote")


# ------------------------------------------------------------------ a provider's range limit, in front of anvil
class RangeLimitedProxy(FaultyRpcProxy):
    """:class:`FaultyRpcProxy` that answers ``eth_getLogs`` over more than ``limit`` blocks with the JSON-RPC
    error public providers give, and every ``eth_getLogs`` with ``refusal`` while that is set. ``ranges``
    lists the (from, to, refused) of every ``eth_getLogs`` it saw (tags resolved against the node)."""

    def __init__(self, upstream: str, limit: int = LIMIT) -> None:
        super().__init__(upstream)  # (its handler turns Nagle off: answers are not held for a delayed ACK)
        self.limit = limit
        self.refusal: str | None = None
        self.ranges: list[tuple[int, int, bool]] = []

    def _forward(self, body: bytes) -> tuple[int, bytes]:
        message = json.loads(body)
        if isinstance(message, dict) and message.get("method") == "eth_getLogs":
            (params,) = message["params"]
            if "blockHash" not in params:
                lo = self._number(params.get("fromBlock", "latest"))
                hi = self._number(params.get("toBlock", "latest"))
                too_large = hi - lo + 1 > self.limit
                with self._lock:
                    self.ranges.append((lo, hi, too_large or self.refusal is not None))
                if self.refusal is not None or too_large:
                    text = self.refusal or f"query exceeds max block range {self.limit}"
                    error = {"jsonrpc": "2.0", "id": message.get("id"), "error": {"code": -32602, "message": text}}
                    return 200, json.dumps(error).encode()
        return super()._forward(body)

    def _number(self, block: str) -> int:
        if block == "earliest":
            return 0
        if block in ("latest", "pending", "safe", "finalized"):
            ask = {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}
            _, answer = super()._forward(json.dumps(ask).encode())
            return int(json.loads(answer)["result"], 16)
        return int(block, 16)


def jump(chain: ChainClient, blocks: int) -> None:
    """Makes anvil's head ``blocks`` numbers higher (state, blocks and receipts kept; see the module docstring)."""
    state = json.loads(gzip.decompress(bytes.fromhex(chain._request("anvil_dumpState", [])[2:])))
    latest = chain.get_block("latest")
    head = int(latest["number"]) + blocks
    block = copy.deepcopy(next(b for b in state["blocks"] if int(b["header"]["number"], 16) == latest["number"]))
    block["transactions"] = []
    block["header"].update(
        number=hex(head), parentHash=HexBytes(latest["hash"]).to_0x_hex(), timestamp=hex(latest["timestamp"] + 1)
    )
    state["blocks"].append(block)
    state["best_block_number"] = head
    state["block"]["number"] = hex(head)
    assert chain._request("anvil_loadState", ["0x" + gzip.compress(json.dumps(state).encode()).hex()]) is True
    assert chain.block_number() == head


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Anvil and IPFS, the market deployed at block 5,000 or so, then 25,000 block numbers further."""
    accounts = dev_accounts(3 + N_TRAINERS)
    with AnvilNode() as anvil, LocalIpfsNode(tmp_path_factory.mktemp("paged") / "ipfs") as ipfs:
        admin = ChainClient(anvil.url, accounts[0])
        for account in accounts:
            admin.set_balance(account.address, 1_000 * ETH)
        jump(admin, 5_000)
        deployment = deploy_marketplace(admin)
        jump(admin, 25_000)
        market = market_client(admin, deployment)
        yield LocalStack(anvil.url, ipfs.api_url, market, deployment, ModelStore(ipfs.client()), accounts)


@pytest.fixture
def proxy(stack: LocalStack) -> Iterator[RangeLimitedProxy]:
    p = RangeLimitedProxy(stack.chain_url)
    yield p
    p.close()


def proxied(stack: LocalStack, proxy: RangeLimitedProxy, account: int | None = None) -> MarketClient:
    """The stack's market through ``proxy``, from the deployment record, as ``stack.accounts[account]``."""
    signer = stack.accounts[account] if account is not None else None
    chain = ChainClient(proxy.url, signer, expected_chain_id=stack.admin.chain.chain_id)
    return market_client(chain, stack.deployment)


def job_config(stack: LocalStack, aggregator: str, rounds: int = 2) -> ProjectConfig:
    """A job of :data:`N_TRAINERS` trainers on the test verifier, started by the last join."""
    return ProjectConfig(
        aggregator=aggregator,
        verifier=stack.deployment.address(TEST_VERIFIER),
        reward_budget=ETH,
        aggregator_fee=ETH // 10,
        stake=ETH // 100,
        rounds=rounds,
        min_trainers=N_TRAINERS,
        max_trainers=N_TRAINERS,
        model_name="mlp",
        initial_model_cid=stack.store.put_tensors(build_model("mlp", seed=1).state_dict(), {"kind": "model"}),
    )


def test_a_whole_job_behind_a_provider_refusing_wide_log_ranges(
    stack: LocalStack, proxy: RangeLimitedProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy_block = stack.deployment.contracts[MARKET].block_number
    head = stack.admin.chain.block_number()
    assert deploy_block > 5_000 and head - deploy_block > 20_000
    # What every query did before: one request from block 0. The provider refuses it.
    reader = proxied(stack, proxy)
    with pytest.raises(Exception, match="exceeds max block range"):
        reader.chain.w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "address": reader.market.address})

    owner, aggregator = proxied(stack, proxy, 1), proxied(stack, proxy, 2)
    pid = owner.create_project(job_config(stack, aggregator.address))
    shards = partition_digits(N_TRAINERS, "iid", seed=3, out_dir=tmp_path)
    settings = TrainingSettings(epochs=1)
    trainers = [
        TrainerNode(proxied(stack, proxy, 3 + i), stack.store, LocalTraining(load_npz(shards[i]), settings))
        for i in range(N_TRAINERS)
    ]
    trainers[0].join(pid)
    jump(stack.admin.chain, 12_000)  # the project's own history spans more than the provider's range too
    for t in trainers[1:]:
        t.join(pid)  # the last one starts training
    node = AggregatorNode(aggregator, stack.store)
    for round_ in range(2):
        assert all(isinstance(t.step(pid), Committed) for t in trainers)
        assert all(isinstance(t.step(pid), Submitted) for t in trainers)
        report = step_through_disputes(node, pid, trainers)
        assert report is not None and report.round == round_ and report.tx_hash
    assert reader.get_project(pid).status is ProjectStatus.FINISHED
    assert [r.round for r in reader.finalized_rounds(pid)] == [0, 1]
    for round_ in range(2):
        check = verify_round(reader, pid, round_, stack.store)
        assert check.valid and check.document_agrees, check
        assert audit_round(reader, stack.store, pid, round_).agrees

    # The command line, on a network profile whose RPC is the provider.
    monkeypatch.setenv("MARKETPLACE_DEPLOYMENTS_DIR", str(tmp_path / "deployments"))
    monkeypatch.setenv("MARKETPLACE_RPC_URL", proxy.url)
    monkeypatch.setenv("MARKETPLACE_CHAIN_ID", str(stack.deployment.chain_id))
    monkeypatch.delenv(LOG_BLOCK_RANGE_ENV, raising=False)
    write_deployment(stack.deployment.model_copy(update={"network": "paged"}))
    cli = CliRunner()
    for command, says in (
        (["project", "show", str(pid)], "Finalized rounds"),
        (["verify", str(pid), "1", "--ipfs-api", stack.ipfs_api], "valid"),
        (["audit", str(pid), "1", "--ipfs-api", stack.ipfs_api], "round 1 checks out"),
    ):
        result = cli.invoke(app, [*command, "--network", "paged"], terminal_width=300)
        assert result.exit_code == 0 and says in result.output, (command, result.output, result.exception)
    # The roles and commands read from the deployment block on, within the range; none was refused.
    asked = proxy.ranges[1:]  # after the refused request above
    assert len(asked) > 50 and min(lo for lo, _, _ in asked) == deploy_block
    assert all(hi - lo + 1 <= LIMIT and not refused for lo, hi, refused in asked)

    # The web app: its index syncs through the provider, its verify button asks the verifier.
    web = create_app(
        WebSettings(
            rpc_url=proxy.url,
            deployment=stack.deployment,
            db_path=tmp_path / "index.sqlite",
            ipfs_api=stack.ipfs_api,
            sync_interval=0,
        )
    )
    with TestClient(web, raise_server_exceptions=False) as client:
        detail = client.get(f"/api/projects/{pid}")
        assert detail.status_code == 200, detail.text
        assert [r["round"] for r in detail.json()["rounds"]] == [0, 1]
        for round_ in range(2):
            verified = client.post(f"/api/projects/{pid}/rounds/{round_}/verify")
            assert verified.status_code == 200 and verified.json()["valid"], verified.text

    # So did the web app (its index reads from the block before the first contract's).
    assert all(hi - lo + 1 <= LIMIT and not refused for lo, hi, refused in proxy.ranges[1 + len(asked) :])


def test_a_client_configured_wider_than_the_provider_halves_until_it_is_served(
    stack: LocalStack, proxy: RangeLimitedProxy
) -> None:
    direct = market_client(stack.admin.chain.with_account(None), stack.deployment)
    wide = market_client(ChainClient(proxy.url, log_block_range=40_000), stack.deployment)
    start, head = wide.deploy_block, wide.chain.block_number()
    expected = direct.chain.get_logs(direct.market, "VerifierApprovalChanged", start)
    assert expected  # the test verifier's approval, at deployment
    assert wide.chain.get_logs(wide.market, "VerifierApprovalChanged", start) == expected
    sizes = [min(40_000, head - start + 1)]
    while sizes[-1] > LIMIT:
        sizes.append(-(-sizes[-1] // 2))
    refused = [(lo, hi) for lo, hi, no in proxy.ranges if no]
    assert refused == [(start, start + size - 1) for size in sizes[:-1]]  # each refused size halved, from `start`
    assert wide.chain.log_block_range == sizes[-1] <= LIMIT  # kept
    assert all(hi - lo + 1 <= sizes[-1] for lo, hi, no in proxy.ranges if not no)
    # The next query starts at the size that worked: nothing refused.
    before = len(refused)
    wide.chain.get_logs(wide.market, "ProjectCreated", start)
    assert len([r for r in proxy.ranges if r[2]]) == before


def test_a_project_is_read_from_its_creation_block_found_again_after_a_reorg(
    stack: LocalStack, proxy: RangeLimitedProxy
) -> None:
    """Once a client found where a project was created, its queries start there (one request here, not one per
    10,000 blocks since the deployment); when the chain no longer has that block (here: ``evm_revert``, then a
    project of the same id created 5 blocks later), the client finds the new creation block."""
    admin = stack.admin.chain
    owner = proxied(stack, proxy, 1)
    config = job_config(stack, stack.accounts[2].address, rounds=1)
    snapshot = admin.snapshot()  # the module's chain is left as it was found
    try:
        pid = owner.create_project(config)
        created = admin.block_number()
        assert owner.first_block(pid) == created
        asked = len(proxy.ranges)
        assert owner.finalized_rounds(pid) == [] and owner.submissions(pid) == []
        assert [(lo, hi) for lo, hi, _ in proxy.ranges[asked:]] == [(created, created)] * 2
        admin.revert(snapshot)
        snapshot = admin.snapshot()
        admin.mine(5)
        assert owner.create_project(config) == pid
        assert owner.first_block(pid) == created + 5
    finally:
        admin.revert(snapshot)


def test_logs_that_cannot_be_read_are_a_one_line_error(
    stack: LocalStack, proxy: RangeLimitedProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    market = proxied(stack, proxy)
    proxy.refusal = "the method eth_getLogs does not exist/is not available"
    with pytest.raises(LogsUnavailable) as caught:
        market.finalized_rounds(1)
    message = str(caught.value)
    assert message.startswith(f"RPC {proxy.url} refused to read ProjectCreated logs of {market.market.address} in ")
    assert f"blocks {market.deploy_block}.." in message and message.endswith(": " + proxy.refusal)
    assert "\n" not in message

    # A refusal about the range that no single block satisfies: halved down to one block, then the error.
    proxy.refusal = "query exceeds max block range 0"
    asked = len(proxy.ranges)
    with pytest.raises(LogsUnavailable, match=rf"in block {market.deploy_block}: query exceeds max block range 0$"):
        market.chain.get_logs(market.market, "ProjectCreated", market.deploy_block)
    assert len(proxy.ranges) - asked == 15  # 10,000 blocks, halved 14 times to 1

    monkeypatch.setenv("MARKETPLACE_DEPLOYMENTS_DIR", str(tmp_path / "deployments"))
    monkeypatch.setenv("MARKETPLACE_RPC_URL", proxy.url)
    monkeypatch.delenv(LOG_BLOCK_RANGE_ENV, raising=False)
    write_deployment(stack.deployment.model_copy(update={"network": "refusing"}))
    result = CliRunner().invoke(app, ["verify", "1", "0", "--network", "refusing"], terminal_width=300)
    assert result.exit_code == 1 and "error: RPC" in result.output and "refused to read" in result.output, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
