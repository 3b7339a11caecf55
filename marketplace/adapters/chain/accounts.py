"""Load the signing account from a keystore file or the environment; create keystores.

Private keys never appear in messages raised from here (exceptions are raised ``from None`` so
no underlying error that might echo the input is chained).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

PRIVATE_KEY_ENV = "MARKETPLACE_PRIVATE_KEY"
KEYSTORE_ENV = "MARKETPLACE_KEYSTORE"
PASSWORD_ENV = "MARKETPLACE_KEYSTORE_PASSWORD"


class AccountError(RuntimeError):
    """No usable signing account (missing, malformed, or wrong password)."""


def _read_password(keystore: Path, password: str | None, interactive: bool) -> str:
    if password is not None:
        return password
    env = os.environ.get(PASSWORD_ENV)
    if env is not None:
        return env
    if interactive and sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(f"Password for keystore {keystore}: ")
    raise AccountError(f"keystore {keystore} needs a password: pass it, set {PASSWORD_ENV}, or run interactively")


def account_from_keystore(keystore: Path, password: str | None = None, *, interactive: bool = True) -> LocalAccount:
    """Decrypt an Ethereum V3 keystore JSON file."""
    try:
        encrypted = json.loads(Path(keystore).read_text())
    except FileNotFoundError:
        raise AccountError(f"keystore file not found: {keystore}") from None
    except (OSError, ValueError):
        raise AccountError(f"keystore {keystore} is not readable JSON") from None
    secret = _read_password(Path(keystore), password, interactive)
    try:
        key = Account.decrypt(encrypted, secret)
    except Exception:
        raise AccountError(f"cannot decrypt keystore {keystore}: wrong password or corrupt file") from None
    return Account.from_key(key)


def account_from_private_key(private_key: str) -> LocalAccount:
    """Build an account from a hex private key; the error message never echoes the key."""
    try:
        return Account.from_key(private_key.strip())
    except Exception:
        raise AccountError("the private key is malformed (expected 32 bytes as 0x-prefixed hex)") from None


def load_account(
    keystore: Path | None = None, password: str | None = None, *, interactive: bool = True
) -> LocalAccount:
    """Return the signing account.

    Order: ``keystore`` argument, ``$MARKETPLACE_KEYSTORE``, ``$MARKETPLACE_PRIVATE_KEY``. A
    keystore's password comes from ``password``, ``$MARKETPLACE_KEYSTORE_PASSWORD`` or an
    interactive prompt (when ``interactive`` and stdin is a terminal).
    """
    path = keystore or (Path(os.environ[KEYSTORE_ENV]) if os.environ.get(KEYSTORE_ENV) else None)
    if path is not None:
        return account_from_keystore(path, password, interactive=interactive)
    key = os.environ.get(PRIVATE_KEY_ENV)
    if key:
        return account_from_private_key(key)
    raise AccountError(f"no signing account: pass --keystore (or set {KEYSTORE_ENV}) or set {PRIVATE_KEY_ENV}")


def create_keystore(
    path: Path,
    password: str,
    private_key: str | bytes | None = None,
    *,
    overwrite: bool = False,
    kdf_iterations: int | None = None,
) -> str:
    """Write an encrypted keystore (mode 0600) for a new or given key; return its address.

    ``kdf_iterations`` lowers the scrypt cost (tests only; the default is the standard one).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise AccountError(f"{path} already exists (refusing to overwrite a keystore)")
    if not password:
        raise AccountError("refusing to create a keystore with an empty password")
    try:
        account = Account.create() if private_key is None else Account.from_key(private_key)
    except Exception:
        raise AccountError("the private key is malformed (expected 32 bytes)") from None
    encrypted = Account.encrypt(account.key, password, iterations=kdf_iterations)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(encrypted, handle)
    return str(account.address)


def describe(account: LocalAccount | None) -> str:
    """A safe one-line description of an account (address only)."""
    return "no account" if account is None else f"account {account.address}"
