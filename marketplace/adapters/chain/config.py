"""Network profiles (where the chain is, which chain id to expect, who signs) and deployment
records (``deployments/<network>.json``).

``local`` is the anvil started by ``marketplace chain up`` (its URL from ``.state/chain.json``,
else ``http://127.0.0.1:8545``; chain id 31337; anvil dev account 0 unless a key is configured).
Any other name reads ``MARKETPLACE_RPC_URL``, ``MARKETPLACE_CHAIN_ID`` (optional, checked
against the RPC) and ``MARKETPLACE_PRIVATE_KEY`` / ``MARKETPLACE_KEYSTORE``. Every profile reads
``MARKETPLACE_LOG_BLOCK_RANGE``: the most blocks one ``eth_getLogs`` request spans (default 10,000, what public
providers accept; see :mod:`marketplace.adapters.chain.client`).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from eth_account.signers.local import LocalAccount
from pydantic import BaseModel, Field

from marketplace.adapters.chain.accounts import KEYSTORE_ENV, PRIVATE_KEY_ENV, load_account
from marketplace.adapters.chain.anvil import ANVIL_CHAIN_ID, dev_accounts
from marketplace.adapters.chain.client import DEFAULT_LOG_BLOCK_RANGE, ChainClient, log_block_range_from_env
from marketplace.adapters.chain.errors import ChainError
from marketplace.adapters.chain.localnet import read_chain_state
from marketplace.adapters.toolchain import project_root

LOCAL = "local"
DEFAULT_LOCAL_URL = "http://127.0.0.1:8545"
RPC_URL_ENV = "MARKETPLACE_RPC_URL"
CHAIN_ID_ENV = "MARKETPLACE_CHAIN_ID"


class ConfigError(RuntimeError):
    """The requested network is not configured."""


class NetworkProfile(BaseModel):
    """Where a network's RPC is and what to expect of it."""

    name: str
    rpc_url: str
    chain_id: int | None = None
    keystore: Path | None = None
    is_local: bool = False
    #: The most blocks one ``eth_getLogs`` request spans (the client halves it when the provider asks for less).
    log_block_range: int = Field(default=DEFAULT_LOG_BLOCK_RANGE, ge=1)

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
    """Build the profile for ``name`` from the chain state file and the environment (:class:`ConfigError` for a
    value that is not usable)."""
    keystore = Path(os.environ[KEYSTORE_ENV]) if os.environ.get(KEYSTORE_ENV) else None
    try:
        log_range = log_block_range_from_env()
    except ChainError as exc:
        raise ConfigError(str(exc)) from None
    if name == LOCAL:
        state = read_chain_state()
        url = state.url if state else DEFAULT_LOCAL_URL
        return NetworkProfile(
            name=name, rpc_url=url, chain_id=ANVIL_CHAIN_ID, keystore=keystore, is_local=True, log_block_range=log_range
        )
    url = os.environ.get(RPC_URL_ENV)
    if not url:
        raise ConfigError(f"network {name!r} needs {RPC_URL_ENV} (and optionally {CHAIN_ID_ENV})")
    raw_id = os.environ.get(CHAIN_ID_ENV)
    try:
        chain_id = int(raw_id, 0) if raw_id else None
    except ValueError:
        raise ConfigError(f"{CHAIN_ID_ENV} must be an integer, got {raw_id!r}") from None
    return NetworkProfile(name=name, rpc_url=url, chain_id=chain_id, keystore=keystore, log_block_range=log_range)


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
