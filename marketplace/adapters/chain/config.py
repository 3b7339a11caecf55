"""Network profiles (where the chain is, which chain id to expect, who signs) and deployment
records (``deployments/<network>.json``).

``local`` is the anvil started by ``marketplace chain up`` (its URL from ``.state/chain.json``,
else ``http://127.0.0.1:8545``; chain id 31337; anvil dev account 0 unless a key is configured);
it has no profile file.

Any other name is resolved in this order, each later source overriding the earlier one field by field:

1. the defaults (no keystore, 10,000 blocks per log request);
2. the profile file ``networks/<name>.json`` in the state dir (``.state/networks/``;
   ``MARKETPLACE_NETWORKS_DIR`` overrides the folder), written by ``marketplace network init``
   (:class:`SavedNetwork`: RPC URL, chain id, keystore *path*, log range, explorer; never a key or
   a password: a file with any other field is refused);
3. the environment: ``MARKETPLACE_RPC_URL``, ``MARKETPLACE_CHAIN_ID`` (checked against the RPC),
   ``MARKETPLACE_KEYSTORE`` (replaces the profile's keystore), ``MARKETPLACE_PRIVATE_KEY`` (when set
   without ``MARKETPLACE_KEYSTORE``, signs instead of the profile's keystore) and
   ``MARKETPLACE_LOG_BLOCK_RANGE``: the most blocks one ``eth_getLogs`` request spans (default 10,000,
   what public providers accept; see :mod:`marketplace.adapters.chain.client`).

Without a profile file and without ``MARKETPLACE_RPC_URL`` the network is not configured (:class:`ConfigError`).
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

from eth_account.signers.local import LocalAccount
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from marketplace.adapters.chain.accounts import KEYSTORE_ENV, PRIVATE_KEY_ENV, load_account
from marketplace.adapters.chain.anvil import ANVIL_CHAIN_ID, dev_accounts
from marketplace.adapters.chain.client import (
    DEFAULT_LOG_BLOCK_RANGE,
    LOG_BLOCK_RANGE_ENV,
    ChainClient,
    log_block_range_from_env,
)
from marketplace.adapters.chain.errors import ChainError
from marketplace.adapters.chain.localnet import read_chain_state, state_dir
from marketplace.adapters.toolchain import project_root

LOCAL = "local"
DEFAULT_LOCAL_URL = "http://127.0.0.1:8545"
RPC_URL_ENV = "MARKETPLACE_RPC_URL"
CHAIN_ID_ENV = "MARKETPLACE_CHAIN_ID"
NETWORKS_DIR_ENV = "MARKETPLACE_NETWORKS_DIR"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class ConfigError(RuntimeError):
    """The requested network is not configured."""


class ProfileError(ConfigError):
    """A profile file is unusable: a bad network name, an invalid file, or one that exists already."""


class NetworkProfile(BaseModel):
    """Where a network's RPC is and what to expect of it."""

    name: str
    rpc_url: str
    chain_id: int | None = None
    keystore: Path | None = None
    is_local: bool = False
    #: The most blocks one ``eth_getLogs`` request spans (the client halves it when the provider asks for less).
    log_block_range: int = Field(default=DEFAULT_LOG_BLOCK_RANGE, ge=1)
    #: A block explorer's base URL (informational; from the profile file).
    explorer_url: str | None = None

    def account(self, password: str | None = None, *, dev_index: int = 0) -> LocalAccount:
        """The signing account: configured key/keystore; on ``local`` anvil's dev account."""
        if self.keystore is not None:
            return load_account(self.keystore, password)
        if self.is_local and not os.environ.get(PRIVATE_KEY_ENV):
            return dev_accounts(dev_index + 1)[dev_index]
        return load_account(None, password)

    def client(self, account: LocalAccount | None = None, *, read_only: bool = False) -> ChainClient:
        """A :class:`ChainClient` for this network (chain id checked when one is expected)."""
        signer = None if read_only else (account or self.account())
        return ChainClient(self.rpc_url, signer, expected_chain_id=self.chain_id, log_block_range=self.log_block_range)


def resolve_network(name: str = LOCAL) -> NetworkProfile:
    """Build the profile for ``name``: ``local`` from the chain state file, any other name from its profile
    file overridden by the environment (order in the module docstring). :class:`ConfigError` for a value that
    is not usable or a network that is not configured, :class:`ProfileError` for an invalid profile file."""
    env_keystore = Path(os.environ[KEYSTORE_ENV]) if os.environ.get(KEYSTORE_ENV) else None
    env_range = os.environ.get(LOG_BLOCK_RANGE_ENV, "").strip()
    try:
        log_range = log_block_range_from_env()
    except ChainError as exc:
        raise ConfigError(str(exc)) from None
    if name == LOCAL:
        state = read_chain_state()
        url = state.url if state else DEFAULT_LOCAL_URL
        return NetworkProfile(
            name=name,
            rpc_url=url,
            chain_id=ANVIL_CHAIN_ID,
            keystore=env_keystore,
            is_local=True,
            log_block_range=log_range,
        )
    saved = read_saved_network(name)
    url = os.environ.get(RPC_URL_ENV) or (saved.rpc_url if saved else None)
    if not url:
        raise ConfigError(
            f"network {name!r} is not configured: run `marketplace network init {name} --rpc-url URL` "
            f"(or set {RPC_URL_ENV} and optionally {CHAIN_ID_ENV})"
        )
    raw_id = os.environ.get(CHAIN_ID_ENV)
    try:
        chain_id = int(raw_id, 0) if raw_id else (saved.chain_id if saved else None)
    except ValueError:
        raise ConfigError(f"{CHAIN_ID_ENV} must be an integer, got {raw_id!r}") from None
    keystore = env_keystore
    if keystore is None and saved is not None and not os.environ.get(PRIVATE_KEY_ENV):
        keystore = saved.keystore
    if not env_range and saved is not None and saved.log_block_range is not None:
        log_range = saved.log_block_range
    return NetworkProfile(
        name=name,
        rpc_url=url,
        chain_id=chain_id,
        keystore=keystore,
        log_block_range=log_range,
        explorer_url=saved.explorer_url if saved else None,
    )


# ------------------------------------------------------------------ profile files
class SavedNetwork(BaseModel):
    """What ``networks/<name>.json`` holds: where the chain is and which keystore *file* signs. No private key
    or password has a field, and a file with an unknown field is refused (nothing secret is read from it)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    rpc_url: str
    chain_id: int = Field(ge=1)
    keystore: Path | None = None
    log_block_range: int | None = Field(default=None, ge=1)
    explorer_url: str | None = None
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def check_network_name(name: str) -> str:
    """``name`` if it can name a profile file (letters, digits, ``_.-``, at most 64, not ``local``), else
    :class:`ProfileError`."""
    if name == LOCAL:
        raise ProfileError("`local` is the chain of `marketplace chain up` and has no profile file")
    if not _NAME.fullmatch(name):
        raise ProfileError(f"bad network name {name!r}: use letters, digits, '_', '.', '-' (at most 64)")
    return name


def networks_dir() -> Path:
    """``<state dir>/networks`` (``MARKETPLACE_NETWORKS_DIR`` overrides)."""
    env = os.environ.get(NETWORKS_DIR_ENV)
    return Path(env) if env else state_dir() / "networks"


def network_profile_path(name: str) -> Path:
    """Path of the profile file of network ``name`` (:class:`ProfileError` for a bad name)."""
    return networks_dir() / f"{check_network_name(name)}.json"


def read_saved_network(name: str) -> SavedNetwork | None:
    """The profile file of ``name``, or None when there is none (or ``name`` cannot have one);
    :class:`ProfileError` when it exists but is not a valid profile."""
    if name == LOCAL or not _NAME.fullmatch(name):
        return None
    path = network_profile_path(name)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ProfileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        saved = SavedNetwork.model_validate_json(text)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "file"
        raise ProfileError(f"invalid network profile {path}: {where}: {problem['msg']}") from None
    if saved.name != name:
        raise ProfileError(f"invalid network profile {path}: it names network {saved.name!r}")
    return saved


def write_saved_network(saved: SavedNetwork, *, force: bool = False) -> Path:
    """Write ``saved`` to its profile file (atomically, mode 0600) and return the path; :class:`ProfileError`
    when the file exists and not ``force``."""
    path = network_profile_path(saved.name)
    if path.exists() and not force:
        raise ProfileError(f"{path} exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(saved.model_dump_json(indent=2) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


def list_saved_networks() -> list[str]:
    """Names of the profile files in :func:`networks_dir`, sorted."""
    folder = networks_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if _NAME.fullmatch(p.stem) and p.stem != LOCAL)


# ------------------------------------------------------------------ deployments
class DeployedContract(BaseModel):
    """One deployed contract; ``block_number`` is the block of its creation (no log of it is older)."""

    address: str
    block_number: int
    tx_hash: str | None = None


class Deployment(BaseModel):
    """Addresses of the project's contracts on one network."""

    network: str
    chain_id: int
    contracts: dict[str, DeployedContract] = Field(default_factory=dict)
    deployed_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def address(self, name: str) -> str:
        """Address of contract ``name`` (KeyError with a hint when missing)."""
        try:
            return self.contracts[name].address
        except KeyError:
            raise KeyError(f"{name} is not deployed on {self.network}; deploy first") from None


def deployments_dir() -> Path:
    """``<root>/deployments`` (``MARKETPLACE_DEPLOYMENTS_DIR`` overrides)."""
    env = os.environ.get("MARKETPLACE_DEPLOYMENTS_DIR")
    return Path(env) if env else project_root() / "deployments"


def deployment_path(network: str) -> Path:
    """Path of ``deployments/<network>.json``."""
    return deployments_dir() / f"{network}.json"


def read_deployment(network: str) -> Deployment | None:
    """The recorded deployment for ``network``, or None."""
    path = deployment_path(network)
    if not path.is_file():
        return None
    return Deployment.model_validate_json(path.read_text())


def write_deployment(deployment: Deployment) -> Path:
    """Record ``deployment`` (atomically) and return its path."""
    path = deployment_path(deployment.network)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(deployment.model_dump_json(indent=2) + "\n")
    tmp.replace(path)
    return path
