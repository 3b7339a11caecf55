"""``marketplace web``: serve the web UI and JSON API for a network's deployment.

The command imports the web stack (uvicorn, FastAPI) inside its body, so that ``marketplace --help``
stays fast; everything else is imported at the top.
"""

from __future__ import annotations

from pathlib import Path

import typer

from marketplace.adapters.chain.config import ConfigError, read_deployment, resolve_network
from marketplace.adapters.chain.errors import ChainError
from marketplace.adapters.ipfs.errors import StorageError
from marketplace.adapters.ipfs.manager import resolve_api_url
from marketplace.cli.common import NETWORK, console, fail, stops_on_signals


def web_cmd(
    network: str = NETWORK,
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    db: Path | None = typer.Option(None, help="SQLite event index (default: .state/web-<network>.sqlite)."),
    ipfs_api: str | None = typer.Option(
        None,
        "--ipfs-api",
        help="Kubo RPC URL for rounds' proof documents (accuracy); else MARKETPLACE_IPFS_API or the local node.",
    ),
    sync_interval: float = typer.Option(1.0, min=0.0, help="Re-read the chain at most every N seconds."),
) -> None:
    """Serve the web UI: projects, rounds and proofs, post a job and join with a browser wallet. Holds no keys.
    Ctrl-C or SIGTERM stops it."""
    from marketplace.web.main import create_app
    from marketplace.web.server import serve_in_background
    from marketplace.web.settings import WebSettings

    try:
        profile = resolve_network(network)
        deployment = read_deployment(network)
        if deployment is None:
            raise ConfigError(f"nothing deployed on {network!r}: run `marketplace deploy --network {network}` first")
        settings = WebSettings(
            rpc_url=profile.rpc_url,
            deployment=deployment,
            db_path=db or Path(".state") / f"web-{network}.sqlite",
            ipfs_api=_ipfs_api(ipfs_api),
            network=network,
            sync_interval=sync_interval,
            explorer_url=profile.explorer_url,
        )
        app = create_app(settings)
    except (ConfigError, ChainError) as exc:
        raise fail(str(exc)) from None
    with stops_on_signals():
        try:
            server = serve_in_background(app, host, port)
        except OSError as exc:  # the port is taken, or the host is not an address of this machine
            raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        with server:
            console.print(f"web UI for [bold]{network}[/bold] at [bold]{server.url}[/bold]  (Ctrl-C stops it)")
            server.wait()


def _ipfs_api(explicit: str | None) -> str | None:
    """The IPFS API to read proof documents from, or None (the accuracy chart is then omitted)."""
    try:
        return resolve_api_url(explicit)
    except StorageError:
        return None
