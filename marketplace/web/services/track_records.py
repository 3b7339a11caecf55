"""What a trainer's reliability is made of, and what a project's reliability bar asks of it, in words.

* :func:`track_record` reads a trainer's record live from the registry (``trackRecordOf``, ``availableOf``):
  rounds contributed, flagged and missed, projects, distinct owners and wei earned, counting only independent
  projects (whose owner is not their aggregator; :data:`INDEPENDENCE_RULE`), and how much of what it earned is
  reserved by the bars of projects it is in (earned - available) and how much is available for a new join;
* :func:`reserved_for` reads what one project's bar holds reserved of a trainer's record (``reservedOf``);
* a project with a reliability bar (``min_reliability_bps > 0``) also requires an available record
  (``TrainingMarket.requiredTrackRecord``: the budget per guaranteed trainer, ``minTrainers``, over the protocol
  fee rate): :func:`project_bar` reads it live for a project on chain, :func:`config_bar` computes it as the
  contract will (``ProjectConfig.required_track_record``) for a job not yet created. Joining reserves it until
  the trainer withdraws; a round the trainer is flagged in spends it (:data:`RESERVATION_RULE`);
* ``ReliabilityTooLow`` and ``TrackRecordTooSmall`` (``join`` refused) are put in words with the other custom
  errors (:data:`marketplace.web.errors.CUSTOM_ERRORS`), with :data:`PER_GUARANTEED_TRAINER` and :data:`WHY_EARNED`.

Amounts in the sentences are exact ETH (:func:`~marketplace.web.schemas.eth`).
"""

from __future__ import annotations

from marketplace.adapters.chain.market import PROTOCOL_FEE_BPS, MarketClient, ProjectConfig
from marketplace.adapters.chain.market import TrackRecord as ChainTrackRecord
from marketplace.web.filters import bps
from marketplace.web.schemas import ReliabilityBar, TrackRecord, eth
from marketplace.web.services.chain_reads import ChainReads

#: What counts in a track record, in one sentence (the trainer page and the API say it next to the record).
INDEPENDENCE_RULE = (
    "Only projects whose owner is not their aggregator count: where the owner aggregates its own project it "
    "decides every outcome alone, so those rounds and rewards are left out of the record."
)
#: What the bar protects: the part of the budget a guaranteed trainer can be paid.
PER_GUARANTEED_TRAINER = "budget per guaranteed trainer (minimum trainers)"
#: Why a reliability bar asks for an earned record.
WHY_EARNED = f"farming this bar by self-dealing burns at least the {PER_GUARANTEED_TRAINER} it protects"
#: What joining a barred project does to the record, in one sentence.
RESERVATION_RULE = (
    "Joining a project with a reliability bar reserves the record it requires until the trainer withdraws from "
    "that project, and a round the trainer is flagged in spends the reservation (it is taken off the earned "
    "record): only the available record (earned, not reserved) counts for a new join."
)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def track_record_view(record: ChainTrackRecord, available: int) -> TrackRecord:
    """``record`` as the API shows it, ``available`` wei of its earned record not reserved by a bar (so
    ``earned - available`` is reserved), with a sentence, :data:`INDEPENDENCE_RULE` and :data:`RESERVATION_RULE`.
    ValueError if ``available`` is not within ``[0, earned]`` (the registry guarantees it is)."""
    if not 0 <= available <= record.earned:
        raise ValueError(f"available record {available} is not within [0, {record.earned}] earned")
    reserved = record.earned - available
    if record.rounds:
        summary = (
            f"{_plural(record.rounds, 'round')} ({record.contributed} contributed, {record.flagged} flagged, "
            f"{record.missed} missed) in {_plural(record.projects, 'independent project')} of "
            f"{_plural(record.owners, 'distinct owner')}; {eth(record.earned)} ETH earned in them, "
            f"{eth(reserved)} ETH of it reserved by reliability bars, {eth(available)} ETH available"
        )
    else:
        summary = "no rounds in independent projects yet; 0 ETH earned in them"
    return TrackRecord(
        contributed=record.contributed, flagged=record.flagged, missed=record.missed, rounds=record.rounds,
        projects=record.projects, owners=record.owners, earned=str(record.earned), earned_eth=eth(record.earned),
        reserved=str(reserved), reserved_eth=eth(reserved), available=str(available), available_eth=eth(available),
        summary=summary, rule=INDEPENDENCE_RULE, reservation_rule=RESERVATION_RULE,
    )  # fmt: skip


def track_record(market: MarketClient | ChainReads, trainer: str) -> TrackRecord:
    """``trainer``'s track record, live from the registry (``trackRecordOf`` and ``availableOf``)."""
    return track_record_view(market.track_record(trainer), market.available_record(trainer))


def reserved_for(market: MarketClient | ChainReads, project_id: int, trainer: str) -> int:
    """Wei of ``trainer``'s record the bar of ``project_id`` (of this market) holds reserved, live from the
    registry (``reservedOf``): 0 without a bar, after it withdrew, or once a flagged round spent it."""
    return market.reserved_record(project_id, trainer)


def bar_view(min_reliability_bps: int, required: int, reward_budget: int, min_trainers: int) -> ReliabilityBar | None:
    """The bar of a project with these parameters that requires ``required`` wei of available record (None
    without a bar). ``protected`` is the budget per guaranteed trainer, ``reward_budget // min_trainers``."""
    if min_reliability_bps == 0:
        return None
    protected = reward_budget // min_trainers
    summary = (
        f"at least {bps(min_reliability_bps)} reliability and {eth(required)} ETH of record earned in independent "
        f"projects and not reserved by another bar: the {PER_GUARANTEED_TRAINER}, {eth(protected)} ETH, divided "
        f"by the {bps(PROTOCOL_FEE_BPS)} protocol fee, because {WHY_EARNED}; joining reserves it until the trainer "
        "withdraws, and a round it is flagged in spends it"
    )
    return ReliabilityBar(
        min_reliability_bps=min_reliability_bps, required_earned=str(required), required_earned_eth=eth(required),
        protected=str(protected), protected_eth=eth(protected), protocol_fee_bps=PROTOCOL_FEE_BPS, summary=summary,
        reservation_rule=RESERVATION_RULE,
    )  # fmt: skip


def config_bar(config: ProjectConfig) -> ReliabilityBar | None:
    """The bar a job not yet on chain will set (``ProjectConfig.required_track_record``); None without a bar."""
    bar, budget, guaranteed = config.min_reliability_bps, config.reward_budget, config.min_trainers
    return bar_view(bar, config.required_track_record, budget, guaranteed)


def project_bar(
    market: MarketClient | ChainReads, project_id: int, min_reliability_bps: int, reward_budget: int, min_trainers: int
) -> ReliabilityBar | None:
    """A project's bar, its required record live from the market (``requiredTrackRecord``, one ``eth_call``
    when it has a bar); None without a bar."""
    if min_reliability_bps == 0:
        return None
    required = market.required_track_record(project_id)
    return bar_view(min_reliability_bps, required, reward_budget, min_trainers)
