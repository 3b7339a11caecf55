"""Every service of one deployment, over one :class:`MarketContext`: what the app keeps in ``app.state``."""

from __future__ import annotations

from dataclasses import dataclass

from marketplace.web.services.aggregators import AggregatorService
from marketplace.web.services.bonds import BondService
from marketplace.web.services.context import MarketContext, connect
from marketplace.web.services.ipfs_fetches import WebFetches
from marketplace.web.services.models import ModelService, model_registry
from marketplace.web.services.pin_limits import PinLimiter
from marketplace.web.services.projects import ProjectService
from marketplace.web.services.round_recompute import RecomputeService, public_recompute
from marketplace.web.services.rounds import RoundService
from marketplace.web.services.trainers import TrainerService
from marketplace.web.services.transactions import TransactionService
from marketplace.web.services.verifiers import VerifierService
from marketplace.web.settings import WebSettings


@dataclass(frozen=True)
class Services:
    context: MarketContext
    projects: ProjectService
    rounds: RoundService
    trainers: TrainerService
    transactions: TransactionService
    models: ModelService
    aggregators: AggregatorService
    verifiers: VerifierService
    fetches: WebFetches
    recomputations: RecomputeService
    bonds: BondService

    @classmethod
    def over(
        cls, context: MarketContext, models: ModelService, fetches: WebFetches, failure_ttl: float = 60.0
    ) -> Services:
        """The services over ``context``; a round that could not be recomputed from public data is tried again after
        ``failure_ttl`` seconds."""
        projects = ProjectService(context)
        recomputations = RecomputeService(public_recompute(context.market, fetches), failure_ttl)
        bonds = BondService(context, projects)
        return cls(
            context=context,
            projects=projects,
            rounds=RoundService(context, projects, recomputations),
            trainers=TrainerService(context, projects),
            transactions=TransactionService(context, projects, bonds),
            models=models,
            aggregators=AggregatorService(context),
            verifiers=VerifierService(context),
            fetches=fetches,
            recomputations=recomputations,
            bonds=bonds,
        )

    @classmethod
    def for_settings(cls, settings: WebSettings) -> Services:
        """Connects to the settings' chain (ChainError if its chain id is not the deployment's) and opens the index."""
        limiter = PinLimiter(settings.pins_per_client, settings.pins_total, settings.pin_window)
        models = ModelService(model_registry(), settings.ipfs_api, limiter=limiter, max_bytes=settings.max_pin_bytes)
        fetches = WebFetches(
            settings.ipfs_api,
            total=settings.ipfs_fetches,
            per_client=settings.ipfs_fetches_per_client,
            timeout=settings.ipfs_fetch_timeout,
            failure_ttl=settings.ipfs_failure_ttl,
            cache_bytes=settings.ipfs_cache_bytes,
        )
        return cls.over(connect(settings), models, fetches, settings.ipfs_failure_ttl)
