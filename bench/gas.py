"""Gas report: what each protocol step costs with N = 4, 16 and 64 trainers, and what batching
the reliability updates saves. Runs on a fresh local anvil.

A trainer submits in two transactions (commit-reveal): ``commitUpdate`` with its seal and its
encrypted note (as ``TrainerNode`` sends them: a 59-character CIDv1, so a 95-byte note), then
``revealUpdate`` with the CID, the commitment and the salt; the table shows each, and their sum per
trainer. The last commit of a round also records that the commit phase closed.

    python -m bench.gas [--trainers 4 16 64] [--out reports/gas.json]

Prints a table and writes JSON plus a Markdown copy next to it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table
from web3.contract import Contract

from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import compile_contracts
from marketplace.adapters.chain.deploy import REGISTRY, deploy_marketplace, market_client
from marketplace.adapters.chain.market import Finalization, ProjectConfig
from marketplace.protocol.seal import derive_salt, seal, seal_note
from marketplace.round.prove import local_hash_proof, recorded_verifier_inputs

#: ``IReliabilityRegistry.Outcome``
OUTCOME_CONTRIBUTED, OUTCOME_FLAGGED, OUTCOME_MISSED = 0, 1, 2
#: An owner and an aggregator that are not the same address (a round of such a project counts for the record).
OWNER, AGGREGATOR = "0x" + "11" * 20, "0x" + "22" * 20
#: Hardhat's per-transaction gas cap (and a common RPC cap); every step must stay below it.
TX_GAS_CAP = 16_777_216
ETH = 10**18


@dataclass
class GasRow:
    trainers: int
    create: int
    join_avg: int
    join_last: int  # the join that fills the project also starts training
    commit_avg: int  # commitUpdate: seal + encrypted note
    reveal_avg: int  # revealUpdate: CID, commitment, salt
    finalize: int
    finalize_per_trainer: int
    reliability_batched: int  # one recordRound call for all trainers
    reliability_per_trainer: int  # sum of one recordRound call per trainer

    @property
    def submit_avg(self) -> int:
        """What one trainer's submission costs: its commit plus its reveal."""
        return self.commit_avg + self.reveal_avg

    @property
    def batching_saving(self) -> float:
        return 1 - self.reliability_batched / self.reliability_per_trainer

    @property
    def largest_tx(self) -> int:
        steps = (self.create, self.join_last, self.commit_avg, self.reveal_avg, self.finalize, self.reliability_batched)
        return max(steps)


def measure(n: int, url: str, accounts: list[LocalAccount]) -> GasRow:
    """Runs one round of an n-trainer project on the chain at ``url`` and records gas used."""
    admin = ChainClient(url, accounts[0])
    for account in accounts[: n + 3]:
        admin.set_balance(account.address, 1_000 * ETH)
    deployment = deploy_marketplace(admin)
    artifacts = compile_contracts()
    base = market_client(admin, deployment, artifacts)
    owner, aggregator = base.as_account(accounts[1]), base.as_account(accounts[2])
    trainers = [base.as_account(a) for a in accounts[3 : 3 + n]]

    cfg = ProjectConfig(
        aggregator=aggregator.address,
        verifier=deployment.address("TestRoundVerifier"),
        reward_budget=10 * ETH,
        aggregator_fee=ETH,
        stake=ETH // 100,
        rounds=3,
        min_trainers=n,
        max_trainers=n,
        model_name="mlp",
        initial_model_cid="bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
    )
    receipt = owner.chain.transact(owner.market.functions.createProject(cfg.as_abi_tuple()), value=cfg.payment)
    create = receipt["gasUsed"]
    pid = owner.project_count()
    joins = [t.join(pid, cfg.stake)["gasUsed"] for t in trainers]
    cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"  # a realistic 59-char CIDv1
    where = owner.round_address(pid, 0)
    commitments = [bytes(admin.w3.keccak(text=f"update {i}")) for i in range(n)]
    salts = [derive_salt(t.chain.account, where, c) for t, c in zip(trainers, commitments, strict=True)]
    commits = [
        t.commit_update(pid, 0, seal(c, cid, t.address, where, salt), seal_note(t.chain.account, where, c, cid))
        for t, c, salt in zip(trainers, commitments, salts, strict=True)
    ]
    reveals = [  # every trainer committed: the reveal phase is open at once
        t.reveal_update(pid, 0, cid, c, salt) for t, c, salt in zip(trainers, commitments, salts, strict=True)
    ]
    members = owner.trainers(pid)
    scores = [1_000 + 37 * i for i in range(n)]
    flags = [i % 4 == 3 for i in range(n)]  # a quarter flagged: exercises the slashing path
    proof = local_hash_proof(*recorded_verifier_inputs(owner, pid, 0, scores, flags, [False] * len(scores)))
    receipt = aggregator.finalize_round(pid, 0, Finalization(cid, cid, scores, flags, proof))
    finalize = receipt["gasUsed"]

    batched, per_trainer = reliability_gas(admin, reliability_registries(admin, artifacts), pid, 0, members, flags)
    return GasRow(
        trainers=n,
        create=create,
        join_avg=sum(joins[:-1]) // max(1, n - 1) if n > 1 else joins[0],
        join_last=joins[-1],
        commit_avg=sum(int(r["gasUsed"]) for r in commits) // n,
        reveal_avg=sum(int(r["gasUsed"]) for r in reveals) // n,
        finalize=finalize,
        finalize_per_trainer=finalize // n,
        reliability_batched=batched,
        reliability_per_trainer=per_trainer,
    )


def reliability_registries(admin: ChainClient, artifacts: dict[str, Any]) -> tuple[Contract, Contract]:
    """Two fresh reliability registries (same starting state) that ``admin`` may write to, as a market would."""
    registries = []
    for _ in range(2):
        registry = admin.deploy(artifacts[REGISTRY], admin.account.address)
        admin.transact(registry.functions.setMarketAuthorization(admin.account.address, True))
        registries.append(registry)
    return registries[0], registries[1]


def reliability_gas(
    admin: ChainClient,
    registries: tuple[Contract, Contract],
    project_id: int,
    round_: int,
    members: list[str],
    flags: list[bool],
    submitted: list[bool] | None = None,
) -> tuple[int, int]:
    """Gas of recording one round's outcomes (as ``finalizeRound`` reports them) for all trainers in one
    ``recordRound`` call on the first registry vs one call per trainer on the second."""
    submitted = submitted or [True] * len(members)
    outcomes = [
        (OUTCOME_FLAGGED if f else OUTCOME_CONTRIBUTED) if s else OUTCOME_MISSED
        for f, s in zip(flags, submitted, strict=True)
    ]
    batched_registry, single_registry = registries
    rewards = [0 if o else 10**15 for o in outcomes]  # contributors earn something
    batched = admin.transact(
        batched_registry.functions.recordRound(project_id, round_, OWNER, AGGREGATOR, members, outcomes, rewards)
    )["gasUsed"]
    per_trainer = sum(
        admin.transact(single_registry.functions.recordRound(project_id, round_, OWNER, AGGREGATOR, [m], [o], [r]))[
            "gasUsed"
        ]
        for m, o, r in zip(members, outcomes, rewards, strict=True)
    )
    return int(batched), int(per_trainer)


def run(sizes: list[int]) -> list[GasRow]:
    """Measures every size on its own fresh anvil."""
    accounts = dev_accounts(max(sizes) + 3)
    rows = []
    for n in sizes:
        with AnvilNode() as node:
            rows.append(measure(n, node.url, accounts))
    return rows


COLUMNS = [
    "N", "create", "join", "join (starts)", "commit", "reveal", "commit + reveal", "finalize", "finalize/N",
    "reliability batched", "reliability 1-by-1", "saved",
]  # fmt: skip


def cells(r: GasRow) -> list[str]:
    """One row of the report, formatted."""
    numbers = [
        r.create, r.join_avg, r.join_last, r.commit_avg, r.reveal_avg, r.submit_avg, r.finalize,
        r.finalize_per_trainer, r.reliability_batched, r.reliability_per_trainer,
    ]  # fmt: skip
    return [str(r.trainers), *(f"{x:,}" for x in numbers), f"{r.batching_saving:.0%}"]


def render(rows: list[GasRow]) -> Table:
    table = Table(title="Gas used per protocol step (TestRoundVerifier; the zk verifier adds its own cost)")
    for col in COLUMNS:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(*cells(r))
    return table


def markdown(rows: list[GasRow]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---:|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write(rows: list[GasRow], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    extra = [{"submit_avg": r.submit_avg, "batching_saving": r.batching_saving} for r in rows]
    out.write_text(json.dumps([asdict(r) | e for r, e in zip(rows, extra, strict=True)], indent=2))
    out.with_suffix(".md").write_text("# Gas report\n\n" + markdown(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainers", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--out", type=Path, default=Path("reports/gas.json"))
    args = parser.parse_args()
    rows = run(args.trainers)
    Console(width=170).print(render(rows))
    write(rows, args.out)
    print(f"written {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
