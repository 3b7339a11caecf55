"""Small rounds for attack tests: a one-round project on the local stack whose trainers have committed and revealed
(the tests then run the aggregator their own way), and a round's inputs made offline from updates."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from marketplace.adapters.chain.deploy import TEST_VERIFIER
from marketplace.adapters.chain.market import Commit, MarketClient, ProjectConfig
from marketplace.demo.job import LocalStack
from marketplace.fl.models import build_model
from marketplace.protocol.commitment import commit_update
from marketplace.roles.trainer import Committed, Submitted, TrainerNode, UpdateSource
from marketplace.round.collect import RoundInputs

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


def offline_round(
    updates: Iterable[np.ndarray], seed: int, k: int, arrival: Sequence[int] | None = None
) -> RoundInputs:
    """A round of these updates in trainer order (project 1, round 0, no chain), every one valid with the row
    ``collect_round`` makes (:func:`commit_update`'s), committed in ``arrival`` order (trainer indices; None: trainer
    order)."""
    u = np.stack(list(updates)).astype(np.float32)
    n = len(u)
    trainers = [f"0x{i:040x}" for i in range(n)]
    commits = [
        Commit(1, 0, trainers[t], b"\0" * 32, position + 1, b"", 1) for position, t in enumerate(arrival or range(n))
    ]
    rows = np.stack([commit_update(x, seed, k)[0] for x in u])
    return RoundInputs(1, 0, seed, k, trainers, {}, commits, u, rows, np.ones(n, dtype=bool), {})
