"""Read model of an aggregator: its track record over the market (rounds finalized, rejections announced,
disputes lost) and the projects it aggregates.

The record is read from the chain (``MarketLens.aggregatorRecord``, one ``eth_call``, cached until the index
sees new events: :mod:`~marketplace.web.services.chain_reads`), not derived from the index: the contract counts
each rejection and each lost dispute as it happens, over every project of the market, so the answer is the
market's own, whatever the index skipped (a malformed event). The projects come from the index.
"""

from __future__ import annotations

from marketplace.adapters.chain.market import AggregatorRecord as ChainRecord
from marketplace.adapters.chain.market import MarketClient
from marketplace.web.schemas import AggregatorProfile, AggregatorRecord, to_bps
from marketplace.web.services.chain_reads import ChainReads
from marketplace.web.services.context import MarketContext, account_address


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def record_view(record: ChainRecord) -> AggregatorRecord:
    """``record`` as the API shows it, with the share of rejections overturned and a sentence."""
    share = record.disputes_lost / record.rejected if record.rejected else None
    summary = f"{_plural(record.rounds, 'round')} finalized, "
    if record.rejected:
        summary += (
            f"{_plural(record.rejected, 'rejection')} announced, {_plural(record.disputes_lost, 'dispute')} lost "
            f"({share:.0%} of its rejections overturned)"
        )
    else:
        summary += "no rejections"
    return AggregatorRecord(
        rounds_finalized=record.rounds, rejections=record.rejected, disputes_lost=record.disputes_lost,
        upheld=record.upheld, overturned_bps=None if share is None else to_bps(share), summary=summary,
    )  # fmt: skip


def aggregator_record(market: MarketClient | ChainReads, address: str) -> AggregatorRecord:
    """``address``'s track record from the market (``aggregatorRecord``: live, or cached by :class:`ChainReads`)."""
    return record_view(market.aggregator_record(address))


class AggregatorService:
    """Aggregators of one deployment."""

    def __init__(self, context: MarketContext) -> None:
        self.context = context

    def aggregator(self, address: str) -> AggregatorProfile:
        """An aggregator's record (live) and the projects naming it (index); :class:`NotFound` for a malformed
        address. Any address has a record (all zero if it never aggregated)."""
        address = account_address(address)
        projects = [p["project_id"] for p in self.context.indexer.projects() if p["aggregator"] == address]
        return AggregatorProfile(
            address=address, record=aggregator_record(self.context.reads, address), projects=projects
        )
