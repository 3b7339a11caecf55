"""Batched commits and reveals, measured (issue 16, gas design study): the market with
``research/gas/batched.patch`` applied (``revealBatch``: anyone submits several trainers' openings;
``commitBatch``: anyone submits several trainers' EIP-712-signed seals), on an anvil without the code size
limit (the patched market is over 24 KB: see docs/design/gas-per-trainer.md).

One project of 4 rounds with N trainers and the test verifier: round 0 warms the slots up (a project's first
round writes new slots), then one later round each way:

- ``one by one``: every trainer sends its commit and its reveal (today);
- ``batched reveals``: every trainer sends its commit, the aggregator one ``revealBatch`` with every opening;
- ``batched both``: the aggregator sends one ``commitBatch`` and one ``revealBatch``.

Gas per trainer of a later round = the trainers' own transactions + the batches / N + finalize / N.

    python -m research.gas.batched [--trainers 16 32] [--out reports/gas-batched.json]

Not imported by the package or the tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

from eth_account import Account

from bench.gas import CID, breakdown, open_project
from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
from marketplace.adapters.chain.compile import Artifacts, compile_contracts
from marketplace.adapters.chain.market import Finalization, MarketClient
from marketplace.adapters.ezkl.prover import encode_round_proof
from marketplace.adapters.toolchain import project_root
from marketplace.protocol.seal import derive_salt, seal, seal_note
from marketplace.round.prove import local_hash_proof, recorded_verifier_inputs

HERE = Path(__file__).resolve().parent
MARKET = "TrainingMarket"


def prototype_artifacts(*patches: Path) -> Artifacts:
    """``contracts/`` with ``patches`` applied in turn, compiled (cached) under ``build/gas-proto-<hash>/``."""
    root = project_root()
    digest = hashlib.sha256((root / "contracts" / "TrainingMarket.sol").read_bytes())
    for patch in patches:
        digest.update(patch.read_bytes())
    target = root / "build" / f"gas-proto-{digest.hexdigest()[:12]}"
    if not (target / "contracts").is_dir():
        shutil.copytree(root / "contracts", target / "contracts")
        for patch in patches:
            subprocess.run(["patch", "-s", "-p1", "-d", str(target / "contracts"), "-i", str(patch)], check=True)
    return compile_contracts(target / "contracts", out=target / "contracts.json")


def code_size(artifacts: Artifacts, name: str = MARKET) -> int:
    return len(bytes.fromhex(artifacts[name].deployed_bytecode.removeprefix("0x")))


def _gas(receipt: Any) -> int:
    return int(receipt["gasUsed"])


def sign_commit(market: MarketClient, account: Any, project_id: int, round_: int, seal_: bytes, note: bytes) -> tuple:
    """The trainer's EIP-712 signature of its commit, as ``commitBatch`` takes it."""
    domain = {
        "name": "TrainingMarket",
        "version": "1",
        "chainId": market.chain.chain_id,
        "verifyingContract": market.market.address,
    }
    types = {
        "Commit": [
            {"name": "projectId", "type": "uint256"},
            {"name": "round", "type": "uint256"},
            {"name": "seal", "type": "bytes32"},
            {"name": "noteHash", "type": "bytes32"},
        ]
    }
    message = {"projectId": project_id, "round": round_, "seal": seal_, "noteHash": bytes(market.chain.w3.keccak(note))}
    signed = Account.sign_typed_data(account.key, domain, types, message)
    return (account.address, seal_, note, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"))


def later_round(
    owner: MarketClient,
    aggregator: MarketClient,
    trainers: list[MarketClient],
    pid: int,
    round_: int,
    flags: list[bool],
    mode: str,
    proof_bytes: int,
    receipts: dict[str, Any] | None = None,
) -> dict[str, int]:
    """One round, commits and reveals as ``mode`` says (:data:`MODES`); gas of each part, summed over the
    round. ``proof_bytes`` > 0: the finalization carries a proof argument of that many random bytes (a zk
    proof's size; only a market that does not verify at finalization accepts it), else the test verifier's.
    ``receipts``, if given, gets the batches' and the finalization's receipts."""
    receipts = {} if receipts is None else receipts
    where = owner.round_address(pid, round_)
    commitments = [bytes(owner.chain.w3.keccak(text=f"update {round_} {i}")) for i in range(len(trainers))]
    salts = [derive_salt(t.chain.account, where, c) for t, c in zip(trainers, commitments, strict=True)]
    seals = [seal(c, CID, t.address, where, s) for t, c, s in zip(trainers, commitments, salts, strict=True)]
    notes = [seal_note(t.chain.account, where, c, CID) for t, c in zip(trainers, commitments, strict=True)]
    out: dict[str, int] = {}
    if mode == BOTH:
        signed = [
            sign_commit(owner, t.chain.account, pid, round_, s, n)
            for t, s, n in zip(trainers, seals, notes, strict=True)
        ]
        receipts["commit batch"] = aggregator.chain.transact(
            aggregator.market.functions.commitBatch(pid, round_, signed)
        )
        out["commit batch"] = _gas(receipts["commit batch"])
    else:
        out["commits"] = sum(
            _gas(t.commit_update(pid, round_, s, n)) for t, s, n in zip(trainers, seals, notes, strict=True)
        )
    if mode == ONE_BY_ONE:
        out["reveals"] = sum(
            _gas(t.reveal_update(pid, round_, CID, c, s)) for t, c, s in zip(trainers, commitments, salts, strict=True)
        )
    else:
        openings = [(t.address, CID, c, s) for t, c, s in zip(trainers, commitments, salts, strict=True)]
        receipts["reveal batch"] = aggregator.chain.transact(
            aggregator.market.functions.revealBatch(pid, round_, openings)
        )
        out["reveal batch"] = _gas(receipts["reveal batch"])
    scores = [1_000 + 37 * i for i in range(len(trainers))]
    if proof_bytes:
        proof = encode_round_proof(random.Random(round_).randbytes(proof_bytes), 2**250 + round_)
    else:
        proof = local_hash_proof(*recorded_verifier_inputs(owner, pid, round_, scores, flags, [False] * len(scores)))
    receipts["finalize"] = aggregator.finalize_round(pid, round_, Finalization(CID, CID, scores, flags, proof))
    out["finalize"] = _gas(receipts["finalize"])
    return out


ONE_BY_ONE, REVEALS, BOTH = "one by one", "batched reveals", "batched both"
MODES = (ONE_BY_ONE, REVEALS, BOTH)


def measure(n: int, artifacts: Artifacts, proof_bytes: int = 0, trace: bool = False) -> dict[str, Any]:
    """A project of ``len(MODES) + 1`` rounds: round 0 one by one (new slots), then one later round per mode;
    with ``trace``, also where the batches' gas goes (``bench.gas.breakdown``) in the ``batched both`` round."""
    accounts = dev_accounts(n + 3)
    tracing = ("--steps-tracing",) if trace else ()
    receipts: dict[str, Any] = {}
    with AnvilNode(extra_args=("--disable-code-size-limit", *tracing)) as node:
        p = open_project(node.url, artifacts, n, len(MODES) + 1, accounts)
        admin, owner, aggregator, trainers, pid = p.admin, p.owner, p.aggregator, p.trainers, p.project_id
        flags = [i % 4 == 3 for i in range(n)]
        later_round(owner, aggregator, trainers, pid, 0, flags, ONE_BY_ONE, proof_bytes)  # new slots
        rows = {
            mode: later_round(owner, aggregator, trainers, pid, 1 + i, flags, mode, proof_bytes, receipts)
            for i, mode in enumerate(MODES)
        }
        parts = {name: breakdown(admin, r) for name, r in receipts.items()} if trace else {}
    per_trainer = {
        name: {k: round(v / n) for k, v in parts.items()} | {"total": round(sum(parts.values()) / n)}
        for name, parts in rows.items()
    }
    return {"n": n, "proof_bytes": proof_bytes, "per_trainer": per_trainer, "breakdown": parts}


def _reverts(chain: Any, call: Any) -> bool:
    try:
        chain.call(call)
    except Exception:  # any revert (ChainError, web3's ContractLogicError)
        return True
    return False


def checks(artifacts: Artifacts, n: int = 4) -> dict[str, bool]:
    """The batches' behaviour the design relies on (section 3b of the design doc), on the prototype: a trainer
    that commits or reveals by itself first is skipped by the batch, not a revert; a trainer left out of the
    reveal batch (censored) reveals itself and the round finalizes; a wrong signer, a signature of another
    round and a bad opening are refused."""
    accounts = dev_accounts(n + 4)
    out: dict[str, bool] = {}
    with AnvilNode(extra_args=("--disable-code-size-limit",)) as node:
        p = open_project(node.url, artifacts, n, 2, accounts)
        owner, aggregator, trainers, pid = p.owner, p.aggregator, p.trainers, p.project_id
        market, chain = aggregator.market, aggregator.chain
        where = owner.round_address(pid, 0)
        commitments = [bytes(owner.chain.w3.keccak(text=f"check {i}")) for i in range(n)]
        salts = [derive_salt(t.chain.account, where, c) for t, c in zip(trainers, commitments, strict=True)]
        seals = [seal(c, CID, t.address, where, s) for t, c, s in zip(trainers, commitments, salts, strict=True)]
        signed = [sign_commit(owner, t.chain.account, pid, 0, s, b"") for t, s in zip(trainers, seals, strict=True)]
        stranger = sign_commit(owner, accounts[n + 3], pid, 0, seals[0], b"")
        forged = (trainers[0].address, *stranger[1:])
        out["a commit signed by another key is refused"] = _reverts(
            chain, market.functions.commitBatch(pid, 0, [forged])
        )
        trainers[-1].commit_update(pid, 0, seals[-1], b"")  # commits by itself before the batch
        batch = chain.transact(market.functions.commitBatch(pid, 0, signed))
        out["a trainer that committed by itself is skipped by the batch"] = (
            len(chain.events(batch, market, "UpdateCommitted")) == n - 1
        )
        openings = [(t.address, CID, c, s) for t, c, s in zip(trainers, commitments, salts, strict=True)]
        bad = [(openings[1][0], CID, commitments[1], salts[0])]
        out["an opening with another salt is refused (prototype: reverts)"] = _reverts(
            chain, market.functions.revealBatch(pid, 0, bad)
        )
        trainers[0].reveal_update(pid, 0, CID, commitments[0], salts[0])  # reveals by itself before the batch
        batch = chain.transact(market.functions.revealBatch(pid, 0, openings[:-1]))  # the last one left out
        out["a trainer that revealed by itself is skipped by the batch"] = (
            len(chain.events(batch, market, "UpdateSubmitted")) == n - 2
        )
        trainers[-1].reveal_update(pid, 0, CID, commitments[-1], salts[-1])  # the censored trainer reveals itself
        out["every trainer revealed"] = all(
            chain.call(market.functions.commitmentOf(pid, 0, t.address)) == c
            for t, c in zip(trainers, commitments, strict=True)
        )
        flags, scores = [False] * n, [1_000 + i for i in range(n)]
        proof = local_hash_proof(*recorded_verifier_inputs(owner, pid, 0, scores, flags, flags))
        done = aggregator.finalize_round(pid, 0, Finalization(CID, CID, scores, flags, proof))
        rewards = chain.events(done, market, "RoundFinalized")[0]["args"]["rewards"]
        out["the round with a censored trainer finalizes and pays it"] = rewards[-1] > 0
        out["a signed commit of round 0 is refused in round 1"] = _reverts(
            chain, market.functions.commitBatch(pid, 1, signed[:1])
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trainers", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--out", type=Path, default=Path("reports/gas-batched.json"))
    ap.add_argument("--breakdown", type=int, default=16, help="trace the batches at this N")
    ap.add_argument("--proof-bytes", type=int, default=6144, help="the zk proof's size (research.gas.zk_trace)")
    args = ap.parse_args()
    batched = prototype_artifacts(HERE / "batched.patch")
    optimistic = prototype_artifacts(HERE / "batched.patch", HERE / "optimistic.patch")
    result = {
        "market_bytes_today": code_size(compile_contracts()),
        "market_bytes_batched": code_size(batched),
        "market_bytes_optimistic": code_size(optimistic),
        "verified": [measure(n, batched, trace=n == args.breakdown) for n in args.trainers],
        "optimistic": [measure(n, optimistic, args.proof_bytes) for n in args.trainers],
        "checks": checks(batched),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
