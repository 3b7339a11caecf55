"""``marketplace audit``: anyone re-checks a finalized round from public data only.

For every submission of the round it downloads the update from IPFS, recomputes its committed row
and Poseidon commitment and compares it with what the trainer committed on chain; then it
recomputes the paying computation (flags and scores, the circuit's integers) with the same code
the aggregator runs and compares it with what was recorded on chain, including which updates the
aggregator rejected (the one thing the proof cannot cover: see ``TrainingMarket.finalizeRound``).

Last, the new global model, which no proof covers either: it recomputes it from the model the round
started from (the previous round's recorded model, or the project's initial model) plus the mean of
the paid updates, with the function the aggregator built it with (:func:`~marketplace.round.score.new_model`),
fetches the model recorded on chain (checked against its CID, like every download) and compares the
two tensor by tensor, bit for bit. Nothing is pinned. A recorded model that cannot be fetched or is not
a model of the project's architecture is a mismatch too; so is a round whose starting model cannot be
read (then nothing can be checked).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marketplace.adapters.chain.market import MarketClient
from marketplace.adapters.ipfs.errors import IpfsConnectionError, IpfsTimeout, StorageError
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.fl.models import ParamSpec, param_spec, tensors_to_vector
from marketplace.protocol.constants import MAX_UPDATE_BYTES
from marketplace.round.collect import collect_round
from marketplace.round.score import ScoredRound, new_model, score_round


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
    paid: int  # updates averaged into the recomputed model
    problem: str = ""  # why the recorded model is not the recomputed one ("" when equal bit for bit)

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


def audit_round(market: MarketClient, store: ModelStore, project_id: int, round_: int) -> AuditReport:
    """Recomputes round ``round_`` of ``project_id`` from the chain and IPFS and compares."""
    project = market.get_project(project_id)
    inputs = collect_round(market, store, project_id, round_, project.model_name)
    scored = score_round(inputs)
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
        )
        for i, t in enumerate(inputs.trainers)
    ]
    model = None
    if recorded is not None:
        previous = _starting_model_cid(market, project_id, round_)
        averaged = sum(1 for s, full in zip(scored.chain_scores, inputs.has_update, strict=True) if s > 0 and full)
        model = audit_model(store, project.model_name, previous, recorded.model_cid, scored, averaged)
    return AuditReport(project_id, round_, recorded is not None, lines, model)


def audit_model(
    store: ModelStore, model_name: str, previous_cid: str, recorded_cid: str, scored: ScoredRound, paid: int
) -> ModelAudit:
    """Recomputes the new model from ``previous_cid`` and ``scored`` (:func:`new_model`) and compares it with
    the model at ``recorded_cid``, bit for bit; ``paid`` is the number of full updates ``scored`` averages (a
    row paid without its update is not one). Raises only when the IPFS node itself does not answer."""
    spec = param_spec(model_name)
    try:
        previous = _model_vector(store, previous_cid, spec)
    except (IpfsConnectionError, IpfsTimeout):
        raise  # our IPFS node is down: that says nothing about the round
    except StorageError as exc:
        problem = f"the round's starting model {previous_cid} cannot be read ({type(exc).__name__}: {exc})"
        return ModelAudit(previous_cid, recorded_cid, paid, problem)
    expected = new_model(previous, scored)
    try:
        recorded = _model_vector(store, recorded_cid, spec)
    except (IpfsConnectionError, IpfsTimeout):
        raise
    except StorageError as exc:
        problem = f"the recorded model is not a valid {model_name} model ({type(exc).__name__}: {exc})"
        return ModelAudit(previous_cid, recorded_cid, paid, problem)
    differing = [
        name
        for name, (start, stop) in _offsets(spec).items()
        if expected[start:stop].tobytes() != recorded[start:stop].tobytes()
    ]
    if not differing:
        return ModelAudit(previous_cid, recorded_cid, paid)
    with np.errstate(invalid="ignore", over="ignore"):
        largest = float(np.max(np.abs(expected.astype(np.float64) - recorded.astype(np.float64))))
    count = int(np.count_nonzero(expected.view(np.uint32) != recorded.view(np.uint32)))
    problem = (
        f"the recorded model is not the previous model plus the mean of the {paid} paid update(s): "
        f"{count} of {expected.size} parameters differ (largest difference {largest:.3g}) in {', '.join(differing)}"
    )
    return ModelAudit(previous_cid, recorded_cid, paid, problem)


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
