"""Transactions for the user's wallet: unsigned ``createProject``, ``join``, ``withdraw``, ``abandon``,
``startTraining``, ``cancel``, ``reclaimBonds`` and ``withdrawBonds`` (``to``, ``data``, ``value``), what an account
may send now, and where a sent transaction is.

A withdrawal is one to three kinds of transactions, as ``marketplace project withdraw`` makes it
(:meth:`TransactionService.actions` lists them in order, ``withdraw_steps``): the project's rejection bonds held for
rounds whose dispute window is over returned to its aggregator (for the aggregator only:
:mod:`~marketplace.web.services.bonds`), the account's bond credits withdrawn, its payout from the project withdrawn.
The wallet sends each one as it sends any other (``POST /api/tx/{action}``).

The server never signs. Given the sender, a transaction is simulated first (``eth_call`` from the
sender's address) so that a doomed one is explained before the wallet pops up: the contract's
custom error is decoded and put in a sentence (:func:`marketplace.web.errors.refusal`, which also says which
field of a new project is at fault), :class:`Conflict` when the project's state does not allow it now,
:class:`Rejected` otherwise (a ``join`` below the project's reliability bar, or without the available record it
requires, says what the bar asks and what the trainer has available).

``createProject`` sends the escrow (reward budget + aggregator fee) and the protocol fee (burned):
its request carries :class:`~marketplace.web.schemas.JobCosts`, the value broken down, and the earned record a
reliability bar will require of trainers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound, Web3RPCError

from marketplace.adapters.chain.errors import ChainError, ContractRevert
from marketplace.adapters.chain.market import PROTOCOL_FEE_BPS, ProjectConfig
from marketplace.web.errors import Attempt, Refusal, refusal, revert_words
from marketplace.web.filters import bps
from marketplace.web.schemas import (
    Action,
    ActionState,
    JobCosts,
    ProjectActions,
    TxRequest,
    TxStatus,
    TxStep,
    eth,
)
from marketplace.web.services.bond_ledger import reclaim_summary, withdraw_bonds_summary
from marketplace.web.services.bonds import BondService
from marketplace.web.services.context import MarketContext, account_address
from marketplace.web.services.errors import InvalidInput, NotFound
from marketplace.web.services.projects import ProjectService
from marketplace.web.services.track_records import config_bar


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
#: Events a transaction status names (of the market and the registry).
STATUS_EVENTS = (
    "ProjectCreated", "TrainerJoined", "TrainingStarted", "ProjectCancelled", "ProjectAbandoned", "RoundRecorded",
    "Withdrawn", "RecordReserved", "RecordReleased", "RecordSpent", "BondReturned", "BondWithdrawn",
)  # fmt: skip


def wrong_status(project_id: int, status: str, spec: ActionSpec) -> str:
    needed = " or ".join(spec.statuses)
    return f"project {project_id} is {status}, and you can {spec.verb} a project only while it is {needed}"


def action_attempt(spec: ActionSpec, project_id: int) -> Attempt:
    """What an action of :data:`ACTIONS` attempts, for the sentences."""
    return Attempt(f"{spec.verb} project {project_id}", project_id)


def job_costs(config: ProjectConfig) -> JobCosts:
    """What creating ``config`` costs its owner (escrow, protocol fee, payment) and what its bar will require."""
    return JobCosts(
        escrow=str(config.escrow), escrow_eth=eth(config.escrow), protocol_fee=str(config.protocol_fee),
        protocol_fee_eth=eth(config.protocol_fee), protocol_fee_bps=PROTOCOL_FEE_BPS, payment=str(config.payment),
        payment_eth=eth(config.payment), reliability_bar=config_bar(config),
    )  # fmt: skip


class TransactionService:
    """Unsigned transactions against one deployment's market, and their status."""

    def __init__(self, context: MarketContext, projects: ProjectService, bonds: BondService) -> None:
        self.context = context
        self.projects = projects
        self.bonds = bonds
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
                info = self.context.reads.verifier_info(address)
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
        attempt = Attempt("create this project")
        self._simulate(fn, account_address(sender) if sender else None, config.payment, attempt)
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
        """``join(projectId)`` with the project's stake, simulated from ``sender`` if given (a refusal in words:
        a bar the trainer does not meet says what it asks and what the trainer has)."""
        project = self.projects.project(project_id)
        fn = self.market.market.functions.join(project_id)
        stake = int(project.stake)
        who = account_address(sender) if sender else None
        self._simulate(fn, who, stake, Attempt(f"join project {project_id}", project_id))
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
            detail = "Please give the sender: the account that withdraws (what it is owed depends on it)."
            raise InvalidInput(detail, {"sender": "is required to withdraw (the account that withdraws)"})
        spec = ACTIONS[action]
        status = self._status(project_id)
        fn = getattr(self.market.market.functions, spec.function)(project_id)
        summary = f"{spec.verb.capitalize()} project {project_id}"
        attempt = action_attempt(spec, project_id)
        if sender is None:
            if status not in spec.statuses:
                sentence = wrong_status(project_id, status, spec)
                raise Refusal(sentence, "WrongStatus", conflict=True).rejected(attempt)
            return self._tx(fn, 0, summary)
        who = account_address(sender)
        revert = self._revert(fn, who, attempt)
        if revert is not None:
            raise revert_words(revert, attempt).rejected(attempt)
        if action == "withdraw":
            summary = f"Withdraw {eth(self.market.withdrawable(project_id, who))} ETH from project {project_id}"
        return self._tx(fn, 0, summary)

    def reclaim_bonds_tx(self, project_id: int, round_: int, sender: str | None = None) -> TxRequest:
        """An unsigned ``reclaimBonds(projectId, round)``: the rejection bonds still held for the round credited back
        to the project's aggregator (anyone may send it). Simulated from ``sender`` (else from the aggregator: who
        sends it does not matter): :class:`Conflict` (409) while the round's dispute window is open
        (``BondsStillAtStake``) or when nothing is held (``NoBondsHeld``); :class:`NotFound` for an unknown
        project."""
        project = self.projects.project(project_id)
        fn = self.market.market.functions.reclaimBonds(project_id, round_)
        attempt = Attempt(f"return the rejection bonds of round {round_} of project {project_id}", project_id)
        revert = self._revert(fn, account_address(sender) if sender else project.aggregator, attempt)
        if revert is not None:
            raise revert_words(revert, attempt).rejected(attempt)
        held = self.market.bonds_held(project_id, round_)
        return self._tx(fn, 0, reclaim_summary(project_id, round_, held, project.aggregator))

    def withdraw_bonds_tx(self, sender: str) -> TxRequest:
        """An unsigned ``withdrawBonds()`` of ``sender``'s rejection bond credits (over every project), simulated
        from it: :class:`Conflict` (409) when nothing is credited to it (``NoBondToWithdraw``), :class:`NotFound`
        for a malformed address."""
        who = account_address(sender)
        fn = self.market.market.functions.withdrawBonds()
        attempt = Attempt("withdraw your rejection bonds")
        revert = self._revert(fn, who, attempt)
        if revert is not None:
            raise revert_words(revert, attempt).rejected(attempt)
        return self._tx(fn, 0, withdraw_bonds_summary(self.market.bond_credit(who), who))

    def actions(self, project_id: int, account: str | None = None) -> ProjectActions:
        """What ``account`` may do with the project now: each action its status allows, simulated from it; its bond
        credit, and the transactions that withdraw everything it is owed (:meth:`withdraw_steps`). A withdrawal is
        allowed when any of them is to be sent: the project's payout, or bonds only."""
        status = self._status(project_id)
        who = account_address(account) if account else None
        withdrawable = self.market.withdrawable(project_id, who) if who else 0
        deadline = self.market.round_deadlines(project_id).aggregation if status == "training" else None
        credit = self.market.bond_credit(who) if who else 0
        states, steps = [], []
        for action, spec in ACTIONS.items():
            if status not in spec.statuses:
                continue
            reason: str | None = "connect a wallet"
            if who is not None:
                attempt = action_attempt(spec, project_id)
                fn = getattr(self.market.market.functions, spec.function)(project_id)
                revert = self._revert(fn, who, attempt)
                reason = revert_words(revert, attempt).sentence if revert is not None else None
            if action == "withdraw" and who is not None:
                steps = self.withdraw_steps(project_id, who, payout=reason is None, credit=credit)
                reason = None if steps else reason
            states.append(ActionState(action=action, label=spec.label, allowed=reason is None, reason=reason))
        return ProjectActions(
            project_id=project_id, status=status, account=who, withdrawable=str(withdrawable),
            withdrawable_eth=eth(withdrawable), aggregation_deadline=deadline, actions=states,
            bond_credit=str(credit), bond_credit_eth=eth(credit), withdraw_steps=steps,
        )  # fmt: skip

    def withdraw_steps(self, project_id: int, who: str, payout: bool, credit: int | None = None) -> list[TxStep]:
        """The transactions that withdraw everything ``who`` is owed in the project, in order: the bond transactions
        (:meth:`BondService.bond_steps`: the project's held bonds returned if ``who`` is its aggregator, then its
        bond credits), then its payout if ``payout`` (the project's ``withdraw`` would go through)."""
        steps = self.bonds.bond_steps(who, [project_id], credit)
        if payout:
            owed = self.market.withdrawable(project_id, who)
            summary = f"Withdraw {eth(owed)} ETH from project {project_id}"
            steps.append(TxStep(action="withdraw", project_id=project_id, amount=str(owed), amount_eth=eth(owed),
                                summary=summary))  # fmt: skip
        return steps

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
            reason = self.chain.revert_reason(receipt)
            known = isinstance(reason, ContractRevert)
            words = refusal(reason, Attempt("carry out this transaction")) if known else None
            error = words.sentence if words is not None else "the transaction failed and the chain gave no reason"
            return TxStatus(
                hash=tx_hash, status="failed", block_number=receipt["blockNumber"], gas_used=receipt["gasUsed"],
                error=error, code=words.code if words is not None else None,
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

    def _simulate(self, fn: Any, sender: str | None, value: int, attempt: Attempt) -> None:
        """:class:`Rejected` (or :class:`Conflict`) in words if ``fn`` sent by ``sender`` with ``value`` would be
        refused now (nothing without a sender)."""
        if sender is None:
            return
        try:
            self.chain.call(fn, **{"from": sender, "value": value})
        except (ChainError, Web3RPCError) as exc:
            raise refusal(exc, attempt, value).rejected(attempt) from None

    def _tx(self, fn: Any, value: int, summary: str) -> TxRequest:
        return TxRequest(
            chain_id=self.chain.chain_id,
            to=self.market.market.address,
            data=self.chain.calldata(fn),
            value=str(value),
            value_eth=eth(value),
            value_hex=hex(value),
            summary=summary,
        )

    def _revert(self, fn: Any, sender: str, attempt: Attempt) -> ContractRevert | None:
        """The decoded custom error if ``fn`` sent by ``sender`` would revert now, else None (another refusal of
        the node is raised in words)."""
        try:
            self.chain.call(fn, **{"from": sender, "value": 0})
        except ContractRevert as exc:
            return exc
        except Web3RPCError as exc:
            raise refusal(exc, attempt).rejected(attempt) from None
        return None

    def _status(self, project_id: int) -> str:
        """The project's status live from the chain (:class:`NotFound` if the index does not know the project)."""
        self.projects.project(project_id)
        return self.market.get_project(project_id).status.label
