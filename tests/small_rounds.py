"""A one-round project on the local stack whose trainers have committed and revealed, for attack tests that then
run the aggregator their own way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from marketplace.adapters.chain.deploy import TEST_VERIFIER
from marketplace.adapters.chain.market import MarketClient, ProjectConfig
from marketplace.demo.job import LocalStack
from marketplace.fl.models import build_model
from marketplace.roles.trainer import Committed, Submitted, TrainerNode, UpdateSource

ETH = 10**18


@dataclass(frozen=True)
class RevealedRound:
    """Round 0 of project ``pid`` (started from the model at ``initial``), every trainer's update revealed."""

    pid: int
    initial: str
    aggregator: MarketClient
    trainers: list[TrainerNode]


def revealed_round(stack: LocalStack, sources: Sequence[UpdateSource], model: str = "mlp") -> RevealedRound:
    """A one-round project on the test verifier (owner: account 1, aggregator: account 2) with one trainer per
    update source (accounts 3, 4, ...), each of which joins, commits and reveals; the aggregator has not acted."""
    owner = stack.admin.as_account(stack.accounts[1])
    aggregator = stack.admin.as_account(stack.accounts[2])
    initial = stack.store.put_tensors(build_model(model, seed=1).state_dict(), {"kind": "model"})
    n = len(sources)
    pid = owner.create_project(
        ProjectConfig(
            aggregator=aggregator.address, verifier=stack.deployment.address(TEST_VERIFIER), reward_budget=ETH,
            stake=ETH // 10, rounds=1, min_trainers=n, max_trainers=n, model_name=model, initial_model_cid=initial,
        )
    )  # fmt: skip
    trainers = [
        TrainerNode(stack.admin.as_account(stack.accounts[3 + i]), stack.store, s) for i, s in enumerate(sources)
    ]
    for t in trainers:
        t.join(pid)
    assert all(isinstance(t.step(pid), Committed) for t in trainers)
    assert all(isinstance(t.step(pid), Submitted) for t in trainers)
    return RevealedRound(pid, initial, aggregator, trainers)
