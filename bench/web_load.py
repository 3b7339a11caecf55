"""Web load: a bounded burst of requests against the pages that read the index, before and after issue 15.

    python -m bench.web_load [--requests 2000] [--concurrency 20 50 100] [--projects 12] [--block-every 1.0]
                             [--processes 2] [--modes before after] [--out reports/web_load.json]

A local anvil chain gets the marketplace and ``--projects`` projects (a third finished after two rounds with
a flagged trainer, a third open, a third training with a commit in its open round). For each mode the web app
is served by uvicorn in its own process (``python -m bench.web_load --serve``), as ``marketplace web`` serves
it, and ``--processes`` load processes (default: one per core; httpx costs ~2 ms of CPU per request, more than
the server) send ``--requests`` requests, ``--concurrency`` at a time between them (httpx, async, one
connection per concurrent request), cycling over the project list, a project page, their JSON twins and a
trainer page, over every project and trainer. Meanwhile a block is mined every ``--block-every`` seconds (0: a
still chain), so the index keeps moving: each new block means a sync, and new answers.

Modes (:attr:`~marketplace.web.settings.WebSettings.serve_from_index`):

* ``before``: each request syncs the index first (throttled to once a second, everyone waiting on the request
  that syncs) and reads the chain for the live parts (open round, aggregator record, reliability bar, track
  record): the app as it was when issue 15 measured it;
* ``after``: a background thread syncs the index and refreshes the cached chain reads after a sync that saw
  new events; requests read the index and those caches only, and identical requests at the same index version
  share one answer (the index's narrower locking and its indexes by project are in both modes);
* ``floor``: the ``after`` server asked for a 100-byte static file only (read in a worker thread, as Starlette
  serves files): a reference for what the machine, as loaded as it is at that moment, gives for a trivial answer.

Prints, per mode and concurrency, requests per second, p50 / p90 / p99 / max latency, errors (a non-2xx
answer or a dropped connection) and the CPU time the server and the load generator spent per request (which,
unlike the latencies, does not depend on what else the machine runs), beside the figure issue 15 measured
(2,000 requests, 20 concurrent: 189 req/s, p50 92 ms, p99 442 ms; at 100 concurrent p99 2.8 s, one dropped
connection in 4,000). The target: p99 <= 150 ms at 50 concurrent. The machine has 2 cores, shared by the server,
this load generator, anvil and the block miner (and whatever else runs): the latencies are this machine's at
that moment, not the server's alone (``load_average`` in the JSON says how busy it was).

Measured (2 cores shared with other test runs, load average 4 to 7; 12 projects, a block a second, 2 load
processes; ``server`` is the app's own time, from its ``Server-Timing`` header)::

    | mode | concurrent | req/s | p50 | p90 | p99 | errors | server CPU / request | server p99 |
    |---|---:|---:|---:|---:|---:|---:|---:|---:|
    | issue 15 (today) | 20 | 189 | 92 ms | | 442 ms | | | |
    | before | 20 | 87 | 207 ms | 372 ms | 633 ms | 0 | 9.5 ms | 586 ms |
    | before | 50 | 62 | 752 ms | 1,318 ms | 1,928 ms | 0 | 11.1 ms | 1,817 ms |
    | before | 100 | 84 | 1,128 ms | 1,488 ms | 1,879 ms | 0 | 9.8 ms | 1,773 ms |
    | after | 20 | 389 | 49 ms | 58 ms | 73 ms | 0 | 0.40 ms | 11.5 ms |
    | after | 50 | 653 | 72 ms | 98 ms | **135 ms** | 0 | 0.33 ms | 14.5 ms |
    | after | 100 | 667 | 140 ms | 221 ms | 363 ms | 0 | 0.33 ms | 19.9 ms |
    | floor | 50 | 375 | 124 ms | 171 ms | 294 ms | 0 | 1.37 ms | |

The target holds: p99 135 ms at 50 concurrent, no errors (at 100 concurrent either). The server spends 30 times
less CPU per request; what is left of the latency is the load generator's and the machine's (a 100-byte static
file from the same server took longer). On a busier machine (load average 10) the same run gave p99 0.6 to 0.8 s
at 50 concurrent, the static file 1.2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import resource
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

ETH = 10**18
#: Issue 15's measurement of the app before it (2,000 requests, 20 concurrent; 100 concurrent: p99 2.8 s).
TODAY = {"concurrency": 20, "rps": 189.0, "p50_ms": 92.0, "p99_ms": 442.0}
TARGET_P99_MS = 150.0
#: ``Server-Timing: app;dur=<ms>``, which the app adds to the answers of the pages measured here.
SERVER_TIMING = re.compile(r"app;dur=([0-9.]+)")
#: The cheapest answer the server has (a 100-byte static file): the ``floor`` mode's only path.
FLOOR_PATH = "/static/vendor/versions.json"
TARGET_CONCURRENCY = 50


@dataclass
class Burst:
    """One burst's figures."""

    mode: str
    concurrency: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    blocks_mined: int
    server_cpu_ms: float  # CPU time the server process spent per request (user + system)
    client_cpu_ms: float  # CPU time the load generator spent per request
    server_p50_ms: float | None  # the server's own time to start answering (its Server-Timing header)
    server_p99_ms: float | None


# ---------------------------------------------------------------------------- the chain


def build_world(rpc_url: str, n_projects: int) -> tuple[Any, list[int], list[str]]:
    """Deploys the marketplace on ``rpc_url`` and creates ``n_projects`` projects (finished, open, training);
    returns the deployment, the project ids and the trainers' addresses."""
    from marketplace.adapters.chain.anvil import dev_accounts
    from marketplace.adapters.chain.client import ChainClient
    from marketplace.adapters.chain.deploy import TEST_VERIFIER, deploy_marketplace, market_client
    from marketplace.adapters.chain.market import Finalization, MarketClient, ProjectConfig
    from marketplace.protocol.seal import derive_salt, seal
    from marketplace.round.prove import local_hash_proof, recorded_verifier_inputs

    accounts = dev_accounts(12)
    admin_chain = ChainClient(rpc_url, accounts[0])
    for account in accounts:
        admin_chain.set_balance(account.address, 10_000 * ETH)
    deployment = deploy_marketplace(admin_chain)
    admin = market_client(admin_chain, deployment)
    owner, aggregator = admin.as_account(accounts[1]), admin.as_account(accounts[2])
    trainers = [admin.as_account(a) for a in accounts[3:11]]

    def create(**overrides: Any) -> int:
        fields: dict[str, Any] = {
            "aggregator": aggregator.address, "verifier": deployment.address(TEST_VERIFIER),
            "reward_budget": 3 * ETH, "aggregator_fee": ETH // 2, "stake": ETH // 10, "rounds": 2,
            "min_trainers": 2, "max_trainers": 3, "min_reliability_bps": 0, "slash_bps": 5_000, "join_period": 3_600,
            "submission_period": 600, "aggregation_period": 600, "model_name": "mlp",
            "initial_model_cid": "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
        }  # fmt: skip
        fields.update(overrides)
        return owner.create_project(ProjectConfig(**fields))

    def commit(trainer: MarketClient, pid: int, round_: int) -> tuple[str, bytes, bytes]:
        from eth_utils import keccak

        commitment = keccak(text=f"{pid}/{round_}/{trainer.address}")
        cid = f"bafkrei{trainer.address[2:12].lower()}r{round_}p{pid}"
        where = trainer.round_address(pid, round_)
        salt = derive_salt(trainer.chain.account, where, commitment)
        trainer.commit_update(pid, round_, seal(commitment, cid, trainer.address, where, salt))
        return cid, commitment, salt

    def training(members: list[MarketClient]) -> int:
        pid = create()
        for trainer in members:
            trainer.join(pid)  # the third join fills the project: training starts
        return pid

    ids, kinds = [], ["finished", "open", "training"]
    for i in range(n_projects):
        kind = kinds[i % 3]
        members = [trainers[(i + k) % len(trainers)] for k in range(3)]
        if kind == "open":
            pid = create()
            members[0].join(pid)
        elif kind == "training":
            pid = training(members)
            commit(members[0], pid, 0)
        else:
            pid = training(members)
            for round_, (scores, flags) in enumerate(
                [([500_000, 300_000, 200_000], [False] * 3), ([600_000, 400_000, 0], [False, False, True])]
            ):
                sealed = [commit(t, pid, round_) for t in members]
                for trainer, (cid, commitment, salt) in zip(members, sealed, strict=True):
                    trainer.reveal_update(pid, round_, cid, commitment, salt)
                values = recorded_verifier_inputs(owner, pid, round_, scores, flags, [False] * 3)
                proof = local_hash_proof(*values)
                cids = f"bafkreimodel{pid}r{round_}", f"bafkreiproof{pid}r{round_}"
                aggregator.finalize_round(pid, round_, Finalization(*cids, scores, flags, proof))
        ids.append(pid)
    return deployment, ids, [t.address for t in trainers]


# ---------------------------------------------------------------------------- the server


def serve(settings_json: str, port: int) -> None:
    """Serves the app for the settings in ``settings_json`` on 127.0.0.1:``port`` as ``marketplace web`` does
    (:func:`~marketplace.web.server.serve_in_background`), until terminated."""
    import signal

    from marketplace.web.main import create_app
    from marketplace.web.server import serve_in_background
    from marketplace.web.settings import WebSettings

    settings = WebSettings.model_validate_json(Path(settings_json).read_text())
    with serve_in_background(create_app(settings), "127.0.0.1", port) as server:
        signal.signal(signal.SIGTERM, lambda *_: server.stop())
        server.wait()


def start_server(settings: Any, workdir: Path, port: int) -> subprocess.Popen[bytes]:
    """``python -m bench.web_load --serve`` for ``settings``; returns once it answers ``/api/status``."""
    path = workdir / f"settings-{port}.json"
    path.write_text(settings.model_dump_json())
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.web_load", "--serve", str(path), "--port", str(port)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the web server exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the web server did not answer within 120 s")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ---------------------------------------------------------------------------- the load


def urls(project_ids: list[int], trainers: list[str]) -> list[str]:
    """The paths a burst cycles over: list, page, their JSON twins and a trainer page, over every project."""
    out = []
    for i, pid in enumerate(project_ids):
        trainer = trainers[i % len(trainers)]
        out += ["/projects", f"/projects/{pid}", "/api/projects", f"/api/projects/{pid}", f"/trainers/{trainer}"]
    return out


async def burst(
    base: str, paths: list[str], requests: range, concurrency: int
) -> tuple[list[float], list[float], int, float, float]:
    """GETs of ``paths`` (the ``i``-th of ``requests`` is ``paths[i % len(paths)]``), ``concurrency`` at a time;
    latencies (s), the server's own times (s, its ``Server-Timing``), errors, and when the first started and the
    last ended (``time.monotonic``, system-wide).

    Each of the ``concurrency`` workers has its own client and connection (a browser's tab, say): one shared
    pool of 50 connections costs httpx several times the CPU per request (its pool is searched per request),
    and on 2 cores the load generator's CPU is the server's loss. Each worker opens its connection with a first
    request that is not counted, and the clock starts once all are open: what is measured is answering, not
    this process making 50 clients at once (its first requests waited up to 1.2 s for that, the server none)."""
    latencies: list[float] = []
    server: list[float] = []
    errors = 0
    counter = iter(requests)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    tls = ssl.create_default_context()  # made once: each client would load the CA bundle again (~25 ms)
    connected = asyncio.Event()
    waiting = concurrency

    async def worker() -> None:
        nonlocal errors, waiting
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0, verify=tls) as client:
            with contextlib.suppress(httpx.HTTPError):  # the counted requests will say
                await client.get(paths[0])
            waiting -= 1
            if waiting == 0:
                connected.set()
            await connected.wait()
            for i in counter:
                start = time.perf_counter()
                try:
                    response = await client.get(paths[i % len(paths)])
                    ok = response.is_success
                    took = SERVER_TIMING.search(response.headers.get("server-timing", ""))
                    if took:
                        server.append(float(took.group(1)) / 1000)
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await connected.wait()
    began = time.monotonic()
    await asyncio.gather(*tasks)
    return latencies, server, errors, began, time.monotonic()


def burst_process(
    base: str, paths: list[str], requests: range, concurrency: int, start_at: float
) -> tuple[list[float], list[float], int, float, float, float]:
    """:func:`burst` in a process of its own, from ``start_at`` (``time.monotonic``); also its CPU seconds."""
    time.sleep(max(0.0, start_at - time.monotonic()))
    cpu = own_cpu()
    latencies, server, errors, began, ended = asyncio.run(burst(base, paths, requests, concurrency))
    return latencies, server, errors, began, ended, own_cpu() - cpu


def load(
    pool: ProcessPoolExecutor, processes: int, base: str, paths: list[str], n: int, concurrency: int
) -> tuple[list[float], list[float], int, float, float]:
    """``n`` requests, ``concurrency`` in flight, from ``processes`` load processes (each its share of both);
    latencies, the server's own times, errors, wall time and the load processes' CPU seconds."""
    shares = [range(k, n, processes) for k in range(processes)]
    workers = [concurrency // processes + (k < concurrency % processes) for k in range(processes)]
    start_at = time.monotonic() + 1.0  # every process starts together
    futures = [
        pool.submit(burst_process, base, paths, share, count, start_at)
        for share, count in zip(shares, workers, strict=True)
        if count
    ]
    parts = [f.result() for f in futures]
    latencies = [latency for part in parts for latency in part[0]]
    server = [took for part in parts for took in part[1]]
    wall = max(p[4] for p in parts) - min(p[3] for p in parts)
    return latencies, server, sum(p[2] for p in parts), wall, sum(p[5] for p in parts)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, by the nearest-rank method, in ms."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank] * 1000


class BlockMiner:
    """Mines a block every ``every`` seconds on ``rpc_url`` while running (0: none)."""

    def __init__(self, rpc_url: str, every: float) -> None:
        from marketplace.adapters.chain.client import ChainClient

        self.chain = ChainClient(rpc_url)
        self.every = every
        self.mined = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.chain.mine()
            self.mined += 1

    def __enter__(self) -> BlockMiner:
        if self.every > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def run_mode(
    mode: str, settings: Any, workdir: Path, rpc_url: str, paths: list[str], n: int, levels: list[int],
    block_every: float, processes: int, log: Console,
) -> list[Burst]:  # fmt: skip
    """Serves ``settings`` and runs a burst at each concurrency in ``levels``."""
    from marketplace.adapters.chain.anvil import free_port

    port = free_port()
    process = start_server(settings, workdir, port)
    base = f"http://127.0.0.1:{port}"
    results = []
    pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
    try:
        for path in dict.fromkeys(paths):  # every answer once: what the first visitor of each page waits for
            httpx.get(base + path, timeout=60)
        for concurrency in levels:
            server_before = process_cpu(process.pid)
            with BlockMiner(rpc_url, block_every) as miner:
                latencies, server, errors, seconds, client_cpu = load(pool, processes, base, paths, n, concurrency)
            server_cpu = process_cpu(process.pid) - server_before
            result = Burst(
                mode=mode, concurrency=concurrency, requests=n, seconds=round(seconds, 2),
                rps=round(n / seconds, 1), p50_ms=round(percentile(latencies, 50), 1),
                p90_ms=round(percentile(latencies, 90), 1), p99_ms=round(percentile(latencies, 99), 1),
                max_ms=round(max(latencies) * 1000, 1), errors=errors, blocks_mined=miner.mined,
                server_cpu_ms=round(server_cpu / n * 1000, 2), client_cpu_ms=round(client_cpu / n * 1000, 2),
                server_p50_ms=round(percentile(server, 50), 2) if server else None,
                server_p99_ms=round(percentile(server, 99), 2) if server else None,
            )  # fmt: skip
            log.print(
                f"{mode:>6} c={concurrency:<3} {result.rps:7.1f} req/s  p50 {result.p50_ms:6.1f} ms  "
                f"p99 {result.p99_ms:7.1f} ms  errors {errors}  server CPU {result.server_cpu_ms:.2f} ms/request  "
                f"server p99 {result.server_p99_ms} ms"
            )
            results.append(result)
    finally:
        pool.shutdown()
        stop_server(process)
    return results


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} ms"


def table(results: list[Burst]) -> Table:
    out = Table(title="Web load: pages that read the index (loopback, 2 shared cores)")
    columns = ("mode", "concurrent", "requests", "req/s", "p50", "p90", "p99", "max", "errors", "blocks",
               "server CPU/req", "client CPU/req", "server p50", "server p99")  # fmt: skip
    for name in columns:
        out.add_column(name, justify="left" if name == "mode" else "right")
    out.add_row(
        "issue 15 (today)", str(TODAY["concurrency"]), "2,000", f"{TODAY['rps']:.0f}", f"{TODAY['p50_ms']:.0f} ms",
        "", f"{TODAY['p99_ms']:.0f} ms", "", "", "", "", "", "", "",
    )  # fmt: skip
    for r in results:
        out.add_row(
            r.mode, str(r.concurrency), f"{r.requests:,}", f"{r.rps:.0f}", f"{r.p50_ms:.0f} ms", f"{r.p90_ms:.0f} ms",
            f"{r.p99_ms:.0f} ms", f"{r.max_ms:.0f} ms", str(r.errors), str(r.blocks_mined), f"{r.server_cpu_ms:.2f} ms",
            f"{r.client_cpu_ms:.2f} ms", _ms(r.server_p50_ms), _ms(r.server_p99_ms),
        )  # fmt: skip
    return out


def verdict(results: list[Burst]) -> str:
    """Whether the target (p99 <= 150 ms at 50 concurrent, no errors) holds after the change."""
    at = [r for r in results if r.mode == "after" and r.concurrency == TARGET_CONCURRENCY]
    if not at:
        return f"(no 'after' burst at {TARGET_CONCURRENCY} concurrent: target not checked)"
    worst = max(r.p99_ms for r in at)
    errors = sum(r.errors for r in at)
    ok = worst <= TARGET_P99_MS and errors == 0
    return (
        f"target p99 <= {TARGET_P99_MS:.0f} ms at {TARGET_CONCURRENCY} concurrent: "
        f"{'met' if ok else 'NOT met'} (p99 {worst:.0f} ms, {errors} errors)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="web load: pages that read the index, before and after issue 15")
    parser.add_argument("--requests", type=int, default=2000, help="requests per burst")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[20, 50, 100], help="requests in flight")
    parser.add_argument("--projects", type=int, default=12, help="projects on the chain (finished, open, training)")
    parser.add_argument("--block-every", type=float, default=1.0, help="mine a block every N seconds (0: none)")
    parser.add_argument(
        "--processes", type=int, default=os.cpu_count() or 1, help="load generator processes (sharing the load)"
    )
    parser.add_argument(
        "--modes", nargs="+", choices=["before", "after", "floor"], default=["before", "after", "floor"]
    )
    parser.add_argument("--out", type=Path, default=Path("reports/web_load.json"))
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port)
        return 0

    from marketplace.adapters.chain.anvil import AnvilNode
    from marketplace.web.settings import WebSettings

    console = Console(width=170)
    results: list[Burst] = []
    with AnvilNode() as anvil, tempfile.TemporaryDirectory(prefix="web-load-") as tmp:
        workdir = Path(tmp)
        began = time.monotonic()
        deployment, ids, trainers = build_world(anvil.url, args.projects)
        console.print(f"{len(ids)} projects on a local chain in {time.monotonic() - began:.1f} s")
        for mode in args.modes:
            settings = WebSettings(
                rpc_url=anvil.url, deployment=deployment, db_path=workdir / f"index-{mode}.sqlite",
                sync_interval=1.0, serve_from_index=mode != "before",
            )  # fmt: skip
            paths = [FLOOR_PATH] if mode == "floor" else urls(ids, trainers)
            results += run_mode(
                mode, settings, workdir, anvil.url, paths, args.requests, args.concurrency, args.block_every,
                args.processes, console,
            )  # fmt: skip
    console.print(table(results))
    console.print(verdict(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "today": TODAY, "target": {"p99_ms": TARGET_P99_MS, "concurrency": TARGET_CONCURRENCY},
        "projects": args.projects, "block_every": args.block_every, "cpus": os.cpu_count(),
        "load_processes": args.processes,
        "load_average": os.getloadavg(),
        "bursts": [asdict(r) for r in results], "verdict": verdict(results),
    }  # fmt: skip
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
