"""How the aggregator's per-round time and memory grow with model size D and trainer count N.

    python -m bench.scale [--quick] [--dims 1e4 1e5 1e6 1e7] [--trainers 8 16 32] [--out reports/scale.json]

For each D the parent process starts a real local IPFS node (embedded Kubo, ``LocalIpfsNode``),
generates max(N) synthetic float32 updates (an honest shared direction plus noise; every 8th
trainer sign-flips, the one before it sends a zero update) and pins each as a two-tensor
safetensors file with :class:`~marketplace.adapters.ipfs.ModelStore`; the trainer-side commitment is
:func:`marketplace.protocol.commitment.commit_update`. Then, per N, a fresh subprocess (the aggregator)
does one round on the first N updates, phase by phase:

a. **fetch**: ``ModelStore.get_tensors`` (IPFS cat, CID check, safetensors header and
   names/shapes/dtypes/finite check) + flatten, one update at a time into an N x D float32 matrix;
b. **sketch**: CountSketch of every row to K = 64 (``marketplace.protocol.sketch``); ``hash gen``
   is the one-time (cached) draw of the bucket/sign arrays for ``(seed, D, 64)``, reported apart;
c. **commit**: committed row (``committed_row``) + Poseidon hash (``commitment_bytes``), compared
   with the trainer's commitment (the same functions ``commit_update`` composes, minus its sketch);
d. **gram**: ``GramScorer(64, seed, weighting="equal").evaluate`` - the integer Gram rule on the
   committed rows (flags + integer scores) and ``shares``;
e. **fedavg**: ``GramScorer.aggregate`` - the mean of the inliers' full updates (float64 accumulator).

Beside the fetch, outside the round, the **raw cat**: the same N objects read from the node's
``/api/v0/cat`` in turn, one HTTP stream each as ``IpfsClient.cat`` sends it, bytes counted and
dropped (:func:`raw_cat`): the node's side of the fetch without the client's joining of the pieces,
CID re-hash, safetensors parsing and checks and flatten. It runs after the fetch, so both read
blocks the node has just served. Their ratio and the CPU of each split between the aggregator
process (client) and the IPFS node show where the fetch time goes.

Memory is the process's resident set (``/proc/self/status``), so numpy, torch, ezkl and httpx
allocations all count: ``base`` is after imports and warm-up; each phase resets the high-water
mark (``/proc/self/clear_refs``) and reads ``VmHWM`` at its end; ``peak`` is the largest. The
IPFS node is a separate process; ``node`` is its high-water mark during the child's round.
Threads: ``torch.set_num_threads(1)`` and single-threaded BLAS in the child.

Measured on an idle machine (``python -m bench.scale``, 2026-11-30, before other work started: load 0.6-1.1
during the run, the ``load`` column, 1-minute average at the end of each round). MB = 10^6 bytes; throughput in
MB/s of float32 update bytes (wall clock); ``round`` = fetch + sketch + commit + gram + FedAvg (not the one-time
hash draw, not the raw cat); ``CPU`` = CPU seconds of the aggregator process plus the IPFS node's during the
round; ``peak MB`` = the aggregator's peak RSS, in brackets with ``gc.collect()`` after each fetch;
``node MB`` = the IPFS node's peak RSS. Every round flagged exactly the synthetic attackers.

    | D | N | MB | fetch (MB/s) | raw cat (MB/s) | fetch / cat | fetch CPU cl.+node | cat CPU cl.+node | load |
    |---:|---:|---:|---:|---:|---:|---:|---:|---:|
    | 1e+04 | 8 | 0.32 | 410 ms (1) | 346 ms (1) | 1.19 | 0.04 + 0.04 s | 0.03 + 0.04 s | 0.8 |
    | 1e+04 | 16 | 0.64 | 776 ms (1) | 694 ms (1) | 1.12 | 0.07 + 0.08 s | 0.04 + 0.08 s | 0.7 |
    | 1e+04 | 32 | 1.3 | 1.56 s (1) | 1.45 s (1) | 1.07 | 0.14 + 0.15 s | 0.07 + 0.17 s | 0.7 |
    | 1e+05 | 8 | 3.2 | 295 ms (11) | 147 ms (22) | 2.01 | 0.04 + 0.07 s | 0.03 + 0.04 s | 0.7 |
    | 1e+05 | 16 | 6.4 | 511 ms (12) | 272 ms (24) | 1.88 | 0.10 + 0.10 s | 0.04 + 0.09 s | 0.7 |
    | 1e+05 | 32 | 13 | 683 ms (19) | 872 ms (15) | 0.78 | 0.16 + 0.21 s | 0.07 + 0.23 s | 0.7 |
    | 1e+06 | 8 | 32 | 512 ms (62) | 292 ms (110) | 1.75 | 0.18 + 0.29 s | 0.06 + 0.20 s | 0.7 |
    | 1e+06 | 16 | 64 | 1.10 s (58) | 448 ms (143) | 2.45 | 0.35 + 0.52 s | 0.10 + 0.40 s | 0.7 |
    | 1e+06 | 32 | 128 | 1.74 s (73) | 954 ms (134) | 1.83 | 0.63 + 0.91 s | 0.15 + 0.85 s | 0.6 |
    | 1e+07 | 8 | 320 | 2.89 s (111) | 1.24 s (257) | 2.32 | 1.39 + 1.99 s | 0.20 + 1.27 s | 0.8 |
    | 1e+07 | 16 | 640 | 5.82 s (110) | 2.94 s (218) | 1.98 | 3.15 + 3.59 s | 0.48 + 2.95 s | 1.1 |
    | 1e+07 | 32 | 1,280 | 10.6 s (121) | 6.40 s (200) | 1.66 | 5.88 + 6.52 s | 0.93 + 6.31 s | 1.1 |

    | D | N | sketch (MB/s) | commit | gram | FedAvg | round | CPU | peak MB | node MB |
    |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
    | 1e+04 | 8 | 0.3 ms (1,208) | 70 ms | 0.9 ms | 0.2 ms | 481 ms | 152 ms | 254 | 123 |
    | 1e+04 | 16 | 0.4 ms (1,448) | 137 ms | 0.9 ms | 0.2 ms | 914 ms | 285 ms | 254 | 127 |
    | 1e+04 | 32 | 1.3 ms (951) | 283 ms | 0.9 ms | 0.4 ms | 1.84 s | 577 ms | 255 | 127 |
    | 1e+05 | 8 | 7.8 ms (413) | 68 ms | 0.8 ms | 1.4 ms | 374 ms | 193 ms | 262 | 132 |
    | 1e+05 | 16 | 3.3 ms (1,962) | 141 ms | 0.8 ms | 1.3 ms | 657 ms | 347 ms | 264 | 132 |
    | 1e+05 | 32 | 33 ms (388) | 278 ms | 0.9 ms | 3.1 ms | 998 ms | 690 ms | 272 | 133 |
    | 1e+06 | 8 | 59 ms (540) | 70 ms | 0.8 ms | 12 ms | 653 ms | 610 ms | 316 | 157 |
    | 1e+06 | 16 | 106 ms (607) | 156 ms | 1.3 ms | 23 ms | 1.38 s | 1.16 s | 348 | 172 |
    | 1e+06 | 32 | 150 ms (851) | 274 ms | 1.0 ms | 26 ms | 2.20 s | 1.99 s | 412 | 169 |
    | 1e+07 | 8 | 538 ms (595) | 70 ms | 1.0 ms | 132 ms | 3.63 s | 4.12 s | 891 (888) | 280 |
    | 1e+07 | 16 | 994 ms (644) | 138 ms | 1.3 ms | 246 ms | 7.20 s | 8.12 s | 1,211 (1,208) | 306 |
    | 1e+07 | 32 | 1.64 s (782) | 280 ms | 1.2 ms | 470 ms | 13.0 s | 14.8 s | 1,845 (1,849) | 323 |

The same table at load 3.4-5.7 (2 cores shared with sessions running zk proofs and tests; kept for
comparison, in the findings below): fetch 78-90 MB/s at 1e7 against the raw cat's 123-171 (fetch / cat
1.05-2.5 from 1e6 up), a 16.3 s fetch and an 18.7 s round (14.7 CPU-s) at 1e7 x 32.

Findings:

* **Fetch dominates** at every size. Idle, from D = 1e6 up the checked fetch takes 1.66-2.45x the raw
  cat's wall time (110-121 MB/s against 200-257 MB/s at 1e7); loaded (load 3.4-5.7) 1.05-2.5x (78-90
  against 123-171 MB/s). The node's CPU is about the same either way (0.20 CPU-s per 40 MB update idle:
  ``Download`` from embedded Kubo, streamed back over HTTP); the client's is what the checks add: 0.03
  CPU-s per 40 MB update for the raw cat against 0.18 for ``get_tensors`` + flatten (joining the pieces
  into one ``bytes``, CID re-hash, safetensors parse and finite check, the copy into the matrix). At
  1e7 x 32 idle: fetch 5.88 (client) + 6.52 (node) CPU-s in 10.6 s of wall, raw cat 0.93 + 6.31 CPU-s
  in 6.4 s: the fetch is CPU-bound and its two halves overlap only in part (12.4 CPU-s in 10.6 s on two
  free cores), so the checks cost about as much wall time as the node's serving. At D = 1e4 both are
  latency-bound, ~45 ms per object on the kept-alive connection in the raw cat as in the fetch (fetch /
  cat 1.07-1.19); at 1e5 the ratio scatters (0.78-2.0) around latencies of the same order.
* The issue's idle-machine figures (``get_tensors`` of 4 x 40 MB updates at 140-160 MB/s, 1.25x the
  raw cat's ~190 MB/s) are **not confirmed** by this idle run: 110-121 MB/s, about 2x the raw cat
  (200-257 MB/s). Where the time goes is now on record (the CPU columns): the client's checks, ~0.18
  CPU-s per 40 MB, run after the bytes arrive and do not overlap the node's streaming of the next
  update. Fetching the next update while checking the last one would hide most of them (not done:
  fetching is not a target of issue 16). An earlier loaded run (load 2.7-9.4) gave fetch / cat 1.45-3.0
  from 1e6 up and a 22.6 s round (15.0 s CPU) at 1e7 x 32.
* **Sketch** (one ``np.bincount`` per row) runs at 270-760 MB/s wall from 1e6 up; the one-time hash
  draw for ``(seed, D, 64)`` costs ~10 ms at 1e6 and 0.08-0.24 s at 1e7 (80 MB, cached). **Commit**
  (committed row + Poseidon hash of 66 values, via ezkl) is 8-23 ms per trainer (once 55 ms, at
  1e4 x 32, under load) and **gram** 1-9 ms, both independent of D. **FedAvg** is linear in N*D
  (0.47 s at 1e7 x 32).
* **Memory**: base 250 MB (numpy, torch, ezkl, httpx imported), then the N x D float32 matrix plus
  transients of a few D-sized arrays (sketch weights in float64, the FedAvg float64 accumulator, the
  80 MB hash arrays at 1e7): 1.86 GB at 1e7 x 32 for 1.28 GB of updates; ``gc.collect()`` after each
  fetch no longer changes it (bracketed values) since ``ModelStore.get_bytes`` frees fetched objects at
  once (a generation-1 collect after checking any object of 1 MiB or more, against traceback cycles
  left by ``multiformats``' CID parsing; ``tests/test_storage_store.py``). Before that fix the peak
  was 2.4 GB at 1e7 x 32. A two-pass aggregator that re-fetches the inliers for FedAvg would need O(D)
  instead of O(N*D).
* The run before the raw cat column (load 3.2-4.2): fetch ~40 MB/s from 1e6 up, 0.7 CPU-s per 40 MB
  update in client plus node, 39.4 s and 27.7 s CPU for a 1e7 x 32 round. Timings repeat only to
  about +-30 % on this shared machine (compare the two runs above); the CPU columns are the steadier
  measure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

K = 64
SEED = 7
QUICK_DIMS = [10**4, 10**6]
QUICK_TRAINERS = [8, 16]
FULL_DIMS = [10**4, 10**5, 10**6, 10**7]
FULL_TRAINERS = [8, 16, 32]
PHASES = ["fetch", "sketch", "commit", "gram", "fedavg"]
_SINGLE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


# --------------------------------------------------------------------------- memory (Linux /proc)


def _status_kb(key: str, pid: int | str = "self") -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def rss_mb(pid: int | str = "self") -> float:
    """Current resident set in MB (10^6 bytes)."""
    return _status_kb("VmRSS", pid) * 1024 / 1e6


def hwm_mb(pid: int | str = "self") -> float:
    """Resident-set high-water mark in MB since start or the last :func:`reset_hwm`."""
    return _status_kb("VmHWM", pid) * 1024 / 1e6


def reset_hwm(pid: int | str = "self") -> bool:
    """Reset the high-water mark to the current RSS (Linux >= 4.0); False if not permitted."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------- synthetic updates


def spec_for(d: int) -> dict[str, tuple[tuple[int, ...], str]]:
    """A two-tensor layout of D float32 parameters (a dense layer's weight and bias)."""
    cols = 100
    return {"fc.weight": ((d // cols - 1, cols), "float32"), "fc.bias": ((d - (d // cols - 1) * cols,), "float32")}


def attacker_kind(i: int) -> str | None:
    """Every 8th trainer sign-flips, the one before it sends a zero update (25 % attackers)."""
    return {7: "sign_flip", 6: "zero"}.get(i % 8)


def synthetic_update(i: int, d: int, base: np.ndarray) -> np.ndarray:
    """Trainer i's flat float32 update: shared direction + half its norm of noise (cosine ~ 0.8)."""
    rng = np.random.default_rng(1000 + i)
    u = base + rng.standard_normal(d, dtype=np.float32) * np.float32(0.5e-3)
    kind = attacker_kind(i)
    if kind == "sign_flip":
        u *= -1
    elif kind == "zero":
        u[:] = 0
    return u


def split(vec: np.ndarray, spec: dict[str, tuple[tuple[int, ...], str]]) -> dict[str, np.ndarray]:
    out, pos = {}, 0
    for name, (shape, _) in spec.items():
        size = int(np.prod(shape))
        out[name] = vec[pos : pos + size].reshape(shape)
        pos += size
    return out


def put_updates(api_url: str, d: int, n: int) -> dict[str, Any]:
    """Pin n synthetic updates of D parameters; returns the manifest the aggregator child reads."""
    from marketplace.adapters.ipfs import IpfsClient, ModelStore
    from marketplace.protocol.commitment import commit_update

    spec = spec_for(d)
    base = np.random.default_rng(0).standard_normal(d, dtype=np.float32) * np.float32(1e-3)
    cids, commitments = [], []
    put_s = 0.0
    with IpfsClient(api_url, timeout=120.0) as client:
        store = ModelStore(client)
        for i in range(n):
            u = synthetic_update(i, d, base)
            t0 = time.perf_counter()
            cids.append(store.put_tensors(split(u, spec), {"trainer": i}))
            put_s += time.perf_counter() - t0
            commitments.append(commit_update(u, SEED, K)[1].hex())
            del u
    return {
        "d": d,
        "seed": SEED,
        "spec": {k: [list(s), t] for k, (s, t) in spec.items()},
        "cids": cids,
        "commitments": commitments,
        "attackers": [i for i in range(n) if attacker_kind(i)],
        "put_s": put_s,
    }


# --------------------------------------------------------------------------- the aggregator round (child)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_cat(api_url: str, cids: list[str]) -> int:
    """Read every CID in turn from the node's ``/api/v0/cat`` and throw the bytes away; returns the bytes read.

    The node's side of a fetch alone: one HTTP stream per object, as ``IpfsClient.cat`` sends it, but
    without joining the pieces into one ``bytes``, the CID check, the safetensors parsing and checks, or
    the flatten that ``ModelStore.get_tensors`` and the fetch phase add."""
    import httpx

    total = 0
    with httpx.Client(base_url=f"{api_url}/api/v0", timeout=120.0) as http:
        for cid in cids:
            with http.stream("POST", "cat", params={"arg": cid}) as response:
                if response.status_code != 200:
                    raise RuntimeError(f"raw cat of {cid}: HTTP {response.status_code}: {response.read()[:200]!r}")
                for piece in response.iter_raw():
                    total += len(piece)
    return total


@contextmanager
def phase(name: str, out: dict[str, dict[str, float]]) -> Iterator[None]:
    """Record a phase's wall time, this process's CPU time and the RSS high-water mark reached."""
    reset_hwm()
    t0, c0 = time.perf_counter(), time.process_time()
    yield
    out[name] = {"s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "peak_mb": hwm_mb()}


def aggregate_round(
    api_url: str, manifest: dict[str, Any], n: int, node_pid: int | None, collect: bool = False
) -> dict[str, Any]:
    """One aggregator round on the first n updates of ``manifest``, in this process.

    ``collect=True`` runs ``gc.collect()`` after each fetched update (see the module doc)."""
    import gc

    import torch

    torch.set_num_threads(1)
    from marketplace.adapters.ipfs import IpfsClient, ModelStore
    from marketplace.fl.models import tensors_to_vector
    from marketplace.protocol.commitment import commitment_bytes, committed_row, zero_row_commitment
    from marketplace.protocol.constants import MAX_UPDATE_BYTES
    from marketplace.protocol.sketch import sketch, sketch_params
    from marketplace.rule.gram import shares
    from marketplace.rule.scorer import GramScorer

    d, seed = int(manifest["d"]), int(manifest["seed"])
    spec = {k: (tuple(s), t) for k, (s, t) in manifest["spec"].items()}
    cids = manifest["cids"][:n]
    want = [bytes.fromhex(c) for c in manifest["commitments"][:n]]
    scorer = GramScorer(sketch_dim=K, seed=seed, weighting="equal", arrival=range(n))
    phases: dict[str, dict[str, float]] = {}
    with IpfsClient(api_url, timeout=120.0) as client:
        store = ModelStore(client)
        # warm-up outside the clock: HTTP connection, ezkl's Poseidon, numpy's bincount
        client.version()
        zero_row_commitment(K)
        sketch(np.ones(1000, dtype=np.float32), K, seed + 1)
        sketch_params.cache_clear()
        base_mb = rss_mb()
        node_cpu0 = cpu_s(node_pid) if node_pid else 0.0
        if node_pid:
            reset_hwm(node_pid)

        with phase("fetch", phases):
            updates = np.empty((n, d), dtype=np.float32)
            valid = np.zeros(n, dtype=bool)
            for i, cid in enumerate(cids):
                bundle = store.get_tensors(cid, expected=spec, max_bytes=MAX_UPDATE_BYTES)
                updates[i] = tensors_to_vector(bundle, spec)
                valid[i] = True
                del bundle
                if collect:
                    gc.collect()
        node_mb = hwm_mb(node_pid) if node_pid else float("nan")
        node_cpu = cpu_s(node_pid) - node_cpu0 if node_pid else float("nan")

        # the node's raw cat of the same updates, outside the round: where the fetch time goes
        cat_node_cpu0 = cpu_s(node_pid) if node_pid else 0.0
        with phase("cat", phases):
            cat_bytes = raw_cat(client.api_url, cids)
        cat_node_cpu = cpu_s(node_pid) - cat_node_cpu0 if node_pid else float("nan")

        with phase("hash", phases):
            sketch_params(seed, d, K)
        with phase("sketch", phases):
            sketches = np.stack([sketch(row, K, seed) for row in updates])
        with phase("commit", phases):
            rows = np.stack([committed_row(s) for s in sketches])
            matches = np.array([commitment_bytes(r) == w for r, w in zip(rows, want, strict=True)])
        if not matches.all():
            raise RuntimeError(f"commitment mismatch for trainers {np.flatnonzero(~matches).tolist()}")
        valid &= matches
        with phase("gram", phases):
            res = scorer.evaluate(rows, valid)
            paid = shares(res.scores)
        with phase("fedavg", phases):
            _, agg = scorer.aggregate(updates, valid, res.flags)
    assert agg is not None and agg.shape == (d,)
    flagged = np.flatnonzero(res.flags).tolist()
    peak_phase = max((p for p in phases if p != "cat"), key=lambda p: phases[p]["peak_mb"])
    mb = n * d * 4 / 1e6
    return {
        "d": d,
        "n": n,
        "gc_each_fetch": collect,
        "data_mb": round(mb, 2),
        **{f"{p}_s": round(v["s"], 4) for p, v in phases.items()},
        **{f"{p}_cpu_s": round(v["cpu_s"], 4) for p, v in phases.items()},
        "fetch_node_cpu_s": round(node_cpu, 3),
        "cat_node_cpu_s": round(cat_node_cpu, 3),
        "cat_bytes": cat_bytes,
        **{f"{p}_peak_mb": round(v["peak_mb"], 1) for p, v in phases.items()},
        "fetch_mb_s": round(mb / phases["fetch"]["s"], 1),
        "cat_mb_s": round(mb / phases["cat"]["s"], 1),
        "sketch_mb_s": round(mb / phases["sketch"]["s"], 1),
        "round_s": round(sum(phases[p]["s"] for p in PHASES), 3),
        "round_cpu_s": round(sum(phases[p]["cpu_s"] for p in PHASES) + node_cpu, 3),
        "base_mb": round(base_mb, 1),
        "peak_mb": round(phases[peak_phase]["peak_mb"], 1),
        "peak_phase": peak_phase,
        "node_peak_mb": round(node_mb, 1),
        "flagged": flagged,
        "attackers": [i for i in manifest["attackers"] if i < n],
        "paid_share_max": round(float(paid.max()), 4),
        "load": round(os.getloadavg()[0], 2),
    }


# --------------------------------------------------------------------------- parent


def run_child(api_url: str, manifest_path: Path, n: int, node_pid: int | None, collect: bool) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.scale", "--child", str(manifest_path), "--api", api_url, "--n", str(n)]
    if node_pid:
        cmd += ["--node-pid", str(node_pid)]
    if collect:
        cmd += ["--collect"]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **_SINGLE_THREAD})
    if out.returncode != 0:
        raise RuntimeError(f"aggregator child D={manifest_path.stem} N={n} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run(dims: list[int], trainers: list[int], gc_dims: list[int], log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Every (D, N) round as the code is; for D in ``gc_dims`` also with ``gc.collect()`` per fetch."""
    from marketplace.adapters.ipfs import LocalIpfsNode

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for d in dims:
            # a fresh node (and repo) per D keeps the disk use to one D's updates
            with LocalIpfsNode(Path(tmp) / f"repo-{d}") as node:
                node_pid = node.process.pid if node.process else None
                t0 = time.perf_counter()
                manifest = put_updates(node.api_url, d, max(trainers))
                log(f"D={d:.0e}: pinned {max(trainers)} updates in {time.perf_counter() - t0:.1f} s")
                path = Path(tmp) / f"{d}.json"
                path.write_text(json.dumps(manifest))
                for n in trainers:
                    for collect in [False, True] if d in gc_dims else [False]:
                        row = run_child(node.api_url, path, n, node_pid, collect)
                        row["put_mb_s"] = round(max(trainers) * d * 4 / 1e6 / manifest["put_s"], 1)
                        rows.append(row)
                        gc_note = " (gc.collect per fetch)" if collect else ""
                        log(f"  N={n}: round {row['round_s']:.2f} s, peak {row['peak_mb']:.0f} MB{gc_note}")
    return rows


def dur(seconds: float) -> str:
    """``12.3 ms`` under a second, ``1.23 s`` above."""
    return f"{1e3 * seconds:.1f} ms" if seconds < 1.0 else f"{seconds:.2f} s"


COLUMNS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("D", lambda r: f"{r['d']:.0e}"),
    ("N", lambda r: str(r["n"])),
    ("data MB", lambda r: f"{r['data_mb']:,.1f}"),
    ("fetch", lambda r: dur(r["fetch_s"])),
    ("fetch CPU", lambda r: dur(r["fetch_cpu_s"] + r["fetch_node_cpu_s"])),
    ("fetch MB/s", lambda r: f"{r['fetch_mb_s']:,.0f}"),
    ("raw cat", lambda r: dur(r["cat_s"])),
    ("cat CPU", lambda r: dur(r["cat_cpu_s"] + r["cat_node_cpu_s"])),
    ("cat MB/s", lambda r: f"{r['cat_mb_s']:,.0f}"),
    ("fetch / cat", lambda r: f"{r['fetch_s'] / r['cat_s']:.2f}x"),
    ("hash gen", lambda r: dur(r["hash_s"])),
    ("sketch", lambda r: dur(r["sketch_s"])),
    ("sketch CPU", lambda r: dur(r["sketch_cpu_s"])),
    ("sketch MB/s", lambda r: f"{r['sketch_mb_s']:,.0f}"),
    ("commit", lambda r: dur(r["commit_s"])),
    ("gram", lambda r: dur(r["gram_s"])),
    ("fedavg", lambda r: dur(r["fedavg_s"])),
    ("round", lambda r: dur(r["round_s"])),
    ("round CPU", lambda r: dur(r["round_cpu_s"])),
    ("base MB", lambda r: f"{r['base_mb']:,.0f}"),
    ("peak MB", lambda r: f"{r['peak_mb']:,.0f}"),
    ("node MB", lambda r: f"{r['node_peak_mb']:,.0f}"),
    ("flagged", lambda r: "attackers" if r["flagged"] == r["attackers"] else str(r["flagged"])),
]


def table(rows: list[dict[str, Any]]) -> Table:
    t = Table(title=f"aggregator round vs model size D and trainers N (CountSketch K={K}, Gram rule, FedAvg)")
    for title, _ in COLUMNS:
        t.add_column(title, justify="right")
    for r in rows:
        t.add_row(*(fmt(r) for _, fmt in COLUMNS))
    return t


def _peak(r: dict[str, Any], collected: dict[tuple[int, int], dict[str, Any]]) -> str:
    g = collected.get((r["d"], r["n"]))
    return f"{r['peak_mb']:,.0f}" + (f" ({g['peak_mb']:,.0f})" if g else "")


def short(seconds: float) -> str:
    """Three significant digits or so: ``0.6 ms``, ``137 ms``, ``1.94 s``, ``19.2 s``."""
    if seconds < 0.01:
        return f"{1e3 * seconds:.1f} ms"
    if seconds < 1.0:
        return f"{1e3 * seconds:.0f} ms"
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def _mb(r: dict[str, Any]) -> str:
    return f"{r['data_mb']:,.2g}" if r["data_mb"] < 10 else f"{r['data_mb']:,.0f}"


Cell = Callable[[dict[str, Any], dict[tuple[int, int], dict[str, Any]]], str]
FETCH_COLUMNS: list[tuple[str, Cell]] = [
    ("D", lambda r, _: f"{r['d']:.0e}"),
    ("N", lambda r, _: str(r["n"])),
    ("MB", lambda r, _: _mb(r)),
    ("fetch (MB/s)", lambda r, _: f"{short(r['fetch_s'])} ({r['fetch_mb_s']:,.0f})"),
    ("raw cat (MB/s)", lambda r, _: f"{short(r['cat_s'])} ({r['cat_mb_s']:,.0f})"),
    ("fetch / cat", lambda r, _: f"{r['fetch_s'] / r['cat_s']:.2f}"),
    ("fetch CPU cl.+node", lambda r, _: f"{r['fetch_cpu_s']:.2f} + {r['fetch_node_cpu_s']:.2f} s"),
    ("cat CPU cl.+node", lambda r, _: f"{r['cat_cpu_s']:.2f} + {r['cat_node_cpu_s']:.2f} s"),
    ("load", lambda r, _: f"{r['load']:.1f}"),
]
ROUND_COLUMNS: list[tuple[str, Cell]] = [
    ("D", lambda r, _: f"{r['d']:.0e}"),
    ("N", lambda r, _: str(r["n"])),
    ("sketch (MB/s)", lambda r, _: f"{short(r['sketch_s'])} ({r['sketch_mb_s']:,.0f})"),
    ("commit", lambda r, _: short(r["commit_s"])),
    ("gram", lambda r, _: short(r["gram_s"])),
    ("FedAvg", lambda r, _: short(r["fedavg_s"])),
    ("round", lambda r, _: short(r["round_s"])),
    ("CPU", lambda r, _: short(r["round_cpu_s"])),
    ("peak MB", _peak),
    ("node MB", lambda r, _: f"{r['node_peak_mb']:,.0f}"),
]


def markdown(rows: list[dict[str, Any]]) -> str:
    """The docstring's two tables (fetch beside the raw cat; the round's phases), for the rounds as the code
    is, ``peak MB`` with the gc-per-fetch run in brackets where there is one."""
    collected = {(r["d"], r["n"]): r for r in rows if r["gc_each_fetch"]}
    plain = [r for r in rows if not r["gc_each_fetch"]]
    out = []
    for columns in (FETCH_COLUMNS, ROUND_COLUMNS):
        lines = ["| " + " | ".join(c for c, _ in columns) + " |", "|" + "---:|" * len(columns)]
        lines += ["| " + " | ".join(fmt(r, collected) for _, fmt in columns) + " |" for r in plain]
        out.append("\n".join(lines))
    return "\n\n".join(out)


def gc_table(rows: list[dict[str, Any]]) -> Table:
    """Fetch-phase peak RSS with and without ``gc.collect()`` after each fetched update."""
    t = Table(title="fetch phase: peak RSS as the code is vs with gc.collect() after each update")
    for col in ["D", "N", "matrix MB", "base MB", "fetch peak MB", "with gc MB", "fetch", "with gc", "round peak MB",
                "with gc MB"]:  # fmt: skip
        t.add_column(col, justify="right")
    by_key = {(r["d"], r["n"], r["gc_each_fetch"]): r for r in rows}
    for (d, n, collect), r in by_key.items():
        g = by_key.get((d, n, True))
        if collect or g is None:
            continue
        t.add_row(f"{d:.0e}", str(n), f"{r['data_mb']:,.0f}", f"{r['base_mb']:,.0f}", f"{r['fetch_peak_mb']:,.0f}",
                  f"{g['fetch_peak_mb']:,.0f}", dur(r["fetch_s"]), dur(g["fetch_s"]), f"{r['peak_mb']:,.0f}",
                  f"{g['peak_mb']:,.0f}")  # fmt: skip
    return t


def parse_dim(text: str) -> int:
    return int(float(text))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"D in {QUICK_DIMS}, N in {QUICK_TRAINERS}")
    parser.add_argument("--dims", nargs="+", type=parse_dim, help="model sizes, e.g. 1e4 1e6")
    parser.add_argument("--trainers", nargs="+", type=int, help="trainer counts, e.g. 8 16 32")
    parser.add_argument(
        "--gc-dims", nargs="*", type=parse_dim, help="also run these D with gc.collect() per fetch (default: largest D)"
    )
    parser.add_argument("--out", type=Path, default=Path("reports/scale.json"))
    parser.add_argument("--collect", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--api", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--node-pid", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        manifest = json.loads(args.child.read_text())
        print(json.dumps(aggregate_round(args.api, manifest, args.n, args.node_pid, args.collect)))
        return
    dims = args.dims or (QUICK_DIMS if args.quick else FULL_DIMS)
    trainers = sorted(args.trainers or (QUICK_TRAINERS if args.quick else FULL_TRAINERS))
    console = Console(width=260)
    gc_dims = [max(dims)] if args.gc_dims is None else args.gc_dims
    rows = run(dims, trainers, gc_dims, lambda msg: console.print(msg, style="dim"))
    plain = [r for r in rows if not r["gc_each_fetch"]]
    console.print(table(plain))
    console.print(markdown(rows), soft_wrap=True)
    if len(plain) < len(rows):
        console.print(gc_table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__},
        "sketch_dim": K,
        "rows": rows,
    }
    args.out.write_text(json.dumps(report, indent=2))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
