"""A security review of commit-reveal, round-bound proofs and untrusted documents (issue 12), attacking
the protocol as an outsider would: every test performs one attack against a real anvil (and, where the
attack goes through IPFS, a real IPFS node) with the project's own roles, and asserts what the victim
would check: that it is paid, keeps its stake, and that the attacker earns nothing.

1. An update pinned before its commit is public before its author is bound to it: a trainer watching the
   IPFS node sees the new pin, fetches the update and commits it first with a higher tip (fee-ordered
   mempool); arrival is commit order, so the rule flags the original as the copy. (Fixed: a trainer node pins
   its update only once its own commit is on chain, so a copy arrives after the original and is the one flagged.)
2. A revealed CID nobody serves stalled the aggregator: an online IPFS node searches the network for it
   and answers nothing, the fetch timed out, ``collect_round`` took that for its own node being down and
   re-raised, so the round was never finalized; after the aggregation deadline the project is abandoned
   and the attacker, who trained nothing, is paid as much as each honest trainer. (Fixed: a fetch that
   times out while the node answers a probe is the update's fault and the update is rejected.)
3. An owner who sets a reveal period shorter than a block interval takes every stake: the honest
   trainers' reveals land after the deadline, they are slashed as non-revealers and the slashed stakes go
   to the owner. (Fixed: the market refuses any phase shorter than ``MIN_PHASE_PERIOD``, 5 minutes, and at that
   floor honest trainers revealing one per block are all in time and paid.)
"""

# ruff: noqa: F811  (the fixture imported from tests.ipfs_fixtures is used as a test argument)

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from pydantic import ValidationError

from marketplace.adapters.chain.anvil import dev_accounts
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.deploy import TEST_VERIFIER, deploy_marketplace, market_client
from marketplace.adapters.chain.errors import ContractRevert
from marketplace.adapters.chain.market import MIN_PHASE_PERIOD, ProjectConfig, ProjectStatus
from marketplace.adapters.ipfs.cid import compute_cid
from marketplace.adapters.ipfs.errors import IpfsTimeout, NodeBusy
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.manager import LocalIpfsNode, NodeOptions
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.fl.models import build_model, param_spec, tensors_to_vector
from marketplace.protocol.commitment import commit_update
from marketplace.roles.aggregator import AggregatorNode
from marketplace.roles.trainer import Committed, StepOutcome, Submitted, TrainerNode
from marketplace.round.collect import collect_round
from tests.disputes import step_through_disputes
from tests.ipfs_fixtures import ipfs_node  # noqa: F401
from tests.market_fixtures import Actors, own_seal, reveal_update, reverts
from tests.mempool import BroadcastingMarket, Mempool, fee_ordered_anvil
from tests.update_sources import FixedUpdate, agreeing_updates

ETH = 10**18
STAKE = ETH // 10
HONEST_TIP, COPIER_TIP = 1, 50  # gwei


# --------------------------------------------------------------------------- 1. pinned before committed


def test_an_update_seen_on_ipfs_before_its_commit_cannot_be_committed_first_by_a_watcher(
    ipfs_node: LocalIpfsNode,
) -> None:
    accounts: list[LocalAccount] = dev_accounts(8)
    with fee_ordered_anvil() as anvil:
        admin = ChainClient(anvil.url, accounts[0])
        for account in accounts:
            admin.set_balance(account.address, 1_000 * ETH)
        deployment = deploy_marketplace(admin, network="attack-review")
        base = market_client(admin, deployment)
        store = ModelStore(ipfs_node.client())
        owner, aggregator = base.as_account(accounts[1]), base.as_account(accounts[2])
        trainers = [base.as_account(a) for a in accounts[3:8]]
        victim, honest, watcher = trainers[0], trainers[1:4], trainers[4]
        cfg = ProjectConfig(
            aggregator=aggregator.address,
            verifier=deployment.address(TEST_VERIFIER),
            reward_budget=10 * ETH,
            aggregator_fee=ETH,
            stake=STAKE,
            rounds=1,
            min_trainers=len(trainers),
            max_trainers=len(trainers),
            slash_bps=5_000,
            model_name="mlp",
            initial_model_cid=store.put_tensors(build_model("mlp", seed=1).state_dict(), {"kind": "model"}),
        )
        pid = owner.create_project(cfg)
        for t in trainers:
            t.join(pid)
        updates = agreeing_updates(4, seed=171)  # an update no other test pins (the test diffs the pins)
        for t, u in zip(honest, updates[1:], strict=True):
            assert isinstance(TrainerNode(t, store, FixedUpdate(u)).step(pid), Committed)

        # The victim broadcasts its commit; the watcher lists the node's pins while it is pending.
        pinned_before = set(store.client.pin_ls())
        mempool = Mempool(admin)
        mempool.automine(False)
        try:
            a_node = TrainerNode(BroadcastingMarket(victim, mempool, tip_gwei=HONEST_TIP), store,
                                 FixedUpdate(updates[0]))  # fmt: skip
            a_commit = a_node.step(pid)
            assert isinstance(a_commit, Committed)
            assert set(store.client.pin_ls()) == pinned_before  # nothing of the victim's is public yet
            block = mempool.mine()
        finally:
            mempool.automine(True)
        assert [r["from"] for r in block] == [victim.address]
        # Once its commit is on chain the victim publishes its update; the watcher copies it at once, and
        # commits the copy (the commit phase is still open: the watcher has not committed).
        assert a_node.step(pid) is StepOutcome.WAITING_FOR_REVEAL
        (seen,) = set(store.client.pin_ls()) - pinned_before
        assert seen == a_commit.cid
        spec = param_spec("mlp")
        copy = tensors_to_vector(store.get_tensors(seen, expected=spec), spec)
        _, commitment = commit_update(copy, watcher.sketch_seed(pid), watcher.sketch_width(pid))
        watcher.commit_update(pid, 0, own_seal(watcher, pid, 0, seen, commitment))
        assert [c.trainer for c in watcher.commits(pid, 0)][-2:] == [victim.address, watcher.address]

        # Every trainer committed: reveals open. Everyone reveals, the aggregator finalizes with the rule.
        for t, u in zip(honest, updates[1:], strict=True):
            assert isinstance(TrainerNode(t, store, FixedUpdate(u)).step(pid), Submitted)
        assert isinstance(a_node.step(pid), Submitted)
        reveal_update(watcher, pid, 0, seen, commitment)
        report = AggregatorNode(aggregator, store).step(pid)
        assert report is not None and owner.get_project(pid).status is ProjectStatus.FINISHED
        paid = {t.address: t.withdraw(pid) for t in trainers}

    # What the victim checks: it is not flagged, is paid and keeps its stake; the watcher earns nothing.
    a, w = report.trainers.index(victim.address), report.trainers.index(watcher.address)
    assert not report.flags[a], "the victim was flagged as a copy of its own update"
    assert paid[victim.address] > STAKE
    assert report.flags[w] or report.chain_scores[w] == 0
    assert paid[watcher.address] <= STAKE


# --------------------------------------------------------------------------- 2. a CID nobody serves


class _StallingIpfs:
    """An HTTP proxy in front of the real IPFS node that never answers ``cat`` of ``stall_cid``: what an
    online Kubo node does for a CID no peer provides (it searches the network until the client gives
    up). Everything else is forwarded unchanged; with ``stall_cid=None`` nothing is answered (a node that hangs)."""

    def __init__(self, upstream: str, stall_cid: str | None) -> None:
        self.release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                stalled = url.path.endswith("/cat") and parse_qs(url.query).get("arg") == [stall_cid]
                if stall_cid is None or stalled:
                    proxy.release.wait(60)
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type",)}
                answer = httpx.post(f"{upstream}{self.path}", content=body, headers=headers, timeout=30)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", "application/octet-stream"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _StallingIpfs:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def project_with_store(actors: Actors, ipfs_node: LocalIpfsNode) -> Iterator[tuple[Actors, ModelStore, int]]:
    store = ModelStore(ipfs_node.client())
    initial = store.put_tensors(build_model("mlp", seed=1).state_dict(), {"kind": "model"})
    pid = actors.training_project(4, rounds=2, initial_model_cid=initial, slash_bps=5_000)
    yield actors, store, pid


def test_a_revealed_cid_nobody_serves_is_rejected_and_cannot_stall_the_round(
    project_with_store: tuple[Actors, ModelStore, int], ipfs_node: LocalIpfsNode
) -> None:
    actors, store, pid = project_with_store
    honest, attacker = actors.trainers[:3], actors.trainers[3]
    nodes = [TrainerNode(t, store, FixedUpdate(u)) for t, u in zip(honest, agreeing_updates(3, seed=11), strict=True)]
    for node in nodes:
        assert isinstance(node.step(pid), Committed)
    # The attacker trains nothing: it seals a CID of no object and a made-up commitment.
    bogus_cid, bogus_commitment = compute_cid(b"never added to any node"), b"\x01" * 32
    attacker.commit_update(pid, 0, own_seal(attacker, pid, 0, bogus_cid, bogus_commitment))
    for node in nodes:
        assert isinstance(node.step(pid), Submitted)
    reveal_update(attacker, pid, 0, bogus_cid, bogus_commitment)

    with _StallingIpfs(ipfs_node.api_url, bogus_cid) as online_node:
        client = IpfsClient(online_node.url, timeout=1.0, retries=0)
        aggregator = AggregatorNode(actors.aggregator, ModelStore(client))
        report = step_through_disputes(aggregator, pid)  # raised IpfsTimeout before: the round stalled

    assert report is not None and report.tx_hash
    assert actors.owner.get_project(pid).current_round == 1  # the round is finalized, the project goes on
    a = report.trainers.index(attacker.address)
    assert attacker.address in report.rejected and "IpfsTimeout" in report.rejected[attacker.address]
    assert report.flags[a] and report.chain_scores[a] == 0
    assert actors.owner.trainer_info(pid, attacker.address).stake_left == STAKE // 2  # slashed
    for t in honest:
        i = report.trainers.index(t.address)
        assert not report.flags[i] and report.chain_scores[i] > 0
        assert actors.owner.trainer_info(pid, t.address).earned > 0


def _four_trainers_commit_and_reveal(actors: Actors, store: ModelStore, pid: int) -> None:
    """Four trainers of project ``pid`` commit and then reveal updates that agree (the rule flags none)."""
    updates = agreeing_updates(4, seed=11)
    nodes = [TrainerNode(t, store, FixedUpdate(u)) for t, u in zip(actors.trainers[:4], updates, strict=True)]
    for node in nodes:
        assert isinstance(node.step(pid), Committed)
    for node in nodes:
        assert isinstance(node.step(pid), Submitted)


def test_an_ipfs_node_that_hangs_still_rejects_nobody(
    project_with_store: tuple[Actors, ModelStore, int], ipfs_node: LocalIpfsNode
) -> None:
    """The other side of the fix above: when the aggregator's own node does not answer at all, no update
    is rejected (nobody is flagged for it) and the round waits for the node."""
    actors, store, pid = project_with_store
    _four_trainers_commit_and_reveal(actors, store, pid)
    # The aggregator's node hangs: no request gets an answer, the probe neither.
    with _StallingIpfs(ipfs_node.api_url, None) as hung:
        hung_store = ModelStore(IpfsClient(hung.url, timeout=1.0, retries=0))
        with pytest.raises(IpfsTimeout):
            collect_round(actors.aggregator, hung_store, pid, 0, "mlp")
    assert actors.owner.get_project(pid).current_round == 0


# --------------------------------------------------------------------------- 3. a reveal window too short


def test_an_owner_cannot_take_the_stakes_with_a_reveal_window_shorter_than_a_block(
    project_with_store: tuple[Actors, ModelStore, int], ipfs_node: LocalIpfsNode
) -> None:
    """A one-second reveal window (with slashBps = 100 %) would let the owner take every stake as 'missed
    reveals': the market refuses any phase shorter than MIN_PHASE_PERIOD, and at that minimum honest
    trainers revealing one per 12-second block are all in time and paid."""
    actors, store, _ = project_with_store
    initial = store.put_tensors(build_model("mlp", seed=1).state_dict(), {"kind": "model"})
    chain = actors.chain
    with pytest.raises(ValidationError):
        actors.config(reveal_period=1)
    shortest = int(chain.call(actors.owner.market.functions.MIN_PHASE_PERIOD()))
    assert shortest == MIN_PHASE_PERIOD
    for field in ("submission_period", "reveal_period", "aggregation_period"):
        too_short = actors.config(rounds=1, initial_model_cid=initial).model_copy(update={field: 1})
        with reverts("InvalidConfig"):
            actors.owner.create_project(too_short)
    pid = actors.training_project(
        3, rounds=1, initial_model_cid=initial, slash_bps=10_000, reveal_period=MIN_PHASE_PERIOD
    )
    nodes = [TrainerNode(t, store, FixedUpdate(u)) for t, u in zip(actors.trainers[:3], agreeing_updates(3, seed=11),
                                                                    strict=True)]  # fmt: skip
    for node in nodes:
        assert isinstance(node.step(pid), Committed)
    # Every trainer committed: the reveal phase is open. A public chain makes a block every 12 s
    # (mainnet), so each trainer's reveal is mined in a block at least 12 s after the last commit.
    outcomes: list[object] = []
    for node in nodes:
        chain.increase_time(12)
        try:
            outcomes.append(node.step(pid))
        except ContractRevert as exc:
            outcomes.append(exc.name)
    chain.increase_time(max(actors.owner.round_deadlines(pid).reveal - chain.timestamp() + 1, 0))
    report = AggregatorNode(actors.aggregator, store).step(pid)
    assert report is not None and actors.owner.get_project(pid).status is ProjectStatus.FINISHED
    owner_before = actors.owner.withdrawable(pid, actors.owner.address)

    # What an honest trainer checks: it ran the client as told and keeps its stake plus a reward; the
    # owner does not get its budget back plus the trainers' stakes.
    paid = {t.address: actors.owner.withdrawable(pid, t.address) for t in actors.trainers[:3]}
    assert all(amount > STAKE for amount in paid.values()), (paid, outcomes, owner_before)
    assert all(isinstance(o, Submitted) for o in outcomes), outcomes
    assert owner_before < 10 * ETH + ETH


def test_a_node_kept_busy_by_other_clients_rejects_nobody(
    project_with_store: tuple[Actors, ModelStore, int], ipfs_node: LocalIpfsNode, tmp_path: Path
) -> None:
    """Attack review of issue 14: visitors of a web UI sharing the aggregator's node hold all its swarm-fetch
    slots with CIDs nobody serves; the aggregator's fetches then answer NodeBusy. That is the node's state, not
    the trainers' doing: nobody is rejected, the round waits (before the fix every honest trainer was rejected)."""
    actors, store, pid = project_with_store
    _four_trainers_commit_and_reveal(actors, store, pid)
    # The aggregator's own node, peered with the trainers' node: content comes over the swarm.
    with LocalIpfsNode(
        tmp_path / "aggregator-ipfs", options=NodeOptions(peers=ipfs_node.swarm_addresses, fetch_timeout=30)
    ) as own:
        client = IpfsClient(own.api_url, timeout=10.0, retries=0)
        busy = ModelStore(client)
        deadline = time.monotonic() + 20
        while client.swarm_stats().get("Peers", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        nobody = [compute_cid(f"served by nobody {i}".encode()) for i in range(16)]
        holders = [
            threading.Thread(
                target=lambda cid=cid: httpx.post(f"{own.api_url}/api/v0/cat", params={"arg": cid, "timeout": "20s"},
                                                  timeout=40),
                daemon=True,
            )
            for cid in nobody
        ]  # fmt: skip
        for holder in holders:
            holder.start()
        deadline = time.monotonic() + 20
        while client.swarm_stats().get("Fetches", 0) < 16 and time.monotonic() < deadline:
            time.sleep(0.1)
        with pytest.raises(NodeBusy):
            collect_round(actors.aggregator, busy, pid, 0, "mlp")
    assert actors.owner.get_project(pid).current_round == 0  # nothing finalized, nobody flagged
