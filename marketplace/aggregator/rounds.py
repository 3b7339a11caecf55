"""A round's inputs as anyone can rebuild them from the chain and IPFS, and the paying computation
on them. The aggregator uses these to finalize; ``marketplace audit`` uses the very same functions
to check a finalized round."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marketplace.chain.market import MarketClient, Submission, arrival_order
from marketplace.fl.models import num_params, param_spec, tensors_to_vector
from marketplace.protocol import MAX_UPDATE_BYTES, SKETCH_DIM, commitment_of_sketch, scores_to_chain, update_sketch
from marketplace.scoring.strategy import SketchScorer
from marketplace.storage.errors import IpfsConnectionError, IpfsTimeout, StorageError
from marketplace.storage.store import ModelStore

ZERO_COMMITMENT = b"\0" * 32


@dataclass
class RoundInputs:
    """Everything the paying computation of one round depends on."""

    project_id: int
    round: int
    seed: int
    trainers: list[str]
    submissions: dict[str, Submission]
    updates: np.ndarray  # N x D float32; zero rows for trainers without a valid update
    valid: np.ndarray  # bool (N,): submitted an update that downloaded, parsed and matched its commitment
    rejected: dict[str, str]  # trainer -> why its submitted update is not valid

    @property
    def submitted(self) -> list[bool]:
        return [t in self.submissions for t in self.trainers]

    @property
    def commitments(self) -> list[bytes]:
        return [self.submissions[t].commitment if t in self.submissions else ZERO_COMMITMENT for t in self.trainers]

    @property
    def arrival_order(self) -> list[int]:
        """Trainer indices in arrival order (how ``finalizeRound`` hands values to the verifier)."""
        return arrival_order(self.trainers, self.submissions.values())

    @property
    def submission_rank(self) -> np.ndarray:
        """Each trainer's position in the on-chain order of submissions (non-submitters last)."""
        return np.argsort(self.arrival_order)


@dataclass
class ScoredRound:
    """The paying outcome of a round."""

    flags: list[bool]
    scores: list[float]  # shares in [0, 1]
    chain_scores: list[int]
    aggregate: np.ndarray | None  # mean of the inliers' full updates; None = no inlier
    sketches: np.ndarray  # N x SKETCH_DIM, the committed sketches (zero rows if not valid)


class CommittedSketchScorer(SketchScorer):
    """The paying scorer: flags and scores exactly the committed (float32) sketches."""

    def __init__(self, seed: int, **kwargs: object) -> None:
        super().__init__(sketch_dim=SKETCH_DIM, seed=seed, **kwargs)  # type: ignore[arg-type]

    def summarize(self, updates: np.ndarray) -> np.ndarray:
        return np.stack([update_sketch(row, self.seed).astype(np.float64) for row in np.asarray(updates)])


def collect_round(
    market: MarketClient, store: ModelStore, project_id: int, round_: int, model_name: str
) -> RoundInputs:
    """Fetches every submission of the round from IPFS and checks it: size, CID, safetensors,
    shapes/dtypes, finite values, and the sketch against the on-chain commitment. An update that
    fails any check is recorded in ``rejected`` with the reason; the round goes on without it.

    Raises :class:`IpfsConnectionError` / :class:`IpfsTimeout` when the IPFS node itself does not
    answer: that says nothing about the trainers, so nobody must be flagged for it."""
    spec = param_spec(model_name)
    seed = market.sketch_seed(project_id)
    trainers = market.trainers(project_id)
    subs = {s.trainer: s for s in market.submissions(project_id, round_)}
    updates = np.zeros((len(trainers), num_params(model_name)), dtype=np.float32)
    valid = np.zeros(len(trainers), dtype=bool)
    rejected: dict[str, str] = {}
    for i, trainer in enumerate(trainers):
        sub = subs.get(trainer)
        if sub is None:
            continue
        try:
            vec = tensors_to_vector(store.get_tensors(sub.cid, expected=spec, max_bytes=MAX_UPDATE_BYTES), spec)
        except (IpfsConnectionError, IpfsTimeout):
            raise  # our node is down, not the trainer's fault: never flag anyone for it; retry later
        except StorageError as exc:
            rejected[trainer] = f"{type(exc).__name__}: {exc}"
            continue
        if commitment_of_sketch(update_sketch(vec, seed)) != sub.commitment:
            rejected[trainer] = "CommitmentMismatch: the update's sketch does not match the on-chain commitment"
            continue
        updates[i] = vec
        valid[i] = True
    return RoundInputs(project_id, round_, seed, trainers, subs, updates, valid, rejected)


def score_round(inputs: RoundInputs, **scorer_options: object) -> ScoredRound:
    """The paying computation: flags and scores on the committed sketches (submitters whose update
    was rejected are flagged), and the mean of the inliers' full updates."""
    scorer = CommittedSketchScorer(
        inputs.seed, weighting="equal", submission_order=inputs.submission_rank, **scorer_options
    )
    result = scorer.run_round(inputs.updates, inputs.valid)
    flags = [bool(f) or (s and not v) for f, s, v in zip(result.flags, inputs.submitted, inputs.valid, strict=True)]
    return ScoredRound(
        flags=flags,
        scores=[float(s) for s in result.scores],
        chain_scores=scores_to_chain(result.scores, np.array(flags)),
        aggregate=result.aggregate,
        sketches=scorer.summarize(inputs.updates),
    )
