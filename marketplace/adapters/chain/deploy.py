"""Deploy the marketplace contracts: registry, market (with its ``MarketDisputes`` module: the rejections and their
disputes, run in the market's storage through its fallback), the market's ``MarketLens`` (its composite views, read
from its storage), the market's ``UpdateKeys`` (the keys encrypted projects'
updates are encrypted to, :mod:`marketplace.adapters.chain.update_keys`), and (on local chains) a test verifier.

The test verifier declares the rule version it is deployed for (``ruleVersion()``: by default this
code's :data:`marketplace.rule.RULE_VERSION`), like a zk verifier (:mod:`marketplace.adapters.ezkl.evm`).

The deployment record (``deployments/<network>.json``, :class:`DeploymentRecord`) also lists every
zk verifier deployed for the market (:class:`ZkVerifierRecord`: size, rule version, SRS, address,
approval, and the circuit's split verifier and helper it verifies rounds with, with their code hashes),
appended by :func:`record_zk_verifier` and never overwritten, so that whoever runs a role elsewhere learns
which SRS and circuit size its keys need, and which codes the market admin approved.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from pydantic import BaseModel, Field
from web3.contract import Contract

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import Artifact, Artifacts, compile_contracts
from marketplace.adapters.chain.config import (
    ConfigError,
    DeployedContract,
    Deployment,
    deployment_path,
    read_deployment,
    resolve_network,
    write_deployment,
)
from marketplace.adapters.chain.market import MarketClient, encode_rule_version
from marketplace.adapters.chain.update_keys import UPDATE_KEYS
from marketplace.protocol.constants import DEFAULT_SKETCH_WIDTH
from marketplace.rule import RULE_VERSION

LOCAL_CHAIN_ID = 31337
REGISTRY = "ReliabilityRegistry"
MARKET = "TrainingMarket"
#: The record's name of the market's lens (its composite views: ``getProject``, ``roundDeadlines``, ...).
LENS = "MarketLens"
#: The record's name of the market's disputes module (``rejectSubmissions``, ``disputeRejection``: called at the
#: market's address, which hands them to the module with DELEGATECALL).
DISPUTES = "MarketDisputes"
TEST_VERIFIER = "TestRoundVerifier"
#: The record's name of the reusable Halo2 verifier (one per chain, shared by every zk verifier).
HALO2_VERIFIER = "Halo2VerifierReusable"
#: The bond an aggregator posts per rejected trainer (``MarketDisputes.rejectionBond``, wei), unless the deployment
#: says otherwise: 0.006 ETH, 1.2M gas at 5 gwei (a few times a testnet's usual price): a dispute with the zk verifier
#: takes ~1.018M (tests/test_zk_dispute.py; ``verifyRow`` alone ~0.9M, the bond's award ~30k), with the test verifier
#: 188,129. A falsely rejected trainer is reimbursed its dispute's gas out of it (never more); the aggregator gets back
#: the rest and the bonds of the rejections nobody disputed.
DEFAULT_REJECTION_BOND = 1_200_000 * 5 * 10**9
#: The longest stale-challenge window the market accepts (``MarketDisputes.MAX_CHALLENGE_PERIOD``), in seconds.
MAX_CHALLENGE_PERIOD = 240
#: ``marketplace deploy``'s stale-challenge window: two minutes after a round's latest reveal for anyone to show a
#: revealed row stale (fetch the update, sketch it, prove two rows: seconds) before the round can be finalized.
DEFAULT_CHALLENGE_PERIOD = 120


def _deploy(chain: ChainClient, artifact: Artifact, *args: Any) -> tuple[Contract, DeployedContract]:
    """Deploys ``artifact``; its record names the block and transaction that created it."""
    contract, receipt = chain.deploy_with_receipt(artifact, *args)
    record = DeployedContract(
        address=contract.address,
        block_number=int(receipt["blockNumber"]),
        tx_hash=HexBytes(receipt["transactionHash"]).to_0x_hex(),
    )
    return contract, record


def market_abi(artifacts: Artifacts) -> list[dict[str, Any]]:
    """The ABI a client calls the market with: the market's own, plus the functions, events and errors of its
    :data:`DISPUTES` module that the market's ABI lacks (the market's fallback runs them in its storage and they
    emit from the market's address: the rejection bonds' functions, events and errors are the module's alone). An
    earlier contract set without the module (the gas bench's baseline) is its market's ABI alone."""
    abi = list(artifacts[MARKET].abi)
    if DISPUTES not in artifacts:
        return abi
    own = {(f.get("type"), f.get("name")) for f in abi}
    kinds = ("function", "event", "error")
    return abi + [
        f for f in artifacts[DISPUTES].abi if f.get("type") in kinds and (f.get("type"), f.get("name")) not in own
    ]


def deploy_marketplace(
    chain: ChainClient,
    artifacts: Artifacts | None = None,
    *,
    network: str = "local",
    with_test_verifier: bool | None = None,
    rule_version: str = RULE_VERSION,
    rejection_bond: int = DEFAULT_REJECTION_BOND,
    challenge_period: int = 0,
) -> Deployment:
    """Deploys ReliabilityRegistry and TrainingMarket (after its ``MarketDisputes`` module) from ``chain``'s account
    (the admin of both),
    authorizes the market in the registry and deploys the market's ``MarketLens`` and ``UpdateKeys``. On the local chain
    (id 31337) it also deploys and approves the ``TestRoundVerifier`` (declaring ``rule_version``, 16 hex
    digits) unless ``with_test_verifier`` is False; elsewhere that verifier is refused (it proves nothing).
    ``rejection_bond`` is the module's bond per rejected trainer, in wei, fixed for the market's life
    (:data:`DEFAULT_REJECTION_BOND`; a negative one is refused with ValueError, 0 turns bonds off).
    ``challenge_period`` is the module's stale-challenge window, in seconds after a round's latest reveal, fixed for
    the market's life (0 to :data:`MAX_CHALLENGE_PERIOD`, else ValueError): 0, the default here (local stacks and
    tests finalize at once), gives no guaranteed window; ``marketplace deploy`` defaults to
    :data:`DEFAULT_CHALLENGE_PERIOD`.
    """
    if rejection_bond < 0:
        raise ValueError(f"the rejection bond is a number of wei, at least 0; got {rejection_bond}")
    if not 0 <= challenge_period <= MAX_CHALLENGE_PERIOD:
        raise ValueError(f"the challenge period is 0 to {MAX_CHALLENGE_PERIOD} seconds; got {challenge_period}")
    artifacts = artifacts or compile_contracts()
    local = chain.chain_id == LOCAL_CHAIN_ID
    if with_test_verifier is None:
        with_test_verifier = local
    if with_test_verifier and not local:
        raise ValueError("the test verifier proves nothing and only deploys on the local chain (id 31337)")

    admin = chain.account.address
    registry, registry_record = _deploy(chain, artifacts[REGISTRY], admin)
    contracts = {REGISTRY: registry_record}
    if DISPUTES in artifacts:
        takes = len(next((f.get("inputs", []) for f in artifacts[DISPUTES].abi if f.get("type") == "constructor"), []))
        args = (rejection_bond, challenge_period)[:takes]  # an earlier module (the gas bench's baseline) takes one
        disputes, contracts[DISPUTES] = _deploy(chain, artifacts[DISPUTES], *args)
        market, contracts[MARKET] = _deploy(chain, artifacts[MARKET], admin, registry.address, disputes.address)
    else:  # an earlier contract set (the gas bench's baseline): the market has the disputes itself
        market, contracts[MARKET] = _deploy(chain, artifacts[MARKET], admin, registry.address)
    chain.transact(registry.functions.setMarketAuthorization(market.address, True))
    if LENS in artifacts:
        lens, contracts[LENS] = _deploy(chain, artifacts[LENS], market.address)
        _, contracts[UPDATE_KEYS] = _deploy(chain, artifacts[UPDATE_KEYS], lens.address)
    else:  # an earlier contract set (the gas bench's baseline): its market has its views, UpdateKeys reads it
        _, contracts[UPDATE_KEYS] = _deploy(chain, artifacts[UPDATE_KEYS], market.address)
    if with_test_verifier:
        verifier, contracts[TEST_VERIFIER] = _deploy(
            chain, artifacts[TEST_VERIFIER], DEFAULT_SKETCH_WIDTH, encode_rule_version(rule_version)
        )
        chain.transact(market.functions.setVerifierApproval(verifier.address, True))
    return Deployment(network=network, chain_id=chain.chain_id, contracts=contracts)


def market_client(chain: ChainClient, deployment: Deployment, artifacts: Artifacts | None = None) -> MarketClient:
    """A :class:`MarketClient` for ``deployment`` acting as ``chain``'s account; its event queries start at the
    market's recorded creation block. The recorded lens is used only once :func:`check_lens` found it genuine
    (:class:`UnexpectedLens`), and a record without one is refused (:class:`ConfigError`: redeploy). Only
    ``artifacts`` of an earlier contract set without ``MarketLens`` (the gas bench's baseline), whose market has
    its own views, use the market as its lens."""
    artifacts = artifacts or compile_contracts()
    market = chain.contract(market_abi(artifacts), deployment.address(MARKET))
    if LENS not in artifacts:
        lens = market
    elif LENS not in deployment.contracts:
        raise ConfigError(
            f"the deployment of chain {deployment.chain_id} records no {LENS} (deployed before the market's views "
            "moved into it): redeploy with `marketplace deploy`"
        )
    else:
        lens = chain.contract(artifacts[LENS], deployment.address(LENS))
        check_lens(chain, lens, market.address, artifacts[LENS])
    return MarketClient(
        chain,
        market,
        chain.contract(artifacts[REGISTRY], deployment.address(REGISTRY)),
        lens,
        deploy_block=deployment.contracts[MARKET].block_number,
    )


class UnexpectedLens(ConfigError):
    """The contract a deployment record names as a market's ``MarketLens`` is not that market's lens: not the code
    compiled from ``contracts/MarketLens.sol``, or the lens of another market. Its answers (a project's aggregator,
    deadlines, rejections) could be anyone's, so it is not used."""

    def __init__(self, lens: str, market: str, why: str) -> None:
        self.lens = lens
        self.market = market
        super().__init__(
            f"the deployment record names {lens} as the MarketLens of the market {market}, but {why}: refusing it "
            "(redeploy, or get the record from whoever deployed the market)"
        )


def check_lens(chain: ChainClient, lens: Contract, market: str, artifact: Artifact) -> None:
    """Returns if ``lens`` is a genuine ``MarketLens`` of ``market``: its runtime code is ``artifact``'s but for its
    immutable ``market``, and ``market()`` answers ``market``. :class:`UnexpectedLens` otherwise."""
    wanted = to_checksum_address(market)
    code = chain.code(lens.address)
    if not code:
        raise UnexpectedLens(lens.address, wanted, "no contract is deployed there")
    if not artifact.is_runtime_of(code):
        raise UnexpectedLens(
            lens.address, wanted, "its code is not the MarketLens compiled from contracts/MarketLens.sol"
        )
    reads = to_checksum_address(chain.call(lens.functions.market()))
    if reads != wanted:
        raise UnexpectedLens(lens.address, wanted, f"it reads the market {reads}")


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


# ------------------------------------------------------------------ zk verifiers in the record
class ZkVerifierRecord(BaseModel):
    """One deployed ``EzklRoundVerifier`` of the market: what a prover's keys must match."""

    address: str
    halo2_verifier: str
    trainers: int = Field(ge=1)  # circuit slots N
    sketch_width: int = Field(ge=1)  # K
    rule_version: str  # 16 hex digits (``ruleVersion()``)
    srs_sha256: str  # SHA-256 (hex) of the SRS file the keys were made with
    development_srs: bool  # made with an SRS generated by the deployer (``ezkl.gen_srs``): insecure
    approved: bool  # approved in the market when last recorded (``zk deploy`` / ``zk revoke``)
    block_number: int
    tx_hash: str | None = None
    deployed_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    # The circuit-specific verifier rounds go through (``roundVerifier()``) and the quotient-evaluation helper
    # it calls, with the keccak256 of each deployed code; None: rounds go through ``halo2_verifier`` under the
    # VKA (``zk deploy --reusable``, and records from before the split verifier).
    round_verifier: str | None = None
    round_verifier_codehash: str | None = None
    quotient_helper: str | None = None
    quotient_helper_codehash: str | None = None

    @property
    def size(self) -> str:
        """``"{N}x{K}"``, as ``marketplace zk setup --size`` takes it."""
        return f"{self.trainers}x{self.sketch_width}"

    @property
    def name(self) -> str:
        """The record's contract name of the latest verifier of this size: ``EzklRoundVerifier-n{N}-k{K}``."""
        return f"EzklRoundVerifier-n{self.trainers}-k{self.sketch_width}"


class DeploymentRecord(Deployment):
    """A deployment record with its zk verifiers (every one ever deployed, oldest first)."""

    zk_verifiers: list[ZkVerifierRecord] = Field(default_factory=list)

    def zk_verifier(self, address: str) -> ZkVerifierRecord | None:
        """The recorded zk verifier at ``address`` (any case), or None."""
        wanted = to_checksum_address(address)
        return next((v for v in self.zk_verifiers if to_checksum_address(v.address) == wanted), None)


def read_record(network: str) -> DeploymentRecord | None:
    """The deployment record of ``network`` with its zk verifiers, or None if nothing is deployed."""
    path = deployment_path(network)
    if not path.is_file():
        return None
    return DeploymentRecord.model_validate_json(path.read_text())


def record_zk_verifier(network: str, entry: ZkVerifierRecord, *, halo2: DeployedContract | None = None) -> Path:
    """Records the zk verifier ``entry`` in ``network``'s deployment record and returns its path.

    ``entry`` is appended to ``zk_verifiers``; an entry at the same address is replaced (its approval
    changed). The contracts name the latest approved verifier of each size ``EzklRoundVerifier-n{N}-k{K}``
    (removed when none of that size is approved any more), and ``halo2``, a newly deployed reusable
    Halo2 verifier, ``Halo2VerifierReusable``. No other verifier's entry is changed or dropped.
    Raises :class:`ConfigError` when ``network`` has no deployment record."""
    record = read_record(network)
    if record is None:
        raise ConfigError(f"nothing deployed on {network!r}: run `marketplace deploy --network {network}` first")
    known = record.zk_verifier(entry.address)
    if known is None:
        record.zk_verifiers.append(entry)
    else:
        record.zk_verifiers[record.zk_verifiers.index(known)] = entry
    approved = [v for v in record.zk_verifiers if v.approved and v.name == entry.name]
    if approved:
        latest = approved[-1]
        record.contracts[entry.name] = DeployedContract(
            address=latest.address, block_number=latest.block_number, tx_hash=latest.tx_hash
        )
    else:
        record.contracts.pop(entry.name, None)
    if halo2 is not None:
        record.contracts[HALO2_VERIFIER] = halo2
    return write_deployment(record)
