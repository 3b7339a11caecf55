"""Typed adapter of the ``UpdateKeys`` contract: the key a project's trainers encrypt their updates to.

A project is *encrypted* exactly when its aggregator published a key for it (:meth:`UpdateKeysClient.key_of`
is not None); see :mod:`marketplace.protocol.envelope` for the scheme. ``UpdateKeys`` is deployed beside the
market by ``marketplace deploy`` and recorded in the deployment record under :data:`UPDATE_KEYS`; a node that
was handed only a :class:`~marketplace.adapters.chain.market.MarketClient` finds it there
(:func:`recorded_update_keys`).

The record is not trusted: a hand-made one could name a contract of the attacker's that answers ``keyOf`` with
the attacker's key, and trainers would encrypt their updates to it. So a recorded ``UpdateKeys`` is used only
once :func:`check_update_keys` found it genuine: its runtime code is the one compiled from
``contracts/UpdateKeys.sol`` (but for its immutable ``market``), so only a project's aggregator can have
published a key there, and its ``market()`` is the market in use (:class:`UnexpectedUpdateKeys` otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address
from pydantic import ValidationError
from web3.contract import Contract

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import Artifact, Artifacts, compile_contracts
from marketplace.adapters.chain.config import ConfigError, Deployment, deployments_dir
from marketplace.adapters.chain.market import MarketClient
from marketplace.protocol.envelope import check_public_key

#: The deployment record's name of the contract.
UPDATE_KEYS = "UpdateKeys"
_MARKET = "TrainingMarket"
_ZERO = b"\0" * 32


class UnexpectedUpdateKeys(ConfigError):
    """The contract a deployment record names as a market's ``UpdateKeys`` is not that market's: not the code
    compiled from ``contracts/UpdateKeys.sol`` (another contract, or another version of it), or the keys of
    another market. Its keys are not used: they could be anyone's."""

    def __init__(self, update_keys: str, market: str, why: str) -> None:
        self.update_keys = update_keys
        self.market = market
        super().__init__(
            f"the deployment record names {update_keys} as the UpdateKeys of the market {market}, but {why}: "
            "refusing the keys it publishes (redeploy, or get the record from whoever deployed the market)"
        )


@dataclass(frozen=True)
class KeyPublication:
    """One ``UpdateKeyPublished`` event: ``aggregator`` published ``public_key`` for ``project_id``."""

    project_id: int
    aggregator: str
    public_key: bytes
    block_number: int
    tx_hash: str


class UpdateKeysClient:
    """Calls and transactions of one account against a deployed ``UpdateKeys``. Event queries read no block
    older than ``deploy_block`` (its creation block, from the deployment record)."""

    def __init__(self, chain: ChainClient, contract: Contract, deploy_block: int = 0) -> None:
        self.chain = chain
        self.contract = contract
        self.deploy_block = max(0, deploy_block)

    @property
    def address(self) -> str:
        """The contract's address."""
        return str(self.contract.address)

    def market_address(self) -> str:
        """The market whose projects' keys this contract holds."""
        return to_checksum_address(self.chain.call(self.contract.functions.market()))

    def key_of(self, project_id: int) -> bytes | None:
        """The 32-byte X25519 key ``project_id``'s updates are encrypted to; None if its updates are public."""
        key = bytes(self.chain.call(self.contract.functions.keyOf(project_id)))
        return None if key == _ZERO else key

    def publish_key(self, project_id: int, public_key: bytes) -> Any:
        """Publishes ``public_key`` for ``project_id`` (this account must be its aggregator; once; while the
        project is open or training). A key nothing can be encrypted to (zero, small order) is refused here,
        before any transaction: :class:`~marketplace.protocol.envelope.InvalidUpdateKey`."""
        return self.chain.transact(self.contract.functions.publishKey(project_id, check_public_key(public_key)))

    def publication(self, project_id: int) -> KeyPublication | None:
        """The ``UpdateKeyPublished`` event of ``project_id`` (when and by whom its key was published), or None."""
        logs = self.chain.get_logs(
            self.contract, "UpdateKeyPublished", self.deploy_block, argument_filters={"projectId": project_id}
        )
        if not logs:
            return None
        e = logs[0]
        return KeyPublication(
            int(e["args"]["projectId"]),
            e["args"]["aggregator"],
            bytes(e["args"]["publicKey"]),
            int(e["block_number"]),
            str(e["tx_hash"]),
        )


def check_update_keys(keys: UpdateKeysClient, market: str, artifact: Artifact) -> None:
    """Returns if ``keys`` is a genuine ``UpdateKeys`` of ``market``: its runtime code is ``artifact``'s (compiled
    from ``contracts/UpdateKeys.sol``) but for the value of its immutable ``market``, and ``market()`` answers
    ``market``. :class:`UnexpectedUpdateKeys`, naming both addresses, otherwise."""
    wanted = to_checksum_address(market)
    code = keys.chain.code(keys.address)
    if not code:
        raise UnexpectedUpdateKeys(keys.address, wanted, "no contract is deployed there")
    if not artifact.is_runtime_of(code):
        raise UnexpectedUpdateKeys(
            keys.address, wanted, "its code is not the UpdateKeys compiled from contracts/UpdateKeys.sol"
        )
    holds = keys.market_address()
    if holds != wanted:
        raise UnexpectedUpdateKeys(keys.address, wanted, f"it holds the keys of the market {holds}")


def update_keys_client(
    chain: ChainClient, deployment: Deployment, artifacts: Artifacts | None = None
) -> UpdateKeysClient | None:
    """An :class:`UpdateKeysClient` for ``deployment`` acting as ``chain``'s account, checked against the
    deployment's market (:func:`check_update_keys`: :class:`UnexpectedUpdateKeys`); None if the deployment has no
    ``UpdateKeys`` (a record from before it existed: no project there can be encrypted)."""
    record = deployment.contracts.get(UPDATE_KEYS)
    if record is None:
        return None
    artifacts = artifacts or compile_contracts()
    keys = UpdateKeysClient(chain, chain.contract(artifacts[UPDATE_KEYS], record.address), record.block_number)
    check_update_keys(keys, deployment.address(_MARKET), artifacts[UPDATE_KEYS])
    return keys


def recorded_update_keys(market: MarketClient) -> UpdateKeysClient | None:
    """The ``UpdateKeys`` recorded beside ``market`` in a deployment record of :func:`deployments_dir` (the
    same chain id and market address), acting as ``market``'s account; None if no record names one. Records
    that cannot be read are skipped; :class:`UnexpectedUpdateKeys` if the one recorded is not ``market``'s
    (:func:`check_update_keys`)."""
    folder = deployments_dir()
    if not folder.is_dir():
        return None
    wanted = to_checksum_address(market.market.address)
    for path in sorted(folder.glob("*.json")):
        try:
            deployment = Deployment.model_validate_json(path.read_text())
        except (OSError, ValidationError):
            continue
        recorded = deployment.contracts.get(_MARKET)
        if (
            deployment.chain_id == market.chain.chain_id
            and recorded is not None
            and to_checksum_address(recorded.address) == wanted
            and UPDATE_KEYS in deployment.contracts
        ):
            return update_keys_client(market.chain, deployment)
    return None
