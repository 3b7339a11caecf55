"""Transactions for the user's wallet: unsigned ``createProject``, ``join``, ``withdraw``, ``abandon``,
``startTraining`` and ``cancel`` (``to``, ``data``, ``value``), what an account may send now, and where
a sent transaction is.

The server never signs. Given the sender, a transaction is simulated first (``eth_call`` from the
sender's address) so that a doomed one is explained before the wallet pops up: the contract's
custom error is decoded and put in a sentence, :class:`Conflict` when the project's state does not
allow it now, :class:`Rejected` otherwise (a ``join`` below the project's reliability bar, or without the
available record it requires, says what the bar asks and what the trainer has available).

``createProject`` sends the escrow (reward budget + aggregator fee) and the protocol fee (burned):
its request carries :class:`~marketplace.web.schemas.JobCosts`, the value broken down, and the earned record a
reliability bar will require of trainers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound, Web3RPCError

from marketplace.adapters.chain.errors import ChainError, ContractRevert
from marketplace.adapters.chain.market import PROTOCOL_FEE_BPS, ProjectConfig, ProjectStatus, read_verifier_info
from marketplace.web.filters import bps, when
from marketplace.web.schemas import Action, ActionState, JobCosts, ProjectActions, TxRequest, TxStatus, eth
from marketplace.web.services.context import MarketContext, account_address
from marketplace.web.services.errors import Conflict, InvalidInput, NotFound, Rejected
from marketplace.web.services.projects import ProjectService
from marketplace.web.services.track_records import config_bar, explain_bar_refusal


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
#: Events a transaction status names (of the market and the registry).
STATUS_EVENTS = (
    "ProjectCreated", "TrainerJoined", "TrainingStarted", "ProjectCancelled", "ProjectAbandoned", "ReliabilityUpdated",
    "Withdrawn", "RecordReserved", "RecordReleased", "RecordSpent",
)  # fmt: skip


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


def explain_join(exc: ContractRevert, project_id: int) -> str | None:
    """A sentence for a decoded revert of ``join(project_id)`` (None for an error it does not know)."""
    a = exc.args_dict
    bar = explain_bar_refusal(exc, project_id)
    if bar is not None:
        return bar
    if exc.name == "RoleConflict":
        return f"{a['account']} is the owner or the aggregator of project {project_id}: they cannot train in it"
    if exc.name == "AlreadyJoined":
        return f"{a['trainer']} already joined project {project_id}"
    if exc.name == "JoinClosed":
        return f"joining project {project_id} closed at {when(int(a['joinDeadline']))}"
    if exc.name == "WrongStatus":
        return f"project {project_id} is {ProjectStatus(int(a['actual'])).label}: joining is closed"
    return None


def job_costs(config: ProjectConfig) -> JobCosts:
    """What creating ``config`` costs its owner (escrow, protocol fee, payment) and what its bar will require."""
    return JobCosts(
        escrow=str(config.escrow), escrow_eth=eth(config.escrow), protocol_fee=str(config.protocol_fee),
        protocol_fee_eth=eth(config.protocol_fee), protocol_fee_bps=PROTOCOL_FEE_BPS, payment=str(config.payment),
        payment_eth=eth(config.payment), reliability_bar=config_bar(config),
    )  # fmt: skip


class TransactionService:
    """Unsigned transactions against one deployment's market, and their status."""

    def __init__(self, context: MarketContext, projects: ProjectService) -> None:
        self.context = context
        self.projects = projects
        self.chain = context.chain
        self.market = context.market

    def verifiers(self) -> list[str]:
        """The verifiers a new project may name: those the market admin approved, oldest first."""
        return self.context.indexer.verifiers()

    def default_verifier(self, max_trainers: int | None = None) -> str | None:
        """The verifier a new job gets when it names none: the smallest approved verifier that proves something
        (not the local test verifier, ``proofSystem() == "test-hash"``) and fits ``max_trainers``; else the
        first approved verifier that fits (the test verifier, on the local chain); None if none is approved.
        A verifier whose declarations cannot be read is passed over."""
        fitting = []
        for address in self.verifiers():
            try:
                info = read_verifier_info(self.chain, address)
            except (ChainError, ValueError):
                continue
            if max_trainers is None or info.max_trainers >= max_trainers:
                fitting.append(info)
        proving = sorted((v for v in fitting if v.proof_system != "test-hash"), key=lambda v: v.max_trainers)
        chosen = proving or fitting
        return chosen[0].address if chosen else None

    def create_tx(self, config: ProjectConfig, sender: str | None = None) -> TxRequest:
        """``createProject(config)`` with the escrow and the protocol fee as value (``config.payment``), simulated
        from ``sender`` if given; its ``costs`` break the value down and give the record a bar will require."""
        fn = self.market.market.functions.createProject(config.as_abi_tuple())
        self._simulate(fn, account_address(sender) if sender else None, config.payment)
        costs = job_costs(config)
        summary = (
            f"Create a {config.rounds}-round {config.model_name} job for {config.min_trainers}-{config.max_trainers} "
            f"trainers, sending {costs.payment_eth} ETH: escrowing {costs.escrow_eth} ETH and burning a "
            f"{costs.protocol_fee_eth} ETH protocol fee ({bps(PROTOCOL_FEE_BPS)} of the budget)"
        )
        if costs.reliability_bar is not None:
            summary += f"; trainers need {costs.reliability_bar.summary}"
        return self._tx(fn, config.payment, summary).model_copy(update={"costs": costs})

    def join_tx(self, project_id: int, sender: str | None = None) -> TxRequest:
        """``join(projectId)`` with the project's stake, simulated from ``sender`` if given (a refusal is
        explained: :func:`explain_join`)."""
        project = self.projects.project(project_id)
        fn = self.market.market.functions.join(project_id)
        stake = int(project.stake)
        who = account_address(sender) if sender else None
        self._simulate(fn, who, stake, lambda revert: explain_join(revert, project_id))
        return self._tx(fn, stake, f"Join project {project_id} with a stake of {eth(stake)} ETH")

    def action_tx(self, action: Action, project_id: int, sender: str | None = None) -> TxRequest:
        """An unsigned ``withdraw``/``abandon``/``startTraining``/``cancel`` of ``project_id`` (no value).

        A withdrawal needs its ``sender`` (:class:`InvalidInput` without: what it is owed depends on it).
        With ``sender`` the transaction is simulated (``eth_call``) and a revert is decoded: :class:`Conflict`
        (409) when the project's state does not allow it now (still running, nothing to withdraw, deadline
        not passed, too few trainers), :class:`Rejected` (422) otherwise (e.g. not the owner). Without a
        sender only the project's status is checked.
        """
        if action == "withdraw" and not sender:
            detail = "sender: the account that withdraws is required (what it is owed depends on it)"
            raise InvalidInput(detail, {"sender": "is required to withdraw"})
        spec = ACTIONS[action]
        status = self._status(project_id)
        fn = getattr(self.market.market.functions, spec.function)(project_id)
        summary = f"{spec.verb.capitalize()} project {project_id}"
        if sender is None:
            if status not in spec.statuses:
                raise Conflict(wrong_status(project_id, status, spec))
            return self._tx(fn, 0, summary)
        who = account_address(sender)
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
        who = account_address(account) if account else None
        withdrawable = self.market.withdrawable(project_id, who) if who else 0
        deadline = self.market.round_deadlines(project_id).aggregation if status == "training" else None
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
        try:
            receipt = self.chain.get_receipt(key)
        except TransactionNotFound:
            try:
                self.chain.get_transaction(key)
            except TransactionNotFound:
                raise NotFound(f"transaction {tx_hash} is unknown to the node") from None
            return TxStatus(hash=tx_hash, status="pending")
        if receipt["status"] != 1:
            return TxStatus(
                hash=tx_hash, status="failed", block_number=receipt["blockNumber"], gas_used=receipt["gasUsed"],
                error=str(self.chain.revert_reason(receipt)),
            )  # fmt: skip
        names: list[str] = []
        project_id = None
        for contract in (self.market.market, self.market.registry):
            for name in STATUS_EVENTS:
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

    def _simulate(
        self, fn: Any, sender: str | None, value: int, explain: Callable[[ContractRevert], str | None] | None = None
    ) -> None:
        """:class:`Rejected` if ``fn`` sent by ``sender`` with ``value`` would revert now (nothing without a
        sender); ``explain`` puts a decoded custom error in words after it."""
        if sender is None:
            return
        try:
            self.chain.call(fn, **{"from": sender, "value": value})
        except ContractRevert as exc:
            sentence = explain(exc) if explain is not None else None
            words = f": {sentence}" if sentence else ""
            raise Rejected(f"the chain would reject this transaction: {exc}{words}") from None
        except ChainError as exc:
            raise Rejected(f"the chain would reject this transaction: {exc}") from None
        except Web3RPCError as exc:  # e.g. the sender cannot pay the value
            raise Rejected(f"the chain would reject this transaction: {exc.message}") from None

    def _tx(self, fn: Any, value: int, summary: str) -> TxRequest:
        return TxRequest(
            chain_id=self.chain.chain_id,
            to=self.market.market.address,
            data=self.chain.calldata(fn),
            value=str(value),
            value_hex=hex(value),
            summary=summary,
        )

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
        """The project's status live from the chain (:class:`NotFound` if the index does not know the project)."""
        self.projects.project(project_id)
        return self.market.get_project(project_id).status.label
