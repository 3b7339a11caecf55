"""FastAPI dependencies: the settings, the services and the page renderer, taken from ``request.app.state``
(which :func:`marketplace.web.main.create_app` fills); routes never import the app.

The services come in two kinds: those that read the index (projects, rounds, trainers, aggregators, bonds,
transactions, the context) have it synced first when the app syncs in requests
(:meth:`~marketplace.web.services.context.MarketContext.sync_for_request`: throttled to once per ``sync_interval``,
and once per request however many of them a route takes, since FastAPI caches a dependency within a request; a
background thread keeps it fresh otherwise, and requests never wait for a sync); the model catalogue, the IPFS
fetches and the page renderer need no chain data and do not. :data:`ClientDep` is the client a request comes from,
as the limits per client count it (:func:`~marketplace.web.services.client_keys.client_key`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from marketplace.web.services.aggregators import AggregatorService
from marketplace.web.services.bonds import BondService
from marketplace.web.services.client_keys import client_key
from marketplace.web.services.container import Services
from marketplace.web.services.context import MarketContext
from marketplace.web.services.ipfs_fetches import WebFetches
from marketplace.web.services.models import ModelService
from marketplace.web.services.projects import ProjectService
from marketplace.web.services.round_recompute import RecomputeService
from marketplace.web.services.rounds import RoundService
from marketplace.web.services.trainers import TrainerService
from marketplace.web.services.transactions import TransactionService
from marketplace.web.services.verifiers import VerifierService
from marketplace.web.settings import WebSettings
from marketplace.web.templating import Page


def get_settings(request: Request) -> WebSettings:
    settings: WebSettings = request.app.state.settings
    return settings


def get_services(request: Request) -> Services:
    """The app's services, the index as it is."""
    services: Services = request.app.state.services
    return services


def synced_services(services: Annotated[Services, Depends(get_services)]) -> Services:
    """The app's services, the index synced if the app syncs in requests (throttled)."""
    services.context.sync_for_request()
    return services


Synced = Annotated[Services, Depends(synced_services)]


def get_context(services: Synced) -> MarketContext:
    return services.context


def get_projects(services: Synced) -> ProjectService:
    return services.projects


def get_rounds(services: Synced) -> RoundService:
    return services.rounds


def get_recomputations(services: Synced) -> RecomputeService:
    return services.recomputations


def get_trainers(services: Synced) -> TrainerService:
    return services.trainers


def get_aggregators(services: Synced) -> AggregatorService:
    return services.aggregators


def get_bonds(services: Synced) -> BondService:
    return services.bonds


def get_transactions(services: Synced) -> TransactionService:
    return services.transactions


def get_verifiers(services: Synced) -> VerifierService:
    return services.verifiers


def get_models(services: Annotated[Services, Depends(get_services)]) -> ModelService:
    return services.models


def get_fetches(services: Annotated[Services, Depends(get_services)]) -> WebFetches:
    return services.fetches


def get_client(request: Request) -> str:
    """The key of the client ``request`` comes from (an IPv6 client's /64)."""
    return client_key(request.client.host if request.client is not None else None)


def get_page(request: Request) -> Page:
    """Renders templates for ``request`` (also used by the error handlers, outside dependency injection)."""
    services = get_services(request)
    return Page(request, request.app.state.templates, get_settings(request), services.context.market.market.address)


SettingsDep = Annotated[WebSettings, Depends(get_settings)]
ContextDep = Annotated[MarketContext, Depends(get_context)]
ProjectsDep = Annotated[ProjectService, Depends(get_projects)]
RoundsDep = Annotated[RoundService, Depends(get_rounds)]
RecomputeDep = Annotated[RecomputeService, Depends(get_recomputations)]
TrainersDep = Annotated[TrainerService, Depends(get_trainers)]
AggregatorsDep = Annotated[AggregatorService, Depends(get_aggregators)]
TransactionsDep = Annotated[TransactionService, Depends(get_transactions)]
BondsDep = Annotated[BondService, Depends(get_bonds)]
VerifiersDep = Annotated[VerifierService, Depends(get_verifiers)]
ModelsDep = Annotated[ModelService, Depends(get_models)]
FetchesDep = Annotated[WebFetches, Depends(get_fetches)]
ClientDep = Annotated[str, Depends(get_client)]
PageDep = Annotated[Page, Depends(get_page)]
