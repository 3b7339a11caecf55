"""HTML pages (Jinja2 templates, htmx for partial updates). Wallet work happens in static/app.js."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from marketplace.web.api import service
from marketplace.web.app import base_context
from marketplace.web.forms import DEFAULTS, LABELS, FormErrors, parse_job
from marketplace.web.service import SORT_KEYS, STATUSES, MarketService, NotFound, Rejected

router = APIRouter(include_in_schema=False)


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    return request.app.state.templates.TemplateResponse(
        request, name, {**base_context(request), **context}, status_code=status
    )


def _number(value: str | None) -> float | None:
    """A finite number typed into a filter, else None ("nan", "inf" and "1e999" are not amounts)."""
    try:
        number = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return number if number is None or math.isfinite(number) else None


@router.get("/")
def home() -> Response:
    return RedirectResponse("/projects", status_code=307)


@router.get("/projects")
def projects_page(
    request: Request,
    status: str = "",
    model: str = "",
    min_budget_eth: str = "",
    max_reliability_pct: str = "",
    q: str = "",
    sort: str = "newest",
) -> Response:
    """Every project; the filter form re-renders only the table with htmx."""
    svc = service(request)
    notes = []
    budget, reliability = _number(min_budget_eth), _number(max_reliability_pct)
    if min_budget_eth and budget is None:
        notes.append(f"ignored minimum budget {min_budget_eth!r}: not a number")
    if max_reliability_pct and reliability is None:
        notes.append(f"ignored reliability {max_reliability_pct!r}: not a number")
    items = svc.projects(status if status in STATUSES else None, model or None, budget, reliability, q or None, sort)
    context = {
        "projects": items,
        "notes": notes,
        "filters": {
            "status": status, "model": model, "min_budget_eth": min_budget_eth,
            "max_reliability_pct": max_reliability_pct, "q": q, "sort": sort if sort in SORT_KEYS else "newest",
        },
        "statuses": STATUSES,
        "sorts": list(SORT_KEYS),
        "models": request.app.state.models,
    }  # fmt: skip
    if request.headers.get("HX-Request") == "true" and request.headers.get("HX-Target") == "project-table":
        return render(request, "_project_table.html", context)
    return render(request, "projects.html", context)


def _job_context(request: Request, values: dict[str, str], errors: dict[str, str]) -> dict[str, Any]:
    svc: MarketService = request.app.state.service
    return {
        "values": values,
        "errors": errors,
        "labels": LABELS,
        "models": request.app.state.models,
        "verifiers": svc.indexer.verifiers(),
    }


@router.get("/projects/new")
def new_job_page(request: Request) -> Response:
    svc = service(request)
    values = dict(DEFAULTS)
    verifiers = svc.indexer.verifiers()
    if verifiers:
        values["verifier"] = verifiers[0]
    return render(request, "new_job.html", _job_context(request, values, {}))


@router.post("/projects/new")
async def new_job_submit(request: Request) -> Response:
    """Validates the form; answers with the form and its messages, or the transaction to sign."""
    svc = service(request)
    # The form is urlencoded (HTML and htmx default); parsed here, no multipart dependency needed.
    values = dict(parse_qsl((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=True))
    template = "_job_form.html" if request.headers.get("HX-Request") == "true" else "new_job.html"
    try:
        config = parse_job(values, list(request.app.state.models), svc.indexer.verifiers())
        tx = svc.create_tx(config, values.get("sender") or None)
    except FormErrors as exc:
        return render(request, template, _job_context(request, values, exc.errors), status=422)
    except Rejected as exc:
        return render(request, template, _job_context(request, values, {"": str(exc)}), status=422)
    except NotFound as exc:  # a malformed wallet address: the form keeps what was typed and says why
        return render(request, template, _job_context(request, values, {"": f"wallet: {exc}"}), status=422)
    context = {**_job_context(request, values, {}), "tx": tx, "config": config}
    return render(request, "_job_tx.html" if template == "_job_form.html" else "new_job.html", context)


@router.get("/projects/{project_id}")
def project_page(request: Request, project_id: int) -> Response:
    svc = service(request)
    detail = svc.project_detail(project_id)
    charts = {
        "rounds": [r.round for r in detail.rounds],
        "accuracy": [r.accuracy for r in detail.rounds],
        "trainers": [f"#{m.index} {m.trainer[:6]}…{m.trainer[-4:]}" for m in detail.trainers],
        "shares": [[e.share for e in r.trainers] for r in detail.rounds],
    }
    return render(request, "project.html", {"d": detail, "p": detail.project, "charts": charts})


@router.post("/projects/{project_id}/rounds/{round_}/verify")
def verify_partial(request: Request, project_id: int, round_: int) -> Response:
    """The verifier's answer, rendered inline next to the round's button (htmx)."""
    svc = service(request)
    try:
        result = svc.verify_round(project_id, round_)
    except Rejected as exc:
        return render(request, "_verify_result.html", {"result": None, "error": str(exc)})
    return render(request, "_verify_result.html", {"result": result, "error": None})


@router.get("/projects/{project_id}/join")
def join_page(request: Request, project_id: int) -> Response:
    svc = service(request)
    project = svc.project(project_id)
    settings = request.app.state.settings
    command = f"marketplace trainer run {project_id} --data <your-data.npz>"
    if settings.network != "local":
        command += f" --network {settings.network}"
    command += " --keystore <your-wallet.json>"
    if settings.ipfs_api:
        command += f" --ipfs-api {settings.ipfs_api}"
    return render(request, "join.html", {"p": project, "command": command})


@router.get("/trainers")
def trainer_lookup(request: Request, address: str = "") -> Response:
    if address:
        return RedirectResponse(f"/trainers/{address.strip()}", status_code=303)
    return render(request, "trainer_lookup.html", {})


@router.get("/trainers/{address}")
def trainer_page(request: Request, address: str) -> Response:
    svc = service(request)
    profile = svc.trainer(address)
    chart = {
        "labels": ["start", *(f"P{h.project_id} R{h.round}" for h in profile.history)],
        "reliability": [50.0, *(h.reliability_bps / 100 for h in profile.history)],
        "outcomes": ["", *(h.outcome for h in profile.history)],
    }
    return render(request, "trainer.html", {"t": profile, "chart": chart})
