"""Typed adapter of the ``UpdateKeys`` contract: the key a project's trainers encrypt their updates to.

A project is *encrypted* exactly when its aggregator published a key for it (:meth:`UpdateKeysClient.key_of`
is not None); see :mod:`marketplace.protocol.envelope` for the scheme. ``UpdateKeys`` is deployed beside the
market by ``marketplace deploy`` and recorded in the deployment record under :data:`UPDATE_KEYS`; a node that
was handed only a :class:`~marketplace.adapters.chain.market.MarketClient` finds it there
(:func:`recorded_update_keys`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address
from pydantic import ValidationError
from web3.contract import Contract

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import Artifacts, compile_contracts
from marketplace.adapters.chain.config import Deployment, deployments_dir
from marketplace.adapters.chain.market import MarketClient
from marketplace.protocol.envelope import check_public_key

#: The deployment record's name of the contract.
UPDATE_KEYS = "UpdateKeys"
_ZERO = b"\0" * 32


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


def update_keys_client(
    chain: ChainClient, deployment: Deployment, artifacts: Artifacts | None = None
) -> UpdateKeysClient | None:
    """An :class:`UpdateKeysClient` for ``deployment`` acting as ``chain``'s account; None if the deployment has
    no ``UpdateKeys`` (a record from before it existed: no project there can be encrypted)."""
    record = deployment.contracts.get(UPDATE_KEYS)
    if record is None:
        return None
    artifacts = artifacts or compile_contracts()
    return UpdateKeysClient(chain, chain.contract(artifacts[UPDATE_KEYS], record.address), record.block_number)


def recorded_update_keys(market: MarketClient) -> UpdateKeysClient | None:
    """The ``UpdateKeys`` recorded beside ``market`` in a deployment record of :func:`deployments_dir` (the
    same chain id and market address), acting as ``market``'s account; None if no record names one. Records
    that cannot be read are skipped."""
    folder = deployments_dir()
    if not folder.is_dir():
        return None
    wanted = to_checksum_address(market.market.address)
    for path in sorted(folder.glob("*.json")):
        try:
            deployment = Deployment.model_validate_json(path.read_text())
        except (OSError, ValidationError):
            continue
        recorded = deployment.contracts.get("TrainingMarket")
        if (
            deployment.chain_id == market.chain.chain_id
            and recorded is not None
            and to_checksum_address(recorded.address) == wanted
            and UPDATE_KEYS in deployment.contracts
        ):
            return update_keys_client(market.chain, deployment)
    return None
