"""What every command group of the ``marketplace`` command line shares.

- :data:`console` prints everything the commands print; :func:`fail` is the one error exit
  (``error: <message>`` in red, exit code 1).
- :func:`to_wei` parses and :func:`fmt_eth` formats ETH amounts.
- The options several commands take, declared once so their flags and help texts cannot drift:
  :data:`NETWORK`, :data:`KEYSTORE`, :data:`DEV_ACCOUNT`, :data:`IPFS_API`, :data:`POLL`.
- :func:`signing_account`, :func:`connect_market`, :func:`open_store` and
  :func:`open_store_if_reachable` turn those options into the account, market client and IPFS
  store a command works with, and :func:`market_update_keys` finds the market's ``UpdateKeys``,
  converting the library's typed errors into :func:`fail`.
- :func:`stops_on_signals` wraps the body of a command that runs until stopped (Ctrl-C or SIGTERM).

Imports only light modules (chain and IPFS adapters, no torch, ezkl or web stack).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console

from marketplace.adapters.chain.accounts import AccountError, load_account
from marketplace.adapters.chain.config import ConfigError, resolve_network
from marketplace.adapters.chain.deploy import connect
from marketplace.adapters.chain.errors import ChainError
from marketplace.adapters.chain.market import MarketClient
from marketplace.adapters.chain.update_keys import UpdateKeysClient, recorded_update_keys
from marketplace.adapters.ipfs.errors import StorageError
from marketplace.adapters.ipfs.ipfs import IpfsClient
from marketplace.adapters.ipfs.manager import resolve_api_url
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.adapters.processes import Interrupted, stop_on_signals

#: soft wrap: the terminal wraps long lines, rich never breaks a path, CID or key it prints (copied from a narrow
#: terminal or a log, it stays whole)
console = Console(soft_wrap=True)

NETWORK = typer.Option(
    "local",
    "--network",
    "-n",
    help="Network profile: local, or a profile from `marketplace network init` (MARKETPLACE_* env vars override).",
)
KEYSTORE = typer.Option(
    None,
    "--keystore",
    help="Keystore JSON of your wallet (else MARKETPLACE_KEYSTORE, its password in MARKETPLACE_KEYSTORE_PASSWORD or "
    "asked; else MARKETPLACE_PRIVATE_KEY).",
)
DEV_ACCOUNT = typer.Option(
    None, "--dev-account", help="Local chain only: sign with anvil's public dev account N (for trying things out)."
)
IPFS_API = typer.Option(
    None, "--ipfs-api", help="Kubo RPC URL (else MARKETPLACE_IPFS_API, else `marketplace ipfs up`)."
)
POLL = typer.Option(2.0, "--poll", help="Seconds between checks of the chain.")


def fail(message: str) -> typer.Exit:
    """Prints ``error: <message>`` (not wrapped, so it can be copied) and returns the exit to raise:
    ``raise fail(...) from None``."""
    console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    return typer.Exit(code=1)


@contextmanager
def stops_on_signals() -> Iterator[None]:
    """The body of a command that runs until stopped (a ``with`` block, or a decorator under the command's):
    SIGINT (Ctrl-C) or SIGTERM stops what the command started, prints ``stopped (SIGINT)`` and exits with
    130 (SIGTERM: 143), without a traceback; a second signal ends it at once
    (:func:`~marketplace.adapters.processes.stop_on_signals`)."""
    try:
        with stop_on_signals():
            yield
    except Interrupted as exc:
        console.print(f"stopped ({exc.signal_name})")
        raise typer.Exit(code=exc.exit_code) from None


def to_wei(eth: str) -> int:
    """Parses an ETH amount such as '1.5' exactly (no float rounding)."""
    try:
        value = Decimal(eth)
    except Exception:
        raise typer.BadParameter(f"not an ETH amount: {eth!r}") from None
    if value < 0:
        raise typer.BadParameter("amounts cannot be negative")
    return int(value * 10**18)


def fmt_eth(wei: int) -> str:
    """``1.5 ETH``; amounts below a millionth of an ether (rounding dust) in wei."""
    if 0 < abs(wei) < 10**12:
        return f"{wei} wei"
    return f"{Decimal(wei) / 10**18:.6f}".rstrip("0").rstrip(".") + " ETH"


def signing_account(network: str, keystore: Path | None, dev_account: int | None) -> LocalAccount:
    """The account the ``--keystore`` / ``--dev-account`` options name, else the network profile's
    configured one. ``--dev-account`` is refused off the local chain."""
    profile = resolve_network(network)
    if dev_account is not None:
        if not profile.is_local:
            raise fail("--dev-account is for the local chain only")
        return profile.account(dev_index=dev_account)
    try:
        if keystore is not None:
            return load_account(keystore)
        return profile.account()
    except AccountError as exc:
        raise fail(str(exc)) from None


def connect_market(network: str, account: LocalAccount | None = None, *, read_only: bool = False) -> MarketClient:
    """The market deployed on ``network``, signing as ``account`` (default: the profile's account;
    none with ``read_only``)."""
    try:
        return connect(network, account, read_only=read_only)
    except (ConfigError, ChainError, FileNotFoundError) as exc:
        raise fail(str(exc)) from None


def market_update_keys(market: MarketClient) -> UpdateKeysClient | None:
    """The ``UpdateKeys`` recorded beside ``market`` (None if none is recorded), checked to be the market's: a
    record naming another contract (``UnexpectedUpdateKeys``) is an error naming both addresses."""
    try:
        return recorded_update_keys(market)
    except (ConfigError, ChainError) as exc:
        raise fail(str(exc)) from None


def open_store(ipfs_api: str | None) -> ModelStore:
    """The IPFS model store at ``--ipfs-api``, else ``$MARKETPLACE_IPFS_API``, else the local node."""
    try:
        return ModelStore(IpfsClient(resolve_api_url(ipfs_api)))
    except StorageError as exc:
        raise fail(str(exc)) from None


def open_store_if_reachable(ipfs_api: str | None) -> ModelStore | None:
    """Like :func:`open_store`, but None instead of an error when no IPFS API is configured."""
    try:
        return ModelStore(IpfsClient(resolve_api_url(ipfs_api)))
    except StorageError:
        return None
