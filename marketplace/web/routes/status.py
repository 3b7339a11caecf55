"""``GET /api/status``: where the app reads from (the RPC URL without its credentials) and how far its
index got."""

from __future__ import annotations

from fastapi import APIRouter

from marketplace.adapters.chain.redact import redact_url
from marketplace.web.deps import ContextDep, SettingsDep
from marketplace.web.schemas import Status

api = APIRouter()


@api.get("/status", response_model=Status)
def status(context: ContextDep, settings: SettingsDep) -> Status:
    """Network, contracts and how far the event index got."""
    return Status(
        network=context.network,
        chain_id=context.chain.chain_id,
        rpc_url=redact_url(settings.rpc_url),  # providers put API keys in the URL
        market=context.market.market.address,
        registry=context.market.registry.address,
        indexed_block=context.indexer.last_block,
        head_block=context.chain.block_number(),
        ipfs=settings.ipfs_api is not None,
        skipped_events=len(context.indexer.skipped_events()),
    )
