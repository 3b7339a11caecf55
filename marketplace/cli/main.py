"""The ``marketplace`` command line. Thin: every command delegates to a library module.

Sub-apps are plain :class:`typer.Typer` objects registered with ``app.add_typer``; add new
ones (``project``, ``trainer``, ``aggregator``, ``demo``) the same way as ``chain``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from marketplace.adapters.chain.anvil import AnvilError
from marketplace.adapters.toolchain import ToolchainError

app = typer.Typer(
    help="Blockchain-backed federated-learning marketplace: local chain, contracts, projects, trainers.",
    no_args_is_help=True,
    add_completion=False,
)
chain_app = typer.Typer(help="Run a local development chain (anvil) in the background.", no_args_is_help=True)
app.add_typer(chain_app, name="chain")

from marketplace.cli.demo import demo_cmd  # noqa: E402
from marketplace.cli.ipfs import ipfs_app  # noqa: E402
from marketplace.cli.project import deploy_cmd, fail, project_app  # noqa: E402
from marketplace.cli.roles import aggregator_app, audit_cmd, data_app, model_app, trainer_app, verify_cmd  # noqa: E402
from marketplace.cli.web import web_cmd  # noqa: E402
from marketplace.cli.zk import zk_app  # noqa: E402

app.command("deploy")(deploy_cmd)
app.command("demo")(demo_cmd)
app.command("audit")(audit_cmd)
app.command("verify")(verify_cmd)
app.command("web")(web_cmd)
app.add_typer(project_app, name="project")
app.add_typer(ipfs_app, name="ipfs")
app.add_typer(trainer_app, name="trainer")
app.add_typer(aggregator_app, name="aggregator")
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.add_typer(zk_app, name="zk")

console = Console()


@chain_app.command("up")
def chain_up_cmd(
    port: int = typer.Option(8545, help="RPC port on 127.0.0.1 (0 picks a free port)."),
    block_time: float | None = typer.Option(None, help="Mine a block every N seconds (default: on each tx)."),
    persist: Path | None = typer.Option(
        None, help="State file: loaded at start, written on `chain down`, so the chain survives restarts."
    ),
) -> None:
    """Start anvil detached and record it in .state/chain.json."""
    from marketplace.adapters.chain.localnet import chain_up

    try:
        state = chain_up(port, block_time=block_time, persist=persist)
    except (AnvilError, ToolchainError) as exc:
        raise fail(str(exc)) from None
    console.print(f"local chain up at [bold]{state.url}[/bold] (pid {state.pid}, chain id {state.chain_id})")


@chain_app.command("down")
def chain_down_cmd() -> None:
    """Stop the local chain started by `chain up`."""
    from marketplace.adapters.chain.localnet import chain_down

    state = chain_down()
    if state is None:
        console.print("no local chain running")
    else:
        console.print(f"stopped local chain at {state.url} (pid {state.pid})")


@chain_app.command("status")
def chain_status_cmd() -> None:
    """Show whether the local chain runs and answers; exit code 1 if it is down."""
    from marketplace.adapters.chain.localnet import chain_status

    status = chain_status()
    if not status.running or status.state is None:
        console.print("local chain: [red]down[/red]")
        raise typer.Exit(code=1)
    s = status.state
    health = "answering" if status.answering else "[red]not answering[/red]"
    console.print(
        f"local chain: [green]up[/green] at {s.url} (pid {s.pid}, chain id {s.chain_id}), {health}, "
        f"block {status.block_number}"
    )


@app.command("compile")
def compile_cmd(
    sources: list[Path] | None = typer.Argument(None, help="Source directories/files (default: contracts/)."),
    force: bool = typer.Option(False, "--force", help="Recompile even if the cache is up to date."),
    show_warnings: bool = typer.Option(False, "--warnings", help="Print compiler warnings."),
) -> None:
    """Compile the Solidity contracts and show each one's runtime size vs the 24,576-byte limit."""
    from marketplace.adapters.chain.compile import CODE_SIZE_LIMIT, CompilationError, compile_contracts

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


if __name__ == "__main__":
    app()
