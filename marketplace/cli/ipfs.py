"""``marketplace ipfs up|down|status``: the project's local IPFS node (embedded Kubo)."""

from __future__ import annotations

from pathlib import Path

import typer

from marketplace.adapters.ipfs.manager import default_home, node_down, node_status, node_up

ipfs_app = typer.Typer(help="The project's local IPFS node (embedded Kubo, offline, RPC on 127.0.0.1).")

HOME_HELP = "node directory (repo, state, log); default $MARKETPLACE_IPFS_HOME or ./.marketplace/ipfs"


@ipfs_app.command("up")
def ipfs_up_cmd(
    home: Path | None = typer.Option(None, help=HOME_HELP),
    port: int = typer.Option(0, help="RPC port; 0 picks a free one"),
) -> None:
    """Start the local IPFS node in the background and print its RPC URL."""
    status = node_up(home or default_home(), port=port)
    typer.echo(f"IPFS node running (pid {status.pid}): {status.api_url}")
    typer.echo(f"export MARKETPLACE_IPFS_API={status.api_url}")


@ipfs_app.command("down")
def ipfs_down_cmd(home: Path | None = typer.Option(None, help=HOME_HELP)) -> None:
    """Stop the local IPFS node."""
    typer.echo("IPFS node stopped" if node_down(home or default_home()) else "no IPFS node was running")


@ipfs_app.command("status")
def ipfs_status_cmd(home: Path | None = typer.Option(None, help=HOME_HELP)) -> None:
    """Say whether the local IPFS node is running; exit code 1 if not."""
    st = node_status(home or default_home())
    if st.running:
        typer.echo(f"running: {st.api_url} (pid {st.pid}, kubo {st.kubo_version}, repo {st.repo})")
    else:
        typer.echo(f"not running: {st.detail}")
        raise typer.Exit(1)
