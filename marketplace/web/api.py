"""The JSON API under /api: the same data as the pages, plus unsigned transactions for wallets.

Errors are ``{"detail": "...", "errors": {field: message}}`` with status 400 (a request body that
is not UTF-8 JSON), 404 (unknown project, round, transaction, model, malformed address), 409 (the
project's state does not allow the transaction now: still running, nothing to withdraw, deadline
not passed), 422 (bad input, or the chain would reject the transaction) or 503 (the chain node,
or the IPFS node, does not answer or is not configured).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from marketplace.web.forms import FormErrors, parse_job
from marketplace.web.schemas import (
    Action,
    ModelInfo,
    ModelInit,
    Problem,
    ProjectActions,
    ProjectDetail,
    ProjectSummary,
    RoundProof,
    RoundView,
    Status,
    TrainerProfile,
    TxRequest,
    TxStatus,
    VerifyResult,
)
from marketplace.web.service import MarketService, NotFound

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Unknown project, round, transaction or address"},
    422: {"model": Problem, "description": "Invalid input, or the chain would reject it"},
    503: {"model": Problem, "description": "The chain node (or IPFS node) does not answer or is not configured"},
}
#: Operations with a JSON body: a body that is not UTF-8 cannot even be parsed (FastAPI answers 400).
BAD_BODY: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The request body is not UTF-8 JSON"},
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": Problem,
        "description": "The project's state does not allow it now (running, nothing owed, too early)",
    },
}


def service(request: Request) -> MarketService:
    """The app's service, with the index synced (throttled)."""
    svc: MarketService = request.app.state.service
    svc.refresh()
    return svc


Service = Annotated[MarketService, Depends(service)]
router = APIRouter(prefix="/api", tags=["api"], responses=ERRORS)


@router.get("/status", response_model=Status)
def status(svc: Service, request: Request) -> Status:
    """Network, contracts and how far the event index got."""
    settings = request.app.state.settings
    return Status(
        network=svc.network,
        chain_id=svc.chain.chain_id,
        rpc_url=settings.rpc_url,
        market=svc.market.market.address,
        registry=svc.market.registry.address,
        indexed_block=svc.indexer.last_block,
        head_block=svc.chain.block_number(),
        ipfs=settings.ipfs_api is not None,
    )


@router.get("/models", response_model=list[ModelInfo])
def models(request: Request) -> list[ModelInfo]:
    """Model architectures a job can use."""
    return [ModelInfo(name=k, description=v) for k, v in request.app.state.models.items()]


class StrictBody(BaseModel):
    """A JSON request body taken as typed: ``true`` is not the project id 1, nor ``"7"`` the seed 7."""

    model_config = ConfigDict(strict=True)


class ModelInitRequest(StrictBody):
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="seed of the deterministic initialization")


@router.post("/models/{name}/init", response_model=ModelInit, responses=BAD_BODY)
def init_model(request: Request, name: str, body: ModelInitRequest | None = None) -> Any:
    """Builds the registered model ``name`` (seeded), pins its state dict to the server's IPFS node and returns
    the CID to post a job with. 503 when the server has no IPFS API configured or the node does not answer."""
    from marketplace.web.app import pin_initial_weights

    models: dict[str, str] = request.app.state.models
    if name not in models:
        raise NotFound(f"unknown model {name!r}; available: {', '.join(models)}")
    seed = body.seed if body is not None else 0
    settings = request.app.state.settings
    if settings.ipfs_api is None:
        detail = (
            "this server has no IPFS API configured (start it with --ipfs-api or MARKETPLACE_IPFS_API, or run "
            "`marketplace ipfs up`); pin initial weights yourself and paste their CID"
        )
        return JSONResponse({"detail": detail, "errors": {}}, status_code=503)
    return pin_initial_weights(settings.ipfs_api, name, seed)


@router.get("/projects", response_model=list[ProjectSummary])
def projects(
    svc: Service,
    status: Literal["open", "training", "finished", "cancelled"] | None = None,
    model: str | None = None,
    min_budget_eth: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
    max_reliability_pct: Annotated[
        float | None,
        Query(ge=0, le=100, allow_inf_nan=False, description="only projects whose minimum reliability is at most this"),
    ] = None,
    q: Annotated[str | None, Query(description="project id, owner address or model")] = None,
    sort: Literal["newest", "oldest", "budget", "rounds", "trainers", "reliability"] = "newest",
) -> list[ProjectSummary]:
    """Every project on the network, filtered and sorted."""
    return svc.projects(status, model, min_budget_eth, max_reliability_pct, q, sort)


@router.get("/projects/{project_id}", response_model=ProjectDetail)
def project(svc: Service, project_id: int) -> ProjectDetail:
    """A project with its trainers, rounds (scores, flags, rewards) and payouts."""
    return svc.project_detail(project_id)


@router.get("/projects/{project_id}/actions", response_model=ProjectActions)
def project_actions(
    svc: Service, project_id: int, account: Annotated[str | None, Query(description="the connected wallet")] = None
) -> ProjectActions:
    """What ``account`` may do now (withdraw and how much, abandon, start, cancel), simulated with ``eth_call``."""
    return svc.actions(project_id, account)


@router.get("/projects/{project_id}/rounds", response_model=list[RoundView])
def rounds(svc: Service, project_id: int) -> list[RoundView]:
    """The finalized rounds of a project."""
    return svc.detail(project_id).rounds


@router.get("/projects/{project_id}/rounds/{round_}", response_model=RoundView)
def round_(svc: Service, project_id: int, round_: int) -> RoundView:
    """One finalized round."""
    for view in svc.detail(project_id).rounds:
        if view.round == round_:
            return view
    raise NotFound(f"round {round_} of project {project_id} is not finalized")


@router.get("/projects/{project_id}/rounds/{round_}/proof", response_model=RoundProof)
def round_proof(svc: Service, project_id: int, round_: int) -> RoundProof:
    """The public values recorded on chain and the proof bytes (from the finalize transaction's calldata)."""
    return svc.round_proof(project_id, round_)


@router.post("/projects/{project_id}/rounds/{round_}/verify", response_model=VerifyResult)
def verify_round(svc: Service, project_id: int, round_: int) -> VerifyResult:
    """Asks the project's verifier (``eth_call`` of ``verifyRound``) whether the round's proof holds."""
    return svc.verify_round(project_id, round_)


@router.get("/trainers/{address}", response_model=TrainerProfile)
def trainer(svc: Service, address: str) -> TrainerProfile:
    """A trainer's reliability and its history across projects."""
    return svc.trainer(address)


class CreateProjectRequest(StrictBody):
    """A job in user units (as on the form), and who will sign it (to simulate the transaction)."""

    model_name: str = "mlp"
    rounds: int | str
    min_trainers: int | str
    max_trainers: int | str
    budget_eth: str = Field(description="ETH, decimal string")
    aggregator_fee_eth: str = "0"
    stake_eth: str = "0"
    aggregator: str
    verifier: str | None = Field(default=None, description="default: the first approved verifier")
    join_period_minutes: int | str = 60
    submission_period_minutes: int | str = 10
    aggregation_period_minutes: int | str = 10
    min_reliability_pct: str = "0"
    slash_pct: str = "50"
    initial_model_cid: str
    sender: str | None = Field(default=None, description="the wallet that will sign; the transaction is simulated")


@router.post("/tx/create-project", response_model=TxRequest, responses=BAD_BODY)
def create_project_tx(svc: Service, body: CreateProjectRequest, request: Request) -> Any:
    """An unsigned ``createProject`` transaction for the user's wallet (validated, and simulated if ``sender``)."""
    data = body.model_dump()
    verifiers = svc.indexer.verifiers()
    if not data.get("verifier") and verifiers:
        data["verifier"] = verifiers[0]
    try:
        config = parse_job(
            {k: str(v) for k, v in data.items() if v is not None}, list(request.app.state.models), verifiers
        )
    except FormErrors as exc:
        return JSONResponse({"detail": str(exc), "errors": exc.errors}, status_code=422)
    return svc.create_tx(config, body.sender)


class JoinRequest(StrictBody):
    project_id: int
    sender: str | None = Field(default=None, description="the trainer's wallet; the transaction is simulated")


@router.post("/tx/join", response_model=TxRequest, responses=BAD_BODY)
def join_tx(svc: Service, body: JoinRequest) -> TxRequest:
    """An unsigned ``join`` transaction with the project's stake (simulated if ``sender``)."""
    return svc.join_tx(body.project_id, body.sender)


class ActionRequest(StrictBody):
    project_id: int
    sender: str | None = Field(
        default=None, description="the wallet that will sign; the transaction is simulated (required to withdraw)"
    )


@router.post("/tx/{action}", response_model=TxRequest, responses={**BAD_BODY, **CONFLICT})
def action_tx(svc: Service, action: Action, body: ActionRequest) -> Any:
    """An unsigned ``withdraw``, ``abandon``, ``startTraining`` or ``cancel`` of a project (value 0).

    409 with the decoded custom error when the project's state does not allow it now (still running,
    nothing to withdraw, aggregation deadline not passed, too few trainers); 422 when the sender may not.
    """
    if action == "withdraw" and not body.sender:
        detail = "sender: the account that withdraws is required (what it is owed depends on it)"
        return JSONResponse({"detail": detail, "errors": {"sender": "is required to withdraw"}}, status_code=422)
    return svc.action_tx(action, body.project_id, body.sender)


@router.get("/tx/{tx_hash}", response_model=TxStatus)
def tx_status(svc: Service, tx_hash: str) -> TxStatus:
    """Pending, confirmed (with the decoded events and a created project's id) or failed (with the reason)."""
    status = svc.tx_status(tx_hash)
    if status.status != "pending":
        svc.refresh(force=True)
    return status
