"""Proving cost of a round's scoring circuit: setup, witness+prove, verify (off chain), peak memory,
proof size and on-chain verify gas, for each circuit size (N trainers x K-wide sketches).

    python -m bench.zk --sizes 8x32 16x32 16x64 [--out reports/zk.json]

Each size runs in its own process (peak memory is per process). Keys are cached in .cache/zk,
so a second run measures proving only (setup is reported as cached). Target: a 16-trainer
round proves in under 30 s and 4 GB on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table


def measure(n: int, k: int) -> dict[str, object]:
    """One size, in this process."""
    import ezkl

    from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
    from marketplace.adapters.chain.client import ChainClient
    from marketplace.adapters.ezkl.evm import deploy_halo2_verifier, deploy_round_verifier
    from marketplace.adapters.ezkl.keys import setup
    from marketplace.adapters.ezkl.prover import prove_rows
    from marketplace.protocol.commitment import commit_update
    from marketplace.protocol.round_tag import round_tag
    from marketplace.roles.verify import gas_to_succeed

    t0 = time.perf_counter()
    keys = setup(n, k)
    setup_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    base = rng.normal(size=5_000)
    rows = np.array([commit_update(base + rng.normal(size=5_000) * 0.6, 1, k)[0] for _ in range(n)])
    rows[-1, :k] *= -1  # one sign-flipped update
    load = os.getloadavg()[0]
    t1 = time.perf_counter()
    tag = round_tag(31337, "0x" + "00" * 19 + "01", 1, 0)  # any tag: the adapter is called directly
    proof = prove_rows(keys, rows, tag)
    prove_s = time.perf_counter() - t1
    with AnvilNode() as node:
        chain = ChainClient(node.url, dev_accounts(1)[0])
        halo2 = deploy_halo2_verifier(chain, keys)
        adapter = deploy_round_verifier(chain, keys, halo2.address)
        call = adapter.functions.verifyRound(
            tag, [h.to_bytes(32, "big") for h in proof.hashes], proof.scores, proof.flags, proof.proof
        )
        valid = bool(chain.call(call))
        gas = gas_to_succeed(chain, call)
    settings = json.loads(keys.settings.read_text())
    return {
        "n": n,
        "k": k,
        "logrows": keys.logrows,
        "rows": settings["num_rows"],
        "setup_s": round(setup_s, 1),
        "prove_s": round(prove_s, 1),
        "load": round(load, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "pk_gb": round(keys.pk.stat().st_size / 2**30, 2),
        "proof_bytes": len(proof.proof),
        "verify_gas": gas,
        "valid_on_chain": valid,
        "flagged": sum(proof.flags),
        "ezkl": ezkl.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["8x32", "16x32", "16x64"], help="NxK circuit sizes")
    parser.add_argument("--out", type=Path, default=Path("reports/zk.json"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        n, k = map(int, args.one.split("x"))
        print(json.dumps(measure(n, k)))
        return
    rows = []
    for size in args.sizes:
        out = subprocess.run([sys.executable, "-m", "bench.zk", "--one", size], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{size}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    table = Table(title="Round proofs (ezkl, reusable verifier; setup is once per circuit and cached)")
    cols = ["n", "k", "logrows", "rows", "setup_s", "prove_s", "load", "peak_rss_gb", "pk_gb", "proof_bytes",
            "verify_gas", "valid_on_chain"]  # fmt: skip
    for c in cols:
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(
            *(f"{r[c]:,}" if isinstance(r[c], int) and not isinstance(r[c], bool) else str(r[c]) for c in cols)
        )
    Console(width=160).print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
