"""A finalized round's own page (``/projects/{id}/rounds/{n}``: scores as shares, rewards, every flag with its
reasons, the owner's reference row, the verify buttons), the page saying what the owner's reference is
(``/about/owner-reference``), the reasons the rule gives for its flags and what the owner's reference changed in
the round's pay, both recomputed from public data (two htmx partials sharing one recomputation, which fetches the
round's updates: :mod:`~marketplace.web.services.round_recompute`), the project page's live part (polled by htmx
while the project is open or training) and the downloads: a round's proof document and model, the project's latest
model.

Downloads are fetched through the server's IPFS node and checked against their CID before they are served; these
fetches, and the recomputation's, are cached and bounded (:mod:`~marketplace.web.services.ipfs_fetches`): a
request beyond the bounds gets 503 with ``Retry-After``.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from marketplace.adapters.ipfs.tensors import DEFAULT_MAX_BYTES
from marketplace.protocol.proof_document import MAX_PROOF_DOCUMENT_BYTES
from marketplace.rule.aggregate import REFERENCE_STEP_BAR
from marketplace.web.deps import (
    ClientDep,
    FetchesDep,
    PageDep,
    ProjectsDep,
    RecomputeDep,
    RoundsDep,
    VerifiersDep,
)
from marketplace.web.errors import retry_headers
from marketplace.web.filters import when
from marketplace.web.page_cache import mark_chain_time
from marketplace.web.schemas import ProjectDetail, RoundView
from marketplace.web.services.errors import NotFound, Unavailable
from marketplace.web.services.flag_reasons import chain_causes
from marketplace.web.services.ipfs_fetches import WebFetches
from marketplace.web.services.project_pages import neighbours, project_context
from marketplace.web.services.reference_effects import not_now
from marketplace.web.services.round_recompute import Recomputed

pages = APIRouter(include_in_schema=False)


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
    page: PageDep, svc: ProjectsDep, recomputations: RecomputeDep, client: ClientDep, project_id: int, round_: int
) -> Response:
    """The rule's causes of the round's flags, recomputed from the revealed updates (htmx partial). When the server
    runs all the IPFS fetches it allows for visitors, the partial says so, with 503 and ``Retry-After`` (an error
    page would be swapped into the round's page)."""
    view = _finalized(svc.detail(project_id), round_)
    try:
        result, status, headers = recomputations.get(project_id, round_, client), 200, None
    except Unavailable as exc:
        result, status, headers = Recomputed({}, _lower(exc)), 503, retry_headers(exc)
    response = page.render("_flag_causes.html", {"r": view, "result": result}, status)
    response.headers.update(headers or {})
    return response


@pages.get("/projects/{project_id}/rounds/{round_}/reference-changes")
def reference_changes(
    page: PageDep, svc: ProjectsDep, rounds: RoundsDep, client: ClientDep, project_id: int, round_: int
) -> Response:
    """What the owner's reference changed in the round's pay, recomputed from public data (htmx partial): whom it
    left unpaid that the rule without it pays, whom it paid that the rule without it does not. When the server runs
    all the IPFS fetches it allows for visitors, the partial says so, with 503 and ``Retry-After``."""
    detail = svc.detail(project_id)
    view = _finalized(detail, round_)
    try:
        changes, status, headers = rounds.reference_changes(project_id, round_, client), 200, None
    except Unavailable as exc:
        changes, status, headers = not_now(_lower(exc)), 503, retry_headers(exc)
    response = page.render("_reference_changes.html", {"p": detail.project, "r": view, "changes": changes}, status)
    response.headers.update(headers or {})
    return response


def _lower(exc: Exception) -> str:
    """The sentence of ``exc`` to go on after a colon: lower-case first letter, no final full stop."""
    words = str(exc).rstrip(".")
    return words[:1].lower() + words[1:]


@pages.get("/about/owner-reference")
def about_owner_reference(page: PageDep) -> Response:
    """What the owner's reference row is, what it can and cannot change, what it keeps out of the model (the
    screen's bar, :data:`~marketplace.rule.aggregate.REFERENCE_STEP_BAR`; docs/design/robust-reference.md)."""
    return page.render("about_reference.html", {"step_bar": REFERENCE_STEP_BAR})


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
