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
    #: Requests re-sync the index at most this often (seconds); 0 = on every request.
    sync_interval: float = Field(default=1.0, ge=0)
    #: Seconds to wait for the IPFS node when reading a round's proof document.
    ipfs_timeout: float = Field(default=3.0, gt=0)
    title: str = "Training marketplace"
    #: A block explorer's base URL (the network profile's ``--explorer``): pages link a sent transaction's hash to
    #: ``<explorer>/tx/<hash>``; None (the local chain) shows the hash without a link.
    explorer_url: str | None = None
