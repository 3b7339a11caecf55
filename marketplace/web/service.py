"""What the pages and the JSON API show, built from the event index plus a few live chain calls.

The server never signs: for writes it only prepares unsigned transactions (``to``, ``data``,
``value``) for the user's wallet, after simulating them with ``eth_call`` from the user's address
so that a doomed transaction is explained before the wallet pops up.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eth_utils import is_address, keccak, to_checksum_address
from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound, Web3RPCError

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.errors import ChainError, ContractRevert
from marketplace.adapters.chain.market import FinalizedRound, MarketClient, Outcome, ProjectConfig, ProjectStatus
from marketplace.protocol.ordering import in_arrival_order
from marketplace.roles.verify import ProofUnavailable, check_proof, proof_from_calldata
from marketplace.web.filters import when
from marketplace.web.indexer import Indexer
from marketplace.web.schemas import (
    WEI_PER_ETH,
    Action,
    ActionState,
    Member,
    Payout,
    ProjectActions,
    ProjectDetail,
    ProjectSummary,
    ReliabilityPoint,
    RoundProof,
    RoundView,
    TrainerEntry,
    TrainerProfile,
    TrainerProject,
    TxRequest,
    TxStatus,
    VerifyResult,
    eth,
)

SORT_KEYS = {
    "newest": (lambda p: p.project_id, True),
    "oldest": (lambda p: p.project_id, False),
    "budget": (lambda p: int(p.reward_budget), True),
    "rounds": (lambda p: p.rounds_done, True),
    "trainers": (lambda p: p.trainer_count, True),
    "reliability": (lambda p: p.min_reliability_bps, True),
}
STATUSES = ("open", "training", "finished", "cancelled")


@dataclass(frozen=True)
class ActionSpec:
    """A project transaction without value: its contract function, button label and the statuses it needs."""

    function: str
    label: str
    statuses: tuple[str, ...]
    verb: str


#: ``POST /api/tx/{action}``: what each action calls and when the contract allows it.
ACTIONS: dict[Action, ActionSpec] = {
    "withdraw": ActionSpec("withdraw", "Withdraw", ("finished", "cancelled"), "withdraw from"),
    "abandon": ActionSpec("abandon", "Abandon", ("training",), "abandon"),
    "start": ActionSpec("startTraining", "Start training", ("open",), "start training of"),
    "cancel": ActionSpec("cancel", "Cancel project", ("open",), "cancel"),
}
#: Custom errors meaning "not in the project's current state, or not yet" (409), as opposed to "not you" (422).
STATE_ERRORS = frozenset({"WrongStatus", "NotAllowedYet", "NothingToWithdraw", "NotEnoughTrainers"})


class NotFound(LookupError):
    """An unknown project, round, transaction or a malformed address."""


class Rejected(ValueError):
    """The chain would reject what the user asks for (the decoded reason is the message)."""


class Conflict(Rejected):
    """The project's current state does not allow it: still running, nothing to withdraw, too early (409)."""


def nothing_to_withdraw(project_id: int, account: str) -> str:
    return f"nothing to withdraw: project {project_id} owes {account} nothing (not a participant, or already withdrawn)"


def wrong_status(project_id: int, status: str, spec: ActionSpec) -> str:
    needed = " or ".join(spec.statuses)
    return f"project {project_id} is {status}: you can {spec.verb} a project only when it is {needed}"


def explain(exc: ContractRevert, spec: ActionSpec) -> str:
    """A sentence for a decoded revert of one of the market's project functions."""
    a = exc.args_dict
    if exc.name == "NothingToWithdraw":
        return nothing_to_withdraw(int(a["projectId"]), a["account"])
    if exc.name == "WrongStatus":
        return wrong_status(int(a["projectId"]), ProjectStatus(int(a["actual"])).label, spec)
    if exc.name == "NotAllowedYet":
        return f"not allowed yet: possible from {when(int(a['notBefore']))}"
    if exc.name == "NotEnoughTrainers":
        return f"only {a['joined']} of the {a['required']} required trainers joined"
    if exc.name == "Unauthorized":
        return f"{a['caller']} may not {spec.verb} this project now (its owner may)"
    return str(exc)


class MarketService:
    """Read models and unsigned transactions for one deployment."""

    def __init__(
        self, chain: ChainClient, market: MarketClient, indexer: Indexer, network: str, sync_interval: float = 1.0
    ) -> None:
        self.chain = chain
        self.market = market
        self.indexer = indexer
        self.network = network
        self.sync_interval = sync_interval
        self._synced_at = 0.0
        self._sync_lock = threading.Lock()

    # ------------------------------------------------------------------ index freshness

    def refresh(self, force: bool = False) -> None:
        """Syncs the index unless that happened less than ``sync_interval`` seconds ago."""
        with self._sync_lock:
            now = time.monotonic()
            if force or now - self._synced_at >= self.sync_interval:
                self.indexer.sync()
                self._synced_at = time.monotonic()

    # ------------------------------------------------------------------ projects

    @staticmethod
    def _summary(row: dict[str, Any]) -> ProjectSummary:
        return ProjectSummary(
            **{k: row[k] for k in ProjectSummary.model_fields if k in row},
            reward_budget_eth=eth(row["reward_budget"]),
            stake_eth=eth(row["stake"]),
            created_block=row["block"],
            created_tx=row["tx_hash"],
        )

    def projects(
        self,
        status: str | None = None,
        model: str | None = None,
        min_budget_eth: float | None = None,
        max_reliability_pct: float | None = None,
        query: str | None = None,
        sort: str = "newest",
    ) -> list[ProjectSummary]:
        """Every project, filtered (status, model, budget, a reliability bar you can meet, owner) and sorted."""
        items = [self._summary(r) for r in self.indexer.projects()]
        if status:
            items = [p for p in items if p.status == status]
        if model:
            items = [p for p in items if p.model_name == model]
        if min_budget_eth is not None:
            # The decimal the user typed (0.1 is not 0.1000000000000000055...), exact at any size (1e300 ETH
            # overflowed int(float)).
            floor = Decimal(repr(min_budget_eth)) * WEI_PER_ETH
            items = [p for p in items if int(p.reward_budget) >= floor]
        if max_reliability_pct is not None:
            ceiling = Decimal(repr(max_reliability_pct)) * 100  # (0.29 % is 29 bps, not 28.999999999999996)
            items = [p for p in items if p.min_reliability_bps <= ceiling]
        if query:
            q = query.strip().lower()
            items = [p for p in items if q in p.owner.lower() or q == str(p.project_id) or q in p.model_name.lower()]
        key, reverse = SORT_KEYS.get(sort, SORT_KEYS["newest"])
        return sorted(items, key=key, reverse=reverse)

    def project(self, project_id: int) -> ProjectSummary:
        row = self.indexer.project(project_id)
        if row is None:
            raise NotFound(f"project {project_id} does not exist on {self.network}")
        return self._summary(row)

    def detail(self, project_id: int) -> ProjectDetail:
        """A project with its trainers, rounds (scores, flags, rewards) and payouts."""
        project = self.project(project_id)
        members = self.indexer.trainers(project_id)
        rounds = self.indexer.rounds(project_id)
        slashes = self.indexer.slashes(project_id)
        lifecycle = self.indexer.lifecycle(project_id)
        slashed_by: dict[tuple[int, str], int] = defaultdict(int)
        for s in slashes:
            slashed_by[(s["round"], s["trainer"])] += int(s["amount"])
        round_views = [self._round_view(r, members, slashed_by) for r in rounds]

        earned: dict[str, int] = defaultdict(int)
        flagged: dict[str, int] = defaultdict(int)
        for view in round_views:
            for entry in view.trainers:
                earned[entry.trainer] += int(entry.reward)
                flagged[entry.trainer] += int(entry.flagged)
        abandoned = next((e["data"] for e in lifecycle if e["kind"] == "abandoned"), None)
        if abandoned is not None:
            for sub in self.indexer.submissions(project_id, abandoned["round"]):
                earned[sub["trainer"]] += int(abandoned["reward_each"])
        slashed_total: dict[str, int] = defaultdict(int)
        for (_, trainer), amount in slashed_by.items():
            slashed_total[trainer] += amount

        trainers = [
            Member(
                index=m["idx"], trainer=m["trainer"], stake=m["stake"], joined_block=m["block"],
                earned=str(earned[m["trainer"]]), earned_eth=eth(earned[m["trainer"]]),
                slashed=str(slashed_total[m["trainer"]]), flagged_rounds=flagged[m["trainer"]],
            )
            for m in members
        ]  # fmt: skip
        payouts = self._payouts(project, trainers, earned, slashed_total)
        escrowed = int(project.reward_budget) + int(project.aggregator_fee) + sum(int(m.stake) for m in trainers)
        current = project.rounds_done
        pending = len(self.indexer.submissions(project_id, current)) if project.status == "training" else 0
        return ProjectDetail(
            project=project,
            trainers=trainers,
            rounds=round_views,
            payouts=payouts,
            escrowed=str(escrowed),
            escrowed_eth=eth(escrowed),
            settled=project.status in ("finished", "cancelled"),
            pending_submissions=pending,
        )

    def _round_view(
        self, row: dict[str, Any], members: list[dict[str, Any]], slashed_by: dict[tuple[int, str], int]
    ) -> RoundView:
        subs = {s["trainer"]: s for s in self.indexer.submissions(row["project_id"], row["round"])}
        scores, flags, rewards = row["scores"], row["flags"], row["rewards"]
        total = sum(s for s, f in zip(scores, flags, strict=False) if not f)
        entries = []
        for m in members:
            i = m["idx"]
            if i >= len(scores):
                continue
            sub = subs.get(m["trainer"])
            entries.append(
                TrainerEntry(
                    index=i, trainer=m["trainer"], submitted=sub is not None,
                    update_cid=sub["cid"] if sub else None, commitment=sub["commitment"] if sub else None,
                    score=str(scores[i]), share=0.0 if flags[i] or total == 0 else scores[i] / total,
                    flagged=flags[i], reward=str(rewards[i]), reward_eth=eth(rewards[i]),
                    slashed=str(slashed_by.get((row["round"], m["trainer"]), 0)),
                )
            )  # fmt: skip
        return RoundView(
            round=row["round"], model_cid=row["model_cid"], proof_cid=row["proof_cid"], accuracy=row["accuracy"],
            block=row["block"], tx_hash=row["tx_hash"], trainers=entries,
        )  # fmt: skip

    @staticmethod
    def _payouts(
        project: ProjectSummary, trainers: list[Member], earned: dict[str, int], slashed: dict[str, int]
    ) -> list[Payout]:
        """Everyone's entitlement, mirroring the contract's ``_owed`` (before any withdrawal)."""
        entitled: dict[str, int] = defaultdict(int)
        roles: dict[str, list[str]] = defaultdict(list)
        total_earned = sum(earned.values())
        aggregator_earned = int(project.aggregator_fee) * project.rounds_done // project.rounds
        entitled[project.owner] += (
            int(project.reward_budget) - total_earned + int(project.aggregator_fee) - aggregator_earned
            + sum(slashed.values())
        )  # fmt: skip
        roles[project.owner].append("owner")
        entitled[project.aggregator] += aggregator_earned
        roles[project.aggregator].append("aggregator")
        for m in trainers:
            entitled[m.trainer] += int(m.stake) - slashed[m.trainer] + earned[m.trainer]
            roles[m.trainer].append("trainer")
        return [
            Payout(account=a, roles=roles[a], entitled=str(v), entitled_eth=eth(v), withdrawn="0", withdrawn_eth="0")
            for a, v in entitled.items()
        ]

    def with_withdrawals(self, detail: ProjectDetail) -> ProjectDetail:
        """Fills in what each account withdrew so far (``Withdrawn`` events)."""
        withdrawn: dict[str, int] = defaultdict(int)
        for w in self.indexer.withdrawals(detail.project.project_id):
            withdrawn[w["account"]] += int(w["amount"])
        for p in detail.payouts:
            p.withdrawn = str(withdrawn[p.account])
            p.withdrawn_eth = eth(withdrawn[p.account])
        return detail

    def project_detail(self, project_id: int) -> ProjectDetail:
        return self.with_withdrawals(self.detail(project_id))

    # ------------------------------------------------------------------ proofs

    def _round_row(self, project_id: int, round_: int) -> dict[str, Any]:
        self.project(project_id)
        row = next((r for r in self.indexer.rounds(project_id) if r["round"] == round_), None)
        if row is None:
            raise NotFound(f"round {round_} of project {project_id} is not finalized")
        return row

    def round_proof(self, project_id: int, round_: int) -> RoundProof:
        """The round's public values as recorded on chain and its proof, from the finalize calldata."""
        row = self._round_row(project_id, round_)
        project = self.project(project_id)
        members = [m["trainer"] for m in self.indexer.trainers(project_id)]
        commitments = [self.market.commitment(project_id, round_, m) for m in members]
        proof, source = self._proof_bytes(project_id, round_, row["tx_hash"])
        # The verifier sees the values in arrival order (see IRoundVerifier.verifyRound).
        order = self.market.arrival_order(project_id, round_)
        return RoundProof(
            project_id=project_id, round=round_, verifier=project.verifier,
            commitments=["0x" + c.hex() for c in in_arrival_order(commitments, order)],
            scores=[str(s) for s in in_arrival_order(row["scores"], order)],
            flags=in_arrival_order(row["flags"], order), proof="0x" + proof.hex(), proof_source=source,
            arrival_order=order,
        )  # fmt: skip

    def _proof_bytes(self, project_id: int, round_: int, tx_hash: str) -> tuple[bytes, str]:
        finalized = FinalizedRound(project_id, round_, "", "", [], [], [], 0, tx_hash)
        try:
            return proof_from_calldata(self.market, finalized), f"calldata of {tx_hash}"
        except ProofUnavailable as exc:
            raise Rejected(f"{exc}; cannot read the proof from its calldata") from None

    def verify_round(self, project_id: int, round_: int) -> VerifyResult:
        """``eth_call``s the project's verifier with the round's on-chain values and proof."""
        proof = self.round_proof(project_id, round_)
        proof_bytes = bytes(HexBytes(proof.proof))
        valid, gas, error = check_proof(
            self.chain,
            proof.verifier,
            [bytes(HexBytes(c)) for c in proof.commitments],
            [int(s) for s in proof.scores],
            proof.flags,
            proof_bytes,
        )
        return VerifyResult(
            project_id=project_id,
            round=round_,
            verifier=proof.verifier,
            proof_source=proof.proof_source,
            proof_hash="0x" + keccak(proof_bytes).hex(),
            valid=valid,
            gas_estimate=gas,
            error=error,
        )

    # ------------------------------------------------------------------ unsigned transactions

    def _address(self, value: str, what: str = "account") -> str:
        if not is_address(value):
            raise NotFound(f"{value!r} is not an Ethereum address")
        return to_checksum_address(value)

    def _simulate(self, fn: Any, sender: str | None, value: int) -> None:
        if sender is None:
            return
        try:
            self.chain.call(fn, **{"from": sender, "value": value})
        except ChainError as exc:
            raise Rejected(f"the chain would reject this transaction: {exc}") from None
        except Web3RPCError as exc:  # e.g. the sender cannot pay the value
            raise Rejected(f"the chain would reject this transaction: {exc.message}") from None

    def _tx(self, fn: Any, value: int, summary: str) -> TxRequest:
        return TxRequest(
            chain_id=self.chain.chain_id,
            to=self.market.market.address,
            data=fn._encode_transaction_data(),
            value=str(value),
            value_hex=hex(value),
            summary=summary,
        )

    def create_tx(self, config: ProjectConfig, sender: str | None = None) -> TxRequest:
        """``createProject(config)`` with the escrow as value, simulated from ``sender`` if given."""
        fn = self.market.market.functions.createProject(config.as_abi_tuple())
        self._simulate(fn, self._address(sender) if sender else None, config.escrow)
        summary = (
            f"Create a {config.rounds}-round {config.model_name} job for {config.min_trainers}-{config.max_trainers} "
            f"trainers, escrowing {eth(config.escrow)} ETH"
        )
        return self._tx(fn, config.escrow, summary)

    def join_tx(self, project_id: int, sender: str | None = None) -> TxRequest:
        """``join(projectId)`` with the project's stake, simulated from ``sender`` if given."""
        project = self.project(project_id)
        fn = self.market.market.functions.join(project_id)
        stake = int(project.stake)
        self._simulate(fn, self._address(sender) if sender else None, stake)
        return self._tx(fn, stake, f"Join project {project_id} with a stake of {eth(stake)} ETH")

    def _revert(self, fn: Any, sender: str) -> ContractRevert | None:
        """The decoded custom error if ``fn`` sent by ``sender`` would revert now, else None."""
        try:
            self.chain.call(fn, **{"from": sender, "value": 0})
        except ContractRevert as exc:
            return exc
        except Web3RPCError as exc:
            raise Rejected(f"the chain would reject this transaction: {exc.message}") from None
        return None

    def _status(self, project_id: int) -> str:
        """The project's status live from the chain (404 if the index does not know the project)."""
        self.project(project_id)
        return self.market.get_project(project_id).status.label

    def action_tx(self, action: Action, project_id: int, sender: str | None = None) -> TxRequest:
        """An unsigned ``withdraw``/``abandon``/``startTraining``/``cancel`` of ``project_id`` (no value).

        With ``sender`` the transaction is simulated (``eth_call``) and a revert is decoded: :class:`Conflict`
        (409) when the project's state does not allow it now (still running, nothing to withdraw, deadline
        not passed, too few trainers), :class:`Rejected` (422) otherwise (e.g. not the owner). Without a
        sender only the project's status is checked.
        """
        spec = ACTIONS[action]
        status = self._status(project_id)
        fn = getattr(self.market.market.functions, spec.function)(project_id)
        summary = f"{spec.verb.capitalize()} project {project_id}"
        if sender is None:
            if status not in spec.statuses:
                raise Conflict(wrong_status(project_id, status, spec))
            return self._tx(fn, 0, summary)
        who = self._address(sender)
        revert = self._revert(fn, who)
        if revert is not None:
            cls = Conflict if revert.name in STATE_ERRORS else Rejected
            raise cls(f"the chain would reject this transaction: {revert}: {explain(revert, spec)}")
        if action == "withdraw":
            summary = f"Withdraw {eth(self.market.withdrawable(project_id, who))} ETH from project {project_id}"
        return self._tx(fn, 0, summary)

    def actions(self, project_id: int, account: str | None = None) -> ProjectActions:
        """What ``account`` may do with the project now: each action its status allows, simulated from it."""
        status = self._status(project_id)
        who = self._address(account) if account else None
        withdrawable = self.market.withdrawable(project_id, who) if who else 0
        deadline = self.market.round_deadlines(project_id)[1] if status == "training" else None
        states = []
        for action, spec in ACTIONS.items():
            if status not in spec.statuses:
                continue
            reason: str | None = "connect a wallet"
            if who is not None:
                revert = self._revert(getattr(self.market.market.functions, spec.function)(project_id), who)
                reason = explain(revert, spec) if revert is not None else None
            states.append(ActionState(action=action, label=spec.label, allowed=reason is None, reason=reason))
        return ProjectActions(
            project_id=project_id, status=status, account=who, withdrawable=str(withdrawable),
            withdrawable_eth=eth(withdrawable), aggregation_deadline=deadline, actions=states,
        )  # fmt: skip

    def tx_status(self, tx_hash: str) -> TxStatus:
        """Where a transaction is: pending, confirmed (with its decoded events) or failed (with the reason)."""
        try:
            key = HexBytes(tx_hash)
            if len(key) != 32:
                raise ValueError
        except ValueError:
            raise NotFound(f"{tx_hash!r} is not a transaction hash") from None
        w3 = self.chain.w3
        try:
            receipt = self.chain._rpc(lambda: w3.eth.get_transaction_receipt(key))
        except TransactionNotFound:
            try:
                self.chain._rpc(lambda: w3.eth.get_transaction(key))
            except TransactionNotFound:
                raise NotFound(f"transaction {tx_hash} is unknown to the node") from None
            return TxStatus(hash=tx_hash, status="pending")
        if receipt["status"] != 1:
            return TxStatus(
                hash=tx_hash, status="failed", block_number=receipt["blockNumber"], gas_used=receipt["gasUsed"],
                error=str(self.chain._failure(receipt)),
            )  # fmt: skip
        names: list[str] = []
        project_id = None
        for contract in (self.market.market, self.market.registry):
            for name in (
                "ProjectCreated", "TrainerJoined", "TrainingStarted", "ProjectCancelled", "ProjectAbandoned",
                "ReliabilityUpdated", "Withdrawn",
            ):  # fmt: skip
                if not any(a.get("name") == name for a in contract.abi if a.get("type") == "event"):
                    continue
                for ev in self.chain.events(receipt, contract, name):
                    names.append(name)
                    if name == "ProjectCreated":
                        project_id = int(ev["args"]["projectId"])
        return TxStatus(
            hash=tx_hash, status="confirmed", block_number=receipt["blockNumber"], gas_used=receipt["gasUsed"],
            events=names, project_id=project_id,
        )  # fmt: skip

    # ------------------------------------------------------------------ trainers

    def trainer(self, address: str) -> TrainerProfile:
        """A trainer's reliability now (live) and its history across projects (events)."""
        address = self._address(address)
        contributed, flagged, missed = self.market.record(address)
        history = [
            ReliabilityPoint(
                market=r["market"], project_id=r["project_id"], round=r["round"],
                outcome=Outcome(r["outcome"]).name.lower(), reliability_bps=r["reliability_bps"], block=r["block"],
                tx_hash=r["tx_hash"],
            )
            for r in self.indexer.reliability_history(address)
        ]  # fmt: skip
        projects = []
        for row in self.indexer.projects_of(address):
            detail = self.detail(row["project_id"])
            me = next(m for m in detail.trainers if m.trainer == address)
            projects.append(
                TrainerProject(
                    project_id=row["project_id"], status=detail.project.status, index=me.index, stake=me.stake,
                    earned=me.earned, earned_eth=me.earned_eth, flagged_rounds=me.flagged_rounds,
                )
            )  # fmt: skip
        return TrainerProfile(
            address=address,
            reliability_bps=self.market.reliability(address),
            contributed=contributed,
            flagged=flagged,
            missed=missed,
            history=history,
            projects=projects,
        )
