"""The paying scorer: the Gram rule behind the :class:`~marketplace.rule.strategy.RoundScorer`
steps (summarise -> flag -> score -> aggregate), on the committed rows of the updates, optionally with the
owner's reference row (:func:`~marketplace.rule.gram.gram_rule_ref_int`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Literal

import numpy as np

from marketplace.protocol.commitment import committed_rows, quantize, sanitize_rows
from marketplace.protocol.constants import SCALE
from marketplace.protocol.sketch import sketch_rows
from marketplace.rule.aggregate import (
    MAX_STEP,
    REFERENCE_STEP_BAR,
    ModelStep,
    agreeing_clipped_mean,
    committed_norm_caps,
    paid_log_norms,
)
from marketplace.rule.gram import GramConfig, GramResult, gram_rule_int, gram_rule_ref_int, shares
from marketplace.rule.strategy import InlierFedAvg, RoundResult, RoundScorer


def reference_screen(stats: Mapping[str, np.ndarray], bar: float | None = REFERENCE_STEP_BAR) -> np.ndarray | None:
    """The updates the owner's reference keeps out of the model step (bool (N,), trainer order): those whose
    committed row's cosine with the reference row, the reference-aware rule's ``ref_cos`` (scale ``2**13``), is at
    most ``bar`` (:data:`~marketplace.rule.aggregate.REFERENCE_STEP_BAR`), when the rule used the reference
    (``ref_ok``: it passed its checks); None when it did not (no reference, or one the rule ignored, whose cosines
    mean nothing) or ``bar`` is None. Exact: integers compared with ``bar * 2**13`` (a float times a power of two).
    Pay is not this function's business: a screened trainer is paid as the rule says."""
    if bar is None or not bool(stats.get("ref_ok", False)):
        return None
    return np.asarray(stats["ref_cos"], dtype=np.int64) <= bar * 2.0**SCALE


class GramScorer(InlierFedAvg, RoundScorer):
    """Pays with :func:`gram_rule_int` on the committed rows of ``sketch_dim``-wide CountSketches.

    Args:
        sketch_dim: K, the committed sketch width (must match the circuit).
        seed: public per-project sketch seed.
        cfg: rule constants.
        arrival: the trainer indices in arrival order (:func:`marketplace.protocol.ordering.arrival_order`):
            slot ``s`` holds trainer ``arrival[s]`` (the duplicate rule keeps the earliest copy);
            without it, trainer order is the slot order.
        weighting: :meth:`aggregate`'s FedAvg weights (the generic step 3), ``"samples"`` (reported counts) or
            ``"equal"``; the protocol's step (:meth:`aggregate_paid`, :meth:`run_round`) weighs equally.
        reference_bar: :meth:`run_round`'s screen (:func:`reference_screen`); None: no screen (the step before
            stop 20, for benchmarks beside the protocol's).
    """

    def __init__(
        self,
        sketch_dim: int = 64,
        seed: int = 0,
        cfg: GramConfig | None = None,
        arrival: Sequence[int] | None = None,
        weighting: Literal["samples", "equal"] = "samples",
        reference_bar: float | None = REFERENCE_STEP_BAR,
    ) -> None:
        self.sketch_dim = sketch_dim
        self.seed = seed
        self.cfg = cfg or GramConfig()
        self.arrival = arrival
        self.weighting = weighting
        self.reference_bar = reference_bar

    def summarize(self, updates: np.ndarray) -> np.ndarray:
        """The committed rows (N, K + 2) of the updates' sketches."""
        return committed_rows(sketch_rows(updates, self.sketch_dim, self.seed))

    def reference_row(self, reference: np.ndarray) -> np.ndarray:
        """The owner's committed reference row (K + 2) of its flat update, as a trainer's row is made."""
        return self.summarize(np.asarray(reference)[None, :])[0]

    def evaluate(
        self, summaries: np.ndarray, active_mask: np.ndarray, reference_row: np.ndarray | None = None
    ) -> GramResult:
        """The integer rule on the sanitised rows, mapped back to trainer order; with ``reference_row`` (the
        owner's committed row, sanitised here like the trainers'), the reference-aware rule
        :func:`~marketplace.rule.gram.gram_rule_ref_int`. Without it the result is :func:`gram_rule_int`'s."""
        rows = np.where(np.asarray(active_mask, dtype=bool)[:, None], summaries, 0.0)
        rows, _ = sanitize_rows(rows)
        perm = np.arange(rows.shape[0]) if self.arrival is None else np.asarray(self.arrival, dtype=np.int64)
        if reference_row is None:
            res = gram_rule_int(quantize(rows[perm]), self.cfg)
        else:
            ref, _ = sanitize_rows(np.asarray(reference_row, dtype=np.float64)[None, :])
            res = gram_rule_ref_int(quantize(rows[perm]), quantize(ref[0]), self.cfg)
        inv = np.argsort(perm)
        stats = {key: (val[inv] if np.ndim(val) == 1 else val) for key, val in res.stats.items()}
        return GramResult(res.flags[inv], res.scores[inv], res.valid[inv], res.med_cos[inv], stats)

    def flag(self, summaries: np.ndarray, active_mask: np.ndarray) -> np.ndarray:
        return self.evaluate(summaries, active_mask).flags

    def score(self, summaries: np.ndarray, active_mask: np.ndarray, flags: np.ndarray) -> np.ndarray:
        """Shares of the circuit's integer scores (``flags`` must be this scorer's own flags)."""
        res = self.evaluate(summaries, active_mask)
        if not np.array_equal(res.flags, np.asarray(flags, dtype=bool)):
            raise ValueError("GramScorer.score needs the flags of GramScorer.flag")
        return shares(res.scores)

    def diagnostics(self, summaries: np.ndarray, active_mask: np.ndarray) -> dict[str, np.ndarray]:
        """``med_cos``: m_i (median cosine to the others), ``log_norm``: l_i, ``int_scores``: p_i."""
        return self._details(summaries, self.evaluate(summaries, active_mask))

    def _details(self, summaries: np.ndarray, res: GramResult) -> dict[str, np.ndarray]:
        details = {
            "med_cos": res.med_cos / 2.0**SCALE,
            "log_norm": np.asarray(summaries)[:, self.sketch_dim],
            "int_scores": res.scores,
            "valid": res.valid,
        }
        if "ref_ok" in res.stats:  # the reference-aware rule: what the reference changed
            keys = ("ref_ok", "ref_cos", "ref_excluded", "ref_included", "base_scores")
            details.update({key: res.stats[key] for key in keys})
        return details

    def aggregate_paid(
        self,
        updates: np.ndarray,
        has_update: np.ndarray,
        int_scores: np.ndarray,
        max_step: float = MAX_STEP,
        unpaid_by_reference: np.ndarray | None = None,
        log_norms: np.ndarray | None = None,
        screened: np.ndarray | None = None,
    ) -> ModelStep:
        """The round's model step (:func:`~marketplace.rule.aggregate.agreeing_clipped_mean`): the paid updates
        (integer score > 0, the full update here: flagged and gated trainers score 0, a row paid without its
        update has none) and the unpaid updates here that agree with them, clipped to the paid median norm,
        lengthened at most ``max_step`` times (less when it leaves updates here out:
        :func:`~marketplace.rule.aggregate.step_cap`). Equal weights whatever :attr:`weighting` says (it is
        :meth:`aggregate`'s, the generic step): sample counts are the trainers' word. ``step`` None: nobody was
        paid.

        ``unpaid_by_reference``: bool (N,), the trainers the rule pays and the owner's reference left unpaid (the
        reference-aware rule's ``ref_excluded``); they are no candidates: an owner who unpays a trainer with its
        reference does not get that trainer's update in its model either (else unpaying would be free work for
        it, its share going to a colluding paid trainer).

        ``log_norms``: float (N,), the committed rows' log-norms ``l`` (column ``K``); each paid update enters the
        step at most ``PAID_CLIP * 2**l`` long, ``l`` counted at most ``PAID_LOG_SPREAD`` above the paid updates'
        lower median (:func:`~marketplace.rule.aggregate.committed_norm_caps` of
        :func:`~marketplace.rule.aggregate.paid_log_norms`): what the committed sketch does not see cannot enter at
        a norm the rule never judged. None: paid updates uncapped.

        ``screened``: bool (N,), the updates the owner's reference keeps out (:func:`reference_screen`): neither in
        the step as paid nor candidates, their pay unchanged (the step's ``screened``: those of them that were paid
        or candidates); ignored when it would leave no paid update in the step (a reference against every paid
        update is not one to steer by). Caps and the step's cap count the updates left."""
        has = np.asarray(has_update, dtype=bool)
        paid = has & (np.asarray(int_scores) > 0)
        candidates = has & ~paid
        if unpaid_by_reference is not None:
            candidates &= ~np.asarray(unpaid_by_reference, dtype=bool)
        kept_out = None
        if screened is not None:
            out = np.asarray(screened, dtype=bool) & (paid | candidates)
            if (paid & ~out).any():
                paid, candidates, kept_out = paid & ~out, candidates & ~out, out
        caps = None if log_norms is None else committed_norm_caps(paid_log_norms(log_norms, paid))
        step = agreeing_clipped_mean(updates, paid, candidates, max_step, paid_caps=caps)
        return step if kept_out is None else replace(step, screened=kept_out)

    def run_round(
        self,
        updates: np.ndarray,
        active_mask: np.ndarray | None = None,
        num_samples: np.ndarray | None = None,
        reference: np.ndarray | None = None,
    ) -> RoundResult:
        """As :meth:`RoundScorer.run_round`, evaluating the rule once (not for flags, scores and details apart), with
        the protocol's model step (:meth:`aggregate_paid`, screened by the reference: :func:`reference_screen`;
        ``num_samples`` is not used; ``weights`` are each update's coefficient in the step, ``admitted`` the unpaid
        updates it takes; ``details["screened"]`` the updates the reference kept out, when it kept any).

        ``reference``: the owner's flat reference update (length D), or ``None`` for the rule without it."""
        u, active, summaries = self._prepare(updates, active_mask)
        ref_row = None if reference is None else self.reference_row(reference)
        res = self.evaluate(summaries, active, ref_row)
        flags = res.flags & active
        step = self.aggregate_paid(
            u, active, res.scores, unpaid_by_reference=res.stats.get("ref_excluded"),
            log_norms=np.asarray(summaries)[:, self.sketch_dim],
            screened=reference_screen(res.stats, self.reference_bar),
        )  # fmt: skip
        details = self._details(summaries, res)
        if step.screened is not None:
            details["screened"] = step.screened
        return RoundResult(
            flags=flags, scores=shares(res.scores), weights=step.weights * step.stretch, aggregate=step.step,
            details=details, admitted=step.admitted,
        )  # fmt: skip
