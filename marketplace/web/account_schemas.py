"""JSON shape of an account's page (``GET /api/accounts/{address}``): every project it owns, joined or
aggregates, what it earned, is owed, withdrew and can withdraw now in each, and its reliability with the track
record and history behind it. Amounts are wei as decimal strings, each with its exact ETH twin (``*_eth``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from marketplace.web.schemas import Eth, ReliabilityPoint, TrackRecord, TxStep, Wei

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


class AccountBondRound(BaseModel):
    """A round whose rejection bonds concern the account: as the aggregator that posted them, or as a trainer whose
    bond reimbursed its dispute's gas."""

    project_id: int
    round: int
    role: Literal["aggregator", "trainer"]
    posted: Wei = Field(
        description="wei of bonds: those the aggregator posted for the round; for a trainer, its rejection's bond"
    )
    posted_eth: Eth
    credited: Wei = Field(
        description="wei of them credited to the account: returned to the aggregator, reimbursed to the trainer"
    )
    credited_eth: Eth
    held: Wei = Field(
        description="wei of the aggregator's bonds still held for the round (0 for a trainer): returned to it once the "
        "round's dispute window is over"
    )
    held_eth: Eth
    summary: str = Field(description="the round's bonds as they concern the account, in words")


class AccountBonds(BaseModel):
    """The account's rejection bonds: its credit (withdrawable now, over every project), what it withdrew, the bonds
    it posted as an aggregator that are still held, and the transactions that withdraw them."""

    address: str
    credit: Wei = Field(description="wei of bonds credited to it, withdrawable now (live bondCredit)")
    credit_eth: Eth
    withdrawn: Wei = Field(description="wei of bond credits it withdrew so far (BondWithdrawn)")
    withdrawn_eth: Eth
    held: Wei = Field(description="wei of the bonds it posted as an aggregator still held for their rounds")
    held_eth: Eth
    reclaimable: Wei = Field(
        description="wei of those held whose rounds' dispute windows are over: returned to its credit by reclaimBonds "
        "(live)"
    )
    reclaimable_eth: Eth
    rounds: list[AccountBondRound] = Field(description="the rounds whose bonds concern it, oldest first")
    withdraw_steps: list[TxStep] = Field(
        description="the transactions that withdraw its bonds: the reclaimable rounds' returned, then its credit"
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
    bonds: AccountBonds = Field(description="its rejection bonds: credit, withdrawn, held (not in the projects' sums)")
