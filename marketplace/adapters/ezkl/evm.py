"""Deploying a circuit's on-chain verifier: ezkl's reusable Halo2 verifier (one per chain) and an
EzklRoundVerifier adapter for the circuit (its VKA registered, and the VKA of the row circuit of the
same K, whose proofs settle disputes: ``verifyRow``), approved in the market.

The adapter declares the rule version its circuit was built from (``ruleVersion()``):
:data:`marketplace.rule.RULE_VERSION`, the version :func:`marketplace.adapters.ezkl.keys.setup`
builds and caches keys for in this code.
"""

from __future__ import annotations

from web3.contract import Contract

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import compile_contracts
from marketplace.adapters.chain.market import MarketClient, encode_rule_version
from marketplace.adapters.ezkl.keys import CircuitKeys, setup_row
from marketplace.protocol.commitment import zero_row_commitment
from marketplace.rule import RULE_VERSION


def deploy_halo2_verifier(chain: ChainClient, keys: CircuitKeys) -> Contract:
    """Compiles ezkl's generated reusable verifier with the project's compiler and deploys it."""
    artifacts = compile_contracts([keys.sol_dir], out=keys.root / "contracts.json")
    return chain.deploy(artifacts["Halo2VerifierReusable"])


def deploy_round_verifier(
    chain: ChainClient, keys: CircuitKeys, halo2_verifier: str, *, rule_version: str = RULE_VERSION
) -> Contract:
    """Deploys the adapter for ``keys``' circuit in front of ``halo2_verifier`` (registers its VKA and
    the VKA of the row circuit of width ``keys.k``, set up next to ``keys`` unless cached there),
    declaring ``rule_version`` (16 hex digits; keys set up by this code are for :data:`RULE_VERSION`)."""
    adapter = compile_contracts()["EzklRoundVerifier"]
    row_keys = setup_row(keys.k, root=keys.root.parent)
    zero_row = int.from_bytes(zero_row_commitment(keys.k), "big")
    version = encode_rule_version(rule_version)
    vka, row_vka = keys.vka_words(), row_keys.vka_words()
    return chain.deploy(adapter, halo2_verifier, vka, row_vka, keys.n, keys.k, zero_row, version)


def deploy_zk_verifier(market: MarketClient, keys: CircuitKeys, halo2_verifier: str | None = None) -> tuple[str, str]:
    """Deploys (unless ``halo2_verifier`` is given) the reusable Halo2 verifier and an adapter for
    ``keys``' circuit, and approves the adapter in the market (``market`` must act as its admin).
    Returns (Halo2 verifier address, adapter address)."""
    chain = market.chain
    halo2 = halo2_verifier or deploy_halo2_verifier(chain, keys).address
    adapter = deploy_round_verifier(chain, keys, halo2)
    chain.transact(market.market.functions.setVerifierApproval(adapter.address, True))
    return halo2, adapter.address
