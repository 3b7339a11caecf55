"""Rejection bonds (``MarketDisputes``, at the market's address) as the pages and the API show them, and the
transactions that withdraw them.

An aggregator that announces rejections posts the market's ``rejectionBond`` per rejected trainer with the
announcement (``BondPosted``). A rejected trainer that disputes successfully is reimbursed its dispute's gas out of
its bond, never more (``BondAwarded``); what is left of the round's bonds is credited back to the aggregator once the
round's dispute window is over (``reclaimBonds``, anyone may call it: ``BondReturned``). Both are credits, over every
project, withdrawn with ``withdrawBonds`` (``BondWithdrawn``).

From the index: each round's bonds (:mod:`~marketplace.web.services.bond_ledger`, pure). Live from the chain
(:class:`BondService`): an account's credit (``bondCredit``), which held bonds can be returned now (``bondsHeld`` and
a simulated ``reclaimBonds``), and from these :meth:`BondService.bond_steps`, the bond transactions of a withdrawal
as ``marketplace project withdraw`` makes them: the held bonds of rounds whose window is over returned, then the
credits withdrawn. Unlike the command line, which returns a project's held bonds whoever runs it, the steps return
bonds for their own aggregator only: nobody else is asked to pay gas to credit it.
"""

from __future__ import annotations

from collections.abc import Iterable

from web3.exceptions import Web3RPCError

from marketplace.adapters.chain.errors import ContractRevert
from marketplace.web.account_schemas import AccountBondRound, AccountBonds
from marketplace.web.schemas import TxStep, eth
from marketplace.web.services.bond_ledger import (
    Ledger,
    announced_trainers,
    ledgers,
    reclaim_summary,
    round_bonds,
    trainer_bond,
    withdraw_bonds_summary,
)
from marketplace.web.services.context import MarketContext, account_address
from marketplace.web.services.projects import ProjectService


class BondService:
    """Rejection bonds of one deployment: per round from the index, credits and returns live from the chain."""

    def __init__(self, context: MarketContext, projects: ProjectService) -> None:
        self.context = context
        self.projects = projects

    def ledgers(self, project_id: int) -> dict[int, Ledger]:
        """Round -> :class:`Ledger` of the project's rounds with bonds (index; :class:`NotFound` for an unknown
        project)."""
        self.projects.project(project_id)
        indexer = self.context.indexer
        return ledgers(indexer.bonds(project_id), announced_trainers(indexer.disputes(project_id)))

    def reclaimable(self, project_id: int, sender: str) -> list[tuple[int, int]]:
        """(round, wei) of the project's rounds whose held bonds can be returned to the aggregator now: held on chain
        (``bondsHeld``) and a ``reclaimBonds`` from ``sender`` that would not revert (the window is over)."""
        market = self.context.market
        out = []
        for round_, ledger in self.ledgers(project_id).items():
            if ledger.held <= 0:
                continue
            held = market.bonds_held(project_id, round_)
            if held > 0 and self._would_reclaim(project_id, round_, sender):
                out.append((round_, held))
        return out

    def _would_reclaim(self, project_id: int, round_: int, sender: str) -> bool:
        fn = self.context.market.market.functions.reclaimBonds(project_id, round_)
        try:
            self.context.chain.call(fn, **{"from": sender, "value": 0})
        except (ContractRevert, Web3RPCError):
            return False
        return True

    def aggregated(self, address: str) -> list[int]:
        """Ids of the projects ``address`` aggregates (index)."""
        return [r["project_id"] for r in self.context.indexer.projects() if r["aggregator"] == address]

    def bond_steps(self, account: str, project_ids: Iterable[int], credit: int | None = None) -> list[TxStep]:
        """The bond transactions of ``account``'s withdrawal: for each of ``project_ids`` it aggregates, each round
        whose held bonds can be returned now (``reclaim-bonds``), then its credit with those returns
        (``withdraw-bonds``, if any). Read live (``credit``: its ``bondCredit`` if already read)."""
        who = account_address(account)
        steps = []
        for pid in project_ids:
            project = self.projects.project(pid)
            if project.aggregator != who:
                continue
            for round_, amount in self.reclaimable(pid, who):
                summary = reclaim_summary(pid, round_, amount, who)
                steps.append(TxStep(action="reclaim-bonds", project_id=pid, round=round_, amount=str(amount),
                                    amount_eth=eth(amount), summary=summary))  # fmt: skip
        total = (self.context.market.bond_credit(who) if credit is None else credit) + sum(int(s.amount) for s in steps)
        if total > 0:
            summary = withdraw_bonds_summary(total, who)
            steps.append(TxStep(action="withdraw-bonds", amount=str(total), amount_eth=eth(total), summary=summary))
        return steps

    def account_bonds(self, address: str) -> AccountBonds:
        """``address``'s bonds: its credit (live), withdrawn so far (index), the rounds whose bonds concern it as the
        aggregator that posted them or a trainer reimbursed out of one (index), what of its bonds is held and
        returnable now (live), and the transactions that withdraw them (:meth:`bond_steps`). :class:`NotFound` for a
        malformed address."""
        who = account_address(address)
        indexer = self.context.indexer
        rounds: list[AccountBondRound] = []
        aggregated = self.aggregated(who)
        for pid in aggregated:
            for ledger in self.ledgers(pid).values():
                returned = ledger.returned or 0
                rounds.append(AccountBondRound(
                    project_id=pid, round=ledger.round, role="aggregator", posted=str(ledger.posted),
                    posted_eth=eth(ledger.posted), credited=str(returned), credited_eth=eth(returned),
                    held=str(ledger.held), held_eth=eth(ledger.held), summary=round_bonds(ledger).summary,
                ))  # fmt: skip
        for pid in sorted({int(r["project_id"]) for r in indexer.bonds_of(who) if r["kind"] == "awarded"}):
            for ledger in self.ledgers(pid).values():
                bond = trainer_bond(ledger, who)
                if bond is None or ledger.awarded.get(who, 0) == 0:
                    continue
                rounds.append(AccountBondRound(
                    project_id=pid, round=ledger.round, role="trainer", posted=bond.bond, posted_eth=bond.bond_eth,
                    credited=bond.reimbursed, credited_eth=bond.reimbursed_eth, held="0", held_eth="0",
                    summary=bond.summary,
                ))  # fmt: skip
        rounds.sort(key=lambda r: (r.project_id, r.round, r.role))
        held = sum(int(r.held) for r in rounds)
        credit = self.context.market.bond_credit(who)
        steps = self.bond_steps(who, aggregated if held else [], credit)
        reclaimable = sum(int(s.amount) for s in steps if s.action == "reclaim-bonds")
        withdrawn = sum(int(w["amount"]) for w in indexer.bond_withdrawals(who))
        return AccountBonds(
            address=who, credit=str(credit), credit_eth=eth(credit), withdrawn=str(withdrawn),
            withdrawn_eth=eth(withdrawn), held=str(held), held_eth=eth(held), reclaimable=str(reclaimable),
            reclaimable_eth=eth(reclaimable), rounds=rounds, withdraw_steps=steps,
        )  # fmt: skip
