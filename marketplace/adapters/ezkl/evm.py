"""Deploying a circuit's on-chain verifier: ezkl's reusable Halo2 verifier (one per chain), the circuit's own
verifier split in two contracts (:mod:`marketplace.adapters.ezkl.dedicated`: the verifying key compiled in,
about 300k gas per round less) and an EzklRoundVerifier adapter for the circuit (rounds through the split
verifier; its VKA registered for identification, and the VKA of the row circuit of the same K, whose proofs
settle disputes through the reusable verifier: ``verifyRow``), approved in the market.

With ``specific=False`` rounds go through the reusable verifier under the VKA instead (the adapter's
``roundVerifier`` is 0): the fallback for a circuit whose generated verifier does not split
(:class:`~marketplace.adapters.ezkl.dedicated.DedicatedVerifierError`).

The adapter declares the rule version its circuit was built from (``ruleVersion()``):
:data:`marketplace.rule.RULE_VERSION`, the version :func:`marketplace.adapters.ezkl.keys.setup`
builds and caches keys for in this code.

Safety of :func:`deploy_zk_verifier` and :func:`deploy_recorded_zk_verifier`: they check that the
signer owns the market (``owner()``: only the owner may approve a verifier) and that keys made with a
development SRS go on the local chain only (chain id 31337) unless explicitly allowed, before
anything is deployed. :func:`deploy_recorded_zk_verifier` records every verifier it deploys in the
deployment record (:func:`marketplace.adapters.chain.deploy.record_zk_verifier`), first unapproved,
then approved; it approves only after checking that the deployed round verifier and its helper are the
codes compiled from the keys (:func:`check_round_verifier`): the admin's approval covers both codes.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3.contract import Contract
from web3.exceptions import Web3Exception
from web3.types import TxReceipt

from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import compile_contracts
from marketplace.adapters.chain.config import ConfigError, DeployedContract
from marketplace.adapters.chain.deploy import (
    HALO2_VERIFIER,
    LOCAL_CHAIN_ID,
    DeploymentRecord,
    ZkVerifierRecord,
    read_record,
    record_zk_verifier,
)
from marketplace.adapters.chain.errors import ChainError
from marketplace.adapters.chain.market import MarketClient, VerifierInfo, encode_rule_version, read_verifier_info
from marketplace.adapters.chain.verifier_label import ezkl_verifier_text
from marketplace.adapters.ezkl.dedicated import (
    HELPER,
    DedicatedVerifierError,
    UnexpectedRoundVerifier,
    check_deployed,
    code_hash,
    split_artifacts,
)
from marketplace.adapters.ezkl.keys import CircuitKeys, row_keys_for
from marketplace.protocol.commitment import zero_row_commitment
from marketplace.rule import RULE_VERSION


class ZkDeployError(RuntimeError):
    """A zk verifier cannot be deployed as asked (raised before anything is deployed)."""


class NotMarketOwner(ZkDeployError):
    """The signer is not the market's owner, the only account that may approve a verifier."""

    def __init__(self, signer: str, owner: str, market: str) -> None:
        self.signer, self.owner, self.market = signer, owner, market
        super().__init__(
            f"{signer} is not the owner of market {market} (its owner is {owner}): only the owner can approve a "
            "verifier; sign as the owner (--keystore / MARKETPLACE_KEYSTORE / MARKETPLACE_PRIVATE_KEY). "
            "Nothing was deployed."
        )


class DevelopmentSrsRefused(ZkDeployError):
    """Keys made with a development SRS, for a chain that is not the local one."""

    def __init__(self, chain_id: int) -> None:
        self.chain_id = chain_id
        super().__init__(
            f"refusing a verifier made with a DEVELOPMENT SRS on chain {chain_id} (not the local chain "
            f"{LOCAL_CHAIN_ID}): whoever generated that SRS (this machine) can forge proofs its verifier "
            "accepts, and no one else can make keys that match it. Pass --srs FILE with a ceremony SRS "
            "(e.g. the perpetual powers-of-tau) of at least the circuit's logrows, or --allow-dev-srs for a "
            "throwaway test network. Nothing was deployed."
        )


class NoContractAt(ZkDeployError):
    """A contract address given to reuse has no code on the chain."""

    def __init__(self, what: str, address: str, chain_id: int) -> None:
        self.what, self.address, self.chain_id = what, address, chain_id
        super().__init__(f"no {what} at {address} on chain {chain_id} (no code there). Nothing was deployed.")


def market_owner(market: MarketClient) -> str:
    """The market's owner (``owner()``: the admin who approves verifiers)."""
    return to_checksum_address(market.chain.call(market.market.functions.owner()))


def require_owner(market: MarketClient) -> None:
    """Raises :class:`NotMarketOwner` unless ``market``'s signer owns the market."""
    owner, signer = market_owner(market), to_checksum_address(market.chain.account.address)
    if owner != signer:
        raise NotMarketOwner(signer, owner, market.market.address)


def require_srs_allowed(chain_id: int, development_srs: bool, *, allow_dev_srs: bool = False) -> None:
    """Raises :class:`DevelopmentSrsRefused` for keys made with a development SRS (``development_srs``)
    on a chain other than the local one (id 31337), unless ``allow_dev_srs``."""
    if development_srs and chain_id != LOCAL_CHAIN_ID and not allow_dev_srs:
        raise DevelopmentSrsRefused(chain_id)


def has_code(chain: ChainClient, address: str) -> bool:
    """Whether a contract is deployed at ``address`` (``eth_getCode`` is not empty)."""
    return len(bytes(chain.w3.eth.get_code(to_checksum_address(address)))) > 0


def deploy_halo2_verifier(chain: ChainClient, keys: CircuitKeys) -> Contract:
    """Compiles ezkl's generated reusable verifier with the project's compiler and deploys it."""
    return _deploy_halo2_verifier(chain, keys)[0]


def _deploy_halo2_verifier(chain: ChainClient, keys: CircuitKeys) -> tuple[Contract, TxReceipt]:
    artifacts = compile_contracts([keys.sol_dir], out=keys.root / "contracts.json")
    return chain.deploy_with_receipt(artifacts["Halo2VerifierReusable"])


#: The address an adapter names as its ``roundVerifier`` when rounds go through the reusable verifier.
NO_ROUND_VERIFIER = "0x" + "00" * 20
#: ``helper()`` of a split verifier (:mod:`marketplace.adapters.ezkl.dedicated`).
_HELPER_ABI = [{"type": "function", "name": "helper", "inputs": [], "stateMutability": "view",
                "outputs": [{"name": "", "type": "address"}]}]  # fmt: skip


@dataclass(frozen=True)
class SplitDeployment:
    """The two deployed parts of a circuit's split verifier."""

    verifier: str  # the entry point the adapter names as its ``roundVerifier``
    helper: str  # the quotient-evaluation helper the verifier calls (immutable in it)
    verifier_codehash: str  # keccak256 of each deployed code
    helper_codehash: str


def deploy_split_verifier(chain: ChainClient, keys: CircuitKeys) -> SplitDeployment:
    """Deploys ``keys``' circuit-specific verifier, split (:func:`~marketplace.adapters.ezkl.dedicated.split_artifacts`:
    raises its :class:`~marketplace.adapters.ezkl.dedicated.DedicatedVerifierError` before deploying anything): the
    helper, then the verifier calling it."""
    split = split_artifacts(keys)
    helper = chain.deploy(split.helper)
    verifier = chain.deploy(split.verifier, helper.address)
    return SplitDeployment(
        verifier.address, helper.address, code_hash(chain.code(verifier.address)), code_hash(chain.code(helper.address))
    )


def deploy_round_verifier(
    chain: ChainClient,
    keys: CircuitKeys,
    halo2_verifier: str,
    *,
    rule_version: str = RULE_VERSION,
    specific: bool = True,
) -> Contract:
    """Deploys the adapter for ``keys``' circuit in front of ``halo2_verifier`` (registers its VKA and
    the VKA of the row circuit of width ``keys.k`` made with the same SRS, :func:`row_keys_for`),
    declaring ``rule_version`` (16 hex digits; keys set up by this code are for :data:`RULE_VERSION`), and named
    and described for people from the circuit's size, the rule version and the SRS (:func:`ezkl_verifier_text`).
    With ``specific`` (the default) it first deploys the circuit's split verifier (:func:`deploy_split_verifier`)
    and rounds go through it; without, rounds go through ``halo2_verifier`` under the VKA."""
    split = deploy_split_verifier(chain, keys) if specific else None
    return _deploy_round_verifier(chain, keys, halo2_verifier, rule_version, split)[0]


def _deploy_round_verifier(
    chain: ChainClient, keys: CircuitKeys, halo2_verifier: str, rule_version: str, split: SplitDeployment | None
) -> tuple[Contract, TxReceipt]:
    adapter = compile_contracts()["EzklRoundVerifier"]
    row_keys = row_keys_for(keys)
    zero_row = int.from_bytes(zero_row_commitment(keys.k), "big")
    version = encode_rule_version(rule_version)
    vka, row_vka = keys.vka_words(), row_keys.vka_words()
    name, description = ezkl_verifier_text(keys.n, keys.k, rule_version, keys.srs_sha256, keys.development_srs)
    round_verifier = split.verifier if split is not None else NO_ROUND_VERIFIER
    return chain.deploy_with_receipt(
        adapter, halo2_verifier, vka, row_vka, keys.n, keys.k, zero_row, version, name, description, round_verifier
    )


def round_verifier_of(chain: ChainClient, adapter: str) -> tuple[str, str | None] | None:
    """(round verifier, its helper) an ``EzklRoundVerifier`` at ``adapter`` verifies rounds with; None when it uses
    the reusable verifier (``roundVerifier() == 0``, or an adapter deployed before it had a ``roundVerifier()``).
    The helper is None when the round verifier does not answer ``helper()`` (it is not a split verifier)."""
    contract = chain.contract(compile_contracts()["EzklRoundVerifier"], adapter)
    try:
        verifier = to_checksum_address(chain.call(contract.functions.roundVerifier()))
    except (ChainError, Web3Exception):  # an earlier adapter: rounds through the reusable verifier, under the VKA
        return None
    if int(verifier, 16) == 0:
        return None
    try:
        helper = to_checksum_address(chain.call(chain.contract(_HELPER_ABI, verifier).functions.helper()))
    except (ChainError, Web3Exception):  # a revert, or no answer (no code): not a split verifier
        helper = None
    return verifier, helper


def check_round_verifier(chain: ChainClient, adapter: str, keys: CircuitKeys) -> SplitDeployment | None:
    """Returns what the ``EzklRoundVerifier`` at ``adapter`` verifies rounds with, checked against ``keys``: the
    split verifier and its helper whose deployed codes are those compiled from ``keys``
    (:func:`~marketplace.adapters.ezkl.dedicated.check_deployed`, as the lens and ``UpdateKeys`` are checked), or
    None when it uses the reusable verifier under its VKA. Raises
    :class:`~marketplace.adapters.ezkl.dedicated.UnexpectedRoundVerifier` when a code differs (or the round
    verifier names no helper), and the split's own errors when ``keys``' verifier does not split."""
    found = round_verifier_of(chain, adapter)
    if found is None:
        return None
    verifier, helper = found
    if helper is None:
        raise UnexpectedRoundVerifier(f"the round verifier {verifier} does not name a {HELPER} (helper())")
    verifier_code, helper_code = chain.code(verifier), chain.code(helper)
    check_deployed(split_artifacts(keys), verifier_code, helper_code)
    return SplitDeployment(verifier, helper, code_hash(verifier_code), code_hash(helper_code))


def deploy_zk_verifier(
    market: MarketClient,
    keys: CircuitKeys,
    halo2_verifier: str | None = None,
    *,
    allow_dev_srs: bool = False,
    specific: bool = True,
) -> tuple[str, str]:
    """Deploys (unless ``halo2_verifier`` is given) the reusable Halo2 verifier, ``keys``' split verifier (unless
    not ``specific``) and an adapter for ``keys``' circuit, and approves the adapter in the market. Before
    deploying anything, raises
    :class:`NotMarketOwner` unless ``market`` acts as the market's owner, and
    :class:`DevelopmentSrsRefused` for development-SRS keys off the local chain (unless
    ``allow_dev_srs``). Records nothing (see :func:`deploy_recorded_zk_verifier`).
    Returns (Halo2 verifier address, adapter address)."""
    chain = market.chain
    require_owner(market)
    require_srs_allowed(chain.chain_id, keys.development_srs, allow_dev_srs=allow_dev_srs)
    if specific:
        split_artifacts(keys)  # refuses a verifier that does not split before anything is deployed
    halo2 = halo2_verifier or deploy_halo2_verifier(chain, keys).address
    adapter = deploy_round_verifier(chain, keys, halo2, specific=specific)
    chain.transact(market.market.functions.setVerifierApproval(adapter.address, True))
    return halo2, adapter.address


def is_approved(market: MarketClient, verifier: str) -> bool:
    """Whether the market approves ``verifier`` for new projects (``MarketLens.isVerifierApproved``)."""
    return bool(market.chain.call(market.lens.functions.isVerifierApproved(to_checksum_address(verifier))))


def recorded_twin(
    market: MarketClient, record: DeploymentRecord, keys: CircuitKeys, *, specific: bool = True
) -> ZkVerifierRecord | None:
    """A recorded verifier the market still approves that registered exactly ``keys``' VKA (same circuit,
    SRS and rule version) and verifies rounds the same way (with ``specific``, through the split verifier
    compiled from ``keys``, :func:`check_round_verifier`; else through the reusable verifier): deploying
    ``keys`` again would duplicate it. None if there is none."""
    vka = keys.vka_words()
    for entry in reversed(record.zk_verifiers):
        if (entry.trainers, entry.sketch_width, entry.rule_version) != (keys.n, keys.k, RULE_VERSION):
            continue
        if not has_code(market.chain, entry.address):
            continue
        deployed = describe_verifier(market, entry.address)
        if not (deployed.approved and deployed.vka == vka):
            continue
        try:
            split = check_round_verifier(market.chain, entry.address, keys)
        except DedicatedVerifierError:  # not the keys' codes (or the keys' verifier does not split)
            continue
        if (split is not None) == specific:
            return entry
    return None


def deploy_recorded_zk_verifier(
    market: MarketClient,
    keys: CircuitKeys,
    network: str,
    *,
    halo2_verifier: str | None = None,
    allow_dev_srs: bool = False,
    specific: bool = True,
) -> ZkVerifierRecord:
    """Deploys ``keys``' split verifier (unless not ``specific``: rounds then go through the reusable verifier) and
    an adapter for ``keys``' circuit, records it in ``network``'s deployment record, checks that the deployed
    round verifier and helper are the codes compiled from ``keys`` (:func:`check_round_verifier`), approves it and
    records the approval; returns its entry (with both parts' addresses and code hashes).

    Before deploying anything, raises :class:`ConfigError` when ``network`` has no deployment record,
    :class:`NotMarketOwner` and :class:`DevelopmentSrsRefused` (as :func:`deploy_zk_verifier`) and
    :class:`NoContractAt` when ``halo2_verifier`` has no code, and the split's
    :class:`~marketplace.adapters.ezkl.dedicated.DedicatedVerifierError` when ``keys``' verifier does not split
    (``specific=False`` is the fallback). The Halo2 verifier is ``halo2_verifier``,
    else the recorded ``Halo2VerifierReusable`` if it has code on the chain, else a new one (recorded).
    The adapter is recorded unapproved as soon as it is deployed, so a failed approval leaves it in the
    record; earlier entries stay as they are (an earlier verifier stays approved until ``zk revoke``)."""
    chain = market.chain
    record = read_record(network)
    if record is None:
        raise ConfigError(f"nothing deployed on {network!r}: run `marketplace deploy --network {network}` first")
    require_owner(market)
    require_srs_allowed(chain.chain_id, keys.development_srs, allow_dev_srs=allow_dev_srs)
    if halo2_verifier is not None and not has_code(chain, halo2_verifier):
        raise NoContractAt("Halo2 verifier", halo2_verifier, chain.chain_id)
    if specific:
        split_artifacts(keys)  # refuses a verifier that does not split before anything is deployed
    halo2_record: DeployedContract | None = None
    if halo2_verifier is None:
        recorded = record.contracts.get(HALO2_VERIFIER)
        if recorded is not None and has_code(chain, recorded.address):
            halo2_verifier = recorded.address
        else:
            contract, receipt = _deploy_halo2_verifier(chain, keys)
            halo2_verifier = contract.address
            halo2_record = DeployedContract(
                address=contract.address,
                block_number=int(receipt["blockNumber"]),
                tx_hash=HexBytes(receipt["transactionHash"]).to_0x_hex(),
            )
    split = deploy_split_verifier(chain, keys) if specific else None
    adapter, receipt = _deploy_round_verifier(chain, keys, halo2_verifier, RULE_VERSION, split)
    entry = ZkVerifierRecord(
        address=adapter.address,
        halo2_verifier=to_checksum_address(halo2_verifier),
        trainers=keys.n,
        sketch_width=keys.k,
        rule_version=RULE_VERSION,
        srs_sha256=keys.srs_sha256,
        development_srs=keys.development_srs,
        approved=False,
        block_number=int(receipt["blockNumber"]),
        tx_hash=HexBytes(receipt["transactionHash"]).to_0x_hex(),
        round_verifier=split.verifier if split else None,
        round_verifier_codehash=split.verifier_codehash if split else None,
        quotient_helper=split.helper if split else None,
        quotient_helper_codehash=split.helper_codehash if split else None,
    )
    record_zk_verifier(network, entry, halo2=halo2_record)
    if check_round_verifier(chain, adapter.address, keys) != split:  # what the approval covers
        raise UnexpectedRoundVerifier(f"the adapter {adapter.address} does not verify rounds with what was deployed")
    chain.transact(market.market.functions.setVerifierApproval(adapter.address, True))
    approved = entry.model_copy(update={"approved": True})
    record_zk_verifier(network, approved)
    return approved


def set_recorded_approval(market: MarketClient, network: str, verifier: str, approved: bool) -> ZkVerifierRecord | None:
    """Approves or revokes ``verifier`` in the market (owner only: :class:`NotMarketOwner` first) and
    updates its entry in ``network``'s record; returns the entry (None if the record does not list it)."""
    require_owner(market)
    market.chain.transact(market.market.functions.setVerifierApproval(to_checksum_address(verifier), approved))
    record = read_record(network)
    entry = record.zk_verifier(verifier) if record is not None else None
    if entry is None:
        return None
    updated = entry.model_copy(update={"approved": approved})
    record_zk_verifier(network, updated)
    return updated


@dataclass(frozen=True)
class DeployedVerifier:
    """A deployed round verifier as the chain shows it."""

    info: VerifierInfo  # what it declares (proof system, rule version, size)
    approved: bool  # whether the market approves it for new projects
    vka: list[bytes] | None  # an EzklRoundVerifier's ``vka()`` words (None for another proof system)
    row_vka: list[bytes] | None  # its ``rowVka()`` words
    round_verifier: str | None = None  # its ``roundVerifier()`` (None: rounds go through the reusable verifier)
    quotient_helper: str | None = None  # that verifier's ``helper()`` (None if it names none)


def describe_verifier(market: MarketClient, address: str) -> DeployedVerifier:
    """The verifier at ``address``: its declarations, its approval in ``market`` and, for an
    ``EzklRoundVerifier``, the VKA words it registered (keys match it when their VKA is these words) and the
    split verifier and helper it verifies rounds with (:func:`round_verifier_of`; whether their codes are the
    keys': :func:`check_round_verifier`)."""
    info = read_verifier_info(market.chain, address)
    vka = row_vka = None
    parts: tuple[str, str | None] | None = None
    if info.proof_system == "ezkl-halo2-kzg":
        adapter = market.chain.contract(compile_contracts()["EzklRoundVerifier"], address)
        vka = [bytes(w) for w in market.chain.call(adapter.functions.vka())]
        row_vka = [bytes(w) for w in market.chain.call(adapter.functions.rowVka())]
        parts = round_verifier_of(market.chain, address)
    verifier, helper = parts if parts is not None else (None, None)
    return DeployedVerifier(info, is_approved(market, address), vka, row_vka, verifier, helper)
