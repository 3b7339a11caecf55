"""A round's inputs as anyone can rebuild them from the chain and IPFS, and the paying computation
on them. The aggregator uses these to finalize; ``marketplace audit`` uses the very same functions
to check a finalized round."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marketplace.chain.market import MarketClient, Submission, arrival_order
from marketplace.fl.models import num_params, param_spec, tensors_to_vector
from marketplace.protocol import MAX_UPDATE_BYTES
from marketplace.scoring.gram import GramConfig, GramScorer, shares
from marketplace.storage.errors import IpfsConnectionError, IpfsTimeout, StorageError
from marketplace.storage.store import ModelStore
from marketplace.zk.commit import commit_update

ZERO_COMMITMENT = b"\0" * 32


@dataclass
class RoundInputs:
    """Everything the paying computation of one round depends on."""

    project_id: int
    round: int
    seed: int
    sketch_width: int  # K, the project's verifier's sketch width
    trainers: list[str]
    submissions: dict[str, Submission]
    updates: np.ndarray  # N x D float32; zero rows for trainers without a valid update
    rows: np.ndarray  # N x (K + 2) committed rows (their hashes are the commitments); zero rows if not valid
    valid: np.ndarray  # bool (N,): submitted an update that downloaded, parsed and matched its commitment
    rejected: dict[str, str]  # trainer -> why its submitted update is not valid

    @property
    def submitted(self) -> list[bool]:
        return [t in self.submissions for t in self.trainers]

    @property
    def rejected_mask(self) -> list[bool]:
        return [t in self.rejected for t in self.trainers]

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
    """The paying outcome of a round (per trainer, in trainer order)."""

    flags: list[bool]  # recorded flags: flagged by the rule, or rejected
    rejected: list[bool]  # submitted, but the update could not be fetched or checked
    scores: list[float]  # shares in [0, 1]
    chain_scores: list[int]  # the circuit's integer scores (fixed point 2**13), 0 if flagged
    aggregate: np.ndarray | None  # mean of the paid (score > 0) full updates; None = nobody paid
    rows: np.ndarray  # N x (K + 2), the committed rows (zero rows if not valid)


def collect_round(
    market: MarketClient, store: ModelStore, project_id: int, round_: int, model_name: str
) -> RoundInputs:
    """Fetches every submission of the round from IPFS and checks it: size, CID, safetensors,
    shapes/dtypes, finite values, and the committed row's Poseidon hash against the on-chain
    commitment. An update that fails any check is recorded in ``rejected`` with the reason; the
    round goes on without it.

    Raises :class:`IpfsConnectionError` / :class:`IpfsTimeout` when the IPFS node itself does not
    answer: that says nothing about the trainers, so nobody must be flagged for it."""
    spec = param_spec(model_name)
    seed = market.sketch_seed(project_id)
    k = market.sketch_width(project_id)
    trainers = market.trainers(project_id)
    subs = {s.trainer: s for s in market.submissions(project_id, round_)}
    updates = np.zeros((len(trainers), num_params(model_name)), dtype=np.float32)
    rows = np.zeros((len(trainers), k + 2))
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
        row, commitment = commit_update(vec, seed, k)
        if commitment != sub.commitment:
            rejected[trainer] = "CommitmentMismatch: the committed row of the update does not hash to its commitment"
            continue
        updates[i], rows[i], valid[i] = vec, row, True
    return RoundInputs(project_id, round_, seed, k, trainers, subs, updates, rows, valid, rejected)


def score_round(inputs: RoundInputs, cfg: GramConfig | None = None) -> ScoredRound:
    """The paying computation: the Gram rule's exact integer flags and scores on the committed
    rows, slots in arrival order (the circuit's computation), rejected submitters flagged, and
    the mean of the paid trainers' full updates (inliers with a positive score)."""
    scorer = GramScorer(inputs.sketch_width, inputs.seed, cfg, submission_order=inputs.submission_rank,
                        weighting="equal")  # fmt: skip
    res = scorer.evaluate(inputs.rows, inputs.valid)
    rejected = inputs.rejected_mask
    flags = [bool(f) or r for f, r in zip(res.flags & inputs.valid, rejected, strict=True)]
    chain_scores = [int(s) for s in res.scores]  # 0 for flagged and rejected slots (no inlier weight)
    _, aggregate = scorer.aggregate_paid(inputs.updates, inputs.valid, np.array(chain_scores))
    return ScoredRound(
        flags=flags,
        rejected=rejected,
        scores=[float(s) for s in shares(np.array(chain_scores))],
        chain_scores=chain_scores,
        aggregate=aggregate,
        rows=inputs.rows,
    )
