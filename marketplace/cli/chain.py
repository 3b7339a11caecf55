"""``marketplace chain up|down|status``: a local development chain (anvil) in the background."""

from __future__ import annotations

from pathlib import Path

import typer

from marketplace.adapters.chain.anvil import AnvilError
from marketplace.adapters.chain.localnet import chain_down, chain_status, chain_up
from marketplace.adapters.toolchain import ToolchainError
from marketplace.cli.common import console, fail

chain_app = typer.Typer(help="Run a local development chain (anvil) in the background.", no_args_is_help=True)


@chain_app.command("up")
def chain_up_cmd(
    port: int = typer.Option(8545, help="RPC port on 127.0.0.1 (0 picks a free port)."),
    block_time: float | None = typer.Option(None, help="Mine a block every N seconds (default: on each tx)."),
    persist: Path | None = typer.Option(
        None, help="State file: loaded at start, written on `chain down`, so the chain survives restarts."
    ),
) -> None:
    """Start anvil detached and record it in .state/chain.json."""
    try:
        state = chain_up(port, block_time=block_time, persist=persist)
    except (AnvilError, ToolchainError) as exc:
        raise fail(str(exc)) from None
    console.print(f"local chain up at [bold]{state.url}[/bold] (pid {state.pid}, chain id {state.chain_id})")


@chain_app.command("down")
def chain_down_cmd() -> None:
    """Stop the local chain started by `chain up`."""
    state = chain_down()
    if state is None:
        console.print("no local chain running")
    else:
        console.print(f"stopped local chain at {state.url} (pid {state.pid})")


@chain_app.command("status")
def chain_status_cmd() -> None:
    """Show whether the local chain runs and answers; exit code 1 if it is down."""
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
