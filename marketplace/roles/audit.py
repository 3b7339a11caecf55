"""``marketplace audit``: anyone re-checks a finalized round from public data only.

For every submission of the round it downloads the update from IPFS, recomputes its committed row
and Poseidon commitment and compares it with what the trainer committed on chain; then it
recomputes the paying computation (flags and scores, the circuit's integers) with the same code
the aggregator runs and compares it with what was recorded on chain, including which updates the
aggregator rejected (the one thing the proof cannot cover: see ``TrainingMarket.finalizeRound``).
"""

from __future__ import annotations

from dataclasses import dataclass

from marketplace.adapters.chain.market import MarketClient
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.round.collect import collect_round
from marketplace.round.score import score_round


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

    @property
    def agrees(self) -> bool:
        return (
            self.recorded_flag == self.recomputed_flag
            and self.recorded_score == self.recomputed_score
            and self.recorded_rejected == bool(self.problem)
        )


@dataclass(frozen=True)
class AuditReport:
    project_id: int
    round: int
    finalized: bool
    trainers: list[TrainerAudit]

    @property
    def agrees(self) -> bool:
        """True when the round is finalized and every recorded flag and score was recomputed exactly."""
        return self.finalized and all(t.agrees for t in self.trainers)

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
        )
        for i, t in enumerate(inputs.trainers)
    ]
    return AuditReport(project_id, round_, recorded is not None, lines)
