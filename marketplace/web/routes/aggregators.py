"""Aggregators: an aggregator's track record (rounds finalized, rejections announced, disputes lost, live
from the market) and the projects it aggregates, as JSON. The project page shows the same record next to
the project's aggregator."""

from __future__ import annotations

from fastapi import APIRouter

from marketplace.web.deps import AggregatorsDep
from marketplace.web.schemas import AggregatorProfile

api = APIRouter()


@api.get("/aggregators/{address}", response_model=AggregatorProfile)
def aggregator(svc: AggregatorsDep, address: str) -> AggregatorProfile:
    """An aggregator's track record over this market and the projects that name it (404: not an address)."""
    return svc.aggregator(address)
