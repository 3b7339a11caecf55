"""``/api/models``: the model architectures a job can use, and initial weights for one pinned to IPFS (for
anyone, within limits: :mod:`~marketplace.web.services.pin_limits`)."""

from __future__ import annotations

from fastapi import APIRouter

from marketplace.web.deps import ClientDep, ModelsDep
from marketplace.web.errors import BAD_BODY, RATE_LIMITED
from marketplace.web.routes.paging import PAGE_SIZE, Limit, Offset, page_of
from marketplace.web.schemas import ModelInfo, ModelInit, ModelInitRequest, Paged

api = APIRouter()


@api.get("/models", response_model=Paged[ModelInfo])
def models(catalogue: ModelsDep, limit: Limit = PAGE_SIZE, offset: Offset = 0) -> Paged[ModelInfo]:
    """Model architectures a job can use, a page at a time."""
    return page_of(catalogue.models(), limit, offset)


@api.post("/models/{name}/init", response_model=ModelInit, responses={**BAD_BODY, **RATE_LIMITED})
def init_model(client: ClientDep, catalogue: ModelsDep, name: str, body: ModelInitRequest | None = None) -> ModelInit:
    """Builds the registered model ``name`` (seeded), pins its state dict to the server's IPFS node and returns
    the CID to post a job with. Anyone may ask, within limits: 429 past the pins per client (its IPv4 address or
    IPv6 /64) or in all per hour, 422 for weights larger than the server pins; 503 when the server has no IPFS API
    configured or the node does not answer. Asking again for weights the server pinned already (the same model
    and seed) answers the same CID and does not count again."""
    return catalogue.init(name, body.seed if body is not None else 0, client)
