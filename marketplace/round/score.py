"""The paying computation of a round: the Gram rule's exact integer flags and scores on the
committed rows in arrival order (what the circuit proves), and the new model from the paid
updates and the unpaid ones that agree with them (:func:`new_model`). Shared by the aggregator and
``marketplace audit``: the audit recomputes the new global model with the very function the aggregator built
it with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from marketplace.protocol.commitment import sanitize_rows
from marketplace.round.collect import RoundInputs
from marketplace.rule.gram import GramConfig, GramResult, shares
from marketplace.rule.scorer import GramScorer, reference_screen


@dataclass(frozen=True)
class ReferenceEffect:
    """What the owner's revealed reference row did to a round's pay (trainer indices, trainer order):
    ``used``, whether the reference-aware rule decided the scores (the reference passed its checks and left
    someone paid; otherwise the round is paid as without it); ``unpaid``, the trainers the rule without the
    reference pays and the reference left unpaid; ``added``, those it paid that the rule without it does not."""

    used: bool
    unpaid: list[int]
    added: list[int]

    @classmethod
    def of(cls, stats: dict[str, np.ndarray]) -> ReferenceEffect:
        """The effect the reference-aware rule's statistics (trainer order: :func:`rule_result`) record."""
        unpaid, added = np.flatnonzero(stats["ref_excluded"]), np.flatnonzero(stats["ref_included"])
        return cls(bool(stats["ref_ok"]), [int(i) for i in unpaid], [int(i) for i in added])

    def summary(self, names: Sequence[str]) -> str:
        """In words, naming trainer ``i`` as ``names[i]``: whether the reference decided the pay, and whom it
        unpaid or added."""
        if not self.used:
            return (
                "the owner's reference was revealed and ignored (it did not side with most trainers, or would have "
                "paid nobody): paid as without it"
            )
        if not self.unpaid and not self.added:
            return "the owner's reference was revealed and used: it changed nobody's pay"
        moved = [f"unpaid {', '.join(names[i] for i in self.unpaid)}" if self.unpaid else "",
                 f"added {', '.join(names[i] for i in self.added)}" if self.added else ""]  # fmt: skip
        return "the owner's reference was revealed and used: it " + " and ".join(m for m in moved if m)


@dataclass
class ScoredRound:
    """The paying outcome of a round (per trainer, in trainer order)."""

    flags: list[bool]  # recorded flags: flagged by the rule, or rejected
    rejected: list[bool]  # submitted, but the update could not be fetched or checked
    scores: list[float]  # shares in [0, 1]
    chain_scores: list[int]  # the circuit's integer scores (fixed point 2**13), 0 if flagged
    #: the model step (:func:`~marketplace.rule.aggregate.agreeing_clipped_mean`): the paid (score > 0) full updates
    #: and the admitted ones, clipped; None = nobody paid
    aggregate: np.ndarray | None
    #: unpaid trainers whose full update is in the step all the same (it agrees with the paid ones; clipped)
    admitted: list[bool]
    #: paid trainers whose update was longer than its cap: in the step shortened to that. The cap is ``PAID_CLIP``
    #: times ``2**l``, ``l`` its committed sketch's log-norm counted at most ``PAID_LOG_SPREAD`` above the paid
    #: lower median (:func:`~marketplace.rule.aggregate.committed_norm_caps` of
    #: :func:`~marketplace.rule.aggregate.paid_log_norms`), so a very long one is shortened further than ``PAID_CLIP``
    #: times its own sketch's norm
    clipped: list[bool]
    rows: np.ndarray  # N x (K + 2), the rows scored: the ones to prove (zero rows if not valid)
    reference: ReferenceEffect | None = None  # None: scored without a reference (the owner revealed none)
    stretch: float = 1.0  # the factor the step's mean was lengthened by, in [1, MAX_STEP]
    #: trainers whose update the owner's reference kept out of the step, paid or not (their committed row's cosine
    #: with the reference row at most ``REFERENCE_STEP_BAR``; :func:`~marketplace.rule.scorer.reference_screen`):
    #: their pay is the rule's, unchanged. All False without a reference the rule used
    screened: list[bool] = field(default_factory=list)


def score_round(inputs: RoundInputs, cfg: GramConfig | None = None, reference: np.ndarray | None = None) -> ScoredRound:
    """The paying computation: the Gram rule's exact integer flags and scores on the committed
    rows, slots in arrival order (the circuit's computation), rejected submitters flagged, and
    the model step (:meth:`GramScorer.aggregate_paid`): paid are the inliers with a positive score and their
    full update here (a trainer paid for a row it published on chain has no update in the step), each shortened to
    at most ``PAID_CLIP`` times its committed sketch's norm ``2**l``, ``l`` counted at most ``PAID_LOG_SPREAD`` above
    the paid lower median (``clipped``); candidates the
    unpaid trainers whose update was revealed, fetched and matched its commitment (``has_update``) and that the
    owner's reference did not unpay, admitted (``admitted``) when they agree with the paid ones, clipped to the
    paid median norm, the step lengthened at most :data:`~marketplace.rule.aggregate.MAX_STEP` times, less when it
    leaves updates here out (:func:`~marketplace.rule.aggregate.step_cap`); when the rule used the owner's
    reference, the updates whose committed row points against it (cosine at most
    :data:`~marketplace.rule.aggregate.REFERENCE_STEP_BAR`) are left out of the step, pay unchanged (``screened``;
    :func:`~marketplace.rule.scorer.reference_screen`). The rows scored are the rows to prove
    (``rows``: sanitised once, here), so what is proven is what is paid. ``reference``: the owner's revealed
    reference row (K + 2 grid values; :func:`marketplace.round.reference.revealed_reference`), scored with the
    reference-aware rule (``gram_rule_ref_int``), what it changed in ``reference`` (:class:`ReferenceEffect`);
    None: the rule without a reference."""
    scorer = _scorer(inputs, cfg)
    rows, _ = sanitize_rows(inputs.rows)
    res = scorer.evaluate(rows, inputs.valid, reference)  # = rule_result(inputs, cfg, reference), rows sanitised once
    rejected = inputs.rejected_mask
    flags = [bool(f) or r for f, r in zip(res.flags & inputs.valid, rejected, strict=True)]
    chain_scores = [int(s) for s in res.scores]  # 0 for flagged and rejected slots (no inlier weight)
    step = scorer.aggregate_paid(
        inputs.updates, inputs.has_update, np.array(chain_scores), unpaid_by_reference=res.stats.get("ref_excluded"),
        log_norms=rows[:, inputs.sketch_width], screened=reference_screen(res.stats, scorer.reference_bar),
    )  # fmt: skip
    screened = step.screened if step.screened is not None else np.zeros(len(chain_scores), dtype=bool)
    return ScoredRound(
        flags=flags,
        rejected=rejected,
        scores=[float(s) for s in shares(np.array(chain_scores))],
        chain_scores=chain_scores,
        aggregate=step.step,
        admitted=[bool(a) for a in step.admitted],
        clipped=[bool(c) for c in step.clipped],
        rows=rows,
        reference=None if reference is None else ReferenceEffect.of(res.stats),
        stretch=step.stretch,
        screened=[bool(x) for x in screened],
    )


def rule_result(inputs: RoundInputs, cfg: GramConfig | None = None, reference: np.ndarray | None = None) -> GramResult:
    """The Gram rule's exact integer result on the round's committed rows (sanitised, slots in arrival order),
    mapped back to trainer order, with the owner's ``reference`` row if given: the flags and scores
    :func:`score_round` pays with (before rejected submitters are flagged) and the rule's statistics, those of the
    reference-aware rule included (``base_scores``: the rule without the reference)."""
    rows, _ = sanitize_rows(inputs.rows)
    return _scorer(inputs, cfg).evaluate(rows, inputs.valid, reference)


def _scorer(inputs: RoundInputs, cfg: GramConfig | None) -> GramScorer:
    """The round's scorer: its sketch width and seed, its arrival order, the protocol's equal weights."""
    return GramScorer(inputs.sketch_width, inputs.seed, cfg, arrival=inputs.arrival_order, weighting="equal")


def new_model(previous: np.ndarray, scored: ScoredRound) -> np.ndarray:
    """The round's new global model (flat, float32, the architecture's parameter order): ``previous``
    plus the round's step (``scored.aggregate``: the paid trainers' full updates and the admitted ones,
    clipped), or ``previous`` itself when nobody was paid. Deterministic: the same inputs give the same bits,
    on any machine (the step's sums are in an order its code fixes)."""
    if scored.aggregate is None:
        return previous
    return previous + scored.aggregate.astype(np.float32)
