"""Read model of an account: the projects it owns, joined and aggregates (index), what it earned, is owed and
withdrew in each (index, as the project page computes it), what it can withdraw now (live, ``withdrawable``), and
its reliability with the track record and history behind it (live registry and index, as the trainer page shows
them), and its rejection bonds (:mod:`~marketplace.web.services.bonds`: its credit live, what it withdrew, what it
posted as an aggregator that is still held), which are not part of any project's sums.

:func:`account_project` and :func:`account_view` are pure: they put what was read together.
:class:`AccountService` reads it.
"""

from __future__ import annotations

from marketplace.web.account_schemas import AccountBonds, AccountProject, AccountView, Role
from marketplace.web.schemas import ProjectDetail, ReliabilityPoint, TrackRecord, eth
from marketplace.web.services.bonds import BondService
from marketplace.web.services.context import MarketContext, account_address
from marketplace.web.services.projects import ProjectService
from marketplace.web.services.trainers import TrainerService


def aggregator_earned(detail: ProjectDetail) -> int:
    """Wei of the aggregator fee earned so far: the fee of the rounds finalized, as the contract pays it
    (``aggregatorFee * roundsDone / rounds``, rounded down)."""
    p = detail.project
    return int(p.aggregator_fee) * p.rounds_done // p.rounds


def account_project(address: str, detail: ProjectDetail, withdrawn: int, withdrawable: int) -> AccountProject:
    """``address``'s part in the project of ``detail``: its roles, what it earned by work (trainer rewards,
    aggregator fee), what the project owes it once settled (its payout), what it ``withdrew`` and what is
    ``withdrawable`` now (wei). ValueError if ``address`` has no role in the project."""
    p = detail.project
    roles: list[Role] = []
    earned = 0
    if p.owner == address:
        roles.append("owner")
    if p.aggregator == address:
        roles.append("aggregator")
        earned += aggregator_earned(detail)
    member = next((m for m in detail.trainers if m.trainer == address), None)
    if member is not None:
        roles.append("trainer")
        earned += int(member.earned)
    if not roles:
        raise ValueError(f"{address} has no role in project {p.project_id}")
    entitled = sum(int(pay.entitled) for pay in detail.payouts if pay.account == address)
    return AccountProject(
        project_id=p.project_id, status=p.status, model_name=p.model_name, roles=roles,
        earned=str(earned), earned_eth=eth(earned), entitled=str(entitled), entitled_eth=eth(entitled),
        withdrawn=str(withdrawn), withdrawn_eth=eth(withdrawn),
        withdrawable=str(withdrawable), withdrawable_eth=eth(withdrawable),
        flagged_rounds=member.flagged_rounds if member else 0,
        counted=(p.owner != p.aggregator) if member else None,
    )  # fmt: skip


def account_view(
    address: str,
    projects: list[AccountProject],
    reliability_bps: int,
    track_record: TrackRecord,
    history: list[ReliabilityPoint],
    bonds: AccountBonds,
) -> AccountView:
    """The account page of ``address`` from its ``projects`` (any order; shown newest first), with the totals
    and the lists of project ids per role, and its ``bonds`` (apart from the projects' totals)."""
    ordered = sorted(projects, key=lambda p: p.project_id, reverse=True)
    earned = sum(int(p.earned) for p in ordered)
    withdrawable = sum(int(p.withdrawable) for p in ordered)
    return AccountView(
        address=address,
        owned=[p.project_id for p in ordered if "owner" in p.roles],
        joined=[p.project_id for p in ordered if "trainer" in p.roles],
        aggregated=[p.project_id for p in ordered if "aggregator" in p.roles],
        projects=ordered,
        earned=str(earned), earned_eth=eth(earned),
        withdrawable=str(withdrawable), withdrawable_eth=eth(withdrawable),
        reliability_bps=reliability_bps, track_record=track_record, history=history, bonds=bonds,
    )  # fmt: skip


class AccountService:
    """Accounts of one deployment."""

    def __init__(
        self, context: MarketContext, projects: ProjectService, trainers: TrainerService, bonds: BondService
    ) -> None:
        self.context = context
        self.projects = projects
        self.trainers = trainers
        self.bonds = bonds

    def project_ids(self, address: str) -> list[int]:
        """Ids of the projects ``address`` (checksummed) owns, aggregates or joined, from the index."""
        indexer = self.context.indexer
        ids = {r["project_id"] for r in indexer.projects() if address in (r["owner"], r["aggregator"])}
        ids |= {r["project_id"] for r in indexer.projects_of(address)}
        return sorted(ids)

    def account(self, address: str) -> AccountView:
        """``address``'s account; :class:`NotFound` for a malformed address. One ``withdrawable`` call per
        project, the reliability and track record live (as the trainer page reads them), its bonds
        (:meth:`BondService.account_bonds`: the credit live)."""
        address = account_address(address)
        market, indexer = self.context.market, self.context.indexer
        parts = []
        for pid in self.project_ids(address):
            withdrawn = sum(int(w["amount"]) for w in indexer.withdrawals(pid) if w["account"] == address)
            parts.append(
                account_project(address, self.projects.detail(pid), withdrawn, market.withdrawable(pid, address))
            )
        profile = self.trainers.trainer(address)
        bonds = self.bonds.account_bonds(address)
        return account_view(address, parts, profile.reliability_bps, profile.track_record, profile.history, bonds)
