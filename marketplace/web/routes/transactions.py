"""Transactions for the user's wallet (``/api/tx``): unsigned ``createProject``, ``join``, project actions
(withdraw, abandon, start, cancel) and rejection bonds' (``reclaimBonds``, ``withdrawBonds``), what the connected
account may do with a project now (and the transactions that withdraw what it is owed), and where a sent transaction
is. The server never signs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from marketplace.web.deps import ClientDep, ContextDep, FetchesDep, ModelsDep, TransactionsDep
from marketplace.web.errors import BAD_BODY, CONFLICT
from marketplace.web.forms import parse_card_request, parse_job_request
from marketplace.web.schemas import (
    Action,
    ActionRequest,
    CreateProjectRequest,
    JoinRequest,
    ProjectActions,
    ReclaimBondsRequest,
    TxRequest,
    TxStatus,
    WithdrawBondsRequest,
)

api = APIRouter()


@api.get("/projects/{project_id}/actions", response_model=ProjectActions)
def project_actions(
    svc: TransactionsDep,
    project_id: int,
    account: Annotated[str | None, Query(description="the connected wallet")] = None,
) -> ProjectActions:
    """What ``account`` may do now (withdraw and how much, abandon, start, cancel), simulated with ``eth_call``; its
    rejection bond credit, and the transactions that withdraw everything it is owed here, in order
    (``withdraw_steps``: held bonds returned if it is the aggregator, its bond credits, its payout)."""
    return svc.actions(project_id, account)


@api.post("/tx/create-project", response_model=TxRequest, responses=BAD_BODY)
def create_project_tx(
    svc: TransactionsDep, catalogue: ModelsDep, fetches: FetchesDep, client: ClientDep, body: CreateProjectRequest
) -> TxRequest:
    """An unsigned ``createProject`` transaction for the user's wallet (validated, and simulated if ``sender``):
    amounts in wei or ETH, percentages in basis points, periods in seconds. A refusal names the field at fault.

    With a ``model_card`` the initial weights are fetched, given the card in their header and pinned to this
    server's IPFS node, as the job form does; the transaction names that CID (``initial_model_cid`` of the answer).
    Nothing is pinned for a job the chain would refuse."""
    default = None if body.verifier else svc.default_verifier(body.max_trainers)
    config = parse_job_request(body, catalogue.names, svc.verifiers(), default)
    card = parse_card_request(body)
    tx = svc.create_tx(config, body.sender)  # a refusal is said before anything is pinned
    if card is not None:
        described = catalogue.describe(config.initial_model_cid, card, client, fetches)
        config = config.model_copy(update={"initial_model_cid": described})
        tx = svc.create_tx(config, body.sender)
    return tx.model_copy(update={"initial_model_cid": config.initial_model_cid})


@api.post("/tx/join", response_model=TxRequest, responses={**BAD_BODY, **CONFLICT})
def join_tx(svc: TransactionsDep, body: JoinRequest) -> TxRequest:
    """An unsigned ``join`` transaction with the project's stake (simulated if ``sender``): 409 when joining is
    closed (the project is not open, or its join deadline passed), 422 when the sender may not join (the
    project's owner or aggregator, already joined, below the reliability bar)."""
    return svc.join_tx(body.project_id, body.sender)


@api.post("/tx/reclaim-bonds", response_model=TxRequest, responses={**BAD_BODY, **CONFLICT})
def reclaim_bonds_tx(svc: TransactionsDep, body: ReclaimBondsRequest) -> TxRequest:
    """An unsigned ``reclaimBonds``: the rejection bonds still held for a round credited back to the project's
    aggregator (anyone may send it; simulated): 409 while the round's dispute window is open (``BondsStillAtStake``)
    or when nothing is held (``NoBondsHeld``)."""
    return svc.reclaim_bonds_tx(body.project_id, body.round, body.sender)


@api.post("/tx/withdraw-bonds", response_model=TxRequest, responses={**BAD_BODY, **CONFLICT})
def withdraw_bonds_tx(svc: TransactionsDep, body: WithdrawBondsRequest) -> TxRequest:
    """An unsigned ``withdrawBonds``: every rejection bond credited to the sender, over every project (awarded for
    its disputes, returned for its undisputed rejections; simulated): 409 when nothing is credited to it
    (``NoBondToWithdraw``)."""
    return svc.withdraw_bonds_tx(body.sender)


@api.post("/tx/{action}", response_model=TxRequest, responses={**BAD_BODY, **CONFLICT})
def action_tx(svc: TransactionsDep, action: Action, body: ActionRequest) -> TxRequest:
    """An unsigned ``withdraw``, ``abandon``, ``startTraining`` or ``cancel`` of a project (value 0).

    409 with the decoded custom error when the project's state does not allow it now (still running,
    nothing to withdraw, aggregation deadline not passed, too few trainers); 422 when the sender may not.
    """
    return svc.action_tx(action, body.project_id, body.sender)


@api.get("/tx/{tx_hash}", response_model=TxStatus)
def tx_status(svc: TransactionsDep, context: ContextDep, tx_hash: str) -> TxStatus:
    """Pending, confirmed (with the decoded events and a created project's id) or failed (with the reason)."""
    status = svc.tx_status(tx_hash)
    if status.status != "pending":
        context.refresh(force=True)  # the next page shows what it did
    return status
