"""A project's finalized rounds: as JSON, with a round's proof and its owner's reference row (and what it changed in
the round's pay), and its verification by the project's verifier (as JSON, and as the inline answer next to a round's
button on the project page). A verifier call that failed is reported with its error, the RPC URL in it without
credentials."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from marketplace.adapters.chain.redact import redact_urls
from marketplace.web.deps import ClientDep, PageDep, RoundsDep, VerifiersDep
from marketplace.web.routes.paging import PAGE_SIZE, Limit, Offset, page_of
from marketplace.web.schemas import Paged, RoundProof, RoundReference, RoundView, VerifyResult
from marketplace.web.services.errors import Rejected

api = APIRouter()
pages = APIRouter(include_in_schema=False)


@api.get("/projects/{project_id}/rounds", response_model=Paged[RoundView])
def rounds(svc: RoundsDep, project_id: int, limit: Limit = PAGE_SIZE, offset: Offset = 0) -> Paged[RoundView]:
    """The finalized rounds of a project, oldest first, a page at a time."""
    return page_of(svc.rounds(project_id), limit, offset)


@api.get("/projects/{project_id}/rounds/{round_}", response_model=RoundView)
def round_(svc: RoundsDep, project_id: int, round_: int) -> RoundView:
    """One finalized round."""
    return svc.round(project_id, round_)


@api.get("/projects/{project_id}/rounds/{round_}/proof", response_model=RoundProof)
def round_proof(svc: RoundsDep, project_id: int, round_: int) -> RoundProof:
    """The public values recorded on chain and the proof bytes (from the finalize transaction's calldata)."""
    return svc.round_proof(project_id, round_)


@api.get("/projects/{project_id}/rounds/{round_}/reference", response_model=RoundReference)
def round_reference(svc: RoundsDep, client: ClientDep, project_id: int, round_: int) -> RoundReference:
    """Whether the project's owner committed and revealed a reference row in the round, its commitment, and what it
    changed in the round's pay (``effect``): whom it left unpaid that the rule without it pays, whom it paid that the
    rule without it does not, recomputed from public data (the round's updates fetched from IPFS, once: 503 with
    ``Retry-After`` when the server runs all the fetches it allows for visitors now)."""
    return svc.reference_with_changes(project_id, round_, client)


@api.post("/projects/{project_id}/rounds/{round_}/verify", response_model=VerifyResult)
def verify_round(svc: RoundsDep, project_id: int, round_: int) -> VerifyResult:
    """Asks the project's verifier (``eth_call`` of ``verifyRound``) whether the round's proof holds."""
    return _shown(svc.verify_round(project_id, round_))


@pages.post("/projects/{project_id}/rounds/{round_}/verify")
def verify_partial(page: PageDep, svc: RoundsDep, labels: VerifiersDep, project_id: int, round_: int) -> Response:
    """The verifier's answer, rendered inline next to the round's button (htmx), naming the verifier."""
    try:
        result = _shown(svc.verify_round(project_id, round_))
    except Rejected as exc:
        return page.render("_verify_result.html", {"result": None, "error": redact_urls(str(exc)), "verifier": None})
    return page.render(
        "_verify_result.html", {"result": result, "error": None, "verifier": labels.label(result.verifier)}
    )


def _shown(result: VerifyResult) -> VerifyResult:
    """``result`` as shown: a failed call's error names the RPC endpoint, whose URL may hold an API key."""
    return result if result.error is None else result.model_copy(update={"error": redact_urls(result.error)})
