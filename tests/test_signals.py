"""Every process the project starts stops with its parent.

Real commands as separate processes: ``marketplace demo``, ``marketplace web``, ``marketplace trainer run``,
``marketplace aggregator run`` and the IPFS node (``python -m marketplace.adapters.ipfs.node``). The web
servers first take a burst of 1,000 requests, 50 at a time; then the command gets SIGINT (Ctrl-C) or
SIGTERM and must end within a few seconds, with 130 or 143 (the node: 0), a one-line ``stopped`` and no
traceback, leaving none of the processes it started (its descendants, read from /proc before the signal).
A command killed outright (SIGKILL) takes its children with it, and a command stuck on its way out ends at
a second signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from marketplace.cli.main import app

ROOT = Path(__file__).resolve().parent.parent
STOP_WITHIN = 8.0  # seconds from the signal to the command's exit
PAGES = ("/projects", "/projects/1", "/api/projects", "/api/status")


# --- processes ----------------------------------------------------------------------------------


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process now."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def descendants(pid: int) -> dict[int, str]:
    """The processes below ``pid`` (children, their children...), with their command lines."""
    parents = _parents()
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        parent = todo.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                try:
                    cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                found[child] = cmdline
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_all_gone(pids: Sequence[int], timeout: float) -> list[int]:
    """Waits up to ``timeout`` seconds for ``pids`` to end; returns those still alive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def kill_left(pids: Sequence[int]) -> None:
    """Test hygiene after a failure: SIGKILL whatever of ``pids`` still runs."""
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


class Command:
    """A command run as a separate process, its output collected by a thread."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.process = subprocess.Popen(
            list(args),
            cwd=cwd,
            env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first match of ``pattern`` in the output, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output)
            if match:
                return match
            if self.process.poll() is not None:
                self._reader.join(2)
                match = re.search(pattern, self.output)
                if match:
                    return match
                raise AssertionError(f"exited with {self.process.returncode} before {pattern!r}:\n{self.output}")
            time.sleep(0.05)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.output}")

    def stop_with(self, *signals: signal.Signals) -> tuple[int, float]:
        """Sends ``signals`` (0.2 s apart); returns the exit code and the seconds from the first to the exit."""
        started = time.monotonic()
        for i, signum in enumerate(signals):
            if i:
                time.sleep(0.2)
            self.process.send_signal(signum)
        try:
            code = self.process.wait(STOP_WITHIN + 30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"still running {STOP_WITHIN + 30} s after {signals}:\n{self.output}") from None
        self._reader.join(5)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def marketplace(*args: str, env: dict[str, str] | None = None) -> Command:
    return Command([sys.executable, "-m", "marketplace.cli.main", *args], env)


def assert_stopped(
    command: Command, signals: Sequence[signal.Signals], children: dict[int, str], codes: set[int] | None = None
) -> None:
    """``command`` ends within STOP_WITHIN seconds of ``signals``, says so in a line without a traceback, and
    leaves none of ``children`` running."""
    code, took = command.stop_with(*signals)
    out = command.output
    left = wait_all_gone(list(children), 5.0)
    expected = codes or {128 + signals[0]}
    if len(signals) > 1:  # the second one may come before the command ended, and end it by its default action
        expected |= {-signals[-1]}
    assert code in expected, f"exit code {code}, expected {expected}:\n{out}"
    assert took < STOP_WITHIN, f"took {took:.1f} s to stop:\n{out}"
    assert "Traceback" not in out, out
    if codes is None and code > 0:
        assert re.search(rf"^stopped \({signals[0].name}\)$", out, re.MULTILINE), out
    assert not left, f"left running: {[children[p] for p in left]}"


# --- load ---------------------------------------------------------------------------------------


def burst(base: str, paths: Sequence[str], n: int = 1000, concurrency: int = 50, method: str = "GET") -> dict[str, int]:
    """``n`` requests cycling over ``paths``, ``concurrency`` at a time; how many got each status."""

    async def run() -> dict[str, int]:
        tally: dict[str, int] = {}
        gate = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

            async def one(i: int) -> None:
                async with gate:
                    try:
                        response = await client.request(method, paths[i % len(paths)])
                        key = str(response.status_code)
                    except httpx.HTTPError as exc:
                        key = type(exc).__name__
                    tally[key] = tally.get(key, 0) + 1

            await asyncio.gather(*(one(i) for i in range(n)))
        return tally

    return asyncio.run(run())


def assert_served(tally: dict[str, int], n: int = 1000) -> None:
    assert sum(tally.values()) == n and all(k in ("200", "307") for k in tally), tally


# --- the demo -----------------------------------------------------------------------------------

DEMO = ("demo", "--no-zk", "--honest", "--trainers", "2", "--rounds", "1", "--epochs", "1", "--port", "0")


DONE = r"web UI: (http://127\.0\.0\.1:\d+)/projects/1 "  # the job is done, the web UI stays


def start_demo(tmp_path: Path, until: str = DONE) -> tuple[Command, str, dict[int, str]]:
    """A demo that got as far as ``until`` (default: it finished its job and serves its web UI); the first
    group of that match and the processes the demo started."""
    demo = marketplace(*DEMO, "--plot", str(tmp_path / "demo.png"))
    try:
        base = demo.wait_for(until, 180).group(1)
    except AssertionError:
        demo.kill()
        raise
    children = descendants(demo.process.pid)
    kinds = " ".join(children.values())
    assert "anvil" in kinds and "marketplace.adapters.ipfs.node" in kinds, children
    return demo, base, children


# SIGTERM is heavy (make test-heavy, which CI runs after make test): each case runs a whole demo (~30 s).
@pytest.mark.parametrize(
    "signals", [(signal.SIGINT,), pytest.param((signal.SIGTERM,), marks=pytest.mark.heavy)], ids=["SIGINT", "SIGTERM"]
)
def test_demo_stops_with_its_chain_and_ipfs_node_after_a_burst(
    tmp_path: Path, signals: tuple[signal.Signals, ...]
) -> None:
    demo, base, children = start_demo(tmp_path)
    try:
        assert_served(burst(base, PAGES))
        assert_stopped(demo, signals, children)
    finally:
        demo.kill()
        kill_left(list(children))


def test_a_killed_demo_takes_its_chain_and_ipfs_node_with_it(tmp_path: Path) -> None:
    demo, _, children = start_demo(tmp_path, until=r"IPFS API (http\S+)")  # killed during its job
    try:
        demo.process.kill()
        demo.process.wait(10)
        left = wait_all_gone(list(children), 10.0)
        assert not left, f"orphans of a SIGKILLed demo: {[children[p] for p in left]}"
    finally:
        kill_left(list(children))


def processes_with(text: str) -> dict[int, str]:
    """Every running process whose command line contains ``text``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and alive(int(entry.name)):
            with contextlib.suppress(OSError):
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if text in cmdline:
                    found[int(entry.name)] = cmdline
    return found


@pytest.mark.parametrize(  # SIGINT heavy: the same path as SIGTERM (make test-heavy, run by CI)
    "signals", [pytest.param((signal.SIGINT,), marks=pytest.mark.heavy), (signal.SIGTERM,)], ids=["SIGINT", "SIGTERM"]
)
def test_a_demo_stopped_while_its_ipfs_nodes_start_leaves_none_of_them(
    tmp_path: Path, signals: tuple[signal.Signals, ...]
) -> None:
    """The demo starts a node per participant side by side; stopped while some of them are still starting (and
    more are about to be spawned), it stops in time and leaves no node of its run behind, even one spawned
    after the signal."""
    demo = marketplace("demo", "--no-zk", "--no-web", "--honest", "--trainers", "5", "--plot", str(tmp_path / "x.png"))
    children: dict[int, str] = {}
    run_dir: str | None = None
    try:
        deadline = time.monotonic() + 120
        while len([c for c in children.values() if "marketplace.adapters.ipfs.node" in c]) < 3:
            assert demo.process.poll() is None and time.monotonic() < deadline, demo.output
            time.sleep(0.02)
            children = descendants(demo.process.pid)
        assert "IPFS API" not in demo.output, demo.output  # the nodes are not all up yet
        repo = re.search(r"--repo (\S+)/ipfs/", next(c for c in children.values() if "ipfs.node" in c))
        assert repo, children
        run_dir = repo.group(1)  # the run's directory: in the command line of every node it starts
        assert_stopped(demo, signals, children)
        assert not wait_all_gone(list(processes_with(run_dir)), 5.0), processes_with(run_dir)
    finally:
        demo.kill()
        kill_left([*children, *(processes_with(run_dir) if run_dir else {})])


# --- the node commands --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A local chain and IPFS node started detached (`chain up`, `ipfs up`), the market deployed, project 1
    created for two trainers, of whom dev account 3 joined: its trainer and aggregator wait for the other."""
    tmp = tmp_path_factory.mktemp("network")
    env = {
        "MARKETPLACE_STATE_DIR": str(tmp / "state"),
        "MARKETPLACE_DEPLOYMENTS_DIR": str(tmp / "deployments"),
        "MARKETPLACE_IPFS_HOME": str(tmp / "ipfs"),
    }
    saved = {key: os.environ.get(key) for key in [*env, "MARKETPLACE_PRIVATE_KEY", "MARKETPLACE_IPFS_API"]}
    os.environ.update(env)
    os.environ.pop("MARKETPLACE_PRIVATE_KEY", None)
    os.environ.pop("MARKETPLACE_IPFS_API", None)
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, list(args), terminal_width=200)
        assert result.exit_code == 0, result.output
        return result.output

    try:
        cli("chain", "up", "--port", "0")
        cli("ipfs", "up")
        cli("deploy", "--challenge-period", "0")
        cli("data", "partition", "--trainers", "2", "--out", str(tmp / "shards"))
        cid = cli("model", "init", "--model", "mlp").strip()
        aggregator = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"  # dev account 2
        cli("project", "create", "--initial-cid", cid, "--rounds", "1", "--min-trainers", "2",
            "--aggregator", aggregator)  # fmt: skip
        cli("trainer", "join", "1", "--dev-account", "3")
        yield {**env, "SHARD": str(tmp / "shards" / "trainer_000.npz")}
    finally:
        runner.invoke(app, ["ipfs", "down"])
        runner.invoke(app, ["chain", "down"])
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.mark.parametrize(  # SIGTERM heavy (make test-heavy): SIGINTx2 takes the same way out and the second signal
    "signals",
    [(signal.SIGINT, signal.SIGINT), pytest.param((signal.SIGTERM,), marks=pytest.mark.heavy)],
    ids=["SIGINTx2", "SIGTERM"],
)
def test_web_stops_after_a_burst(network: dict[str, str], signals: tuple[signal.Signals, ...]) -> None:
    web = marketplace("web", "--port", "0", "--db", str(Path(network["MARKETPLACE_STATE_DIR"]) / "web.db"), env=network)
    try:
        base = web.wait_for(r"at (http://127\.0\.0\.1:\d+)", 60).group(1)
        assert_served(burst(base, PAGES))
        assert_stopped(web, signals, descendants(web.process.pid))
    finally:
        web.kill()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_trainer_run_stops(network: dict[str, str], signum: signal.Signals) -> None:
    trainer = marketplace(
        "trainer", "run", "1", "--data", network["SHARD"], "--dev-account", "3", "--poll", "0.3", env=network
    )
    try:
        trainer.wait_for(r"not training yet", 60)  # in its loop: the project waits for its second trainer
        assert_stopped(trainer, [signum], descendants(trainer.process.pid))
    finally:
        trainer.kill()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_aggregator_run_stops(network: dict[str, str], signum: signal.Signals) -> None:
    aggregator = marketplace("aggregator", "run", "--project", "1", "--dev-account", "2", "--poll", "0.3", env=network)
    try:
        aggregator.wait_for(r"serving \[1\]", 60)
        time.sleep(1.0)  # a few polls
        assert_stopped(aggregator, [signum], descendants(aggregator.process.pid))
    finally:
        aggregator.kill()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ipfs_node_stops_after_a_burst(tmp_path: Path, signum: signal.Signals) -> None:
    state = tmp_path / "node.json"
    repo = str(tmp_path / "repo")
    node = Command([sys.executable, "-m", "marketplace.adapters.ipfs.node", "--repo", repo, "--port", "0",
                    "--state-file", str(state)])  # fmt: skip
    try:
        api = json.loads(node.wait_for(r"\{.*\"api_url\".*\}", 60).group(0))["api_url"]
        cid = httpx.post(f"{api}/api/v0/add", files={"file": ("x", b"x" * 20_000)}).json()["Hash"]
        tally = burst(api, [f"/api/v0/cat?arg={cid}", "/api/v0/version", "/api/v0/pin/ls"], method="POST")
        assert tally == {"200": 1000}, tally
        assert_stopped(node, [signum], descendants(node.process.pid), codes={0, 128 + signum})
        assert not state.exists()  # a clean shutdown: the node closed its repo and removed its state file
    finally:
        node.kill()


# --- stuck on the way out -----------------------------------------------------------------------

STUCK = textwrap.dedent(
    """
    import sys, time
    from marketplace.adapters.processes import start_child, stop_on_signals

    child = start_child(["sleep", "300"])
    with stop_on_signals(grace=float(sys.argv[2])):
        print(child.pid, flush=True)  # signalled once this is read: inside the block
        try:
            time.sleep(300)
        finally:
            print("cleaning up", flush=True)
            if sys.argv[1] == "native":
                sum(range(10**12))  # native code holding the GIL: no Python code runs, no handler, no thread
            else:
                time.sleep(300)  # a cleanup that hangs
    """
)


@pytest.mark.parametrize(
    ("stuck_in", "signals", "grace", "code"),
    [
        ("native", (signal.SIGINT, signal.SIGINT), 60.0, -signal.SIGINT),  # ended by SIGINT itself
        ("native", (signal.SIGTERM, signal.SIGTERM), 60.0, -signal.SIGTERM),
        ("python", (signal.SIGTERM,), 1.0, -signal.SIGTERM),  # by the watchdog, which says so
    ],
    ids=["second-SIGINT-in-native-code", "second-SIGTERM-in-native-code", "SIGTERM-grace"],
)
def test_a_command_stuck_on_its_way_out_ends_with_its_children(
    stuck_in: str, signals: tuple[signal.Signals, ...], grace: float, code: int
) -> None:
    """A second signal ends it at once; without one it is ended ``grace`` seconds after the first. Its child
    ends with it either way."""
    stuck = Command([sys.executable, "-c", STUCK, stuck_in, str(grace)])
    child = 0
    try:
        child = int(stuck.wait_for(r"^(\d+)$", 30).group(1))
        stuck.process.send_signal(signals[0])
        stuck.wait_for("cleaning up", 10)
        time.sleep(0.3)
        started = time.monotonic()
        for signum in signals[1:]:
            stuck.process.send_signal(signum)
        assert stuck.process.wait(grace + 10) == code, stuck.output
        assert time.monotonic() - started < min(grace, 2.0) + 1.0
        assert "Traceback" not in stuck.output, stuck.output
        if len(signals) == 1:
            assert f"stopped ({signals[0].name}; still stopping after 1 s: forced)" in stuck.output, stuck.output
        assert not wait_all_gone([child], 5.0), "the child outlived its parent"
    finally:
        stuck.kill()
        kill_left([child])


def test_a_child_started_from_a_passing_thread_outlives_the_thread_but_not_the_process() -> None:
    """Linux sends the parent-death signal when the thread that forked the child ends: children are forked
    from a thread that lasts as long as the process."""
    script = textwrap.dedent(
        """
        import threading, time
        from marketplace.adapters.processes import start_child

        children = []
        thread = threading.Thread(target=lambda: children.append(start_child(["sleep", "300"])))
        thread.start()
        thread.join()
        time.sleep(0.5)
        print(children[0].pid, children[0].poll(), flush=True)
        time.sleep(300)
        """
    )
    parent = Command([sys.executable, "-c", script])
    pid = "0"
    try:
        pid, status = parent.wait_for(r"^(\d+) (\S+)$", 30).groups()
        assert status == "None" and alive(int(pid)), "the child died with the thread that started it"
        parent.process.kill()
        assert not wait_all_gone([int(pid)], 5.0), "the child outlived its killed parent"
    finally:
        parent.kill()
        kill_left([int(pid)])
