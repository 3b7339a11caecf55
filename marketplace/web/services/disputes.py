"""Rejections and their disputes in words, for the project page and the API: where a trainer's rejection
stands (:class:`~marketplace.web.indexer.Dispute`) and, for a finalized round, why a trainer is flagged.

A rejection is the aggregator's word (an update it says it could not fetch or check); it stands only if the
trainer does not publish its committed row before the dispute window closes. Pure functions: ``when``
formats a time, ``now`` is the chain's time (needed only while the round is open).
"""

from __future__ import annotations

from collections.abc import Callable

from marketplace.web.indexer import Dispute


def describe_dispute(
    dispute: Dispute, when: Callable[[int], str], now: int | None = None, reason: str | None = None
) -> str:
    """One sentence: the rejection, its cause if the aggregator gave one (``reason``), and where it stands.

    ``announced``: "dispute window open until <deadline>" while ``now`` is not past it (or unknown), else
    "not disputed before <deadline>: the rejection stands once the round is finalized"; ``disputed``:
    "disputed, scored on its published row"; ``upheld``: "rejection stands: not disputed before <deadline>";
    ``withdrawn``: announced, then scored on its update after all."""
    why = f": {reason}" if reason else ""
    head = f"rejected by the aggregator{why}"
    deadline = dispute.deadline
    if dispute.state == "disputed":
        return f"{head} — disputed, scored on its published row (its update stays out of the model)"
    if dispute.state == "upheld":
        if deadline is None:
            return f"{head} — rejection stands (no dispute window was announced)"
        return f"{head} — rejection stands: not disputed before {when(deadline)}"
    if dispute.state == "withdrawn":
        return f"rejection announced{why}, then withdrawn: scored on its update"
    if deadline is not None and now is not None and now > deadline:
        return f"{head} — not disputed before {when(deadline)}: the rejection stands once the round is finalized"
    return f"{head} — dispute window open until {when(deadline) if deadline is not None else '-'}"


def flag_reason(
    flagged: bool,
    reveal_missed: bool,
    dispute: Dispute | None,
    when: Callable[[int], str],
    reason: str | None = None,
    stale: str | None = None,
) -> str | None:
    """Why a trainer of a finalized round is flagged, rejected or disputed, in words; None when it is none of
    these. A missed reveal, then the rejection: ``stale`` (its stale challenge in words, :mod:`.stale`: a rejection
    nobody can dispute, shown on chain, in place of the aggregator's) or :func:`describe_dispute`, then a flag of
    the scoring rule (a flag that is not the market's for a missed reveal or a rejection that stands)."""
    parts = []
    if reveal_missed:
        parts.append("committed and did not reveal in time")
    if stale is not None:
        parts.append(stale)
    elif dispute is not None:
        parts.append(describe_dispute(dispute, when, reason=reason))
    if flagged and not reveal_missed and stale is None and (dispute is None or dispute.state != "upheld"):
        parts.append("flagged by the scoring rule")
    return "; ".join(parts) or None
