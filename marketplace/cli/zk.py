"""``marketplace zk setup|deploy``: circuit keys and the on-chain verifier for zero-knowledge round proofs.

The commands import the ezkl adapters (ezkl, torch) inside their bodies, so that ``marketplace --help``
stays fast; everything else is imported at the top.
"""

from __future__ import annotations

from pathlib import Path

import typer

from marketplace.adapters.chain.config import ConfigError, DeployedContract, read_deployment, write_deployment
from marketplace.adapters.chain.errors import ChainError
from marketplace.cli.common import NETWORK, connect_market, console, fail

zk_app = typer.Typer(help="Zero-knowledge proofs of round scoring: keys, verifier deployment.", no_args_is_help=True)

TRAINERS = typer.Option(16, min=2, max=64, help="Trainer slots of the circuit (projects with up to this many).")
SKETCH = typer.Option(32, min=8, max=256, help="Sketch width K of the committed rows.")


@zk_app.command("setup")
def zk_setup_cmd(
    trainers: int = TRAINERS,
    sketch: int = SKETCH,
    srs: Path | None = typer.Option(
        None, exists=True, help="Ceremony SRS of the circuit's logrows. Without it a DEVELOPMENT-ONLY SRS is generated."
    ),
) -> None:
    """Build (once; cached in .cache/zk) the circuit, its keys and its EVM verifier artefacts."""
    from marketplace.adapters.ezkl.keys import setup

    if srs is None:
        console.print(
            "[yellow]warning:[/yellow] generating a development SRS locally (ezkl gen_srs): whoever generated "
            "it could forge proofs. Use --srs with a ceremony SRS for anything real."
        )
    with console.status(f"setting up the {trainers}-trainer, {sketch}-wide circuit (about a minute the first time)"):
        keys = setup(trainers, sketch, srs=srs)
    console.print(
        f"circuit keys in {keys.root} (logrows {keys.logrows}, proving key {keys.pk.stat().st_size / 2**30:.2f} GB)"
    )


@zk_app.command("deploy")
def zk_deploy_cmd(
    trainers: int = TRAINERS,
    sketch: int = SKETCH,
    halo2_verifier: str | None = typer.Option(None, help="An already deployed reusable Halo2 verifier to reuse."),
    network: str = NETWORK,
) -> None:
    """Deploy the circuit's on-chain verifier (the reusable Halo2 verifier unless given, plus an
    EzklRoundVerifier with the circuit's VKA) and approve it in the market (you must be its admin)."""
    from marketplace.adapters.ezkl.evm import deploy_zk_verifier
    from marketplace.adapters.ezkl.keys import setup

    keys = setup(trainers, sketch)
    market = connect_market(network)
    try:
        halo2, adapter = deploy_zk_verifier(market, keys, halo2_verifier)
    except (ConfigError, ChainError) as exc:
        raise fail(str(exc)) from None
    deployment = read_deployment(network)
    if deployment is not None:
        block = market.chain.block_number()
        deployment.contracts["Halo2VerifierReusable"] = DeployedContract(address=halo2, block_number=block)
        deployment.contracts[f"EzklRoundVerifier-n{trainers}-k{sketch}"] = DeployedContract(
            address=adapter, block_number=block
        )
        write_deployment(deployment)
    console.print(
        f"verifier for {trainers} trainers x {sketch}-wide sketches: [bold]{adapter}[/bold] "
        f"(Halo2 verifier {halo2}); approved: projects may name it with `project create --verifier`"
    )
