"""``marketplace trainer join|run``: take part in projects as a trainer.

``trainer run`` does each round in two steps (commit-reveal): it trains, pins its update and commits a seal
of it while the commit phase is open, then reveals the update's CID and commitment once the commit phase
has closed; it prints both, with their gas and timings. Restarted between the two, it finds what it
committed in its own note on chain and reveals. With ``--commit-via URL`` (the aggregator's commit inbox) it signs
its commit and hands it over instead, for the aggregator's ``commitBatch``, and commits itself if the commit is
not on chain by half the commit period.

``trainer run`` imports the trainer node (torch) and the demo's simulated cheaters (the hidden
``--attack`` option) inside the command, so that ``marketplace --help`` stays fast; everything else
is imported at the top.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn

from marketplace.adapters.chain.errors import ChainError
from marketplace.adapters.ipfs.errors import StorageError
from marketplace.cli.common import (
    DEV_ACCOUNT,
    IPFS_API,
    KEYSTORE,
    NETWORK,
    POLL,
    connect_market,
    console,
    fail,
    fmt_eth,
    market_update_keys,
    open_store,
    signing_account,
    stops_on_signals,
)
from marketplace.demo.attacks import Attack
from marketplace.fl.data import UnsupportedFormatError, load_local_data

trainer_app = typer.Typer(help="Take part in projects as a trainer: join, then train round by round.")


@trainer_app.command("join")
def trainer_join_cmd(
    project_id: int,
    network: str = NETWORK,
    keystore: Path | None = KEYSTORE,
    dev_account: int | None = DEV_ACCOUNT,
) -> None:
    """Join a project with its stake (checks your reliability first)."""
    market = connect_market(network, signing_account(network, keystore, dev_account))
    try:
        project = market.get_project(project_id)
        reliability = market.reliability(market.address)
        if reliability < project.min_reliability_bps:
            raise fail(
                f"your reliability {reliability} bps is below the project's minimum {project.min_reliability_bps}"
            )
        market.join(project_id, project.stake)
    except ChainError as exc:
        raise fail(str(exc)) from None
    console.print(
        f"{market.address} joined project {project_id} with {fmt_eth(project.stake)} stake "
        f"(reliability {reliability / 100:.0f}%). Next: marketplace trainer run {project_id} --data <your data>"
    )


@trainer_app.command("run")
@stops_on_signals()  # Ctrl-C or SIGTERM: "stopped", exit code 130 or 143
def trainer_run_cmd(
    project_id: int,
    data: Path = typer.Option(
        ..., exists=True, help="Your private data: CSV (label last), NPZ (x, y) or image folder."
    ),
    epochs: int = typer.Option(2, min=1),
    lr: float = typer.Option(0.5, min=0.0),
    batch_size: int = typer.Option(32, min=1),
    seed: int = typer.Option(0),
    attack: Attack = typer.Option(Attack.NONE, help="Simulation only: misbehave this way.", hidden=True),
    network: str = NETWORK,
    keystore: Path | None = KEYSTORE,
    dev_account: int | None = DEV_ACCOUNT,
    ipfs_api: str | None = IPFS_API,
    poll: float = POLL,
    reveal_via: str = typer.Option(
        "aggregator",
        "--reveal-via",
        help="Who reveals your update: 'aggregator' (in one batch for all trainers, from the opening you publish "
        "once the commit phase closed; you reveal yourself if it has not by half the reveal period) or 'self'.",
    ),
    commit_via: str = typer.Option(
        "self",
        "--commit-via",
        help="Who commits your seal: 'self', or the URL of the aggregator's commit inbox (`aggregator run "
        "--commit-inbox` prints it; http://HOST:PORT/commits): you sign the commit and hand it over, the aggregator "
        "commits every trainer in one transaction (you pay no commit gas), and you commit yourself if it is not on "
        "chain by half the commit period, or at once if the inbox refuses it or does not answer. The signed commit "
        "reveals nothing (your update stays sealed until you reveal it).",
    ),
) -> None:
    """Each round: fetch the global model, train on your data, pin the update and commit a seal of it (the
    commit phase); once every trainer committed or the commit period ended, hand the opening to the aggregator,
    which reveals every trainer in one transaction, and reveal the update yourself if it has not by half the
    reveal period, or at once with --reveal-via self (the reveal phase). A trainer that commits and is not
    revealed in time is slashed as flagged: keep this running, or restart it (it finds its commit on chain and
    reveals).

    Stops when the project ends."""
    from marketplace.demo.adversaries import update_source
    from marketplace.roles.trainer import (
        Committed,
        CommitVia,
        Disputed,
        DisputeRefused,
        RevealVia,
        StepOutcome,
        Submitted,
        TrainerNode,
        TrainingSettings,
    )

    if reveal_via not in {v.value for v in RevealVia}:
        raise fail(f"--reveal-via is 'aggregator' or 'self', not {reveal_via!r}")
    if commit_via != "self" and not commit_via.startswith(("http://", "https://")):
        raise fail(f"--commit-via is 'self' or the http(s) URL of the aggregator's commit inbox, not {commit_via!r}")
    market = connect_market(network, signing_account(network, keystore, dev_account))
    try:
        local = load_local_data(data)
    except (UnsupportedFormatError, ValueError, OSError) as exc:
        raise fail(f"cannot read {data}: {exc}") from None
    source = update_source(attack, local, TrainingSettings(epochs, lr, batch_size, seed))
    node = TrainerNode(
        market, open_store(ipfs_api), source, update_keys=market_update_keys(market), reveal_via=RevealVia(reveal_via),
        commit_inbox=None if commit_via == "self" else commit_via,
    )  # fmt: skip
    console.print(f"trainer {market.address} on project {project_id} with {len(local)} samples")

    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn()]
    last: object = None
    commits: dict[int, Committed] = {}  # this run's commits by round (their gas and timings)
    while True:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("local training", total=None)

            def report(step: int, total: int, progress: Progress = progress, task: TaskID = task) -> None:
                progress.update(task, completed=step, total=total)

            try:
                outcome = node.step(project_id, progress=report)
            except (ChainError, StorageError) as exc:
                console.print(f"[yellow]retrying after error:[/yellow] {exc}")
                time.sleep(poll)
                continue
        if isinstance(outcome, Committed):
            commits[outcome.round] = outcome
            took = ", ".join(f"{phase} {seconds:.2f} s" for phase, seconds in outcome.timings.items())
            if outcome.handover_error:
                console.print(
                    f"[yellow]the commit inbox did not take the signed commit:[/yellow] {outcome.handover_error}"
                )
            by = "by the aggregator's batch, no gas" if outcome.committed_by is CommitVia.AGGREGATOR else None
            console.print(
                f"round {outcome.round}: committed the seal of {outcome.cid} (update norm {outcome.update_norm:.3f}; "
                f"{took}; {by or f'gas {outcome.gas_used:,}'}); the reveal follows when the commit phase closes"
            )
        elif isinstance(outcome, Submitted):
            committed = commits.pop(outcome.round, None)
            if outcome.revealed_by is RevealVia.AGGREGATOR:
                console.print(
                    f"round {outcome.round}: revealed {outcome.cid} by the aggregator's batch (no reveal gas; "
                    f"commit gas {outcome.gas_used:,})"
                )
            else:
                if committed is not None:
                    reveal_gas = outcome.gas_used - committed.gas_used
                    note = f"commit + reveal gas {outcome.gas_used:,}"
                else:  # committed before a restart: this run read its commit's note
                    reveal_gas, note = outcome.gas_used, "its commit was found in its note on chain"
                took = outcome.timings.get("submit", 0.0)
                console.print(
                    f"round {outcome.round}: revealed {outcome.cid} (reveal {took:.2f} s, gas {reveal_gas:,}; {note})"
                )
        elif isinstance(outcome, Disputed):
            console.print(
                f"round {outcome.round}: the aggregator rejected this submission; disputed it by publishing the "
                f"committed row on chain (gas {outcome.gas_used:,}): the round must be scored with it"
            )
        elif isinstance(outcome, DisputeRefused):
            console.print(
                f"[red]round {outcome.round}: the aggregator rejected this submission and the market refuses its "
                f"dispute:[/red] the row behind its commitment 0x{outcome.commitment.hex()} was published on chain in "
                f"round {outcome.published_in} already (RowAlreadyPublished: a published row cannot be paid again); "
                "the rejection stands"
            )
        elif outcome != last:
            console.print(f"{outcome}")
        last = outcome
        if outcome is StepOutcome.FINISHED:
            info = market.trainer_info(project_id, market.address)
            console.print(f"project ended: earned {fmt_eth(info.earned)}; `marketplace project withdraw {project_id}`")
            return
        if not isinstance(outcome, Submitted | Committed):  # after a commit, try the reveal at once
            time.sleep(poll)
