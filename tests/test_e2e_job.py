"""A whole marketplace job on a real chain and a real IPFS node: trainers train, commit sealed updates and
reveal them (commit-reveal), the aggregator flags and scores, the contract pays; plus bad submissions, a
trainer restarted between its commit and its reveal, a trainer that commits and never reveals, a copier
with nothing to copy while commits are sealed, and an aggregator restart."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from marketplace.adapters.chain.deploy import TEST_VERIFIER
from marketplace.adapters.chain.market import Finalization, ProjectConfig, ProjectStatus
from marketplace.adapters.ipfs.tensors import dumps
from marketplace.cli.audit import step_words
from marketplace.demo.adversaries import CopyUpdate
from marketplace.demo.attacks import Attack
from marketplace.demo.job import DemoConfig, LocalStack, deploy_zk_round_verifier, local_stack, run_demo
from marketplace.fl.data import TEST_FILE, load_npz, partition_digits
from marketplace.fl.models import build_model, num_params, param_spec, tensors_to_vector, vector_to_state
from marketplace.protocol.commitment import commit_update
from marketplace.protocol.ordering import EMPTY_COMMITMENT
from marketplace.protocol.proof_document import ProofDocument
from marketplace.protocol.sketch import sketch_params
from marketplace.roles.aggregator import AggregatorNode
from marketplace.roles.audit import audit_round
from marketplace.roles.trainer import (
    Committed,
    LocalTraining,
    StepOutcome,
    Submitted,
    TrainerNode,
    UpdateContext,
    UpdateSource,
)
from marketplace.roles.verify import verify_round
from marketplace.round.collect import collect_round
from marketplace.round.prove import HashProver, recorded_verifier_inputs
from marketplace.round.reference import commit_reference, reveal_reference
from marketplace.round.score import new_model, score_round
from marketplace.rule.aggregate import MAX_STEP, STEP_TARGET
from tests.disputes import step_through_disputes
from tests.market_fixtures import commit, reveal_update, test_verifier_proof
from tests.update_sources import FixedUpdate

ETH = 10**18


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with local_stack(tmp_path_factory.mktemp("stack"), 14) as s:
        yield s


def test_two_round_job_flags_attackers_and_pays_honest_trainers(stack: LocalStack, tmp_path: Path) -> None:
    """The demo's whole job, commit-reveal and the owner's reference included: every trainer commits a sealed
    update, then reveals it, and so does the owner its reference row (real ezkl proofs with it); two
    Sybils commit the same crafted update (shared off chain before anyone committed: nothing of the round is
    public to copy), the first committed is kept as the original and still flagged (it points against the
    others), the second is flagged as its copy; no honest trainer is flagged."""
    config = DemoConfig(
        trainers=8,
        attacks=[Attack.SIGN_FLIP, Attack.SYBIL, Attack.SYBIL],
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
        # The demo's owner revealed its reference: this real proof, verified through finalizeRound, covers it.
        assert stack.admin.reference_of(result.project_id, r.round).revealed and r.reference is not None
    honest = [a for a, role in result.roles.items() if role == "honest"]
    cheaters = [a for a, role in result.roles.items() if role != "honest"]
    for report in result.reports:
        flagged = {t for t, f in zip(report.trainers, report.flags, strict=True) if f}
        assert flagged == set(cheaters), f"round {report.round}: flagged {flagged}"
        assert all(report.submitted)
        commits = stack.admin.commits(result.project_id, report.round)  # arrival order: the order of the commits
        assert sorted(c.arrival for c in commits) == list(range(1, 9))
        reveals = {s.trainer: s.arrival for s in stack.admin.submissions(result.project_id, report.round)}
        assert reveals == {c.trainer: c.arrival for c in commits}  # each reveal keeps its commit's place
    # The model learned, and the Sybils' copy did not get an honest trainer flagged.
    assert result.reports[-1].accuracy is not None and result.reports[-1].accuracy > result.initial_accuracy + 0.3
    # Cheaters get nothing but what is left of their stake; honest trainers share the budget.
    stake = ETH // 10
    for addr in cheaters:
        assert result.payouts[addr] == 0  # 2 flagged rounds x 50% slashing
    assert all(result.payouts[a] > stake for a in honest)
    assert sum(result.payouts.values()) == result.escrowed
    assert stack.admin.reliability(cheaters[0]) < 5_000 < stack.admin.reliability(honest[0])
    assert result.plot is not None and result.plot.stat().st_size > 10_000


def _project(
    stack: LocalStack,
    n: int,
    tmp_path: Path,
    *,
    rounds: int = 1,
    verifier: str | None = None,
    sources: dict[int, UpdateSource] | None = None,
) -> tuple[int, list[TrainerNode], AggregatorNode]:
    """A fresh project of ``n`` trainers on the shared stack (accounts 3.. reused), honest unless ``sources``
    names another update source for a trainer index; the test verifier unless ``verifier`` is given."""
    owner = stack.admin.as_account(stack.accounts[1])
    agg = stack.admin.as_account(stack.accounts[2])
    initial_cid = stack.store.put_tensors(build_model("mlp", seed=1).state_dict(), {"kind": "model"})
    pid = owner.create_project(
        ProjectConfig(
            aggregator=agg.address,
            verifier=verifier or stack.deployment.address(TEST_VERIFIER),
            reward_budget=ETH,
            stake=ETH // 10,
            rounds=rounds,
            min_trainers=n,
            max_trainers=n,
            model_name="mlp",
            initial_model_cid=initial_cid,
        )
    )
    shards = partition_digits(n, "iid", seed=3, out_dir=tmp_path)
    sources = sources or {}
    trainers = [
        TrainerNode(
            stack.admin.as_account(stack.accounts[3 + i]),
            stack.store,
            sources.get(i) or LocalTraining(load_npz(shards[i])),
        )
        for i in range(n)
    ]
    for t in trainers:
        t.join(pid)
    return pid, trainers, AggregatorNode(agg, stack.store, evaluation=load_npz(tmp_path / TEST_FILE))


def commit_and_reveal(trainers: list[TrainerNode], pid: int) -> list[Submitted]:
    """A round as the trainers play it: each commits (its first step trains, pins and commits a seal); the last
    commit closes the commit phase, and each reveals (its next step)."""
    committed = [t.step(pid) for t in trainers]
    assert all(isinstance(c, Committed) for c in committed), committed
    revealed = [t.step(pid) for t in trainers]
    assert all(isinstance(r, Submitted) for r in revealed), revealed
    return revealed  # type: ignore[return-value]


def open_reveals(stack: LocalStack, pid: int) -> None:
    """Moves the chain's clock past the commit deadline (some trainer did not commit)."""
    deadlines = stack.admin.round_deadlines(pid)
    stack.admin.chain.increase_time(deadlines.reveal_opens - stack.admin.chain.timestamp())


def close_reveals(stack: LocalStack, pid: int) -> None:
    """Moves the chain's clock past the reveal deadline (some trainer did not reveal)."""
    deadlines = stack.admin.round_deadlines(pid)
    stack.admin.chain.increase_time(deadlines.reveal - stack.admin.chain.timestamp() + 1)


def _commit_raw(trainer: TrainerNode, pid: int, payload: bytes, commitment: bytes) -> str:
    """``trainer`` pins ``payload`` as its update and commits it with ``commitment`` (whatever they are)."""
    cid = trainer.store.put_bytes(payload)
    commit(trainer.market, pid, 0, cid, commitment)
    return cid


def test_bad_updates_are_rejected_and_the_round_goes_on(stack: LocalStack, tmp_path: Path) -> None:
    pid, trainers, aggregator = _project(stack, 8, tmp_path)
    seed = stack.admin.sketch_seed(pid)
    spec = param_spec("mlp")
    good = np.full(num_params("mlp"), 0.01, np.float32)
    for t in trainers[:4]:
        assert isinstance(t.step(pid), Committed)
    nan = {k: np.full(shape, np.nan, np.float32) for k, (shape, _) in spec.items()}
    wrong_shape = {k: np.zeros((3, 3), np.float32) for k in spec}
    # A well-formed update whose commitment is of another update.
    _, other_commitment = commit_update(good * 2, seed, stack.admin.sketch_width(pid))
    bad_submissions = [
        (dumps(nan), b"\x01" * 32),
        (dumps(wrong_shape), b"\x02" * 32),
        (b"\x80\x04\x95pickle payload", b"\x03" * 32),
        (dumps(vector_to_state(good, spec)), other_commitment),
    ]
    sealed = [_commit_raw(t, pid, *bad) for t, bad in zip(trainers[4:], bad_submissions, strict=True)]
    for t in trainers[:4]:  # everyone committed: the reveals
        assert isinstance(t.step(pid), Submitted)
    for t, cid, (_, commitment) in zip(trainers[4:], sealed, bad_submissions, strict=True):
        reveal_update(t.market, pid, 0, cid, commitment)

    report = step_through_disputes(aggregator, pid)  # rejections announced, not disputed, then finalized
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
    commit_and_reveal(trainers, pid)
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
        commit_and_reveal(trainers, pid)
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


def test_an_unpaid_update_that_agrees_is_in_the_model_clipped_and_the_audit_names_it(
    stack: LocalStack, tmp_path: Path
) -> None:
    """Issue 16's model step live: three honest-looking updates (a common direction plus noise) and a fourth
    along the same direction, 8 times as long. The rule flags the fourth (boosted: norm above twice the median)
    and pays it nothing, and it is slashed; its update agrees with the paid ones more than the least agreeing of
    them, so the new model takes it, clipped to the paid median norm. The round's report and proof document name
    it, the new model is previous + stretch x (u0 + u1 + u2 + clipped u3) / 4, and the audit recomputes that bit
    for bit and names it in its model line."""
    d = num_params("mlp")
    rng = np.random.default_rng(16)
    base = rng.normal(size=d) * 0.01
    honest = [base + 0.5 * rng.normal(size=d) * 0.01 for _ in range(3)]
    boosted = 8 * (base + 0.1 * rng.normal(size=d) * 0.01)  # cosine 0.96 with their sum; theirs 0.93
    updates = np.stack([*honest, boosted]).astype(np.float32)
    sources: dict[int, UpdateSource] = {i: FixedUpdate(u) for i, u in enumerate(updates)}
    pid, trainers, aggregator = _project(stack, 4, tmp_path, sources=sources)
    start = stack.admin.get_project(pid).latest_model_cid
    commit_and_reveal(trainers, pid)
    report = step_through_disputes(aggregator, pid)
    assert report is not None and report.tx_hash
    assert report.flags == [False, False, False, True] and report.chain_scores[3] == 0
    assert all(s > 0 for s in report.chain_scores[:3])
    assert report.admitted == [False, False, False, True]
    document = ProofDocument.parse(stack.store.get_bytes(report.proof_cid))
    assert document.admitted == [trainers[3].address] and document.screened == []  # no reference, no screen

    spec = param_spec("mlp")
    u = updates.astype(np.float64)
    norms = np.linalg.norm(u, axis=1)
    radius = float(np.median(norms[:3]))
    mean = (u[0] + u[1] + u[2] + u[3] * radius / norms[3]) / 4
    stretch = min(max(STEP_TARGET * radius / float(np.linalg.norm(mean)), 1.0), MAX_STEP)
    previous = tensors_to_vector(stack.store.get_tensors(start, expected=spec), spec)
    recorded = tensors_to_vector(stack.store.get_tensors(report.model_cid, expected=spec), spec)
    np.testing.assert_allclose(recorded - previous, stretch * mean, rtol=1e-4, atol=1e-7)

    audit = audit_round(stack.admin, stack.store, pid, 0)
    assert audit.agrees and audit.model is not None
    assert audit.model.paid == 3 and audit.model.admitted == (trainers[3].address,)
    assert audit.model.stretch == pytest.approx(stretch, rel=1e-9)
    assert [t.admitted for t in audit.trainers] == [False, False, False, True]
    words = step_words(audit.model, audit.trainers)
    taken = f"(in the model, unpaid, clipped: #3 {trainers[3].address})"
    assert words.endswith(f"mean of 3 paid update(s) and 1 agreeing unpaid one(s) {taken}"), words


def fan_update(degrees: float, seed: int, dim: int, k: int) -> np.ndarray:
    """A flat update of ``dim`` values whose CountSketch ``(seed, dim, k)`` is exactly 0.01 times the unit vector at
    ``degrees`` from the first sketch axis, in the plane of the first two: each bucket's value spread evenly over
    its coordinates. Its committed row is the test's, whatever the project's seed."""
    target = np.zeros(k)
    target[:2] = 0.01 * np.cos(np.radians(degrees)), 0.01 * np.sin(np.radians(degrees))
    buckets, signs = sketch_params(seed, dim, k)
    per_bucket = np.bincount(buckets, minlength=k).astype(np.float64)
    return (signs * (target / per_bucket)[buckets]).astype(np.float32)


@dataclass(frozen=True)
class FanUpdate:
    """An update source: :func:`fan_update` at ``degrees`` for the project's seed and sketch width."""

    degrees: float

    def make_update(self, ctx: UpdateContext) -> np.ndarray:
        market, pid = ctx.market, ctx.project_id
        return fan_update(self.degrees, market.sketch_seed(pid), num_params(ctx.model_name), market.sketch_width(pid))


def test_updates_pointing_against_the_owners_reference_are_paid_out_of_the_model_and_the_document_names_them(
    stack: LocalStack, tmp_path: Path
) -> None:
    """The reference screen live: seven trainers whose committed rows fan out at 10, 30, 50, 75, 110, 120 and 130
    degrees from the owner's revealed reference row. The reference is used and leaves the 130-degree trainer unpaid
    (against it, and less typical than the median); the 110- and 120-degree ones point against it too (cosine
    -0.34 and -0.5, at most -0.3) but are at least as typical as the median trainer, so the rule pays them, and the
    screen keeps their updates out of the new model: it moves along the four others' mean. The round's report and
    proof document name the two, and the audit recomputes the same."""
    degrees = [10, 30, 50, 75, 110, 120, 130]
    sources: dict[int, UpdateSource] = {i: FanUpdate(d) for i, d in enumerate(degrees)}
    pid, trainers, aggregator = _project(stack, len(degrees), tmp_path, sources=sources)
    owner = stack.admin.as_account(stack.accounts[1])
    seed, k, dim = owner.sketch_seed(pid), owner.sketch_width(pid), num_params("mlp")
    sealed = commit_reference(owner, pid, 0, commit_update(fan_update(0, seed, dim, k), seed, k)[0])
    start = stack.admin.get_project(pid).latest_model_cid
    commit_and_reveal(trainers, pid)
    reveal_reference(owner, pid, 0, sealed, HashProver())
    report = step_through_disputes(aggregator, pid)
    assert report is not None and report.tx_hash
    assert report.reference is not None and report.reference.used and report.reference.unpaid == [6]
    assert [s > 0 for s in report.chain_scores] == [True] * 6 + [False] and not any(report.flags)
    assert report.screened == [False] * 4 + [True, True, False]
    document = ProofDocument.parse(stack.store.get_bytes(report.proof_cid))
    assert document.screened == [trainers[4].address, trainers[5].address] and document.admitted == []

    spec = param_spec("mlp")
    previous = tensors_to_vector(stack.store.get_tensors(start, expected=spec), spec).astype(np.float64)
    step = tensors_to_vector(stack.store.get_tensors(report.model_cid, expected=spec), spec) - previous
    fans = np.stack([fan_update(d, seed, dim, k) for d in degrees]).astype(np.float64)

    def cosine(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    assert cosine(step, fans[:4].mean(axis=0)) > 0.9999  # the in-model updates' mean
    assert cosine(step, fans[:6].mean(axis=0)) < 0.97  # not the mean of all the paid ones

    audit = audit_round(stack.admin, stack.store, pid, 0)
    assert audit.agrees and audit.model is not None and audit.model.paid == 4
    assert [t.screened for t in audit.trainers] == report.screened
    words = step_words(audit.model, audit.trainers)
    assert words.endswith(", without #4, #5 (against the owner's reference; paid as scored)"), words


def test_aggregator_restart_does_not_double_post(stack: LocalStack, tmp_path: Path) -> None:
    pid, trainers, aggregator = _project(stack, 4, tmp_path)
    commit_and_reveal(trainers, pid)
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
        commit_and_reveal(trainers, pid)
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


class MustNotTrain:
    """The update source of a restarted trainer that has committed already: revealing needs no training."""

    def make_update(self, ctx: object) -> np.ndarray:
        raise AssertionError("a restarted trainer reveals what it committed; it does not train again")


def test_a_trainer_restarted_between_its_commit_and_its_reveal_reveals_what_it_committed(
    stack: LocalStack, tmp_path: Path
) -> None:
    """A trainer's process that dies after its commit loses its CID and commitment; a new node with the same key
    (nothing in memory) finds them in its own encrypted note on chain, waits for the reveal phase, reveals them,
    and is scored and paid as if nothing had happened."""
    pid, trainers, aggregator = _project(stack, 4, tmp_path)
    committed = [t.step(pid) for t in trainers[:3]]
    assert all(isinstance(c, Committed) for c in committed), committed
    before = committed[1]
    assert isinstance(before, Committed)
    # Trainer 1 dies. Its replacement: a new client and node with the same key.
    restarted = TrainerNode(stack.admin.as_account(stack.accounts[4]), stack.store, MustNotTrain())
    assert restarted.address == trainers[1].address
    assert restarted.step(pid) is StepOutcome.WAITING_FOR_REVEAL  # committed; the commit phase is still open
    assert isinstance(trainers[3].step(pid), Committed)  # the last commit closes the commit phase
    revealed = restarted.step(pid)
    assert isinstance(revealed, Submitted), revealed
    assert (revealed.cid, revealed.commitment) == (before.cid, before.commitment)
    assert revealed.update_norm is None and revealed.gas_used > 0  # (only the reveal's gas: it did not commit)
    assert restarted.step(pid) is StepOutcome.ALREADY_SUBMITTED
    for t in (trainers[0], trainers[2], trainers[3]):
        assert isinstance(t.step(pid), Submitted)

    report = aggregator.step(pid)
    assert report is not None and report.tx_hash and not report.rejected
    assert all(report.submitted) and report.flags == [False] * 4 and report.chain_scores[1] > 0
    assert stack.admin.trainer_info(pid, restarted.address).earned > 0
    assert audit_round(stack.admin, stack.store, pid, 0).agrees


def test_a_trainer_that_commits_and_never_reveals_is_slashed_paid_nothing_and_an_empty_slot_of_the_proof(
    stack: LocalStack, tmp_path: Path
) -> None:
    """A trainer that commits and then withholds its reveal cannot stall the round or earn from it: the aggregator
    waits only until the reveal deadline, the round is proven with real ezkl proofs with that trainer's slot
    empty (the verifier on chain accepts it), and the market treats the trainer as flagged: RevealMissed, half
    its stake slashed, no reward, a flagged round in the registry. The others are paid."""
    verifier = deploy_zk_round_verifier(stack, 4, Console(quiet=True))  # 4 slots x 32 (keys cached)
    pid, trainers, aggregator = _project(stack, 4, tmp_path, verifier=verifier)
    silent = trainers[2]
    _, flagged_before, _ = stack.admin.record(silent.address)
    assert all(isinstance(t.step(pid), Committed) for t in trainers)
    for t in trainers:
        if t is not silent:
            assert isinstance(t.step(pid), Submitted)
    assert aggregator.step(pid) is None  # a committed trainer may still reveal: nothing is due yet
    close_reveals(stack, pid)
    assert silent.step(pid) is StepOutcome.REVEAL_CLOSED  # too late now

    report = aggregator.step(pid)
    assert report is not None and report.tx_hash and report.prover == "ezkl-gram"
    i = report.trainers.index(silent.address)
    assert not report.submitted[i] and report.chain_scores[i] == 0 and not report.rejected
    receipt = stack.admin.chain.get_receipt(report.tx_hash)
    missed = stack.admin.chain.events(receipt, stack.admin.market, "RevealMissed")
    assert [e["args"]["trainer"] for e in missed] == [silent.address]
    slashes = stack.admin.chain.events(receipt, stack.admin.market, "StakeSlashed")
    assert [(e["args"]["trainer"], e["args"]["amount"]) for e in slashes] == [(silent.address, ETH // 20)]
    assert stack.admin.record(silent.address)[1] == flagged_before + 1

    # The verifier saw an empty slot at the silent trainer's place in the arrival (commit) order; the proof holds.
    finalized = stack.admin.finalized_rounds(pid)[0]
    values = recorded_verifier_inputs(stack.admin, pid, 0, finalized.scores, finalized.flags, [False] * 4)
    slot = stack.admin.arrival_order(pid, 0).index(i)
    assert values.commitments[slot] == EMPTY_COMMITMENT and values.scores[slot] == 0 and not values.flags[slot]
    assert sum(1 for c in values.commitments if c != EMPTY_COMMITMENT) == 3
    check = verify_round(stack.admin, pid, 0, stack.store)
    assert check.valid and check.document_agrees
    assert audit_round(stack.admin, stack.store, pid, 0).agrees

    assert silent.market.withdraw(pid) == ETH // 10 - ETH // 20  # what is left of its stake, no reward
    assert all(t.market.withdraw(pid) > ETH // 10 for t in trainers if t is not silent)


def _copier_misses_round_0(stack: LocalStack, tmp_path: Path) -> tuple[int, list[TrainerNode], AggregatorNode]:
    """A 2-round project of 4 honest trainers and a copier (index 4), with round 0 played and finalized: the
    copier had nothing to copy (every update of the round was sealed while it could commit)."""
    pid, trainers, aggregator = _project(stack, 5, tmp_path, rounds=2, sources={4: CopyUpdate()})
    copier = trainers[4]
    assert all(isinstance(t.step(pid), Committed) for t in trainers[:4])
    assert copier.step(pid) is StepOutcome.NOTHING_TO_COPY  # no update of the round is public
    assert trainers[0].step(pid) is StepOutcome.WAITING_FOR_REVEAL  # the commit phase runs to its deadline
    open_reveals(stack, pid)
    assert copier.step(pid) is StepOutcome.ROUND_CLOSED  # once anything could be revealed, committing is over
    assert all(isinstance(t.step(pid), Submitted) for t in trainers[:4])
    report = aggregator.step(pid)
    assert report is not None and report.tx_hash
    assert report.submitted == [True] * 4 + [False] and not any(report.flags)
    return pid, trainers, aggregator


def test_a_copier_has_nothing_to_copy_while_commits_are_sealed(stack: LocalStack, tmp_path: Path) -> None:
    """Commit-reveal against a free rider that copies another trainer's update of the round: in the commit phase
    there is nothing to copy, and once updates are revealed committing is closed. It misses the round: no reward,
    its stake intact, a missed round in the registry; nobody else is flagged."""
    missed_before = stack.admin.record(stack.accounts[3 + 4].address)[2]  # the copier's account
    pid, trainers, _ = _copier_misses_round_0(stack, tmp_path)
    copier = trainers[4].address
    info = stack.admin.trainer_info(pid, copier)
    assert (info.earned, info.stake_left) == (0, ETH // 10)
    assert stack.admin.record(copier)[2] == missed_before + 1
    assert all(stack.admin.trainer_info(pid, t.address).earned > 0 for t in trainers[:4])


def test_a_replay_of_an_update_revealed_in_an_earlier_round_earns_nothing(stack: LocalStack, tmp_path: Path) -> None:
    """The copier's only option under commit-reveal: replay another trainer's update of the previous round
    (revealed, so public). The rule compares a round's rows with each other only; the aggregator node, which saw
    round 0's rows, shows the replay on chain (``challengeStale``) before it finalizes: the copier's submission is
    rejected beyond dispute, flagged, unpaid and slashed, and the honest trainers share the whole round."""
    pid, trainers, aggregator = _copier_misses_round_0(stack, tmp_path)
    copier = trainers[4].address
    earned_before = {t.address: stack.admin.trainer_info(pid, t.address).earned for t in trainers[:4]}
    commit_and_reveal(trainers, pid)
    report = aggregator.step(pid)
    assert report is not None and report.tx_hash
    assert report.flags[4] and report.chain_scores[4] == 0 and copier in report.rejected
    (challenge,) = stack.admin.stale_challenges(pid, 1)
    assert (challenge.trainer, challenge.challenger, challenge.earlier_round) == (copier, aggregator.address, 0)
    audit = audit_round(stack.admin, stack.store, pid, 1)  # the public audit reads the challenge from the chain
    assert audit.agrees and audit.trainers[4].problem.startswith("stale:")
    assert challenge.author in range(4)
    info = stack.admin.trainer_info(pid, copier)
    assert info.earned == 0 and info.stake_left < ETH // 10  # the challenger's gas, then the slash
    project = stack.admin.get_project(pid)
    share = project.reward_budget - project.reward_budget // 2  # round 1's share of a 2-round budget
    paid = sum(stack.admin.trainer_info(pid, t.address).earned - earned_before[t.address] for t in trainers[:4])
    assert share - 4 <= paid <= share  # the whole round to the honest four (rounding dust aside)
