"""Read model of a trainer: its reliability now and what it is made of (live from the registry: rounds by outcome,
independent projects, distinct owners, wei earned, how much of it the bars of its projects hold reserved and how
much is available), its reliability history across projects (events; a round in which this market showed its
submission stale is marked so) and what it staked, earned and had flagged
in each project it joined, whether that project counts in its record (its owner is not its aggregator) and what
of its record that project's bar holds reserved (live)."""

from __future__ import annotations

from marketplace.adapters.chain.market import Outcome
from marketplace.web.schemas import ReliabilityPoint, TrainerProfile, TrainerProject, eth
from marketplace.web.services.context import MarketContext, account_address
from marketplace.web.services.projects import ProjectService
from marketplace.web.services.track_records import reserved_for, track_record


class TrainerService:
    """Trainers of one deployment."""

    def __init__(self, context: MarketContext, projects: ProjectService) -> None:
        self.context = context
        self.projects = projects

    def trainer(self, address: str) -> TrainerProfile:
        """A trainer's reliability and track record now (live) and its history across projects (events);
        :class:`NotFound` for a malformed address."""
        address = account_address(address)
        market, indexer = self.context.reads, self.context.indexer
        record = track_record(market, address)
        here, stale = indexer.market.address, indexer.stale_rounds_of(address)
        history = [
            ReliabilityPoint(
                market=r["market"], project_id=r["project_id"], round=r["round"],
                outcome=Outcome(r["outcome"]).name.lower(), reliability_bps=r["reliability_bps"], block=r["block"],
                tx_hash=r["tx_hash"], stale=r["market"] == here and (r["project_id"], r["round"]) in stale,
            )
            for r in indexer.reliability_history(address)
        ]  # fmt: skip
        projects = []
        for row in indexer.projects_of(address):
            detail = self.projects.detail(row["project_id"])
            me = next(m for m in detail.trainers if m.trainer == address)
            barred = detail.project.min_reliability_bps > 0  # only a bar reserves: no call for the others
            reserved = reserved_for(market, row["project_id"], address) if barred else 0
            projects.append(
                TrainerProject(
                    project_id=row["project_id"], status=detail.project.status, index=me.index, stake=me.stake,
                    stake_eth=me.stake_eth,
                    earned=me.earned, earned_eth=me.earned_eth, flagged_rounds=me.flagged_rounds,
                    counted=detail.project.owner != detail.project.aggregator, reserved=str(reserved),
                    reserved_eth=eth(reserved),
                )
            )  # fmt: skip
        return TrainerProfile(
            address=address,
            reliability_bps=market.reliability(address),
            contributed=record.contributed,
            flagged=record.flagged,
            missed=record.missed,
            track_record=record,
            history=history,
            projects=projects,
        )
