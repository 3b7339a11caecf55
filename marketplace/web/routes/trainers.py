"""Trainers: a trainer's reliability and history, as JSON and as a page, and the page to look one up."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from marketplace.web.deps import PageDep, TrainersDep
from marketplace.web.schemas import TrainerProfile

api = APIRouter()
pages = APIRouter(include_in_schema=False)


@api.get("/trainers/{address}", response_model=TrainerProfile)
def trainer(svc: TrainersDep, address: str) -> TrainerProfile:
    """A trainer's reliability, what it is made of (rounds, independent projects, distinct owners, ETH earned in
    them, how much of it reliability bars hold reserved and how much is available; live from the registry) and its
    history across projects."""
    return svc.trainer(address)


@pages.get("/trainers")
def trainer_lookup(page: PageDep, address: str = "") -> Response:
    if address:
        return RedirectResponse(f"/trainers/{address.strip()}", status_code=303)
    return page.render("trainer_lookup.html", {})


@pages.get("/trainers/{address}")
def trainer_page(page: PageDep, svc: TrainersDep, address: str) -> Response:
    profile = svc.trainer(address)
    chart = {
        "labels": ["start", *(f"P{h.project_id} R{h.round}" for h in profile.history)],
        "reliability": [50.0, *(h.reliability_bps / 100 for h in profile.history)],
        "outcomes": ["", *(h.outcome for h in profile.history)],
    }
    return page.render("trainer.html", {"t": profile, "chart": chart})
