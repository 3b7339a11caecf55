"""Where the zk verifier's gas goes (issue 16, gas design study): prove one round of today's production
circuit of N slots (``marketplace.adapters.ezkl.keys.setup``; keys in their own cache, ``--cache``), then run
``EzklRoundVerifier.verifyRound`` as a transaction on an anvil that keeps execution steps and split its gas:

- intrinsic: 21,000 and the calldata (the proof bytes, N commitments, scores and flags as ABI words);
- precompiles called by the Halo2 verifier: ecAdd (0x06), ecMul (0x07), pairing (0x08), modexp (0x05), by count;
- the adapter's own work (instances, tag chunks, the VKA read back with EXTCODECOPY, the ABI copy into the
  Halo2 verifier's call) and the Halo2 verifier's own computation (transcript hashing, field arithmetic).

Proofs are saved (``<cache>/proof-n{N}-k{K}.json``), so a second run traces without proving again.

    python -m research.gas.zk_trace 8x64 16x32 32x32 [--cache /tmp/hgas-zk] [--out reports/zk-gas-trace.json]

Runs every size in its own process (memory). Not imported by the package or the tests.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

PRECOMPILES = {1: "ecrecover", 2: "sha256", 4: "identity", 5: "modexp", 6: "ecAdd", 7: "ecMul", 8: "pairing"}
CALLS = {"CALL", "STATICCALL", "DELEGATECALL"}


def prove(n: int, k: int, cache: Path) -> dict[str, Any]:
    """Keys (cached under ``cache``) and one proved round; the proof as JSON-able values."""
    from marketplace.adapters.ezkl.keys import setup
    from marketplace.adapters.ezkl.prover import prove_rows
    from marketplace.protocol.commitment import commit_update
    from marketplace.protocol.round_tag import round_tag

    path = cache / f"proof-n{n}-k{k}.json"
    if path.exists():
        return json.loads(path.read_text())
    keys = setup(n, k, root=cache)
    rng = np.random.default_rng(0)
    base = rng.normal(size=5_000)
    rows = np.array([commit_update(base + rng.normal(size=5_000) * 0.6, 1, k)[0] for _ in range(n)])
    rows[-1, :k] *= -1  # one sign-flipped update, as bench/zk.py
    tag = round_tag(31337, "0x" + "00" * 19 + "01", 1, 0)
    proof = prove_rows(keys, rows, tag)
    out = {
        "n": n, "k": k, "tag": tag.hex(), "halo2_proof": proof.halo2_proof.hex(), "hashes": proof.hashes,
        "reference_hash": proof.reference_hash, "tag_hash": proof.tag_hash, "flags": proof.flags,
        "scores": proof.scores,
        "vka_words": len(keys.vka_words()), "logrows": keys.logrows,
    }  # fmt: skip
    path.write_text(json.dumps(out))
    return out


def _trace(chain: Any, tx_hash: bytes) -> list[dict[str, Any]]:
    options = {"disableStack": False, "disableMemory": True, "disableStorage": True}
    return chain._request("debug_traceTransaction", ["0x" + tx_hash.hex(), options])["structLogs"]


def split(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Gas of each precompile kind (count and gas, the call's own cost included), EXTCODECOPY, and the
    computation of each call depth outside those."""
    pre: Counter[str] = Counter()
    count: Counter[str] = Counter()
    by_depth: Counter[int] = Counter()
    ops: dict[int, Counter[str]] = {}
    for i, step in enumerate(steps[:-1]):
        nxt = steps[i + 1]
        op, depth = step["op"], step["depth"]
        if op in CALLS and nxt["depth"] == depth:  # a precompile (or a call that failed at once)
            target = int(step["stack"][-2], 16)
            name = PRECOMPILES.get(target, f"0x{target:x}")
            pre[name] += step["gas"] - nxt["gas"]
            count[name] += 1
            continue
        if op in CALLS:  # a real call: only what it costs before entering the callee
            cost = step["gasCost"] if step["gasCost"] < 10**6 else 100
            by_depth[depth] += min(cost, 2_700)
            continue
        cost = step["gas"] - nxt["gas"] if nxt["depth"] == depth else step["gasCost"]
        by_depth[depth] += cost
        ops.setdefault(depth, Counter())[op] += cost
    return {
        "precompiles": dict(pre),
        "counts": dict(count),
        "by_depth": {str(d): g for d, g in sorted(by_depth.items())},
        "top_ops": {str(d): dict(c.most_common(14)) for d, c in sorted(ops.items())},
    }


def trace(n: int, k: int, cache: Path) -> dict[str, Any]:
    """``verifyRound`` of the saved proof as a transaction, split by :func:`split`."""
    from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
    from marketplace.adapters.chain.client import ChainClient
    from marketplace.adapters.ezkl.evm import deploy_halo2_verifier, deploy_round_verifier
    from marketplace.adapters.ezkl.keys import setup
    from marketplace.adapters.ezkl.prover import encode_round_proof

    p = prove(n, k, cache)
    keys = setup(n, k, root=cache)
    proof = encode_round_proof(bytes.fromhex(p["halo2_proof"]), p["tag_hash"])
    with AnvilNode(extra_args=("--steps-tracing",)) as node:
        chain = ChainClient(node.url, dev_accounts(1)[0])
        halo2 = deploy_halo2_verifier(chain, keys)
        adapter = deploy_round_verifier(chain, keys, halo2.address)
        call = adapter.functions.verifyRound(
            bytes.fromhex(p["tag"]),
            [h.to_bytes(32, "big") for h in p["hashes"]],
            p["scores"],
            p["flags"],
            b"\0" * 32,
            proof,
        )
        assert chain.call(call), "the proof does not verify"
        receipt = chain.transact(call, gas=5_000_000)
        data = bytes(chain.get_transaction(receipt["transactionHash"])["input"])
        zeros = data.count(0)
        parts = split(_trace(chain, bytes(receipt["transactionHash"])))
        halo2_code = len(chain.code(halo2.address))
    return {
        "n": n, "k": k, "logrows": p["logrows"], "instances": 3 * n + 9, "vka_words": p["vka_words"],
        "halo2_proof_bytes": len(bytes.fromhex(p["halo2_proof"])), "calldata_bytes": len(data),
        "calldata_gas": 4 * zeros + 16 * (len(data) - zeros), "gas_used": int(receipt["gasUsed"]),
        "halo2_code_bytes": halo2_code, **parts,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="+")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/hgas-zk"))
    ap.add_argument("--out", type=Path, default=Path("reports/zk-gas-trace.json"))
    ap.add_argument("--one", action="store_true", help="measure the single size in this process")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.one:
        n, k = map(int, args.sizes[0].split("x"))
        print(json.dumps(trace(n, k, args.cache)), flush=True)
        return
    results = []
    for size in args.sizes:
        cmd = [sys.executable, "-m", "research.gas.zk_trace", size, "--one", "--cache", str(args.cache)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        results.append(json.loads(out))
        print(out, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
