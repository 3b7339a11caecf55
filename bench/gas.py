"""Gas per trainer per round, by component, for N = 4, 16, 32 and 64 trainers: the contracts of the working tree
("new") beside the contracts before issue 16's gas work ("old", :data:`BASELINE_REV`), in the same run, each
on its own fresh anvil. Also what batching the reliability updates saves, and (``--breakdown N``) what the
transactions of one round spend their gas on.

What is measured: one project of :data:`ROUNDS` rounds with N trainers (a quarter of them flagged each round,
so the slashing path runs), the test verifier (its "proof" is a hash: verification is a few thousand gas; the
zk verifier adds ~1.33M to 1.46M per round, ``python -m bench.zk``). A trainer's transactions are its join, one
``commitUpdate`` (its seal and the 95-byte note ``TrainerNode`` sends) and one ``revealUpdate`` (a 59-character
CID) per round, and its withdrawal (the mean of those owed something: the quarter flagged in every round at a 50 %
slash is left nothing to withdraw); the aggregator's ``finalizeRound`` (verification and the registry's
``recordRound`` inside) is shared by the N trainers. Gas per trainer per round = join / R + mean over the R
rounds of (commit + reveal + finalize / N) + withdraw / R. The first round costs more than the later ones (a
trainer's seal and commitment slots, its record and its (trainer, owner) pair are written for the first time),
so the later-round figure (commit + reveal + finalize / N of round 2) is printed too: it is what every further
round of a longer project costs, before the join and withdrawal shares.

Reliability, batched vs one-by-one: two fresh registries record the same outcomes (the round's flags, rewards
for contributors) for the project's trainers, one ``recordRound`` transaction for all of them vs one per
trainer; per trainer, for a project's first round (new records, a new owner for each trainer) and for a later
one.

The old contracts are compiled from git (``git show <BASELINE_REV>:contracts/...`` into
``build/gas-baseline-<rev>/``, compiled once and cached like the working tree's): no frozen copy to keep
beside the real ones, and the baseline is exactly what main held before (a clone needs its history back to
that commit). Both run through today's ``MarketClient`` (their function signatures are the same).

    python -m bench.gas [--trainers 4 16 32 64] [--breakdown 16] [--out reports/gas.json] [--zk 16 32 [--zk-only]]

Prints the tables and writes JSON plus a Markdown copy next to it. ``--zk N ...`` adds whole rounds with real
ezkl proofs (:mod:`bench.gas_zk`: minutes of proving): the circuit's own verifier split in two contracts (what
``marketplace zk deploy`` deploys) beside the reusable verifier and the test verifier, in the same run. Measured
2026-11-30, a later round per trainer (commit + reveal + finalize / N): 211,916 reusable -> 191,915 split at
N = 16 (verification 1,336,673 -> 1,016,666 per round), 173,484 -> 162,468 at N = 32 (1,551,309 -> 1,198,788):
20.0k and 11.0k per trainer saved (the figures: :mod:`bench.gas_zk`).

Measured (2026-11-30, ``python -m bench.gas``, after the stale challenges; gas does not depend on the machine), gas
per trainer per round ("commit" and "reveal": the trainers' own transactions, mean over the rounds; "batched commit"
and "batched reveal": a later round's ``commitBatch`` and ``revealBatch`` of every trainer / N; "later, batched":
that round's batched commit + batched reveal + finalize / N; the aggregator's batches and finalizations, the old
contracts' too, declare an access list where that is cheaper):

    N    join/R  commit  b.commit  reveal  b.reveal  finalize/N  withdraw/R  per round  new/old  later round  l.batched
    4  old 32,059  67,733            85,482            78,806      14,799     278,880             211,130
    4  new 30,172  51,479    32,478  56,361    29,248  69,539      14,724     222,275    0.80     152,487      114,289
    16 old 30,355  67,157            85,481            53,819      14,799     251,612             189,119
    16 new 28,772  51,397    26,983  54,826    22,473  42,793      14,724     192,512    0.77     127,803       77,763
    32 old 30,071  67,061            85,483            49,659      14,799     247,073             185,455
    32 new 28,539  51,384    26,026  54,648    21,178  38,343      14,724     187,637    0.76     123,667       71,476
    64 old 29,929  67,012            85,483            47,585      14,799     244,808             183,628
    64 new 28,422  51,378    25,549  54,647    20,536  36,127      14,724     185,298    0.76     121,784       68,348

The owner's expected reference and the disputes module (2026-11-30, ``python -m bench.gas --trainers 16 32``, before
-> after): the rejections and disputes moved to ``MarketDisputes`` (the market's fallback, DELEGATECALL) and the last
trainer's commit reads one more flag (``referenceExpected``, only when it is the last) before it closes the phase.
At N = 16 commit 51,410 -> 51,397, batched commit 26,971 -> 26,983, reveal 51,980 -> 51,982, batched reveal 22,158
-> 22,165, finalize / N 41,633 -> 41,632, later round 123,697 -> 123,681, later, batched 75,919 -> 75,938 (+19); at
N = 32 commit 51,402 -> 51,384, batched commit 26,021 -> 26,026, reveal 51,982 -> 51,982, batched reveal 21,022 ->
21,024, finalize / N unchanged, later round 120,365 -> 120,345, later, batched 70,509 -> 70,516 (+7). The dispatcher
moved with the functions (a trainer's own commit is 13-18 gas cheaper, a batch's entries a few gas dearer); the
zk figures moved as much (``--zk 16 32 --zk-only`` rerun after the change: batched later round with the split
verifier 140,092 -> 140,102 at N = 16 and 108,409 -> 108,417 at N = 32; verification unchanged).

The stale challenges (``MarketDisputes.challengeStale``; 2026-11-30, ``python -m bench.gas --trainers 16 32`` on the
merge that added them, beside the figures above it): a reveal writes the round's latest reveal time
(``lastRevealAt``, in the word of ``slashed``: a cold read, 2.1k, and a write, 2.9k, when its block's time is new,
100 when it is not: a trainer's own reveal 51,982 -> 54,826 at N = 16 and 54,648 at N = 32 mean, 57,032 in the
traced later round, 51,977 before), and ``finalizeRound`` checks the window, hashes the round's commitments and
writes them in a new word (the traced later round at N = 16: 415,919 -> 440,190, +24,271: writes +20,000, the
access list's entry +1,900, reads +200, computation +2,171). At N = 16 batched reveal 22,165 -> 22,473, finalize / N
41,632 -> 42,793, later round 123,681 -> 127,803, later, batched 75,938 -> 77,763 (+1,825); at N = 32 batched
reveal 21,024 -> 21,178, finalize / N 37,715 -> 38,343, later round 120,345 -> 123,667, later, batched 70,516 ->
71,476 (+960). Commits and batched commits unchanged. A trainer's own reveal varies by ~0.1k between runs (how many
reveals share a block time). The zk section: :mod:`bench.gas_zk` (141.9k / 109.4k, the targets met).

Before step 5 (docs/design/gas-per-trainer.md) "later, batched" was 110,670 / 79,729 / 74,586 / 72,028 and a
trainer's own reveal 59.7k mean (its first round wrote a second slot, 22k): the commitment now overwrites the seal
(a warm word, -2.1k a reveal), ``finalizeRound`` reads the trainer list from its calldata, checked against the
members' slots (-1.7k a trainer), and the batches and finalization declare access lists (-0.1k to -0.3k a slot).

A later round's own commit is 45.6k (the first round's 62.7k writes new slots); inside ``commitBatch`` it is
27.1k at N = 16 and 26.2k at N = 32 (an ``ecrecover`` and 65 bytes of signature instead of a transaction's 21k):
-18.5k and -19.4k per trainer, as the design study predicted (docs/design/gas-per-trainer.md). Adding
``commitBatch`` cost the trainers' own commits and reveals 31-65 gas (the shared commit path, one more selector
to dispatch past).

Reliability, gas per trainer, one batched ``recordRound`` vs one per trainer (saved): a project's first round
old 24.6 / 30.7 / 31.7 / 32.2 %, new 28.5 / 35.6 / 36.8 / 37.4 % at N = 4 / 16 / 32 / 64 (a new record and a
new (trainer, owner) pair are new slots, 20k each, batched or not); a later round old 52.4 / 65.5 / 67.7 /
68.8 %, new 60.1 / 75.1 / 77.6 / 78.9 % (9,111 vs 36,609 gas per trainer at N = 16). No batching reaches 75 %
at N = 4: the one-by-one calls' fixed cost (~29k: the transaction, the authorization read, the event) is
shared by only four trainers.

What a later round's gas goes to at N = 16 (``--breakdown``): commit 45,590 = 23,660 intrinsic (21k + the
note's calldata) + 15,900 storage (the open round's slot, the trainer's slot, its seal slot rewritten) +
3,667 log + 2,363 computation; reveal 53,976 = 23,600 intrinsic + 17,700 storage (the commitment slot
rewritten) + 2,879 the verifier's ``acceptsCommitment`` + 3,411 log + 6,386 computation; finalize 439,456 /
16 = 27.5k = 8.1k storage reads (each trainer's list entry, slot and commitment: 3 cold reads) + 7.4k
external calls (the registry, ~7k a trainer; the test verifier) + 5.7k computation + 3.0k writes (rewards,
slashes) + 2.0k calldata + 1.2k logs. Of the 127k, 47k is the intrinsic gas of a trainer's two transactions.

Issue 16's targets. Batched reliability >= 75 % cheaper per trainer: met in every round after a project's
first from N = 16 on (75.1 %, 77.6 %, 78.9 %), not in a first round (the new slots) nor at N = 4. Gas per
trainer per round <= 150k at N = 16: met by every round after a project's first (127k); over a whole project
a trainer pays 127k + 210k / R per round (the first round's new slots ~80k, the join ~86k and the withdrawal
~44k shared by the R rounds): 198k for this 3-round project, under 150k from R = 10 on. With the zk verifier,
verification adds ~1.37M per round (``bench.zk``), 86k per trainer at N = 16: 213k for a later round, and no
storage layout can win that back. Reaching 150k with it takes a protocol change that verifies less often:
finalization that checks the proof only when challenged within a window (the aggregator bonded), or one proof
for several rounds. <= 110k at N = 32: a trainer's commit and reveal alone cost 100k (42k of it two
transactions' base fee), so the reveal has to stop being a transaction of its own: trainers hand their
openings to the aggregator after the commit phase and it reveals them in one batched call (the seal binds the
trainer, so anyone holding an opening can reveal it; a trainer left out reveals itself before the deadline, as
today). Measured since with a prototype (docs/design/gas-per-trainer.md, ``research/gas/``): a reveal inside a
batch costs 23.6k at N = 16 (22.5k at 32) instead of 54k, so 92.6k per trainer at N = 32 with the test verifier;
with the zk verifier (44k more at N = 32, measured with real proofs) that is 137k, and the design study shows
which further steps (batched signed commits, a circuit-specific verifier, or optimistic verification) reach the
targets. With both batches built (steps 3 and 4), a later round costs a trainer 79.7k at N = 16 and 74.6k at
N = 32 with the test verifier; with the zk verifier's share (83.6k and 44.2k, the design study's measurement)
163.3k and 118.8k: the circuit-specific verifier (step 1, -20.2k / -10.7k) is what remains to reach 150k / 110k.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table
from web3.contract import Contract

from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import Artifacts, compile_contracts
from marketplace.adapters.chain.config import Deployment
from marketplace.adapters.chain.deploy import MARKET, REGISTRY, TEST_VERIFIER, deploy_marketplace, market_client
from marketplace.adapters.chain.market import Finalization, MarketClient, Opening, ProjectConfig
from marketplace.adapters.toolchain import project_root
from marketplace.protocol.ordering import verifier_inputs
from marketplace.protocol.seal import derive_salt, seal, seal_note
from marketplace.protocol.signed_commit import sign_commit
from marketplace.round.prove import local_hash_proof, recorded_verifier_inputs, round_tag

#: ``IReliabilityRegistry.Outcome``
OUTCOME_CONTRIBUTED, OUTCOME_FLAGGED, OUTCOME_MISSED = 0, 1, 2
#: An owner and an aggregator that are not the same address (a round of such a project counts for the record).
OWNER, AGGREGATOR = "0x" + "11" * 20, "0x" + "22" * 20
#: Hardhat's per-transaction gas cap (and a common RPC cap); every step must stay below it.
TX_GAS_CAP = 16_777_216
ETH = 10**18
#: Rounds of the measured project.
ROUNDS = 3
#: The commit whose contracts are the "old" implementation (main before issue 16's gas work).
BASELINE_REV = "cfc389e1bc09c88e7a8317fab5222e9779b5481b"
OLD, NEW = "old", "new"
#: A realistic 59-character CIDv1 (what trainers reveal and the aggregator records).
CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
#: What a transaction's gas goes to (:func:`breakdown`).
PARTS = ("intrinsic", "storage reads", "storage writes", "logs", "external calls", "computation")


@dataclass
class GasRow:
    impl: str  # OLD or NEW
    trainers: int
    rounds: int
    create: int
    join: int  # mean of the N joins (the last one also starts training)
    largest_join: int
    commit: list[int]  # per round: mean over the trainers of commitUpdate (seal + encrypted note)
    reveal: list[int]  # per round: mean of revealUpdate (CID, commitment, salt)
    reveal_batched: int | None  # a later round's revealBatch of every trainer's opening / N (None: no revealBatch)
    finalize: list[int]  # per round: the whole finalizeRound (verification and recordRound inside)
    withdraw: int  # mean of the withdrawals of the trainers owed something (the flagged ones lost their stake)
    reliability_first: tuple[int, int]  # (one recordRound for all, one per trainer) in a project's first round
    reliability_later: tuple[int, int]  # the same in a later round
    breakdown: dict[str, dict[str, int]] = field(default_factory=dict)  # a later round's transactions, by part
    commit_batched: int | None = None  # a later round's commitBatch of every trainer's signed commit / N
    finalize_batched: int | None = None  # that round's finalizeRound (after the batches) / N

    @property
    def later_batched(self) -> float | None:
        """A later round with both batches (no transaction of the trainers'): commitBatch / N + revealBatch / N
        + finalize / N; None without ``commitBatch``."""
        if self.commit_batched is None or self.reveal_batched is None or self.finalize_batched is None:
            return None
        return self.commit_batched + self.reveal_batched + self.finalize_batched

    @property
    def join_share(self) -> float:
        return self.join / self.rounds

    @property
    def withdraw_share(self) -> float:
        return self.withdraw / self.rounds

    @property
    def commit_mean(self) -> float:
        return sum(self.commit) / self.rounds

    @property
    def reveal_mean(self) -> float:
        return sum(self.reveal) / self.rounds

    @property
    def finalize_share(self) -> float:
        """A trainer's share of finalizing a round, mean over the rounds."""
        return sum(self.finalize) / self.rounds / self.trainers

    @property
    def per_round(self) -> float:
        """Everything one trainer's rounds cost, per round: its transactions and its share of finalization."""
        return self.join_share + self.commit_mean + self.reveal_mean + self.finalize_share + self.withdraw_share

    @property
    def later_round(self) -> float:
        """Commit + reveal + finalize / N of the last round: what each further round costs a trainer."""
        return self.commit[-1] + self.reveal[-1] + self.finalize[-1] / self.trainers

    @property
    def saving_first(self) -> float:
        """What one batched ``recordRound`` saves per trainer vs one per trainer, in a project's first round."""
        return 1 - self.reliability_first[0] / self.reliability_first[1]

    @property
    def saving_later(self) -> float:
        return 1 - self.reliability_later[0] / self.reliability_later[1]

    @property
    def largest_tx(self) -> int:
        return max(self.create, self.largest_join, *self.commit, *self.reveal, *self.finalize, self.withdraw,
                   self.reliability_first[0], self.reliability_later[0])  # fmt: skip


def baseline_artifacts(rev: str = BASELINE_REV) -> Artifacts:
    """The contracts as they were at ``rev``, compiled (and cached) under ``build/gas-baseline-<rev>/``."""
    root = project_root()
    target = root / "build" / f"gas-baseline-{rev[:12]}"
    names = _git(root, "ls-tree", "-r", "--name-only", rev, "contracts").split()
    for name in names:
        path = target / name
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_git(root, "show", f"{rev}:{name}"))
    return compile_contracts(target / "contracts", out=target / "contracts.json")


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout


@dataclass
class OpenProject:
    """A market deployed on a fresh chain and one project of ``n`` trainers that all joined (training started)."""

    admin: ChainClient
    deployment: Deployment
    owner: MarketClient
    aggregator: MarketClient
    trainers: list[MarketClient]
    project_id: int
    create_gas: int
    join_gas: list[int]


def open_project(
    url: str,
    artifacts: Artifacts,
    n: int,
    rounds: int,
    accounts: list[LocalAccount],
    verifier: Callable[[MarketClient, Deployment], str] | None = None,
) -> OpenProject:
    """Deploys the market from ``artifacts`` on the chain at ``url`` (``accounts``: admin, owner, aggregator,
    then the trainers, funded here) and runs a project of ``rounds`` rounds and ``n`` trainers up to training:
    created with the verifier ``verifier(admin's client, deployment)`` deploys (default: the test verifier),
    joined by every trainer."""
    admin = ChainClient(url, accounts[0])
    for account in accounts[: n + 3]:
        admin.set_balance(account.address, 1_000 * ETH)
    deployment = deploy_marketplace(admin, artifacts)
    base = market_client(admin, deployment, artifacts)
    owner, aggregator = base.as_account(accounts[1]), base.as_account(accounts[2])
    trainers = [base.as_account(a) for a in accounts[3 : 3 + n]]
    cfg = ProjectConfig(
        aggregator=aggregator.address,
        verifier=verifier(base, deployment) if verifier else deployment.address(TEST_VERIFIER),
        reward_budget=10 * ETH,
        aggregator_fee=ETH,
        stake=ETH // 100,
        rounds=rounds,
        min_trainers=n,
        max_trainers=n,
        model_name="mlp",
        initial_model_cid="bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
    )
    create = _gas(owner.chain.transact(owner.market.functions.createProject(cfg.as_abi_tuple()), value=cfg.payment))
    pid = owner.project_count()
    joins = [_gas(t.join(pid, cfg.stake)) for t in trainers]
    return OpenProject(admin, deployment, owner, aggregator, trainers, pid, create, joins)


def measure(
    impl: str, artifacts: Artifacts, n: int, url: str, accounts: list[LocalAccount], trace: bool = False
) -> GasRow:
    """Runs a whole :data:`ROUNDS`-round project of ``n`` trainers on the chain at ``url`` (deployed from
    ``artifacts``) and records the gas of every step; with ``trace``, also the :func:`breakdown` of the last
    round's transactions (the node must keep execution steps: ``anvil --steps-tracing``)."""
    p = open_project(url, artifacts, n, ROUNDS, accounts)
    admin, owner, aggregator, trainers, pid = p.admin, p.owner, p.aggregator, p.trainers, p.project_id
    create, joins = p.create_gas, p.join_gas
    flags = [i % 4 == 3 for i in range(n)]  # a quarter flagged: exercises the slashing path
    commits, reveals, finalizes, parts = [], [], [], {}
    for round_ in range(ROUNDS):
        c, r, f = play_round(owner, aggregator, trainers, pid, round_, flags)
        commits.append(sum(_gas(x) for x in c) // n)
        reveals.append(sum(_gas(x) for x in r) // n)
        finalizes.append(_gas(f))
        if trace and round_ == ROUNDS - 1:
            parts = {name: breakdown(admin, tx) for name, tx in (("commit", c[0]), ("reveal", r[0]), ("finalize", f))}
    owed = [t for t in trainers if t.withdrawable(pid, t.address) > 0]  # a flagged trainer lost its whole stake
    withdraws = [_gas(t.chain.transact(t.market.functions.withdraw(pid))) for t in owed]
    batches = batched_round(url, artifacts, n, accounts) if "revealBatch" in _functions(artifacts) else None
    registries = reliability_registries(admin, artifacts)
    members = [t.address for t in trainers]
    first = reliability_gas(admin, registries, pid, 0, members, flags)
    later = reliability_gas(admin, registries, pid, 1, members, flags)
    return GasRow(
        impl=impl, trainers=n, rounds=ROUNDS, create=create, join=sum(joins) // n, largest_join=max(joins),
        commit=commits, reveal=reveals, reveal_batched=batches.reveal if batches else None, finalize=finalizes,
        withdraw=sum(withdraws) // len(withdraws),
        reliability_first=first, reliability_later=later, breakdown=parts,
        commit_batched=batches.commit if batches else None, finalize_batched=batches.finalize if batches else None,
    )  # fmt: skip


def _functions(artifacts: Artifacts) -> set[str]:
    return {f.get("name", "") for f in artifacts[MARKET].abi}


@dataclass(frozen=True)
class BatchedRound:
    """Gas per trainer of a later round run by the aggregator's batches: its ``commitBatch`` (None without one:
    the trainers committed one by one), its ``revealBatch`` and its ``finalizeRound``, each divided by N."""

    commit: int | None
    reveal: int
    finalize: int


def batched_round(url: str, artifacts: Artifacts, n: int, accounts: list[LocalAccount]) -> BatchedRound:
    """A later round (round 1 of a new project on the same chain; round 0 one by one) as the aggregator batches
    it: one ``commitBatch`` of all ``n`` trainers' signed commits (with the note ``TrainerNode`` sends; if the
    market has ``commitBatch``), one ``revealBatch`` of their openings, then the finalization."""
    p = open_project(url, artifacts, n, 2, accounts)
    flags = [False] * n
    play_round(p.owner, p.aggregator, p.trainers, p.project_id, 0, flags)
    where = p.owner.round_address(p.project_id, 1)
    commitments = [bytes(p.owner.chain.w3.keccak(text=f"update 1 {i}")) for i in range(n)]
    salts = [derive_salt(t.chain.account, where, c) for t, c in zip(p.trainers, commitments, strict=True)]
    seals = [seal(c, CID, t.address, where, s) for t, c, s in zip(p.trainers, commitments, salts, strict=True)]
    notes = [seal_note(t.chain.account, where, c, CID) for t, c in zip(p.trainers, commitments, strict=True)]
    commit_gas = None
    if "commitBatch" in _functions(artifacts):
        signed = [sign_commit(t.chain.account, where, s, m) for t, s, m in zip(p.trainers, seals, notes, strict=True)]
        receipt = p.aggregator.commit_batch(p.project_id, 1, signed)
        assert len(p.aggregator.batch_committed(receipt)) == n
        commit_gas = _gas(receipt) // n
    else:
        for t, s, m in zip(p.trainers, seals, notes, strict=True):
            t.commit_update(p.project_id, 1, s, m)
    openings = [Opening(t.address, CID, c, s) for t, c, s in zip(p.trainers, commitments, salts, strict=True)]
    receipt = p.aggregator.reveal_batch(p.project_id, 1, openings)
    assert len(p.aggregator.batch_revealed(receipt)) == n
    reveal_gas = _gas(receipt) // n
    scores = [1_000 + 37 * i for i in range(n)]
    proof = hash_proof_of_round(p.owner, p.project_id, 1, scores, flags)
    finalized = p.aggregator.finalize_round(p.project_id, 1, Finalization(CID, CID, scores, flags, proof))
    return BatchedRound(commit_gas, reveal_gas, _gas(finalized) // n)


def play_round(
    owner: MarketClient,
    aggregator: MarketClient,
    trainers: list[MarketClient],
    pid: int,
    round_: int,
    flags: list[bool],
) -> tuple[list[Any], list[Any], Any]:
    """Every trainer commits, then reveals, then the aggregator finalizes with the test verifier's proof;
    returns the receipts (commits, reveals, finalization)."""
    where = owner.round_address(pid, round_)
    commitments = [bytes(owner.chain.w3.keccak(text=f"update {round_} {i}")) for i in range(len(trainers))]
    salts = [derive_salt(t.chain.account, where, c) for t, c in zip(trainers, commitments, strict=True)]
    commits = [
        t.commit_update(pid, round_, seal(c, CID, t.address, where, s), seal_note(t.chain.account, where, c, CID))
        for t, c, s in zip(trainers, commitments, salts, strict=True)
    ]
    reveals = [  # every trainer committed: the reveal phase is open at once
        t.reveal_update(pid, round_, CID, c, s) for t, c, s in zip(trainers, commitments, salts, strict=True)
    ]
    scores = [1_000 + 37 * i for i in range(len(trainers))]
    proof = hash_proof_of_round(owner, pid, round_, scores, flags)
    finalized = aggregator.finalize_round(pid, round_, Finalization(CID, CID, scores, flags, proof))
    return commits, reveals, finalized


def hash_proof_of_round(owner: MarketClient, pid: int, round_: int, scores: list[int], flags: list[bool]) -> bytes:
    """The test verifier's "proof" of a round none of whose trainers is rejected; the contracts before the owner's
    reference row (the baseline) hash the values without a reference commitment."""
    rejected = [False] * len(scores)
    if "commitReference" in {f.get("name", "") for f in owner.market.abi}:
        return local_hash_proof(*recorded_verifier_inputs(owner, pid, round_, scores, flags, rejected))
    ordered = verifier_inputs(
        owner.round_commitments(pid, round_), scores, flags, rejected, owner.arrival_order(pid, round_)
    )
    values = [round_tag(owner, pid, round_), *ordered]
    return bytes(owner.chain.w3.keccak(abi_encode(["bytes32", "bytes32[]", "uint256[]", "bool[]"], values)))


def _gas(receipt: Any) -> int:
    return int(receipt["gasUsed"])


def reliability_registries(admin: ChainClient, artifacts: Artifacts) -> tuple[Contract, Contract]:
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


def breakdown(chain: ChainClient, receipt: Any) -> dict[str, int]:
    """Where a transaction's gas went (:data:`PARTS`), from the node's execution trace: the intrinsic gas
    (21,000, the calldata and the access list if any), storage reads and writes, logs, external calls (everything
    the callee spent included) and the rest of the computation. The parts sum to the gas used (none of these
    transactions earns a refund)."""
    tx = chain.get_transaction(receipt["transactionHash"])
    data = bytes(tx["input"])
    zeros = data.count(0)
    declared = tx.get("accessList") or []  # EIP-2930: 2,400 an account and 1,900 a slot, paid up front
    listed = 2_400 * len(declared) + 1_900 * sum(len(entry["storageKeys"]) for entry in declared)
    parts = Counter({"intrinsic": 21_000 + 4 * zeros + 16 * (len(data) - zeros) + listed})
    trace = chain.trace_transaction(receipt["transactionHash"])
    steps = trace["structLogs"]
    top = steps[0]["depth"]
    kinds = {"SLOAD": "storage reads", "SSTORE": "storage writes", "CALL": "external calls",
             "STATICCALL": "external calls", "DELEGATECALL": "external calls"}  # fmt: skip
    for i, step in enumerate(steps):
        if step["depth"] != top:
            continue
        j = i + 1
        while j < len(steps) and steps[j]["depth"] != top:
            j += 1
        cost = step["gas"] - steps[j]["gas"] if j < len(steps) else step["gasCost"]
        kind = "logs" if step["op"].startswith("LOG") else kinds.get(step["op"], "computation")
        parts[kind] += cost
    return {part: parts[part] for part in PARTS}


def run(sizes: Sequence[int], breakdown_at: int | None = None) -> list[GasRow]:
    """Measures every size with the old and the new contracts, each on its own fresh anvil."""
    accounts = dev_accounts(max(sizes) + 3)
    implementations = {OLD: baseline_artifacts(), NEW: compile_contracts()}
    rows = []
    for n in sizes:
        for impl, artifacts in implementations.items():
            trace = n == breakdown_at and impl == NEW
            with AnvilNode(extra_args=("--steps-tracing",) if trace else ()) as node:
                rows.append(measure(impl, artifacts, n, node.url, accounts, trace))
    return rows


COMPONENTS = ["N", "", "join / R", "commit", "batched commit", "reveal", "batched reveal", "finalize / N",
              "withdraw / R", "per round", "new / old", "later round", "later, batched"]  # fmt: skip
RELIABILITY = ["N", "", "first: batched", "one by one", "saved", "later: batched", "one by one", "saved"]


def _old_of(rows: list[GasRow], row: GasRow) -> GasRow | None:
    return next((r for r in rows if r.impl == OLD and r.trainers == row.trainers), None)


def component_cells(rows: list[GasRow], r: GasRow) -> list[str]:
    """One row of the per-trainer table, formatted."""
    old = _old_of(rows, r)
    ratio = f"{r.per_round / old.per_round:.2f}" if old and r.impl == NEW else ""
    numbers = [r.join_share, r.commit_mean, r.reveal_mean, r.finalize_share, r.withdraw_share, r.per_round]
    cells = [f"{x:,.0f}" for x in numbers]
    cells.insert(3, "" if r.reveal_batched is None else f"{r.reveal_batched:,}")
    cells.insert(2, "" if r.commit_batched is None else f"{r.commit_batched:,}")
    batched = "" if r.later_batched is None else f"{r.later_batched:,.0f}"
    return [str(r.trainers), r.impl, *cells, ratio, f"{r.later_round:,.0f}", batched]


def reliability_cells(r: GasRow) -> list[str]:
    """One row of the batching table, per trainer, formatted."""
    (b1, o1), (b2, o2), n = r.reliability_first, r.reliability_later, r.trainers
    return [str(r.trainers), r.impl, f"{b1 // n:,}", f"{o1 // n:,}", f"{r.saving_first:.1%}", f"{b2 // n:,}",
            f"{o2 // n:,}", f"{r.saving_later:.1%}"]  # fmt: skip


def render(rows: list[GasRow]) -> list[Table]:
    tables = [
        Table(title=f"Gas per trainer per round ({ROUNDS}-round project, test verifier)"),
        Table(title="Reliability: one recordRound for all trainers vs one per trainer, gas per trainer"),
    ]
    for col in COMPONENTS:
        tables[0].add_column(col, justify="right")
    for col in RELIABILITY:
        tables[1].add_column(col, justify="right")
    for r in rows:
        tables[0].add_row(*component_cells(rows, r))
        tables[1].add_row(*reliability_cells(r))
    traced = [r for r in rows if r.breakdown]
    for r in traced:
        table = Table(title=f"Where a later round's gas goes, N = {r.trainers} ({r.impl})")
        for col in ["", *PARTS, "total"]:
            table.add_column(col, justify="right")
        for name, parts in r.breakdown.items():
            table.add_row(name, *(f"{parts[p]:,}" for p in PARTS), f"{sum(parts.values()):,}")
        tables.append(table)
    return tables


def _markdown_table(columns: list[str], lines: list[list[str]]) -> str:
    head = ["| " + " | ".join(columns) + " |", "|" + "---:|" * len(columns)]
    return "\n".join(head + ["| " + " | ".join(cells) + " |" for cells in lines]) + "\n"


def markdown(rows: list[GasRow]) -> str:
    """The tables in Markdown (what the README's gas section shows)."""
    out = _markdown_table(COMPONENTS, [component_cells(rows, r) for r in rows])
    out += "\n" + _markdown_table(RELIABILITY, [reliability_cells(r) for r in rows])
    for r in rows:
        if r.breakdown:
            lines = [[name, *(f"{parts[p]:,}" for p in PARTS), f"{sum(parts.values()):,}"]
                     for name, parts in r.breakdown.items()]  # fmt: skip
            out += f"\nN = {r.trainers} ({r.impl}), a later round:\n\n" + _markdown_table(["", *PARTS, "total"], lines)
    return out


def write(rows: list[GasRow], out: Path, zk_rows: Sequence[Any] = ()) -> None:
    """``rows`` (and the zk section's ``zk_rows``, :class:`bench.gas_zk.ZkRow`) as JSON at ``out`` and Markdown next
    to it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    derived = [
        {"per_round": r.per_round, "later_round": r.later_round, "later_batched": r.later_batched,
         "saving_first": r.saving_first, "saving_later": r.saving_later}
        for r in rows
    ]  # fmt: skip
    data: list[dict[str, Any]] = [asdict(r) | d for r, d in zip(rows, derived, strict=True)]
    data += [{"zk": True, **asdict(r), "later_round": r.later_round} for r in zk_rows]
    out.write_text(json.dumps(data, indent=2))
    text = "# Gas report\n\n" + (markdown(rows) if rows else "")
    if zk_rows:
        from bench import gas_zk

        lines = [gas_zk.cells(list(zk_rows), r) for r in zk_rows]
        text += f"\n{gas_zk.TITLE}:\n\n" + _markdown_table(gas_zk.COLUMNS, lines)
    out.with_suffix(".md").write_text(text)


def zk_tables(zk_sizes: Sequence[int]) -> tuple[list[Any], Table]:
    """The zk section (:mod:`bench.gas_zk`): a later round with real proofs, split beside reusable verifier."""
    from bench import gas_zk

    zk_rows = [row for n in zk_sizes for row in gas_zk.measure(n)]
    table = Table(title=gas_zk.TITLE)
    for col in gas_zk.COLUMNS:
        table.add_column(col, justify="right")
    for r in zk_rows:
        table.add_row(*gas_zk.cells(zk_rows, r))
    return zk_rows, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainers", type=int, nargs="+", default=[4, 16, 32, 64])
    parser.add_argument("--breakdown", type=int, default=16, help="trace the new contracts' later round at this N")
    parser.add_argument("--out", type=Path, default=Path("reports/gas.json"))
    parser.add_argument(
        "--zk", type=int, nargs="*", default=[], help="also whole rounds with real proofs at these N (16 32: minutes)"
    )
    parser.add_argument("--zk-only", action="store_true", help="only the zk section")
    args = parser.parse_args()
    rows = [] if args.zk_only else run(args.trainers, args.breakdown)
    console = Console(width=170)
    for table in render(rows) if rows else []:
        console.print(table)
    zk_rows: list[Any] = []
    if args.zk:
        zk_rows, zk_table = zk_tables(args.zk)
        console.print(zk_table)
    write(rows, args.out, zk_rows)
    print(f"written {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
