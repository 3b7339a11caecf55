"""The demo gives each participant its own IPFS node (real embedded Kubo nodes on loopback, in a private swarm
made for the run): each trainer's update reaches the aggregator only through the swarm, the aggregator pins
what it fetched, an auditor re-derives the round through a node of its own, and the demo prints each node's
traffic; ``--shared-ipfs`` keeps one node for everyone. The owner commits and reveals its reference row each round
(from its validation set, through its own node), the round is scored with it and the demo says what it changed;
``--no-reference`` turns it off. Everyone withdraws what it is owed and its rejection bonds; the payout table's totals
add up (escrow + bonds posted = paid out + bonds withdrawn)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rich.console import Console

from marketplace.demo.job import ETH, DemoConfig, Parties, local_stack, payout_table, run_demo
from marketplace.demo.swarm import AGGREGATOR, AUDITOR, HUBS, OWNER, participant_names, trainer_name

ROOT = Path(__file__).resolve().parent.parent
TRAINERS = 3
#: The payout table's total row: paid out and bonds withdrawn, against the escrow and the bonds posted.
TOTAL = re.compile(
    r"│ total +│ +│ (?P<paid>[\d.]+) +│ (?P<bonds>[\d.]+) +│ escrowed (?P<escrowed>[\d.]+) \+ bonds posted "
    r"(?P<posted>[\d.]+)"
)


def test_each_update_reaches_the_aggregator_over_the_swarm_from_its_trainers_node(tmp_path: Path) -> None:
    config = DemoConfig(trainers=TRAINERS, attacks=[], rounds=1, epochs=1, zk=False, plot=None, workdir=tmp_path)
    console = Console(record=True, width=200)
    names = participant_names(TRAINERS)
    with local_stack(tmp_path, TRAINERS + 3, participants=config.participants(), console=console) as stack:
        assert stack.swarm is not None and list(stack.swarm.participants) == names
        result = run_demo(config, console, stack)
        swarm = result.swarm
        assert swarm is not None
        aggregator = stack.store_of(AGGREGATOR).client
        trainers = list(result.roles)  # in the order of the trainers
        updates = {s.trainer: s.cid for s in stack.admin.submissions(result.project_id, 0)}
        assert set(updates) == set(trainers)
        for i, address in enumerate(trainers):
            own = stack.store_of(trainer_name(i))
            size = len(own.get_bytes(updates[address]))  # its own node holds it (pinned when it revealed)
            assert own.client.is_pinned(updates[address])
            assert aggregator.is_pinned(updates[address]), f"the aggregator did not pin trainer {i}'s update"
            # Nobody else held the update when the aggregator fetched it: the trainer's node served it.
            assert swarm.of(trainer_name(i)).served_bytes >= size > 1_000
        fetched = sum(len(stack.store_of(trainer_name(i)).get_bytes(updates[a])) for i, a in enumerate(trainers))
        assert swarm.of(AGGREGATOR).fetched_bytes >= fetched  # every update (and the initial model) came over
        assert swarm.of(OWNER).fetched_bytes == 0  # the owner's node only served (the initial model)
        assert all(swarm.of(trainer_name(i)).fetched_bytes > 0 for i in range(TRAINERS))  # the initial model
        assert swarm.of(AUDITOR).fetched_bytes >= fetched and result.audit_agrees is True
        # The owner's reference was revealed and the round scored with it (the auditor agreed with that too).
        assert stack.admin.reference_of(result.project_id, 0).revealed and result.reports[0].reference is not None
    # Every node joined one swarm and is connected to both hubs at least.
    assert swarm.size == len(names) and all(set(HUBS) - {n.name} <= set(n.peers) for n in swarm.nodes)
    assert sum(result.payouts.values()) == result.escrowed
    assert result.bonds_posted == sum(result.bonds.values()) == 0  # nobody was rejected: no bond posted
    assert set(result.bonds) == set(result.payouts)  # everyone collected its bonds with its payout
    out = console.export_text()
    total = TOTAL.search(out)
    assert total and (total["paid"], total["bonds"]) == (total["escrowed"], total["posted"]), out
    assert f"IPFS swarm: {len(names)} nodes" in out and "served kB (upper bound)" in out, out
    for name in names:
        assert re.search(rf"^│ {name} +│ Qm", out, re.MULTILINE), (name, out)
    assert "auditor (its own IPFS node): round 0 re-derived from the chain and the swarm" in out, out
    assert "owner revealed its reference (gas " in out and "the owner's reference was revealed and " in out, out


def test_shared_ipfs_keeps_one_node_for_everyone(tmp_path: Path) -> None:
    args = ["demo", "--shared-ipfs", "--no-zk", "--no-web", "--honest", "--trainers", "2", "--rounds", "1",
            "--no-reference"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "MARKETPLACE_IPFS_API"}
    done = subprocess.run(
        [sys.executable, "-m", "marketplace.cli.main", *args, "--epochs", "1", "--plot", str(tmp_path / "demo.png")],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "(one node shared by every participant: --shared-ipfs)" in out and "IPFS swarm" not in out, out
    assert "reference" not in out, out  # --no-reference: the owner commits none
    total = TOTAL.search(out)
    assert total and (total["paid"], total["bonds"]) == (total["escrowed"], total["posted"]), out


def test_the_payout_table_counts_the_bonds_each_party_withdrew() -> None:
    """A job whose aggregator posted two bonds (0.006 ETH each) and one trainer won its dispute: the trainer's
    reimbursement and the aggregator's returned bonds are in the bonds column, and the totals add up on both sides."""
    owner, aggregator, won, lost = ("0x" + c * 40 for c in "1234")
    payouts = {owner: 3 * ETH, aggregator: ETH // 2, won: 2 * ETH, lost: ETH // 2}
    bonds = {owner: 0, aggregator: 12 * ETH // 1000 - ETH // 5000, won: ETH // 5000, lost: 0}
    stack: Any = SimpleNamespace(admin=SimpleNamespace(reliability=lambda address: 6_000))
    parties = Parties({won: "honest", lost: "free_rider_zero"}, owner, aggregator)
    console = Console(record=True, width=200)
    console.print(payout_table(stack, 7, payouts, bonds, parties, 6 * ETH, 12 * ETH // 1000))
    out = console.export_text()
    assert re.search(r"│ 0x2222…2222 +│ aggregator \(fee; bonds returned\) +│ 0\.5000 +│ 0\.0118 +│", out), out
    assert re.search(r"│ 0x3333…3333 +│ trainer: honest +│ 2\.0000 +│ 0\.0002 +│ 60% +│", out), out
    total = TOTAL.search(out)
    assert total, out
    assert (total["paid"], total["bonds"]) == (total["escrowed"], total["posted"]) == ("6.0000", "0.0120")
