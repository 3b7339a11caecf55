"""What the project page and a round's page show beyond :class:`~marketplace.web.schemas.ProjectDetail`: the
rounds as a compact list (one line each), the contribution chart's figures and a round's neighbours.

The contribution chart stacks, for each trainer, what it earned in each round as a share of **all** the rewards
paid so far: a bar's height is the trainer's share of everything paid, each segment the part earned in one round
(so the bars of all trainers add up to 100 %, never to the number of rounds). A score is shown as the share of
the round's reward it earned; the raw integer is the rule's fixed-point score (``2**13``) and stays in the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marketplace.web.schemas import ProjectDetail, RoundView

#: What the contribution chart's value axis measures (the chart and its table say the same).
SHARE_AXIS = "share of all rewards paid so far (%)"


@dataclass(frozen=True)
class RoundLine:
    """One finalized round as the project page lists it."""

    round: int
    accuracy: float | None
    paid: int  # trainers with a reward
    flagged: int  # trainers flagged (rule, rejection or missed reveal)
    disputed: int  # rejections the trainer disputed
    stale: int  # submissions shown stale on chain (rejected beyond dispute; counted in flagged)
    reward: int  # wei paid to trainers in the round
    model_cid: str
    proof_cid: str


def round_lines(detail: ProjectDetail) -> list[RoundLine]:
    """The finalized rounds of ``detail``, newest first, one line each."""
    return [
        RoundLine(
            round=r.round, accuracy=r.accuracy, paid=sum(1 for e in r.trainers if int(e.reward) > 0),
            flagged=sum(1 for e in r.trainers if e.flagged),
            disputed=sum(1 for e in r.trainers if e.dispute == "disputed"),
            stale=sum(1 for e in r.trainers if e.stale), reward=sum(int(e.reward) for e in r.trainers),
            model_cid=r.model_cid, proof_cid=r.proof_cid,
        )
        for r in reversed(detail.rounds)
    ]  # fmt: skip


def contribution_chart(detail: ProjectDetail) -> dict[str, Any]:
    """The figures app.js draws (``rounds``, ``accuracy``, ``trainers``, ``shares``): ``shares[r][i]`` is trainer
    ``i``'s reward in round ``r`` as a fraction of all the rewards paid so far (0 when nothing was paid)."""
    total = sum(int(e.reward) for r in detail.rounds for e in r.trainers)
    by_index = {m.index: n for n, m in enumerate(detail.trainers)}
    shares = []
    for r in detail.rounds:
        row = [0.0] * len(detail.trainers)
        for e in r.trainers:
            if e.index in by_index and total:
                row[by_index[e.index]] = int(e.reward) / total
        shares.append(row)
    return {
        "rounds": [r.round for r in detail.rounds],
        "accuracy": [r.accuracy for r in detail.rounds],
        "trainers": [f"#{m.index} {m.trainer[:6]}…{m.trainer[-4:]}" for m in detail.trainers],
        "shares": shares,
        "axis": SHARE_AXIS,
    }


def total_shares(detail: ProjectDetail) -> dict[int, float]:
    """Trainer index -> its share of all the rewards paid so far (the chart's bar heights)."""
    chart = contribution_chart(detail)
    return {m.index: sum(row[n] for row in chart["shares"]) for n, m in enumerate(detail.trainers)}


def project_context(detail: ProjectDetail) -> dict[str, Any]:
    """The project page's template context."""
    return {
        "d": detail, "p": detail.project, "charts": contribution_chart(detail), "lines": round_lines(detail),
        "totals": total_shares(detail), "share_axis": SHARE_AXIS,
        "latest": detail.rounds[-1] if detail.rounds else None,
        "live": detail.project.status in ("open", "training"),
    }  # fmt: skip


def neighbours(detail: ProjectDetail, round_: int) -> tuple[RoundView | None, RoundView | None]:
    """The finalized rounds before and after ``round_`` (None at either end)."""
    done = {r.round: r for r in detail.rounds}
    return done.get(round_ - 1), done.get(round_ + 1)
