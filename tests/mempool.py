"""A mempool the tests control, for front-running attacks: anvil with automine off and a fee-ordered
pool (``--order fees``), transactions sent without waiting, pending transactions read the way a
mempool watcher reads them, and blocks mined on demand; and a trainer's market client that only
broadcasts its commit and reveal (:class:`BroadcastingMarket`), so that a real ``TrainerNode``'s
transactions sit in that pool for a watcher to copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract.contract import ContractFunction

from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.deploy import TEST_VERIFIER, deploy_marketplace, market_client
from marketplace.adapters.chain.market import MarketClient, ProjectConfig

GWEI = 10**9


@dataclass(frozen=True)
class Pending:
    """A transaction seen in the mempool."""

    hash: str
    sender: str
    to: str
    input: bytes
    tip: int


class Mempool:
    """Sends, watches and mines on an anvil whose automine is off."""

    def __init__(self, chain: ChainClient) -> None:
        self.chain = chain
        self.w3: Web3 = chain.w3

    def automine(self, on: bool) -> None:
        self.w3.provider.make_request("evm_setAutomine", [on])  # type: ignore[arg-type]

    def send(self, account: LocalAccount, fn: ContractFunction, *, tip_gwei: int, gas: int = 3_000_000,
             value: int = 0) -> str:  # fmt: skip
        """Signs and broadcasts ``fn`` from ``account`` with a priority fee of ``tip_gwei``; does not wait."""
        return self.send_raw(account, {"to": fn.address, "data": ChainClient.calldata(fn), "value": value},
                             tip_gwei=tip_gwei, gas=gas)  # fmt: skip

    def send_raw(self, account: LocalAccount, tx: dict[str, Any], *, tip_gwei: int, gas: int = 3_000_000) -> str:
        base = int(self.w3.eth.get_block("latest")["baseFeePerGas"])
        full = {
            **tx,
            "from": account.address,
            "chainId": self.chain.chain_id,
            "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
            "gas": gas,
            "maxPriorityFeePerGas": tip_gwei * GWEI,
            "maxFeePerGas": 4 * base + tip_gwei * GWEI,
            "type": 2,
        }
        signed = account.sign_transaction(full)
        return HexBytes(self.w3.eth.send_raw_transaction(signed.raw_transaction)).to_0x_hex()

    def pending(self) -> list[Pending]:
        """What a mempool watcher sees: every pending transaction, with its calldata."""
        content = self.w3.provider.make_request("txpool_content", [])["result"]  # type: ignore[arg-type]
        out = []
        for by_sender in content.get("pending", {}).values():
            for tx in by_sender.values():
                sender, to = Web3.to_checksum_address(tx["from"]), Web3.to_checksum_address(tx["to"])
                tip = int(tx.get("maxPriorityFeePerGas") or "0x0", 16)
                out.append(Pending(tx["hash"], sender, to, bytes(HexBytes(tx["input"])), tip))
        return out

    def mine(self) -> list[dict[str, Any]]:
        """Mines one block with everything pending (fee order); returns the receipts in block order."""
        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        block = self.w3.eth.get_block("latest", full_transactions=False)
        return [self.w3.eth.get_transaction_receipt(h) for h in block["transactions"]]


class BroadcastingMarket(MarketClient):
    """``market`` whose ``commit_update`` and ``reveal_update`` are broadcast through ``mempool`` with a
    priority fee of ``tip_gwei`` and not waited for (their "receipt" is ``{"gasUsed": 0}``): with
    automine off they stay pending until the test mines. Everything else is ``market``'s."""

    def __init__(self, market: MarketClient, mempool: Mempool, *, tip_gwei: int) -> None:
        super().__init__(market.chain, market.market, market.registry, market.lens)
        self.mempool = mempool
        self.tip_gwei = tip_gwei
        self.sent: list[str] = []  # hashes of the broadcast transactions

    def _broadcast(self, fn: ContractFunction) -> dict[str, int]:
        self.sent.append(self.mempool.send(self.chain.account, fn, tip_gwei=self.tip_gwei))
        return {"gasUsed": 0}

    def commit_update(self, project_id: int, round_: int, seal: bytes, note: bytes = b"") -> Any:
        return self._broadcast(self.market.functions.commitUpdate(project_id, round_, seal, note))

    def reveal_update(self, project_id: int, round_: int, cid: str, commitment: bytes, salt: bytes) -> Any:
        return self._broadcast(self.market.functions.revealUpdate(project_id, round_, cid, commitment, salt))


@contextmanager
def fee_ordered_anvil() -> Iterator[AnvilNode]:
    """A fresh anvil that orders pending transactions by priority fee (automine is switched off by the test)."""
    with AnvilNode(extra_args=("--order", "fees")) as node:
        yield node


@dataclass
class Race:
    """A training project on a fee-ordered anvil, for front-running tests: the chain's admin and its
    :class:`Mempool`, the project's owner, aggregator and trainers, a copier (no role) and the project id."""

    admin: ChainClient
    mempool: Mempool
    owner: MarketClient
    aggregator: MarketClient
    trainers: list[MarketClient]
    copier: MarketClient
    pid: int


@contextmanager
def race_project(n: int, *, expect_reference: bool = False) -> Iterator[Race]:
    """A fresh fee-ordered anvil (:func:`fee_ordered_anvil`) with one training project of ``n`` trainers, all
    joined (round 0, nobody committed yet); the test verifier; every account funded with 1,000 ETH. With
    ``expect_reference`` the owner set the project to expect its reference row before the trainers joined."""
    eth = 10**18
    accounts = dev_accounts(n + 4)
    with fee_ordered_anvil() as anvil:
        admin = ChainClient(anvil.url, accounts[0])
        for account in accounts:
            admin.set_balance(account.address, 1_000 * eth)
        deployment = deploy_marketplace(admin)
        base = market_client(admin, deployment)
        owner, aggregator = base.as_account(accounts[1]), base.as_account(accounts[2])
        trainers = [base.as_account(a) for a in accounts[3 : 3 + n]]
        cfg = ProjectConfig(
            aggregator=aggregator.address, verifier=deployment.address(TEST_VERIFIER), reward_budget=10 * eth,
            aggregator_fee=eth, stake=eth // 10, rounds=1, min_trainers=n, max_trainers=n, model_name="mlp",
            initial_model_cid="bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
        )  # fmt: skip
        pid = owner.create_project(cfg)
        if expect_reference:
            owner.expect_reference(pid)
        for t in trainers:
            t.join(pid)
        yield Race(admin, Mempool(admin), owner, aggregator, trainers, base.as_account(accounts[n + 3]), pid)
