"""Shapes of the JSON API (and of what the HTML templates render), with one unit per kind of value, in and out:

* **amounts**: every amount ``<name>`` is wei as a decimal string (amounts overflow JavaScript numbers), beside
  ``<name>_eth``, the same amount in ETH, exact, as a decimal string; a request takes either;
* **percentages**: basis points, integers (``*_bps``; 1 bps = 0.01 %, 10,000 = 100 %), in and out; the one
  fraction is a round's ``accuracy``, the aggregator's own figure (0 to 1) from its proof document;
* **cosines**: floats from -1 to 1 (the rule's statistics behind what a round's owner's reference changed);
* **periods**: seconds (``*_period``), in and out; points in time: unix seconds (``*_deadline``, ``now``);
* **lists**: paginated (:class:`Paged`: ``items``, ``total``, ``limit``, ``offset``).

Request bodies are at the end; they are strict (:class:`StrictBody`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from marketplace.protocol.model_card import ModelCard

WEI_PER_ETH = Decimal(10**18)


def eth(wei: int | str) -> str:
    """``wei`` in ETH, without trailing zeros (exact)."""
    text = f"{Decimal(int(wei)) / WEI_PER_ETH:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def to_bps(fraction: float) -> int:
    """A fraction (0.6667) in basis points (6667), rounded to the nearest."""
    return round(fraction * 10_000)


#: An amount in wei (a decimal string) and the same amount in ETH (exact, a decimal string).
Wei = Annotated[str, Field(pattern=r"^[0-9]+$", description="wei, a decimal string")]
Eth = Annotated[str, Field(description="the same amount in ETH, exact, a decimal string")]
#: A percentage in basis points (1 bps = 0.01 %).
Bps = Annotated[int, Field(ge=0, le=10_000, description="basis points (1 bps = 0.01 %, 10000 = 100 %)")]
#: A period in seconds; a point in time in unix seconds.
Seconds = Annotated[int, Field(ge=0, description="seconds")]
UnixTime = Annotated[int, Field(description="unix time, seconds")]

T = TypeVar("T")


class Paged(BaseModel, Generic[T]):
    """One page of a list: ``items`` from position ``offset`` (at most ``limit`` of them) of ``total``."""

    items: list[T]
    total: int = Field(description="how many there are in all (after the filters)")
    limit: int = Field(description="the most items a page holds")
    offset: int = Field(description="the position of the first item in the whole list (from 0)")


class Status(BaseModel):
    """Where the app reads from and how far its index got."""

    network: str
    chain_id: int
    rpc_url: str = Field(description="the chain's RPC endpoint, credentials (userinfo, API keys) replaced by ***")
    market: str
    registry: str
    indexed_block: int
    head_block: int
    ipfs: bool
    skipped_events: int = Field(
        default=0, description="events the index skipped (undecodable, or values the market cannot emit): logged"
    )


class ModelInfo(BaseModel):
    name: str
    description: str


class ProjectSummary(BaseModel):
    project_id: int
    status: str = Field(description="open, training, finished or cancelled")
    owner: str
    aggregator: str
    verifier: str
    model_name: str
    reward_budget: Wei = Field(description="wei paid to trainers over all rounds, a decimal string")
    reward_budget_eth: Eth
    aggregator_fee: Wei = Field(description="wei paid to the aggregator over all rounds, a decimal string")
    aggregator_fee_eth: Eth
    stake: Wei = Field(description="wei each trainer deposits to join, a decimal string")
    stake_eth: Eth
    rounds: int
    rounds_done: int
    min_trainers: int
    max_trainers: int
    trainer_count: int
    min_reliability_bps: Bps = Field(description="the reliability a trainer needs to join, basis points")
    slash_bps: Bps = Field(description="the part of its stake a trainer loses per flagged round, basis points")
    join_deadline: UnixTime
    submission_period: Seconds = Field(description="seconds per round for commits (the commit phase)")
    reveal_period: Seconds = Field(description="seconds after the commit phase closes for reveals")
    aggregation_period: Seconds = Field(description="seconds after the reveal deadline to finalize")
    initial_model_cid: str
    latest_model_cid: str
    created_block: int
    created_tx: str


#: Where a trainer's rejection stands (:class:`marketplace.web.indexer.Dispute`): ``announced`` (the round is
#: open: the trainer may dispute until the deadline), ``disputed`` (it published its committed row: scored on
#: it), ``upheld`` (finalized as rejected) or ``withdrawn`` (announced, then not rejected at finalization).
DisputeStateName = Literal["announced", "disputed", "upheld", "withdrawn"]


class TrainerBond(BaseModel):
    """The rejection bond the aggregator posted for one trainer's announced rejection, and where it went: the part
    reimbursed to the trainer for its dispute's gas (``BondAwarded``), the rest returned to the aggregator
    (``BondReturned``, once the round's dispute window is over) or still held."""

    bond: Wei = Field(description="wei the aggregator posted for this rejection (the market's rejectionBond)")
    bond_eth: Eth
    reimbursed: Wei = Field(
        description="wei of the bond credited to the trainer for its dispute's gas (0 unless it disputed)"
    )
    reimbursed_eth: Eth
    returned: Wei | None = Field(
        default=None,
        description="wei of the bond credited back to the aggregator (the bond less the reimbursement); null while the "
        "round's bonds are still held",
    )
    returned_eth: Eth | None = None
    summary: str = Field(description="the bond and where it went, in words")


class StaleShown(BaseModel):
    """A trainer's submission shown stale on chain (``StaleChallenged``, ``MarketDisputes.challengeStale``): its
    revealed row nearly copies a row revealed in an earlier round of the project, so it is rejected beyond dispute
    (unpaid, flagged, slashed), and the challenger was credited its gas out of the trainer's stake."""

    earlier_round: int = Field(description="the earlier round in which the copied row was revealed")
    author: int | None = Field(
        description="the index of the trainer that revealed the copied row; null: the owner's reference row"
    )
    author_address: str | None = Field(description="that trainer's address; null for the owner's reference")
    own: bool = Field(description="the copied row is the trainer's own earlier row")
    challenger: str = Field(description="the account that showed the copy on chain")
    refund: Wei = Field(description="wei taken from the trainer's stake and credited to the challenger for its gas")
    refund_eth: Eth
    tx_hash: str = Field(description="the challenge's transaction")
    summary: str = Field(description="the challenge in words")


class RoundBonds(BaseModel):
    """The rejection bonds of one round (``MarketDisputes``, from the index): posted by the aggregator with its
    announcement, one per rejected trainer; reimbursed to the trainers that disputed (their disputes' gas, at most
    their bonds); returned to the aggregator once the round's dispute window is over (``reclaimBonds``); the rest
    held. ``posted = reimbursed + returned + held``."""

    round: int
    aggregator: str
    rejections: int = Field(description="rejections the aggregator announced in the round, a bond each")
    bond: Wei = Field(description="wei posted per rejection")
    bond_eth: Eth
    posted: Wei = Field(description="wei posted for the round's rejections (BondPosted)")
    posted_eth: Eth
    reimbursed: Wei = Field(description="wei reimbursed to disputing trainers for their disputes' gas (BondAwarded)")
    reimbursed_eth: Eth
    returned: Wei = Field(description="wei credited back to the aggregator (BondReturned)")
    returned_eth: Eth
    held: Wei = Field(
        description="wei still held for the round: returned to the aggregator once its dispute window is over"
    )
    held_eth: Eth
    summary: str = Field(description="the round's bonds in words")


class TrainerEntry(BaseModel):
    """One trainer's part in one finalized round (commit, reveal, outcome)."""

    index: int
    trainer: str
    committed: bool = Field(description="committed a sealed submission in the round's commit phase")
    arrival: int | None = Field(description="position of its commit in the round (from 1): the round's order")
    submitted: bool = Field(description="revealed its committed update (UpdateSubmitted): it was scored")
    reveal_missed: bool = Field(
        description="committed and did not reveal in time (RevealMissed): treated as flagged and slashed"
    )
    update_cid: str | None
    commitment: str | None
    score: str = Field(description="the score the rule gave (an integer, a decimal string)")
    share_bps: Bps = Field(
        description="its share of the round's reward: score / sum of unflagged scores, basis points (0 when flagged)"
    )
    flagged: bool = Field(description="flagged by the rule, rejected, or a missed reveal: no reward, stake slashed")
    rejected: bool = Field(
        description="the aggregator rejected the submitted update (unavailable, malformed or not matching its "
        "commitment: its word, see SubmissionRejected); a rejected trainer is also flagged"
    )
    reward: Wei
    reward_eth: Eth
    slashed: Wei = Field(description="wei of its stake slashed in this round, a decimal string")
    slashed_eth: Eth
    dispute: DisputeStateName | None = Field(
        default=None,
        description="if the aggregator announced or made a rejection of this trainer in the round: where it stands "
        "(disputed: the trainer published its committed row and was scored on it; upheld: the rejection stands)",
    )
    dispute_deadline: int | None = Field(default=None, description="end of the dispute window (unix seconds)")
    reason: str | None = Field(
        default=None,
        description="why the trainer is flagged, rejected or disputed, in words (a rejection's cause is the "
        "aggregator's word from its proof document)",
    )
    admitted: bool = Field(
        default=False,
        description="unpaid, and its update is in the round's new model all the same: it agrees with the paid "
        "updates, clipped to their median norm (the aggregator's word from its proof document; `marketplace audit` "
        "recomputes it)",
    )
    screened: bool = Field(
        default=False,
        description="paid, and its update is not in the round's new model: its committed row points against the "
        "owner's reference, so the update is kept out; it is paid as the rule scores it (the aggregator's word from "
        "its proof document, shown only in a round whose owner revealed a reference; `marketplace audit` recomputes "
        "it)",
    )
    bond: TrainerBond | None = Field(
        default=None,
        description="if the aggregator announced this trainer's rejection with a bond: the bond and where it went",
    )
    stale: StaleShown | None = Field(
        default=None,
        description="if its submission was shown stale on chain (a near copy of a row revealed in an earlier round): "
        "which row, who showed it and what of its stake paid the challenger's gas; such a rejection cannot be "
        "disputed",
    )

    @property
    def share(self) -> float:
        """:attr:`share_bps` as a fraction (for the pages' charts)."""
        return self.share_bps / 10_000


class OpenRoundTrainer(BaseModel):
    """One trainer in the round open now."""

    index: int
    trainer: str
    committed: bool
    arrival: int | None = Field(description="position of its commit (from 1), if it committed")
    revealed: bool
    state: str = Field(
        description="in words: waiting to commit, committed (waiting to reveal), revealed, ...; and for a trainer "
        "whose rejection the aggregator announced, where its dispute stands"
    )
    dispute: DisputeStateName | None = Field(
        default=None, description="announced (may dispute until dispute_deadline) or disputed (published its row)"
    )
    bond: TrainerBond | None = Field(
        default=None, description="the bond the aggregator posted for this trainer's announced rejection, if any"
    )
    stale: StaleShown | None = Field(
        default=None,
        description="if its submission was shown stale on chain in this round: rejected beyond dispute (see "
        "TrainerEntry.stale)",
    )


class OpenRound(BaseModel):
    """The round open now (training projects): its commit-reveal phase, deadlines and who did what so far.

    ``phase`` is ``commit`` (sealed commits until ``commit_deadline`` or until every trainer committed, and the
    owner's reference in a project that expects one: ``awaits_reference`` while it is still to come),
    ``reveal`` (from ``reveal_opens`` until ``reveal_deadline``), ``aggregation`` (every committed trainer
    revealed, or the reveal deadline passed: the aggregator may finalize until ``aggregation_deadline``) or
    ``overdue`` (anyone may abandon). Times are unix seconds of the chain's clock."""

    round: int
    phase: Literal["commit", "reveal", "aggregation", "overdue"]
    summary: str = Field(description="the phase in words")
    now: int = Field(description="the chain's time (latest block) the phase is computed for")
    commit_deadline: int
    reveal_opens: int
    reveal_deadline: int
    aggregation_deadline: int
    commits: int
    reveals: int
    awaits_reference: bool = Field(
        default=False,
        description="the project expects its owner's reference row and the owner has not committed it in this round: "
        "the commit phase stays open after every trainer committed, until the owner commits or the commit deadline",
    )
    dispute_deadline: int | None = Field(
        default=None,
        description="if the aggregator announced rejections in this round: until when the rejected trainers may "
        "dispute them (the round is finalized only after it, or once every rejected trainer disputed)",
    )
    trainers: list[OpenRoundTrainer]


class RoundView(BaseModel):
    round: int
    model_cid: str
    proof_cid: str
    accuracy: float | None = Field(
        description="a fraction from 0 to 1, as published by the aggregator in the proof document (not proven)"
    )
    block: int
    tx_hash: str
    trainers: list[TrainerEntry]
    admitted: list[str] = Field(
        default_factory=list,
        description="the unpaid trainers whose update is in the new model (clipped, agreeing with the paid updates), "
        "in trainer order: the aggregator's word from its proof document, which `marketplace audit` recomputes",
    )
    screened: list[str] = Field(
        default_factory=list,
        description="the paid trainers whose update the owner's reference kept out of the new model (their committed "
        "row points against the reference row; paid as the rule scores them), in trainer order: the aggregator's "
        "word from its proof document, which `marketplace audit` recomputes; empty in a round whose owner revealed "
        "no reference (`referenceOf`), whatever the document says",
    )
    bonds: RoundBonds | None = Field(
        default=None, description="the rejection bonds of the round, if the aggregator announced rejections with bonds"
    )
    stale: list[str] = Field(
        default_factory=list,
        description="the trainers whose submission was shown stale on chain (StaleChallenged), in trainer order: "
        "rejected beyond dispute",
    )


class Payout(BaseModel):
    """What an account is entitled to from a project (once settled) and what it withdrew."""

    account: str
    roles: list[str]
    entitled: Wei
    entitled_eth: Eth
    withdrawn: Wei
    withdrawn_eth: Eth


class Member(BaseModel):
    index: int
    trainer: str
    stake: Wei
    stake_eth: Eth
    joined_block: int
    earned: Wei
    earned_eth: Eth
    slashed: Wei
    slashed_eth: Eth
    flagged_rounds: int
    stale_rounds: int = Field(
        default=0, description="finalized rounds in which its submission was shown stale (counted in flagged_rounds)"
    )


class AggregatorRecord(BaseModel):
    """An aggregator's track record over every project of this market, as the market counts it
    (``MarketLens.aggregatorRecord``, read live from the chain)."""

    rounds_finalized: int
    rejections: int = Field(description="submissions it announced as rejected")
    disputes_lost: int = Field(description="announced rejections whose trainer published its committed row")
    upheld: int = Field(description="announced rejections not disputed (those still in their window included)")
    overturned_bps: Bps | None = Field(
        description="disputes_lost / rejections: the share of its rejections overturned, basis points (None without "
        "rejections)"
    )
    summary: str = Field(description="the record in words")


class AggregatorProfile(BaseModel):
    """An aggregator: its track record and the projects of this market it aggregates."""

    address: str
    record: AggregatorRecord
    projects: list[int] = Field(description="ids of the projects that name it as their aggregator")


class ReliabilityBar(BaseModel):
    """What a project's reliability bar asks of a trainer (``min_reliability_bps > 0``): the reliability and an
    available record of ``required_earned`` wei (``TrainingMarket.requiredTrackRecord``: the budget per guaranteed
    trainer, ``minTrainers``, divided by the protocol fee rate), earned in independent projects and not reserved
    by another bar (``ReliabilityRegistry.availableOf``). Joining reserves it until the trainer withdraws; a round
    the trainer is flagged in spends it."""

    min_reliability_bps: Bps
    required_earned: Wei = Field(
        description="wei of record a trainer must have available (earned in independent projects, not reserved by "
        "another bar) to join; joining reserves it"
    )
    required_earned_eth: Eth
    protected: Wei = Field(
        description="the budget per guaranteed trainer (reward budget // minimum trainers, wei): what farming the "
        "bar burns at least"
    )
    protected_eth: Eth
    protocol_fee_bps: Bps
    summary: str = Field(description="the bar and why it asks for an earned record, in words")
    reservation_rule: str = Field(description="what joining does to the record (reserved, spent), in one sentence")


class ProjectDetail(BaseModel):
    project: ProjectSummary
    trainers: list[Member]
    rounds: list[RoundView]
    payouts: list[Payout]
    escrowed: Wei = Field(description="wei the market holds for the project (budget, fee, stakes), a decimal string")
    escrowed_eth: Eth
    settled: bool = Field(description="finished or cancelled: withdrawals are open")
    pending_submissions: int = Field(description="reveals in the round open now")
    pending_commits: int = Field(default=0, description="commits in the round open now")
    open_round: OpenRound | None = Field(
        default=None, description="training projects: the open round's phase, deadlines, commits and reveals"
    )
    aggregator_record: AggregatorRecord | None = Field(
        default=None, description="the project's aggregator's track record over this market (live from the chain)"
    )
    reliability_bar: ReliabilityBar | None = Field(
        default=None,
        description="what the project's reliability bar asks of a trainer (live from the chain); None without a bar",
    )
    model_card: ModelCard | None = Field(
        default=None,
        description="what is being trained (task, data, metric, license) as the owner wrote it in the initial "
        "weights' header on IPFS: untrusted plain text, each field cut to its length; null when not described",
    )
    model_card_state: Literal["described", "none", "missing", "unread"] = Field(
        default="unread",
        description="described (model_card is set); none (the initial weights carry no card that can be read); "
        "missing (the server's IPFS node did not deliver them); unread (not read yet, or the server has no IPFS node)",
    )
    bonds: list[RoundBonds] = Field(
        default_factory=list,
        description="the rejection bonds of every round the aggregator announced rejections in with bonds, oldest "
        "first (finalized, open or abandoned); not the project's escrow",
    )
    bonds_held: Wei = Field(default="0", description="wei of rejection bonds still held for the project's rounds")
    bonds_held_eth: Eth = "0"


class OwnerReference(BaseModel):
    """The project owner's reference row of a round as the market records it (``MarketLens.referenceOf``;
    docs/design/robust-reference.md): whether the owner committed one and revealed it, and its seal and row
    commitment. A revealed reference is what the round was scored and proven with."""

    project_id: int
    round: int
    committed: bool
    revealed: bool
    seal: str | None = Field(description="the seal the owner committed (0x hex), null if it committed none")
    commitment: str | None = Field(
        description="the reference row's commitment it revealed (0x hex; the verifier's h_ref), null if it revealed "
        "none: the round was scored by the rule without a reference"
    )
    status: str = Field(description="what this means for the round, in words")


class ReferenceMove(BaseModel):
    """One trainer whose pay the owner's reference changed: its score by the rule without the reference and as
    recorded (with it), its share of the round both ways, and the two cosines the rule decided on."""

    index: int = Field(description="the trainer's index in the project")
    trainer: str
    score_without: str = Field(
        description="the score the rule without the reference gives it (an integer, fixed point 2^13, a decimal string)"
    )
    score_with: str = Field(description="the score recorded on chain: the rule with the reference (a decimal string)")
    share_without_bps: Bps = Field(description="its share of the round's reward without the reference, basis points")
    share_with_bps: Bps = Field(
        description="its share of the round's reward as recorded (with the reference), basis points"
    )
    reference_cosine: float = Field(
        description="g: the cosine of its committed sketch to the reference's (positive: it agrees with the reference)"
    )
    typicality: float = Field(
        description="m: its median cosine to the other trainers; the reference may unpay only a trainer below the "
        "round's median of these (median_typicality)"
    )


class ReferenceChanges(BaseModel):
    """What the owner's revealed reference changed in a round's pay (docs/design/robust-reference.md, section 2),
    recomputed from public data: the revealed row (``ReferenceRevealed``, checked against ``referenceOf``) and the
    trainers' committed rows, made again from their revealed updates on IPFS and checked against their on-chain
    commitments (a row published in a dispute as it is on chain), the rule run with and without the reference. It
    never changes a flag, and a trainer paid both ways is paid the very same score; the others' shares move only
    because the round's total does."""

    state: Literal["none", "used", "ignored", "unavailable"] = Field(
        description="none: the owner revealed no reference, the round was scored by the rule alone; used: the "
        "reference decided the scores (unpaid and added say whom it moved, maybe nobody); ignored: revealed, and the "
        "rule set it aside (it did not side with most trainers, or would have paid nobody), so the round was paid as "
        "without it; unavailable: the rule without the reference cannot be recomputed from public data (see "
        "unavailable)"
    )
    summary: str = Field(description="what the reference changed, in words")
    unpaid: list[ReferenceMove] = Field(
        default_factory=list,
        description="unpaid by the reference: the trainers the rule without it pays and the recorded round does not",
    )
    added: list[ReferenceMove] = Field(
        default_factory=list,
        description="added by the reference: the trainers the recorded round pays and the rule without it does not",
    )
    median_typicality: float | None = Field(
        default=None, description="M: the round's median of the trainers' typicality (recomputed states only)"
    )
    reference_median: float | None = Field(
        default=None,
        description="m_r: the reference's median cosine to the trainers (recomputed states only); the rule uses the "
        "reference only if it is positive",
    )
    unavailable: str | None = Field(default=None, description="why it cannot be recomputed (state unavailable)")
    undecided: list[str] = Field(
        default_factory=list,
        description="state unavailable: the unflagged trainers the round paid nothing, each unpaid by the rule's "
        "own test or by the reference, which public data cannot tell apart",
    )


class RoundReference(OwnerReference):
    """A round's owner's reference as the market records it and what it changed in the round's pay."""

    effect: ReferenceChanges = Field(
        description="what the reference changed in the round's pay, recomputed from public data"
    )


class VerifyResult(BaseModel):
    """The verifier's answer to an ``eth_call`` of ``verifyRound`` with the round's on-chain values."""

    project_id: int
    round: int
    verifier: str
    valid: bool
    gas_estimate: int | None = None
    error: str | None = None
    proof_source: str | None = Field(default=None, description="where the proof bytes came from")
    proof_hash: str | None = None


class RoundProof(BaseModel):
    """The public values and proof of a round, to verify it yourself (e.g. from the browser).

    ``round_tag``, ``commitments``, ``scores``, ``flags`` and ``reference`` are exactly what ``finalizeRound``
    passed the verifier (``verifyRound``'s arguments before the proof; per-trainer values in arrival order);
    ``arrival_order[k]`` is the trainer index of position ``k``."""

    project_id: int
    round: int
    verifier: str
    round_tag: str = Field(
        description="the round's tag, keccak256(abi.encode(chainid, market, projectId, round)): "
        "the proof is valid with this tag only"
    )
    commitments: list[str]
    scores: list[str]
    flags: list[bool]
    reference: str = Field(
        description="the owner's revealed reference commitment (docs/design/robust-reference.md), 32 zero bytes "
        "for none: the rule without a reference"
    )
    proof: str
    proof_source: str
    arrival_order: list[int] = []


class JobCosts(BaseModel):
    """What creating a project costs its owner: ``payment`` (the transaction's value) = ``escrow`` (reward budget
    + aggregator fee, held by the market) + ``protocol_fee`` (``protocol_fee_bps`` of the budget, burned)."""

    escrow: Wei = Field(description="wei the market holds: reward budget + aggregator fee, a decimal string")
    escrow_eth: Eth
    protocol_fee: Wei = Field(description="wei burned at creation, a decimal string")
    protocol_fee_eth: Eth
    protocol_fee_bps: Bps = Field(description="the protocol fee's rate, basis points of the reward budget")
    payment: Wei = Field(description="wei the owner sends: escrow + protocol fee, a decimal string")
    payment_eth: Eth
    reliability_bar: ReliabilityBar | None = Field(
        default=None, description="what the job's reliability bar will ask of each trainer; None without a bar"
    )


class TxRequest(BaseModel):
    """A transaction for the user's wallet to sign: nothing here is signed by the server."""

    chain_id: int
    to: str
    data: str
    value: Wei = Field(description="wei the transaction sends, a decimal string")
    value_eth: Eth
    value_hex: str = Field(description="the same value in wei, 0x-hex (as wallets take it)")
    summary: str
    costs: JobCosts | None = Field(default=None, description="createProject only: what the value is made of")
    initial_model_cid: str | None = Field(
        default=None,
        description="createProject only: the initial weights the transaction names (with a model card, the given "
        "weights with the card in their header: a new CID, pinned to this server's IPFS node)",
    )


#: Project transactions anyone's wallet may send besides create and join (``POST /api/tx/{action}``).
Action = Literal["withdraw", "abandon", "start", "cancel"]
#: The transactions that withdraw what an account is owed: return a round's held rejection bonds to its aggregator
#: (``POST /api/tx/reclaim-bonds``), withdraw the account's bond credits (``POST /api/tx/withdraw-bonds``), withdraw
#: from a project (``POST /api/tx/withdraw``).
StepAction = Literal["reclaim-bonds", "withdraw-bonds", "withdraw"]


class TxStep(BaseModel):
    """One transaction of a withdrawal, in the order to send them: ``POST /api/tx/{action}`` with ``project_id``
    and ``round`` (where not null) and the sender gives it unsigned."""

    action: StepAction
    project_id: int | None = None
    round: int | None = None
    amount: Wei = Field(description="wei it moves: returned to the aggregator's credit, or paid to the sender")
    amount_eth: Eth
    summary: str


class ActionState(BaseModel):
    """Whether ``account`` may send ``action`` now: the chain's answer to an ``eth_call`` of it."""

    action: Action
    label: str
    allowed: bool
    reason: str | None = Field(default=None, description="why not (decoded from the contract's custom error)")


class ProjectActions(BaseModel):
    """What the connected account can do with a project now (live from the chain)."""

    project_id: int
    status: str
    account: str | None
    withdrawable: Wei = Field(description="wei the account could withdraw now (0 while the project runs)")
    withdrawable_eth: Eth
    aggregation_deadline: int | None = Field(
        default=None, description="training: after this time anyone may abandon the project"
    )
    actions: list[ActionState]
    bond_credit: Wei = Field(
        default="0",
        description="wei of rejection bonds credited to the account, over every project (live bondCredit): awarded for "
        "disputes it won, returned for its undisputed rejections",
    )
    bond_credit_eth: Eth = "0"
    withdraw_steps: list[TxStep] = Field(
        default_factory=list,
        description="the transactions that withdraw everything the account is owed here, in order: the project's "
        "bonds held for rounds whose dispute window is over returned (its aggregator only), its bond credits, its "
        "payout from the project (settled projects); what `marketplace project withdraw` does",
    )


class ModelInit(BaseModel):
    """Initial weights of a registered model, pinned to IPFS: the CID to post a job with."""

    cid: str
    model: str
    params: int = Field(description="number of parameters")
    seed: int


class TxStatus(BaseModel):
    hash: str
    status: str = Field(description="pending, confirmed or failed")
    block_number: int | None = None
    gas_used: int | None = None
    events: list[str] = Field(default_factory=list)
    project_id: int | None = Field(default=None, description="the project a createProject transaction created")
    error: str | None = Field(default=None, description="why it failed, in words")
    code: str | None = Field(default=None, description="the contract's custom error it failed with, if known")


class ReliabilityPoint(BaseModel):
    market: str
    project_id: int
    round: int
    outcome: str
    reliability_bps: Bps
    block: int
    tx_hash: str
    stale: bool = Field(
        default=False, description="its submission in this round was shown stale on chain (this market's projects)"
    )


class TrainerProject(BaseModel):
    project_id: int
    status: str
    index: int
    stake: Wei
    stake_eth: Eth
    earned: Wei
    earned_eth: Eth
    flagged_rounds: int
    counted: bool = Field(
        default=True,
        description="whether the project's rounds count in the trainer's track record (its owner is not its "
        "aggregator)",
    )
    reserved: Wei = Field(
        default="0",
        description="wei of the trainer's record this project's reliability bar holds reserved (``reservedOf``): 0 "
        "without a bar, after it withdrew, or once a flagged round spent it",
    )
    reserved_eth: Eth = "0"


class TrackRecord(BaseModel):
    """What a trainer's reliability is made of (``ReliabilityRegistry.trackRecordOf``, live from the chain):
    only rounds of independent projects (whose owner is not their aggregator) count. Of what it earned, the bars of
    the projects it is in hold ``reserved`` until it withdraws from them; the rest is ``available``
    (``availableOf``) for a new join."""

    contributed: int
    flagged: int
    missed: int
    rounds: int = Field(description="contributed + flagged + missed")
    projects: int = Field(description="independent projects taken part in")
    owners: int = Field(description="distinct owners of those projects")
    earned: Wei = Field(description="wei of rewards earned in those projects (less what flagged rounds spent)")
    earned_eth: Eth
    reserved: Wei = Field(
        description="wei of the earned record reserved by the bars of projects the trainer is in (earned - available)"
    )
    reserved_eth: Eth
    available: Wei = Field(
        description="wei of the earned record not reserved (``availableOf``): what a new bar's join is checked against"
    )
    available_eth: Eth
    summary: str = Field(description="the record in words")
    rule: str = Field(description="what counts, in one sentence")
    reservation_rule: str = Field(description="what joining a barred project does to the record, in one sentence")


class TrainerProfile(BaseModel):
    address: str
    reliability_bps: Bps = Field(description="the trainer's reliability now, basis points (newcomers: 5000)")
    contributed: int
    flagged: int
    missed: int
    track_record: TrackRecord
    history: list[ReliabilityPoint]
    projects: list[TrainerProject]


class Problem(BaseModel):
    """An error: a sentence for people (``detail``), what it is for programs (``code``), the field at fault if one
    is (``field``) and a sentence per field at fault (``errors``, words that follow the field's name)."""

    detail: str = Field(description="what went wrong, in a sentence that names the field or the action")
    code: str | None = Field(
        default=None,
        description="what went wrong, for programs: the contract's custom error (e.g. WrongStatus), or InvalidInput, "
        "NotFound, TooManyRequests, ChainUnavailable, ...",
    )
    field: str | None = Field(default=None, description="the field of the request at fault, if one is")
    errors: dict[str, str] = Field(default_factory=dict, description="field -> what is wrong with it")


# ---------------------------------------------------------------------------- request bodies


class StrictBody(BaseModel):
    """A JSON request body taken as typed: ``true`` is not the project id 1, nor ``"7"`` the seed 7."""

    model_config = ConfigDict(strict=True)


class ModelInitRequest(StrictBody):
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="seed of the deterministic initialization")


class ModelCardRequest(StrictBody):
    """A job's model card as the API takes it: each field optional, plain text (no ``<`` or ``>``, no control
    characters but line breaks in ``data``) within its length (:data:`marketplace.protocol.model_card.FIELDS`)."""

    task: str | None = Field(default=None, max_length=4_096, description="what the model learns to do")
    data: str | None = Field(default=None, max_length=4_096, description="the data trainers train on, its labels")
    metric: str | None = Field(default=None, max_length=4_096, description="how the model is evaluated")
    license: str | None = Field(default=None, max_length=4_096, description="the trained model's license")


class CreateProjectRequest(StrictBody):
    """A new job, in the API's units (amounts in wei or in ETH, percentages in basis points, periods in seconds),
    and who will sign it (to simulate the transaction). Each amount is given once: ``<name>`` (wei) or
    ``<name>_eth`` (ETH)."""

    model_name: str = Field(default="mlp", description="a registered model (GET /api/models)")
    rounds: int = Field(ge=1, le=1_000)
    min_trainers: int = Field(ge=1, le=64)
    max_trainers: int = Field(ge=1, le=64)
    reward_budget: str | None = Field(
        default=None, description="wei paid to trainers over all rounds, a decimal string"
    )
    reward_budget_eth: str | None = Field(default=None, description="the same in ETH, a decimal string")
    aggregator_fee: str | None = Field(default=None, description="wei for the aggregator (default 0), a decimal string")
    aggregator_fee_eth: str | None = Field(default=None, description="the same in ETH, a decimal string")
    stake: str | None = Field(default=None, description="wei each trainer deposits (default 0), a decimal string")
    stake_eth: str | None = Field(default=None, description="the same in ETH, a decimal string")
    aggregator: str = Field(description="who scores and finalizes the rounds (an address)")
    verifier: str | None = Field(
        default=None,
        description="default: the smallest approved verifier that proves something and fits max_trainers "
        "(else the first that fits: the test verifier on the local chain)",
    )
    join_period: int = Field(default=3_600, ge=60, le=31_536_000, description="seconds trainers may join")
    submission_period: int = Field(
        default=600, ge=300, le=31_536_000, description="seconds per round for commits (the commit phase)"
    )
    reveal_period: int = Field(default=600, ge=300, le=31_536_000, description="seconds per round for reveals")
    aggregation_period: int = Field(
        default=600, ge=300, le=31_536_000, description="seconds to finalize a round after its reveal deadline"
    )
    min_reliability_bps: int = Field(
        default=0, ge=0, le=10_000, description="the reliability a trainer needs to join, basis points"
    )
    slash_bps: int = Field(
        default=5_000,
        ge=0,
        le=10_000,
        description="the part of its stake a trainer loses per flagged round, basis points",
    )
    initial_model_cid: str = Field(description="IPFS CID of the initial weights (POST /api/models/{name}/init)")
    model_card: ModelCardRequest | None = Field(
        default=None,
        description="what is being trained: put into the initial weights' header, so the transaction names a new CID "
        "(answered as initial_model_cid)",
    )
    sender: str | None = Field(default=None, description="the wallet that will sign; the transaction is simulated")


class JoinRequest(StrictBody):
    project_id: int
    sender: str | None = Field(default=None, description="the trainer's wallet; the transaction is simulated")


class ReclaimBondsRequest(StrictBody):
    project_id: int
    round: int = Field(ge=0, le=2**32 - 1, description="the round whose held bonds go back to the aggregator")
    sender: str | None = Field(
        default=None, description="the wallet that will sign (anyone may); the transaction is simulated"
    )


class WithdrawBondsRequest(StrictBody):
    sender: str = Field(
        description="the wallet whose rejection bond credits are withdrawn; the transaction is simulated"
    )


class ActionRequest(StrictBody):
    project_id: int
    sender: str | None = Field(
        default=None, description="the wallet that will sign; the transaction is simulated (required to withdraw)"
    )
