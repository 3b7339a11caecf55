"""A marketplace job whose parties are separate hosts (tests/netns.py), driven only through the command line.

:func:`lan` starts the chain (anvil on the chain host's address) and gives each role a :class:`Party`: its
own folder (network profile, deployment record, IPFS node, logs), keystore (funded on the chain) and host.
Every command a party runs is ``python -m marketplace.cli.main ...`` started on its host, with its own
folders in the environment and nothing else of the test's (no ``MARKETPLACE_IPFS_API``, no RPC URL but its
profile's). Each party's IPFS node (``marketplace ipfs up``) listens on its host's address and peers with
the nodes started before it, under one private swarm key; the party's commands are given that node's RPC
URL, which is on ``127.0.0.1`` inside the party's host: no other party can reach it.

The test process itself reads the chain only through a party's host: :meth:`Party.rpc` (a JSON-RPC call)
and :meth:`Party.ledger` (``python -m tests.multihost ledger``: what the market owes everyone, as JSON).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tests.netns import LOOPBACK, Host, Hosts

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
NETWORK = "lan"
CHAIN_ID = 31337  # the local chain's id: the test verifier (no ezkl) deploys only there
PASSWORD = "multihost-pw"
ETH = 10**18
CHAIN_PORT = 8545
SWARM_PORT = 4001
_KEEP_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "MARKETPLACE_IPFS_FETCH_TIMEOUT")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (loopback mode: every service on its own port)."""
    import socket

    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


_RPC = """
import json, sys, urllib.request
answers = []
for method, params in json.loads(sys.argv[2]):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(sys.argv[1], data=body, headers={"Content-Type": "application/json"})
    answers.append(json.loads(urllib.request.urlopen(req, timeout=10).read()))
print(json.dumps(answers))
"""


@dataclass
class Party:
    """One participant on its own host: its folder, keystore and IPFS node."""

    name: str
    host: Host
    home: Path
    rpc_url: str
    address: str = ""
    ipfs_api: str = ""  # its node's RPC URL (127.0.0.1 on its own host)
    multiaddr: str = ""  # its node's swarm address with /p2p/<peer id>, for the others' --peer
    zk_cache: Path | None = None  # its zk key folder (default: its own, empty)
    logs: list[IO[str]] = field(default_factory=list, repr=False)

    @property
    def keystore(self) -> Path:
        return self.home / "key.json"

    @property
    def ipfs_home(self) -> Path:
        return self.home / "ipfs"

    def env(self) -> dict[str, str]:
        """The environment of this party's commands: its own folders and password, nothing of the test's."""
        env = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}
        return env | {
            "PYTHONPATH": str(ROOT),
            "MARKETPLACE_ROOT": str(ROOT),
            "MARKETPLACE_STATE_DIR": str(self.home / "state"),
            "MARKETPLACE_NETWORKS_DIR": str(self.home / "networks"),
            "MARKETPLACE_DEPLOYMENTS_DIR": str(self.home / "deployments"),
            "MARKETPLACE_ZK_CACHE": str(self.zk_cache or self.home / "zk"),
            "MARKETPLACE_IPFS_HOME": str(self.ipfs_home),
            "MARKETPLACE_KEYSTORE_PASSWORD": PASSWORD,
            "COLUMNS": "250",  # one line per message: the tests look for lines
        }

    def cli(self, *args: str, code: int = 0, timeout: float = 120.0) -> str:
        """``marketplace ARGS`` on this party's host; asserts the exit code; the output, whitespace collapsed."""
        argv = [PY, "-m", "marketplace.cli.main", *args]
        done = self.host.run(argv, self.env(), timeout=timeout, check=False, cwd=self.home)
        assert done.returncode == code and "Traceback" not in done.stdout, (self.name, args, done.stdout)
        return " ".join(done.stdout.split())

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        """Starts ``marketplace ARGS`` on this party's host in the background, output to a log in its folder."""
        return self._spawn(args[0], [PY, "-m", "marketplace.cli.main", *args])

    def spawn_python(self, code: str, *args: str) -> subprocess.Popen[str]:
        """Starts ``python -c CODE ARGS`` on this party's host in the background (e.g. a participant running
        modified code), output to a log in its folder like :meth:`spawn`."""
        return self._spawn("python", [PY, "-c", code, *args])

    def _spawn(self, label: str, argv: list[str]) -> subprocess.Popen[str]:
        log = (self.home / f"{label}-{len(self.logs)}.log").open("w+")
        self.logs.append(log)
        return self.host.popen(argv, self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=self.home)

    def log(self, index: int = -1) -> str:
        """What the ``index``-th spawned command printed so far."""
        handle = self.logs[index]
        handle.flush()
        return Path(handle.name).read_text()

    def python(self, code: str, *args: str, timeout: float = 60.0) -> str:
        """Runs ``python -c CODE ARGS`` on this party's host with its environment; its stdout."""
        return self.host.run([PY, "-c", code, *args], self.env(), timeout=timeout).stdout

    def rpc(self, method: str, *params: Any) -> Any:
        """A JSON-RPC call to the chain from this party's host; its result (an error fails the test)."""
        return self.rpc_many([(method, list(params))])[0]

    def rpc_many(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """JSON-RPC calls to the chain from this party's host, in order, in one process; their results."""
        answers = json.loads(self.python(_RPC, self.rpc_url, json.dumps(calls)))
        assert not any("error" in a for a in answers), (calls, answers)
        return [a["result"] for a in answers]

    def ipfs_rpc(self, path: str, **params: str) -> Any:
        """A Kubo RPC call (``/api/v0/PATH``) to this party's own node, from its host; the JSON answer."""
        code = (
            "import sys, json, httpx; r = httpx.post(sys.argv[1], params=json.loads(sys.argv[2]), timeout=30); "
            "r.raise_for_status(); print(r.text)"
        )
        out = self.python(code, f"{self.ipfs_api}/api/v0/{path}", json.dumps(params))
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def pins(self) -> set[str]:
        """The CIDs pinned on this party's own node (``pin/ls``; ``{}`` when there are none, as Kubo answers)."""
        return set(self.ipfs_rpc("pin/ls")[0].get("Keys", {}))

    def ledger(self, project_id: int, *addresses: str) -> dict[str, Any]:
        """What the market says of project ``project_id``, read on this party's host (see :func:`ledger`)."""
        out = self.host.run(
            [PY, "-m", "tests.multihost", "ledger", NETWORK, str(project_id), *addresses], self.env(), timeout=60
        ).stdout
        return dict(json.loads(out.strip().splitlines()[-1]))

    def init_network(self) -> None:
        """``marketplace network init lan`` with this party's keystore."""
        out = self.cli("network", "init", NETWORK, "--rpc-url", self.rpc_url, "--keystore", str(self.keystore))
        assert f"chain id {CHAIN_ID}" in out, out

    def receive_record(self, deployer: Party) -> None:
        """Copies the deployer's published deployment record into this party's folder."""
        (self.home / "deployments").mkdir(parents=True, exist_ok=True)
        src = deployer.home / "deployments" / f"{NETWORK}.json"
        shutil.copyfile(src, self.home / "deployments" / f"{NETWORK}.json")

    def ipfs_up(
        self, peers: Sequence[str], swarm_key: Path, fetch_timeout: float = 30.0, max_fetch_bytes: int | None = None
    ) -> None:
        """Starts this party's IPFS node on its host's address, peered with ``peers``, in the private swarm of
        ``swarm_key``, answering "not available" for what no peer sent within ``fetch_timeout`` seconds (and
        refusing objects over ``max_fetch_bytes``, default the node's); records its RPC URL and swarm multiaddr."""
        port = SWARM_PORT if self.host.netns else free_port()
        args = ["ipfs", "up", "--home", str(self.ipfs_home), "--listen", f"/ip4/{self.host.address}/tcp/{port}"]
        for peer in peers:
            args += ["--peer", peer]
        if max_fetch_bytes is not None:
            args += ["--max-fetch-bytes", str(max_fetch_bytes)]
        out = self.cli(*args, "--swarm-key", str(swarm_key), "--fetch-timeout", str(fetch_timeout), timeout=90)
        self.ipfs_api = re.findall(r"MARKETPLACE_IPFS_API=(\S+)", out)[0]
        self.multiaddr = re.findall(r"swarm address: (/ip4/\S+/p2p/\S+)", out)[0]
        assert self.multiaddr.startswith(f"/ip4/{self.host.address}/tcp/{port}/p2p/"), out

    def ipfs_down(self) -> None:
        """Stops this party's IPFS node (no error if it is not running)."""
        with contextlib.suppress(AssertionError):
            self.cli("ipfs", "down", "--home", str(self.ipfs_home), timeout=30)

    def close_logs(self) -> None:
        for handle in self.logs:
            handle.close()


@dataclass
class Lan:
    """The hosts, the chain on one of them, and a party on each other host."""

    hosts: Hosts
    chain: subprocess.Popen[str]
    rpc_url: str
    parties: dict[str, Party]

    def __getitem__(self, name: str) -> Party:
        return self.parties[name]

    def fund(self, funder: Party, eth: int = 10) -> None:
        """Gives every party ``eth`` ETH (``anvil_setBalance``, sent from ``funder``'s host)."""
        funder.rpc_many([("anvil_setBalance", [p.address, hex(eth * ETH)]) for p in self.parties.values()])

    def warp(self, via: Party, seconds: int) -> None:
        """Moves the chain's clock ``seconds`` on and mines a block (from ``via``'s host)."""
        via.rpc_many([("evm_increaseTime", [seconds]), ("evm_mine", [])])

    def start_swarm(
        self,
        stages: Sequence[Sequence[str]],
        swarm_key: Path,
        fetch_timeout: float = 30.0,
        max_fetch_bytes: Mapping[str, int] | None = None,
    ) -> None:
        """Starts the IPFS nodes of each stage's parties at once, each peered with every node of the stages
        before (connections go both ways: nodes of one stage meet only if a later stage or a fetch joins
        them; a party fetches from the nodes it is connected to; the first stage's nodes are started with
        ``--listen`` only). ``max_fetch_bytes``: the fetch limit of some parties' nodes, by name."""
        started: list[str] = []
        limits = max_fetch_bytes or {}
        for stage in stages:
            peers = tuple(started)

            def up(name: str, peers: tuple[str, ...] = peers) -> None:
                self.parties[name].ipfs_up(peers, swarm_key, fetch_timeout, limits.get(name))

            with ThreadPoolExecutor(len(stage)) as pool:
                list(pool.map(up, stage))
            started += [self.parties[n].multiaddr for n in stage]


def _wait_for_chain(party: Party, chain: subprocess.Popen[str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert chain.poll() is None, f"anvil exited with code {chain.returncode}"
        with contextlib.suppress(AssertionError, ValueError):
            if int(party.rpc("eth_chainId"), 16) == CHAIN_ID:
                return
        time.sleep(0.2)
    raise AssertionError(f"anvil did not answer at {party.rpc_url} within {timeout:.0f} s")


@contextlib.contextmanager
def lan(roles: Sequence[str], root: Path, *, chain_role: str = "chain") -> Iterator[Lan]:
    """Hosts for ``chain_role`` and ``roles``; anvil on the chain host's address; a funded :class:`Party` per
    role, with a keystore and a network profile of the chain. Everything is stopped on the way out."""
    from marketplace.adapters.chain.accounts import create_keystore
    from marketplace.adapters.toolchain import anvil_binary

    with Hosts([chain_role, *roles]) as hosts:
        chain_host = hosts[chain_role]
        port = CHAIN_PORT if chain_host.netns else free_port()
        rpc_url = f"http://{chain_host.address}:{port}"
        chain_log = (root / "anvil.log").open("w")
        argv = [str(anvil_binary()), "--host", chain_host.address, "--port", str(port)]
        chain = chain_host.popen([*argv, "--chain-id", str(CHAIN_ID), "--silent"], stdout=chain_log, stderr=chain_log)
        parties = {name: Party(name, hosts[name], root / name, rpc_url) for name in roles}
        net = Lan(hosts, chain, rpc_url, parties)
        try:
            for party in parties.values():
                party.home.mkdir(parents=True, exist_ok=True)
                key = "0x" + hashlib.sha256(f"multihost/{party.name}".encode()).hexdigest()
                party.address = create_keystore(party.keystore, PASSWORD, key, kdf_iterations=2)
            first = next(iter(parties.values()))
            _wait_for_chain(first, chain)
            net.fund(first)
            with ThreadPoolExecutor(len(parties)) as pool:
                list(pool.map(Party.init_network, parties.values()))
            yield net
        finally:
            for party in parties.values():
                party.ipfs_down()
                party.close_logs()
            chain_log.close()


def wait_all(processes: Sequence[subprocess.Popen[str]], timeout: float, describe: Any = None) -> None:
    """Waits until every process exited (asserting code 0), at most ``timeout`` seconds in all."""
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout:.0f} s: {describe() if describe else ''}") from None
    codes = [p.returncode for p in processes]
    assert codes == [0] * len(codes), (codes, describe() if describe else "")


def wait_for(predicate: Any, timeout: float, describe: Any = None, poll: float = 0.3) -> None:
    """Polls ``predicate()`` until it is true, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {describe() if describe else ''}")
        time.sleep(poll)


def ledger(network: str, project_id: int, addresses: Sequence[str]) -> dict[str, Any]:
    """What the market deployed on ``network`` says of a project: its escrow (budget, fee, stake, status),
    each finalized round's flags and scores, each address's withdrawable amount and each trainer's stake
    left and reliability; wei as integers."""
    from marketplace.adapters.chain.deploy import connect

    market = connect(network, read_only=True)
    p = market.get_project(project_id)
    trainers = market.trainers(project_id)
    return {
        "status": p.status.name,
        "budget": p.reward_budget,
        "fee": p.aggregator_fee,
        "stake": p.stake,
        "trainers": trainers,
        "rounds": [
            {"round": r.round, "flags": list(r.flags), "scores": list(r.scores), "model": r.model_cid}
            for r in market.finalized_rounds(project_id)
        ],
        "submissions": {  # revealed update CIDs of every round so far, the open one included
            str(r): {s.trainer: s.cid for s in market.submissions(project_id, r)}
            for r in range(min(p.rounds_done + 1, p.rounds))
        },
        "withdrawable": {a: market.withdrawable(project_id, a) for a in [*trainers, *addresses]},
        "stake_left": {t: market.trainer_info(project_id, t).stake_left for t in trainers},
        "earned": {t: market.trainer_info(project_id, t).earned for t in trainers},
        "reliability": {t: market.reliability(t) for t in trainers},
    }


def main(argv: Sequence[str]) -> None:
    """``python -m tests.multihost ledger NETWORK PROJECT [ADDRESS...]``: prints :func:`ledger` as JSON."""
    command, network, project, *addresses = argv
    if command != "ledger":
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(ledger(network, int(project), addresses)))


if __name__ == "__main__":
    main(sys.argv[1:])
