"""No string on chain and no global model stops a role (issue 12 item 5).

A Solidity ``string`` is any bytes. The market now refuses CIDs that are not alphanumeric and model names
outside ``[A-Za-z0-9_.-]``, but strings already on chain, and markets deployed before that check, hold
whatever bytes their writer sent. These tests run the real trainer and aggregator against such a market:
``TrainingMarket`` compiled without its string checks (:func:`lax_artifacts`), written to with raw
transactions (web3 itself only encodes valid text).

- A string that is not UTF-8 reads with U+FFFD (every chain client decodes leniently): a revealed update CID
  that is then not a CID is an ordinary invalid submission, rejected with its reason, and the round is
  finalized without it; a project whose initial CID or model name is not UTF-8 can be read and joined.
- A project whose model name is no architecture, or whose global model is not a model (its CID is not a
  CID, the object is not safetensors): the aggregator reports it once and goes on serving its other
  projects; a trainer reports it once, tries again at every poll and stops when the project ends.
"""

# ruff: noqa: F811  (the fixtures imported from tests.ipfs_fixtures are used as test arguments)
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from eth_abi import decode, encode
from eth_utils import collapse_if_tuple, function_abi_to_4byte_selector, keccak

from marketplace.adapters.chain.anvil import AnvilNode, dev_accounts
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import Artifacts, compile_contracts
from marketplace.adapters.chain.deploy import TEST_VERIFIER, deploy_marketplace, market_client
from marketplace.adapters.chain.market import MarketClient, ProjectConfig, ProjectStatus
from marketplace.adapters.ipfs.errors import InvalidCid, NotSafetensors, StorageError
from marketplace.adapters.ipfs.manager import LocalIpfsNode
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.adapters.ipfs.tensors import TensorBundle
from marketplace.fl.data import LocalData
from marketplace.fl.models import build_model
from marketplace.roles.aggregator import AggregatorNode, RejectionsAnnounced, RoundReport
from marketplace.roles.trainer import Committed, LocalTraining, StepOutcome, Submitted, TrainerNode, TrainingSettings
from tests.disputes import close_disputes
from tests.ipfs_fixtures import ipfs_node  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
ETH = 10**18
ADMIN, OWNER, AGGREGATOR, HONEST, CHEATER, STRANGER = range(6)
#: The string checks of ``TrainingMarket`` that the lax copy skips (each must be found, or the copy is not lax).
STRING_CHECKS = (
    "function _checkCid(string calldata cid) private pure {",
    "function _checkModelName(string calldata name) private pure {",
)
BAD_CID = b"bafk\xc3(\xff\xfeupdate"  # not UTF-8: reads as "bafk\ufffd(\ufffd\ufffdupdate"


# ------------------------------------------------------------------ a market that takes any string
@pytest.fixture(scope="module")
def lax_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    """The project's contracts, with ``TrainingMarket``'s string checks returning at once: a market as
    deployed before they existed (any bytes as a CID or model name)."""
    root = tmp_path_factory.mktemp("lax")
    shutil.copytree(ROOT / "contracts", root / "contracts")
    market = root / "contracts" / "TrainingMarket.sol"
    source = market.read_text()
    for check in STRING_CHECKS:
        assert check in source, f"TrainingMarket.sol changed: update STRING_CHECKS ({check})"
        source = source.replace(check, check + "\n        if (true) return; // lax: any bytes")
    market.write_text(source)
    return compile_contracts([root / "contracts"], root / "artifacts.json")


class Stack:
    """Anvil with the lax market deployed, and the session's IPFS node."""

    def __init__(self, anvil: AnvilNode, artifacts: Artifacts, store: ModelStore) -> None:
        self.accounts = dev_accounts(8)
        admin = ChainClient(anvil.url, self.accounts[ADMIN])
        for account in self.accounts:
            admin.set_balance(account.address, 1_000 * ETH)
        self.deployment = deploy_marketplace(admin, artifacts)
        self.admin = market_client(admin, self.deployment, artifacts)
        self.chain = admin
        self.store = store
        self.initial_cid = store.put_tensors(build_model("mlp", seed=1).state_dict(), {"kind": "model"})

    def client(self, who: int) -> MarketClient:
        return self.admin.as_account(self.accounts[who])

    def config(self, **overrides: Any) -> ProjectConfig:
        fields: dict[str, Any] = {
            "aggregator": self.accounts[AGGREGATOR].address,
            "verifier": self.deployment.address(TEST_VERIFIER),
            "reward_budget": ETH,
            "aggregator_fee": ETH // 10,
            "stake": ETH // 100,
            "rounds": 1,
            "min_trainers": 1,
            "max_trainers": 1,
            "model_name": "mlp",
            "initial_model_cid": self.initial_cid,
        }
        fields.update(overrides)
        return ProjectConfig(**fields)

    def create_raw(self, config: ProjectConfig, model_name: bytes, initial_cid: bytes) -> int:
        """``createProject`` of ``config`` with these raw bytes as its model name and initial model CID."""
        owner = self.client(OWNER)
        send_raw(owner, "createProject", [(*config.as_abi_tuple()[:-2], model_name, initial_cid)], config.payment)
        return owner.project_count()

    def past(self, pid: int, deadline: str) -> None:
        """Moves the chain's clock just past the open round's ``deadline`` (a :class:`RoundDeadlines` field)."""
        when = getattr(self.admin.round_deadlines(pid), deadline)
        self.chain.increase_time(max(0, when - self.chain.timestamp() + 1))


@pytest.fixture(scope="module")
def stack(lax_artifacts: Artifacts, ipfs_node: LocalIpfsNode) -> Iterator[Stack]:
    with AnvilNode() as anvil:
        yield Stack(anvil, lax_artifacts, ModelStore(ipfs_node.client()))


@pytest.fixture(autouse=True)
def rewind(stack: Stack) -> Iterator[None]:
    """Whatever a test does on chain (including moving the clock) is undone afterwards."""
    snapshot = stack.chain.snapshot()
    yield
    stack.chain.revert(snapshot)


def _raw_call_data(client: MarketClient, function: str, args: list[Any], *, lens: bool = False) -> bytes:
    """Calldata of ``function(*args)`` on the market (or its lens) with every ``string`` argument as raw bytes."""
    contract = client.lens if lens else client.market
    abi = next(a for a in contract.abi if a.get("type") == "function" and a["name"] == function)
    types = [collapse_if_tuple(dict(i)).replace("string", "bytes") for i in abi["inputs"]]
    return function_abi_to_4byte_selector(abi) + encode(types, args)


def send_raw(client: MarketClient, function: str, args: list[Any], value: int = 0) -> None:
    """Sends ``function(*args)`` to the market, signed by ``client``'s account, strings as raw bytes."""
    chain, account = client.chain, client.chain.account
    tx: dict[str, Any] = {
        "from": account.address, "to": client.market.address, "value": value, "chainId": chain.chain_id,
        "data": _raw_call_data(client, function, args),
        "nonce": chain.w3.eth.get_transaction_count(account.address),
    }  # fmt: skip
    tx["gas"] = int(chain.w3.eth.estimate_gas(tx) * 1.2)  # type: ignore[arg-type]
    tx.update(chain.fees())
    receipt = chain.wait(chain.w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction))
    assert receipt["status"] == 1


def mlp_data(seed: int) -> LocalData:
    """A small learnable 10-class problem on the 64 features the ``mlp`` takes."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(0).normal(0.0, 4.0, (10, 64)).astype(np.float32)
    y = rng.integers(0, 10, 100)
    return LocalData(centers[y] + rng.normal(0.0, 2.0, (100, 64)).astype(np.float32), y)


def run_aggregator(node: AggregatorNode, pids: list[int]) -> tuple[list[RoundReport], list[Exception]]:
    """Runs the aggregator until every project has ended or is skipped (it fails the test rather than loop on)."""
    reports: list[RoundReport] = []
    errors: list[Exception] = []

    def on_error(exc: Exception) -> None:
        errors.append(exc)
        assert len(errors) <= 2 * len(pids), f"the same errors again and again: {errors}"

    def on_report(report: RoundReport | RejectionsAnnounced) -> None:
        if isinstance(report, RejectionsAnnounced):  # nobody disputes: move the clock past the window
            close_disputes(node.market, report.project_id)
        else:
            reports.append(report)

    node.run(pids, poll_seconds=0.05, on_report=on_report, on_error=on_error)
    return reports, errors


# ------------------------------------------------------------------ tests
def test_an_update_cid_that_is_not_utf8_is_rejected_and_the_aggregator_keeps_running(stack: Stack) -> None:
    """A trainer reveals an update CID that is not UTF-8. The aggregator's ``collect_round`` raised
    ``UnicodeDecodeError`` reading it, which killed the daemon; now the CID reads with U+FFFD, is not a CID,
    and the round is finalized with that trainer rejected, the honest one paid."""
    pid = stack.client(OWNER).create_project(stack.config(min_trainers=2, max_trainers=2))
    honest, cheater = stack.client(HONEST), stack.client(CHEATER)
    for trainer in (honest, cheater):
        trainer.join(pid)
    node = TrainerNode(honest, stack.store, LocalTraining(mlp_data(1), TrainingSettings(epochs=1)))
    assert isinstance(node.step(pid), Committed)

    commitment, salt = keccak(text="the cheater's row"), keccak(text="the cheater's salt")
    seal_of = _raw_call_data(cheater, "sealOf", [commitment, BAD_CID, cheater.address, pid, 0, salt], lens=True)
    (seal,) = decode(["bytes32"], cheater.chain.w3.eth.call({"to": cheater.lens.address, "data": seal_of}))
    cheater.commit_update(pid, 0, seal)  # everyone committed: the reveal phase opens
    assert isinstance(node.step(pid), Submitted)
    send_raw(cheater, "revealUpdate", [pid, 0, BAD_CID, commitment, salt])
    (revealed,) = [s for s in stack.admin.submissions(pid, 0) if s.trainer == cheater.address]
    assert revealed.cid == "bafk\ufffd(\ufffd\ufffdupdate"

    reports, errors = run_aggregator(AggregatorNode(stack.client(AGGREGATOR), stack.store), [pid])
    assert errors == []
    (report,) = reports
    assert list(report.rejected) == [cheater.address] and report.rejected[cheater.address].startswith("InvalidCid")
    assert report.tx_hash and stack.admin.get_project(pid).status is ProjectStatus.FINISHED
    assert stack.admin.trainer_info(pid, honest.address).earned > 0
    assert stack.admin.trainer_info(pid, cheater.address).earned == 0


def test_projects_whose_model_is_unusable_are_reported_once_and_the_aggregator_serves_the_others(
    stack: Stack,
) -> None:
    """Four projects: an initial CID that is not UTF-8, a model name that is not UTF-8, an initial CID of an
    object that is not a model, and a good one. The first two made ``get_project`` (and so ``join``) raise,
    and each of the first three stopped the aggregator's loop for every project. Now they are read (U+FFFD)
    and joined, the aggregator reports each once and skips it, and finalizes the good project's round."""
    config = stack.config()
    bad_cid = stack.create_raw(config, b"mlp", b"bafy\xff\xfeinitial")
    bad_name = stack.create_raw(config, b"ml\xffp", stack.initial_cid.encode())
    not_a_model = stack.client(OWNER).create_project(stack.config(initial_model_cid=stack.store.put_bytes(b"{}")))
    good = stack.client(OWNER).create_project(config)
    assert stack.admin.get_project(bad_cid).latest_model_cid == "bafy\ufffd\ufffdinitial"
    assert stack.admin.get_project(bad_name).model_name == "ml\ufffdp"
    pids = [bad_cid, bad_name, not_a_model, good]
    for pid in pids:
        stack.client(HONEST).join(pid)  # read the stake from the project: this raised for the first two
        assert stack.admin.get_project(pid).status is ProjectStatus.TRAINING
    stack.past(good, "reveal")  # nobody committed: every round is due (and empty)

    reports, errors = run_aggregator(AggregatorNode(stack.client(AGGREGATOR), stack.store), pids)
    assert [(r.project_id, r.round) for r in reports] == [(good, 0)] and reports[0].tx_hash
    assert stack.admin.get_project(good).status is ProjectStatus.FINISHED
    assert [type(e) for e in errors] == [InvalidCid, ValueError, NotSafetensors], errors
    assert f"project {bad_name}" in str(errors[1]) and "ml\ufffdp" in str(errors[1])
    for pid in pids[:3]:  # left as they were: their trainers and owner get their funds back by abandon
        assert stack.admin.get_project(pid).status is ProjectStatus.TRAINING


class CountingStore(ModelStore):
    """The trainer's store; counts fetches and, at the ``at``-th, calls ``then`` (before fetching)."""

    def __init__(self, store: ModelStore, at: int, then: Any) -> None:
        super().__init__(store.client, max_bytes=store.max_bytes, framework=store.framework)
        self.fetches, self.at, self.then = 0, at, then

    def get_tensors(self, cid: str, *args: Any, **kwargs: Any) -> TensorBundle:
        self.fetches += 1
        if self.fetches == self.at:
            self.then()
        return super().get_tensors(cid, *args, **kwargs)


@pytest.mark.parametrize("model", ["cid not utf8", "not a model"])
def test_a_trainer_reports_a_global_model_it_cannot_use_once_and_stops_when_the_project_ends(
    stack: Stack, model: str
) -> None:
    """``TrainerNode.run`` raised the StorageError of a global model that is not a model, and stopped. Now it
    reports it once, tries again at every poll (the model changes if the round is finalized without it),
    and returns when the project ends (here: abandoned, as its aggregator cannot finalize on that model)."""
    if model == "cid not utf8":
        pid, error = stack.create_raw(stack.config(), b"mlp", b"bafy\xff\xfeinitial"), InvalidCid
    else:
        pid = stack.client(OWNER).create_project(stack.config(initial_model_cid=stack.store.put_bytes(b"{}")))
        error = NotSafetensors
    trainer = stack.client(HONEST)
    trainer.join(pid)

    def project_abandoned() -> None:
        stack.past(pid, "aggregation")
        stack.client(STRANGER).abandon(pid)

    store = CountingStore(stack.store, at=3, then=project_abandoned)
    events: list[object] = []
    TrainerNode(trainer, store, LocalTraining(mlp_data(1))).run(pid, poll_seconds=0.05, on_event=events.append)
    assert store.fetches == 3  # tried at every poll while training
    assert [type(e) for e in events] == [error, StepOutcome] and events[1] is StepOutcome.FINISHED, events
    assert isinstance(events[0], StorageError)
    assert stack.admin.get_project(pid).status is ProjectStatus.CANCELLED
