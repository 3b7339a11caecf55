"""Deploying a circuit's on-chain verifier: ezkl's reusable Halo2 verifier (one per chain) and an
EzklRoundVerifier adapter for the circuit (its VKA registered), approved in the market."""

from __future__ import annotations

from web3.contract import Contract

from marketplace.chain.client import ChainClient
from marketplace.chain.compile import compile_contracts
from marketplace.zk.commit import zero_row_commitment
from marketplace.zk.keys import CircuitKeys


def deploy_halo2_verifier(chain: ChainClient, keys: CircuitKeys) -> Contract:
    """Compiles ezkl's generated reusable verifier with the project's compiler and deploys it."""
    artifacts = compile_contracts([keys.sol_dir], out=keys.root / "contracts.json")
    return chain.deploy(artifacts["Halo2VerifierReusable"])


def deploy_round_verifier(chain: ChainClient, keys: CircuitKeys, halo2_verifier: str) -> Contract:
    """Deploys the adapter for ``keys``' circuit in front of ``halo2_verifier`` (registers the VKA)."""
    adapter = compile_contracts()["EzklRoundVerifier"]
    zero_row = int.from_bytes(zero_row_commitment(keys.k), "big")
    return chain.deploy(adapter, halo2_verifier, keys.vka_words(), keys.n, zero_row)
