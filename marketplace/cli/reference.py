"""``marketplace project reference run``: the owner's reference row, round by round (docs/design/robust-reference.md).

The project's owner trains on its own validation data from each round's global model, as a trainer does, and
commits the committed row of that update as the round's reference while the commit phase is open, then reveals it
once the reveal phase opens (:class:`~marketplace.roles.owner.OwnerReferenceNode`); the aggregator scores the
round with it. It prints each commit and reveal, with the time it took and the reveal's gas, and each change of what
it waits for. Only the project's owner may run it (checked before anything else).

The command imports the owner's node (torch) inside its body, so that ``marketplace --help`` stays fast.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from marketplace.adapters.chain.errors import ChainError
from marketplace.adapters.chain.market import MarketClient
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
    open_store,
    signing_account,
    stops_on_signals,
)
from marketplace.fl.data import UnsupportedFormatError, load_local_data

reference_app = typer.Typer(
    help="As the project's owner, commit and reveal a reference row each round (steers pay toward the trainers "
    "that agree with your own validation data, within bounds).",
    no_args_is_help=True,
)


def _owner_of(market: MarketClient, project_id: int) -> None:
    """Fails unless ``market``'s account owns ``project_id`` (naming both accounts)."""
    try:
        project = market.get_project(project_id)
    except ChainError as exc:
        raise fail(str(exc)) from None
    if project.owner != market.address:
        raise fail(
            f"{market.address} is not the owner of project {project_id} (its owner is {project.owner}): only the "
            "owner may commit a reference; sign with the owner's wallet (--keystore, or --dev-account on the local "
            "chain)"
        )


@reference_app.command("run")
@stops_on_signals()  # Ctrl-C or SIGTERM: "stopped", exit code 130 or 143
def reference_run_cmd(
    project_id: int,
    data: Path = typer.Option(
        ...,
        exists=True,
        help="Your validation data (never published): CSV (label last), NPZ (x, y) or image folder; "
        "`marketplace data partition` writes validation.npz.",
    ),
    epochs: int = typer.Option(2, min=1, help="Local epochs per round (as the trainers train)."),
    lr: float = typer.Option(0.5, min=0.0),
    batch_size: int = typer.Option(32, min=1),
    seed: int = typer.Option(0, help="Training seed (a restarted run makes the same row again and can reveal it)."),
    network: str = NETWORK,
    keystore: Path | None = KEYSTORE,
    dev_account: int | None = DEV_ACCOUNT,
    ipfs_api: str | None = IPFS_API,
    poll: float = POLL,
    once: bool = typer.Option(False, "--once", help="Do what is due now (commit or reveal), print it, then exit."),
    srs: Path | None = typer.Option(
        None,
        exists=True,
        help="SRS the zk verifier's keys were made with, for the reveal's row proof (default: the cached "
        "development SRS).",
    ),
) -> None:
    """Each round: train on your validation data from the round's global model and commit the row of that update
    as the round's reference, as soon as the round opens (the commit phase closes early once every trainer
    committed: start this before the trainers); reveal it once the reveal phase opens, with a proof that the
    revealed row is the committed one (about 1M gas with a zk verifier). The aggregator then scores the round with it.

    What it can change (docs/design/robust-reference.md): it may unpay a trainer that disagrees with it and is
    less typical than the median trainer, and pay a trainer that agrees with it that the rule alone would not
    (a bounded score); it flags and slashes nobody, and a round the rule pays stays paid. A reference that
    disagrees with most trainers is ignored. Not revealing leaves the round to the rule without it.

    Stops when the project ends (restart it any time: it finds its commitment on chain and reveals it)."""
    from marketplace.roles.owner import (
        NotTheOwner,
        OwnerReferenceNode,
        ReferenceCommitted,
        ReferenceOutcome,
        ReferenceRevealed,
    )
    from marketplace.roles.trainer import LocalTraining, TrainingSettings
    from marketplace.round.prove import ProverSelectionError

    market = connect_market(network, signing_account(network, keystore, dev_account))
    _owner_of(market, project_id)
    try:
        local = load_local_data(data)
    except (UnsupportedFormatError, ValueError, OSError) as exc:
        raise fail(f"cannot read {data}: {exc}") from None
    source = LocalTraining(local, TrainingSettings(epochs, lr, batch_size, seed))
    node = OwnerReferenceNode(market, open_store(ipfs_api), source, srs=srs)
    console.print(f"owner {market.address}: reference of project {project_id} from {len(local)} validation samples")

    last: object = None
    while True:
        started = time.perf_counter()
        try:
            with console.status("training on the validation data, or reading the chain"):
                outcome = node.step(project_id)
        except (NotTheOwner, ProverSelectionError) as exc:  # one line, naming what to do
            raise fail(str(exc)) from None
        except (ChainError, StorageError) as exc:
            console.print(f"[yellow]retrying after error:[/yellow] {exc}")
            if once:
                raise fail(str(exc)) from None
            time.sleep(poll)
            continue
        took = time.perf_counter() - started
        if isinstance(outcome, ReferenceCommitted):
            console.print(
                f"round {outcome.round}: committed the reference (commitment 0x{outcome.commitment.hex()}; "
                f"{took:.2f} s); it is revealed when the reveal phase opens"
            )
        elif isinstance(outcome, ReferenceRevealed):
            console.print(
                f"round {outcome.round}: revealed the reference (commitment 0x{outcome.commitment.hex()}; "
                f"{took:.2f} s, gas {outcome.gas_used:,}, transaction {outcome.tx_hash}); the round is scored with it"
            )
        elif outcome != last or once:
            console.print(f"{outcome}")
        last = outcome
        if outcome is ReferenceOutcome.FINISHED:
            console.print(f"project {project_id} ended: `marketplace project withdraw {project_id}` for what is left")
            return
        if once:
            return
        if not isinstance(outcome, ReferenceCommitted | ReferenceRevealed):
            time.sleep(poll)
