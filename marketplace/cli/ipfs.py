"""``marketplace ipfs up|down|status|id|peers|swarm-key``: the project's local IPFS node (embedded Kubo).

Each participant runs its own node. By default it stays on this machine (swarm on 127.0.0.1);
``up --listen`` makes it reachable, ``up --peer`` connects it to other participants' nodes (their
``marketplace ipfs id`` output), ``up --swarm-key`` keeps it in the project's private swarm, and
``up --public`` joins the public IPFS network instead. See docs/networking.md.
"""

from __future__ import annotations

from pathlib import Path

import typer

from marketplace.adapters.ipfs.errors import StorageError
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.manager import (
    NodeOptions,
    default_home,
    node_down,
    node_status,
    node_up,
    resolve_api_url,
)
from marketplace.adapters.ipfs.swarm import (
    SwarmConfigError,
    build_settings,
    new_swarm_key,
    read_swarm_key,
    swarm_key_fingerprint,
)

ipfs_app = typer.Typer(
    help="The project's local IPFS node (embedded Kubo): start it, join other participants' nodes, inspect it."
)
swarm_key_app = typer.Typer(help="Private swarm keys (Kubo's swarm.key format) and their public fingerprints.")
ipfs_app.add_typer(swarm_key_app, name="swarm-key")

HOME_HELP = "node directory (repo, state, log); default $MARKETPLACE_IPFS_HOME or ./.marketplace/ipfs"
API_HELP = "Kubo RPC URL of the node to ask (else $MARKETPLACE_IPFS_API, else the local node)"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@ipfs_app.command("up")
def ipfs_up_cmd(
    home: Path | None = typer.Option(None, help=HOME_HELP),
    port: int = typer.Option(0, help="RPC port (the API stays on 127.0.0.1); 0 picks a free one"),
    listen: list[str] = typer.Option(
        [],
        "--listen",
        metavar="MULTIADDR",
        help="swarm address to listen on, repeatable, e.g. /ip4/0.0.0.0/tcp/4001 or /ip4/10.0.0.2/tcp/4001 "
        "(default /ip4/127.0.0.1/tcp/0: this machine only)",
    ),
    peer: list[str] = typer.Option(
        [],
        "--peer",
        metavar="MULTIADDR",
        help="another participant's node to stay connected to, repeatable: an address from its "
        "`marketplace ipfs id`, e.g. /ip4/10.0.0.1/tcp/4001/p2p/Qm...",
    ),
    allow: list[str] = typer.Option(
        [],
        "--allow",
        metavar="CIDR",
        help="network whose nodes may connect, repeatable, e.g. 0.0.0.0/0 with --swarm-key on the internet "
        "(default: loopback, the subnets of the --listen addresses and the --peer addresses only)",
    ),
    swarm_key: Path | None = typer.Option(
        None,
        "--swarm-key",
        metavar="FILE",
        help="private swarm key shared by the project's participants (`marketplace ipfs swarm-key new`); "
        "nodes without it cannot connect",
    ),
    public: bool = typer.Option(
        False,
        "--public",
        help="join the public IPFS network (its bootstrap peers, DHT routing, no address filters); "
        "not with --swarm-key",
    ),
    fetch_timeout: float | None = typer.Option(
        None, "--fetch-timeout", help="seconds to look for content in the swarm before 'not available' (default 30)"
    ),
    max_fetch_bytes: int | None = typer.Option(
        None, "--max-fetch-bytes", help="largest object fetched from the swarm, bytes (default 1 GiB)"
    ),
) -> None:
    """Start the local IPFS node in the background; print its RPC URL and the addresses to give to peers.

    A node that is already running is reported as it is: run `marketplace ipfs down` first to change its swarm options.
    """
    try:
        key = read_swarm_key(swarm_key) if swarm_key else None
        build_settings(listen, peer, public, key is not None, allow)  # check the flags before starting anything
        status = node_up(
            home or default_home(),
            port=port,
            options=NodeOptions(
                listen=listen,
                peers=peer,
                allow=allow,
                swarm_key=swarm_key,
                public=public,
                fetch_timeout=fetch_timeout,
                max_fetch_bytes=max_fetch_bytes,
            ),
        )
    except (SwarmConfigError, StorageError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"IPFS node running (pid {status.pid}): {status.api_url}")
    typer.echo(f"peer id: {status.peer_id}")
    for addr in status.swarm_addresses:
        typer.echo(f"swarm address: {addr}")
    if status.swarm_key_fingerprint:
        typer.echo(f"private swarm, key fingerprint {status.swarm_key_fingerprint}")
    elif status.public:
        typer.echo("public IPFS network")
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
        if st.peer_id:
            typer.echo(f"peer id: {st.peer_id}")
    else:
        typer.echo(f"not running: {st.detail}")
        raise typer.Exit(1)


def _client(api: str | None, home: Path | None) -> IpfsClient:
    try:
        return IpfsClient(resolve_api_url(api, home), retries=1)
    except (StorageError, ValueError) as exc:
        raise _fail(str(exc)) from None


@ipfs_app.command("id")
def ipfs_id_cmd(
    home: Path | None = typer.Option(None, help=HOME_HELP),
    api: str | None = typer.Option(None, "--api", help=API_HELP),
) -> None:
    """Print the node's peer id and swarm addresses, for other participants' `marketplace ipfs up --peer ADDRESS`."""
    with _client(api, home) as client:
        try:
            ident = client.id()
        except StorageError as exc:
            raise _fail(str(exc)) from None
    typer.echo(f"peer id: {ident.id}")
    if not ident.addresses:
        typer.echo("(no swarm address)")
    for addr in ident.addresses:
        note = "  (this machine only)" if addr.startswith(("/ip4/127.", "/ip6/::1/")) else ""
        typer.echo(f"{addr}{note}")


@ipfs_app.command("peers")
def ipfs_peers_cmd(
    home: Path | None = typer.Option(None, help=HOME_HELP),
    api: str | None = typer.Option(None, "--api", help=API_HELP),
) -> None:
    """List the peers the node is connected to (address of the connection, peer id)."""
    with _client(api, home) as client:
        try:
            peers = client.swarm_peers()
        except StorageError as exc:
            raise _fail(str(exc)) from None
    for p in peers:
        typer.echo(f"{p.addr}/p2p/{p.peer}")
    typer.echo(f"{len(peers)} peer(s) connected")


@swarm_key_app.command("new")
def swarm_key_new_cmd(
    file: Path = typer.Argument(..., help="where to write the key (must not exist; written with mode 0600)"),
) -> None:
    """Create a random private swarm key and print its fingerprint.

    Give the file to every participant over a private channel (anyone holding it can join the swarm); the fingerprint
    may be published so they can check they got the same key.
    """
    try:
        key = new_swarm_key(file)
    except SwarmConfigError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"wrote {file}")
    typer.echo(f"fingerprint: {swarm_key_fingerprint(key)}")


@swarm_key_app.command("fingerprint")
def swarm_key_fingerprint_cmd(file: Path = typer.Argument(..., help="a swarm.key file")) -> None:
    """Print the public fingerprint of a swarm key file."""
    try:
        typer.echo(swarm_key_fingerprint(read_swarm_key(file)))
    except SwarmConfigError as exc:
        raise _fail(str(exc)) from None
