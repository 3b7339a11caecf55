"""``marketplace project challenge-stale``: anyone shows that a trainer's revealed update of the open round replays a
row revealed in an earlier round of the project (``MarketDisputes.challengeStale``; :mod:`marketplace.round.stale`)."""

from __future__ import annotations

from pathlib import Path

import typer
from eth_utils import is_address, to_checksum_address

from marketplace.adapters.chain.errors import ChainError
from marketplace.adapters.chain.market import REFERENCE_AUTHOR, MarketClient, ProjectStatus
from marketplace.adapters.ipfs.errors import IpfsError, StorageError
from marketplace.cli.common import (
    DEV_ACCOUNT,
    IPFS_API,
    KEYSTORE,
    NETWORK,
    connect_market,
    console,
    fail,
    fmt_eth,
    open_store,
    signing_account,
)


def challenge_stale_cmd(
    project_id: int = typer.Argument(..., help="The project, training."),
    trainer: str = typer.Argument(..., help="The trainer whose revealed update of the open round replays an old row."),
    network: str = NETWORK,
    keystore: Path | None = KEYSTORE,
    dev_account: int | None = DEV_ACCOUNT,
    ipfs_api: str | None = IPFS_API,
) -> None:
    """Show on chain that TRAINER's update revealed in the open round nearly copies a row revealed in an earlier round
    of the project (another trainer's, the owner's reference, or its own: then almost exactly). Anyone may, until the
    round is finalized: it waits the market's challenge period after its latest reveal. Fetches the round's and the
    earlier rounds' updates from IPFS (an earlier row published in a dispute counts too, a row shown stale does not),
    finds the closest earlier row under the rule's copy bar (squared distance at most 2^-6; 2^-10 against the
    trainer's own row), proves both rows and sends `challengeStale`. The trainer's submission is then rejected beyond
    dispute (unpaid, slashed) and your gas is credited to you out of its stake (`marketplace project withdraw`
    collects it). Encrypted projects' updates only their aggregator can read."""
    if not is_address(trainer):
        raise fail(f"{trainer!r} is not an address")
    market = connect_market(network, signing_account(network, keystore, dev_account))
    try:
        message = challenge_open_round(market, project_id, to_checksum_address(trainer), ipfs_api)
    except (ChainError, IpfsError, StorageError) as exc:
        raise fail(str(exc)) from None
    console.print(message)


def challenge_open_round(market: MarketClient, project_id: int, trainer: str, ipfs_api: str | None) -> str:
    """Finds the earlier row ``trainer``'s open-round row nearly copies and challenges it; returns what happened.
    Raises :class:`typer.Exit` (via :func:`fail`) when there is nothing to challenge."""
    from marketplace.round.collect import RoundInputs, collect_round  # heavy: numpy, torch (the fetch)
    from marketplace.round.prove import row_prover_for
    from marketplace.round.stale import project_history, squared_distance, stale_evidence, stale_match

    project = market.get_project(project_id)
    if project.status is not ProjectStatus.TRAINING:
        raise fail(f"project {project_id} is not training ({project.status.name.lower()}): no round to challenge")
    round_ = project.current_round
    store = open_store(ipfs_api)
    current = collect_round(market, store, project_id, round_, project.model_name)
    if trainer not in current.trainers:
        raise fail(f"{trainer} is not a trainer of project {project_id}")
    i = current.trainers.index(trainer)
    if trainer not in current.submissions:
        raise fail(f"{trainer} did not reveal in round {round_}: nothing to challenge")
    if not current.valid[i]:
        why = current.rejected.get(trainer)
        raise fail(f"{trainer}'s update of round {round_} cannot be used ({why}): its row is unknown here")

    def collect(earlier: int) -> RoundInputs:
        return collect_round(market, store, project_id, earlier, project.model_name)

    history = project_history(market, collect, project_id, round_, current.sketch_width)
    match = stale_match(trainer, i, current.rows[i], history)
    if match is None:
        closest = min((squared_distance(current.rows[i], e.row) for e in history), default=None)
        bars = "the bar is 2^20, 2^16 for its own rows"
        raise fail(
            f"{trainer}'s row of round {round_} nearly copies no earlier row of project {project_id} "
            f"(closest squared distance {closest} at scale 2^26; {bars})"
        )
    evidence = stale_evidence(market, project_id, match, row_prover_for(market, project_id))
    market.challenge_stale(project_id, round_, evidence)
    (event,) = [c for c in market.stale_challenges(project_id, round_) if c.trainer == trainer]
    author = "the owner's reference" if match.earlier.author == REFERENCE_AUTHOR else f"trainer #{match.earlier.author}"
    return (
        f"{trainer}'s submission of round {round_} shown stale: a near copy (squared distance {match.distance}) "
        f"of {author}'s row of round {match.earlier.round}; credited {fmt_eth(event.award)} for the gas"
    )
