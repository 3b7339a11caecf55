"""What the owner's revealed reference changed in a finalized round's pay, from public data only (issue 16,
docs/design/robust-reference.md, section 6.5): whom it left unpaid that the rule without it pays, whom it paid that
the rule without it does not, and by how much their score and share moved.

The public data: the reference row is in the ``ReferenceRevealed`` event, checked against the commitment the market
records (:func:`~marketplace.round.reference.revealed_reference`); the trainers' committed rows are on chain only as
hashes (the proof document repeats the commitments, not the rows), so they are made again from the revealed updates
on IPFS and checked against those hashes (:func:`~marketplace.round.collect.collect_round`, a row published in a
dispute as it is on chain). The rule is then run with the reference (what was recorded, which must come out again)
and without it (its ``base_scores``): :func:`reference_changes`. An encrypted project's updates cannot be read by the
public, and neither then can the rows: the rule without the reference cannot be recomputed, and all public data says
is who, unflagged, was paid nothing (:func:`undecided`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from marketplace.protocol.constants import SCALE
from marketplace.rule.gram import shares
from marketplace.web.schemas import OwnerReference, ReferenceChanges, ReferenceMove, RoundView, to_bps

if TYPE_CHECKING:  # collect and score import torch (the model architectures): imported when a round is recomputed
    from marketplace.round.collect import RoundInputs


def reference_changes(inputs: RoundInputs, reference: np.ndarray, recorded_scores: Sequence[int]) -> ReferenceChanges:
    """What the reference row ``reference`` (K + 2 grid values, as revealed) changed in the round of ``inputs``
    (its committed rows as the public rebuilds them), whose scores the chain records as ``recorded_scores``
    (trainer order). The rule is run with the reference (:func:`~marketplace.round.score.rule_result`); unless that
    gives the recorded scores again (state ``unavailable``: ``marketplace audit`` says where they differ), the
    trainers it unpaid and added are those the rule's statistics name (``ref_excluded``, ``ref_included``), each
    with its score without the reference (``base_scores``) and with it, its shares both ways, its cosine to the
    reference and its typicality."""
    from marketplace.round.score import ReferenceEffect, rule_result

    res = rule_result(inputs, reference=reference)
    with_ref = [int(s) for s in res.scores]
    if with_ref != [int(s) for s in recorded_scores]:
        return ReferenceChanges(
            state="unavailable",
            summary="The recomputation with the owner's reference does not give the scores recorded on chain, so "
            "what the reference changed is not said here: run `marketplace audit` on this round to see where they "
            "differ.",
            unavailable="the rule recomputed with the reference gives other scores than those recorded on chain",
        )
    stats = res.stats
    without = [int(s) for s in stats["base_scores"]]
    effect = ReferenceEffect.of(stats)
    cosines, typical = np.asarray(stats["ref_cos"]) / 2.0**SCALE, np.asarray(res.med_cos) / 2.0**SCALE
    share_without, share_with = shares(np.array(without)), shares(np.array(with_ref))

    def move(i: int) -> ReferenceMove:
        return ReferenceMove(
            index=i, trainer=inputs.trainers[i], score_without=str(without[i]), score_with=str(with_ref[i]),
            share_without_bps=to_bps(float(share_without[i])), share_with_bps=to_bps(float(share_with[i])),
            reference_cosine=float(cosines[i]), typicality=float(typical[i]),
        )  # fmt: skip

    unpaid, added = [move(i) for i in effect.unpaid], [move(i) for i in effect.added]
    return ReferenceChanges(
        state="used" if effect.used else "ignored",
        summary=_summary(effect.used, unpaid, added, float(stats["ref_med"]) / 2.0**SCALE),
        unpaid=unpaid,
        added=added,
        median_typicality=float(stats["M"]) / 2.0**SCALE,
        reference_median=float(stats["ref_med"]) / 2.0**SCALE,
    )


def _named(moves: list[ReferenceMove]) -> str:
    """The trainers of ``moves`` by their index in the project ("#2, #5"): the lists name their addresses."""
    return ", ".join(f"#{m.index}" for m in moves)


def _summary(used: bool, unpaid: list[ReferenceMove], added: list[ReferenceMove], reference_median: float) -> str:
    """What the reference changed, in words."""
    if not used:
        return (
            "The owner's reference was revealed and set aside by the rule: it did not side with most trainers (its "
            f"median cosine to them is {reference_median:.3f}; it must be positive and not far by the trainers' own "
            "yardstick), was not a valid row, or would have paid nobody. The round was paid as without it."
        )
    if not unpaid and not added:
        return (
            "The owner's reference was used and changed nobody's pay: every trainer is paid the very score the rule "
            "without it gives."
        )
    parts = []
    if unpaid:
        parts.append(f"left {len(unpaid)} trainer(s) unpaid that the rule without it pays ({_named(unpaid)})")
    if added:
        parts.append(f"paid {len(added)} trainer(s) that the rule without it does not ({_named(added)})")
    return (
        f"The owner's reference {' and '.join(parts)}. Every other trainer is paid the very score the rule without it "
        "gives; its share moves only because the round's total does. The reference flags nobody."
    )


def no_reference(record: OwnerReference) -> ReferenceChanges:
    """The changes of a round whose owner revealed no reference (``record``, as the market records it): none."""
    withheld = " (it committed one and did not reveal it)" if record.committed else ""
    return ReferenceChanges(
        state="none",
        summary=f"The owner revealed no reference{withheld}: the round was scored by the rule alone, so a reference "
        "changed nothing.",
    )


def undecided(view: RoundView) -> list[str]:
    """The trainers of the finalized round ``view`` that were scored (revealed, or scored on a row published in a
    dispute), are not flagged and were paid nothing: each unpaid by the rule's own test or by the reference."""
    scored = [e for e in view.trainers if e.submitted or e.dispute == "disputed"]
    return [e.trainer for e in scored if not e.flagged and int(e.score) == 0]


def unavailable(reason: str, view: RoundView) -> ReferenceChanges:
    """The changes of the round ``view`` when the rule without the reference cannot be recomputed (``reason``): what
    public data says all the same (:func:`undecided`)."""
    nobody = undecided(view)
    indices = ", ".join(f"#{e.index}" for e in view.trainers if e.trainer in nobody)
    who = (
        f"{len(nobody)} unflagged trainer(s) were paid nothing ({indices}): each unpaid by the rule's own test or by "
        "the reference, which public data cannot tell apart"
        if nobody
        else "every unflagged trainer was paid, so the reference unpaid nobody (it may have added some)"
    )
    return ReferenceChanges(
        state="unavailable",
        summary=f"What the owner's reference changed cannot be recomputed from public data: {reason}. The rule "
        "without the reference needs the trainers' committed rows, which are on chain only as hashes and can be made "
        "again only from their revealed updates (or a row published in a dispute). Public data still says that the "
        f"reference flagged nobody and that a trainer paid both ways is paid the same score; here {who}.",
        unavailable=reason,
        undecided=nobody,
    )


def not_now(reason: str) -> ReferenceChanges:
    """The changes of a round this server does not recompute now (``reason``: it runs all the IPFS fetches it
    allows for visitors): nothing said, and when to ask again is the answer's ``Retry-After``."""
    return ReferenceChanges(
        state="unavailable",
        summary=f"Not recomputed now: {reason}. Load the page again to see what the owner's reference changed.",
        unavailable=reason,
    )
