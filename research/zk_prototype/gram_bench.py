"""Build, prove and verify the Gram circuit for one size; prints one JSON line of measurements.

Usage: ``python -m research.zk_prototype.gram_bench N K [--cols C] [--logrows L] [--evm]`` (one prove at a time;
artefacts under ``zk/build/gram_n{N}_k{K}_c{C}``, git-ignored; proving keys are 0.3 to 2 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import ezkl
import numpy as np
import torch

from marketplace.adapters.ezkl.keys import run_args
from marketplace.protocol.commitment import committed_rows, quantize, row_commitment
from marketplace.rule.circuit import GramCircuit
from marketplace.rule.gram import gram_rule_int
from research.zk_prototype.pipeline import BUILD, Paths, Timings, peak_rss_mb, read_vka, write_input

SCALE = 13


def gram_paths(n: int, k: int, cols: int) -> Paths:
    """``zk/build/gram_n{N}_k{K}_c{cols}``."""
    return Paths(BUILD / f"gram_n{n}_k{k}_c{cols}")


def export(n: int, k: int, path: Path) -> None:
    """ONNX of :class:`GramCircuit` with N inputs (1, K + 2), opset 17, TorchScript exporter."""
    model = GramCircuit(n, k).eval()
    torch.onnx.export(
        model,
        tuple(torch.zeros(1, k + 2) for _ in range(n)),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=[f"row{i}" for i in range(n)],
        output_names=["flags", "scores"],
    )


def demo_rows(n: int, k: int, seed: int = 0) -> np.ndarray:
    """Honest slots around a shared direction plus one boosted, one lazy, one copy, one flipped, one absent."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=k)
    s = base + rng.normal(size=(n, k)) * 0.8
    s *= np.exp(rng.normal(size=(n, 1)) * 0.2)
    s[0] *= 10.0  # boosted
    s[1] *= 0.02  # lazy
    s[3] = s[2]  # later copy of slot 2
    s[4] = -s[4]  # sign flip
    active = np.ones(n, dtype=bool)
    active[-1] = False
    return committed_rows(s, active)


def build(n: int, k: int, cols: int, logrows: int | None, tm: Timings) -> tuple[Paths, dict[str, Any]]:
    """Export, settings, compile, SRS (test-only gen_srs), setup."""
    p = gram_paths(n, k, cols)
    tm.run("export", export, n, k, p.onnx)
    assert ezkl.gen_settings(str(p.onnx), str(p.settings), py_run_args=run_args(logrows, cols))
    settings = json.loads(p.settings.read_text())
    assert tm.run("compile", ezkl.compile_circuit, str(p.onnx), str(p.compiled), str(p.settings))
    lr = settings["run_args"]["logrows"]
    srs = p.root / f"kzg{lr}.srs"
    if not srs.exists():
        tm.run("gen_srs", ezkl.gen_srs, str(srs), lr)
    assert tm.run("setup", ezkl.setup, str(p.compiled), str(p.vk), str(p.pk), srs_path=str(srs))
    return p, settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("k", type=int)
    ap.add_argument("--cols", type=int, default=2)
    ap.add_argument("--logrows", type=int, default=None)
    ap.add_argument("--evm", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="reuse the cached keys (skip export..setup)")
    args = ap.parse_args()
    n, k = args.n, args.k
    tm = Timings()
    load_before = os.getloadavg()
    if args.reuse:
        p = gram_paths(n, k, args.cols)
        settings = json.loads(p.settings.read_text())
    else:
        p, settings = build(n, k, args.cols, args.logrows, tm)
    srs = str(p.root / f"kzg{settings['run_args']['logrows']}.srs")
    rows = demo_rows(n, k)
    inp, wit, proof = p.root / "round.input.json", p.root / "round.witness.json", p.root / "round.proof.json"
    write_input(rows, inp)
    tm.run("witness", ezkl.gen_witness, str(inp), str(p.compiled), str(wit), vk_path=str(p.vk), srs_path=srs)
    rss_before_prove = peak_rss_mb()
    load_prove = os.getloadavg()
    tm.run("prove", ezkl.prove, str(wit), str(p.compiled), str(p.pk), str(proof), srs_path=srs)
    ok = bool(tm.run("verify", ezkl.verify, str(proof), str(p.settings), str(p.vk), srs_path=srs))
    w = json.loads(wit.read_text())
    flags = [ezkl.felt_to_int(v) for v in w["outputs"][0]]
    scores = [ezkl.felt_to_int(v) for v in w["outputs"][1]]
    ref = gram_rule_int(quantize(rows))
    hashes = w["processed_inputs"]["poseidon_hash"]
    pj = json.loads(proof.read_text())
    out: dict[str, Any] = {
        "n": n,
        "k": k,
        "cols": args.cols,
        "logrows": settings["run_args"]["logrows"],
        "num_rows": settings["num_rows"],
        "assignments": settings.get("total_assignments"),
        "seconds": tm.seconds,
        "verified": ok,
        "flags": flags,
        "flags_match_reference": flags == ref.flags.astype(int).tolist(),
        "scores_match_reference": scores == ref.scores.tolist(),
        "hashes_match_commitments": [str(h) for h in hashes] == [row_commitment(r) for r in rows],
        "proof_bytes": len(pj["proof"]),
        "pk_mb": round(p.pk.stat().st_size / 2**20, 1),
        "vk_kb": round(p.vk.stat().st_size / 2**10, 1),
        "peak_rss_mb_before_prove": round(rss_before_prove),
        "peak_rss_mb": round(peak_rss_mb()),
        "load_at_start": [round(x, 2) for x in load_before],
        "load_at_prove": [round(x, 2) for x in load_prove],
    }
    if args.evm:
        from research.zk_prototype.pipeline import evm_artifacts, evm_check

        t0 = time.perf_counter()
        evm_artifacts(p)
        out["evm_artifacts_s"] = round(time.perf_counter() - t0, 2)
        ev = evm_check(p)
        ev.pop("instances", None)
        ev.pop("return_words", None)
        out["evm"] = ev
        out["vka_words"] = len(read_vka(p))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
