"""JSON shape of an account's page (``GET /api/accounts/{address}``): every project it owns, joined or
aggregates, what it earned, is owed, withdrew and can withdraw now in each, and its reliability with the track
record and history behind it. Amounts are wei as decimal strings, each with its exact ETH twin (``*_eth``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from marketplace.web.schemas import ReliabilityPoint, TrackRecord

Role = Literal["owner", "aggregator", "trainer"]


class AccountProject(BaseModel):
    """One project the account has a role in, and its money in it."""

    project_id: int
    status: str
    model_name: str
    roles: list[Role] = Field(description="the account's roles in the project: owner, aggregator, trainer")
    earned: str = Field(
        description="wei earned by work: rewards of the rounds trained (trainer) plus the aggregator fee of the "
        "rounds finalized (aggregator); a refund or a stake returned is not earned"
    )
    earned_eth: str
    entitled: str = Field(
        description="wei the project owes the account once settled, before withdrawals (the contract's ``_owed``): "
        "earnings, stake less slashes, the owner's unspent budget and fee"
    )
    entitled_eth: str
    withdrawn: str = Field(description="wei withdrawn so far (``Withdrawn`` events)")
    withdrawn_eth: str
    withdrawable: str = Field(description="wei the account can withdraw now (live, ``withdrawable``)")
    withdrawable_eth: str
    flagged_rounds: int = Field(default=0, description="rounds the account was flagged in as a trainer")
    counted: bool | None = Field(
        default=None,
        description="trainers: whether the project counts in the track record (its owner is not its aggregator)",
    )


class AccountView(BaseModel):
    """An account across this market: its projects by role, its money, its reliability and how it was earned."""

    address: str
    owned: list[int] = Field(description="ids of the projects it created")
    joined: list[int] = Field(description="ids of the projects it joined as a trainer")
    aggregated: list[int] = Field(description="ids of the projects it is the aggregator of")
    projects: list[AccountProject] = Field(description="every project it has a role in, newest first")
    earned: str = Field(description="wei earned in all of them")
    earned_eth: str
    withdrawable: str = Field(description="wei it can withdraw now, in all of them")
    withdrawable_eth: str
    reliability_bps: int = Field(
        description="its reliability as a trainer now, basis points (live; 5000 for a newcomer)"
    )
    track_record: TrackRecord
    history: list[ReliabilityPoint] = Field(description="its reliability after each recorded round, oldest first")
