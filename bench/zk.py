"""Proving cost of a round's scoring circuit, old and new layout side by side: rows, logrows, setup,
witness+prove (wall and CPU seconds), peak memory, proof size and on-chain verify gas, for each
circuit size (N trainers x K-wide sketches).

    python -m bench.zk --sizes 8x64 16x32 32x32 64x32 [--out reports/zk.json] [--no-legacy]

``new`` is the production circuit (:class:`marketplace.rule.circuit.GramCircuit` in its size's
layout, :data:`marketplace.rule.circuit.CIRCUIT_LAYOUTS`; keys from
:func:`marketplace.adapters.ezkl.keys.setup`, cached in ``.cache/zk``); ``old`` is the circuit before
issue 16 (``research/zk_speed/legacy.py``, 2 inner columns, built the same way, keys cached in
``.cache/zk/legacy/``). The old 64 x 32 needs logrows 20: only its rows and logrows are shown.
Setup runs in its own process, then proving in another (peak RSS is per process: the proving
figure is proving's own). A cached setup is reported as cached. The 1-minute load average is
printed beside every proof, and CPU seconds (user + system of the proving process, all threads),
which move less than wall time on a shared machine. Targets (issue 16): N = 16 in <= 15 s and
2 GB, N = 32 in <= 30 s and 3 GB, N = 64 in <= 90 s and 8 GB.

Measured 2026-11-29, ezkl 23.0.5, 2 cores shared with other sessions. "quiet": started at a
1-minute load below 0.7; otherwise load 2-10 with one core busy elsewhere (wall about CPU). prove =
wall s / CPU s:

    size   layout              k   rows      setup   prove quiet     prove loaded     peak RSS  proof    verify gas
    8x64   old Batcher         15   21,994    83 s                   37.2 / 21.6 s    1.25 GB  6,240 B  1,348,199
    8x64   new Batcher 2 cols  15   21,994    77 s   17.4 / 21.3 s   15.3 / 21.5 s    1.26 GB  6,240 B  1,349,019
    16x32  old Batcher         16   33,125   136 s   24.7 / 44.2 s   92.7 / 41.2 s    2.23 GB  6,240 B  1,395,282
    16x32  new Batcher 2 cols  15   25,618    57 s   12.3 / 22.2 s   21.3 / 21.1 s    1.26 GB  6,240 B  1,395,224
    32x32  old Batcher         17  128,653  ~240 s   56.1 / 93.2 s  148.4 / 84.5 s    4.17 GB  6,240 B  1,487,937
    32x32  new TopK 2 cols     16   53,717   148 s   29.3 / 53.3 s   51.3 / 50.9 s    2.58 GB  7,328 B  1,628,245
    64x32  old Batcher         20  564,221   (rows only)
    64x32  new TopK 3 cols     17  124,374   271 s   75.5 / 139.2 s  124.7 / 136.1 s  6.19 GB  9,664 B  2,159,131

Verify gas (the least gas with which ``EzklRoundVerifier.verifyRound`` accepts, within 1k) through the reusable
verifier under the VKA beside the circuit's own verifier split in two contracts (``verify_gas_split``, what
``marketplace zk deploy`` deploys), in the same run (2026-11-30, ``--sizes 16x32 32x32 --no-legacy``): 16x32
1,394,375 -> 1,071,710 (-322.7k), 32x32 1,627,083 -> 1,270,885 (-356.2k); both accepted. At 64x32 the split's
helper (26,649 B) does not fit: the column says so and rounds go through the reusable verifier.

Every proof verified on anvil and its outputs equalled ``gram_rule_int``. Issue 16's targets are met
in the quiet runs (32x32 twice: 29.3 and 29.4 s) and for memory everywhere; a loaded machine misses
the time targets (the prover gets one core).

With the owner's reference row (branch ``h-refcirc``; ``docs/design/robust-reference.md`` section 5),
the same layouts; rows and logrows (``--count``) before -> with it, and the proofs measured since:

    size   layout              rows before -> with ref   k   setup   prove wall / CPU (load)   peak RSS  verify gas
    8x64   new Batcher 2 cols   21,994 ->  24,702        15   91 s    48.1 / 21.9 s (7.3)      1.25 GB  1,349,607
    16x32  new Batcher 2 cols   25,618 ->  28,183        15   99 s   110.0 / 22.9 s (10.9)     1.26 GB  1,396,303
    32x32  new TopK 2 cols      53,717 ->  57,959        16   (not re-proven)
    64x32  new TopK 3 cols     124,374 -> 130,754        17   (not re-proven)

Measured 2026-11-30 at load 7-11 (other sessions' tests): wall time says nothing there, CPU seconds
compare: 21.9 against 21.3-21.5 s before at 8x64, 22.9 against 21.1-22.2 s at 16x32 (the same
logrows, 2-8 % more); peak RSS, proving key and proof size unchanged; verify gas +600 and +1,100.
32x32 and 64x32 keep their logrows, so their proving times should move as little (not re-proven
here: 64x32 needs 6 GB and minutes the shared machine did not have).

Since the reference row, ``old`` proofs (no reference instance) are verified by ezkl off chain
(``research/zk_speed/legacy_prove.py``): today's adapter cannot take them, so their verify gas is the
column above's.

Old beside new in one run since the reference row and the split verifier (2026-11-30, ``--sizes 8x64 16x32``,
load 1.9-2.1: about one core free; prove = wall / CPU s; verify gas: reusable -> split):

    size   layout              k   rows     setup   prove          peak RSS  pk       verify gas
    8x64   old Batcher         15  21,994   16.9 s  11.6 / 21.0 s  1.26 GB   0.49 GB  (off chain)
    8x64   new Batcher 2 cols  15  24,702   cached  12.1 / 21.9 s  1.26 GB   0.49 GB  1,349,810 -> 1,035,132
    16x32  old Batcher         16  33,125   31.7 s  22.3 / 41.4 s  2.23 GB   0.98 GB  (off chain)
    16x32  new Batcher 2 cols  15  28,183   cached  13.4 / 23.9 s  1.25 GB   0.49 GB  1,395,195 -> 1,072,529

N = 16 with the reference row: 13.4 s and 1.25 GB (targets 15 s, 2 GB: met at this load), the old circuit 22.3 s
and 2.23 GB in the same run. Every proof's outputs equalled ``gram_rule_int`` (no reference: the zero row).

32x32 and 64x32 with the circuit's reference row, old beside new (2026-11-30, ``--sizes 32x32 64x32``, load
2.6-4.4: other sessions' benchmarks at nice 19 and tests; wall time is not a quiet figure, CPU seconds compare
with the quiet runs above):

    size   layout              k   rows      setup   prove wall / CPU   peak RSS  pk       verify gas: reusable -> split
    32x32  old Batcher         17  128,653   79.2 s  108.8 / 92.4 s     4.16 GB   1.97 GB  (off chain)
    32x32  new TopK 2 cols     16   57,961   cached   53.1 / 53.1 s     2.58 GB   1.10 GB  1,628,523 -> 1,272,331
    64x32  old Batcher         20  564,221   (rows only)
    64x32  new TopK 3 cols     17  130,754   cached  201.1 / 151.1 s    6.19 GB   2.79 GB  2,159,376 (helper: 26.6 KB)

With the reference row the provers' CPU seconds are 53.1 at 32x32 (53.3 quiet before it: the quiet wall was 29.3 s)
and 151.1 at 64x32 (139.2 before, +8 %; the quiet wall was 75.5 s, so about 82 s expected quiet against the 90 s
target); peak RSS is unchanged (2.58 and 6.19 GB, targets 3 and 8 GB). Both proofs (the zero row in the reference
slot) verified on anvil and equalled ``gram_rule_int``'s outputs. The old 32x32 in the same run: 92.4 CPU s and 4.16 GB.
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
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

LAYOUTS = ("new", "old")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def _keys(layout: str, n: int, k: int, *, build: bool) -> Any:
    """The circuit's keys: built if ``build`` (``setup``; the old circuit's apart, ``legacy_keys``), else cached."""
    from marketplace.adapters.ezkl.keys import cached_keys, setup
    from research.zk_speed.legacy_prove import legacy_keys

    if layout == "old":
        return legacy_keys(n, k, build=build)
    if build:
        return setup(n, k)
    found = cached_keys(n, k)
    if not found:
        raise RuntimeError(f"no keys for {n}x{k}: run the setup step first")
    return found[0]


def _cached(layout: str, n: int, k: int) -> bool:
    from marketplace.adapters.ezkl.keys import cached_keys

    if layout == "new":
        return bool(cached_keys(n, k))
    try:
        return bool(_keys(layout, n, k, build=False))
    except RuntimeError:
        return False


def count(layout: str, n: int, k: int) -> dict[str, object]:
    """Rows and logrows only (ONNX export and ezkl's settings; no keys)."""
    import tempfile

    from marketplace.adapters.ezkl.keys import export_onnx, settings_for, smallest_logrows
    from marketplace.rule.circuit import GramCircuit, layout_for
    from research.zk_speed import legacy

    lay = layout_for(n)
    circuit = legacy.GramCircuit(n, k) if layout == "old" else GramCircuit(n, k, sort=lay.sort)
    cols = 2 if layout == "old" else lay.cols
    with tempfile.TemporaryDirectory(prefix="bench-zk-") as tmp:
        onnx, settings = Path(tmp) / "net.onnx", Path(tmp) / "settings.json"
        export_onnx(circuit, n, k + 2, onnx, tag_width=GramCircuit.tag_width)
        out = settings_for(onnx, settings, cols=cols)
    # logrows: what the rows need (ezkl itself would stay lower and overflow into more columns)
    return {"layout": layout, "n": n, "k": k, "sort": "batcher" if layout == "old" else lay.sort, "cols": cols,
            "rows": int(out["num_rows"]), "logrows": smallest_logrows(out)}  # fmt: skip


def setup_step(layout: str, n: int, k: int) -> dict[str, object]:
    """Keys of one circuit, in this process: setup seconds (``cached`` if they were there) and peak RSS."""
    cached = _cached(layout, n, k)
    t0 = time.perf_counter()
    _keys(layout, n, k, build=True)
    return {"setup_s": "cached" if cached else round(time.perf_counter() - t0, 1),
            "setup_peak_rss_gb": None if cached else _peak_gb()}  # fmt: skip


def measure(layout: str, n: int, k: int) -> dict[str, object]:
    """Prove one round with cached keys, in this process, and verify it on anvil."""
    import ezkl

    from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
    from marketplace.adapters.chain.client import ChainClient
    from marketplace.adapters.ezkl.dedicated import DoesNotFit
    from marketplace.adapters.ezkl.evm import deploy_halo2_verifier, deploy_round_verifier
    from marketplace.adapters.ezkl.prover import prove_rows
    from marketplace.protocol.commitment import commit_update, quantize
    from marketplace.protocol.round_tag import round_tag
    from marketplace.roles.verify import gas_to_succeed
    from marketplace.round.prove import NO_REFERENCE
    from marketplace.rule.gram import gram_rule_int

    keys = _keys(layout, n, k, build=False)
    rng = np.random.default_rng(0)
    base = rng.normal(size=5_000)
    rows = np.array([commit_update(base + rng.normal(size=5_000) * 0.6, 1, k)[0] for _ in range(n)])
    rows[-1, :k] *= -1  # one sign-flipped update
    tag = round_tag(31337, "0x" + "00" * 19 + "01", 1, 0)  # any tag: the adapter is called directly
    load = os.getloadavg()[0]
    if layout == "old":
        return _measure_old(keys, rows, tag, load)
    # no reference row (the zero row): what the adapter verifies today; the cost is the same with one
    t1, c1 = time.perf_counter(), _cpu()
    proof = prove_rows(keys, rows, tag)
    prove_s, prove_cpu = time.perf_counter() - t1, _cpu() - c1
    peak = _peak_gb()
    ref = gram_rule_int(quantize(rows))
    hashes = [h.to_bytes(32, "big") for h in proof.hashes]
    with AnvilNode() as node:
        chain = ChainClient(node.url, dev_accounts(1)[0])
        halo2 = deploy_halo2_verifier(chain, keys)
        adapter = deploy_round_verifier(chain, keys, halo2.address, specific=False)
        call = adapter.functions.verifyRound(tag, hashes, proof.scores, proof.flags, NO_REFERENCE, proof.proof)
        valid = bool(chain.call(call))
        gas = gas_to_succeed(chain, call)
        try:  # the circuit's own verifier, split in two contracts (rounds go through it)
            split = deploy_round_verifier(chain, keys, halo2.address, specific=True)
        except DoesNotFit as exc:  # 64 x 32: its helper does not fit (rounds go through the reusable verifier)
            split_gas: int | str = f"no: helper {exc.sizes['Halo2QuotientEval']:,} B"
            valid_split = None
        else:
            call = split.functions.verifyRound(tag, hashes, proof.scores, proof.flags, NO_REFERENCE, proof.proof)
            valid_split = bool(chain.call(call))
            split_gas = gas_to_succeed(chain, call)
    settings = json.loads(keys.settings.read_text())
    return {
        "layout": layout,
        "n": n,
        "k": k,
        "sort": _layout(n).sort,
        "cols": int(settings["run_args"]["num_inner_cols"]),
        "logrows": keys.logrows,
        "rows": settings["num_rows"],
        "prove_s": round(prove_s, 1),
        "prove_cpu_s": round(prove_cpu, 1),
        "load": round(load, 2),
        "peak_rss_gb": peak,
        "pk_gb": round(keys.pk.stat().st_size / 2**30, 2),
        "proof_bytes": len(proof.proof),
        "verify_gas": gas,
        "verify_gas_split": split_gas,
        "valid_on_chain": valid,
        "valid_split": valid_split,
        "exact": proof.flags == ref.flags.tolist() and proof.scores == ref.scores.tolist(),
        "flagged": sum(proof.flags),
        "ezkl": ezkl.__version__,
    }


def _measure_old(keys: Any, rows: np.ndarray, tag: bytes, load: float) -> dict[str, object]:
    """The old circuit's proof of the same round: proven and verified by ezkl off chain (its instances predate the
    reference row, so today's adapter cannot take them: no verify gas)."""
    import ezkl

    from marketplace.protocol.commitment import quantize
    from marketplace.rule.gram import gram_rule_int
    from research.zk_speed.legacy_prove import prove_legacy

    t1, c1 = time.perf_counter(), _cpu()
    proof = prove_legacy(keys, rows, tag)
    prove_s, prove_cpu = time.perf_counter() - t1, _cpu() - c1
    ref = gram_rule_int(quantize(rows))
    settings = json.loads(keys.settings.read_text())
    return {
        "layout": "old", "n": keys.n, "k": keys.k, "sort": "batcher",
        "cols": int(settings["run_args"]["num_inner_cols"]), "logrows": keys.logrows, "rows": settings["num_rows"],
        "prove_s": round(prove_s, 1),
        "prove_cpu_s": round(prove_cpu, 1), "load": round(load, 2), "peak_rss_gb": _peak_gb(),
        "pk_gb": round(keys.pk.stat().st_size / 2**30, 2), "proof_bytes": proof.proof_bytes,
        "verify_gas": "off chain", "verify_gas_split": "-", "valid_on_chain": proof.verified, "valid_split": None,
        "exact": proof.flags == ref.flags.tolist() and proof.scores == ref.scores.tolist(),
        "flagged": sum(proof.flags), "ezkl": ezkl.__version__,
    }  # fmt: skip


def _layout(n: int) -> Any:
    from marketplace.rule.circuit import layout_for

    return layout_for(n)


def _run(*args: str) -> dict[str, object] | None:
    """``python -m bench.zk <args>`` in its own process; its last JSON line, or None (failure printed)."""
    out = subprocess.run([sys.executable, "-m", "bench.zk", *args], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"{' '.join(args)}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
        return None
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run_size(layout: str, size: str) -> dict[str, object] | None:
    """One layout at one size: rows only for the old 64-slot circuit (logrows 20), else setup then prove."""
    n, _ = map(int, size.split("x"))
    if layout == "old" and n >= 64:
        return _run("--count", size, "--layout", layout)
    built = _run("--setup", size, "--layout", layout)
    if built is None:
        return None
    proved = _run("--one", size, "--layout", layout)
    return None if proved is None else {**proved, **built}


COLUMNS = ["layout", "n", "k", "sort", "cols", "logrows", "rows", "setup_s", "setup_peak_rss_gb", "prove_s",
           "prove_cpu_s", "load", "peak_rss_gb", "pk_gb", "proof_bytes", "verify_gas", "verify_gas_split",
           "valid_on_chain", "valid_split", "exact"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["8x64", "16x32", "32x32", "64x32"], help="NxK circuit sizes")
    parser.add_argument("--out", type=Path, default=Path("reports/zk.json"))
    parser.add_argument("--no-legacy", action="store_true", help="the new circuit only")
    parser.add_argument("--layout", choices=LAYOUTS, default="new", help=argparse.SUPPRESS)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    parser.add_argument("--count", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for step, fn in ((args.one, measure), (args.setup, setup_step), (args.count, count)):
        if step:
            n, k = map(int, step.split("x"))
            print(json.dumps(fn(args.layout, n, k)), flush=True)
            # ezkl's threads can crash the interpreter's shutdown (PyGILState_Release) after the work is
            # done and printed: leave without it
            os._exit(0)
    rows = []
    for size in args.sizes:
        for layout in ("new",) if args.no_legacy else LAYOUTS:
            got = run_size(layout, size)
            if got is not None:
                rows.append(got)
                print(json.dumps(got), flush=True)
    table = Table(
        title="Round proofs, new and old layout (ezkl; setup once per circuit, cached); verify gas through the "
        "reusable verifier and through the circuit's own verifier, split"
    )
    for c in COLUMNS:
        table.add_column(c, justify="right")
    for r in rows:
        cells = [r.get(c, "") for c in COLUMNS]
        table.add_row(*(f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v) for v in cells))
    Console(width=220).print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
