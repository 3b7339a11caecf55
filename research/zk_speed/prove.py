"""Prove one circuit variant once and time it (small sizes only: N = 8 here, where setup and proving
take a minute and about 1 GB).

    python -m research.zk_speed.prove fast 8x32 --cols 3 [--srs PATH]

Each call is its own process (peak RSS is per process). Builds like
:func:`marketplace.adapters.ezkl.keys.setup` (export, settings at the smallest logrows, compile,
development SRS, setup), then witness, prove and verify on one random round; prints one JSON line:
rows, logrows, setup, witness, prove (wall and CPU), verify seconds, peak RSS, proving key size, the 1-minute load
average, and whether the outputs equal :func:`marketplace.rule.gram.gram_rule_int`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import ezkl
import numpy as np

from marketplace.adapters.ezkl.keys import CircuitKeys, compile_circuit, export_onnx, settings_for
from marketplace.protocol.commitment import quantize
from marketplace.protocol.round_tag import tag_input
from marketplace.rule.circuit import GramCircuit
from marketplace.rule.gram import gram_rule_int
from research.zk_speed.exact import TAG, VARIANTS, random_round


def _cpu() -> float:
    """CPU seconds (user + system) of this process so far: less sensitive to other load than wall time."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(variant: str, n: int, k: int, cols: int, srs: Path | None) -> dict[str, object]:
    """Build, prove and verify once; the measurements."""
    with tempfile.TemporaryDirectory(prefix="zk-prove-") as tmp:
        p = CircuitKeys(n, k, Path(tmp))
        export_onnx(VARIANTS[variant](n, k), n, k + 2, p.onnx, tag_width=GramCircuit.tag_width)
        settings = settings_for(p.onnx, p.settings, cols=cols)
        compile_circuit(p.onnx, p.compiled, p.settings)
        logrows = int(settings["run_args"]["logrows"])
        if srs is not None and srs.exists():
            shutil.copyfile(srs, p.srs)
        else:
            ezkl.gen_srs(str(p.srs), logrows)
            if srs is not None:
                shutil.copyfile(p.srs, srs)
        t0 = time.perf_counter()
        if not ezkl.setup(str(p.compiled), str(p.vk), str(p.pk), srs_path=str(p.srs)):
            raise RuntimeError("setup failed")
        setup_s = time.perf_counter() - t0
        rows = random_round(np.random.default_rng(1), n, k, 2)
        data = [[float(v) for v in row] for row in rows]
        takes_reference = getattr(VARIANTS[variant](n, k), "takes_reference", False)
        data += [[0.0] * (k + 2)] if takes_reference else []  # no reference row
        data += [tag_input(TAG)]
        (p.root / "in.json").write_text(json.dumps({"input_data": data}))
        load = os.getloadavg()[0]
        t1 = time.perf_counter()
        ezkl.gen_witness(str(p.root / "in.json"), str(p.compiled), str(p.root / "w.json"))
        t2 = time.perf_counter()
        cpu0 = _cpu()
        ezkl.prove(str(p.root / "w.json"), str(p.compiled), str(p.pk), str(p.root / "proof.json"), srs_path=str(p.srs))
        t3 = time.perf_counter()
        prove_cpu = _cpu() - cpu0
        ok = ezkl.verify(str(p.root / "proof.json"), str(p.settings), str(p.vk), srs_path=str(p.srs))
        t4 = time.perf_counter()
        w = json.loads((p.root / "w.json").read_text())
        ref = gram_rule_int(quantize(rows))
        exact = [ezkl.felt_to_int(v) for v in w["outputs"][0]] == ref.flags.astype(int).tolist() and [
            ezkl.felt_to_int(v) for v in w["outputs"][1]
        ] == ref.scores.tolist()
        return {
            "variant": variant, "n": n, "k": k, "cols": cols, "rows": int(settings["num_rows"]), "logrows": logrows,
            "setup_s": round(setup_s, 1), "witness_s": round(t2 - t1, 2), "prove_s": round(t3 - t2, 1),
            "prove_cpu_s": round(prove_cpu, 1),
            "verify_s": round(t4 - t3, 2), "verified": bool(ok), "exact": exact, "load": round(load, 2),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "pk_gb": round(p.pk.stat().st_size / 2**30, 2),
        }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variant", choices=sorted(VARIANTS))
    ap.add_argument("size")
    ap.add_argument("--cols", type=int, default=2)
    ap.add_argument("--srs", type=Path, default=None, help="reuse (or create) a development SRS of the right k here")
    args = ap.parse_args()
    n, k = map(int, args.size.split("x"))
    if n >= 16:
        raise SystemExit("this script proves small circuits only (N < 16); count larger ones with table.py")
    print(json.dumps(run(args.variant, n, k, args.cols, args.srs)), flush=True)


if __name__ == "__main__":
    main()
