"""Gas of whole rounds with the real zk verifier, the round circuit's own verifier split in two contracts ("split",
what ``marketplace zk deploy`` deploys) beside the reusable verifier under the VKA ("reusable", before it) and
the test verifier (its hash "proof": the difference is what verifying costs), in the same run: ``bench.gas``'s
zk section (``python -m bench.gas --zk 16 32``).

What is measured, per circuit size N (:data:`marketplace.adapters.ezkl.keys.CIRCUIT_SIZES`, cached keys): a
project of :data:`ROUNDS` rounds with N trainers committing and revealing real Poseidon row commitments one by
one, finalized by the aggregator with a real ezkl proof of each round (a quarter of the rows random, the last
one sign-flipped: the rule flags it). Each verifier runs on its own fresh anvil with the same accounts and the
same transactions before the project, so the market's address, the project id and hence every round tag are the
same in every run: each round is proven once and its proof finalizes it under both zk verifiers. Round 0 writes
new slots; round 1 is the later round of issue 16's target: commit + reveal + finalize / N.

Measured 2026-11-30 (``python -m bench.gas --zk 16 32 --zk-only``, ezkl 23.0.5; gas does not depend on the
machine), the later round; verification = finalize - the test verifier's finalize (the proof's calldata
included), saved = the reusable verifier's finalize - the split one's:

    N   verifier  commit  reveal  finalize   verification  finalize/N  later round  saved/round  saved/trainer
    16  test      45,514  54,029    457,544                    28,596      128,140
    16  reusable  45,514  54,263  1,794,217     1,336,673     112,139      211,916
    16  split     45,514  54,263  1,474,210     1,016,666      92,138      191,915      320,007         20,000
    32  test      45,505  54,027    807,680                    25,240      124,772
    32  reusable  45,505  54,261  2,358,989     1,551,309      73,718      173,484
    32  split     45,505  54,261  2,006,468     1,198,788      62,702      162,468      352,521         11,016

Gas step 5 (docs/design/gas-per-trainer.md: the commitment written over the seal, the trainer list in
``finalizeRound``'s calldata, access lists on the aggregator's batches and finalization), measured 2026-11-30 with
the same command, the later round, old (the brief's run before it) beside new:

    N   verifier  commit  reveal  finalize   verification  finalize/N  later round
    16  test      45,716  51,987    433,924                    27,120      124,823
    16  reusable  45,716  52,221  1,771,639     1,337,715     110,727      208,664
    16  split     45,716  52,221  1,451,534     1,017,610      90,721      188,658  (191,915 before)
    16  batched   26,977  22,394  1,451,534     1,017,610      90,721      140,092  (27,132 + 24,576 + 92,201 = 143,909)
    32  test      45,707  51,985    756,400                    23,638      121,330
    32  reusable  45,707  52,219  2,308,827     1,552,427      72,151      170,077
    32  split     45,707  52,219  1,956,206     1,199,806      61,131      159,057  (162,468 before)
    32  batched   26,023  21,255  1,956,206     1,199,806      61,131      108,409  (26,251 + 23,503 + 62,734 = 112,488)

"batched": the split verifier's project run by the aggregator's ``commitBatch`` and ``revealBatch``. Issue 16's
targets, a later round per trainer with on-chain verification: 140.1k <= 150k at N = 16 and **108.4k <= 110k at
N = 32** (112.5k, 2.5k over, before step 5: -3.8k and -4.1k per trainer). Verification is unchanged (1.02M and
1.20M per round); what step 5 saved is storage (a reveal's second cold slot, the stored trainer list's cold reads
in the finalization) and cold-access surcharges (the access lists).

Stale challenges (``MarketDisputes.challengeStale``), measured 2026-11-30 with the same command on the merge that
added them, the later round, before -> after: a reveal also writes the round's latest reveal time (``lastRevealAt``,
in the slot of ``slashed``, cold for the reveal: +2.1k read, +2.9k write when the block time changed), and
``finalizeRound`` checks the window, hashes the round's commitments and records them in a new word (+20.0k write,
+1.9k the access list's entry for it, +0.2k reads, +2.2k hashing and checks: +24.3k / +25.4k per round):

    N   verifier  commit  reveal  finalize   verification  finalize/N  later round
    16  split     45,703  54,649  1,475,770     1,017,578      92,236      192,588  (188,640 before)
    16  batched   26,987  22,704  1,475,770     1,017,578      92,236      141,927  (26,987 + 22,397 + 90,718 = 140,102)
    32  split     45,690  54,650  1,981,622     1,199,454      61,926      162,266  (159,042 before)
    32  batched   26,027  21,412  1,981,622     1,199,454      61,926      109,365  (26,027 + 21,258 + 61,132 = 108,417)

A batched later round costs a trainer +1,825 gas at N = 16 (batched reveal +307, finalize / N +1,518) and +948 at
N = 32 (+154, +794): **141.9k <= 150k and 109.4k <= 110k**, 0.6k of margin left at N = 32. Verification is
unchanged. A trainer's own reveal costs +2.4k on average here (+5.1k when its block's time differs from the
previous reveal's, ``bench.gas --breakdown``).

The split verifier saves 320k per round at N = 16 and 353k at N = 32 (the TopK circuit of 32 slots has more
columns, so more gates to interpret): 20.0k and 11.0k per trainer, as the design study predicted (20.2k /
10.7k, docs/design/gas-per-trainer.md). A later round with the zk verifier and one-by-one reveals costs a
trainer 191.9k at N = 16 and 162.5k at N = 32: issue 16's 150k / 110k need the batched reveals and commits of
the study's steps 3 and 4 as well. At 64 slots the split's helper does not fit (26,649 bytes) and rounds go
through the reusable verifier (not measured here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.gas import CID, open_project
from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
from marketplace.adapters.chain.compile import compile_contracts
from marketplace.adapters.chain.config import Deployment
from marketplace.adapters.chain.deploy import TEST_VERIFIER
from marketplace.adapters.chain.market import Finalization, MarketClient, Opening
from marketplace.protocol.round_tag import round_tag, tag_chunks
from marketplace.protocol.seal import derive_salt, seal, seal_note
from marketplace.protocol.signed_commit import sign_commit
from marketplace.round.prove import local_hash_proof, recorded_verifier_inputs

#: Rounds of the measured project (round 1 is the later round).
ROUNDS = 2
#: The verifiers compared, in the order they run; "batched" is the split verifier's project run by the
#: aggregator's batches (one ``commitBatch`` of signed commits and one ``revealBatch`` of openings per round).
VERIFIERS = ("test", "reusable", "split", "batched")


@dataclass
class ZkRow:
    """One verifier's project of ``trainers`` trainers: per round, the mean commit and reveal and the finalization."""

    trainers: int
    verifier: str  # one of VERIFIERS
    commit: list[int]
    reveal: list[int]
    finalize: list[int]
    proof_bytes: int  # the proof argument of finalizeRound (ABI-encoded Halo2 proof and tag hash)

    @property
    def later_round(self) -> float:
        """Commit + reveal + finalize / N of the later round: what each further round costs a trainer."""
        return self.commit[-1] + self.reveal[-1] + self.finalize[-1] / self.trainers


def _gas(receipt: Any) -> int:
    return int(receipt["gasUsed"])


def _rows(n: int, k: int, round_: int) -> np.ndarray:
    """The committed rows of a round (the same in every run): N noisy copies of one update, the last flipped."""
    from marketplace.protocol.commitment import commit_update

    rng = np.random.default_rng(1_000 * n + round_)
    base = rng.normal(size=5_000)
    rows = np.array([commit_update(base + rng.normal(size=5_000) * 0.6, 1, k)[0] for _ in range(n)])
    rows[-1, :k] *= -1
    return rows


def measure(n: int) -> list[ZkRow]:
    """The three verifiers' projects of ``n`` trainers (see the module docstring); proves each round once."""
    from marketplace.adapters.ezkl.evm import deploy_zk_verifier
    from marketplace.adapters.ezkl.keys import CIRCUIT_SIZES, setup
    from marketplace.adapters.ezkl.prover import CircuitProof, prove_rows
    from marketplace.protocol.commitment import commitment_bytes

    k = CIRCUIT_SIZES[n]
    keys = setup(n, k)
    accounts = dev_accounts(n + 3)
    rows = [_rows(n, k, r) for r in range(ROUNDS)]
    proofs: dict[int, CircuitProof] = {}
    out = []
    for kind in VERIFIERS:

        def verifier(base: MarketClient, deployment: Deployment, kind: str = kind) -> str:
            if kind == "test":
                return deployment.address(TEST_VERIFIER)
            return deploy_zk_verifier(base, keys, specific=kind in ("split", "batched"))[1]

        with AnvilNode() as node:
            p = open_project(node.url, compile_contracts(), n, ROUNDS, accounts, verifier)
            owner, pid = p.owner, p.project_id
            commits, reveals, finalizes = [], [], []
            for round_ in range(ROUNDS):
                commitments = [commitment_bytes(r) for r in rows[round_]]
                where = owner.round_address(pid, round_)
                salts = [derive_salt(t.chain.account, where, c) for t, c in zip(p.trainers, commitments, strict=True)]
                if kind == "batched":
                    commits.append(_commit_batch(p.aggregator, p.trainers, pid, round_, commitments, salts) // n)
                    openings = [Opening(t.address, CID, c, s)
                                for t, c, s in zip(p.trainers, commitments, salts, strict=True)]  # fmt: skip
                    reveals.append(_gas(p.aggregator.reveal_batch(pid, round_, openings)) // n)
                else:
                    commits.append(sum(
                        _gas(t.commit_update(pid, round_, seal(c, CID, t.address, where, s),
                                             seal_note(t.chain.account, where, c, CID)))
                        for t, c, s in zip(p.trainers, commitments, salts, strict=True)
                    ) // n)  # fmt: skip
                    reveals.append(sum(
                        _gas(t.reveal_update(pid, round_, CID, c, s))
                        for t, c, s in zip(p.trainers, commitments, salts, strict=True)
                    ) // n)  # fmt: skip
                tag = round_tag(owner.chain.chain_id, owner.market.address, pid, round_)
                proof = proofs.get(round_)
                if proof is None or proof.tag != tag_chunks(tag):
                    proof = proofs[round_] = prove_rows(keys, rows[round_], tag)
                assert [h.to_bytes(32, "big") for h in proof.hashes] == commitments
                given = proof.proof
                if kind == "test":
                    inputs = recorded_verifier_inputs(owner, pid, round_, proof.scores, proof.flags, [False] * n)
                    given = local_hash_proof(*inputs)
                result = Finalization(CID, CID, proof.scores, proof.flags, given)
                finalizes.append(_gas(p.aggregator.finalize_round(pid, round_, result)))
            out.append(ZkRow(n, kind, commits, reveals, finalizes, len(proofs[0].proof)))
    return out


def _commit_batch(
    aggregator: MarketClient,
    trainers: list[MarketClient],
    pid: int,
    round_: int,
    commitments: list[bytes],
    salts: list[bytes],
) -> int:
    """Gas of one ``commitBatch`` of every trainer's signed commit (the note ``TrainerNode`` sends)."""
    where = aggregator.round_address(pid, round_)
    signed = [
        sign_commit(t.chain.account, where, seal(c, CID, t.address, where, s), note)
        for t, c, s in zip(trainers, commitments, salts, strict=True)
        for note in [seal_note(t.chain.account, where, c, CID)]
    ]
    receipt = aggregator.commit_batch(pid, round_, signed)
    assert len(aggregator.batch_committed(receipt)) == len(trainers)
    return _gas(receipt)


COLUMNS = ["N", "verifier", "commit", "reveal", "finalize", "verification", "finalize / N", "later round",
           "saved / round", "saved / trainer"]  # fmt: skip


def cells(rows: list[ZkRow], r: ZkRow) -> list[str]:
    """One row of the table (the later round): verification = finalize - the test verifier's finalize; saved =
    the reusable verifier's finalize - this one's."""
    test = next(x for x in rows if x.trainers == r.trainers and x.verifier == "test")
    reusable = next((x for x in rows if x.trainers == r.trainers and x.verifier == "reusable"), None)
    saved = reusable.finalize[-1] - r.finalize[-1] if reusable is not None and r.verifier == "split" else None
    if r.verifier == "batched" and reusable is not None:  # against the reusable verifier, one by one
        saved = round(reusable.later_round * r.trainers - r.later_round * r.trainers)
    return [
        str(r.trainers), r.verifier, f"{r.commit[-1]:,}", f"{r.reveal[-1]:,}", f"{r.finalize[-1]:,}",
        "" if r.verifier == "test" else f"{r.finalize[-1] - test.finalize[-1]:,}",
        f"{r.finalize[-1] / r.trainers:,.0f}", f"{r.later_round:,.0f}",
        "" if saved is None else f"{saved:,}", "" if saved is None else f"{saved / r.trainers:,.0f}",
    ]  # fmt: skip


TITLE = f"A later round with real zk proofs: split vs reusable verifier (round {ROUNDS - 1}, gas)"
