"""The deployment every service reads: a read-only chain client, the market and registry contracts,
their event index (kept fresh in the background, or in requests: :class:`MarketContext`), the chain reads pages
show (cached: :mod:`~marketplace.web.services.chain_reads`) and the network's name.

:func:`connect` builds it from the settings. The server holds no keys: the chain client cannot sign.
Its contracts decode strings leniently (:mod:`marketplace.adapters.chain.lenient_abi`): a CID or model name that
is not UTF-8, which anyone can put on chain, is shown with U+FFFD instead of failing the request.
"""

from __future__ import annotations

import logging
import threading
import time

from eth_utils import is_address, to_checksum_address

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.deploy import market_client
from marketplace.adapters.chain.errors import ChainError
from marketplace.adapters.chain.lenient_abi import lenient_contract
from marketplace.adapters.chain.market import MarketClient
from marketplace.adapters.chain.redact import redact_urls
from marketplace.web.indexer import Indexer
from marketplace.web.model_cards import model_card_reader
from marketplace.web.proof_docs import proof_doc_reader
from marketplace.web.services.chain_reads import ChainReads
from marketplace.web.services.errors import NotFound
from marketplace.web.settings import WebSettings

log = logging.getLogger(__name__)


class MarketContext:
    """Chain, market and index of one deployment, and the cached chain reads pages show (:attr:`reads`).

    Two ways to keep the index fresh:

    * in the background (``serve_from_index`` and ``sync_interval > 0``): :meth:`start` runs a thread that syncs
      every ``sync_interval`` seconds and, after a sync that applied events, refreshes :attr:`reads`; requests
      never sync (:meth:`sync_for_request` does nothing) and pages read the index and :attr:`reads` only;
    * in the request (``sync_interval == 0``, or ``serve_from_index`` off): :meth:`sync_for_request` syncs
      first, at most once per ``sync_interval`` (0: every request, so what was just done on chain shows at once,
      which the tests rely on). With ``serve_from_index`` off :attr:`reads` is not cached either: the app as it
      was before issue 15 (``bench/web_load.py`` compares both).
    """

    def __init__(
        self,
        chain: ChainClient,
        market: MarketClient,
        indexer: Indexer,
        network: str,
        sync_interval: float = 1.0,
        serve_from_index: bool = True,
    ) -> None:
        self.chain = chain
        self.market = market
        self.indexer = indexer
        self.network = network
        self.sync_interval = sync_interval
        self.serve_from_index = serve_from_index
        self.reads = ChainReads(market, cached=serve_from_index)
        self._synced_at = 0.0
        self._sync_lock = threading.Lock()
        self._reads_version = indexer.event_version
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def version(self) -> tuple[int, int]:
        """Changes whenever what a page shows may have, but for the chain's time: the index's
        :attr:`~Indexer.version` and the cached chain reads' :attr:`~ChainReads.version`."""
        return self.indexer.version, self.reads.version

    @property
    def head(self) -> int | None:
        """The block the index is synced to, whose time :meth:`now` gives (what an open round's phase depends on,
        besides :attr:`version`)."""
        return self.indexer.head_number

    @property
    def background(self) -> bool:
        """Whether the index is kept fresh by a background thread rather than in requests."""
        return self.serve_from_index and self.sync_interval > 0

    def refresh(self, force: bool = False) -> None:
        """Syncs the index unless that happened less than ``sync_interval`` seconds ago (``force``: now), then
        refreshes :attr:`reads` if the sync applied events (or :data:`~.chain_reads.MAX_AGE` passed)."""
        with self._sync_lock:
            now = time.monotonic()
            if force or now - self._synced_at >= self.sync_interval:
                self.indexer.sync()
                self._synced_at = time.monotonic()
                changed = self.indexer.event_version != self._reads_version
                self._reads_version = self.indexer.event_version
                self.reads.refresh(everything=changed)

    def sync_for_request(self) -> None:
        """What a request that reads the index does first: nothing when a background thread keeps it fresh,
        else :meth:`refresh` (throttled)."""
        if not self.background:
            self.refresh()

    def now(self) -> int:
        """The chain's time for the open round's phase: the time of the block the index is synced to (the
        latest block's, read live, before the first sync or when not serving from the index)."""
        synced = self.indexer.head_timestamp
        if self.serve_from_index and synced is not None:
            return synced
        return self.chain.timestamp()

    def start(self) -> None:
        """Starts the background sync (if :attr:`background`); :meth:`close` stops it."""
        if self.background and self._thread is None:
            self._thread = threading.Thread(target=self._keep_synced, name="index-sync", daemon=True)
            self._thread.start()

    def _keep_synced(self) -> None:
        failing = False
        while not self._stop.wait(self.sync_interval):
            try:
                self.refresh(force=True)
            except ChainError as exc:
                if not failing:  # once per outage, not every interval
                    log.warning("index sync failed, pages show what was indexed: %s", redact_urls(str(exc)))
                failing = True
                continue
            except Exception:
                log.exception("index sync failed")
                continue
            if failing:
                log.info("index sync works again")
            failing = False

    def close(self) -> None:
        """Stops the background sync and closes the index (the app's lifespan ends)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.indexer.close()


def connect(settings: WebSettings) -> MarketContext:
    """The chain client (read-only; raises ChainError if the node's chain id is not the deployment's),
    the market client and the index for ``settings``; the index reads proof documents and model cards from the
    settings' IPFS node, if any."""
    chain = ChainClient(settings.rpc_url, None, expected_chain_id=settings.deployment.chain_id)
    deployed = market_client(chain, settings.deployment)
    market = MarketClient(
        chain,
        lenient_contract(deployed.market),
        lenient_contract(deployed.registry),
        lenient_contract(deployed.lens),
        deploy_block=deployed.deploy_block,
    )
    blocks = [c.block_number for c in settings.deployment.contracts.values()]
    start = max(0, min(blocks) - 1) if blocks else 0
    reader = proof_doc_reader(settings.ipfs_api, settings.ipfs_timeout) if settings.ipfs_api else None
    cards = model_card_reader(settings.ipfs_api, settings.ipfs_timeout) if settings.ipfs_api else None
    indexer = Indexer(
        settings.db_path,
        chain,
        market.market,
        market.registry,
        market.lens,
        start_block=start,
        proof_docs=reader,
        model_cards=cards,
    )
    return MarketContext(
        chain, market, indexer, settings.network, settings.sync_interval, serve_from_index=settings.serve_from_index
    )


def account_address(value: str) -> str:
    """``value`` as a checksummed address; :class:`NotFound` if it is not one."""
    if not is_address(value):
        raise NotFound(f"{value!r} is not an Ethereum address")
    return to_checksum_address(value)
