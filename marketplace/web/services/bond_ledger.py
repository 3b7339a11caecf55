"""Rejection bonds' bookkeeping from the index, pure: each round's bonds as a :class:`Ledger` (:func:`ledgers`), in
words for a round (:func:`round_bonds`) and for one rejected trainer (:func:`trainer_bond`), and the summaries of the
bond transactions. An aggregator that announces rejections posts the market's ``rejectionBond`` per rejected trainer
(``BondPosted``); a trainer that disputes successfully is reimbursed its dispute's gas out of its bond, never more
(``BondAwarded``); what is left is credited back to the aggregator once the round's dispute window is over
(``BondReturned``). :mod:`~marketplace.web.services.bonds` reads what is live.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from marketplace.web.schemas import RoundBonds, TrainerBond, eth


@dataclass(frozen=True)
class Ledger:
    """One round's rejection bonds, from the index: ``posted`` by ``aggregator`` for the announced rejections of
    ``rejected`` (a bond each), ``awarded`` to disputing trainers (trainer -> wei), ``returned`` to the aggregator
    (None while not returned)."""

    round: int
    aggregator: str
    posted: int
    rejected: tuple[str, ...] = ()
    awarded: dict[str, int] = field(default_factory=dict)
    returned: int | None = None

    @property
    def bond(self) -> int:
        """Wei posted per rejection (the market's ``rejectionBond``): ``posted`` over the rejections announced."""
        return self.posted // len(self.rejected) if self.rejected else self.posted

    @property
    def reimbursed(self) -> int:
        """Wei awarded to disputing trainers."""
        return sum(self.awarded.values())

    @property
    def held(self) -> int:
        """Wei still held for the round: posted, less reimbursed and returned."""
        return self.posted - self.reimbursed - (self.returned or 0)


def ledgers(rows: Iterable[Mapping[str, Any]], announced: Mapping[int, Iterable[str]]) -> dict[int, Ledger]:
    """Round -> :class:`Ledger` of the rounds with bonds posted, from a project's bond events in chain order
    (:meth:`~marketplace.web.indexer.Indexer.bonds`) and the trainers whose rejection was announced in each round
    (``announced``: round -> trainers). An award or a return without a posting (not a market's) is left out."""
    posted: dict[int, tuple[str, int]] = {}
    awarded: dict[int, dict[str, int]] = {}
    returned: dict[int, int] = {}
    for row in rows:
        round_, amount, account = int(row["round"]), int(row["amount"]), str(row["account"])
        if row["kind"] == "posted":
            before = posted.get(round_, (account, 0))[1]
            posted[round_] = (account, before + amount)
        elif row["kind"] == "awarded":
            trainers = awarded.setdefault(round_, {})
            trainers[account] = trainers.get(account, 0) + amount
        elif row["kind"] == "returned":
            returned[round_] = returned.get(round_, 0) + amount
    return {
        r: Ledger(r, aggregator, amount, tuple(announced.get(r, ())), awarded.get(r, {}), returned.get(r))
        for r, (aggregator, amount) in sorted(posted.items())
    }


def _amount(wei: int) -> str:
    return f"{eth(wei)} ETH"


def round_bonds(ledger: Ledger) -> RoundBonds:
    """A round's bonds for the API and the pages, with a sentence: what was posted, reimbursed, returned, held."""
    n = len(ledger.rejected)
    parts = [
        f"{_amount(ledger.posted)} posted by the aggregator for {n} rejection{'' if n == 1 else 's'}"
        f" ({_amount(ledger.bond)} each)"
    ]
    if ledger.awarded:
        k = len(ledger.awarded)
        whose = "its dispute's" if k == 1 else "their disputes'"
        trainers = f"{k} disputing trainer{'' if k == 1 else 's'}"
        parts.append(f"{_amount(ledger.reimbursed)} reimbursed to {trainers} for {whose} gas")
    if ledger.returned is not None:
        parts.append(f"{_amount(ledger.returned)} returned to the aggregator")
    if ledger.held:
        parts.append(f"{_amount(ledger.held)} held until the round's dispute window is over, then returned to it")
    returned = ledger.returned or 0
    return RoundBonds(
        round=ledger.round, aggregator=ledger.aggregator, rejections=n, bond=str(ledger.bond),
        bond_eth=eth(ledger.bond), posted=str(ledger.posted), posted_eth=eth(ledger.posted),
        reimbursed=str(ledger.reimbursed), reimbursed_eth=eth(ledger.reimbursed), returned=str(returned),
        returned_eth=eth(returned), held=str(ledger.held), held_eth=eth(ledger.held), summary="; ".join(parts),
    )  # fmt: skip


def trainer_bond(ledger: Ledger | None, trainer: str) -> TrainerBond | None:
    """The bond of ``trainer``'s announced rejection and where it went, in words; None if the round has no bond for
    it (no rejection of it announced, or a market without bonds)."""
    if ledger is None or trainer not in ledger.rejected or ledger.posted == 0:
        return None
    bond, reimbursed = ledger.bond, ledger.awarded.get(trainer, 0)
    rest = bond - reimbursed
    returned = rest if ledger.returned is not None else None
    head = f"bond {_amount(bond)} posted by the aggregator"
    if reimbursed:
        tail = "returned to the aggregator" if returned is not None else "held, then returned to the aggregator"
        summary = f"{head}: {_amount(reimbursed)} reimbursed to the trainer for its dispute's gas, "
        summary += f"{_amount(rest)} {tail}"
    elif returned is not None:
        summary = f"{head}: returned to the aggregator (no dispute reimbursed out of it)"
    else:
        summary = f"{head}: held; it reimburses the trainer's dispute's gas if it disputes, the rest goes back to the "
        summary += "aggregator after the dispute window"
    return TrainerBond(
        bond=str(bond), bond_eth=eth(bond), reimbursed=str(reimbursed), reimbursed_eth=eth(reimbursed),
        returned=None if returned is None else str(returned), returned_eth=None if returned is None else eth(returned),
        summary=summary,
    )  # fmt: skip


def announced_trainers(disputes: Mapping[int, Mapping[str, Any]]) -> dict[int, list[str]]:
    """Round -> the trainers whose rejection was announced (a dispute with a deadline), from
    :meth:`~marketplace.web.indexer.Indexer.disputes`: those the aggregator posted a bond for."""
    return {r: [t for t, d in ds.items() if d.deadline is not None] for r, ds in disputes.items()}


def reclaim_summary(project_id: int, round_: int, amount: int, aggregator: str) -> str:
    return (
        f"Return the {_amount(amount)} of rejection bonds held for round {round_} of project {project_id} to its "
        f"aggregator {aggregator}"
    )


def withdraw_bonds_summary(amount: int, account: str) -> str:
    return f"Withdraw {_amount(amount)} of rejection bonds credited to {account}"
