"""Typed adapter of the TrainingMarket and ReliabilityRegistry contracts.

This is the only module that knows the contracts' function names and argument order; everything
else (CLI, trainer, aggregator, web app) talks to :class:`MarketClient` in Python terms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from web3.contract import Contract
from web3.exceptions import BlockNotFound

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import compile_contracts
from marketplace.adapters.chain.errors import ContractRevert
from marketplace.protocol.ordering import EMPTY_COMMITMENT, arrival_order
from marketplace.protocol.seal import RoundAddress
from marketplace.protocol.signed_commit import SignedCommit

MAX_TRAINERS = 64
MAX_ROUNDS = 1000
MAX_CID_LENGTH = 128
#: Shortest commit, reveal and aggregation period in seconds (``TrainingMarket.MIN_PHASE_PERIOD``).
MIN_PHASE_PERIOD = 300
#: ``TrainingMarket.PROTOCOL_FEE_BPS``: the share of a reward budget burned when a project is created.
PROTOCOL_FEE_BPS = 200
#: ``TrainingMarket.MAX_MODEL_NAME_LENGTH``: the longest model name, in UTF-8 bytes.
MAX_MODEL_NAME_LENGTH = 64


def check_model_name(value: str) -> str:
    """``value`` if ``createProject`` accepts it as a model name (1 to :data:`MAX_MODEL_NAME_LENGTH`
    bytes of UTF-8); raises ValueError otherwise."""
    size = len(value.encode("utf-8"))
    if not 1 <= size <= MAX_MODEL_NAME_LENGTH:
        raise ValueError(f"is {size} bytes long; a model name has 1 to {MAX_MODEL_NAME_LENGTH} bytes")
    return value


class ProjectStatus(IntEnum):
    """Mirror of ``TrainingMarket.Status``."""

    OPEN = 0
    TRAINING = 1
    FINISHED = 2
    CANCELLED = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class Outcome(IntEnum):
    """Mirror of ``IReliabilityRegistry.Outcome``."""

    CONTRIBUTED = 0
    FLAGGED = 1
    MISSED = 2


class ProjectConfig(BaseModel):
    """Parameters of a new project, validated before anything is sent to the chain.

    Amounts are in wei, periods in seconds. ``reward_budget + aggregator_fee`` is escrowed (:attr:`escrow`);
    the owner also pays the protocol fee (:attr:`protocol_fee`, burned): it sends :attr:`payment`.
    """

    model_config = ConfigDict(frozen=True)

    aggregator: str
    verifier: str
    reward_budget: int = Field(gt=0, lt=2**96)
    aggregator_fee: int = Field(default=0, ge=0, lt=2**96)
    stake: int = Field(default=0, ge=0, lt=2**96)
    rounds: int = Field(ge=1, le=MAX_ROUNDS)
    min_trainers: int = Field(ge=1, le=MAX_TRAINERS)
    max_trainers: int = Field(ge=1, le=MAX_TRAINERS)
    min_reliability_bps: int = Field(default=0, ge=0, le=10_000)
    slash_bps: int = Field(default=5_000, ge=0, le=10_000)
    join_period: int = Field(default=3600, gt=0, lt=2**32)
    submission_period: int = Field(default=600, ge=MIN_PHASE_PERIOD, lt=2**32)
    reveal_period: int = Field(default=600, ge=MIN_PHASE_PERIOD, lt=2**32)
    aggregation_period: int = Field(default=600, ge=MIN_PHASE_PERIOD, lt=2**32)
    model_name: str = Field(min_length=1, max_length=MAX_MODEL_NAME_LENGTH)
    initial_model_cid: str = Field(min_length=1, max_length=MAX_CID_LENGTH)

    @field_validator("aggregator", "verifier")
    @classmethod
    def _checksum(cls, value: str) -> str:
        return to_checksum_address(value)

    @field_validator("model_name")
    @classmethod
    def _model_name(cls, value: str) -> str:
        return check_model_name(value)  # the contract counts bytes, not characters

    @model_validator(mode="after")
    def _trainer_bounds(self) -> ProjectConfig:
        if self.min_trainers > self.max_trainers:
            raise ValueError(f"min_trainers ({self.min_trainers}) exceeds max_trainers ({self.max_trainers})")
        return self

    @property
    def escrow(self) -> int:
        """What the market holds for the project: the reward budget plus the aggregator's fee."""
        return self.reward_budget + self.aggregator_fee

    @property
    def protocol_fee(self) -> int:
        """``PROTOCOL_FEE_BPS`` of the reward budget, rounded up: burned at creation (the market derives the
        budget from what it is sent as ``(value - aggregator_fee) * 10000 / 10200``, rounded down, which gives
        back exactly ``reward_budget``)."""
        return -(-self.reward_budget * PROTOCOL_FEE_BPS // 10_000)

    @property
    def required_track_record(self) -> int:
        """What ``TrainingMarket.requiredTrackRecord`` will answer for this project: 0 without a reliability bar,
        else the budget per guaranteed trainer (``min_trainers``) over the protocol fee rate (wei earned in
        independent projects, not reserved by another bar)."""
        if self.min_reliability_bps == 0:
            return 0
        return self.reward_budget * 10_000 // (self.min_trainers * PROTOCOL_FEE_BPS)

    @property
    def payment(self) -> int:
        """What the owner sends to create the project: escrow plus protocol fee."""
        return self.escrow + self.protocol_fee

    def as_abi_tuple(self) -> tuple[Any, ...]:
        return (
            self.aggregator,
            self.verifier,
            self.aggregator_fee,
            self.stake,
            self.rounds,
            self.min_trainers,
            self.max_trainers,
            self.min_reliability_bps,
            self.slash_bps,
            self.join_period,
            self.submission_period,
            self.reveal_period,
            self.aggregation_period,
            self.model_name,
            self.initial_model_cid,
        )


@dataclass(frozen=True)
class Project:
    """A project as the chain reports it."""

    project_id: int
    owner: str
    aggregator: str
    verifier: str
    status: ProjectStatus
    reward_budget: int
    aggregator_fee: int
    stake: int
    rounds: int
    current_round: int
    min_trainers: int
    max_trainers: int
    trainer_count: int
    min_reliability_bps: int
    slash_bps: int
    join_deadline: int
    round_start: int
    submission_period: int
    reveal_period: int
    aggregation_period: int
    commits: int
    submissions: int
    total_earned: int
    slashed: int
    model_name: str
    latest_model_cid: str
    #: Every round's commit phase waits for the owner's reference (``expectReference``: set while the project is
    #: open, fixed once it trains); False on a market without the setting.
    reference_expected: bool = False

    @property
    def rounds_done(self) -> int:
        return self.current_round


@dataclass(frozen=True)
class TrainerInfo:
    """A trainer's standing in one project."""

    member: bool
    index: int
    stake_left: int
    earned: int
    withdrawn: bool


@dataclass(frozen=True)
class Commit:
    """One ``UpdateCommitted`` event: a trainer's sealed submission, in arrival order ``arrival`` (from 1)."""

    project_id: int
    round: int
    trainer: str
    seal: bytes
    arrival: int
    note: bytes
    block_number: int


@dataclass(frozen=True)
class Submission:
    """One ``UpdateSubmitted`` event: a revealed submission, in the arrival position of its commit."""

    project_id: int
    round: int
    trainer: str
    cid: str
    commitment: bytes
    arrival: int
    block_number: int
    log_index: int


@dataclass(frozen=True)
class Opening:
    """A trainer's opening of its seal (``TrainingMarket.Opening``, for ``revealBatch``): what it committed to
    (``cid``, 32-byte ``commitment``) and the seal's 32-byte ``salt``. It opens that trainer's seal only, in one
    round of one project of one market (:func:`marketplace.protocol.seal.seal`)."""

    trainer: str
    cid: str
    commitment: bytes
    salt: bytes

    def __post_init__(self) -> None:
        if len(self.commitment) != 32 or len(self.salt) != 32:
            raise ValueError("a commitment and a salt are 32 bytes each")

    def as_abi_tuple(self) -> tuple[str, str, bytes, bytes]:
        return (to_checksum_address(self.trainer), self.cid, bytes(self.commitment), bytes(self.salt))


@dataclass(frozen=True)
class RoundDeadlines:
    """The open round's deadlines (unix seconds; all 0 unless training), see ``MarketLens.roundDeadlines``."""

    commit: int  # commits until then (or until every trainer committed, and the owner's reference if expected)
    reveal_opens: int  # reveals from then (when the commit phase closed early, if it did; else ``commit + 1``)
    reveal: int  # reveals until then
    aggregation: int  # finalization until then, once every committed trainer revealed or ``reveal`` passed


@dataclass(frozen=True)
class Rejections:
    """The open round's announced rejections (``MarketLens.rejections``), by trainer address."""

    rejected: list[str]  # announced and not disputed: these may be rejected at finalization
    disputed: list[str]  # rejected trainers that published their committed row
    dispute_deadline: int  # end of the dispute window (unix seconds; 0: nothing announced this round)

    @property
    def announced(self) -> bool:
        return self.dispute_deadline != 0


@dataclass(frozen=True)
class RejectionAnnouncement:
    """One ``RejectionAnnounced`` event."""

    project_id: int
    round: int
    trainer: str
    dispute_deadline: int
    block_number: int


@dataclass(frozen=True)
class DisputedRow:
    """One ``RejectionDisputed`` event: a rejected trainer's published committed row (integers at scale 2^13,
    unchecked: parse with :func:`marketplace.protocol.commitment.row_from_ints`)."""

    project_id: int
    round: int
    trainer: str
    row: tuple[int, ...]
    block_number: int


#: ``MarketDisputes.REFERENCE_AUTHOR``: a stale challenge's earlier row is the owner's reference of its round.
REFERENCE_AUTHOR = 2**256 - 1


@dataclass(frozen=True)
class StaleEvidence:
    """What ``MarketDisputes.challengeStale`` is shown: ``trainer``'s committed row of the open round (``row``,
    integers at scale 2^13, with its row ``proof``) and an earlier row of the project it nearly copies
    (``earlier_row`` with ``earlier_proof``), revealed in ``earlier_round`` by trainer number ``author`` (its index
    in the trainer list; :data:`REFERENCE_AUTHOR`: the owner's reference), with that round's ``commitments`` in
    trainer order (:meth:`MarketClient.round_commitments`; empty for the reference)."""

    trainer: str
    row: tuple[int, ...]
    proof: bytes
    earlier_round: int
    author: int
    commitments: tuple[bytes, ...]
    earlier_row: tuple[int, ...]
    earlier_proof: bytes

    def as_abi_tuple(self) -> tuple[Any, ...]:
        """The ``StaleEvidence`` struct as the ABI encoder takes it."""
        return (
            to_checksum_address(self.trainer),
            [int(v) for v in self.row],
            self.proof,
            int(self.earlier_round),
            int(self.author),
            list(self.commitments),
            [int(v) for v in self.earlier_row],
            self.earlier_proof,
        )


@dataclass(frozen=True)
class StaleChallenge:
    """One ``StaleChallenged`` event: ``trainer``'s submission in ``round`` was shown to nearly copy the row behind
    ``earlier`` revealed in ``earlier_round`` by trainer number ``author``; it is rejected beyond dispute, and
    ``challenger`` was credited ``award`` wei of the trainer's stake for its gas."""

    project_id: int
    round: int
    trainer: str
    challenger: str
    earlier_round: int
    author: int
    earlier: bytes
    award: int


@dataclass(frozen=True)
class ReferenceRecord:
    """The owner's reference row of one round as the market keeps it (``MarketLens.referenceOf``): the seal it
    committed and the row commitment it revealed (32 zero bytes for none)."""

    seal: bytes
    commitment: bytes

    @property
    def committed(self) -> bool:
        return self.seal != EMPTY_COMMITMENT

    @property
    def revealed(self) -> bool:
        return self.commitment != EMPTY_COMMITMENT


@dataclass(frozen=True)
class RevealedReference:
    """One ``ReferenceRevealed`` event: the owner's reference row of a round, integers at scale 2^13 (untrusted:
    parse with :func:`marketplace.protocol.commitment.row_from_ints` and check against the recorded commitment)."""

    project_id: int
    round: int
    commitment: bytes
    row: tuple[int, ...]
    block_number: int


@dataclass(frozen=True)
class AggregatorRecord:
    """An aggregator's track record over every project of the market (``aggregatorRecord``)."""

    rounds: int  # rounds it finalized
    rejected: int  # submissions it announced as rejected
    disputes_lost: int  # rejections whose trainer published its committed row
    upheld: int  # rejections that stood (at finalization or abandonment)

    @property
    def withdrawn(self) -> int:
        """Announced rejections that neither stood nor were disputed (withdrawn at finalization, or pending)."""
        return self.rejected - self.disputes_lost - self.upheld


@dataclass(frozen=True)
class TrackRecord:
    """What a trainer's reliability is made of (``ReliabilityRegistry.trackRecordOf``): only rounds of
    independent projects (owner is not the aggregator) count."""

    contributed: int
    flagged: int
    missed: int
    projects: int  # projects taken part in
    owners: int  # distinct owners of those projects
    earned: int  # wei of rewards earned in them

    @property
    def rounds(self) -> int:
        return self.contributed + self.flagged + self.missed


#: Bits of a ``RoundRecorded`` word (``ReliabilityRegistry`` packs one per trainer): address, outcome, reliability,
#: then the two flags.
_ADDRESS_BITS, _OUTCOME_AT, _RELIABILITY_AT, _COUNTED_AT, _NEW_OWNER_AT = 160, 160, 168, 184, 185


@dataclass(frozen=True)
class RoundRecord:
    """One trainer's entry of the registry's ``RoundRecorded`` event: its outcome in one round of a project on
    ``market`` and its reliability after it. ``project_counted``: the round was the project's first, so the project
    counted for its record; ``new_owner``: and its owner was one the trainer had not worked for before."""

    market: str
    project_id: int
    round: int
    trainer: str
    outcome: Outcome
    reliability_bps: int
    project_counted: bool
    new_owner: bool


def round_records(args: Mapping[str, Any]) -> list[RoundRecord]:
    """The per-trainer entries of a ``RoundRecorded`` event (its decoded arguments), in the event's order.
    Raises ValueError for a word the registry cannot have written (an unknown outcome, a reliability over 10000,
    a bit set above the last flag)."""
    entries = []
    for word in args["records"]:
        outcome, reliability = (word >> _OUTCOME_AT) & 0xFF, (word >> _RELIABILITY_AT) & 0xFFFF
        if word >> (_NEW_OWNER_AT + 1) or outcome > Outcome.MISSED or reliability > 10_000:
            raise ValueError(f"{word:#x} is not a RoundRecorded word")
        entries.append(
            RoundRecord(
                market=to_checksum_address(args["market"]),
                project_id=int(args["projectId"]),
                round=int(args["round"]),
                trainer=to_checksum_address(f"0x{word & ((1 << _ADDRESS_BITS) - 1):040x}"),
                outcome=Outcome(outcome),
                reliability_bps=reliability,
                project_counted=bool((word >> _COUNTED_AT) & 1),
                new_owner=bool((word >> _NEW_OWNER_AT) & 1),
            )
        )
    return entries


@dataclass(frozen=True)
class Finalization:
    """What the aggregator records for a round: the ``RoundResult`` struct ``TrainingMarket.finalizeRound`` takes."""

    model_cid: str
    proof_cid: str
    scores: list[int]
    flags: list[bool]
    proof: bytes
    rejected: list[bool] | None = None  # submitters whose update could not be fetched or checked

    def as_abi_tuple(self, trainers: Sequence[str] | None) -> tuple[Any, ...]:
        """The struct, with the project's ``trainers`` in trainer order (``MarketLens.trainersOf``: the market checks
        the list against its members instead of reading it from storage); None for a market whose struct has no
        trainer list (before issue 16's gas step 5: the gas benchmark's baseline)."""
        rejected = list(self.rejected) if self.rejected is not None else [False] * len(self.flags)
        fields = (self.model_cid, self.proof_cid, list(self.scores), list(self.flags), rejected, self.proof)
        return fields if trainers is None else ([to_checksum_address(t) for t in trainers], *fields)


@dataclass(frozen=True)
class FinalizedRound:
    """One ``RoundFinalized`` event."""

    project_id: int
    round: int
    model_cid: str
    proof_cid: str
    scores: list[int]
    flags: list[bool]
    rewards: list[int]
    block_number: int
    tx_hash: str = field(default="")


def round_verifier(chain: ChainClient, address: str) -> Contract:
    """The contract at ``address`` seen through the ``IRoundVerifier`` interface (any verifier)."""
    return chain.contract(compile_contracts()["IRoundVerifier"], address)


def encode_rule_version(version: str) -> bytes:
    """A rule version (16 hex digits, as ``marketplace.rule.RULE_VERSION``) as the 8 bytes a
    verifier's ``ruleVersion()`` holds (a ``bytes8`` constructor argument)."""
    raw = bytes.fromhex(version)
    if len(raw) != 8 or raw == b"\0" * 8:
        raise ValueError(f"a rule version is 16 hex digits, not all zero: {version!r}")
    return raw


@dataclass(frozen=True)
class VerifierInfo:
    """What a round verifier declares about itself (``IRoundVerifier``'s views)."""

    address: str
    proof_system: str  # ``proofSystem()`` without its zero padding, e.g. "ezkl-halo2-kzg", "test-hash"
    rule_version: str  # ``ruleVersion()`` as 16 hex digits, the form of ``marketplace.rule.RULE_VERSION``
    max_trainers: int  # ``maxTrainers()``: the circuit's size (slots) for a zk verifier
    sketch_width: int  # ``sketchWidth()``: K, the width of the sketches trainers commit to


def read_verifier_info(chain: ChainClient, address: str) -> VerifierInfo:
    """The declarations of the verifier at ``address`` (four calls to its ``IRoundVerifier`` views)."""
    views = round_verifier(chain, address).functions
    system = bytes(chain.call(views.proofSystem()))
    return VerifierInfo(
        address=to_checksum_address(address),
        proof_system=system.rstrip(b"\0").decode("ascii", errors="backslashreplace"),
        rule_version=bytes(chain.call(views.ruleVersion())).hex(),
        max_trainers=int(chain.call(views.maxTrainers())),
        sketch_width=int(chain.call(views.sketchWidth())),
    )


class MarketClient:
    """Calls and transactions of one account against a deployed market, its registry and its lens (``MarketLens``:
    the market's composite views, computed from its storage).

    Event queries read no block older than ``deploy_block`` (the market's creation block, from the deployment
    record), in pages (:meth:`ChainClient.get_logs`)."""

    def __init__(
        self, chain: ChainClient, market: Contract, registry: Contract, lens: Contract, deploy_block: int = 0
    ) -> None:
        self.chain = chain
        self.market = market
        self.registry = registry
        self.lens = lens
        self.deploy_block = max(0, deploy_block)
        self._created_in: dict[int, tuple[int, bytes]] = {}  # project id -> its creation block's number and hash

    def as_account(self, account: LocalAccount) -> MarketClient:
        """The same market seen by another account (a new client with this one's settings and deployment
        block; this one is unchanged)."""
        chain = self.chain.with_account(account)
        return MarketClient(
            chain,
            chain.contract(self.market.abi, self.market.address),
            chain.contract(self.registry.abi, self.registry.address),
            chain.contract(self.lens.abi, self.lens.address),
            deploy_block=self.deploy_block,
        )

    @property
    def address(self) -> str:
        """The address transactions are sent from."""
        return self.chain.account.address

    # -------------------------------------------------------------- transactions

    def create_project(self, config: ProjectConfig) -> int:
        """Creates a project escrowing ``config.escrow`` wei (it sends ``config.payment``: the protocol fee is
        burned); returns its id."""
        receipt = self.chain.transact(self.market.functions.createProject(config.as_abi_tuple()), value=config.payment)
        (event,) = self.chain.events(receipt, self.market, "ProjectCreated")
        return int(event["args"]["projectId"])

    def join(self, project_id: int, stake: int | None = None) -> Any:
        """Joins with the project's stake (read from chain unless given)."""
        if stake is None:
            stake = self.get_project(project_id).stake
        return self.chain.transact(self.market.functions.join(project_id), value=stake)

    def start_training(self, project_id: int) -> Any:
        return self.chain.transact(self.market.functions.startTraining(project_id))

    def cancel(self, project_id: int) -> Any:
        return self.chain.transact(self.market.functions.cancel(project_id))

    def commit_update(self, project_id: int, round_: int, seal: bytes, note: bytes = b"") -> Any:
        """Commits this trainer's sealed submission (:func:`marketplace.protocol.seal.seal`) for ``round_``,
        with its own opaque ``note``."""
        if len(seal) != 32:
            raise ValueError(f"a seal is 32 bytes, got {len(seal)}")
        return self.chain.transact(self.market.functions.commitUpdate(project_id, round_, seal, note))

    def commit_batch(self, project_id: int, round_: int, commits: Sequence[SignedCommit]) -> Any:
        """Commits several trainers' signed commits of ``round_`` in one transaction (anyone may send it;
        ``TrainingMarket.commitBatch``), in the given order (the round's arrival order): entries that commit
        nothing (a trainer already committed, a signature that is not its trainer's) are skipped by the market;
        ``NothingCommitted`` if none commits anything. The trainers committed are the receipt's
        ``UpdateCommitted`` events (:meth:`batch_committed`). Sent with an access list when that is cheaper
        (:meth:`ChainClient.transact`: each trainer's slots are touched once)."""
        return self.chain.transact(
            self.market.functions.commitBatch(project_id, round_, [c.as_abi_tuple() for c in commits]),
            access_list=True,
        )

    def batch_committed(self, receipt: Any) -> list[str]:
        """The trainers a :meth:`commit_batch` receipt committed, in batch order."""
        return [e["args"]["trainer"] for e in self.chain.events(receipt, self.market, "UpdateCommitted")]

    def commit_would_land(self, project_id: int, round_: int, commit: SignedCommit) -> bool:
        """Whether ``commit`` alone would be committed by a ``commitBatch`` now (an ``eth_call`` of it against the
        latest block): False if the market would skip it or refuse the batch."""
        try:
            fn = self.market.functions.commitBatch(project_id, round_, [commit.as_abi_tuple()])
            return int(self.chain.call(fn)) == 1
        except ContractRevert:
            return False

    def reveal_update(self, project_id: int, round_: int, cid: str, commitment: bytes, salt: bytes) -> Any:
        """Reveals this trainer's committed submission: the update's IPFS ``cid``, its 32-byte row
        ``commitment`` and the seal's 32-byte ``salt``."""
        if len(commitment) != 32 or len(salt) != 32:
            raise ValueError("a commitment and a salt are 32 bytes each")
        return self.chain.transact(self.market.functions.revealUpdate(project_id, round_, cid, commitment, salt))

    def reveal_batch(self, project_id: int, round_: int, openings: Sequence[Opening]) -> Any:
        """Reveals several trainers' committed submissions of ``round_`` in one transaction (anyone may send it;
        ``TrainingMarket.revealBatch``): openings that reveal nothing (a trainer already revealed, a seal they
        do not open) are skipped by the market; ``NothingRevealed`` if none reveals anything. The trainers
        revealed are the receipt's ``UpdateSubmitted`` events (:meth:`batch_revealed`). Sent with an access list
        when that is cheaper (:meth:`ChainClient.transact`)."""
        return self.chain.transact(
            self.market.functions.revealBatch(project_id, round_, [o.as_abi_tuple() for o in openings]),
            access_list=True,
        )

    def batch_revealed(self, receipt: Any) -> list[str]:
        """The trainers a :meth:`reveal_batch` receipt revealed, in batch order."""
        return [e["args"]["trainer"] for e in self.chain.events(receipt, self.market, "UpdateSubmitted")]

    def reject_submissions(self, project_id: int, round_: int, trainers: list[str]) -> Any:
        """Announces the submissions of ``round_`` the aggregator will reject; opens the dispute window. Posts the
        market's :meth:`rejection_bond` per trainer (read from the chain): each trainer that disputes successfully is
        reimbursed its dispute's gas out of its bond (never more), the rest comes back with :meth:`reclaim_bonds`
        after the window."""
        who = [to_checksum_address(t) for t in trainers]
        bonds = self.rejection_bond() * len(who)
        return self.chain.transact(self.market.functions.rejectSubmissions(project_id, round_, who), value=bonds)

    def rejection_bond(self) -> int:
        """The bond, in wei, an aggregator posts per rejected trainer (``MarketDisputes.rejectionBond``, fixed at
        deployment; 0 for an earlier contract set without bonds: the gas bench's baseline)."""
        if not any(f.get("name") == "rejectionBond" for f in self.lens.abi):
            return 0
        return int(self.chain.call(self.lens.functions.rejectionBond()))

    def bonds_held(self, project_id: int, round_: int) -> int:
        """Wei of rejection bonds still held for ``round_`` (posted, less those awarded to disputing trainers)."""
        return int(self.chain.call(self.market.functions.bondsHeld(project_id, round_)))

    def bond_credit(self, account: str) -> int:
        """Wei of bonds ``account`` can withdraw now (:meth:`withdraw_bonds`), over every project."""
        return int(self.chain.call(self.market.functions.bondCredit(to_checksum_address(account))))

    def reclaim_bonds(self, project_id: int, round_: int) -> int:
        """Credits the project's aggregator the bonds still held for ``round_`` (its undisputed rejections), once
        the round's dispute window is over; returns the wei credited, 0 without a transaction if none is held."""
        if self.bonds_held(project_id, round_) == 0:
            return 0
        receipt = self.chain.transact(self.market.functions.reclaimBonds(project_id, round_))
        (event,) = self.chain.events(receipt, self.market, "BondReturned")
        return int(event["args"]["amount"])

    def collect_bonds(self, project_id: int) -> int:
        """Credits the aggregator the bonds of every round of the project whose dispute window is over (anyone may:
        :meth:`reclaim_bonds`), then withdraws every bond credited to this account (:meth:`withdraw_bonds`: over
        every project, awarded for its disputes or returned for its rejections); returns the wei withdrawn."""
        project = self.get_project(project_id)
        open_window = project.status is ProjectStatus.TRAINING and self.chain.timestamp() <= (
            self.rejections(project_id).dispute_deadline
        )
        last = project.current_round - (1 if open_window else 0)
        for round_ in range(min(last, project.rounds - 1) + 1):
            self.reclaim_bonds(project_id, round_)
        return self.withdraw_bonds()

    def bonds_posted(self, project_id: int, from_block: int | None = None) -> int:
        """Wei of rejection bonds the project's aggregator posted with its announcements, over every round
        (``BondPosted`` events; 0 on a market without bonds)."""
        if not any(f.get("type") == "event" and f.get("name") == "BondPosted" for f in self.market.abi):
            return 0
        since = self._since(project_id, from_block)
        logs = self.chain.get_logs(self.market, "BondPosted", since, argument_filters={"projectId": project_id})
        return sum(int(e["args"]["amount"]) for e in logs)

    def withdraw_bonds(self) -> int:
        """Withdraws every bond credited to this account; returns the wei, 0 without a transaction if none."""
        if self.bond_credit(self.address) == 0:
            return 0
        receipt = self.chain.transact(self.market.functions.withdrawBonds())
        (event,) = self.chain.events(receipt, self.market, "BondWithdrawn")
        return int(event["args"]["amount"])

    def dispute_rejection(self, project_id: int, round_: int, row: list[int], proof: bytes) -> Any:
        """Publishes this trainer's committed ``row`` (integers at scale 2^13) with its row ``proof``."""
        return self.chain.transact(self.market.functions.disputeRejection(project_id, round_, list(row), proof))

    def challenge_stale(self, project_id: int, round_: int, evidence: StaleEvidence) -> Any:
        """Shows ``evidence.trainer``'s submission in ``round_`` (the open round) stale
        (``MarketDisputes.challengeStale``): it is rejected beyond dispute, and this account is credited its gas out of
        the trainer's stake (:meth:`withdraw_bonds`). Reverts (:class:`ContractRevert`) with the market's error for
        evidence it refuses."""
        call = self.market.functions.challengeStale(project_id, round_, evidence.as_abi_tuple())
        return self.chain.transact(call)

    def challenge_period(self) -> int:
        """Seconds a round stays open to stale challenges after its latest reveal (``MarketDisputes.challengePeriod``,
        fixed at deployment; 0 for a contract set without challenges)."""
        if not any(f.get("name") == "challengePeriod" for f in self.market.abi):
            return 0
        return int(self.chain.call(self.market.functions.challengePeriod()))

    def challenge_window_end(self, project_id: int) -> int:
        """When the open round's stale-challenge window closes (its latest reveal's block time plus
        :meth:`challenge_period`): ``finalizeRound`` reverts ``ChallengeWindowOpen`` before. 0 without a period or a
        reveal."""
        period = self.challenge_period()
        if period == 0:
            return 0
        reveals = self.submissions(project_id, self.get_project(project_id).current_round)
        if not reveals:
            return 0
        last = max(r.block_number for r in reveals)
        return int(self.chain.w3.eth.get_block(last)["timestamp"]) + period

    def stale_challenges(
        self, project_id: int, round_: int | None = None, from_block: int | None = None
    ) -> list[StaleChallenge]:
        """``StaleChallenged`` events of a project (one round, or all), oldest first (none on a contract set
        without challenges)."""
        if not any(f.get("type") == "event" and f.get("name") == "StaleChallenged" for f in self.market.abi):
            return []
        argument_filters: dict[str, Any] = {"projectId": project_id}
        if round_ is not None:
            argument_filters["round"] = round_
        since = self._since(project_id, from_block)
        logs = self.chain.get_logs(self.market, "StaleChallenged", since, argument_filters=argument_filters)
        return [
            StaleChallenge(
                int(e["args"]["projectId"]),
                int(e["args"]["round"]),
                e["args"]["trainer"],
                e["args"]["challenger"],
                int(e["args"]["earlierRound"]),
                int(e["args"]["author"]),
                bytes(e["args"]["earlier"]),
                int(e["args"]["award"]),
            )
            for e in logs
        ]

    def commit_reference(self, project_id: int, round_: int, seal: bytes) -> Any:
        """Commits the seal of the owner's reference row for ``round_`` (``TrainingMarket.commitReference``: the
        project's owner only, once per round, in its commit phase). The seal is
        :func:`marketplace.protocol.seal.seal` with an empty CID and the owner as trainer."""
        if len(seal) != 32:
            raise ValueError(f"a seal is 32 bytes, got {len(seal)}")
        return self.chain.transact(self.market.functions.commitReference(project_id, round_, seal))

    def expect_reference(self, project_id: int, expected: bool = True) -> Any:
        """Sets whether every round of the project waits for the owner's reference before its commit phase closes
        early (``TrainingMarket.expectReference``: the project's owner only, while the project is open)."""
        return self.chain.transact(self.market.functions.expectReference(project_id, expected))

    def awaits_reference(self, project: Project) -> bool:
        """Whether the open round of ``project`` (a :meth:`get_project` answer) waits for the owner's reference:
        the project expects one and the owner has not committed it in this round, so the commit phase stays open
        after every trainer committed, until the owner commits or the commit deadline passes."""
        if not project.reference_expected or project.status is not ProjectStatus.TRAINING:
            return False
        return not self.reference_of(project.project_id, project.current_round).committed

    def reveal_reference(
        self, project_id: int, round_: int, commitment: bytes, salt: bytes, row: Sequence[int], proof: bytes
    ) -> Any:
        """Reveals the owner's reference row of ``round_`` (``TrainingMarket.revealReference``, in the reveal phase):
        its 32-byte ``commitment`` and the seal's ``salt``, the row's integers at scale 2^13
        (:func:`marketplace.protocol.commitment.published_row`) and the verifier's row ``proof`` for them."""
        if len(commitment) != 32 or len(salt) != 32:
            raise ValueError("a commitment and a salt are 32 bytes each")
        fn = self.market.functions.revealReference(project_id, round_, commitment, salt, [int(v) for v in row], proof)
        return self.chain.transact(fn)

    def finalize_round(self, project_id: int, round_: int, result: Finalization) -> Any:
        """Finalizes ``round_`` with ``result`` (``TrainingMarket.finalizeRound``, with the project's trainer list),
        sent with an access list when that is cheaper (:meth:`ChainClient.transact`: every trainer's slots and
        records are touched once)."""
        fn = self.market.functions.finalizeRound(
            project_id, round_, result.as_abi_tuple(self._trainer_list(project_id))
        )
        return self.chain.transact(fn, access_list=True)

    def _trainer_list(self, project_id: int) -> list[str] | None:
        """The trainer list ``finalizeRound`` takes, None if this market's ``RoundResult`` has none (see
        :meth:`Finalization.as_abi_tuple`)."""
        (fn,) = (f for f in self.market.abi if f.get("type") == "function" and f.get("name") == "finalizeRound")
        (result,) = (a for a in fn["inputs"] if a["name"] == "result")
        listed = any(c["name"] == "trainers" for c in result["components"])
        return self.trainers(project_id) if listed else None

    def abandon(self, project_id: int) -> Any:
        return self.chain.transact(self.market.functions.abandon(project_id))

    def withdraw(self, project_id: int) -> int:
        """Withdraws everything owed to this account; returns the amount in wei."""
        receipt = self.chain.transact(self.market.functions.withdraw(project_id))
        (event,) = self.chain.events(receipt, self.market, "Withdrawn")
        return int(event["args"]["amount"])

    # -------------------------------------------------------------- views

    def project_count(self) -> int:
        return int(self.chain.call(self.lens.functions.projectCount()))

    def get_project(self, project_id: int) -> Project:
        v = self.chain.call(self.lens.functions.getProject(project_id))
        return Project(
            project_id,
            v[0],
            v[1],
            v[2],
            ProjectStatus(v[3]),
            *[int(x) for x in v[4:23]],
            v[23],
            v[24],
            bool(v[25]) if len(v) > 25 else False,  # an earlier market (the gas bench's baseline) has no setting
        )

    def trainers(self, project_id: int) -> list[str]:
        return list(self.chain.call(self.lens.functions.trainersOf(project_id)))

    def trainer_info(self, project_id: int, trainer: str) -> TrainerInfo:
        member, index, stake_left, earned, withdrawn = self.chain.call(
            self.lens.functions.trainerInfo(project_id, to_checksum_address(trainer))
        )
        return TrainerInfo(member, int(index), int(stake_left), int(earned), withdrawn)

    def commitment(self, project_id: int, round_: int, trainer: str) -> bytes:
        """The row commitment ``trainer`` revealed in ``round_`` (32 zero bytes if none). The market keeps the open
        round's (``commitmentOf``); an earlier round's is read from its ``UpdateSubmitted`` event."""
        trainer = to_checksum_address(trainer)
        kept = bytes(self.chain.call(self.lens.functions.commitmentOf(project_id, round_, trainer)))
        if kept != EMPTY_COMMITMENT or self.get_project(project_id).current_round == round_:
            return kept
        return next((s.commitment for s in self.submissions(project_id, round_) if s.trainer == trainer), kept)

    def round_commitments(self, project_id: int, round_: int) -> list[bytes]:
        """Every trainer's row commitment in ``round_``, in trainer order (32 zero bytes for one that did not
        reveal): from the market for the open round, from the round's ``UpdateSubmitted`` events for an earlier
        one (one query, not one per trainer)."""
        trainers = self.trainers(project_id)
        if self.get_project(project_id).current_round == round_:
            return [bytes(self.chain.call(self.lens.functions.commitmentOf(project_id, round_, t))) for t in trainers]
        revealed = {s.trainer: s.commitment for s in self.submissions(project_id, round_)}
        return [revealed.get(t, EMPTY_COMMITMENT) for t in trainers]

    def reference_of(self, project_id: int, round_: int) -> ReferenceRecord:
        """The owner's reference row of ``round_`` as the market records it: seal and revealed commitment."""
        seal_, commitment = self.chain.call(self.lens.functions.referenceOf(project_id, round_))
        return ReferenceRecord(bytes(seal_), bytes(commitment))

    def withdrawable(self, project_id: int, account: str) -> int:
        return int(self.chain.call(self.lens.functions.withdrawable(project_id, to_checksum_address(account))))

    def committed_seal(self, project_id: int, round_: int, trainer: str) -> bytes:
        """The seal ``trainer`` committed for ``round_`` (32 zero bytes if none). The market keeps a trainer's seal
        of the open round until it reveals (``committedSeal``; its commitment then takes the seal's place); any
        other is read from its round's ``UpdateCommitted`` event."""
        trainer = to_checksum_address(trainer)
        lens = self.lens.functions
        kept = bytes(self.chain.call(lens.committedSeal(project_id, round_, trainer)))
        if kept != EMPTY_COMMITMENT:
            return kept
        open_round = self.get_project(project_id).current_round == round_
        if open_round and bytes(self.chain.call(lens.commitmentOf(project_id, round_, trainer))) == EMPTY_COMMITMENT:
            return kept  # the open round, not revealed: not committed
        return next((c.seal for c in self.commits(project_id, round_) if c.trainer == trainer), kept)

    def round_deadlines(self, project_id: int) -> RoundDeadlines:
        commit, opens, reveal, aggregation = self.chain.call(self.lens.functions.roundDeadlines(project_id))
        return RoundDeadlines(int(commit), int(opens), int(reveal), int(aggregation))

    def round_address(self, project_id: int, round_: int) -> RoundAddress:
        """Where a submission of ``round_`` belongs (what a seal binds besides the trainer)."""
        return RoundAddress(self.chain.chain_id, self.market.address, project_id, round_)

    def sketch_seed(self, project_id: int) -> int:
        return int(self.chain.call(self.lens.functions.sketchSeed(project_id)))

    def verifier(self, project_id: int) -> Contract:
        """The project's round verifier, seen through the ``IRoundVerifier`` interface."""
        return round_verifier(self.chain, self.get_project(project_id).verifier)

    def verifier_info(self, project_id: int) -> VerifierInfo:
        """What ``project_id``'s verifier declares: proof system, rule version, size, sketch width."""
        return read_verifier_info(self.chain, self.get_project(project_id).verifier)

    def sketch_width(self, project_id: int) -> int:
        """K: trainers of the project commit to the committed row of their K-wide sketch."""
        return int(self.chain.call(self.verifier(project_id).functions.sketchWidth()))

    def rejections(self, project_id: int) -> Rejections:
        """The open round's announced rejections and disputes (by trainer address)."""
        rejected_mask, disputed_mask, deadline = self.chain.call(self.lens.functions.rejections(project_id))
        trainers = self.trainers(project_id)
        return Rejections(
            rejected=[t for i, t in enumerate(trainers) if (int(rejected_mask) >> i) & 1],
            disputed=[t for i, t in enumerate(trainers) if (int(disputed_mask) >> i) & 1],
            dispute_deadline=int(deadline),
        )

    def aggregator_record(self, aggregator: str) -> AggregatorRecord:
        """``aggregator``'s rounds finalized, rejections announced, disputes lost and rejections upheld, over the
        whole market."""
        rounds, rejected, lost, upheld = self.chain.call(
            self.lens.functions.aggregatorRecord(to_checksum_address(aggregator))
        )
        return AggregatorRecord(int(rounds), int(rejected), int(lost), int(upheld))

    def rejected_trainers(self, project_id: int, round_: int) -> list[str]:
        """Trainers whose update of ``round_`` the aggregator rejected (``SubmissionRejected``)."""
        logs = self.chain.get_logs(
            self.market,
            "SubmissionRejected",
            self.first_block(project_id),
            argument_filters={"projectId": project_id, "round": round_},
        )
        return [e["args"]["trainer"] for e in logs]

    def round_records(self, receipt: Any) -> list[RoundRecord]:
        """Every trainer's entry of the registry's ``RoundRecorded`` events in ``receipt`` (a finalization's)."""
        events = self.chain.events(receipt, self.registry, "RoundRecorded")
        return [record for e in events for record in round_records(e["args"])]

    def reliability(self, trainer: str) -> int:
        """Reliability of ``trainer`` in basis points (5000 for a newcomer)."""
        return int(self.chain.call(self.registry.functions.reliabilityOf(to_checksum_address(trainer))))

    def track_record(self, trainer: str) -> TrackRecord:
        """Rounds by outcome, projects, distinct owners and wei earned behind ``trainer``'s reliability."""
        r = self.chain.call(self.registry.functions.trackRecordOf(to_checksum_address(trainer)))
        return TrackRecord(*(int(v) for v in r))

    def reserved_record(self, project_id: int, trainer: str) -> int:
        """Wei of ``trainer``'s record reserved by the reliability bar of ``project_id`` (0 once it withdrew)."""
        return int(
            self.chain.call(
                self.registry.functions.reservedOf(self.market.address, project_id, to_checksum_address(trainer))
            )
        )

    def available_record(self, trainer: str) -> int:
        """Wei of ``trainer``'s earned record not reserved by the bar of a project it is in."""
        return int(self.chain.call(self.registry.functions.availableOf(to_checksum_address(trainer))))

    def required_track_record(self, project_id: int) -> int:
        """Wei a trainer must have earned in independent projects to join ``project_id`` (0: no bar)."""
        return int(self.chain.call(self.lens.functions.requiredTrackRecord(project_id)))

    def record(self, trainer: str) -> tuple[int, int, int]:
        """(contributed, flagged, missed) rounds of ``trainer`` across all projects."""
        c, f, m = self.chain.call(self.registry.functions.recordOf(to_checksum_address(trainer)))
        return int(c), int(f), int(m)

    # -------------------------------------------------------------- event history
    # Every query reads from ``from_block`` if given, else from the project's :meth:`first_block`, and never
    # from before the market's deployment block; :meth:`ChainClient.get_logs` pages it.

    def _project_created(self, project_id: int, from_block: int) -> dict[str, Any] | None:
        """The ``ProjectCreated`` event of ``project_id`` (shaped like :meth:`ChainClient.get_logs`), or None."""
        logs = self.chain.get_logs(
            self.market, "ProjectCreated", from_block, argument_filters={"projectId": project_id}
        )
        return logs[0] if logs else None

    def first_block(self, project_id: int) -> int:
        """The block ``project_id`` was created in (none of its events is older; the deployment block for a
        project not created yet). Found from the deployment block once, then remembered with the block's hash
        and found again when the chain no longer has that block (a reorg, or an ``evm_revert`` on a dev chain):
        one block lookup instead of a walk over the whole market's history."""
        known = self._created_in.get(project_id)
        if known is not None and self._block_hash(known[0]) == known[1]:
            return known[0]
        event = self._project_created(project_id, self.deploy_block)
        if event is None:
            self._created_in.pop(project_id, None)
            return self.deploy_block
        block = int(event["block_number"])
        found = self._block_hash(block)
        if found is not None:
            self._created_in[project_id] = (block, found)
        return block

    def _block_hash(self, number: int) -> bytes | None:
        """The hash of block ``number`` on the chain the node follows now (None if it has no such block)."""
        try:
            return bytes(self.chain.get_block(number)["hash"])
        except BlockNotFound:
            return None

    def _since(self, project_id: int, from_block: int | None) -> int:
        return max(self.deploy_block, self.first_block(project_id) if from_block is None else from_block)

    def initial_model_cid(self, project_id: int) -> str:
        """The model CID ``project_id`` was created with (its ``ProjectCreated`` event); KeyError if none."""
        event = self._project_created(project_id, self.first_block(project_id))
        if event is None:
            raise KeyError(f"no project {project_id} was created on this market")
        return str(event["args"]["initialModelCid"])

    def commits(self, project_id: int, round_: int | None = None, from_block: int | None = None) -> list[Commit]:
        """``UpdateCommitted`` events of a project (one round, or all), oldest first."""
        argument_filters: dict[str, Any] = {"projectId": project_id}
        if round_ is not None:
            argument_filters["round"] = round_
        since = self._since(project_id, from_block)
        logs = self.chain.get_logs(self.market, "UpdateCommitted", since, argument_filters=argument_filters)
        return [
            Commit(
                int(e["args"]["projectId"]),
                int(e["args"]["round"]),
                e["args"]["trainer"],
                bytes(e["args"]["seal"]),
                int(e["args"]["arrival"]),
                bytes(e["args"]["note"]),
                int(e["block_number"]),
            )
            for e in logs
        ]

    def submissions(
        self, project_id: int, round_: int | None = None, from_block: int | None = None
    ) -> list[Submission]:
        """``UpdateSubmitted`` events (reveals) of a project (one round, or all), oldest first."""
        argument_filters: dict[str, Any] = {"projectId": project_id}
        if round_ is not None:
            argument_filters["round"] = round_
        since = self._since(project_id, from_block)
        logs = self.chain.get_logs(self.market, "UpdateSubmitted", since, argument_filters=argument_filters)
        return [
            Submission(
                int(e["args"]["projectId"]),
                int(e["args"]["round"]),
                e["args"]["trainer"],
                e["args"]["cid"],
                bytes(e["args"]["commitment"]),
                int(e["args"]["arrival"]),
                int(e["block_number"]),
                int(e["log_index"]),
            )
            for e in logs
        ]

    def announced_rejections(
        self, project_id: int, round_: int | None = None, from_block: int | None = None
    ) -> list[RejectionAnnouncement]:
        """``RejectionAnnounced`` events of a project (one round, or all), oldest first."""
        argument_filters: dict[str, Any] = {"projectId": project_id}
        if round_ is not None:
            argument_filters["round"] = round_
        since = self._since(project_id, from_block)
        logs = self.chain.get_logs(self.market, "RejectionAnnounced", since, argument_filters=argument_filters)
        return [
            RejectionAnnouncement(
                int(e["args"]["projectId"]),
                int(e["args"]["round"]),
                e["args"]["trainer"],
                int(e["args"]["disputeDeadline"]),
                int(e["block_number"]),
            )
            for e in logs
        ]

    def disputed_rows(
        self, project_id: int, round_: int | None = None, from_block: int | None = None
    ) -> list[DisputedRow]:
        """``RejectionDisputed`` events of a project (one round, or all), oldest first."""
        argument_filters: dict[str, Any] = {"projectId": project_id}
        if round_ is not None:
            argument_filters["round"] = round_
        since = self._since(project_id, from_block)
        logs = self.chain.get_logs(self.market, "RejectionDisputed", since, argument_filters=argument_filters)
        return [
            DisputedRow(
                int(e["args"]["projectId"]),
                int(e["args"]["round"]),
                e["args"]["trainer"],
                tuple(int(v) for v in e["args"]["row"]),
                int(e["block_number"]),
            )
            for e in logs
        ]

    def revealed_references(
        self, project_id: int, round_: int | None = None, from_block: int | None = None
    ) -> list[RevealedReference]:
        """``ReferenceRevealed`` events of a project (one round, or all), oldest first."""
        argument_filters: dict[str, Any] = {"projectId": project_id}
        if round_ is not None:
            argument_filters["round"] = round_
        since = self._since(project_id, from_block)
        logs = self.chain.get_logs(self.market, "ReferenceRevealed", since, argument_filters=argument_filters)
        return [
            RevealedReference(
                int(e["args"]["projectId"]),
                int(e["args"]["round"]),
                bytes(e["args"]["commitment"]),
                tuple(int(v) for v in e["args"]["row"]),
                int(e["block_number"]),
            )
            for e in logs
        ]

    def arrival_order(self, project_id: int, round_: int) -> list[int]:
        """Trainer indices in arrival order: those who committed in ``round_``, in the order the chain
        accepted their commits, then the others in trainer order."""
        return arrival_order(self.trainers(project_id), self.commits(project_id, round_))

    def finalized_rounds(self, project_id: int, from_block: int | None = None) -> list[FinalizedRound]:
        """``RoundFinalized`` events of a project, oldest first."""
        logs = self.chain.get_logs(
            self.market,
            "RoundFinalized",
            self._since(project_id, from_block),
            argument_filters={"projectId": project_id},
        )
        return [
            FinalizedRound(
                int(e["args"]["projectId"]),
                int(e["args"]["round"]),
                e["args"]["modelCid"],
                e["args"]["proofCid"],
                [int(s) for s in e["args"]["scores"]],
                list(e["args"]["flags"]),
                [int(r) for r in e["args"]["rewards"]],
                int(e["block_number"]),
                e["tx_hash"],
            )
            for e in logs
        ]
