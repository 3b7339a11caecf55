"""Driving a round through its dispute window in tests: the aggregator's step announces rejections instead of
finalizing, the rejected trainers may dispute, and the round is finalized once the window has closed."""

from __future__ import annotations

from collections.abc import Sequence

from marketplace.demo.job import close_disputes
from marketplace.roles.aggregator import AggregatorNode, RejectionsAnnounced, RoundReport
from marketplace.roles.trainer import TrainerNode

__all__ = ["close_disputes", "step_through_disputes"]


def step_through_disputes(
    aggregator: AggregatorNode, pid: int, trainers: Sequence[TrainerNode] = ()
) -> RoundReport | None:
    """The aggregator's step; if it announced rejections instead of finalizing, each of ``trainers`` steps
    (a rejected one disputes), the clock moves past the window, and the aggregator steps again."""
    report = aggregator.step(pid)
    if isinstance(report, RejectionsAnnounced):
        for t in trainers:
            t.step(pid)
        close_disputes(aggregator.market, pid)
        report = aggregator.step(pid)
    assert not isinstance(report, RejectionsAnnounced)
    return report
