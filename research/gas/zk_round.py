"""Gas of whole rounds with the real zk verifier (issue 16, gas design study): today's contracts, an
``EzklRoundVerifier`` of today's N-slot circuit (keys cached by :mod:`research.gas.zk_trace`), N trainers
committing and revealing real row commitments one by one, and the aggregator finalizing with a real proof
of each round (proved here: ~20-60 s and ~2.4 GB at N = 16, more at 32). Round 0 writes new slots; round 1
is the later round that issue 16's target is about.

    python -m research.gas.zk_round 16x32 [--cache /tmp/hgas-zk]

Prints per round: mean commit, mean reveal, finalize, and commit + reveal + finalize / N. Not imported by
the package or the tests.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from bench.gas import CID, open_project
from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
from marketplace.adapters.chain.compile import compile_contracts
from marketplace.adapters.chain.config import Deployment
from marketplace.adapters.chain.deploy import TEST_VERIFIER
from marketplace.adapters.chain.market import Finalization, MarketClient
from marketplace.adapters.ezkl.evm import deploy_zk_verifier
from marketplace.adapters.ezkl.keys import setup
from marketplace.adapters.ezkl.prover import prove_rows
from marketplace.protocol.commitment import commit_update, commitment_bytes
from marketplace.protocol.round_tag import round_tag
from marketplace.protocol.seal import derive_salt, seal, seal_note
from marketplace.round.prove import local_hash_proof, recorded_verifier_inputs

ROUNDS = 2


def _gas(receipt: Any) -> int:
    return int(receipt["gasUsed"])


def measure(n: int, k: int, cache: Path, test_verifier: bool = False) -> dict[str, Any]:
    """Both rounds; with ``test_verifier``, the same rounds (same rows, scores and flags) finalized with the
    test verifier (its hash "proof") instead: the difference is what verifying the zk proof costs."""
    keys = setup(n, k, root=cache)
    accounts = dev_accounts(n + 3)
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"n": n, "k": k, "rounds": []}
    with AnvilNode() as node:

        def verifier(base: MarketClient, deployment: Deployment) -> str:
            return deployment.address(TEST_VERIFIER) if test_verifier else deploy_zk_verifier(base, keys)[1]

        p = open_project(node.url, compile_contracts(), n, ROUNDS, accounts, verifier)
        owner, aggregator, trainers, pid = p.owner, p.aggregator, p.trainers, p.project_id
        for round_ in range(ROUNDS):
            base_update = rng.normal(size=5_000)
            rows = np.array([commit_update(base_update + rng.normal(size=5_000) * 0.6, 1, k)[0] for _ in range(n)])
            rows[-1, :k] *= -1
            commitments = [commitment_bytes(r) for r in rows]
            where = owner.round_address(pid, round_)
            salts = [derive_salt(t.chain.account, where, c) for t, c in zip(trainers, commitments, strict=True)]
            commits = [
                _gas(
                    t.commit_update(
                        pid, round_, seal(c, CID, t.address, where, s), seal_note(t.chain.account, where, c, CID)
                    )
                )
                for t, c, s in zip(trainers, commitments, salts, strict=True)
            ]
            reveals = [
                _gas(t.reveal_update(pid, round_, CID, c, s))
                for t, c, s in zip(trainers, commitments, salts, strict=True)
            ]
            proof = prove_rows(keys, rows, round_tag(owner.chain.chain_id, owner.market.address, pid, round_))
            assert [h.to_bytes(32, "big") for h in proof.hashes] == commitments
            given = proof.proof
            if test_verifier:
                inputs = recorded_verifier_inputs(owner, pid, round_, proof.scores, proof.flags, [False] * n)
                given = local_hash_proof(*inputs)
            result = Finalization(CID, CID, proof.scores, proof.flags, given)
            finalize = _gas(aggregator.finalize_round(pid, round_, result))
            c, r = sum(commits) / n, sum(reveals) / n
            out["rounds"].append(
                {
                    "commit": c,
                    "reveal": r,
                    "finalize": finalize,
                    "per_trainer": c + r + finalize / n,
                    "proof_arg_bytes": len(proof.proof),
                    "flagged": sum(proof.flags),
                }
            )
            print(json.dumps(out["rounds"][-1]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("size")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/hgas-zk"))
    ap.add_argument("--test-verifier", action="store_true", help="finalize with the test verifier instead")
    args = ap.parse_args()
    n, k = map(int, args.size.split("x"))
    print(json.dumps(measure(n, k, args.cache, args.test_verifier)), flush=True)


if __name__ == "__main__":
    main()
