"""What the web app needs to know: where the chain is, which deployment, where to keep its index."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from marketplace.adapters.chain.config import Deployment


class WebSettings(BaseModel):
    """Settings of one web app instance (one network, one deployment)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    rpc_url: str
    deployment: Deployment
    db_path: Path = Path(".state/web-index.sqlite")
    ipfs_api: str | None = None
    network: str = "local"
    #: The index is synced this often (seconds): in a background thread, or with 0 in every request that reads it
    #: (what was just done on chain shows at once: the tests' setting).
    sync_interval: float = Field(default=1.0, ge=0)
    #: Seconds to wait for the IPFS node when the index reads a round's proof document (one at a time, as it syncs;
    #: visitors' downloads are bounded by the ``ipfs_fetch*`` settings below).
    ipfs_timeout: float = Field(default=3.0, gt=0)
    title: str = "Training marketplace"
    #: Initial weights the server pins to its IPFS node for anyone (``POST /api/models/{name}/init``): at most this
    #: many per client and in all within ``pin_window`` seconds, and none larger than ``max_pin_bytes``.
    pins_per_client: int = Field(default=20, ge=0)
    pins_total: int = Field(default=200, ge=0)
    pin_window: float = Field(default=3600.0, gt=0)
    max_pin_bytes: int = Field(default=64 << 20, ge=0)
    #: IPFS fetches that visitors' requests start (downloads, flag causes: :mod:`.services.ipfs_fetches`): at most
    #: ``ipfs_fetches`` at once and ``ipfs_fetches_per_client`` for one client, each searching the swarm at most
    #: ``ipfs_fetch_timeout`` seconds (less than the node's own 30 s); objects fetched are kept by CID
    #: (``ipfs_cache_bytes`` in all), a failure is remembered ``ipfs_failure_ttl`` seconds.
    ipfs_fetches: int = Field(default=3, ge=1)
    ipfs_fetches_per_client: int = Field(default=1, ge=1)
    ipfs_fetch_timeout: float = Field(default=10.0, gt=0, lt=30.0)
    ipfs_failure_ttl: float = Field(default=60.0, ge=0)
    ipfs_cache_bytes: int = Field(default=128 << 20, ge=0)
    #: Pages and their JSON twins read only the index and cached chain reads, which a background thread keeps
    #: fresh (issue 15). False: each request syncs the index (throttled to ``sync_interval``) and reads the chain
    #: live, as before; ``bench/web_load.py`` compares both.
    serve_from_index: bool = True
    #: A block explorer's base URL (the network profile's ``--explorer``): pages link a sent transaction's hash to
    #: ``<explorer>/tx/<hash>``; None (the local chain) shows the hash without a link.
    explorer_url: str | None = None
