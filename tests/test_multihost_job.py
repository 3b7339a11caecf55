"""Roles on separate hosts (issue 14): a whole job whose owner, aggregator and three trainers are separate
processes on separate hosts, each with its own IPFS node, the chain reachable over the hosts' network.

Each host is a Linux network namespace on a bridge the test creates (tests/netns.py); where namespaces are
not permitted every node runs on its own loopback port instead, and the test says so (a warning). The job
uses the test verifier (no ezkl) or real ezkl proofs; every command is the command line a participant would
type (tests/multihost.py).
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.multihost import NETWORK, ROOT, Lan, Party, lan, wait_all, wait_for
from tests.netns import SUBNET, Hosts, namespace_pids

TRAINERS = 3
ROUNDS = 2
PARAMS = 2410  # the mlp's parameters: an update is at least 4 bytes each
ROLES = ("owner", "aggregator", *(f"trainer{i}" for i in range(TRAINERS)))

_LISTEN = """
import socket, sys, time
for host, port in ((sys.argv[1], 8001), ("127.0.0.1", 8000)):
    s = socket.socket(); s.bind((host, port)); s.listen()
    globals()[f"s{port}"] = s
print("listening", flush=True)
time.sleep(600)
"""
_CONNECT = (
    "import socket, sys; s = socket.socket(); s.settimeout(3); print(s.connect_ex((sys.argv[1], int(sys.argv[2]))))"
)


def _own_addresses() -> list[ipaddress.IPv4Address]:
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True).stdout
    return [ipaddress.IPv4Interface(line.split()[3]).ip for line in out.splitlines()]


def test_each_host_reaches_the_others_only_over_the_switch() -> None:
    hosts = Hosts(["a", "b"])
    with pytest.raises(RuntimeError, match="the block failed"), hosts:
        if hosts.mode != "netns":
            pytest.skip(f"network namespaces are not permitted here: {hosts.reason}")
        a, b = hosts["a"], hosts["b"]
        server = a.popen([sys.executable, "-c", _LISTEN, a.address], stdout=subprocess.PIPE)
        assert server.stdout is not None and server.stdout.readline().strip() == "listening"

        def connect(host_address: str, port: int) -> int:
            return int(b.run([sys.executable, "-c", _CONNECT, host_address, str(port)]).stdout)

        assert connect(a.address, 8001) == 0  # a's service on its address: reached over the switch
        assert connect(a.address, 8000) != 0  # a's service on its own loopback: not from b
        assert connect("127.0.0.1", 8000) != 0  # b's loopback is b's
        for host in (a, b):  # loopback up, one address on the switch, no other route
            out = host.run(["ip", "-o", "-4", "addr", "show"]).stdout
            assert "127.0.0.1/8" in out and f"{host.address}/24" in out, out
            assert host.run(["ip", "route", "show", "default"]).stdout.strip() == ""
        assert not any(ip in SUBNET for ip in _own_addresses())  # the test's own namespace is not on the switch
        namespaces = hosts.namespaces
        assert len(namespaces) == 3 and namespace_pids(a.netns or "") == [server.pid]
        raise RuntimeError("the block failed")  # everything is cleaned up all the same
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not any(name in listed for name in namespaces)
    assert server.wait(5) is not None


def _say_mode(net: Lan) -> None:
    if net.hosts.mode != "netns":
        warnings.warn(
            f"network namespaces are not permitted ({net.hosts.reason}): "
            "every node runs on its own loopback port of this machine",
            stacklevel=2,
        )


def _refused(host: Party, address: str, port: int) -> bool:
    out = host.host.run([sys.executable, "-c", _CONNECT, address, str(port)]).stdout
    return int(out) != 0


# Both heavy (make test-heavy, which CI runs after make test): test-hash ~2 min, ezkl-gram ~4-5 min. What make
# test keeps of separate hosts: the switch test above and the node-to-node swarm tests (tests/test_ipfs_swarm.py).
@pytest.mark.heavy
@pytest.mark.parametrize("prover", ["test-hash", "ezkl-gram"])
def test_a_job_whose_parties_are_separate_hosts(prover: str, tmp_path: Path) -> None:
    """``test-hash``: the test verifier (the proof is a hash of the values, no ezkl); ``ezkl-gram`` (heavy):
    real proofs of the 4 x 32 circuit, with the development keys of the checkout's zk cache, which the owner
    (the market's admin here) deploys the verifier of and the aggregator proves with."""
    with lan(ROLES, tmp_path) as net:
        _say_mode(net)
        owner, aggregator = net["owner"], net["aggregator"]
        if prover == "ezkl-gram":  # the admin's published key folder, used as it is (500 MB of keys)
            owner.zk_cache = aggregator.zk_cache = ROOT / ".cache" / "zk"
        trainers = [net[f"trainer{i}"] for i in range(TRAINERS)]
        swarm_key = tmp_path / "swarm.key"
        owner.cli("ipfs", "swarm-key", "new", str(swarm_key))
        net.start_swarm([["owner"], ["aggregator"], [t.name for t in trainers]], swarm_key)

        ident = aggregator.cli("ipfs", "id", "--home", str(aggregator.ipfs_home))
        assert aggregator.multiaddr in ident, ident  # what a participant hands the others for their --peer

        # (a) The owner deploys, pins the initial model on its own node and posts the job.
        owner.cli("deploy", "--network", NETWORK, "--challenge-period", "0")
        if prover == "ezkl-gram":
            out = owner.cli("zk", "deploy", "--network", NETWORK, "--max-trainers", str(TRAINERS), timeout=900)
            assert "approved" in out, out
        for party in (aggregator, *trainers):
            party.receive_record(owner)
        cid = owner.cli("model", "init", "--model", "mlp", "--ipfs-api", owner.ipfs_api).split()[-1]
        out = owner.cli(
            *("project", "create", "--network", NETWORK, "--initial-cid", cid, "--model", "mlp"),
            *("--rounds", str(ROUNDS), "--min-trainers", str(TRAINERS), "--max-trainers", str(TRAINERS)),
            *("--budget", "1", "--fee", "0.1", "--stake", "0.01", "--aggregator", aggregator.address),
        )
        assert "project 1 created" in out, out
        owner.cli("data", "partition", "--trainers", str(TRAINERS), "--out", str(tmp_path / "shards"))

        # (b) Each trainer joins from its own host and runs as a daemon; the aggregator starts once every
        # trainer revealed its first update, so its node cannot have had any update before.
        for t in trainers:
            assert "joined project 1" in t.cli("trainer", "join", "1", "--network", NETWORK)
        runs = [
            t.spawn(
                *("trainer", "run", "1", "--network", NETWORK, "--ipfs-api", t.ipfs_api, "--poll", "0.5"),
                *("--reveal-via", "self"),  # the aggregator starts after the reveals (see below)
                *("--data", str(tmp_path / "shards" / f"trainer_{i:03d}.npz")),
            )
            for i, t in enumerate(trainers)
        ]
        logs = lambda: {p.name: p.log() for p in (aggregator, *trainers) if p.logs}  # noqa: E731
        wait_for(lambda: all("round 0: revealed" in t.log() for t in trainers), 120, logs)
        first = owner.ledger(1)["submissions"]["0"]
        assert sorted(first) == sorted(t.address for t in trainers)
        before = aggregator.ipfs_rpc("stats/swarm")[0]
        assert before["FetchedBlocks"] == 0 and before["Peers"] == len(ROLES) - 1, before
        assert not set(first.values()) & aggregator.pins()
        agg = aggregator.spawn(
            *("aggregator", "run", "--project", "1", "--network", NETWORK, "--ipfs-api", aggregator.ipfs_api),
            *("--poll", "0.5", "--eval-data", str(tmp_path / "shards" / "test.npz")),
        )
        wait_all([agg, *runs], 240 if prover == "test-hash" else 900, logs)
        log = aggregator.log()
        for round_ in range(ROUNDS):
            assert f"project 1 round {round_} finalized" in log, log
        assert log.count(f"proof {prover} (") == ROUNDS, log
        assert "reject" not in log, log
        for t in trainers:
            assert "round 1: revealed" in t.log() and "project ended" in t.log(), t.log()

        # (c) Every update reached the aggregator through the swarm: its node fetched them from its peers and
        # keeps them pinned, and no role could have reached another's node but over the swarm (each command
        # was given its own node, whose RPC listens on 127.0.0.1 of its own host).
        book = owner.ledger(1, owner.address, aggregator.address)
        assert book["status"] == "FINISHED" and [r["round"] for r in book["rounds"]] == list(range(ROUNDS))
        updates = {cid for round_ in book["submissions"].values() for cid in round_.values()}
        assert len(updates) == ROUNDS * TRAINERS
        after = aggregator.ipfs_rpc("stats/swarm")[0]
        assert after["FetchedBlocks"] >= len(updates) and after["FetchedBytes"] >= len(updates) * PARAMS * 4, after
        assert after["Unavailable"] == 0, after
        assert updates <= aggregator.pins()
        for t in trainers:  # each trainer's node sent at least its own updates
            served = t.ipfs_rpc("stats/swarm")[0]["TcpBytesOut"]
            assert served is None or served >= ROUNDS * PARAMS * 4, served
        if net.hosts.mode == "netns":
            port = int(trainers[0].ipfs_api.rsplit(":", 1)[1])
            assert _refused(aggregator, trainers[0].host.address, port)  # a node's RPC: its own host only
            assert _refused(aggregator, "127.0.0.1", port)

        # (d) Anyone checks every round from its own node, which fetches what it needs from the swarm.
        for round_ in range(ROUNDS):
            out = owner.cli("verify", "1", str(round_), "--network", NETWORK, "--ipfs-api", owner.ipfs_api)
            assert "valid" in out and "invalid" not in out, out
            out = owner.cli("audit", "1", str(round_), "--network", NETWORK, "--ipfs-api", owner.ipfs_api)
            assert f"round {round_} checks out: 0 invalid update(s)" in out, out
            assert f"mean of {TRAINERS} paid update(s)" in out, out

        # (e) Everyone withdraws from its own host: what was escrowed (budget + fee) and staked comes back.
        owed = book["withdrawable"]
        assert all(owed[t.address] > book["stake"] for t in trainers), owed  # stake back plus a reward
        assert sum(owed.values()) == book["budget"] + book["fee"] + TRAINERS * book["stake"]
        for party in (owner, aggregator, *trainers):
            assert "withdrew" in party.cli("project", "withdraw", "1", "--network", NETWORK)
        assert not any(owner.ledger(1, owner.address, aggregator.address)["withdrawable"].values())
