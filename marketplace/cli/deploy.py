"""``marketplace compile`` and ``marketplace deploy``: the Solidity contracts, built and put on a network."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from marketplace.adapters.chain.compile import CODE_SIZE_LIMIT, CompilationError, compile_contracts
from marketplace.adapters.chain.config import ConfigError, deployment_path, resolve_network, write_deployment
from marketplace.adapters.chain.deploy import (
    DEFAULT_CHALLENGE_PERIOD,
    DEFAULT_REJECTION_BOND,
    MAX_CHALLENGE_PERIOD,
    deploy_marketplace,
)
from marketplace.adapters.chain.errors import ChainError
from marketplace.adapters.toolchain import ToolchainError
from marketplace.cli.common import NETWORK, console, fail, fmt_eth, to_wei


def compile_cmd(
    sources: list[Path] | None = typer.Argument(None, help="Source directories/files (default: contracts/)."),
    force: bool = typer.Option(False, "--force", help="Recompile even if the cache is up to date."),
    show_warnings: bool = typer.Option(False, "--warnings", help="Print compiler warnings."),
) -> None:
    """Compile the Solidity contracts and show each one's runtime size vs the 24,576-byte limit."""
    try:
        artifacts = compile_contracts(sources or None, force=force)
    except (CompilationError, ToolchainError, FileNotFoundError) as exc:
        raise fail(str(exc)) from None
    table = Table(title="Contracts" + (" (cached)" if artifacts.cached else ""))
    table.add_column("contract")
    table.add_column("source")
    table.add_column("runtime bytes", justify="right")
    table.add_column("of limit", justify="right")
    over = False
    for name, art in sorted(artifacts.items()):
        if not art.is_deployable:
            continue
        share = art.deployed_size / CODE_SIZE_LIMIT
        over |= share > 1
        style = "red" if share > 1 else "yellow" if share > 0.9 else ""
        table.add_row(
            name,
            art.source,
            f"{art.deployed_size:,}",
            f"[{style}]{share:.0%}[/]" if style else f"{share:.0%}",
        )
    console.print(table)
    if artifacts.warnings:
        console.print(f"{len(artifacts.warnings)} compiler warning(s)" + ("" if show_warnings else " (--warnings)"))
        if show_warnings:
            for warning in artifacts.warnings:
                console.print(warning, markup=False)
    if over:
        raise fail(f"a contract exceeds the {CODE_SIZE_LIMIT:,}-byte limit (EIP-170)")


def deploy_cmd(
    network: str = NETWORK,
    rejection_bond: str = typer.Option(
        fmt_eth(DEFAULT_REJECTION_BOND).split()[0],
        "--rejection-bond",
        help="ETH an aggregator posts per rejected trainer, fixed for the market's life: paid to a trainer that "
        "disputes its rejection up to its dispute's gas cost (at base fee + at most 2 gwei tip), the rest returned "
        "to the aggregator. The default, 1.2M gas at 5 gwei, covers a zk dispute (~1.018M gas) up to ~5.9 gwei.",
    ),
    challenge_period: int = typer.Option(
        DEFAULT_CHALLENGE_PERIOD,
        "--challenge-period",
        min=0,
        max=MAX_CHALLENGE_PERIOD,
        help="Seconds every round stays open to stale challenges after its latest reveal (`marketplace project "
        "challenge-stale`: anyone shows a revealed update replays an earlier round's row) before it can be finalized; "
        "fixed for the market's life. 0: no guaranteed window (a colluding aggregator may finalize at once).",
    ),
) -> None:
    """Compile and deploy the registry and market (plus the test verifier on the local chain)."""
    try:
        chain = resolve_network(network).client()
        deployment = deploy_marketplace(
            chain, network=network, rejection_bond=to_wei(rejection_bond), challenge_period=challenge_period
        )
    except (ConfigError, ChainError, CompilationError, ValueError) as exc:
        raise fail(str(exc)) from None
    write_deployment(deployment)
    table = Table(title=f"Deployed on {network} (chain {deployment.chain_id})")
    table.add_column("contract")
    table.add_column("address")
    for name, record in deployment.contracts.items():
        table.add_row(name, record.address)
    console.print(table)
    console.print(f"recorded in {deployment_path(network)}")
