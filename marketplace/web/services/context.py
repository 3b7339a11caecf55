"""The deployment every service reads: a read-only chain client, the market and registry contracts,
their event index (kept fresh, throttled) and the network's name.

:func:`connect` builds it from the settings. The server holds no keys: the chain client cannot sign.
Its contracts decode strings leniently (:mod:`marketplace.adapters.chain.lenient_abi`): a CID or model name that
is not UTF-8, which anyone can put on chain, is shown with U+FFFD instead of failing the request.
"""

from __future__ import annotations

import threading
import time

from eth_utils import is_address, to_checksum_address

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.deploy import market_client
from marketplace.adapters.chain.lenient_abi import lenient_contract
from marketplace.adapters.chain.market import MarketClient
from marketplace.web.indexer import Indexer
from marketplace.web.proof_docs import proof_doc_reader
from marketplace.web.services.errors import NotFound
from marketplace.web.settings import WebSettings


class MarketContext:
    """Chain, market and index of one deployment; :meth:`refresh` keeps the index up to date."""

    def __init__(
        self, chain: ChainClient, market: MarketClient, indexer: Indexer, network: str, sync_interval: float = 1.0
    ) -> None:
        self.chain = chain
        self.market = market
        self.indexer = indexer
        self.network = network
        self.sync_interval = sync_interval
        self._synced_at = 0.0
        self._sync_lock = threading.Lock()

    def refresh(self, force: bool = False) -> None:
        """Syncs the index unless that happened less than ``sync_interval`` seconds ago."""
        with self._sync_lock:
            now = time.monotonic()
            if force or now - self._synced_at >= self.sync_interval:
                self.indexer.sync()
                self._synced_at = time.monotonic()

    def close(self) -> None:
        """Closes the index (the app's lifespan ends)."""
        self.indexer.close()


def connect(settings: WebSettings) -> MarketContext:
    """The chain client (read-only; raises ChainError if the node's chain id is not the deployment's),
    the market client and the index for ``settings``; the index reads proof documents from the settings'
    IPFS node, if any."""
    chain = ChainClient(settings.rpc_url, None, expected_chain_id=settings.deployment.chain_id)
    deployed = market_client(chain, settings.deployment)
    market = MarketClient(
        chain,
        lenient_contract(deployed.market),
        lenient_contract(deployed.registry),
        deploy_block=deployed.deploy_block,
    )
    blocks = [c.block_number for c in settings.deployment.contracts.values()]
    start = max(0, min(blocks) - 1) if blocks else 0
    reader = proof_doc_reader(settings.ipfs_api, settings.ipfs_timeout) if settings.ipfs_api else None
    indexer = Indexer(settings.db_path, chain, market.market, market.registry, start_block=start, proof_docs=reader)
    return MarketContext(chain, market, indexer, settings.network, settings.sync_interval)


def account_address(value: str) -> str:
    """``value`` as a checksummed address; :class:`NotFound` if it is not one."""
    if not is_address(value):
        raise NotFound(f"{value!r} is not an Ethereum address")
    return to_checksum_address(value)
