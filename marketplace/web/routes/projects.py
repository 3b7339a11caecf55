"""Projects: the list (filtered, sorted) and a project's detail, as JSON and as pages; the "post a job"
form (its transaction comes from :mod:`~marketplace.web.services.transactions`); a project's "join"
page (the command a trainer runs)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from marketplace.adapters.chain.market import PROTOCOL_FEE_BPS, ProjectConfig
from marketplace.adapters.chain.redact import redact_url, redact_urls
from marketplace.protocol.model_card import ModelCard
from marketplace.web.deps import (
    ClientDep,
    FetchesDep,
    ModelsDep,
    PageDep,
    ProjectsDep,
    SettingsDep,
    TransactionsDep,
    VerifiersDep,
)
from marketplace.web.forms import DEFAULTS, FORM_FIELD, LABELS, FormErrors, parse_card, parse_job
from marketplace.web.page_cache import mark_chain_time
from marketplace.web.routes.paging import PAGE_SIZE, Limit, Offset, page_of
from marketplace.web.schemas import WEI_PER_ETH, Paged, ProjectDetail, ProjectSummary
from marketplace.web.services.errors import InvalidInput, NotFound, Rejected, TooManyRequests, Unavailable
from marketplace.web.services.models import ModelService
from marketplace.web.services.project_pages import project_context
from marketplace.web.services.projects import SORT_KEYS, STATUSES
from marketplace.web.services.verifiers import VerifierService

api = APIRouter()
pages = APIRouter(include_in_schema=False)


# ---------------------------------------------------------------------------- JSON


@api.get("/projects", response_model=Paged[ProjectSummary])
def projects(
    svc: ProjectsDep,
    status: Literal["open", "training", "finished", "cancelled"] | None = None,
    model: str | None = None,
    min_budget_eth: Annotated[
        float | None,
        Query(ge=0, allow_inf_nan=False, description="only projects whose reward budget is at least this, in ETH"),
    ] = None,
    min_budget: Annotated[
        str | None,
        Query(pattern=r"^[0-9]{1,40}$", description="only projects whose reward budget is at least this, in wei"),
    ] = None,
    max_reliability_bps: Annotated[
        int | None,
        Query(ge=0, le=10_000, description="only projects whose minimum reliability is at most this, basis points"),
    ] = None,
    q: Annotated[str | None, Query(description="project id, owner address or model")] = None,
    sort: Literal["newest", "oldest", "budget", "rounds", "trainers", "reliability"] = "newest",
    limit: Limit = PAGE_SIZE,
    offset: Offset = 0,
) -> Paged[ProjectSummary]:
    """The projects on the network, filtered and sorted, a page at a time."""
    floor = eth_to_wei(min_budget_eth)
    if min_budget is not None:
        floor = max(floor or 0, int(min_budget))
    return page_of(svc.projects(status, model, floor, max_reliability_bps, q, sort), limit, offset)


@api.get("/projects/{project_id}", response_model=ProjectDetail)
def project(svc: ProjectsDep, project_id: int, response: Response) -> ProjectDetail:
    """A project with its trainers, rounds (scores, flags, rewards) and payouts."""
    detail = svc.project_detail(project_id)
    mark_chain_time(response, detail.open_round is not None)  # the open round's phase follows the clock
    return detail


# ---------------------------------------------------------------------------- pages


def eth_to_wei(value: float | None) -> Decimal | None:
    """An amount of ETH typed as a number, in wei: the decimal typed (0.1 is not 0.1000000000000000055...), exact at
    any size (1e300 ETH overflowed ``int(float)``)."""
    return None if value is None else Decimal(repr(value)) * WEI_PER_ETH


def pct_to_bps(value: float | None) -> Decimal | None:
    """A percentage typed as a number, in basis points (0.29 % is 29 bps, not 28.999999999999996)."""
    return None if value is None else Decimal(repr(value)) * 100


def _number(value: str | None) -> float | None:
    """A finite number typed into a filter, else None ("nan", "inf" and "1e999" are not amounts)."""
    try:
        number = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return number if number is None or math.isfinite(number) else None


@pages.get("/")
def home() -> Response:
    return RedirectResponse("/projects", status_code=307)


@pages.get("/projects")
def projects_page(
    page: PageDep,
    svc: ProjectsDep,
    catalogue: ModelsDep,
    labels: VerifiersDep,
    status: str = "",
    model: str = "",
    min_budget_eth: str = "",
    max_reliability_pct: str = "",
    q: str = "",
    sort: str = "newest",
) -> Response:
    """Every project; the filter form re-renders only the table with htmx."""
    notes = []
    budget, reliability = _number(min_budget_eth), _number(max_reliability_pct)
    if min_budget_eth and budget is None:
        notes.append(f"ignored minimum budget {min_budget_eth!r}: not a number")
    if max_reliability_pct and reliability is None:
        notes.append(f"ignored reliability {max_reliability_pct!r}: not a number")
    chosen = status if status in STATUSES else None
    items = svc.projects(chosen, model or None, eth_to_wei(budget), pct_to_bps(reliability), q or None, sort)
    context = {
        "projects": items,
        "proves_nothing": {v for v in {p.verifier for p in items} if labels.label(v).proves_nothing},
        "notes": notes,
        "filters": {
            "status": status, "model": model, "min_budget_eth": min_budget_eth,
            "max_reliability_pct": max_reliability_pct, "q": q, "sort": sort if sort in SORT_KEYS else "newest",
        },
        "statuses": STATUSES,
        "sorts": list(SORT_KEYS),
        "models": catalogue.registry,
    }  # fmt: skip
    if page.htmx and page.htmx_target == "project-table":
        return page.render("_project_table.html", context)
    return page.render("projects.html", context)


def _job_context(
    catalogue: ModelService,
    verifiers: list[str],
    values: dict[str, str],
    errors: dict[str, str],
    labels: VerifierService | None = None,
) -> dict[str, Any]:
    """The job form's context; with ``labels``, the approved verifiers' labels (``verifier_options``, those that
    prove something first) and the chosen one's (``verifier``)."""
    context = {
        "values": values, "errors": errors, "labels": LABELS, "models": catalogue.registry, "verifiers": verifiers,
        "protocol_fee_bps": PROTOCOL_FEE_BPS,
    }  # fmt: skip
    if labels is not None:
        context["verifier_options"] = labels.approved()
        chosen = values.get("verifier")
        context["verifier"] = labels.label(chosen) if chosen else None
    return context


@pages.get("/projects/new")
def new_job_page(page: PageDep, txs: TransactionsDep, catalogue: ModelsDep, labels: VerifiersDep) -> Response:
    values = dict(DEFAULTS)
    verifiers = txs.verifiers()
    size = values.get("max_trainers")
    default = txs.default_verifier(int(size) if str(size).isdigit() else None)
    if default:
        values["verifier"] = default
    return page.render("new_job.html", _job_context(catalogue, verifiers, values, {}, labels))


@pages.post("/projects/new")
async def new_job_submit(
    request: Request,
    page: PageDep,
    txs: TransactionsDep,
    catalogue: ModelsDep,
    labels: VerifiersDep,
    fetches: FetchesDep,
    client: ClientDep,
) -> Response:
    """Validates the form; answers with the form and its messages, or the transaction to sign. A model card typed
    into the form is put into the initial weights' header (a new CID, pinned to the server's node: the transaction
    names that one). With ``?edit=1`` (the review step's "Edit") it answers with the form holding the posted values,
    unvalidated."""
    # The form is urlencoded (HTML and htmx default); parsed here, no multipart dependency needed.
    values = dict(parse_qsl((await request.body()).decode("utf-8", errors="replace"), keep_blank_values=True))
    template = "_job_form.html" if page.htmx else "new_job.html"
    verifiers = txs.verifiers()
    if request.query_params.get("edit"):  # "Edit" on the review step: the form again, with what was typed
        return page.render(template, _job_context(catalogue, verifiers, values, {}, labels))
    errors: dict[str, str] = {}
    config: ProjectConfig | None = None
    card: ModelCard | None = None
    try:
        config = parse_job(values, catalogue.names, verifiers)
    except FormErrors as exc:
        errors.update(exc.errors)
    try:
        card = parse_card(values)
    except FormErrors as exc:
        errors.update(exc.errors)
    if errors or config is None:
        return page.render(template, _job_context(catalogue, verifiers, values, errors, labels), status=422)
    weights = config.initial_model_cid
    try:
        tx = txs.create_tx(config, values.get("sender") or None)  # a refusal is said before anything is pinned
        if card is not None:  # the card goes into the initial weights' header: the contract keeps their CID only
            # Off the event loop: an IPFS fetch of up to the visitor fetches' timeout, a load and a pin (attack
            # review of issue 14: run inline it held every other request of the server meanwhile).
            described = await run_in_threadpool(catalogue.describe, weights, card, client, fetches)
            config = config.model_copy(update={"initial_model_cid": described})
            tx = txs.create_tx(config, values.get("sender") or None)
    except InvalidInput as exc:  # the weights could not be given the card
        errors = {k: redact_urls(v)[:400] for k, v in exc.errors.items()}
        return page.render(template, _job_context(catalogue, verifiers, values, errors, labels), status=422)
    except (Unavailable, TooManyRequests) as exc:
        errors = {"": redact_urls(str(exc))}
        return page.render(template, _job_context(catalogue, verifiers, values, errors, labels), status=422)
    except Rejected as exc:  # the chain would refuse it: the field at fault, if one is, else the whole form
        field = FORM_FIELD.get(exc.field, exc.field) if exc.field else ""
        message = exc.sentence if field and exc.sentence else str(exc)
        if field:  # words that follow the field's label
            message = f"is refused by the market: {message}"
        errors = {field: redact_urls(message)}  # a chain that did not answer is named by its URL
        return page.render(template, _job_context(catalogue, verifiers, values, errors, labels), status=422)
    except NotFound:  # a malformed wallet address: the form keeps what was typed and says why
        message = "Your wallet's address is not an Ethereum address (0x followed by 40 hex digits): reconnect it."
        return page.render(template, _job_context(catalogue, verifiers, values, {"": message}, labels), status=422)
    context = {
        **_job_context(catalogue, verifiers, values, {}, labels), "tx": tx, "config": config, "card": card,
        "weights": weights,
    }  # fmt: skip
    return page.render("_job_tx.html" if template == "_job_form.html" else "new_job.html", context)


@pages.get("/projects/{project_id}")
def project_page(
    page: PageDep, svc: ProjectsDep, labels: VerifiersDep, catalogue: ModelsDep, project_id: int
) -> Response:
    detail = svc.project_detail(project_id)
    context = project_context(detail) | {
        "verifier": labels.label(detail.project.verifier),
        "architecture": catalogue.registry.get(detail.project.model_name),
    }
    return mark_chain_time(page.render("project.html", context), detail.open_round is not None)


@pages.get("/projects/{project_id}/join")
def join_page(
    page: PageDep,
    svc: ProjectsDep,
    settings: SettingsDep,
    labels: VerifiersDep,
    catalogue: ModelsDep,
    project_id: int,
) -> Response:
    """What joining takes (stake, bar, periods), what is being trained (the model card), and the command to run."""
    project = svc.project(project_id)
    command = f"marketplace trainer run {project_id} --data <your-data.npz>"
    if settings.network != "local":
        command += f" --network {settings.network}"
    command += " --keystore <your-wallet.json>"
    if settings.ipfs_api:
        command += f" --ipfs-api {redact_url(settings.ipfs_api)}"  # the server's credentials stay private
    card_state, card = svc.model_card(project_id)
    context = {
        "p": project, "bar": svc.reliability_bar(project), "command": command, "model_card": card,
        "model_card_state": card_state, "architecture": catalogue.registry.get(project.model_name),
    }  # fmt: skip
    return page.render("join.html", {**context, "verifier": labels.label(project.verifier)})
