"""Fixtures for contract tests: one deployment per session, a snapshot reverted after each test,
and a cast of actors (admin, owner, aggregator, trainers, stranger) each with its own client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import Artifacts, compile_contracts
from marketplace.adapters.chain.deploy import Deployment, deploy_marketplace, market_client
from marketplace.adapters.chain.errors import ContractRevert
from marketplace.adapters.chain.market import Finalization, MarketClient, ProjectConfig
from marketplace.protocol.seal import derive_salt, seal
from marketplace.round.prove import local_hash_proof, recorded_verifier_inputs

ETH = 10**18
N_ACCOUNTS = 12


@pytest.fixture(scope="session")
def artifacts() -> Artifacts:
    return compile_contracts()


@pytest.fixture(scope="session")
def accounts() -> list[LocalAccount]:
    return dev_accounts(N_ACCOUNTS)


@pytest.fixture(scope="session")
def deployment(anvil: AnvilNode, artifacts: Artifacts, accounts: list[LocalAccount]) -> Deployment:
    admin = ChainClient(anvil.url, accounts[0])
    for account in accounts:  # anvil funds only its first 10 dev accounts
        admin.set_balance(account.address, 10_000 * ETH)
    return deploy_marketplace(admin, artifacts)


@pytest.fixture
def clean_chain(anvil: AnvilNode, deployment: Deployment, accounts: list[LocalAccount]) -> Iterator[ChainClient]:
    """The admin's client; every change a test makes is reverted afterwards."""
    admin = ChainClient(anvil.url, accounts[0])
    snapshot = admin.snapshot()
    yield admin
    admin.revert(snapshot)


@dataclass
class Actors:
    """Everyone who takes part in a project, each with a MarketClient signing as themselves."""

    admin: MarketClient
    owner: MarketClient
    aggregator: MarketClient
    trainers: list[MarketClient]
    stranger: MarketClient
    deployment: Deployment
    artifacts: Artifacts

    @property
    def chain(self) -> ChainClient:
        return self.admin.chain

    def events(self, receipt: Any, name: str, registry: bool = False) -> list[dict[str, Any]]:
        """The arguments of every ``name`` event the market (or registry) emitted in ``receipt``."""
        contract = self.admin.registry if registry else self.admin.market
        return [e["args"] for e in self.chain.events(receipt, contract, name)]

    def config(self, **overrides: Any) -> ProjectConfig:
        """A valid project config; ``overrides`` change any field."""
        fields: dict[str, Any] = {
            "aggregator": self.aggregator.address,
            "verifier": self.deployment.address("TestRoundVerifier"),
            "reward_budget": 10 * ETH,
            "aggregator_fee": 1 * ETH,
            "stake": ETH // 10,
            "rounds": 2,
            "min_trainers": 2,
            "max_trainers": 4,
            "min_reliability_bps": 0,
            "slash_bps": 5_000,
            "join_period": 3_600,
            "submission_period": 600,
            "aggregation_period": 600,
            "model_name": "mlp",
            "initial_model_cid": "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
        }
        fields.update(overrides)
        return ProjectConfig(**fields)

    def create(self, **overrides: Any) -> int:
        return self.owner.create_project(self.config(**overrides))

    def training_project(self, n_trainers: int = 4, *, expect_reference: bool = False, **overrides: Any) -> int:
        """A project with ``n_trainers`` joined and training started (round 0 open); with ``expect_reference`` its
        owner set it to expect its reference row (``expectReference``) before anyone joined."""
        overrides.setdefault("max_trainers", n_trainers)
        overrides.setdefault("min_trainers", min(2, n_trainers))
        pid = self.create(**overrides)
        if expect_reference:
            self.owner.expect_reference(pid)
        for trainer in self.trainers[:n_trainers]:
            trainer.join(pid)
        if self.owner.get_project(pid).status == 0:
            self.owner.start_training(pid)
        return pid

    def submit_all(
        self, pid: int, round_: int, trainers: list[MarketClient] | None = None, *, reveal: bool = True
    ) -> list[bytes]:
        """Every given trainer (default: all members) commits a distinct commitment; then, unless
        ``reveal`` is false, the reveal phase is opened (the chain's clock moved past the commit
        deadline if some member did not commit) and they all reveal."""
        members = self.owner.trainers(pid)
        chosen = trainers if trainers is not None else [t for t in self.trainers if t.address in members]
        commitments = []
        for trainer in chosen:
            commitment = commitment_for(pid, round_, trainer.address)
            commit(trainer, pid, round_, cid_for(pid, round_, trainer.address), commitment)
            commitments.append(commitment)
        if reveal:
            self.open_reveals(pid)
            for trainer, commitment in zip(chosen, commitments, strict=True):
                reveal_update(trainer, pid, round_, cid_for(pid, round_, trainer.address), commitment)
        return commitments

    def open_reveals(self, pid: int) -> None:
        """Moves the chain's clock past the commit deadline unless every member committed already."""
        deadlines = self.owner.round_deadlines(pid)
        now = self.chain.timestamp()
        if now < deadlines.reveal_opens:
            self.chain.increase_time(deadlines.reveal_opens - now)

    def result(
        self,
        pid: int,
        round_: int,
        scores: list[int],
        flags: list[bool] | None = None,
        rejected: list[bool] | None = None,
    ) -> Finalization:
        """A round result with a proof the test verifier accepts for the on-chain commitments."""
        flags = flags if flags is not None else [False] * len(scores)
        proof = test_verifier_proof(self.owner, pid, round_, scores, flags, rejected)
        cids = f"bafkreimodel{pid}r{round_}", f"bafkreiproof{pid}r{round_}"
        return Finalization(*cids, scores, flags, proof, rejected)


def test_verifier_proof(
    market: MarketClient,
    pid: int,
    round_: int,
    scores: list[int],
    flags: list[bool],
    rejected: list[bool] | None = None,
) -> bytes:
    """The proof the local ``TestRoundVerifier`` accepts for these trainer-order scores and flags and
    the round's on-chain commitments; ``rejected`` trainers are empty slots, as the market hands them."""
    members = market.trainers(pid)
    if rejected is None or len(rejected) != len(members):  # a malformed result: let the contract say so
        rejected = [False] * len(members)
    return local_hash_proof(*recorded_verifier_inputs(market, pid, round_, scores, flags, rejected))


test_verifier_proof.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def cid_for(pid: int, round_: int, address: str) -> str:
    """A distinct (fake) update CID per project, round and trainer."""
    return f"bafkrei{address[2:12].lower()}r{round_}p{pid}"


def own_seal(trainer: MarketClient, pid: int, round_: int, cid: str, commitment: bytes) -> bytes:
    """The seal ``trainer`` commits for ``(cid, commitment)``, with its own key-derived salt (as the node does)."""
    where = trainer.round_address(pid, round_)
    return seal(commitment, cid, trainer.address, where, derive_salt(trainer.chain.account, where, commitment))


def commit(trainer: MarketClient, pid: int, round_: int, cid: str, commitment: bytes) -> Any:
    """``trainer`` commits the seal of ``(cid, commitment)`` as the trainer node does (salt from its key)."""
    return trainer.commit_update(pid, round_, own_seal(trainer, pid, round_, cid, commitment))


def reveal_update(trainer: MarketClient, pid: int, round_: int, cid: str, commitment: bytes) -> Any:
    """``trainer`` reveals what :func:`commit` sealed."""
    salt = derive_salt(trainer.chain.account, trainer.round_address(pid, round_), commitment)
    return trainer.reveal_update(pid, round_, cid, commitment, salt)


def commitment_for(pid: int, round_: int, address: str) -> bytes:
    """A distinct 32-byte commitment per project, round and trainer."""
    return keccak(text=f"{pid}/{round_}/{address}")


@pytest.fixture
def actors(
    clean_chain: ChainClient, deployment: Deployment, artifacts: Artifacts, accounts: list[LocalAccount]
) -> Actors:
    base = market_client(clean_chain, deployment, artifacts)
    return Actors(
        admin=base,
        owner=base.as_account(accounts[1]),
        aggregator=base.as_account(accounts[2]),
        trainers=[base.as_account(a) for a in accounts[3:11]],
        stranger=base.as_account(accounts[11]),
        deployment=deployment,
        artifacts=artifacts,
    )


def reverts(name: str) -> pytest.RaisesExc[ContractRevert]:
    """``with reverts("WrongStake"):`` expects a ContractRevert decoded as that custom error."""
    return pytest.raises(ContractRevert, match=rf"^{name}\(")


__all__ = [
    "ETH",
    "Actors",
    "accounts",
    "actors",
    "artifacts",
    "clean_chain",
    "commitment_for",
    "deployment",
    "reverts",
]
