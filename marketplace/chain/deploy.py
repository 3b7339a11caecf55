"""Deploy the marketplace contracts: registry, market, and (on local chains) a test verifier."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from marketplace.chain.client import ChainClient
from marketplace.chain.compile import Artifacts, compile_contracts
from marketplace.chain.market import MarketClient

LOCAL_CHAIN_ID = 31337


@dataclass(frozen=True)
class Deployment:
    """Addresses of one deployment of the marketplace, as saved in ``deployments/<network>.json``."""

    chain_id: int
    registry: str
    market: str
    block_number: int
    test_verifier: str | None = None
    deployed_at: float = 0.0

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Deployment:
        if not path.is_file():
            raise FileNotFoundError(f"no deployment record at {path}: run `marketplace deploy` first")
        return cls(**json.loads(path.read_text()))


def deploy_marketplace(
    chain: ChainClient, artifacts: Artifacts | None = None, *, with_test_verifier: bool | None = None
) -> Deployment:
    """Deploys ReliabilityRegistry and TrainingMarket from ``chain``'s account (the admin of both),
    authorizes the market in the registry, and on the local chain (id 31337) also deploys and
    approves the ``TestRoundVerifier`` unless ``with_test_verifier`` is False.
    """
    artifacts = artifacts or compile_contracts()
    for artifact in artifacts.values():
        chain.register_abi(artifact.abi)
    admin = chain.address
    local = chain.chain_id == LOCAL_CHAIN_ID
    if with_test_verifier is None:
        with_test_verifier = local
    if with_test_verifier and not local:
        raise ValueError("the test verifier proves nothing and only deploys on the local chain (id 31337)")

    registry = chain.deploy(artifacts["ReliabilityRegistry"], admin)
    market = chain.deploy(artifacts["TrainingMarket"], admin, registry.address)
    chain.transact(registry.functions.setMarketAuthorization(market.address, True))
    test_verifier = None
    if with_test_verifier:
        verifier = chain.deploy(artifacts["TestRoundVerifier"])
        chain.transact(market.functions.setVerifierApproval(verifier.address, True))
        test_verifier = verifier.address
    return Deployment(
        chain_id=chain.chain_id,
        registry=registry.address,
        market=market.address,
        block_number=chain.w3.eth.block_number,
        test_verifier=test_verifier,
        deployed_at=time.time(),
    )


def market_client(chain: ChainClient, deployment: Deployment, artifacts: Artifacts | None = None) -> MarketClient:
    """A :class:`MarketClient` for ``deployment`` acting as ``chain``'s account."""
    artifacts = artifacts or compile_contracts()
    for artifact in artifacts.values():
        chain.register_abi(artifact.abi)
    return MarketClient(
        chain,
        chain.contract(artifacts["TrainingMarket"], deployment.market),
        chain.contract(artifacts["ReliabilityRegistry"], deployment.registry),
    )
