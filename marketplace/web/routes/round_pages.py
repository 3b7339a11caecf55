"""A finalized round's own page (``/projects/{id}/rounds/{n}``: scores as shares, rewards, every flag with its
reasons, the verify buttons), the reasons the rule gives for its flags recomputed from public data (an htmx
partial: the recomputation fetches the round's updates), the project page's live part (polled by htmx while the
project is open or training) and the downloads: a round's proof document and model, the project's latest model.

Downloads are fetched through the server's IPFS node and checked against their CID before they are served.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from marketplace.adapters.ipfs.errors import StorageError
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.adapters.ipfs.tensors import DEFAULT_MAX_BYTES
from marketplace.protocol.proof_document import MAX_PROOF_DOCUMENT_BYTES
from marketplace.web.deps import PageDep, ProjectsDep, SettingsDep, Synced, VerifiersDep
from marketplace.web.filters import when
from marketplace.web.page_cache import mark_chain_time
from marketplace.web.schemas import ProjectDetail, RoundView
from marketplace.web.services.errors import NotFound, Unavailable
from marketplace.web.services.flag_reasons import FlagReasonService, chain_causes, public_recompute
from marketplace.web.services.project_pages import neighbours, project_context
from marketplace.web.settings import WebSettings

pages = APIRouter(include_in_schema=False)


def get_flag_reasons(request: Request, services: Synced, settings: SettingsDep) -> FlagReasonService:
    """The app's :class:`FlagReasonService` (made on first use, kept in ``app.state``)."""
    state = request.app.state
    if getattr(state, "flag_reasons", None) is None:
        state.flag_reasons = FlagReasonService(public_recompute(services.context.market, settings.ipfs_api))
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
def round_page(page: PageDep, svc: ProjectsDep, labels: VerifiersDep, project_id: int, round_: int) -> Response:
    """One finalized round: every trainer's commit, reveal, flag and its reasons, score share and reward."""
    detail = svc.detail(project_id)
    view = _finalized(detail, round_)
    row = next(r for r in svc.indexer.rounds(project_id) if r["round"] == round_)
    words = row["reasons"]  # the aggregator's stated causes of its rejections (proof document)
    causes = {e.trainer: chain_causes(e, words.get(e.trainer), when) for e in view.trainers}
    before, after = neighbours(detail, round_)
    context = {"d": detail, "p": detail.project, "r": view, "causes": causes, "before": before, "after": after}
    context["verifier"] = labels.label(detail.project.verifier)
    return page.render("round.html", context)


@pages.get("/projects/{project_id}/rounds/{round_}/flag-causes")
def flag_causes(page: PageDep, svc: ProjectsDep, reasons: FlagReasonsDep, project_id: int, round_: int) -> Response:
    """The rule's causes of the round's flags, recomputed from the revealed updates (htmx partial)."""
    view = _finalized(svc.detail(project_id), round_)
    result = reasons.causes(project_id, round_)
    return page.render("_flag_causes.html", {"r": view, "result": result})


def _download(settings: WebSettings, cid: str, max_bytes: int, filename: str, media_type: str) -> Response:
    """The object at ``cid`` from the server's IPFS node, checked against its CID, as an attachment."""
    if not settings.ipfs_api:
        raise Unavailable("this server has no IPFS node to download from")
    try:
        with IpfsClient(settings.ipfs_api, timeout=max(settings.ipfs_timeout, 30.0), retries=0) as client:
            data = ModelStore(client).get_bytes(cid, max_bytes=max_bytes)
    except StorageError as exc:
        raise Unavailable(f"the IPFS node did not deliver {cid}: {type(exc).__name__}: {exc}") from None
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(data, media_type=media_type, headers=headers)


@pages.get("/projects/{project_id}/rounds/{round_}/proof-document")
def proof_document(svc: ProjectsDep, settings: SettingsDep, project_id: int, round_: int) -> Response:
    """The round's proof document (JSON, as the aggregator pinned it)."""
    view = _finalized(svc.detail(project_id), round_)
    name = f"project-{project_id}-round-{round_}-proof.json"
    return _download(settings, view.proof_cid, MAX_PROOF_DOCUMENT_BYTES, name, "application/json")


@pages.get("/projects/{project_id}/rounds/{round_}/model")
def round_model(svc: ProjectsDep, settings: SettingsDep, project_id: int, round_: int) -> Response:
    """The global model after the round (safetensors)."""
    view = _finalized(svc.detail(project_id), round_)
    name = f"project-{project_id}-round-{round_}-model.safetensors"
    return _download(settings, view.model_cid, DEFAULT_MAX_BYTES, name, "application/octet-stream")


@pages.get("/projects/{project_id}/model")
def latest_model(svc: ProjectsDep, settings: SettingsDep, project_id: int) -> Response:
    """The model of the latest finalized round (the final model once the project finished); 404 before any."""
    rounds = svc.detail(project_id).rounds
    if not rounds:
        raise NotFound(f"project {project_id} has no finalized round yet: no trained model to download")
    last = rounds[-1]
    name = f"project-{project_id}-round-{last.round}-model.safetensors"
    return _download(settings, last.model_cid, DEFAULT_MAX_BYTES, name, "application/octet-stream")
