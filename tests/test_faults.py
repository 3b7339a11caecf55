"""Fault injection (issue 6): RPC errors and timeouts between the client and a real anvil, an
aggregator crash after each step of finalization, and trainer dropouts. In every case nothing is
lost, nothing is paid twice, and the job completes or refunds: every wei escrowed is withdrawable
by someone.

The RPC faults come from :class:`FaultyRpcProxy`, a small HTTP proxy on 127.0.0.1 between a
:class:`ChainClient` and anvil that drops connections (before or after forwarding), answers late
or answers HTTP 502, on chosen JSON-RPC methods, and logs every request it saw.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import pytest
from eth_utils import keccak
from hexbytes import HexBytes
from web3.types import RPCEndpoint

import marketplace.roles.aggregator as aggregator_module
from marketplace.adapters.chain.anvil import free_port
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.deploy import TEST_VERIFIER
from marketplace.adapters.chain.errors import ContractRevert, RpcUnavailable
from marketplace.adapters.chain.market import Finalization, FinalizedRound, MarketClient, ProjectConfig, ProjectStatus
from marketplace.demo.job import LocalStack, local_stack
from marketplace.fl.data import LocalData
from marketplace.fl.models import build_model
from marketplace.roles.aggregator import AggregatorNode
from marketplace.roles.trainer import (
    Committed,
    LocalTraining,
    StepOutcome,
    Submitted,
    TrainerNode,
    TrainingSettings,
)
from marketplace.round.prove import HashProver
from tests.http_server import LoopbackServer, QuietHandler
from tests.market_fixtures import reverts

ETH = 10**18
N_TRAINERS = 4
OWNER, AGGREGATOR, FIRST_TRAINER, STRANGER = 1, 2, 3, 11  # indices into stack.accounts
TIMEOUT = 0.5  # the proxied client's per-request timeout (the proxy's delay is beyond it)
RETRIES = 4
BACKOFF = 0.05

FaultKind = Literal["drop_before", "drop_after", "delay", "http_502", "http_502_after"]


# ------------------------------------------------------------------ the proxy
@dataclass
class Fault:
    """``count`` requests (None: all) of ``method`` (None: any) get fault ``kind``."""

    kind: FaultKind
    method: str | None = None
    count: int | None = 1


@dataclass(frozen=True)
class Seen:
    """One request the proxy received."""

    at: float
    method: str
    params: Any
    fault: str  # the fault applied, or "ok"


class FaultyRpcProxy:
    """A JSON-RPC proxy to ``upstream`` on a free loopback port that injects transport faults.

    ``drop_before`` closes the connection without forwarding; ``drop_after`` forwards, then closes
    without answering (the node has the request, the client never sees the answer); ``delay``
    forwards and answers only after ``delay`` seconds (beyond the client's timeout); ``http_502``
    answers 502 Bad Gateway without forwarding, ``http_502_after`` after forwarding.
    """

    def __init__(self, upstream: str, delay: float = 1.0) -> None:
        self.upstream = upstream
        self.delay = delay
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                kind = proxy._take(*_rpc_call(body))
                if kind == "drop_before":
                    self.close_connection = True
                    return
                if kind == "http_502":
                    self.answer(502, b"bad gateway")
                    return
                status, answer = proxy._forward(body)
                if kind == "drop_after":
                    self.close_connection = True
                elif kind == "http_502_after":
                    self.answer(502, b"bad gateway")
                else:
                    if kind == "delay":
                        time.sleep(proxy.delay)
                    with contextlib.suppress(OSError):  # the client may have given up waiting
                        self.answer(status, answer)

        self._server = LoopbackServer(Handler)
        self.url = f"http://127.0.0.1:{self._server.port}"

    def inject(self, kind: FaultKind, method: str | None = None, count: int | None = 1) -> None:
        """The next ``count`` requests of ``method`` (None: any; count None: every one) fail so."""
        with self._lock:
            self.faults.append(Fault(kind, method, count))

    def heal(self) -> None:
        """No more faults."""
        with self._lock:
            self.faults.clear()

    def requests(self, method: str) -> list[Seen]:
        """Every request of ``method`` the proxy received, oldest first."""
        with self._lock:
            return [s for s in self.seen if s.method == method]

    def close(self) -> None:
        self._server.close()

    def _take(self, method: str, params: Any) -> str:
        with self._lock:
            kind = "ok"
            for fault in self.faults:
                if fault.method in (None, method) and (fault.count is None or fault.count > 0):
                    kind = fault.kind
                    if fault.count is not None:
                        fault.count -= 1
                    break
            self.seen.append(Seen(time.monotonic(), method, params, kind))
            return kind

    def _forward(self, body: bytes) -> tuple[int, bytes]:
        request = urllib.request.Request(self.upstream, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()


def _rpc_call(body: bytes) -> tuple[str, Any]:
    """(method, params) of a JSON-RPC request (methods joined by commas for a batch)."""
    try:
        message = json.loads(body)
    except ValueError:
        return "?", None
    if isinstance(message, list):
        return ",".join(str(m.get("method")) for m in message), [m.get("params") for m in message]
    return str(message.get("method")), message.get("params")


# ------------------------------------------------------------------ fixtures and helpers
@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with local_stack(tmp_path_factory.mktemp("faults"), 14) as s:
        yield s


@pytest.fixture
def proxy(stack: LocalStack) -> Iterator[FaultyRpcProxy]:
    p = FaultyRpcProxy(stack.chain_url, delay=2 * TIMEOUT)
    yield p
    p.close()


def proxied_market(stack: LocalStack, proxy: FaultyRpcProxy, account_index: int) -> MarketClient:
    """A MarketClient for the stack's market that talks to anvil through ``proxy``."""
    return market_at(stack, proxy.url, account_index)


def market_at(stack: LocalStack, url: str, account_index: int) -> MarketClient:
    """A MarketClient for the stack's market that talks to the RPC at ``url``, with short timeouts."""
    chain = ChainClient(url, stack.accounts[account_index], request_timeout=TIMEOUT, retries=RETRIES, backoff=BACKOFF)
    market, registry, lens = stack.admin.market, stack.admin.registry, stack.admin.lens
    return MarketClient(
        chain,
        chain.contract(market.abi, market.address),
        chain.contract(registry.abi, registry.address),
        chain.contract(lens.abi, lens.address),
    )


def small_config(stack: LocalStack, **overrides: Any) -> ProjectConfig:
    fields: dict[str, Any] = {
        "aggregator": stack.accounts[AGGREGATOR].address,
        "verifier": stack.deployment.address(TEST_VERIFIER),
        "reward_budget": ETH,
        "aggregator_fee": ETH // 10,
        "stake": ETH // 100,
        "rounds": 1,
        "min_trainers": 2,
        "max_trainers": 4,
        "model_name": "mlp",
        "initial_model_cid": "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
    }
    fields.update(overrides)
    return ProjectConfig(**fields)


def assert_backoff(seen: list[Seen], faults: int) -> None:
    """The first ``faults`` requests failed, the next succeeded, each retry after its backoff."""
    assert [s.fault != "ok" for s in seen] == [True] * faults + [False], seen
    for i in range(faults):
        assert seen[i + 1].at - seen[i].at >= BACKOFF * 2**i * 0.9, (i, seen)


# ------------------------------------------------------------------ RPC faults
@pytest.mark.parametrize("kind", ["drop_before", "drop_after", "delay", "http_502", "http_502_after"])
def test_reads_survive_transient_faults_with_backoff(stack: LocalStack, proxy: FaultyRpcProxy, kind: FaultKind) -> None:
    chain = proxied_market(stack, proxy, OWNER).chain
    proxy.inject(kind, "eth_blockNumber", count=RETRIES - 1)  # only the last attempt gets through
    assert chain.block_number() == stack.admin.chain.block_number()
    assert_backoff(proxy.requests("eth_blockNumber"), RETRIES - 1)


@pytest.mark.parametrize("kind", ["drop_before", "drop_after", "delay", "http_502", "http_502_after"])
def test_a_transaction_whose_answer_is_lost_is_sent_once(
    stack: LocalStack, proxy: FaultyRpcProxy, kind: FaultKind
) -> None:
    owner = proxied_market(stack, proxy, OWNER)
    chain = stack.admin.chain
    config = small_config(stack)
    count, nonce = stack.admin.project_count(), chain.w3.eth.get_transaction_count(owner.address)
    balance, escrow = chain.balance(owner.address), chain.balance(stack.admin.market.address)
    # Every request of the transaction's path fails once, the raw transaction twice.
    for method in ("eth_estimateGas", "eth_getBlockByNumber", "eth_maxPriorityFeePerGas", "eth_getTransactionCount"):
        proxy.inject(kind, method)
    proxy.inject(kind, "eth_sendRawTransaction", count=2)
    proxy.inject(kind, "eth_getTransactionReceipt")

    pid = owner.create_project(config)

    sends = proxy.requests("eth_sendRawTransaction")
    assert [s.fault for s in sends] == [kind, kind, "ok"]
    assert sends[0].params == sends[1].params == sends[2].params  # the same signed bytes: same nonce, same hash
    assert pid == count + 1 == stack.admin.project_count()  # one project, not two or three
    assert chain.w3.eth.get_transaction_count(owner.address) == nonce + 1  # exactly one transaction mined
    (tx_hash,) = chain.w3.eth.get_block(chain.block_number())["transactions"]
    receipt = chain.w3.eth.get_transaction_receipt(tx_hash)
    assert receipt["from"] == owner.address
    gas = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert chain.balance(owner.address) == balance - config.payment - gas  # charged once
    assert chain.balance(stack.admin.market.address) == escrow + config.escrow


@pytest.mark.parametrize("kind", ["drop_before", "delay", "http_502", "refused"])
def test_a_persistent_outage_raises_rpc_unavailable_within_a_bounded_time(
    stack: LocalStack, proxy: FaultyRpcProxy, kind: str
) -> None:
    seen = 0
    if kind == "refused":  # nothing listens at all
        url = f"http://127.0.0.1:{free_port()}"
        market = market_at(stack, url, OWNER)
    else:
        url, market = proxy.url, proxied_market(stack, proxy, OWNER)
        market.project_count()  # connected
        proxy.inject(cast(FaultKind, kind), count=None)
        seen = len(proxy.seen)
    backoffs = sum(BACKOFF * 2**i for i in range(RETRIES - 1))
    bound = backoffs + RETRIES * (TIMEOUT if kind == "delay" else 0.0) + 1.0  # 1 s of slack on a busy machine
    start = time.monotonic()
    with pytest.raises(RpcUnavailable) as info:
        market.project_count()
    elapsed = time.monotonic() - start
    assert backoffs <= elapsed < bound
    # The message says where, what, how often, for how long and why.
    message = str(info.value)
    assert re.match(rf"RPC {url} unreachable: eth_\w+ failed \({RETRIES} attempts in [0-9.]+s; last error ", message)
    cause = {"drop_before": "RemoteDisconnected", "delay": "ReadTimeout", "http_502": "502", "refused": "refused"}
    assert cause[kind] in message, message
    if kind != "refused":
        assert len(proxy.seen) - seen == RETRIES  # one method tried RETRIES times, then given up


def test_a_transaction_the_node_never_answers_for_is_reported_with_its_hash_and_sent_once(
    stack: LocalStack, proxy: FaultyRpcProxy
) -> None:
    owner = proxied_market(stack, proxy, OWNER)
    chain = stack.admin.chain
    nonce = chain.w3.eth.get_transaction_count(owner.address)
    count = stack.admin.project_count()
    proxy.inject("drop_after", "eth_sendRawTransaction", count=None)  # the node gets it, the client never hears
    with pytest.raises(RpcUnavailable) as info:
        owner.create_project(small_config(stack))
    message = str(info.value)
    assert "eth_sendRawTransaction" in message and "may have reached the node" in message
    sends = proxy.requests("eth_sendRawTransaction")
    assert len(sends) == RETRIES and all(s.params == sends[0].params for s in sends)  # the same signed bytes
    tx_hash = message.split("transaction ")[-1].split()[0]
    assert chain.w3.eth.get_transaction_receipt(HexBytes(tx_hash))["status"] == 1  # the hash in the message
    assert chain.w3.eth.get_transaction_count(owner.address) == nonce + 1  # mined once, not RETRIES times
    assert stack.admin.project_count() == count + 1
    # The connection comes back: the same client carries on with the next nonce.
    proxy.heal()
    owner.cancel(count + 1)
    assert stack.admin.get_project(count + 1).status is ProjectStatus.CANCELLED
    assert chain.w3.eth.get_transaction_count(owner.address) == nonce + 2


# ------------------------------------------------------------------ jobs with real trainers
@pytest.fixture(scope="module")
def shards() -> list[LocalData]:
    """Each trainer's private data: the same learnable 10-class problem on 64 features as the digits
    (made up here, which spares importing scikit-learn), 200 samples each."""
    centers = np.random.default_rng(0).normal(0.0, 4.0, (10, 64)).astype(np.float32)
    out = []
    for i in range(N_TRAINERS):
        rng = np.random.default_rng(1 + i)
        y = rng.integers(0, 10, 200)
        out.append(LocalData(centers[y] + rng.normal(0.0, 2.0, (200, 64)).astype(np.float32), y))
    return out


@pytest.fixture(scope="module")
def initial_cid(stack: LocalStack) -> str:
    return stack.store.put_tensors(build_model("mlp", seed=1).state_dict(), {"kind": "model"})


@pytest.fixture
def rewind(stack: LocalStack) -> Iterator[None]:
    """Whatever the test does on chain (including moving the clock) is undone afterwards."""
    snapshot = stack.admin.chain.snapshot()
    yield
    stack.admin.chain.revert(snapshot)


def client(stack: LocalStack, index: int) -> MarketClient:
    """A new client (as after a process restart) signing as ``stack.accounts[index]``."""
    return stack.admin.as_account(stack.accounts[index])


def new_job(stack: LocalStack, shards: list[LocalData], initial_cid: str, rounds: int) -> tuple[int, list[TrainerNode]]:
    """A project of N_TRAINERS trainers with a stake, joined and training."""
    config = small_config(
        stack, rounds=rounds, min_trainers=N_TRAINERS, max_trainers=N_TRAINERS, initial_model_cid=initial_cid
    )
    pid = client(stack, OWNER).create_project(config)
    trainers = [
        TrainerNode(client(stack, FIRST_TRAINER + i), stack.store, LocalTraining(shards[i], TrainingSettings(epochs=1)))
        for i in range(N_TRAINERS)
    ]
    for t in trainers:
        t.join(pid)
    assert stack.admin.get_project(pid).status is ProjectStatus.TRAINING
    return pid, trainers


def aggregator(stack: LocalStack, market: MarketClient | None = None, **kwargs: Any) -> AggregatorNode:
    """A freshly started aggregator process."""
    return AggregatorNode(market or client(stack, AGGREGATOR), stack.store, **kwargs)


def settle_everyone(stack: LocalStack, pid: int, withdraw: bool = True) -> dict[str, int]:
    """What the ended project owes everyone. Asserts conservation: it sums to exactly what was
    escrowed (budget + fee + stakes), nothing stuck, nothing owed twice. With ``withdraw`` everyone
    withdraws it: each is paid exactly that and the market's balance drops by exactly the escrow."""
    market = stack.admin
    project = market.get_project(pid)
    assert project.status in (ProjectStatus.FINISHED, ProjectStatus.CANCELLED)
    escrowed = project.reward_budget + project.aggregator_fee + project.stake * project.trainer_count
    people = [project.owner, project.aggregator, *market.trainers(pid)]
    owed = {a: market.withdrawable(pid, a) for a in people}
    assert sum(owed.values()) == escrowed, owed
    if withdraw:
        by_address = {a.address: i for i, a in enumerate(stack.accounts)}
        before = market.chain.balance(market.market.address)
        for address, amount in owed.items():
            if amount:
                assert client(stack, by_address[address]).withdraw(pid) == amount
            assert market.withdrawable(pid, address) == 0
        assert market.chain.balance(market.market.address) == before - escrowed
    return owed


# ------------------------------------------------------------------ aggregator crashes
class Crash(Exception):
    """The aggregator process dies here."""


def crash_after(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` runs (its side effects happen), then the process dies before using its result."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        fn(*args, **kwargs)
        raise Crash(getattr(fn, "__name__", "step"))

    return wrapper


class CrashAfterProving:
    """The project's prover; the process dies right after the proof is computed."""

    def __init__(self) -> None:
        self.inner = HashProver()
        self.name = self.inner.name

    def prove(self, *args: Any, **kwargs: Any) -> bytes:
        crash_after(self.inner.prove)(*args, **kwargs)
        raise AssertionError("unreachable")


@dataclass(frozen=True)
class SubmittedRound:
    """A 1-round job whose trainers all submitted, and the round as a crash-free aggregator records it."""

    pid: int
    baseline: FinalizedRound


@pytest.fixture(scope="module")
def submitted_round(stack: LocalStack, shards: list[LocalData], initial_cid: str) -> SubmittedRound:
    pid, trainers = new_job(stack, shards, initial_cid, rounds=1)
    for t in trainers:
        assert isinstance(t.step(pid), Committed)
    for t in trainers:  # everyone committed: the reveal phase is open
        assert isinstance(t.step(pid), Submitted)
    snapshot = stack.admin.chain.snapshot()
    report = aggregator(stack).step(pid)
    assert report is not None and report.tx_hash
    (baseline,) = stack.admin.finalized_rounds(pid)
    stack.admin.chain.revert(snapshot)
    assert stack.admin.finalized_rounds(pid) == []
    return SubmittedRound(pid, baseline)


def _set_automine(stack: LocalStack, on: bool) -> None:
    stack.admin.chain.w3.manager.request_blocking(RPCEndpoint("evm_setAutomine"), [on])


def _mine_when_pending(stack: LocalStack, n: int) -> threading.Thread:
    """Mines one block as soon as ``n`` transactions wait in anvil's pool (automine off)."""

    def mine() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = stack.admin.chain.w3.manager.request_blocking(RPCEndpoint("txpool_status"), [])
            if int(status["pending"], 16) >= n:
                break
            time.sleep(0.02)
        stack.admin.chain.mine()

    thread = threading.Thread(target=mine, daemon=True)
    thread.start()
    return thread


CRASH_POINTS = [
    "after_fetch",
    "after_scoring",
    "after_model_pinned",
    "after_proving",
    "after_proof_pinned",
    "after_finalize_mined",  # finalizeRound mined, but the call raises before returning
    "finalize_receipt_lost",  # finalizeRound mined, the receipt never reaches the aggregator (RPC)
    "finalize_pending",  # finalizeRound sent, not mined yet, when the aggregator dies and restarts
]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_an_aggregator_crash_at_each_step_of_finalization_finalizes_once_and_pays_once(
    stack: LocalStack,
    submitted_round: SubmittedRound,
    rewind: None,
    proxy: FaultyRpcProxy,
    monkeypatch: pytest.MonkeyPatch,
    point: str,
) -> None:
    pid = submitted_round.pid
    crashed_error: type[BaseException] = Crash
    with monkeypatch.context() as m:
        market, prover = client(stack, AGGREGATOR), None
        if point == "after_fetch":
            m.setattr(aggregator_module, "collect_round", crash_after(aggregator_module.collect_round))
        elif point == "after_scoring":
            m.setattr(aggregator_module, "score_round", crash_after(aggregator_module.score_round))
        elif point == "after_model_pinned":
            m.setattr(stack.store, "put_tensors", crash_after(stack.store.put_tensors))
        elif point == "after_proving":
            prover = CrashAfterProving()
        elif point == "after_proof_pinned":
            m.setattr(stack.store, "put_bytes", crash_after(stack.store.put_bytes))
        elif point == "after_finalize_mined":
            m.setattr(market, "finalize_round", crash_after(market.finalize_round))
        elif point == "finalize_receipt_lost":
            market = proxied_market(stack, proxy, AGGREGATOR)
            proxy.inject("drop_after", "eth_getTransactionReceipt", count=None)
            crashed_error = RpcUnavailable
        elif point == "finalize_pending":
            _set_automine(stack, False)
            m.setattr(market.chain, "wait", crash_after(lambda tx_hash: None))
        crashing = aggregator(stack, market, **({"prover": prover} if prover else {}))
        try:
            with pytest.raises(crashed_error):
                crashing.step(pid)
        except BaseException:
            _set_automine(stack, True)
            raise

    mined_before_restart = point in ("after_finalize_mined", "finalize_receipt_lost")
    assert len(stack.admin.finalized_rounds(pid)) == (1 if mined_before_restart else 0)

    # A new aggregator process on the same chain and IPFS node.
    if point == "finalize_pending":
        try:
            miner = _mine_when_pending(stack, 2)  # the crashed run's transaction and the new one: same block
            report = aggregator(stack).step(pid)
            miner.join()
        finally:
            _set_automine(stack, True)
        assert report is not None and report.already_finalized and not report.tx_hash
    elif mined_before_restart:
        assert aggregator(stack).step(pid) is None  # nothing left to do
    else:
        report = aggregator(stack).step(pid)
        assert report is not None and report.tx_hash and not report.already_finalized

    # Finalized exactly once, exactly as without the crash; the job finished; rewards credited once.
    (finalized,) = stack.admin.finalized_rounds(pid)
    baseline = submitted_round.baseline
    assert (finalized.model_cid, finalized.scores, finalized.flags, finalized.rewards) == (
        baseline.model_cid,
        baseline.scores,
        baseline.flags,
        baseline.rewards,
    )
    project = stack.admin.get_project(pid)
    assert project.status is ProjectStatus.FINISHED and project.latest_model_cid == baseline.model_cid
    trainers = stack.admin.trainers(pid)
    assert [stack.admin.trainer_info(pid, t).earned for t in trainers] == baseline.rewards
    assert project.total_earned == sum(baseline.rewards)
    owed = settle_everyone(stack, pid, withdraw=point == CRASH_POINTS[-1])  # withdrawing once is enough
    assert owed[project.aggregator] == project.aggregator_fee
    assert [owed[t] for t in trainers] == [r + project.stake for r in baseline.rewards]


def test_the_aggregator_loop_keeps_serving_through_a_transient_rpc_outage(
    stack: LocalStack, submitted_round: SubmittedRound, rewind: None, proxy: FaultyRpcProxy
) -> None:
    pid = submitted_round.pid
    node = aggregator(stack, proxied_market(stack, proxy, AGGREGATOR))
    proxy.inject("drop_before", "eth_estimateGas", count=None)  # finalizeRound cannot be sent for now
    errors: list[Exception] = []
    reports: list[Any] = []

    def outage_over(exc: Exception) -> None:
        errors.append(exc)
        proxy.heal()  # the RPC comes back before the next poll

    node.run([pid], poll_seconds=0.05, on_report=reports.append, on_error=outage_over)
    assert len(errors) == 1 and isinstance(errors[0], RpcUnavailable)
    assert len(reports) == 1 and reports[0].tx_hash
    assert stack.admin.get_project(pid).status is ProjectStatus.FINISHED


class ProvesAnotherRound(HashProver):
    """A prover whose proofs are for another round than the one being finalized: ``finalizeRound``
    reverts (``InvalidProof``), as it did when another project had used the round's proof up."""

    def prove(
        self,
        commitments: list[bytes],
        rows: Any,
        scores: list[int],
        flags: list[bool],
        tag: bytes,
        reference: Any = None,
    ) -> bytes:
        return super().prove(commitments, rows, scores, flags, keccak(tag), reference)


def test_the_aggregator_loop_survives_a_revert_in_one_project_and_keeps_serving_the_others(
    stack: LocalStack, shards: list[LocalData], initial_cid: str, rewind: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12 item 3: one project's finalizeRound reverting stopped the daemon for all its projects.
    Now the revert goes to ``on_error``, that project is retried on the next poll, and the other
    project's round is finalized all the same."""
    blocked, _ = new_job(stack, shards, initial_cid, rounds=1)
    served, _ = new_job(stack, shards, initial_cid, rounds=1)
    chain = stack.admin.chain
    deadline = max(stack.admin.round_deadlines(pid).commit for pid in (blocked, served))
    chain.increase_time(deadline - chain.timestamp() + 1)  # both rounds are due (nobody submitted)
    node = aggregator(stack)
    honest, failing = HashProver(), ProvesAnotherRound()
    monkeypatch.setattr(node, "prover", lambda pid: failing if pid == blocked else honest)

    class Stop(Exception):
        """Ends the otherwise endless loop once the served project is done."""

    errors: list[Exception] = []
    reports: list[Any] = []

    def on_error(exc: Exception) -> None:
        errors.append(exc)
        if stack.admin.get_project(served).status is ProjectStatus.FINISHED:
            raise Stop

    with pytest.raises(Stop):  # the blocked project comes first in every poll
        node.run([blocked, served], poll_seconds=0.05, on_report=reports.append, on_error=on_error)
    assert len(errors) == 2 and all(isinstance(e, ContractRevert) and e.name == "InvalidProof" for e in errors)
    assert [(r.project_id, r.round) for r in reports] == [(served, 0)] and reports[0].tx_hash
    assert stack.admin.get_project(served).status is ProjectStatus.FINISHED
    assert (stack.admin.get_project(blocked).status, stack.admin.get_project(blocked).current_round) == (
        ProjectStatus.TRAINING,
        0,
    )


# ------------------------------------------------------------------ trainer dropouts
def test_a_trainer_who_drops_out_gets_nothing_loses_nothing_and_the_round_finalizes_after_the_deadline(
    stack: LocalStack, shards: list[LocalData], initial_cid: str, rewind: None
) -> None:
    pid, trainers = new_job(stack, shards, initial_cid, rounds=1)
    *present, dropout = trainers
    records = {t.address: stack.admin.record(t.address) for t in trainers}
    for t in present:
        assert isinstance(t.step(pid), Committed)
    node = aggregator(stack)
    assert node.step(pid) is None  # one trainer missing and the deadline not passed: not due
    with reverts("RoundStillOpen"):
        node.market.finalize_round(pid, 0, _dummy_result(stack, pid))

    commit_deadline = stack.admin.round_deadlines(pid).commit
    stack.admin.chain.increase_time(commit_deadline - stack.admin.chain.timestamp() + 1)
    assert dropout.step(pid) is StepOutcome.ROUND_CLOSED  # too late to commit now
    for t in present:
        assert isinstance(t.step(pid), Submitted)  # the reveal phase is open
    report = node.step(pid)
    assert report is not None and report.tx_hash
    assert report.submitted == [True, True, True, False]
    assert not any(report.flags)  # not flagged: a dropout is not a cheat
    assert report.chain_scores[3] == 0 and all(s > 0 for s in report.chain_scores[:3])

    project = stack.admin.get_project(pid)
    assert project.status is ProjectStatus.FINISHED and project.slashed == 0
    info = stack.admin.trainer_info(pid, dropout.address)
    assert (info.earned, info.stake_left) == (0, project.stake)  # nothing earned, no slashing
    assert project.total_earned == sum(stack.admin.trainer_info(pid, t.address).earned for t in present)
    assert project.reward_budget - project.total_earned < N_TRAINERS  # the round's share, but rounding dust
    # The registry records a missed round for the dropout, a contribution for the others.
    contributed, flagged, missed = records[dropout.address]
    assert stack.admin.record(dropout.address) == (contributed, flagged, missed + 1)
    for t in present:
        contributed, flagged, missed = records[t.address]
        assert stack.admin.record(t.address) == (contributed + 1, flagged, missed)

    owed = settle_everyone(stack, pid)
    assert owed[dropout.address] == project.stake  # its stake back, whole
    assert owed[project.owner] == project.reward_budget - project.total_earned  # the dust


def test_when_every_trainer_drops_out_nobody_is_paid_or_slashed_and_the_owner_is_refunded(
    stack: LocalStack, shards: list[LocalData], initial_cid: str, rewind: None
) -> None:
    pid, trainers = new_job(stack, shards, initial_cid, rounds=2)
    chain, stranger = stack.admin.chain, client(stack, STRANGER)
    records = {t.address: stack.admin.record(t.address) for t in trainers}
    node = aggregator(stack)
    assert node.step(pid) is None  # nobody submitted, the deadline not passed: not due

    # Round 0: nobody submits. After the submission deadline the contract lets the aggregator
    # finalize the empty round: nobody is paid, nobody is slashed, every trainer has a missed round.
    chain.increase_time(stack.admin.round_deadlines(pid).commit - chain.timestamp() + 1)
    report = node.step(pid)
    assert report is not None and report.tx_hash
    assert report.submitted == [False] * N_TRAINERS and not any(report.flags) and not any(report.chain_scores)
    (finalized,) = stack.admin.finalized_rounds(pid)
    assert finalized.rewards == [0] * N_TRAINERS
    for t in trainers:
        contributed, flagged, missed = records[t.address]
        assert stack.admin.record(t.address) == (contributed, flagged, missed + 1)

    # Round 1: nobody submits and the aggregator does not finalize either. Nobody can end the job
    # before the aggregation deadline; after it anyone can abandon it.
    aggregation_deadline = stack.admin.round_deadlines(pid).aggregation
    chain.increase_time(aggregation_deadline - chain.timestamp() - 30)  # margin: anvil's clock also ticks
    with reverts("NotAllowedYet"):
        stranger.abandon(pid)
    chain.increase_time(aggregation_deadline - chain.timestamp() + 1)
    stranger.abandon(pid)
    project = stack.admin.get_project(pid)
    assert project.status is ProjectStatus.CANCELLED
    assert (project.total_earned, project.slashed) == (0, 0)
    with reverts("WrongStatus"):  # no late finalization after the abandonment
        node.market.finalize_round(pid, 1, _dummy_result(stack, pid))

    owed = settle_everyone(stack, pid)
    fee_earned = project.aggregator_fee // 2  # one of two rounds was finalized
    assert owed[project.owner] == project.reward_budget + project.aggregator_fee - fee_earned  # unspent budget
    assert owed[project.aggregator] == fee_earned
    assert all(owed[t.address] == project.stake for t in trainers)  # every stake back


def test_consecutive_empty_rounds_are_finalized_and_the_job_completes(
    stack: LocalStack, shards: list[LocalData], initial_cid: str, rewind: None
) -> None:
    pid, _ = new_job(stack, shards, initial_cid, rounds=2)
    chain, node = stack.admin.chain, aggregator(stack)
    for round_ in range(2):
        chain.increase_time(stack.admin.round_deadlines(pid).commit - chain.timestamp() + 1)
        report = node.step(pid)
        assert report is not None and report.round == round_ and report.tx_hash
    assert stack.admin.get_project(pid).status is ProjectStatus.FINISHED
    settle_everyone(stack, pid)


def _dummy_result(stack: LocalStack, pid: int) -> Finalization:
    """A well-formed round result, for calls that must revert before its proof is even looked at."""
    n = len(stack.admin.trainers(pid))
    return Finalization("bafkreimodel", "bafkreiproof", [0] * n, [False] * n, b"\x01" * 32)
