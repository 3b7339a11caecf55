"""A finalized round's own page (``/projects/{id}/rounds/{n}``: scores as shares, rewards, every flag with its
reasons, the owner's reference row, the verify buttons), the page saying what the owner's reference is
(``/about/owner-reference``), the reasons the rule gives for its flags recomputed from public data (an htmx
partial: the recomputation fetches the round's updates), the project page's live part (polled by htmx while the
project is open or training) and the downloads: a round's proof document and model, the project's latest model.

Downloads are fetched through the server's IPFS node and checked against their CID before they are served; these
fetches, and the recomputation's, are cached and bounded (:mod:`~marketplace.web.services.ipfs_fetches`): a
request beyond the bounds gets 503 with ``Retry-After``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from marketplace.adapters.ipfs.tensors import DEFAULT_MAX_BYTES
from marketplace.protocol.proof_document import MAX_PROOF_DOCUMENT_BYTES
from marketplace.web.deps import (
    ClientDep,
    FetchesDep,
    PageDep,
    ProjectsDep,
    RoundsDep,
    SettingsDep,
    Synced,
    VerifiersDep,
)
from marketplace.web.errors import retry_headers
from marketplace.web.filters import when
from marketplace.web.page_cache import mark_chain_time
from marketplace.web.schemas import ProjectDetail, RoundView
from marketplace.web.services.errors import NotFound, Unavailable
from marketplace.web.services.flag_reasons import FlagReasonService, Recomputed, chain_causes, public_recompute
from marketplace.web.services.ipfs_fetches import WebFetches
from marketplace.web.services.project_pages import neighbours, project_context

pages = APIRouter(include_in_schema=False)


def get_flag_reasons(request: Request, services: Synced, settings: SettingsDep) -> FlagReasonService:
    """The app's :class:`FlagReasonService` (made on first use, kept in ``app.state``)."""
    state = request.app.state
    if getattr(state, "flag_reasons", None) is None:
        recompute = public_recompute(services.context.market, services.fetches)
        state.flag_reasons = FlagReasonService(recompute, settings.ipfs_failure_ttl)
    service: FlagReasonService = state.flag_reasons
    return service


FlagReasonsDep = Annotated[FlagReasonService, Depends(get_flag_reasons)]


@pages.get("/projects/{project_id}/live")
def project_live(page: PageDep, svc: ProjectsDep, project_id: int) -> Response:
    """The project page's live part (status, rounds done, the open round, the rounds list), for htmx to poll."""
    detail = svc.project_detail(project_id)
    return mark_chain_time(page.render("_project_live.html", project_context(detail)), detail.open_round is not None)


def _finalized(detail: ProjectDetail, round_: int) -> RoundView:
    """The finalized round ``round_`` of the project, or 404."""
    view = next((r for r in detail.rounds if r.round == round_), None)
    if view is None:
        raise NotFound(f"round {round_} of project {detail.project.project_id} is not finalized")
    return view


@pages.get("/projects/{project_id}/rounds/{round_}")
def round_page(
    page: PageDep, svc: ProjectsDep, rounds: RoundsDep, labels: VerifiersDep, project_id: int, round_: int
) -> Response:
    """One finalized round: every trainer's commit, reveal, flag and its reasons, score share and reward, and
    whether the owner's reference row was committed and revealed (linking to what it is)."""
    detail = svc.detail(project_id)
    view = _finalized(detail, round_)
    row = next(r for r in svc.indexer.rounds(project_id) if r["round"] == round_)
    words = row["reasons"]  # the aggregator's stated causes of its rejections (proof document)
    causes = {e.trainer: chain_causes(e, words.get(e.trainer), when) for e in view.trainers}
    before, after = neighbours(detail, round_)
    context = {"d": detail, "p": detail.project, "r": view, "causes": causes, "before": before, "after": after}
    context["verifier"] = labels.label(detail.project.verifier)
    context["reference"] = rounds.reference(project_id, round_)
    return page.render("round.html", context)


@pages.get("/projects/{project_id}/rounds/{round_}/flag-causes")
def flag_causes(
    page: PageDep, svc: ProjectsDep, reasons: FlagReasonsDep, client: ClientDep, project_id: int, round_: int
) -> Response:
    """The rule's causes of the round's flags, recomputed from the revealed updates (htmx partial). When the server
    runs all the IPFS fetches it allows for visitors, the partial says so, with 503 and ``Retry-After`` (an error
    page would be swapped into the round's page)."""
    view = _finalized(svc.detail(project_id), round_)
    try:
        result, status, headers = reasons.causes(project_id, round_, client), 200, None
    except Unavailable as exc:
        words = str(exc).rstrip(".")
        result, status, headers = Recomputed({}, words[:1].lower() + words[1:]), 503, retry_headers(exc)
    response = page.render("_flag_causes.html", {"r": view, "result": result}, status)
    response.headers.update(headers or {})
    return response


@pages.get("/about/owner-reference")
def about_owner_reference(page: PageDep) -> Response:
    """What the owner's reference row is, what it can and cannot change (docs/design/robust-reference.md)."""
    return page.render("about_reference.html", {})


def _download(fetches: WebFetches, client: str, cid: str, max_bytes: int, filename: str, media_type: str) -> Response:
    """The object at ``cid`` through the server's IPFS node, checked against its CID, as an attachment
    (:class:`Unavailable`, 503, when it cannot be had now: :meth:`WebFetches.get_bytes`)."""
    data = fetches.get_bytes(cid, max_bytes, client)
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(data, media_type=media_type, headers=headers)


@pages.get("/projects/{project_id}/rounds/{round_}/proof-document")
def proof_document(svc: ProjectsDep, fetches: FetchesDep, client: ClientDep, project_id: int, round_: int) -> Response:
    """The round's proof document (JSON, as the aggregator pinned it)."""
    view = _finalized(svc.detail(project_id), round_)
    name = f"project-{project_id}-round-{round_}-proof.json"
    return _download(fetches, client, view.proof_cid, MAX_PROOF_DOCUMENT_BYTES, name, "application/json")


@pages.get("/projects/{project_id}/rounds/{round_}/model")
def round_model(svc: ProjectsDep, fetches: FetchesDep, client: ClientDep, project_id: int, round_: int) -> Response:
    """The global model after the round (safetensors)."""
    view = _finalized(svc.detail(project_id), round_)
    name = f"project-{project_id}-round-{round_}-model.safetensors"
    return _download(fetches, client, view.model_cid, DEFAULT_MAX_BYTES, name, "application/octet-stream")


@pages.get("/projects/{project_id}/model")
def latest_model(svc: ProjectsDep, fetches: FetchesDep, client: ClientDep, project_id: int) -> Response:
    """The model of the latest finalized round (the final model once the project finished); 404 before any."""
    rounds = svc.detail(project_id).rounds
    if not rounds:
        raise NotFound(f"project {project_id} has no finalized round yet: no trained model to download")
    last = rounds[-1]
    name = f"project-{project_id}-round-{last.round}-model.safetensors"
    return _download(fetches, client, last.model_cid, DEFAULT_MAX_BYTES, name, "application/octet-stream")
