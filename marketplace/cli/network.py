"""``marketplace network init|show|list``: network profiles, so ``--network <name>`` works without environment
variables.

``network init <name> --rpc-url URL`` asks the RPC for its chain id (and checks it against ``--chain-id``),
then writes ``networks/<name>.json`` in the state dir (``MARKETPLACE_NETWORKS_DIR`` overrides; see
:mod:`marketplace.adapters.chain.config` for where else a profile's values come from). The file holds the RPC
URL, the chain id, the keystore's *path*, the log range and an explorer URL: never a private key or a password.
Every failure is one line (``error: ...``, exit code 1).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import typer
from rich.table import Table

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.config import (
    ConfigError,
    SavedNetwork,
    check_network_name,
    list_saved_networks,
    network_profile_path,
    read_saved_network,
    resolve_network,
    write_saved_network,
)
from marketplace.adapters.chain.errors import ChainError, ChainIdMismatch
from marketplace.adapters.chain.redact import redact_url
from marketplace.cli.common import console, fail

network_app = typer.Typer(
    help="Network profiles (RPC URL, chain id, keystore path) for --network NAME.", no_args_is_help=True
)


def _http_url(url: str, what: str) -> str:
    """``url`` if it is an http(s) URL with a host, else the one-line exit."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise fail(f"{what} must be an http(s) URL, got {redact_url(url)!r}")
    return url.strip()


def probe_chain_id(rpc_url: str, expected: int | None) -> tuple[int, int]:
    """Ask ``rpc_url`` for its chain id and latest block; :class:`ChainIdMismatch` when it is not ``expected``,
    another :class:`ChainError` when the RPC does not answer (two tries, 10 s each)."""
    client = ChainClient(rpc_url, None, request_timeout=10.0, retries=2, backoff=0.2, log_block_range=1)
    actual = client.chain_id
    if expected is not None and actual != expected:
        raise ChainIdMismatch(expected, actual, rpc_url)
    return actual, client.block_number()


@network_app.command("init")
def network_init_cmd(
    name: str = typer.Argument(..., help="Profile name, used as --network NAME (not `local`)."),
    rpc_url: str = typer.Option(..., "--rpc-url", help="JSON-RPC URL of the chain (an API key in it is kept)."),
    chain_id: int | None = typer.Option(
        None, "--chain-id", help="Expected chain id (checked against the RPC; default: what the RPC reports)."
    ),
    keystore: Path | None = typer.Option(
        None, "--keystore", help="Keystore JSON that signs on this network (its path is recorded, not its key)."
    ),
    log_block_range: int | None = typer.Option(
        None, "--log-block-range", min=1, help="Most blocks per eth_getLogs request (default 10,000)."
    ),
    explorer: str | None = typer.Option(None, "--explorer", help="Block explorer base URL (informational)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing profile of that name."),
) -> None:
    """Check the RPC answers (with the expected chain id) and write the profile networks/NAME.json."""
    try:
        path = network_profile_path(check_network_name(name))
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if path.exists() and not force:
        raise fail(f"{path} exists; pass --force to overwrite it")
    url = _http_url(rpc_url, "--rpc-url")
    explorer_url = _http_url(explorer, "--explorer") if explorer else None
    if keystore is not None:
        keystore = keystore.expanduser().resolve()
        if not keystore.is_file():
            raise fail(f"keystore {keystore} does not exist")
    try:
        actual, block = probe_chain_id(url, chain_id)
    except ChainError as exc:
        raise fail(f"network {name}: {exc}") from None
    saved = SavedNetwork(
        name=name,
        rpc_url=url,
        chain_id=actual,
        keystore=keystore,
        log_block_range=log_block_range,
        explorer_url=explorer_url,
    )
    try:
        written = write_saved_network(saved, force=force)
    except (ConfigError, OSError) as exc:
        raise fail(str(exc)) from None
    console.print(
        f"network [bold]{name}[/bold]: {redact_url(url)} answers, chain id {actual}, block {block}; "
        f"profile written to {written}",
        soft_wrap=True,
    )
    if keystore is None:
        console.print("no --keystore: commands sign with --keystore, MARKETPLACE_KEYSTORE or MARKETPLACE_PRIVATE_KEY")


@network_app.command("show")
def network_show_cmd(
    name: str = typer.Argument(..., help="Profile name."),
) -> None:
    """Show a network as commands will use it: the profile file, overridden by MARKETPLACE_* variables."""
    try:
        saved = read_saved_network(name)
        profile = resolve_network(name)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    source = str(network_profile_path(name)) if saved else "(no profile file)"
    if profile.is_local:
        source = "the local chain (`marketplace chain up`)"
    rows = {
        "profile": source,
        "rpc url": redact_url(profile.rpc_url),
        "chain id": "any" if profile.chain_id is None else str(profile.chain_id),
        "keystore": str(profile.keystore) if profile.keystore else "(MARKETPLACE_* variables)",
        "log block range": f"{profile.log_block_range:,}",
        "explorer": profile.explorer_url or "-",
    }
    console.print(f"network [bold]{name}[/bold]")
    for field, value in rows.items():
        console.print(f"  {field + ':':<17}{value}", soft_wrap=True, markup=False, highlight=False)
    if saved is not None:
        overridden = [
            field
            for field, value in (("rpc url", profile.rpc_url), ("chain id", profile.chain_id))
            if value != getattr(saved, field.replace(" ", "_"))
        ]
        if overridden:
            console.print(f"overridden by the environment: {', '.join(overridden)}")


@network_app.command("list")
def network_list_cmd() -> None:
    """List the network profile files (plus `local`)."""
    table = Table(title="Networks")
    table.add_column("name")
    table.add_column("chain id", justify="right")
    table.add_column("rpc url")
    table.add_column("keystore")
    table.add_row("local", "31337", "marketplace chain up", "anvil dev accounts")
    for name in list_saved_networks():
        try:
            saved = read_saved_network(name)
        except ConfigError as exc:
            table.add_row(name, "-", f"[red]{exc}[/red]", "-")
            continue
        if saved is not None:
            keystore = str(saved.keystore) if saved.keystore else "-"
            table.add_row(name, str(saved.chain_id), redact_url(saved.rpc_url), keystore)
    console.print(table)
