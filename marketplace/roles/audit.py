"""``marketplace audit``: anyone re-checks a finalized round from public data only.

For every submission of the round it downloads the update from IPFS, recomputes its committed row
and Poseidon commitment and compares it with what the trainer committed on chain; then it
recomputes the paying computation (flags and scores, the circuit's integers) with the same code
the aggregator runs and compares it with what was recorded on chain, including which updates the
aggregator rejected (the one thing the proof cannot cover: see ``TrainingMarket.finalizeRound``).

Last, the new global model, which no proof covers either: it recomputes it from the model the round
started from (the previous round's recorded model, or the project's initial model) plus the round's step
(the paid updates and the unpaid ones that agree with them, clipped:
:func:`~marketplace.rule.aggregate.agreeing_clipped_mean`), with the function the aggregator built it with
(:func:`~marketplace.round.score.new_model`), naming the unpaid trainers whose update is in it,
fetches the model recorded on chain (checked against its CID, like every download) and compares the
two tensor by tensor, bit for bit. Nothing is pinned. A recorded model that cannot be fetched or is not
a model of the project's architecture is a mismatch too; so is a round whose starting model cannot be
read (then nothing can be checked).

**Encrypted projects** (the aggregator published an update key, :mod:`marketplace.protocol.envelope`): the
updates on IPFS are encrypted to the aggregator, so the public cannot recompute the round.
:func:`audit_round` then needs the project's secret update key (``open_update``: the aggregator's, or given by
it to an auditor) and checks everything as above. Without it, :func:`audit_encrypted_round` checks what public
data allows (:data:`NOT_CHECKED_WHEN_ENCRYPTED` lists the rest): the round's proof against the project's
verifier with the public values recorded on chain (with a zk verifier, the recorded flags and scores are the
rule's on the committed rows), the proof document against the chain, every revealed object served under its
CID (an encrypted one) or checked like any clear update, and the recorded model a valid model of the
project's architecture.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from marketplace.adapters.chain.market import MarketClient
from marketplace.adapters.ipfs.errors import IpfsConnectionError, IpfsTimeout, StorageError
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.adapters.ipfs.tensors import load_checked
from marketplace.fl.models import ParamSpec, param_spec, tensors_to_vector
from marketplace.protocol.commitment import commit_update
from marketplace.protocol.constants import MAX_UPDATE_BYTES
from marketplace.protocol.envelope import OVERHEAD, EnvelopeError, check_form, is_envelope
from marketplace.roles.verify import ProofUnavailable, Verification, verify_round
from marketplace.round.collect import UpdateOpener, collect_round, mark_stale, node_answers
from marketplace.round.reference import revealed_reference
from marketplace.round.score import ScoredRound, new_model, score_round
from marketplace.round.stale import shown_stale

#: What nobody without the project's secret update key can check in a round of an encrypted project.
NOT_CHECKED_WHEN_ENCRYPTED = (
    "that each encrypted update matches its trainer's commitment",
    "that the aggregator's rejections of encrypted updates were due",
    "that the new model is the previous model plus the step of the paid updates and the agreeing unpaid ones",
)


@dataclass(frozen=True)
class TrainerAudit:
    """One trainer's line of the audit."""

    trainer: str
    submitted: bool
    cid: str
    problem: str  # why its update is not valid ("" if it is, or if it did not submit)
    recorded_flag: bool
    recomputed_flag: bool
    recorded_score: int
    recomputed_score: int
    recorded_rejected: bool = False  # the aggregator said its update was unavailable or invalid
    #: why its update could not be used, when it is paid for the row it published in a dispute instead ("" if
    #: not): its update is not in the new model
    row_only: str = ""
    #: unpaid, and its update is in the recomputed model all the same (it agrees with the paid ones; clipped)
    admitted: bool = False
    #: paid, and its update is longer than its cap (``PAID_CLIP`` times ``2**l``, its committed log-norm ``l``
    #: counted at most ``PAID_LOG_SPREAD`` above the paid lower median): in the recomputed model shortened to that
    #: (:func:`~marketplace.rule.aggregate.committed_norm_caps` of :func:`~marketplace.rule.aggregate.paid_log_norms`)
    clipped: bool = False
    #: its update kept out of the recomputed model by the owner's reference (its committed row points against the
    #: reference row: :func:`~marketplace.rule.scorer.reference_screen`); its pay is the rule's, unchanged
    screened: bool = False

    @property
    def agrees(self) -> bool:
        return (
            self.recorded_flag == self.recomputed_flag
            and self.recorded_score == self.recomputed_score
            and self.recorded_rejected == bool(self.problem)
        )


@dataclass(frozen=True)
class ModelAudit:
    """The round's new global model: the one recorded on chain against the recomputation."""

    previous_cid: str  # the model the round started from (previous round's, or the project's initial model)
    recorded_cid: str  # the ``modelCid`` finalizeRound recorded
    paid: int  # paid updates averaged into the recomputed model
    problem: str = ""  # why the recorded model is not the recomputed one ("" when equal bit for bit)
    #: unpaid trainers whose update is in the recomputed model (it agrees with the paid ones; clipped)
    admitted: tuple[str, ...] = ()
    stretch: float = 1.0  # the factor the step's mean was lengthened by (``MAX_STEP`` at most)

    @property
    def agrees(self) -> bool:
        return not self.problem


@dataclass(frozen=True)
class AuditReport:
    project_id: int
    round: int
    finalized: bool
    trainers: list[TrainerAudit]
    model: ModelAudit | None = None  # None when the round is not finalized

    @property
    def agrees(self) -> bool:
        """True when the round is finalized, every recorded flag and score was recomputed exactly and the
        recorded new model is the recomputed one, bit for bit."""
        model_agrees = self.model is not None and self.model.agrees
        return self.finalized and model_agrees and all(t.agrees for t in self.trainers)

    @property
    def invalid_updates(self) -> list[TrainerAudit]:
        return [t for t in self.trainers if t.problem]


def audit_round(
    market: MarketClient, store: ModelStore, project_id: int, round_: int, open_update: UpdateOpener | None = None
) -> AuditReport:
    """Recomputes round ``round_`` of ``project_id`` from the chain and IPFS and compares. In an encrypted
    project ``open_update`` opens the updates (with the project's secret update key)."""
    project = market.get_project(project_id)
    inputs = collect_round(market, store, project_id, round_, project.model_name, open_update)
    stale = {t: why for t, why in shown_stale(market, project_id, round_).items() if t in inputs.trainers}
    if stale:  # shown stale on chain (``challengeStale``): out of the round, as the aggregator had them
        inputs = mark_stale(inputs, stale)
    reference = revealed_reference(market, project_id, round_, inputs.sketch_width)  # the owner's, if revealed
    scored = score_round(inputs, reference=reference)
    recorded = next((r for r in market.finalized_rounds(project_id) if r.round == round_), None)
    n = len(inputs.trainers)
    rejected = set(market.rejected_trainers(project_id, round_)) if recorded else set()
    rec_flags = recorded.flags if recorded else [False] * n
    rec_scores = recorded.scores if recorded else [0] * n
    lines = [
        TrainerAudit(
            trainer=t,
            submitted=t in inputs.submissions,
            cid=inputs.submissions[t].cid if t in inputs.submissions else "",
            problem=inputs.rejected.get(t, ""),
            recorded_flag=bool(rec_flags[i]),
            recomputed_flag=scored.flags[i],
            recorded_score=int(rec_scores[i]),
            recomputed_score=scored.chain_scores[i],
            recorded_rejected=t in rejected,
            row_only=inputs.published.get(t, ""),
            admitted=scored.admitted[i],
            clipped=scored.clipped[i],
            screened=scored.screened[i],
        )
        for i, t in enumerate(inputs.trainers)
    ]
    model = None
    if recorded is not None:
        previous = _starting_model_cid(market, project_id, round_)
        averaged = sum(
            1
            for s, full, out in zip(scored.chain_scores, inputs.has_update, scored.screened, strict=True)
            if s > 0 and full and not out
        )
        admitted = [t for t, taken in zip(inputs.trainers, scored.admitted, strict=True) if taken]
        model = audit_model(store, project.model_name, previous, recorded.model_cid, scored, averaged, admitted)
    return AuditReport(project_id, round_, recorded is not None, lines, model)


def audit_model(
    store: ModelStore,
    model_name: str,
    previous_cid: str,
    recorded_cid: str,
    scored: ScoredRound,
    paid: int,
    admitted: Sequence[str] = (),
) -> ModelAudit:
    """Recomputes the new model from ``previous_cid`` and ``scored`` (:func:`new_model`) and compares it with
    the model at ``recorded_cid``, bit for bit; ``paid`` is the number of full updates ``scored`` averages (a
    row paid without its update is not one, nor one the owner's reference screened out), ``admitted`` the unpaid
    trainers whose update its step takes too. Raises only when the IPFS node itself does not answer."""
    spec = param_spec(model_name)
    audit = ModelAudit(previous_cid, recorded_cid, paid, admitted=tuple(admitted), stretch=scored.stretch)
    try:
        previous = _model_vector(store, previous_cid, spec)
    except (IpfsConnectionError, IpfsTimeout):
        raise  # our IPFS node is down: that says nothing about the round
    except StorageError as exc:
        problem = f"the round's starting model {previous_cid} cannot be read ({type(exc).__name__}: {exc})"
        return replace(audit, problem=problem)
    expected = new_model(previous, scored)
    try:
        recorded = _model_vector(store, recorded_cid, spec)
    except (IpfsConnectionError, IpfsTimeout):
        raise
    except StorageError as exc:
        problem = f"the recorded model is not a valid {model_name} model ({type(exc).__name__}: {exc})"
        return replace(audit, problem=problem)
    differing = [
        name
        for name, (start, stop) in _offsets(spec).items()
        if expected[start:stop].tobytes() != recorded[start:stop].tobytes()
    ]
    if not differing:
        return audit
    with np.errstate(invalid="ignore", over="ignore"):
        largest = float(np.max(np.abs(expected.astype(np.float64) - recorded.astype(np.float64))))
    count = int(np.count_nonzero(expected.view(np.uint32) != recorded.view(np.uint32)))
    taken = f" and {len(admitted)} admitted unpaid one(s)" if admitted else ""
    problem = (
        f"the recorded model is not the previous model plus the step of the {paid} paid update(s){taken}: "
        f"{count} of {expected.size} parameters differ (largest difference {largest:.3g}) in {', '.join(differing)}"
    )
    return replace(audit, problem=problem)


def _model_vector(store: ModelStore, cid: str, spec: ParamSpec) -> np.ndarray:
    """The flat model at ``cid``, read as the aggregator reads it (checked: CID, safetensors, names, shapes,
    dtypes, finite values; a :class:`StorageError` says which check failed)."""
    return tensors_to_vector(store.get_tensors(cid, expected=spec, max_bytes=MAX_UPDATE_BYTES), spec)


def _offsets(spec: ParamSpec) -> dict[str, tuple[int, int]]:
    """Where each named tensor lies in the flat vector (the architecture's parameter order)."""
    out, start = {}, 0
    for name, (shape, _) in spec.items():
        stop = start + int(np.prod(shape, dtype=np.int64))
        out[name], start = (start, stop), stop
    return out


def _starting_model_cid(market: MarketClient, project_id: int, round_: int) -> str:
    """The model round ``round_`` started from: the previous round's recorded model, or the initial model."""
    if round_ > 0:
        previous = next(r for r in market.finalized_rounds(project_id) if r.round == round_ - 1)
        return previous.model_cid
    return market.initial_model_cid(project_id)


# ------------------------------------------------------------------ encrypted projects, without the key
@dataclass(frozen=True)
class EncryptedTrainerAudit:
    """One trainer's line of the audit of an encrypted round (without the secret update key)."""

    trainer: str
    submitted: bool
    cid: str
    encrypted: bool  # its object is an envelope (served under its CID): not checkable against its commitment
    problem: str  # why its object is certainly not a valid update (unavailable, malformed, a bad clear update)
    recorded_flag: bool
    recorded_score: int
    recorded_rejected: bool
    published_row: bool = False  # rejected, and published its committed row (scored on it; the proof covers it)

    @property
    def agrees(self) -> bool:
        """False when the chain contradicts what can be checked: an object that is certainly invalid was not
        rejected, or a clear update that checks out was. (A rejected envelope cannot be judged; a trainer that
        published its row is scored on it, and its rejection cannot stand.)"""
        if self.published_row:
            return not self.recorded_rejected
        if self.problem:
            return self.recorded_rejected
        return self.encrypted or not self.recorded_rejected


@dataclass(frozen=True)
class EncryptedAuditReport:
    """What the public can check of a finalized round of an encrypted project."""

    project_id: int
    round: int
    finalized: bool
    trainers: list[EncryptedTrainerAudit]
    proof_system: str  # the verifier's ``proofSystem()`` ("test-hash": the proof proves nothing)
    proof: Verification | None = None
    proof_problem: str = ""  # why the proof could not be checked, or what it failed
    model_cid: str = ""
    model_problem: str = ""  # why the recorded model is not a valid model of the project's architecture
    not_checked: tuple[str, ...] = NOT_CHECKED_WHEN_ENCRYPTED

    @property
    def proof_proves(self) -> bool:
        """The verifier checks real proofs (a zk verifier): a valid proof means the recorded flags and scores
        are the rule's on the committed rows."""
        return self.proof_system != "test-hash"

    @property
    def agrees(self) -> bool:
        """True when the round is finalized and everything the public can check agrees: the proof verifies
        (and its document, if read, has the chain's values), the recorded model is a valid model, and every
        line agrees. Not a full audit: see :attr:`not_checked`."""
        proof_ok = self.proof is not None and self.proof.valid and self.proof.document_agrees is not False
        lines_ok = all(t.agrees for t in self.trainers)
        return self.finalized and proof_ok and not self.proof_problem and not self.model_problem and lines_ok


def audit_encrypted_round(
    market: MarketClient, store: ModelStore, project_id: int, round_: int
) -> EncryptedAuditReport:
    """Checks round ``round_`` of an encrypted ``project_id`` from public data only (see the module doc)."""
    project = market.get_project(project_id)
    spec = param_spec(project.model_name)
    trainers = market.trainers(project_id)
    subs = {s.trainer: s for s in market.submissions(project_id, round_)}
    recorded = next((r for r in market.finalized_rounds(project_id) if r.round == round_), None)
    rejected = set(market.rejected_trainers(project_id, round_)) if recorded else set()
    seed, k = market.sketch_seed(project_id), market.sketch_width(project_id)
    published = {d.trainer for d in market.disputed_rows(project_id, round_)}
    lines = []
    for i, trainer in enumerate(trainers):
        sub = subs.get(trainer)
        encrypted, problem = False, ""
        if sub is not None:
            encrypted, problem = _check_object(store, sub.cid, sub.commitment, spec, seed, k)
        lines.append(
            EncryptedTrainerAudit(
                trainer=trainer,
                submitted=sub is not None,
                cid=sub.cid if sub is not None else "",
                encrypted=encrypted,
                problem=problem,
                recorded_flag=bool(recorded.flags[i]) if recorded else False,
                recorded_score=int(recorded.scores[i]) if recorded else 0,
                recorded_rejected=trainer in rejected,
                published_row=trainer in published,
            )
        )
    proof_system = market.verifier_info(project_id).proof_system
    if recorded is None:
        return EncryptedAuditReport(project_id, round_, False, lines, proof_system)
    proof, proof_problem = None, ""
    try:
        proof = verify_round(market, project_id, round_, store)
    except ProofUnavailable as exc:
        proof_problem = str(exc)
    if proof is not None and not proof.valid:
        proof_problem = f"the verifier rejects the round's proof ({proof.error})"
    elif proof is not None and proof.document_agrees is False:
        proof_problem = "the proof document's public values differ from the chain's"
    model_problem = ""
    try:
        _model_vector(store, recorded.model_cid, spec)
    except (IpfsConnectionError, IpfsTimeout):
        raise
    except StorageError as exc:
        model_problem = f"the recorded model is not a valid {project.model_name} model ({type(exc).__name__}: {exc})"
    return EncryptedAuditReport(
        project_id, round_, True, lines, proof_system, proof, proof_problem, recorded.model_cid, model_problem
    )


def _check_object(
    store: ModelStore, cid: str, commitment: bytes, spec: ParamSpec, seed: int, k: int
) -> tuple[bool, str]:
    """(encrypted, problem) of a revealed object: fetched and checked against its CID and size; an envelope
    (of this code's version, of at least the envelope's size: :func:`check_form`) is as far as anyone without
    the key can go; a clear update is checked as the aggregator checks it, commitment included."""
    try:
        data = store.get_bytes(cid, max_bytes=MAX_UPDATE_BYTES + OVERHEAD)
    except IpfsConnectionError:
        raise
    except IpfsTimeout:
        if not node_answers(store):
            raise
        return False, "IpfsTimeout: the object did not come in time"
    except StorageError as exc:
        return False, f"{type(exc).__name__}: {exc}"
    if is_envelope(data):
        try:
            check_form(data)
        except EnvelopeError as exc:
            return True, f"{type(exc).__name__}: {exc}"
        return True, ""
    try:
        vec = tensors_to_vector(load_checked(data, spec, MAX_UPDATE_BYTES, framework=store.framework), spec)
    except StorageError as exc:
        return False, f"{type(exc).__name__}: {exc}"
    if commit_update(vec, seed, k)[1] != commitment:
        return False, "CommitmentMismatch: the committed row of the update does not hash to its commitment"
    return False, ""
