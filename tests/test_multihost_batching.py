"""Roles on separate hosts, batched (issue 16): the aggregator commits and reveals its trainers in one transaction
per phase, across hosts.

The owner, the aggregator and four trainers are separate hosts (tests/multihost.py), each with its own IPFS node
in one private swarm. The aggregator starts first, serving its commit inbox on its host's address
(``aggregator run --commit-inbox HOST:PORT``); every trainer is given the URL it printed (``trainer run
--commit-via URL``) and hands its openings over through its own IPFS node (``--reveal-via aggregator``). One
trainer's host cannot reach the inbox: its routes drop every packet to the inbox's port (the swarm and the chain
stay reachable), so its hand-over times out and it commits itself, within half the commit period. Before that, an
inbox on every address of the aggregator's host (``--commit-inbox 0.0.0.0:PORT``) prints that host's URLs, the
loopback one marked "this machine only", never the wildcard.

What a user checks, from the chain: the job finishes; each round's commits are one ``commitBatch`` sent by the
aggregator for the three trainers that reached it plus the fourth's own ``commitUpdate``, and its reveals one
``revealBatch`` for all four; every trainer is paid; what everyone may withdraw is what was escrowed.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.multihost import NETWORK, Lan, Party, free_port, lan, wait_all, wait_for
from tests.test_multihost_job import _CONNECT, _say_mode

TRAINERS = 4
ROUNDS = 2
ROLES = ("owner", "aggregator", *(f"trainer{i}" for i in range(TRAINERS)))
INBOX_PORT = 8600  # the aggregator's commit inbox, on its host's address
SUBMISSION_PERIOD = 600  # seconds of each round's commit phase: the blocked trainer commits itself by half of it

# What the chain says of each round's commits and reveals: per transaction that emitted them, who sent it, which
# market function it called, its block's time and the trainers it committed or revealed; and when the round began.
_TRANSACTIONS = """
import json, sys
from marketplace.adapters.chain.deploy import connect

market = connect(sys.argv[1], read_only=True)
pid, rounds = int(sys.argv[2]), int(sys.argv[3])
w3, since = market.chain.w3, market.first_block(pid)

def logs(event, **filters):
    return market.chain.get_logs(market.market, event, since, argument_filters={"projectId": pid, **filters})

def started(event):
    return w3.eth.get_block(event["block_number"])["timestamp"]

starts = [started(e) for e in logs("TrainingStarted")] + [started(e) for e in logs("RoundFinalized")]
out = []
for round_ in range(rounds):
    phases = {"start": starts[round_]}
    for phase, event in (("commits", "UpdateCommitted"), ("reveals", "UpdateSubmitted")):
        txs = {}
        for e in logs(event, round=round_):
            if e["tx_hash"] not in txs:
                tx = w3.eth.get_transaction(e["tx_hash"])
                txs[e["tx_hash"]] = {
                    "from": tx["from"],
                    "function": market.market.decode_function_input(tx["input"])[0].fn_name,
                    "time": w3.eth.get_block(tx["blockNumber"])["timestamp"],
                    "trainers": [],
                }
            txs[e["tx_hash"]]["trainers"].append(e["args"]["trainer"])
        phases[phase] = list(txs.values())
    out.append(phases)
print(json.dumps(out))
"""


def _transactions(reader: Party, project_id: int) -> list[dict[str, Any]]:
    """:data:`_TRANSACTIONS` of ``project_id``, read on ``reader``'s host."""
    return list(json.loads(reader.python(_TRANSACTIONS, NETWORK, str(project_id), str(ROUNDS)).splitlines()[-1]))


def _drop_port(party: Party, address: str, port: int) -> None:
    """``party``'s host silently drops every TCP packet it sends to ``address:port``: a policy rule sends them to
    a route through its loopback, where they die (no answer, no error: a connection attempt times out)."""
    party.host.run(["ip", "rule", "add", "ipproto", "tcp", "dport", str(port), "table", "100"])
    party.host.run(["ip", "route", "add", f"{address}/32", "dev", "lo", "table", "100"])


def _connects(party: Party, address: str, port: int) -> bool:
    out = party.host.run([sys.executable, "-c", _CONNECT, address, str(port)]).stdout
    return int(out) == 0


def _post_job(net: Lan, tmp_path: Path) -> None:
    """The owner deploys the market, publishes its record and posts a job for the aggregator; the data is split."""
    owner, aggregator = net["owner"], net["aggregator"]
    owner.cli("deploy", "--network", NETWORK, "--challenge-period", "0")
    for party in net.parties.values():
        if party is not owner:
            party.receive_record(owner)
    cid = owner.cli("model", "init", "--model", "mlp", "--ipfs-api", owner.ipfs_api).split()[-1]
    out = owner.cli(
        *("project", "create", "--network", NETWORK, "--initial-cid", cid, "--model", "mlp"),
        *("--rounds", str(ROUNDS), "--min-trainers", str(TRAINERS), "--max-trainers", str(TRAINERS)),
        *("--budget", "1", "--fee", "0.1", "--stake", "0.01", "--aggregator", aggregator.address),
        *("--submission-period", str(SUBMISSION_PERIOD)),
    )
    assert "project 1 created" in out, out
    owner.cli("data", "partition", "--trainers", str(TRAINERS), "--out", str(tmp_path / "shards"))


# Heavy (make test-heavy, which CI runs after make test): ~2-3 min.
@pytest.mark.heavy
def test_commits_and_reveals_are_batched_across_hosts_and_a_trainer_cut_off_from_the_inbox_commits_itself(
    tmp_path: Path,
) -> None:
    with lan(ROLES, tmp_path) as net:
        _say_mode(net)
        owner, aggregator = net["owner"], net["aggregator"]
        trainers = [net[f"trainer{i}"] for i in range(TRAINERS)]
        blocked = trainers[-1]
        swarm_key = tmp_path / "swarm.key"
        owner.cli("ipfs", "swarm-key", "new", str(swarm_key))
        net.start_swarm([["owner"], ["aggregator"], [t.name for t in trainers]], swarm_key)
        _post_job(net, tmp_path)

        # (a) An inbox on every address of the aggregator's host gives out that host's addresses, never the
        # wildcard (a trainer cannot dial 0.0.0.0). On its own host only: elsewhere it would bind this machine's.
        if net.hosts.mode == "netns":
            out = aggregator.cli(
                *("aggregator", "run", "--project", "1", "--network", NETWORK, "--ipfs-api", aggregator.ipfs_api),
                *("--once", "--commit-inbox", f"0.0.0.0:{INBOX_PORT}"),
            )
            assert re.findall(r"commit inbox: (\S+)", out) == [
                f"http://{aggregator.host.address}:{INBOX_PORT}/commits",
                f"http://127.0.0.1:{INBOX_PORT}/commits",
            ], out
            assert "/commits (this machine only)" in out and "0.0.0.0" not in out, out

        # (b) The aggregator starts first, its inbox on its host's address, and prints the URL to hand out.
        port = INBOX_PORT if net.hosts.mode == "netns" else free_port()
        agg = aggregator.spawn(
            *("aggregator", "run", "--project", "1", "--network", NETWORK, "--ipfs-api", aggregator.ipfs_api),
            *("--poll", "0.5", "--eval-data", str(tmp_path / "shards" / "test.npz")),
            *("--commit-inbox", f"{aggregator.host.address}:{port}"),
        )
        logs = lambda: {p.name: p.log() for p in (aggregator, *trainers) if p.logs}  # noqa: E731
        wait_for(lambda: "commit inbox: " in aggregator.log() or agg.poll() is not None, 60, logs)
        urls = re.findall(r"commit inbox: (\S+) ", aggregator.log())
        assert urls == [f"http://{aggregator.host.address}:{port}/commits"], aggregator.log()
        inbox = urls[0]
        for t in trainers[:-1]:
            assert _connects(t, aggregator.host.address, port)
        if net.hosts.mode == "netns":  # the blocked trainer's host drops what it sends to the inbox's port
            _drop_port(blocked, aggregator.host.address, port)
            assert not _connects(blocked, aggregator.host.address, port)
            via = {t.name: inbox for t in trainers}
        else:  # one machine: the blocked trainer is given a port nobody serves
            via = {t.name: inbox for t in trainers} | {blocked.name: f"http://127.0.0.1:{free_port()}/commits"}

        # (c) The trainers join and run, each handing its signed commits to the inbox and its openings over IPFS.
        for t in trainers:
            assert "joined project 1" in t.cli("trainer", "join", "1", "--network", NETWORK)
        runs = [
            t.spawn(
                *("trainer", "run", "1", "--network", NETWORK, "--ipfs-api", t.ipfs_api, "--poll", "0.5"),
                *("--commit-via", via[t.name], "--reveal-via", "aggregator"),
                *("--data", str(tmp_path / "shards" / f"trainer_{i:03d}.npz")),
            )
            for i, t in enumerate(trainers)
        ]
        wait_all([agg, *runs], 300, logs)
        log = aggregator.log()
        for round_ in range(ROUNDS):
            assert f"project 1 round {round_} finalized" in log, log
            assert f"project 1 round {round_}: committed {TRAINERS - 1} trainer(s) in one batch" in log, log
            assert f"project 1 round {round_}: revealed {TRAINERS} trainer(s) in one batch" in log, log
        assert "reject" not in log and "would not land" not in log and "no opening" not in log, log
        for t in trainers[:-1]:
            assert t.log().count("by the aggregator's batch, no gas") == ROUNDS, t.log()
        assert blocked.log().count("the commit inbox did not take the signed commit") == ROUNDS, blocked.log()
        for t in trainers:
            assert t.log().count("by the aggregator's batch (no reveal gas") == ROUNDS, t.log()
            assert "project ended" in t.log(), t.log()

        # (d) The chain: per round, one commitBatch from the aggregator for the trainers that reached its inbox,
        # the blocked trainer's own commitUpdate within half the commit period, and one revealBatch for everyone.
        others = sorted(t.address for t in trainers[:-1])
        transactions = _transactions(owner, 1)
        (tmp_path / "transactions.json").write_text(json.dumps(transactions, indent=1))  # for whoever reads the run
        for round_, phases in enumerate(transactions):
            commits = sorted(phases["commits"], key=lambda tx: tx["function"])
            assert [(tx["function"], tx["from"]) for tx in commits] == [
                ("commitBatch", aggregator.address),
                ("commitUpdate", blocked.address),
            ], (round_, phases)
            assert sorted(commits[0]["trainers"]) == others and commits[1]["trainers"] == [blocked.address]
            assert commits[1]["time"] < phases["start"] + SUBMISSION_PERIOD // 2, (round_, phases)
            [reveal] = phases["reveals"]
            assert (reveal["function"], reveal["from"]) == ("revealBatch", aggregator.address), (round_, phases)
            assert sorted(reveal["trainers"]) == sorted(t.address for t in trainers), (round_, phases)

        # (e) Every trainer is paid (its stake back and a reward); everything escrowed is owed to someone.
        book = owner.ledger(1, owner.address, aggregator.address)
        assert book["status"] == "FINISHED" and [r["round"] for r in book["rounds"]] == list(range(ROUNDS))
        assert all(not any(r["flags"]) for r in book["rounds"]), book["rounds"]
        owed = book["withdrawable"]
        assert all(owed[t.address] > book["stake"] for t in trainers), owed
        assert owed[aggregator.address] == book["fee"], owed
        assert sum(owed.values()) == book["budget"] + book["fee"] + TRAINERS * book["stake"], owed
