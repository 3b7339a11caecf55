"""Build, prove and verify one circuit size; prints a JSON line of measurements.

Usage: ``python -m research.zk_prototype.bench N K [--logrows L]`` (run it under ``/usr/bin/time -v`` for peak RSS).
"""

from __future__ import annotations

import argparse
import json

import ezkl
import numpy as np

from marketplace.protocol.commitment import row_commitment
from research.zk_prototype.circuit import CircuitConfig, make_rows, quantize, reference_int
from research.zk_prototype.pipeline import build, peak_rss_mb, prove, verify


def demo_round(cfg: CircuitConfig, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Honest rows around a shared direction, one boosted, one lazy, one copy, one absent."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=cfg.k) * 0.7
    s = base + rng.normal(size=(cfg.n, cfg.k)) * 0.7
    s[0] *= 6.0  # boosted
    s[1] *= 0.02  # lazy
    s[3] = s[2]  # duplicate
    active = np.ones(cfg.n, dtype=bool)
    active[-1] = False
    return s, active


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("k", type=int)
    ap.add_argument("--logrows", type=int, default=None)
    args = ap.parse_args()
    cfg = CircuitConfig(n=args.n, k=args.k)
    s, active = demo_round(cfg)
    rows = make_rows(s, active)
    p, tm, settings = build(cfg, rows, logrows=args.logrows)
    wit = prove(p, rows, tm=tm)
    ok = verify(p, tm=tm)
    flags_ref, scores_ref = reference_int(quantize(rows), cfg)
    outs = wit["outputs"]
    flags = [ezkl.felt_to_int(v) for v in outs[0]]
    scores = [ezkl.felt_to_int(v) for v in outs[1]]
    hashes = wit["processed_inputs"]["poseidon_hash"]
    commits = [row_commitment(r) for r in rows]
    proof = json.loads((p.root / "round.proof.json").read_text())
    print(
        json.dumps(
            {
                "n": cfg.n,
                "k": cfg.k,
                "logrows": settings["run_args"]["logrows"],
                "num_rows": settings["num_rows"],
                "seconds": tm.seconds,
                "verified": ok,
                "flags": flags,
                "flags_match_reference": flags == flags_ref.tolist(),
                "scores_match_reference": scores == scores_ref.tolist(),
                "hashes_match_commitments": [str(h) for h in hashes] == [str(c) for c in commits],
                "proof_bytes": len(bytes.fromhex(proof["proof"].removeprefix("0x")))
                if isinstance(proof.get("proof"), str)
                else None,
                "pk_mb": round(p.pk.stat().st_size / 2**20, 1),
                "peak_rss_mb": round(peak_rss_mb()),
            }
        )
    )


if __name__ == "__main__":
    main()
