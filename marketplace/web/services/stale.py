"""Stale challenges (``MarketDisputes.challengeStale``) in words, for the pages and the API.

Anyone may show on chain, before a round is finalized, that a trainer's revealed row nearly copies a row revealed in
an earlier round of the project (another trainer's, its own, or the owner's reference of that round). The submission
is then rejected beyond dispute (unpaid, flagged, slashed at finalization) and the challenger is credited its gas out
of the trainer's stake (``StaleChallenged``: the index's ``stale`` table). Pure functions of what the index read.
"""

from __future__ import annotations

from typing import Any

from marketplace.web.filters import short
from marketplace.web.schemas import StaleShown, eth

#: One sentence for a trainer on avoiding a stale rejection, and what it means (shown with the rejection).
STALE_ADVICE = (
    "its revealed row nearly copies a row revealed in an earlier round of the project, as anyone can show on chain: "
    "such a rejection cannot be disputed (no reward, stake slashed, the challenger's gas paid out of it); to avoid "
    "it, train and submit a fresh update each round"
)


def stale_shown(row: dict[str, Any], trainer: str, members: dict[int, str], roles: dict[str, str]) -> StaleShown:
    """``trainer``'s stale challenge (a row of :meth:`~marketplace.web.indexer.Indexer.stale_challenges`) as the API
    shows it: ``members`` maps the project's trainer indexes to addresses (whose earlier row it copies), ``roles``
    names known accounts (the project's ``aggregator``, ``owner``) in the sentence."""
    author = row["author"]
    author_address = members.get(author) if author is not None else None
    own = author_address == trainer
    refund = int(row["award"])
    return StaleShown(
        earlier_round=row["earlier_round"], author=author, author_address=author_address, own=own,
        challenger=row["challenger"], refund=str(refund), refund_eth=eth(refund), tx_hash=row["tx_hash"],
        summary=stale_summary(row, author_address, own, roles, trainer),
    )  # fmt: skip


def stale_summary(
    row: dict[str, Any], author_address: str | None, own: bool, roles: dict[str, str], trainer: str
) -> str:
    """One sentence: who showed the submission stale, which earlier row it nearly copies (in which round, whose),
    that it is rejected beyond dispute, and the refund taken from the trainer's stake."""
    if own:
        copied = "its own row"
    elif row["author"] is None:
        copied = "the owner's reference row"
    else:
        copied = f"the row of trainer #{row['author']} ({short(author_address)})"
    who = _who(row["challenger"], roles, trainer)
    refund = eth(row["award"])
    return (
        f"shown stale by {who}: its row nearly copies {copied} revealed in round {row['earlier_round']} — rejected "
        f"beyond dispute (no reward, stake slashed); {refund} ETH of its stake refunded the challenger's gas"
    )


def _who(account: str, roles: dict[str, str], trainer: str) -> str:
    """``account`` in a sentence: its role in the project (``roles``) with its short address, or the address."""
    if account == trainer:
        return f"the trainer itself ({short(account)})"
    role = roles.get(account)
    return f"the {role} ({short(account)})" if role else short(account)


def project_roles(owner: str, aggregator: str) -> dict[str, str]:
    """The accounts a stale challenge's sentence names by role: the project's aggregator (which challenges
    automatically) and its owner."""
    return {owner: "owner", aggregator: "aggregator"}
