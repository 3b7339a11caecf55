"""Front-running copies against commit-reveal (issue 12 item 1), on anvil with automine off and a
fee-ordered mempool: copiers watch the pending transactions of an honest trainer A and resend them
from their own addresses with a higher tip, so that their copies are mined first.

Before commit-reveal, a copier that resent A's pending ``submitUpdate`` (same CID and commitment) with
a higher tip was mined first; the duplicate rule ("a near-copy of an update submitted earlier") then
flagged and slashed A and paid the copier. Now:

a. a copy of A's pending ``commitUpdate`` (the same seal and note) is mined first, but the seal opens only
   for A's address: the copier can never reveal, is treated as flagged (``RevealMissed``) and slashed;
b. a copy of A's pending ``revealUpdate`` (CID, commitment and salt are in its calldata) reverts: with
   ``SealMismatch`` for a copier that committed (A's seal, or a seal of its own made before it could know
   A's update), with ``NotCommitted`` for one that did not, and committing is closed by then;
c. a re-pinned copy of A's update (another CID, the same commitment) cannot be committed after A's reveal;
d. the round, finalized by the real aggregator (the Gram rule's flags and scores, through the test
   verifier, updates on a real IPFS node), pays A and flags nobody who revealed; every copier gets back
   its stake minus the slash (or its stake, if it never committed) and nothing more; ``marketplace
   audit`` recomputes the same round.

A is a real :class:`TrainerNode` whose transactions are only broadcast (``BroadcastingMarket``); the
other honest trainers are real nodes too. The round is played once (a module fixture, in the order
above); each test checks one attack.
"""

# ruff: noqa: F811  (the fixture imported from tests.ipfs_fixtures is used as a test argument)

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner

from marketplace.adapters.chain.anvil import dev_accounts
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.config import write_deployment
from marketplace.adapters.chain.deploy import TEST_VERIFIER, Deployment, deploy_marketplace, market_client
from marketplace.adapters.chain.errors import ContractRevert
from marketplace.adapters.chain.market import MarketClient, Outcome, ProjectConfig, ProjectStatus
from marketplace.adapters.ipfs.manager import LocalIpfsNode
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.cli.main import app
from marketplace.fl.models import build_model, param_spec, tensors_to_vector, vector_to_state
from marketplace.protocol.commitment import commit_update
from marketplace.protocol.seal import derive_salt, seal
from marketplace.roles.aggregator import AggregatorNode, RoundReport
from marketplace.roles.audit import audit_round
from marketplace.roles.trainer import Committed, Submitted, TrainerNode
from tests.ipfs_fixtures import ipfs_node  # noqa: F401
from tests.mempool import BroadcastingMarket, Mempool, fee_ordered_anvil
from tests.update_sources import FixedUpdate, agreeing_updates

ETH = 10**18
STAKE = ETH // 10
SLASH_BPS = 5_000
NETWORK = "frontrun"
HONEST_TIP, COPIER_TIP = 1, 50  # gwei


@dataclass
class Played:
    """What happened in the round, in order, for the tests to check."""

    chain: ChainClient
    store: ModelStore
    deployment: Deployment
    ipfs_api: str
    pid: int
    victim: MarketClient  # A
    honest: list[MarketClient]
    commit_copier: MarketClient  # (a) copies A's pending commit
    sealed_copier: MarketClient  # (b) committed a seal of its own, copies A's pending reveal
    late_copier: MarketClient  # (b) never committed, copies A's pending reveal
    copied_commit: list[dict[str, Any]] = field(default_factory=list)  # receipts of the block, in order
    copied_reveal: list[dict[str, Any]] = field(default_factory=list)
    reveal_failures: dict[str, ContractRevert | None] = field(default_factory=dict)  # copier -> its revert
    late_commit: ContractRevert | None = None  # the copier that never committed, committing after the phase
    repinned: dict[str, ContractRevert | None] = field(default_factory=dict)  # (c): copier -> its revert
    repinned_cid: str = ""
    report: RoundReport | None = None
    finalize_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # trainer -> its outcome in the registry
    payouts: dict[str, int] = field(default_factory=dict)
    escrowed: int = 0


def copy_pending(mempool: Mempool, market: MarketClient, victim: str, function: str) -> dict[str, Any]:
    """What a mempool watcher reads: the arguments of ``victim``'s pending ``function`` call to the market."""
    (tx,) = [p for p in mempool.pending() if p.sender == victim and p.to == market.market.address]
    fn, args = market.market.decode_function_input(tx.input)
    assert fn.fn_name == function and tx.tip == HONEST_TIP * 10**9
    return dict(args)


def revert_of(chain: ChainClient, receipt: dict[str, Any]) -> ContractRevert | None:
    """The decoded revert of a mined transaction; None if it succeeded."""
    if receipt["status"] == 1:
        return None
    failure = chain.revert_reason(receipt)  # type: ignore[arg-type]
    assert isinstance(failure, ContractRevert), failure
    return failure


def revert_of_call(fn: Any, *args: Any) -> ContractRevert | None:
    """How ``fn(*args)`` reverted; None if it went through."""
    try:
        fn(*args)
    except ContractRevert as exc:
        return exc
    return None


def name_of(failure: ContractRevert | None) -> str:
    return failure.name if failure is not None else "went through"


@pytest.fixture(scope="module")
def played(ipfs_node: LocalIpfsNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Played]:
    accounts: list[LocalAccount] = dev_accounts(11)
    with fee_ordered_anvil() as anvil:
        admin = ChainClient(anvil.url, accounts[0])
        for account in accounts:
            admin.set_balance(account.address, 1_000 * ETH)
        deployment = deploy_marketplace(admin, network=NETWORK)
        base = market_client(admin, deployment)
        store = ModelStore(ipfs_node.client())
        owner, aggregator = base.as_account(accounts[1]), base.as_account(accounts[2])
        trainers = [base.as_account(a) for a in accounts[3:10]]
        victim, honest, (commit_copier, sealed_copier, late_copier) = trainers[0], trainers[1:4], trainers[4:]
        initial_cid = store.put_tensors(build_model("mlp", seed=1).state_dict(), {"kind": "model"})
        cfg = ProjectConfig(
            aggregator=aggregator.address,
            verifier=deployment.address(TEST_VERIFIER),
            reward_budget=10 * ETH,
            aggregator_fee=ETH,
            stake=STAKE,
            rounds=1,
            min_trainers=len(trainers),
            max_trainers=len(trainers),
            slash_bps=SLASH_BPS,
            model_name="mlp",
            initial_model_cid=initial_cid,
        )
        pid = owner.create_project(cfg)
        for t in trainers:
            t.join(pid)
        p = Played(admin, store, deployment, ipfs_node.api_url, pid, victim, honest, commit_copier, sealed_copier,
                   late_copier, escrowed=cfg.escrow + len(trainers) * STAKE)  # fmt: skip
        updates = agreeing_updates(4, seed=5)
        mempool = Mempool(admin)

        # The copier of reveals commits a seal of its own first (it cannot know A's update yet).
        sealed_copier.commit_update(pid, 0, b"\x5e" * 32)
        nodes = [TrainerNode(t, store, FixedUpdate(u)) for t, u in zip(honest, updates[1:], strict=True)]
        for node in nodes:
            assert isinstance(node.step(pid), Committed)

        # (a) A commits; its transaction waits in the mempool, where the copier finds it and resends it.
        mempool.automine(False)
        try:
            a_node = TrainerNode(
                BroadcastingMarket(victim, mempool, tip_gwei=HONEST_TIP), store, FixedUpdate(updates[0])
            )
            assert isinstance(a_node.step(pid), Committed)
            args = copy_pending(mempool, commit_copier, victim.address, "commitUpdate")
            mempool.send(commit_copier.chain.account, commit_copier.market.functions.commitUpdate(**args),
                         tip_gwei=COPIER_TIP)  # fmt: skip
            p.copied_commit = mempool.mine()
        finally:
            mempool.automine(True)

        # The late copier never committed; the commit phase ends at its deadline.
        deadline = owner.round_deadlines(pid).commit
        admin.increase_time(deadline - admin.timestamp() + 1)
        for node in nodes:
            assert isinstance(node.step(pid), Submitted)

        # (b) A reveals; every copier resends A's pending reveal from its own address, with a higher tip.
        mempool.automine(False)
        try:
            assert isinstance(a_node.step(pid), Submitted)
            args = copy_pending(mempool, late_copier, victim.address, "revealUpdate")
            for copier in (commit_copier, sealed_copier, late_copier):
                mempool.send(copier.chain.account, copier.market.functions.revealUpdate(**args), tip_gwei=COPIER_TIP)
            p.copied_reveal = mempool.mine()
        finally:
            mempool.automine(True)
        for receipt in p.copied_reveal:
            if receipt["from"] != victim.address:
                p.reveal_failures[receipt["from"]] = revert_of(admin, receipt)
        where = late_copier.round_address(pid, 0)
        own_salt = derive_salt(late_copier.chain.account, where, args["commitment"])
        own_seal = seal(args["commitment"], args["cid"], late_copier.address, where, own_salt)
        p.late_commit = revert_of_call(late_copier.commit_update, pid, 0, own_seal)

        # (c) After A's reveal a copier fetches A's update, re-pins it (another CID, the same commitment)
        # and tries to commit that.
        spec = param_spec("mlp")
        copy = tensors_to_vector(store.get_tensors(args["cid"], expected=spec), spec)
        p.repinned_cid = store.put_tensors(vector_to_state(copy, spec), {"kind": "update", "by": "a copier"})
        _, commitment = commit_update(copy, owner.sketch_seed(pid), owner.sketch_width(pid))
        assert commitment == args["commitment"] and p.repinned_cid != args["cid"]
        for copier in (commit_copier, late_copier):
            where = copier.round_address(pid, 0)
            salt = derive_salt(copier.chain.account, where, commitment)
            sealed = seal(commitment, p.repinned_cid, copier.address, where, salt)
            p.repinned[copier.address] = revert_of_call(copier.commit_update, pid, 0, sealed)

        # (d) The reveal phase ends; the aggregator finalizes with the rule's real flags and scores.
        admin.increase_time(owner.round_deadlines(pid).reveal - admin.timestamp() + 1)
        node = AggregatorNode(aggregator, store)
        p.report = node.step(pid)
        assert p.report is not None and p.report.tx_hash
        receipt = admin.get_receipt(p.report.tx_hash)
        for name in ("RevealMissed", "StakeSlashed", "RoundFinalized"):
            p.finalize_events[name] = [e["args"] for e in admin.events(receipt, base.market, name)]
        p.outcomes = {r.trainer: r.outcome for r in base.round_records(receipt)}
        assert owner.get_project(pid).status is ProjectStatus.FINISHED
        for client in (owner, aggregator, *trainers):
            p.payouts[client.address] = client.withdraw(pid)
        yield p


def test_a_copied_commit_is_mined_first_but_its_seal_never_opens_for_the_copier(played: Played) -> None:
    p, a, copier = played, played.victim, played.commit_copier
    # The copy paid the higher tip and was mined first, in the same block as A's commit.
    assert [r["from"] for r in p.copied_commit] == [copier.address, a.address]
    assert all(r["status"] == 1 for r in p.copied_commit)
    market = p.victim
    assert market.committed_seal(p.pid, 0, copier.address) == market.committed_seal(p.pid, 0, a.address)
    commits = {c.trainer: c for c in market.commits(p.pid, 0)}
    assert commits[copier.address].arrival == commits[a.address].arrival - 1  # the copy arrived first
    assert commits[copier.address].note == commits[a.address].note  # even A's note was copied
    # ... but it never opens for the copier: its reveal of A's very values reverts, and it is treated as
    # flagged at finalization (slashed, recorded as flagged, no reward).
    assert name_of(p.reveal_failures[copier.address]) == "SealMismatch"
    assert market.commitment(p.pid, 0, copier.address) == b"\0" * 32
    missed = {e["trainer"] for e in p.finalize_events["RevealMissed"]}
    slashed = {e["trainer"]: e["amount"] for e in p.finalize_events["StakeSlashed"]}
    assert copier.address in missed and slashed[copier.address] == STAKE * SLASH_BPS // 10_000


def test_a_copied_reveal_reverts_and_committing_is_closed(played: Played) -> None:
    p, a = played, played.victim
    order = [r["from"] for r in p.copied_reveal]
    assert order[-1] == a.address and set(order[:-1]) == {
        p.commit_copier.address,
        p.sealed_copier.address,
        p.late_copier.address,
    }  # the three copies paid more and were mined before A's reveal ...
    assert p.copied_reveal[-1]["status"] == 1  # ... and A's reveal still went through
    assert {who: name_of(f) for who, f in p.reveal_failures.items()} == {
        p.commit_copier.address: "SealMismatch",  # its seal is A's: it opens only for A
        p.sealed_copier.address: "SealMismatch",  # its own seal was made before it could know A's values
        p.late_copier.address: "NotCommitted",
    }
    assert name_of(p.late_commit) == "SubmissionClosed"
    subs = p.victim.submissions(p.pid, 0)
    assert [s.trainer for s in subs if s.cid == subs[-1].cid] == [a.address]  # A's update is A's alone


def test_a_re_pinned_copy_cannot_be_committed_after_the_reveal(played: Played) -> None:
    p = played
    assert {who: name_of(f) for who, f in p.repinned.items()} == {
        p.commit_copier.address: "SubmissionClosed",
        p.late_copier.address: "SubmissionClosed",
    }
    assert all(s.cid != p.repinned_cid for s in p.victim.submissions(p.pid, 0))


def test_the_original_is_paid_and_not_flagged_and_no_copier_earns(played: Played) -> None:
    p, report = played, played.report
    assert report is not None
    trainers = report.trainers
    a = trainers.index(p.victim.address)
    (finalized,) = p.finalize_events["RoundFinalized"]
    slash = STAKE * SLASH_BPS // 10_000
    # What each walks away with: A its reward and its whole stake; a copier that committed its stake
    # minus the slash; the one that never committed its stake; none of them anything more.
    assert not report.flags[a] and report.chain_scores[a] > 0 and finalized["rewards"][a] > 0
    assert p.payouts[p.victim.address] == finalized["rewards"][a] + STAKE
    assert p.payouts[p.commit_copier.address] == p.payouts[p.sealed_copier.address] == STAKE - slash
    assert p.payouts[p.late_copier.address] == STAKE  # missed the round: not slashed, not paid
    assert sum(p.payouts.values()) == p.escrowed  # the slashed stakes went to the owner

    # The rule's own flags and scores: every trainer that revealed is paid, nobody is flagged or rejected.
    revealed = [p.victim.address] + [h.address for h in p.honest]
    assert [t for t, s in zip(trainers, report.submitted, strict=True) if s] == revealed
    assert not any(report.flags) and not report.rejected
    assert all(report.chain_scores[trainers.index(t)] > 0 for t in revealed)
    outcomes = p.outcomes
    assert outcomes[p.victim.address] == Outcome.CONTRIBUTED
    assert (outcomes[p.commit_copier.address], outcomes[p.sealed_copier.address]) == (Outcome.FLAGGED,) * 2
    assert outcomes[p.late_copier.address] == Outcome.MISSED
    assert p.victim.record(p.victim.address) == (1, 0, 0)
    assert p.victim.record(p.commit_copier.address) == (0, 1, 0)


def test_marketplace_audit_recomputes_the_same_round(
    played: Played, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = played
    assert audit_round(p.victim, p.store, p.pid, 0).agrees
    monkeypatch.setenv("MARKETPLACE_DEPLOYMENTS_DIR", str(tmp_path))
    monkeypatch.setenv("MARKETPLACE_RPC_URL", p.chain.rpc_url)
    monkeypatch.setenv("MARKETPLACE_CHAIN_ID", str(p.chain.chain_id))
    write_deployment(p.deployment)
    result = CliRunner().invoke(
        app, ["audit", str(p.pid), "0", "--network", NETWORK, "--ipfs-api", p.ipfs_api], terminal_width=250
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("not revealed") == 3 and "DIFFERS" not in result.output
    assert "recomputed bit for bit" in result.output
