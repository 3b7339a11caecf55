"""The market's composite views moved into ``MarketLens`` (issue 16, step 2 of docs/design/gas-per-trainer.md):
the lens must answer exactly what the market's own views answered, in every state of a project.

The reference is ``tests/solidity/TrainingMarketWithViews.sol``: today's market with the views it had before, copied
verbatim (over 24 KB: its own anvil, code size limit off). A lens deployed for it reads its raw storage
(``extsload``), and every view is compared, for every trainer, a stranger and three rounds, on projects driven by
hypothesis through their states: open, committing (the owner's reference committed), revealing (and the reference
revealed), rejections announced and one disputed, a round finalized with a flagged trainer, finished and withdrawn
from, cancelled, one with a reliability bar, and a project that does not exist.
Configurations vary (amounts up to 2^90 wei, model names and CIDs shorter and longer than a storage word).
Both contracts are asked the same calldata at the same block in one JSON-RPC batch each, and must answer the same
bytes, returned or reverted (the views' input and output types are checked to be the same in both ABIs).
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from eth_abi import encode as abi_encode
from eth_utils import collapse_if_tuple, function_abi_to_4byte_selector
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from marketplace.adapters.chain.anvil import AnvilNode
from marketplace.adapters.chain.client import ChainClient
from marketplace.adapters.chain.compile import Artifacts, compile_contracts
from marketplace.adapters.chain.deploy import DISPUTES, LENS, MARKET, UnexpectedLens, deploy_marketplace, market_client
from marketplace.adapters.chain.errors import ContractRevert
from marketplace.adapters.chain.market import Finalization, MarketClient, ProjectConfig
from marketplace.adapters.toolchain import project_root
from marketplace.protocol.commitment import commit_update, published_row
from marketplace.round.prove import HashProver
from marketplace.round.reference import commit_reference, reveal_reference
from tests.market_fixtures import cid_for, commit, reveal_update, test_verifier_proof

REFERENCE = "TrainingMarketWithViews"
VIEWS = (
    "getProject", "roundDeadlines", "rejections", "trainerInfo", "committedSeal", "commitmentOf", "projectCount",
    "trainersOf", "withdrawable", "requiredTrackRecord", "sketchSeed", "isVerifierApproved", "roundTag", "sealOf",
    "referenceOf",
)  # fmt: skip
N = 4


@pytest.fixture(scope="module")
def reference_artifacts() -> Artifacts:
    """The contracts with the reference market compiled as ``TrainingMarket`` (so that the deployment code deploys
    it, and the lens is compiled beside it)."""
    root = project_root()
    out = root / "build" / "test-market-lens" / "contracts.json"
    compiled = compile_contracts([root / "contracts", root / "tests" / "solidity"], out=out)
    return Artifacts({**compiled, MARKET: compiled[REFERENCE]}.items())


@pytest.fixture(scope="module")
def world(reference_artifacts: Artifacts) -> Iterator[tuple[MarketClient, list[MarketClient], MarketClient]]:
    """(owner, trainers, aggregator) on an anvil without the code size limit, with the reference market deployed."""
    from marketplace.adapters.chain.anvil import dev_accounts

    accounts = dev_accounts(N + 4)
    with AnvilNode(extra_args=("--disable-code-size-limit",)) as node:
        admin = ChainClient(node.url, accounts[0])
        for account in accounts:
            admin.set_balance(account.address, 10**30)
        deployment = deploy_marketplace(admin, reference_artifacts)
        base = market_client(admin, deployment, reference_artifacts)
        yield (
            base.as_account(accounts[1]),
            [base.as_account(a) for a in accounts[3 : 3 + N]],
            base.as_account(accounts[2]),
        )


def _answer(chain: ChainClient, call: Any, block: int | str = "latest") -> Any:
    try:
        return ("ok", chain.call(call, block))
    except ContractRevert as exc:
        return ("revert", exc.name, exc.args)


def view_calls(pids: list[int], accounts: list[str], verifier: str) -> list[tuple[str, tuple[Any, ...]]]:
    """Every composite view the lens took over, for ``pids``, ``accounts`` and three rounds."""
    calls: list[tuple[str, tuple[Any, ...]]] = [("projectCount", ())]
    for pid in pids:
        calls += [("getProject", (pid,)), ("roundDeadlines", (pid,)), ("rejections", (pid,)), ("trainersOf", (pid,))]
        calls += [("requiredTrackRecord", (pid,)), ("sketchSeed", (pid,))]
        for who in accounts:
            calls += [("trainerInfo", (pid, who)), ("withdrawable", (pid, who))]
            for round_ in range(3):
                calls += [("committedSeal", (pid, round_, who)), ("commitmentOf", (pid, round_, who))]
                calls.append(("sealOf", (bytes([round_ + 1]) * 32, "bafkreicid", who, pid, round_, b"\x07" * 32)))
        for round_ in range(3):
            calls += [("referenceOf", (pid, round_)), ("roundTag", (pid, round_))]
    for who in accounts:
        calls += [("aggregatorRecord", (who,)), ("isVerifierApproved", (who,))]
    calls.append(("isVerifierApproved", (verifier,)))
    return calls


def _types(entry: dict[str, Any]) -> tuple[list[str], list[str], str]:
    """A function's ABI input and output types (tuples spelled out) and its mutability."""
    inputs = [collapse_if_tuple(i) for i in entry["inputs"]]
    return inputs, [collapse_if_tuple(o) for o in entry["outputs"]], entry["stateMutability"]


def encoded_calls(owner: MarketClient, calls: list[tuple[str, tuple[Any, ...]]]) -> list[str]:
    """The calldata of each call, encoded once for both contracts: every view named has the same input and output
    types and mutability in the market and the lens, so the same bytes ask both the same question and the same
    answer bytes decode to the same values."""
    market = {f["name"]: f for f in owner.market.abi if f.get("type") == "function"}
    lens = {f["name"]: f for f in owner.lens.abi if f.get("type") == "function"}
    encoded = []
    for name, args in calls:
        inputs, outputs, mutability = _types(market[name])
        assert _types(lens[name]) == (inputs, outputs, mutability), f"{name}: {lens[name]} vs {market[name]}"
        encoded.append("0x" + (function_abi_to_4byte_selector(market[name]) + abi_encode(inputs, list(args))).hex())
    return encoded


def raw_answers(chain: ChainClient, to: str, data: list[str], block: int) -> list[tuple[str, str]]:
    """``to``'s answer to each calldata at ``block``, from the chain's account, asked in one JSON-RPC batch:
    ("ok", return data) or ("revert", revert data); any other error fails the test."""
    sender = chain.address
    batch = [
        {"jsonrpc": "2.0", "id": i, "method": "eth_call", "params": [{"from": sender, "to": to, "data": d}, hex(block)]}
        for i, d in enumerate(data)
    ]
    response = httpx.post(chain.rpc_url, json=batch, timeout=120)
    response.raise_for_status()
    by_id = {r["id"]: r for r in response.json()}
    answers = []
    for i in range(len(data)):
        reply = by_id[i]
        if "error" not in reply:
            answers.append(("ok", reply["result"]))
            continue
        error = reply["error"]
        assert str(error.get("message", "")).startswith("execution reverted"), f"call {i} to {to}: {error}"
        answers.append(("revert", error.get("data") or "0x"))
    return answers


def assert_same_views(owner: MarketClient, calls: list[tuple[str, tuple[Any, ...]]], data: list[str]) -> None:
    """Every composite view of the reference market answers ``calls`` (encoded as ``data``) with the same bytes as
    the lens, returned or reverted, at the same block."""
    chain = owner.chain
    block = chain.block_number()
    want = raw_answers(chain, owner.market.address, data, block)
    got = raw_answers(chain, owner.lens.address, data, block)
    for (name, args), w, g in zip(calls, want, got, strict=True):
        assert g == w, _mismatch(owner, name, args, block)


def _mismatch(owner: MarketClient, name: str, args: tuple[Any, ...], block: int) -> str:
    """What the lens and the market answer to ``name(*args)`` at ``block``, decoded (for a failure's message)."""
    got = _answer(owner.chain, owner.lens.functions[name](*args), block)
    want = _answer(owner.chain, owner.market.functions[name](*args), block)
    return f"{name}{args}: the lens answers {got}, the market's view {want}"


_NAME = string.ascii_letters + string.digits + "_-."
configs = st.fixed_dictionaries(
    {
        "reward_budget": st.integers(10**6, 2**90),
        "aggregator_fee": st.integers(0, 2**90),
        "stake": st.integers(0, 10**20),
        "slash_bps": st.integers(0, 10_000),
        "join_period": st.integers(3_600, 2**31),  # the deadline must fit 32 bits (test_market: refused beyond)
        "submission_period": st.integers(300, 10**7),
        "reveal_period": st.integers(300, 10**7),
        "aggregation_period": st.integers(300, 10**7),
        "model_name": st.text(_NAME, min_size=1, max_size=64),
        "initial_model_cid": st.text(string.ascii_letters + string.digits, min_size=1, max_size=128),
    }
)


@settings(
    max_examples=3,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),  # an example drives a whole project: no shrinking
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(cfg=configs)
def test_the_lens_answers_what_the_markets_views_answered_in_every_state(
    world: tuple[MarketClient, list[MarketClient], MarketClient], cfg: dict[str, Any]
) -> None:
    owner, trainers, aggregator = world
    chain = owner.chain
    snapshot = chain.snapshot()
    try:
        _drive(owner, trainers, aggregator, cfg)
    finally:
        chain.revert(snapshot)


def _drive(owner: MarketClient, trainers: list[MarketClient], aggregator: MarketClient, cfg: dict[str, Any]) -> None:
    chain = owner.chain
    config = ProjectConfig(
        aggregator=aggregator.address, verifier=_test_verifier(owner), rounds=2, min_trainers=2,
        max_trainers=N + 1, **cfg,
    )  # fmt: skip
    pid = owner.create_project(config)
    cancelled = owner.create_project(config)
    barred = owner.create_project(config.model_copy(update={"min_reliability_bps": 5_000, "min_trainers": 3}))
    accounts = [t.address for t in trainers] + [owner.address, aggregator.address]
    pids = [pid, cancelled, barred, pid + 100]
    calls = view_calls(pids, accounts, _test_verifier(owner))
    data = encoded_calls(owner, calls)

    def check() -> None:
        assert_same_views(owner, calls, data)

    check()  # open, nobody joined
    owner.expect_reference(pid)
    check()  # every round of `pid` waits for the owner's reference
    for t in trainers:
        t.join(pid, cfg["stake"])
    trainers[0].join(cancelled, cfg["stake"])
    owner.cancel(cancelled)
    check()  # open and full but for one; the other cancelled
    owner.start_training(pid)
    seed, k = owner.sketch_seed(pid), owner.sketch_width(pid)
    rng = np.random.default_rng(len(cfg["model_name"]))
    reference = commit_reference(owner, pid, 0, commit_update(rng.normal(size=500), seed, k)[0])
    check()  # the owner's reference committed
    rows, commitments = {}, {}
    for t in trainers[:3]:
        rows[t.address], commitments[t.address] = commit_update(rng.normal(size=500), seed, k)
        commit(t, pid, 0, cid_for(pid, 0, t.address), commitments[t.address])
    check()  # three of four committed
    deadlines = owner.round_deadlines(pid)
    chain.increase_time(deadlines.reveal_opens - chain.timestamp())
    for t in trainers[:2]:
        reveal_update(t, pid, 0, cid_for(pid, 0, t.address), commitments[t.address])
    reveal_reference(owner, pid, 0, reference, HashProver())
    check()  # reveal phase, two of three revealed, and the reference
    reveal_update(trainers[2], pid, 0, cid_for(pid, 0, trainers[2].address), commitments[trainers[2].address])
    aggregator.reject_submissions(pid, 0, [trainers[1].address, trainers[2].address])
    check()  # rejections announced
    victim = trainers[1]
    victim.dispute_rejection(pid, 0, published_row(rows[victim.address]), HashProver().prove_row(rows[victim.address]))
    check()  # one disputed, one standing
    scores, flags, rejected = [3, 5, 0, 0], [False, False, True, False], [False, False, True, False]
    proof = test_verifier_proof(owner, pid, 0, scores, flags, rejected)
    chain.increase_time(owner.rejections(pid).dispute_deadline - chain.timestamp() + 1)
    aggregator.finalize_round(pid, 0, Finalization("bafkreimodel0", "bafkreiproof0", scores, flags, proof, rejected))
    check()  # round 1 open: rewards credited, a standing rejection slashed, a trainer that missed the round
    for t in trainers:
        commit(t, pid, 1, cid_for(pid, 1, t.address), commitments.get(t.address, b"\x01" * 32))
    check()  # every trainer committed; the phase waits for the owner's expected reference
    reference = commit_reference(owner, pid, 1, commit_update(rng.normal(size=500), seed, k)[0])
    check()  # the owner's commit closed it
    for t in trainers:
        reveal_update(t, pid, 1, cid_for(pid, 1, t.address), commitments.get(t.address, b"\x01" * 32))
    reveal_reference(owner, pid, 1, reference, HashProver())
    scores, flags = [1, 2, 3, 4], [False, False, False, True]
    proof = test_verifier_proof(owner, pid, 1, scores, flags)
    aggregator.finalize_round(pid, 1, Finalization("bafkreimodel1", "bafkreiproof1", scores, flags, proof))
    trainers[0].withdraw(pid)
    check()  # finished, one trainer withdrawn


def _test_verifier(owner: MarketClient) -> str:
    (event,) = owner.chain.get_logs(owner.market, "VerifierApprovalChanged", owner.deploy_block)
    return str(event["args"]["verifier"])


def test_a_recorded_lens_that_is_not_the_markets_is_refused(
    world: tuple[MarketClient, list[MarketClient], MarketClient], reference_artifacts: Artifacts
) -> None:
    """A deployment record naming another market's lens, or another contract, as the lens is refused: its answers
    (a project's aggregator, its deadlines) could be anyone's."""
    from marketplace.adapters.chain.deploy import check_lens

    owner = world[0]
    chain = owner.chain
    foreign = chain.deploy(reference_artifacts[LENS], owner.registry.address)  # a lens of another "market"
    with pytest.raises(UnexpectedLens, match="reads the market"):
        check_lens(chain, foreign, owner.market.address, reference_artifacts[LENS])
    with pytest.raises(UnexpectedLens, match="not the MarketLens"):
        check_lens(chain, owner.registry, owner.market.address, reference_artifacts[LENS])
    check_lens(chain, owner.lens, owner.market.address, reference_artifacts[LENS])  # the genuine one


def test_the_market_is_under_the_size_limit_with_both_batches() -> None:
    """The point of the lens: the market fits under EIP-170's 24,576 bytes, with ``revealBatch``, ``commitBatch``
    and the owner's reference (24,459 bytes when the commit batch landed; 24,462 with the reference, its views
    and the seal, round tag, withdrawable amounts and the like moved here; 23,241 with ``expectReference`` once the
    rejections and their disputes moved to the ``MarketDisputes`` module, which fits too; 23,296 with the record of
    published rows; 23,284 with the payable fallback of the rejection bonds, the module 6,238 with the disputes'
    gas reimbursement, 6,359 once it counts only a plain account's own dispute's intrinsic gas and calldata; 23,811
    with the stale challenges' window and round record, the module 9,315 with ``challengeStale``, 9,497 once its
    refund counts the arguments' encoding only and a rejected submission can be challenged, 9,750 once that
    encoding is counted at what it cost)."""
    artifacts = compile_contracts()
    assert artifacts[MARKET].deployed_size <= 24_576
    assert artifacts[LENS].deployed_size <= 24_576
    assert artifacts[DISPUTES].deployed_size <= 24_576
    names = {f.get("name") for f in artifacts[MARKET].abi}
    wanted = {"revealBatch", "commitBatch", "commitReference", "revealReference", "expectReference"}
    assert wanted <= names and not names & set(VIEWS)
