"""``marketplace project ...``: the owner's side of the command line (create, inspect, settle projects).

Each round has a commit phase (``--submission-period``: trainers commit sealed updates), a reveal phase
(``--reveal-period``: they reveal them) and an aggregation phase (``--aggregation-period``); ``project show``
prints the open round's phase and deadlines (:mod:`marketplace.web.services.round_phase`), and whether the
project's updates are encrypted to its aggregator (``marketplace aggregator publish-key``) or public.
``project reference run`` (:mod:`marketplace.cli.reference`) commits and reveals the owner's reference row each round.
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from pydantic import ValidationError
from rich.table import Table

from marketplace.adapters.chain.deploy import read_record
from marketplace.adapters.chain.errors import ChainError
from marketplace.adapters.chain.market import MarketClient, Project, ProjectConfig, ProjectStatus
from marketplace.cli.challenge import challenge_stale_cmd
from marketplace.cli.common import NETWORK, connect_market, console, fail, fmt_eth, market_update_keys, to_wei
from marketplace.cli.reference import reference_app
from marketplace.web.services.round_phase import describe, round_phase

project_app = typer.Typer(help="Create, inspect and settle training projects.", no_args_is_help=True)
project_app.add_typer(reference_app, name="reference")
project_app.command("challenge-stale")(challenge_stale_cmd)


@project_app.command("create")
def project_create_cmd(
    initial_cid: str = typer.Option(..., help="IPFS CID of the initial model weights."),
    model: str = typer.Option("mlp", help="Architecture name from the model registry."),
    rounds: int = typer.Option(3, min=1, max=1000),
    min_trainers: int = typer.Option(2, min=1, max=64),
    max_trainers: int = typer.Option(8, min=1, max=64),
    budget: str = typer.Option("1", help="Reward budget in ETH, paid to trainers by contribution."),
    fee: str = typer.Option("0.1", help="Aggregator fee in ETH, earned per finalized round."),
    stake: str = typer.Option("0.01", help="Stake in ETH each trainer deposits to join."),
    min_reliability: int = typer.Option(0, min=0, max=10_000, help="Reliability (bps) needed to join."),
    slash: int = typer.Option(5_000, min=0, max=10_000, help="Share of stake (bps) lost per flagged round."),
    join_period: int = typer.Option(3600, min=1, help="Seconds during which trainers may join."),
    submission_period: int = typer.Option(
        600,
        min=1,
        help="Seconds per round in which trainers commit sealed updates (the commit phase; it ends "
        "early once every trainer committed, and the owner's reference with --expect-reference).",
    ),
    reveal_period: int = typer.Option(
        600,
        min=1,
        help="Seconds after the commit phase in which trainers reveal their updates; a trainer that "
        "committed and does not reveal is slashed as flagged.",
    ),
    aggregation_period: int = typer.Option(600, min=1, help="Seconds after the reveal deadline to finalize."),
    aggregator: str | None = typer.Option(None, help="Aggregator address (default: you)."),
    expect_reference: bool = typer.Option(
        False,
        help="Every round waits for your reference row (`project reference run`): the commit phase stays open "
        "after every trainer committed until you commit it (or until the commit deadline), so no trainer can shut "
        "it out. Fixed once training starts.",
    ),
    verifier: str | None = typer.Option(
        None,
        help="Approved verifier (default: the smallest approved zk verifier recorded for the network that fits "
        "--max-trainers; on the local chain without one, the test verifier).",
    ),
    network: str = NETWORK,
) -> None:
    """Post a training job, escrowing budget + fee.

    Each round: trainers commit sealed updates (--submission-period), then reveal them (--reveal-period),
    then the aggregator finalizes (--aggregation-period)."""
    market = connect_market(network)
    if verifier is None:
        verifier = _recorded_verifier(network, max_trainers)
        console.print(f"verifier {verifier} (from deployments/{network}.json; --verifier picks another)")
    if aggregator is None:
        console.print(
            "aggregator: you (--aggregator names another); rounds of a project whose owner is its aggregator "
            "do not count in trainers' track records"
        )
    try:
        config = ProjectConfig(
            aggregator=aggregator or market.address,
            verifier=verifier,
            reward_budget=to_wei(budget),
            aggregator_fee=to_wei(fee),
            stake=to_wei(stake),
            rounds=rounds,
            min_trainers=min_trainers,
            max_trainers=max_trainers,
            min_reliability_bps=min_reliability,
            slash_bps=slash,
            join_period=join_period,
            submission_period=submission_period,
            reveal_period=reveal_period,
            aggregation_period=aggregation_period,
            model_name=model,
            initial_model_cid=initial_cid,
        )
    except ValidationError as exc:
        raise fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
    try:
        pid = market.create_project(config)
    except ChainError as exc:
        raise fail(str(exc)) from None
    console.print(
        f"project [bold]{pid}[/bold] created, {fmt_eth(config.escrow)} escrowed, "
        f"{fmt_eth(config.protocol_fee)} protocol fee burned"
    )
    if expect_reference:
        try:
            market.expect_reference(pid)
        except ChainError as exc:  # e.g. trainers filled the project first: it trains without the setting
            raise fail(f"project {pid} was created, but expecting your reference failed: {exc}") from None
        console.print("every round's commit phase waits for your reference (`project reference run`)")


def _when(ts: int) -> str:
    """A unix timestamp as UTC date and time; ``-`` for 0 (not set)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "-"


def _duration(seconds: int) -> str:
    """``600`` -> ``10 min``; ``5400`` -> ``90 min``; ``7200`` -> ``2 h``; ``45`` -> ``45 s``."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def _recorded_verifier(network: str, max_trainers: int) -> str:
    """The verifier a new project of up to ``max_trainers`` trainers uses by default: the smallest approved zk
    verifier recorded for ``network`` that is large enough, else (local chain) the test verifier."""
    record = read_record(network)
    if record is None:
        raise fail(f"nothing deployed on {network!r}: run `marketplace deploy --network {network}` first")
    fitting = sorted(
        (v for v in record.zk_verifiers if v.approved and v.trainers >= max_trainers), key=lambda v: v.trainers
    )
    if fitting:
        return fitting[0].address
    if "TestRoundVerifier" in record.contracts:
        return record.address("TestRoundVerifier")
    raise fail(
        f"pass --verifier: no approved zk verifier for {max_trainers} trainers is recorded for {network!r} "
        f"(`marketplace zk deploy --network {network} --max-trainers {max_trainers}`, or `marketplace zk info`)"
    )


def _round_lines(market: MarketClient, p: Project) -> str:
    """The periods of a round, and for a training project the open round's phase and deadlines."""
    lines = (
        f"  each round: commit {_duration(p.submission_period)}, reveal {_duration(p.reveal_period)}, "
        f"aggregation {_duration(p.aggregation_period)}"
        + ("; the commit phase waits for the owner's reference" if p.reference_expected else "")
    )
    if p.status is not ProjectStatus.TRAINING:
        return lines
    d = market.round_deadlines(p.project_id)
    awaits = market.awaits_reference(p)
    phase = round_phase(market.chain.timestamp(), d, p.trainer_count, p.commits, p.submissions, awaits)
    return "\n".join(
        [
            lines,
            f"  round {p.current_round}: {describe(phase, _when)}",
            f"    commit until {_when(d.commit)} ({p.commits}/{p.trainer_count} committed)",
            f"    reveal from {_when(d.reveal_opens)} until {_when(d.reveal)} ({p.submissions}/{p.commits} revealed)",
            f"    aggregation until {_when(d.aggregation)}",
        ]
    )


def _project_row(p: Project) -> list[str]:
    """The cells of ``project list``'s row for ``p``."""
    return [
        str(p.project_id),
        p.status.label,
        p.model_name,
        fmt_eth(p.reward_budget),
        f"{p.rounds_done}/{p.rounds}",
        f"{p.trainer_count}/{p.max_trainers}",
        str(p.min_reliability_bps),
    ]


@project_app.command("list")
def project_list_cmd(network: str = NETWORK) -> None:
    """Every project on the network."""
    market = connect_market(network, read_only=True)
    table = Table(title=f"Projects on {network}")
    for col in ["id", "status", "model", "budget", "rounds", "trainers", "min reliability"]:
        table.add_column(col)
    for pid in range(1, market.project_count() + 1):
        table.add_row(*_project_row(market.get_project(pid)))
    console.print(table)


@project_app.command("show")
def project_show_cmd(project_id: int, network: str = NETWORK) -> None:
    """A project's parameters, whether its updates are encrypted to its aggregator, the open round's phase
    (commit, reveal, aggregation) and deadlines, its trainers, finalized rounds and what everyone can withdraw."""
    market = connect_market(network, read_only=True)
    try:
        _show_project(market, project_id)
    except ChainError as exc:  # one line (e.g. LogsUnavailable), never a traceback
        raise fail(str(exc)) from None


def _show_project(market: MarketClient, project_id: int) -> None:
    p = market.get_project(project_id)
    console.print(
        f"[bold]project {p.project_id}[/bold] ({p.status.label}): model {p.model_name}, "
        f"round {p.rounds_done}/{p.rounds}, budget {fmt_eth(p.reward_budget)}, fee {fmt_eth(p.aggregator_fee)}, "
        f"stake {fmt_eth(p.stake)}\n  owner {p.owner}\n  aggregator {p.aggregator}\n  verifier {p.verifier}\n"
        f"  latest model {p.latest_model_cid}\n  updates {_updates(market, project_id)}\n"
        f"  join deadline {_when(p.join_deadline)}\n{_round_lines(market, p)}"
    )
    trainers = Table(title="Trainers")
    for col in ["#", "address", "reliability", "earned", "stake left", "withdrawable"]:
        trainers.add_column(col)
    for i, addr in enumerate(market.trainers(project_id)):
        info = market.trainer_info(project_id, addr)
        trainers.add_row(
            str(i),
            addr,
            str(market.reliability(addr)),
            fmt_eth(info.earned),
            fmt_eth(info.stake_left),
            fmt_eth(market.withdrawable(project_id, addr)),
        )
    console.print(trainers)
    if p.status in (ProjectStatus.FINISHED, ProjectStatus.CANCELLED) and p.owner == p.aggregator:
        owed = fmt_eth(market.withdrawable(project_id, p.owner))
        console.print(f"withdrawable: owner (also the aggregator) {owed} (`marketplace project withdraw {project_id}`)")
    elif p.status in (ProjectStatus.FINISHED, ProjectStatus.CANCELLED):
        console.print(
            f"withdrawable: owner {fmt_eth(market.withdrawable(project_id, p.owner))}, "
            f"aggregator {fmt_eth(market.withdrawable(project_id, p.aggregator))} "
            f"(`marketplace project withdraw {project_id}` as either)"
        )
    else:
        console.print("withdrawals open when the project is finished or cancelled")
    record = market.aggregator_record(p.aggregator)
    console.print(
        f"aggregator's record: {record.rounds} rounds finalized, {record.rejected} rejections announced, "
        f"{record.disputes_lost} disputes lost, {record.upheld} rejections upheld"
    )
    rounds = Table(title="Finalized rounds")
    for col in ["round", "model CID", "scores", "flags"]:
        rounds.add_column(col)
    for r in market.finalized_rounds(project_id):
        rounds.add_row(str(r.round), r.model_cid, str(r.scores), "".join("X" if f else "." for f in r.flags))
    console.print(rounds)


def _updates(market: MarketClient, project_id: int) -> str:
    """Whether the project's updates are encrypted (to which key, since which block) or public on IPFS."""
    keys = market_update_keys(market)
    if keys is None:
        return "public on IPFS (no UpdateKeys contract is recorded for this market: updates cannot be encrypted)"
    published = keys.publication(project_id)
    if published is None:
        return (
            "public on IPFS: anyone can read them (the aggregator can still encrypt them: "
            f"`marketplace aggregator publish-key --project {project_id}`)"
        )
    return (
        f"encrypted to the aggregator's key 0x{published.public_key.hex()} (published in block "
        f"{published.block_number}; updates pinned before that are public): only the aggregator can read them"
    )


def _settle(action: str, project_id: int, network: str) -> None:
    """Calls the market's ``action`` (a method taking the project id) and reports it; ``withdraw``
    reports the amount withdrawn."""
    market = connect_market(network)
    try:
        if action == "withdraw":
            bonds = market.collect_bonds(project_id)  # rejection bonds: awarded, or returned to the aggregator
            if bonds:
                console.print(f"withdrew {fmt_eth(bonds)} of rejection bonds")
            if bonds and market.withdrawable(project_id, market.address) == 0:
                return  # the project owes nothing (yet): the bonds were all
            console.print(f"withdrew {fmt_eth(market.withdraw(project_id))}")
            return
        getattr(market, action)(project_id)
    except ChainError as exc:
        raise fail(str(exc)) from None
    console.print(f"project {project_id}: {action.replace('_', ' ')} done")


@project_app.command("start")
def project_start_cmd(project_id: int, network: str = NETWORK) -> None:
    """Start training once enough trainers joined (owner: any time; anyone: after the join deadline)."""
    _settle("start_training", project_id, network)


@project_app.command("cancel")
def project_cancel_cmd(project_id: int, network: str = NETWORK) -> None:
    """Cancel an open project (owner; anyone if too few trainers joined in time)."""
    _settle("cancel", project_id, network)


@project_app.command("abandon")
def project_abandon_cmd(project_id: int, network: str = NETWORK) -> None:
    """End a project whose aggregator missed a deadline (anyone)."""
    _settle("abandon", project_id, network)


@project_app.command("withdraw")
def project_withdraw_cmd(project_id: int, network: str = NETWORK) -> None:
    """Withdraw everything the project owes you (rewards, stake, fee or refund), and every rejection bond credited to
    you (awarded for a dispute you won, or returned for your undisputed rejections)."""
    _settle("withdraw", project_id, network)
