"""What it costs to farm a reliability bar by self-dealing, beside what it cost before (issue 12 item 4).

The farmer wants to join a victim project that requires 90 % reliability and protects ``V`` = its reward
budget per guaranteed trainer (its minimum trainers). It controls an owner, an aggregator and a trainer
address (sybils), so every address check passes, and runs its own projects on the local test verifier to
build a record.

- **before** (counts only, no protocol fee; a project whose owner is its aggregator counted): 8 rounds of a
  self-dealt project with a 1 wei budget gave 90 %; the cost is the gas of those rounds, whatever ``V``.
- **now**: 90 % reliability is not enough; the bar also requires ``V / 2 %`` wei earned in projects whose
  owner is not their aggregator, and every project burns 2 % of its budget. The farmer escrows that budget
  to itself (it gets the rewards back) and burns the fee: cost = fee + gas, at least ``V``.

Both are measured on the same fresh anvil in the same run: the "before" row is the gas of the same 8
self-dealt rounds (which now count for nothing), the "now" row really farms the record and joins the victim.

    python -m bench.farming [--values 0.1 1 10] [--gwei 1]

Measured (2026-11-29, anvil, 1 gwei): before, 0.0025 ETH of gas reached the bar whatever it protected
(0.025x of 0.1 ETH, 0.0003x of 10 ETH); now farming it burned exactly the value protected plus 0.0026 ETH of
gas (1.026x, 1.003x, 1.000x for 0.1, 1 and 10 ETH per guaranteed trainer), and only then did the farmer get in.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table

from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import compile_contracts
from marketplace.adapters.chain.deploy import TEST_VERIFIER, deploy_marketplace, market_client
from marketplace.adapters.chain.errors import ContractRevert
from marketplace.adapters.chain.market import (
    PROTOCOL_FEE_BPS,
    Finalization,
    MarketClient,
    ProjectConfig,
    ProjectStatus,
)
from marketplace.protocol.seal import derive_salt, seal
from marketplace.round.prove import local_hash_proof, recorded_verifier_inputs

ETH = 10**18
BURN = "0x000000000000000000000000000000000000dEaD"
BAR_BPS = 9_000
ROUNDS_FOR_BAR = 8  # (8 + 1) / (8 + 2) = 90 %: a Beta(1, 1) mean


@dataclass
class FarmingCost:
    value_protected: int  # wei per guaranteed trainer of the victim project
    before_gas: int  # gas of the 8 self-dealt rounds that reached 90 % before
    now_gas: int  # gas of farming the record now
    now_burned: int  # protocol fees burned now
    joined: bool  # the farmer got into the victim project with the farmed record

    def cost(self, gwei: float) -> tuple[int, int]:
        """(before, now) in wei at ``gwei`` per gas."""
        price = int(gwei * 10**9)
        return self.before_gas * price, self.now_gas * price + self.now_burned


class _Gas:
    """Sums the gas of every transaction a set of clients sends."""

    def __init__(self) -> None:
        self.used = 0

    def add(self, receipt: object) -> None:
        self.used += int(receipt["gasUsed"])  # type: ignore[index]


def _config(aggregator: str, budget: int, rounds: int, verifier: str) -> ProjectConfig:
    return ProjectConfig(
        aggregator=aggregator, verifier=verifier, reward_budget=budget, aggregator_fee=0, stake=0, rounds=rounds,
        min_trainers=1, max_trainers=1, model_name="mlp",
        initial_model_cid="bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
    )  # fmt: skip


def _self_dealt_project(
    owner: MarketClient, aggregator: MarketClient, farmer: MarketClient, budget: int, rounds: int, verifier: str
) -> int:
    """Creates a 1-trainer project of ``owner`` aggregated by ``aggregator``; ``farmer`` joins and every round is
    finalized with the farmer paid. Returns the gas used by all of it."""
    gas = _Gas()
    cfg = _config(aggregator.address, budget, rounds, verifier)
    receipt = owner.chain.transact(owner.market.functions.createProject(cfg.as_abi_tuple()), value=cfg.payment)
    gas.add(receipt)
    pid = owner.project_count()
    gas.add(farmer.join(pid))
    for round_ in range(rounds):
        commitment = (round_ + 1).to_bytes(1, "big") * 32
        cid = f"bafkreifarm{pid}r{round_}"
        where = farmer.round_address(pid, round_)
        salt = derive_salt(farmer.chain.account, where, commitment)
        gas.add(farmer.commit_update(pid, round_, seal(commitment, cid, farmer.address, where, salt)))
        gas.add(farmer.reveal_update(pid, round_, cid, commitment, salt))
        proof = local_hash_proof(*recorded_verifier_inputs(aggregator, pid, round_, [1], [False], [False]))
        gas.add(aggregator.finalize_round(pid, round_, Finalization("bafkreim", "bafkreip", [1], [False], proof)))
    assert owner.get_project(pid).status is ProjectStatus.FINISHED  # the farmer withdraws its budget back later
    return gas.used


def measure(value: int, url: str, accounts: list[LocalAccount]) -> FarmingCost:
    """Farms the bar of a victim project protecting ``value`` wei per guaranteed trainer, on the chain at ``url``."""
    admin = ChainClient(url, accounts[0])
    for account in accounts:
        admin.set_balance(account.address, 10**9 * ETH)
    deployment = deploy_marketplace(admin)
    base = market_client(admin, deployment, compile_contracts())
    verifier = deployment.address(TEST_VERIFIER)
    victim_owner, victim_aggregator, farmer, sybil_owner, sybil_aggregator = (base.as_account(a) for a in accounts[1:6])
    victim_cfg = _config(victim_aggregator.address, 4 * value, 1, verifier)
    bar = {"min_trainers": 4, "max_trainers": 4, "min_reliability_bps": BAR_BPS}
    victim = victim_owner.create_project(victim_cfg.model_copy(update=bar))
    assert victim_owner.get_project(victim).reward_budget == 4 * value
    required = victim_owner.required_track_record(victim)

    # Before: 8 rounds of a self-dealt project with a tiny budget (the owner as its own aggregator).
    snapshot = admin.snapshot()
    before_gas = _self_dealt_project(sybil_owner, sybil_owner, farmer, 1_000, ROUNDS_FOR_BAR, verifier)
    admin.revert(snapshot)

    # Now: the same rounds with separate sybil addresses, for a budget that earns what the bar requires.
    burned = admin.balance(BURN)
    now_gas = _self_dealt_project(sybil_owner, sybil_aggregator, farmer, required, ROUNDS_FOR_BAR, verifier)
    now_burned = admin.balance(BURN) - burned
    try:
        farmer.join(victim)
        joined = True
    except ContractRevert:
        joined = False
    return FarmingCost(value, before_gas, now_gas, now_burned, joined)


def render(rows: list[FarmingCost], gwei: float) -> Table:
    fee = PROTOCOL_FEE_BPS / 100
    table = Table(title=f"Farming a 90 % bar by self-dealing (gas at {gwei:g} gwei; protocol fee {fee:g} %)")
    for column in ("value protected (ETH)", "before: cost (ETH)", "before/value", "now: burned (ETH)",
                   "now: gas (ETH)", "now: cost (ETH)", "now/value", "joined"):  # fmt: skip
        table.add_column(column, justify="right")
    for r in rows:
        before, now = r.cost(gwei)
        price = int(gwei * 10**9)
        table.add_row(
            f"{r.value_protected / ETH:g}", f"{before / ETH:.6f}", f"{before / r.value_protected:.4f}",
            f"{r.now_burned / ETH:.4f}", f"{r.now_gas * price / ETH:.6f}", f"{now / ETH:.4f}",
            f"{now / r.value_protected:.3f}", "yes" if r.joined else "no",
        )  # fmt: skip
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--values", type=float, nargs="+", default=[0.1, 1.0, 10.0], help="ETH protected per guaranteed trainer"
    )
    parser.add_argument("--gwei", type=float, default=1.0, help="gas price for the gas part of the cost")
    args = parser.parse_args()
    accounts = dev_accounts(6)
    rows = []
    for value in args.values:
        with AnvilNode() as node:
            rows.append(measure(int(value * ETH), node.url, accounts))
    Console(width=170).print(render(rows, args.gwei))


if __name__ == "__main__":
    main()
