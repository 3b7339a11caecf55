"""What a trainer's reliability is made of, and what a project's reliability bar asks of it, in words.

* :func:`track_record` reads a trainer's record live from the registry (``trackRecordOf``): rounds contributed,
  flagged and missed, projects, distinct owners and wei earned, counting only independent projects (whose owner
  is not their aggregator; :data:`INDEPENDENCE_RULE`);
* a project with a reliability bar (``min_reliability_bps > 0``) also requires an earned record
  (``TrainingMarket.requiredTrackRecord``): :func:`project_bar` reads it live for a project on chain,
  :func:`config_bar` computes it as the contract will (``ProjectConfig.required_track_record``) for a job
  not yet created;
* :func:`explain_bar_refusal` puts ``ReliabilityTooLow`` and ``TrackRecordTooSmall`` (``join`` refused) in words.

Amounts in the sentences are exact ETH (:func:`~marketplace.web.schemas.eth`).
"""

from __future__ import annotations

from marketplace.adapters.chain.errors import ContractRevert
from marketplace.adapters.chain.market import PROTOCOL_FEE_BPS, MarketClient, ProjectConfig
from marketplace.adapters.chain.market import TrackRecord as ChainTrackRecord
from marketplace.web.filters import bps
from marketplace.web.schemas import ReliabilityBar, TrackRecord, eth

#: What counts in a track record, in one sentence (the trainer page and the API say it next to the record).
INDEPENDENCE_RULE = (
    "Only projects whose owner is not their aggregator count: where the owner aggregates its own project it "
    "decides every outcome alone, so those rounds and rewards are left out of the record."
)
#: Why a reliability bar asks for an earned record.
WHY_EARNED = "farming this bar by self-dealing burns at least the budget per slot it protects"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def track_record_view(record: ChainTrackRecord) -> TrackRecord:
    """``record`` as the API shows it, with a sentence and :data:`INDEPENDENCE_RULE`."""
    if record.rounds:
        summary = (
            f"{_plural(record.rounds, 'round')} ({record.contributed} contributed, {record.flagged} flagged, "
            f"{record.missed} missed) in {_plural(record.projects, 'independent project')} of "
            f"{_plural(record.owners, 'distinct owner')}; {eth(record.earned)} ETH earned in them"
        )
    else:
        summary = "no rounds in independent projects yet; 0 ETH earned in them"
    return TrackRecord(
        contributed=record.contributed, flagged=record.flagged, missed=record.missed, rounds=record.rounds,
        projects=record.projects, owners=record.owners, earned=str(record.earned), earned_eth=eth(record.earned),
        summary=summary, rule=INDEPENDENCE_RULE,
    )  # fmt: skip


def track_record(market: MarketClient, trainer: str) -> TrackRecord:
    """``trainer``'s track record, live from the registry (``trackRecordOf``)."""
    return track_record_view(market.track_record(trainer))


def bar_view(min_reliability_bps: int, required: int, reward_budget: int, max_trainers: int) -> ReliabilityBar | None:
    """The bar of a project with these parameters that requires ``required`` wei earned (None without a bar)."""
    if min_reliability_bps == 0:
        return None
    protected = reward_budget // max_trainers
    summary = (
        f"at least {bps(min_reliability_bps)} reliability and {eth(required)} ETH earned in independent projects: "
        f"the budget per trainer slot ({eth(protected)} ETH) divided by the {bps(PROTOCOL_FEE_BPS)} protocol fee, "
        f"because {WHY_EARNED}"
    )
    return ReliabilityBar(
        min_reliability_bps=min_reliability_bps, required_earned=str(required), required_earned_eth=eth(required),
        protected=str(protected), protected_eth=eth(protected), protocol_fee_bps=PROTOCOL_FEE_BPS, summary=summary,
    )  # fmt: skip


def config_bar(config: ProjectConfig) -> ReliabilityBar | None:
    """The bar a job not yet on chain will set (``ProjectConfig.required_track_record``); None without a bar."""
    bar, budget, size = config.min_reliability_bps, config.reward_budget, config.max_trainers
    return bar_view(bar, config.required_track_record, budget, size)


def project_bar(
    market: MarketClient, project_id: int, min_reliability_bps: int, reward_budget: int, max_trainers: int
) -> ReliabilityBar | None:
    """A project's bar, its required record live from the market (``requiredTrackRecord``, one ``eth_call``
    when it has a bar); None without a bar."""
    if min_reliability_bps == 0:
        return None
    required = market.required_track_record(project_id)
    return bar_view(min_reliability_bps, required, reward_budget, max_trainers)


def explain_bar_refusal(exc: ContractRevert, project_id: int) -> str | None:
    """A sentence for ``join`` refused by the project's bar (``ReliabilityTooLow``, ``TrackRecordTooSmall``);
    None for any other revert."""
    a = exc.args_dict
    if exc.name == "ReliabilityTooLow":
        return (
            f"{a['trainer']} has a reliability of {bps(int(a['reliabilityBps']))}; project {project_id} requires at "
            f"least {bps(int(a['requiredBps']))}"
        )
    if exc.name == "TrackRecordTooSmall":
        return (
            f"{a['trainer']} has earned {eth(int(a['earned']))} ETH in independent projects and project "
            f"{project_id} requires {eth(int(a['required']))} ETH: its reliability bar also asks for an earned record "
            f"of its budget per trainer slot divided by the {bps(PROTOCOL_FEE_BPS)} protocol fee, because "
            f"{WHY_EARNED} (only projects whose owner is not their aggregator count)"
        )
    return None
