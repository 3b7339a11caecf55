"""``marketplace demo``: the main job on the embedded default stack.

The command imports the demo (torch, ezkl, and the web stack with ``--web``) inside its body, so that
``marketplace --help`` stays fast; everything else is imported at the top.
"""

from __future__ import annotations

from pathlib import Path

import typer

from marketplace.adapters.ipfs.errors import StorageError
from marketplace.adapters.ipfs.manager import API_ENV
from marketplace.cli.common import console, fail, stops_on_signals
from marketplace.demo.attacks import Attack


def demo_cmd(
    trainers: int = typer.Option(8, min=2, max=64, help="Number of trainers."),
    attack: list[Attack] = typer.Option(
        [Attack.SIGN_FLIP, Attack.FREE_RIDER_ZERO],
        "--attack",
        help="One malicious trainer per occurrence (the last trainers); repeat the option.",
    ),
    honest: bool = typer.Option(False, "--honest", help="No malicious trainers at all."),
    rounds: int = typer.Option(5, min=1, max=50, help="Training rounds."),
    model: str = typer.Option("mlp", help="Model architecture: mlp or cnn."),
    partition: str = typer.Option("iid", help="Data split across trainers: iid or dirichlet."),
    alpha: float = typer.Option(0.5, help="Dirichlet concentration (smaller = more skewed)."),
    epochs: int = typer.Option(2, min=1, help="Local epochs per round."),
    seed: int = typer.Option(0, help="Seed of the data split, models and attacks."),
    plot: Path = typer.Option(Path("reports/demo.png"), help="Where to write the plot."),
    zk: bool = typer.Option(
        True, "--zk/--no-zk", help="Prove each round with ezkl, verified on chain (~20 s a round); --no-zk: no proof."
    ),
    reference: bool = typer.Option(
        True,
        "--reference/--no-reference",
        help="The owner commits and reveals a reference row each round from its validation data (one small "
        "training and a row proof a round; it may unpay a below-median trainer that disagrees with it, or pay one "
        "the rule drops, within bounds); --no-reference: the rule alone.",
    ),
    web: bool = typer.Option(True, "--web/--no-web", help="Serve the web UI during and after the job (until Ctrl-C)."),
    port: int = typer.Option(8000, help="Web UI port on 127.0.0.1 (a free one if taken)."),
    ipfs_api: str | None = typer.Option(
        None,
        "--ipfs-api",
        envvar=API_ENV,
        help=f"Kubo RPC URL of an IPFS node to use (else {API_ENV}); without either the demo starts its own node.",
        show_envvar=False,
    ),
    shared_ipfs: bool = typer.Option(
        False,
        "--shared-ipfs",
        help="One local IPFS node for every participant, instead of one node each in a private swarm "
        "(implied by --ipfs-api).",
    ),
) -> None:
    """Run a whole marketplace job on a local chain and local IPFS nodes, one per participant in a private
    swarm, started by this command (--shared-ipfs: one node for all; --ipfs-api: your node, for all).
    Ctrl-C or SIGTERM stops it and everything it started."""
    from marketplace.demo.job import DemoConfig, run_demo

    config = DemoConfig(
        trainers=trainers,
        attacks=[] if honest else list(attack),
        rounds=rounds,
        model=model,
        partition=partition,
        alpha=alpha,
        epochs=epochs,
        seed=seed,
        plot=plot,
        zk=zk,
        ipfs_api=ipfs_api or None,
        shared_ipfs=shared_ipfs,
        reference=reference,
    )
    try:
        with stops_on_signals():
            if web:
                from marketplace.demo.web import run_demo_with_web

                run_demo_with_web(config, console, port=port)
            else:
                run_demo(config, console)
    except (ValueError, StorageError) as exc:
        raise fail(str(exc)) from None
