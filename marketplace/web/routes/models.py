"""``/api/models``: the model architectures a job can use, and initial weights for one pinned to IPFS."""

from __future__ import annotations

from fastapi import APIRouter

from marketplace.web.deps import ModelsDep
from marketplace.web.errors import BAD_BODY
from marketplace.web.schemas import ModelInfo, ModelInit, ModelInitRequest

api = APIRouter()


@api.get("/models", response_model=list[ModelInfo])
def models(catalogue: ModelsDep) -> list[ModelInfo]:
    """Model architectures a job can use."""
    return catalogue.models()


@api.post("/models/{name}/init", response_model=ModelInit, responses=BAD_BODY)
def init_model(catalogue: ModelsDep, name: str, body: ModelInitRequest | None = None) -> ModelInit:
    """Builds the registered model ``name`` (seeded), pins its state dict to the server's IPFS node and returns
    the CID to post a job with. 503 when the server has no IPFS API configured or the node does not answer."""
    return catalogue.init(name, body.seed if body is not None else 0)
