"""Why a trainer of a finalized round was flagged, in words, from public data only.

Two sources, each public:

* **the chain** (through the event index): a missed reveal (``RevealMissed``), a submission shown stale
  (``StaleChallenged``: a near copy of an earlier round's row, rejected beyond dispute), a rejection announced by the
  aggregator and where its dispute stands (``RejectionAnnounced``, ``RejectionDisputed``, ``SubmissionRejected``),
  with the aggregator's stated cause from the round's proof document (its word, not proven);
* **the rule, recomputed** (:func:`rule_causes`, :func:`flag_causes`; the round is read by
  :mod:`~marketplace.web.services.round_recompute`): the revealed updates are fetched from IPFS and checked against
  their on-chain commitments exactly as ``marketplace audit`` does (:func:`~marketplace.round.collect.collect_round`),
  and the Gram rule is run on their committed rows in arrival order; which of its tests fired for each flagged slot
  is the cause: ``far``, ``lazy``, ``boosted``, ``duplicate`` or ``malformed`` (a row that is not a unit vector).
  Only attributed when the recomputed flags are the recorded ones; an encrypted project's updates cannot be read by
  the public, and then no rule cause is shown.

Each cause is a :class:`FlagCause`: a code, a word for it and a one-sentence explanation with the rule's
constants (:class:`~marketplace.rule.gram.GramConfig`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from marketplace.protocol.commitment import sanitize_rows
from marketplace.rule.gram import GramConfig
from marketplace.rule.scorer import GramScorer
from marketplace.web.schemas import TrainerEntry
from marketplace.web.services.stale import STALE_ADVICE

if TYPE_CHECKING:  # it imports torch (the model architectures): imported when a round is recomputed
    from marketplace.round.collect import RoundInputs

CauseCode = Literal[
    "far", "lazy", "boosted", "duplicate", "malformed", "missed_reveal", "stale", "rejected", "disputed"
]
#: The rule's tests in the order they are reported, by the key of :func:`gram_rule_int`'s statistics.
RULE_TESTS: tuple[tuple[str, CauseCode], ...] = (("far", "far"), ("lazy", "lazy"), ("boost", "boosted"),
                                                 ("dup", "duplicate"))  # fmt: skip


@dataclass(frozen=True)
class FlagCause:
    """One reason for a flag: ``code``, a ``label`` (a word or two), an ``explanation`` (one sentence) and its
    ``source``: ``chain`` (events), ``rule`` (recomputed from the public updates) or ``aggregator`` (its word in
    the proof document, not proven)."""

    code: CauseCode
    label: str
    explanation: str
    source: Literal["chain", "rule", "aggregator"]


def rule_explanations(cfg: GramConfig | None = None) -> dict[CauseCode, tuple[str, str]]:
    """Code -> (label, explanation) of the rule's causes, with the constants of ``cfg``."""
    cfg = cfg or GramConfig()
    distance = math.sqrt(cfg.threshold)
    cosine = 1 - cfg.dup_dist / 2
    return {
        "far": ("far", f"its direction is far from the others': its typical distance to the other updates is more "
                       f"than {distance:g} times the round's typical distance"),
        "lazy": ("lazy", f"its size is under 1/{2**cfg.lazy_log2:.0f} of the median update's: it barely trained"),
        "boosted": ("boosted", f"its size is over {2**cfg.boost_log2:g} times the median update's: scaled up to "
                               "weigh more"),
        "duplicate": ("duplicate", f"a near-copy (cosine above {cosine:.3f}) of an update committed earlier in "
                                   "the round"),
        "malformed": ("malformed", "its committed row is not a unit vector: the rule cannot score it"),
    }  # fmt: skip


def rule_causes(
    rows: np.ndarray,
    valid: np.ndarray,
    arrival: list[int] | None,
    sketch_width: int,
    cfg: GramConfig | None = None,
) -> list[list[CauseCode]]:
    """For each trainer (trainer order), which of the rule's tests flag its committed row: ``malformed`` for a
    counted row that is not a unit vector, else those of ``far``, ``lazy``, ``boosted`` and ``duplicate`` that
    fire (only once at least ``cfg.min_valid`` rows are valid: the rule flags nothing else below that). Empty
    for an unflagged or absent trainer. ``rows`` (N, K + 2) and ``valid`` (N,) as
    :class:`~marketplace.round.collect.RoundInputs` has them, ``arrival`` the arrival order."""
    cfg = cfg or GramConfig()
    clean, _ = sanitize_rows(np.asarray(rows, dtype=np.float64))
    active = np.asarray(valid, dtype=bool)
    res = GramScorer(sketch_width, 0, cfg, arrival=arrival).evaluate(clean, active)
    enough = int(res.valid.sum()) >= cfg.min_valid
    out: list[list[CauseCode]] = []
    for i in range(len(active)):
        causes: list[CauseCode] = []
        if active[i] and bool(res.flags[i]):
            if not res.valid[i]:
                causes.append("malformed")
            elif enough:
                causes += [code for key, code in RULE_TESTS if bool(res.stats[key][i])]
        out.append(causes)
    return out


def chain_causes(entry: TrainerEntry, aggregator_word: str | None, when: Callable[[int], str]) -> list[FlagCause]:
    """The causes the chain records for ``entry`` (a trainer's line of a finalized round): a missed reveal, a
    submission shown stale (which no dispute can undo, and the aggregator's word is not needed for), an upheld
    rejection (with the aggregator's stated cause, if any, as a cause of its own) or a disputed one."""
    out: list[FlagCause] = []
    if entry.reveal_missed:
        out.append(FlagCause("missed_reveal", "missed reveal", "committed a sealed update and did not reveal it "
                             "in time: treated as flagged and its stake slashed", "chain"))  # fmt: skip
    if entry.stale is not None:
        out.append(FlagCause("stale", "stale", STALE_ADVICE, "chain"))
        return out
    if entry.dispute == "upheld" or (entry.rejected and entry.dispute is None):
        deadline = f" before {when(entry.dispute_deadline)}" if entry.dispute_deadline is not None else ""
        out.append(FlagCause("rejected", "rejected", "the aggregator declared its update unavailable or not matching "
                             f"its commitment, and the trainer did not dispute it{deadline}: no reward, stake "
                             "slashed", "chain"))  # fmt: skip
    elif entry.dispute == "disputed":
        out.append(FlagCause("disputed", "rejected, disputed", "the aggregator rejected its update; the trainer "
                             "published its committed row on chain and was scored on it (the update stays out of "
                             "the model)", "chain"))  # fmt: skip
    if aggregator_word and entry.dispute in ("upheld", "disputed"):
        out.append(FlagCause("rejected", "aggregator's cause", f"{aggregator_word} (the aggregator's word, not "
                             "proven)", "aggregator"))  # fmt: skip
    return out


def flag_causes(inputs: RoundInputs, recorded_flags: Sequence[bool]) -> dict[str, list[FlagCause]]:
    """The rule's causes of the flags of the round of ``inputs`` (its committed rows as the public rebuilds them),
    by trainer address: only the trainers the chain records flagged (``recorded_flags``, trainer order) whose flag the
    rule reproduces (:func:`rule_causes`); a recorded flag the rule does not reproduce gets no cause."""
    codes = rule_causes(inputs.rows, inputs.valid, inputs.arrival_order, inputs.sketch_width)
    words = rule_explanations()
    return {
        trainer: [FlagCause(c, *words[c], "rule") for c in codes[i]]
        for i, trainer in enumerate(inputs.trainers)
        if codes[i] and recorded_flags[i]
    }
