"""A whole marketplace job on a real chain and a real IPFS node: trainers train, the aggregator
flags and scores, the contract pays; plus bad submissions and an aggregator restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from marketplace.adapters.chain.deploy import TEST_VERIFIER
from marketplace.adapters.chain.market import Finalization, ProjectConfig, ProjectStatus
from marketplace.adapters.ipfs.tensors import dumps
from marketplace.demo.attacks import Attack
from marketplace.demo.job import DemoConfig, LocalStack, local_stack, run_demo
from marketplace.fl.data import TEST_FILE, load_npz, partition_digits
from marketplace.fl.models import build_model, num_params, param_spec, tensors_to_vector, vector_to_state
from marketplace.protocol.commitment import commit_update
from marketplace.roles.aggregator import AggregatorNode
from marketplace.roles.audit import audit_round
from marketplace.roles.trainer import LocalTraining, Submitted, TrainerNode
from marketplace.roles.verify import verify_round
from marketplace.round.collect import collect_round
from marketplace.round.score import new_model, score_round
from tests.market_fixtures import test_verifier_proof

ETH = 10**18


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with local_stack(tmp_path_factory.mktemp("stack"), 14) as s:
        yield s


def test_two_round_job_flags_attackers_and_pays_honest_trainers(stack: LocalStack, tmp_path: Path) -> None:
    config = DemoConfig(
        trainers=8,
        attacks=[Attack.SIGN_FLIP, Attack.FREE_RIDER_COPY],
        rounds=2,
        plot=tmp_path / "demo.png",
        workdir=tmp_path,
    )
    result = run_demo(config, Console(quiet=True), stack)  # real ezkl proofs (8-slot, 64-wide circuit)
    assert all(r.prover == "ezkl-gram" and r.tx_hash for r in result.reports)
    # Anyone can check every round's proof against the deployed verifier, and re-derive the round.
    for r in result.reports:
        check = verify_round(stack.admin, result.project_id, r.round, stack.store)
        assert check.valid and check.document_agrees and check.gas is not None and 1_000_000 < check.gas < 3_000_000
        assert audit_round(stack.admin, stack.store, result.project_id, r.round).agrees
    honest = [a for a, role in result.roles.items() if role == "honest"]
    cheaters = [a for a, role in result.roles.items() if role != "honest"]
    for report in result.reports:
        flagged = {t for t, f in zip(report.trainers, report.flags, strict=True) if f}
        assert flagged == set(cheaters), f"round {report.round}: flagged {flagged}"
        assert all(report.submitted)
    # The model learned, and the copier did not get the victim (the original) flagged.
    assert result.reports[-1].accuracy is not None and result.reports[-1].accuracy > result.initial_accuracy + 0.3
    # Cheaters get nothing but what is left of their stake; honest trainers share the budget.
    stake = ETH // 10
    for addr in cheaters:
        assert result.payouts[addr] == 0  # 2 flagged rounds x 50% slashing
    assert all(result.payouts[a] > stake for a in honest)
    assert sum(result.payouts.values()) == result.escrowed
    assert stack.admin.reliability(cheaters[0]) < 5_000 < stack.admin.reliability(honest[0])
    assert result.plot is not None and result.plot.stat().st_size > 10_000


def _project(stack: LocalStack, n: int, tmp_path: Path) -> tuple[int, list[TrainerNode], AggregatorNode]:
    """A fresh 1-round project of ``n`` trainers on the shared stack (accounts 3.. reused)."""
    owner = stack.admin.as_account(stack.accounts[1])
    agg = stack.admin.as_account(stack.accounts[2])
    initial_cid = stack.store.put_tensors(build_model("mlp", seed=1).state_dict(), {"kind": "model"})
    pid = owner.create_project(
        ProjectConfig(
            aggregator=agg.address,
            verifier=stack.deployment.address(TEST_VERIFIER),
            reward_budget=ETH,
            rounds=1,
            min_trainers=n,
            max_trainers=n,
            model_name="mlp",
            initial_model_cid=initial_cid,
        )
    )
    shards = partition_digits(n, "iid", seed=3, out_dir=tmp_path)
    trainers = [
        TrainerNode(stack.admin.as_account(stack.accounts[3 + i]), stack.store, LocalTraining(load_npz(shards[i])))
        for i in range(n)
    ]
    for t in trainers:
        t.join(pid)
    return pid, trainers, AggregatorNode(agg, stack.store, evaluation=load_npz(tmp_path / TEST_FILE))


def _submit_raw(trainer: TrainerNode, pid: int, payload: bytes, commitment: bytes) -> None:
    cid = trainer.store.put_bytes(payload)
    trainer.market.submit_update(pid, 0, cid, commitment)


def test_bad_updates_are_rejected_and_the_round_goes_on(stack: LocalStack, tmp_path: Path) -> None:
    pid, trainers, aggregator = _project(stack, 8, tmp_path)
    seed = stack.admin.sketch_seed(pid)
    spec = param_spec("mlp")
    good = np.full(num_params("mlp"), 0.01, np.float32)
    for t in trainers[:4]:
        assert isinstance(t.step(pid), Submitted)
    nan = {k: np.full(shape, np.nan, np.float32) for k, (shape, _) in spec.items()}
    wrong_shape = {k: np.zeros((3, 3), np.float32) for k in spec}
    _submit_raw(trainers[4], pid, dumps(nan), b"\x01" * 32)
    _submit_raw(trainers[5], pid, dumps(wrong_shape), b"\x02" * 32)
    _submit_raw(trainers[6], pid, b"\x80\x04\x95pickle payload", b"\x03" * 32)
    # A well-formed update whose commitment is of another update.
    _, other_commitment = commit_update(good * 2, seed, stack.admin.sketch_width(pid))
    from marketplace.fl.models import vector_to_state

    _submit_raw(trainers[7], pid, dumps(vector_to_state(good, spec)), other_commitment)

    report = aggregator.step(pid)
    assert report is not None and report.tx_hash
    bad = {t.address: t for t in trainers[4:]}
    assert set(report.rejected) == set(bad)
    assert "NonFiniteValues" in report.rejected[trainers[4].address]
    assert "WrongShape" in report.rejected[trainers[5].address] or "WrongKeys" in report.rejected[trainers[5].address]
    assert "NotSafetensors" in report.rejected[trainers[6].address]
    assert "CommitmentMismatch" in report.rejected[trainers[7].address]
    assert report.flags == [False] * 4 + [True] * 4
    assert sum(report.chain_scores[:4]) > 0 and report.chain_scores[4:] == [0] * 4
    assert stack.admin.get_project(pid).status is ProjectStatus.FINISHED
    assert set(stack.admin.rejected_trainers(pid, 0)) == set(bad)  # on chain: SubmissionRejected events

    # Anyone can re-check the round: the audit finds the same four invalid updates and recomputes
    # exactly the recorded flags and scores.
    audit = audit_round(stack.admin, stack.store, pid, 0)
    assert audit.agrees
    assert {t.trainer for t in audit.invalid_updates} == set(bad)
    assert "CommitmentMismatch" in next(t.problem for t in audit.trainers if t.trainer == trainers[7].address)


def test_audit_catches_scores_that_were_not_computed_by_the_rule(stack: LocalStack, tmp_path: Path) -> None:
    pid, trainers, aggregator = _project(stack, 4, tmp_path)
    for t in trainers:
        t.step(pid)
    # A dishonest aggregator records scores of its own choosing (the local test verifier only
    # checks the proof is the hash of the values; the zk verifier would reject this outright).
    inputs = collect_round(aggregator.market, stack.store, pid, 0, "mlp")
    scored = score_round(inputs)
    forged = [scored.chain_scores[0] * 3, *scored.chain_scores[1:]]
    proof = test_verifier_proof(aggregator.market, pid, 0, forged, scored.flags, scored.rejected)
    result = Finalization("bafkreimodel", "bafkreiproof", forged, scored.flags, proof, scored.rejected)
    aggregator.market.finalize_round(pid, 0, result)
    audit = audit_round(stack.admin, stack.store, pid, 0)
    assert not audit.agrees
    assert [t.agrees for t in audit.trainers] == [False, True, True, True]


def test_audit_catches_a_new_model_that_is_not_the_mean_of_the_paid_updates(stack: LocalStack, tmp_path: Path) -> None:
    """No proof covers the new global model. An aggregator that pays by the rule and proves it but records a
    model other than the previous one plus the mean of the paid updates (here: one weight one float32 step
    off) is caught by the audit, bit for bit; so is a recorded model CID that is not a model at all."""
    spec = param_spec("mlp")
    for recorded in ("tampered", "not a model"):
        pid, trainers, aggregator = _project(stack, 4, tmp_path / recorded)
        for t in trainers:
            assert isinstance(t.step(pid), Submitted)
        inputs = collect_round(aggregator.market, stack.store, pid, 0, "mlp")
        scored = score_round(inputs)
        start = stack.admin.get_project(pid).latest_model_cid
        honest = new_model(tensors_to_vector(stack.store.get_tensors(start, expected=spec), spec), scored)
        tampered = honest.copy()
        tampered[7] = np.nextafter(tampered[7], np.float32(np.inf))
        if recorded == "tampered":
            model_cid = stack.store.put_tensors(vector_to_state(tampered, spec), {"kind": "model"})
        else:
            model_cid = stack.store.put_bytes(b"not a model")
        proof = test_verifier_proof(aggregator.market, pid, 0, scored.chain_scores, scored.flags, scored.rejected)
        result = Finalization(model_cid, "bafkreiproof", scored.chain_scores, scored.flags, proof, scored.rejected)
        aggregator.market.finalize_round(pid, 0, result)

        audit = audit_round(stack.admin, stack.store, pid, 0)
        assert all(t.agrees for t in audit.trainers)  # flags and scores are the rule's
        assert audit.model is not None and not audit.model.agrees and not audit.agrees
        model = audit.model
        paid = sum(1 for score in scored.chain_scores if score > 0)
        assert paid > 0 and (model.previous_cid, model.recorded_cid, model.paid) == (start, model_cid, paid)
        if recorded == "tampered":
            assert f"1 of {honest.size} parameters differ" in audit.model.problem
        else:
            assert "not a valid mlp model" in audit.model.problem and "NotSafetensors" in audit.model.problem


def test_aggregator_restart_does_not_double_post(stack: LocalStack, tmp_path: Path) -> None:
    pid, trainers, aggregator = _project(stack, 4, tmp_path)
    for t in trainers:
        t.step(pid)
    project = stack.admin.get_project(pid)  # what a crashed run had read before finalizing
    first = aggregator.finalize(project)
    assert first.tx_hash and not first.already_finalized
    # The restarted aggregator redoes the round from the same (stale) view: same CIDs, no second post.
    again = aggregator.finalize(project)
    assert again.already_finalized and not again.tx_hash
    assert (again.model_cid, again.proof_cid, again.chain_scores) == (
        first.model_cid,
        first.proof_cid,
        first.chain_scores,
    )
    assert len(stack.admin.finalized_rounds(pid)) == 1
    assert aggregator.step(pid) is None  # nothing due any more


def test_ipfs_outage_mid_round_flags_nobody_and_the_round_completes_after_restart(
    stack: LocalStack, tmp_path: Path
) -> None:
    from marketplace.adapters.chain.anvil import free_port
    from marketplace.adapters.ipfs.errors import IpfsConnectionError
    from marketplace.adapters.ipfs.manager import LocalIpfsNode
    from marketplace.adapters.ipfs.store import ModelStore

    port = free_port()
    node = LocalIpfsNode(tmp_path / "ipfs", port=port)
    node.start()
    try:
        store = ModelStore(node.client(retries=2, backoff=0.05))
        own = LocalStack(stack.chain_url, node.api_url, stack.admin, stack.deployment, store, stack.accounts)
        pid, trainers, aggregator = _project(own, 4, tmp_path)
        for t in trainers:
            assert isinstance(t.step(pid), Submitted)
        node.stop()  # the aggregator's IPFS node dies before it fetched the updates
        with pytest.raises(IpfsConnectionError):
            aggregator.step(pid)
        assert stack.admin.finalized_rounds(pid) == []  # nothing posted, nobody flagged
        node.start()  # same repo, same port: the pinned updates are still there
        report = aggregator.step(pid)
        assert report is not None and report.tx_hash
        assert report.flags == [False] * 4 and not report.rejected
    finally:
        node.stop()
