"""Deploy the marketplace contracts: registry, market, and (on local chains) a test verifier.

The test verifier declares the rule version it is deployed for (``ruleVersion()``: by default this
code's :data:`marketplace.rule.RULE_VERSION`), like a zk verifier (:mod:`marketplace.adapters.ezkl.evm`).
"""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3.contract import Contract

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import Artifact, Artifacts, compile_contracts
from marketplace.adapters.chain.config import (
    ConfigError,
    DeployedContract,
    Deployment,
    read_deployment,
    resolve_network,
)
from marketplace.adapters.chain.market import MarketClient, encode_rule_version
from marketplace.protocol.constants import DEFAULT_SKETCH_WIDTH
from marketplace.rule import RULE_VERSION

LOCAL_CHAIN_ID = 31337
REGISTRY = "ReliabilityRegistry"
MARKET = "TrainingMarket"
TEST_VERIFIER = "TestRoundVerifier"


def _deploy(chain: ChainClient, artifact: Artifact, *args: Any) -> tuple[Contract, DeployedContract]:
    """Deploys ``artifact``; its record names the block and transaction that created it."""
    contract, receipt = chain.deploy_with_receipt(artifact, *args)
    record = DeployedContract(
        address=contract.address,
        block_number=int(receipt["blockNumber"]),
        tx_hash=HexBytes(receipt["transactionHash"]).to_0x_hex(),
    )
    return contract, record


def deploy_marketplace(
    chain: ChainClient,
    artifacts: Artifacts | None = None,
    *,
    network: str = "local",
    with_test_verifier: bool | None = None,
    rule_version: str = RULE_VERSION,
) -> Deployment:
    """Deploys ReliabilityRegistry and TrainingMarket from ``chain``'s account (the admin of both)
    and authorizes the market in the registry. On the local chain (id 31337) it also deploys and
    approves the ``TestRoundVerifier`` (declaring ``rule_version``, 16 hex digits) unless
    ``with_test_verifier`` is False; elsewhere that verifier is refused (it proves nothing).
    """
    artifacts = artifacts or compile_contracts()
    local = chain.chain_id == LOCAL_CHAIN_ID
    if with_test_verifier is None:
        with_test_verifier = local
    if with_test_verifier and not local:
        raise ValueError("the test verifier proves nothing and only deploys on the local chain (id 31337)")

    admin = chain.account.address
    registry, registry_record = _deploy(chain, artifacts[REGISTRY], admin)
    market, market_record = _deploy(chain, artifacts[MARKET], admin, registry.address)
    chain.transact(registry.functions.setMarketAuthorization(market.address, True))
    contracts = {REGISTRY: registry_record, MARKET: market_record}
    if with_test_verifier:
        verifier, contracts[TEST_VERIFIER] = _deploy(
            chain, artifacts[TEST_VERIFIER], DEFAULT_SKETCH_WIDTH, encode_rule_version(rule_version)
        )
        chain.transact(market.functions.setVerifierApproval(verifier.address, True))
    return Deployment(network=network, chain_id=chain.chain_id, contracts=contracts)


def market_client(chain: ChainClient, deployment: Deployment, artifacts: Artifacts | None = None) -> MarketClient:
    """A :class:`MarketClient` for ``deployment`` acting as ``chain``'s account; its event queries start at the
    market's recorded creation block."""
    artifacts = artifacts or compile_contracts()
    return MarketClient(
        chain,
        chain.contract(artifacts[MARKET], deployment.address(MARKET)),
        chain.contract(artifacts[REGISTRY], deployment.address(REGISTRY)),
        deploy_block=deployment.contracts[MARKET].block_number,
    )


def connect(network: str = "local", account: LocalAccount | None = None, *, read_only: bool = False) -> MarketClient:
    """A :class:`MarketClient` for the marketplace recorded in ``deployments/<network>.json``,
    signing as ``account`` (default: the network profile's configured account)."""
    profile = resolve_network(network)
    deployment = read_deployment(network)
    if deployment is None:
        raise ConfigError(f"nothing deployed on {network!r}: run `marketplace deploy --network {network}` first")
    chain = profile.client(account, read_only=read_only)
    if chain.chain_id != deployment.chain_id:
        raise ConfigError(
            f"deployments/{network}.json is for chain {deployment.chain_id}, but the RPC serves {chain.chain_id}; "
            "redeploy with `marketplace deploy`"
        )
    return market_client(chain, deployment)
