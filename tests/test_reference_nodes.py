"""The owner's reference row with real nodes (issue 16, docs/design/robust-reference.md), on a real anvil and a
real IPFS node, the test verifier and its hash prover: ``TrainerNode`` s, an ``OwnerReferenceNode`` and an
``AggregatorNode``.

- End to end: the owner's reference unpays a below-median trainer that disagrees with it (the rule without the
  reference pays it), pays everyone else the very integer score the rule without it pays, flags nobody, and
  everything withdrawn adds up to what was escrowed.
- Attack review: the owner's node loses a race it cannot avoid, without dying. Its commit lands after the commit
  phase closed (the last trainer committed while the owner trained: the early close waits for nobody, and a
  trainer the reference would unpay gains by closing it first), or its reveal lands after the reveal deadline
  (a slow row proof). Before the fix ``step`` raised ``ContractRevert`` out of ``run``, which stopped serving the
  project: every later round ran without the reference.
"""

# ruff: noqa: F811  (the fixture imported from tests.ipfs_fixtures is used as a test argument)

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from marketplace.adapters.chain.market import MarketClient, ProjectStatus
from marketplace.adapters.ipfs.manager import LocalIpfsNode
from marketplace.adapters.ipfs.store import ModelStore
from marketplace.protocol.commitment import commit_update, quantize
from marketplace.protocol.sketch import sketch
from marketplace.roles.aggregator import AggregatorNode, RoundReport
from marketplace.roles.owner import OwnerReferenceNode, ReferenceCommitted, ReferenceOutcome, ReferenceRevealed
from marketplace.roles.trainer import Committed, Submitted, TrainerNode, UpdateContext
from marketplace.round.prove import HashProver
from marketplace.round.score import ReferenceEffect
from marketplace.rule.gram import GramResult, gram_rule_ref_int
from tests.ipfs_fixtures import ipfs_node  # noqa: F401
from tests.market_fixtures import Actors
from tests.test_batched_reveal_nodes import project, store_of
from tests.update_sources import FixedUpdate, agreeing_updates

HONEST = 5
AT = 2  # the disagreeing trainer's arrival slot


@dataclass(frozen=True)
class Scenario:
    """Trainers' updates in arrival order (the disagreeing one at :data:`AT`), the owner's update, and the rule's
    outcome on their committed rows with the owner's reference."""

    updates: list[np.ndarray]
    reference: np.ndarray
    outcome: GramResult


def _honest(gamma: float) -> list[np.ndarray]:
    """Honest updates that agree, less than ``agreeing_updates`` alone (another draw's noise added), so that the
    round's typical cosine leaves room between "below the median" and "far"."""
    own, other = agreeing_updates(HONEST, seed=90), agreeing_updates(HONEST, seed=92)
    mean = np.mean(other, axis=0)
    return [(u + gamma * (v - mean)).astype(np.float32) for u, v in zip(own, other, strict=True)]


def _candidate(seed: int, k: int, gamma: float, extra_seed: int, a: float) -> Scenario:
    """The disagreeing trainer's update ``m + a y`` and the owner's ``m - y / a``: ``m`` the honest mean, ``y`` a
    direction whose sketch is orthogonal to every honest sketch, scaled so that the two sketches' inner product
    is ``|s_m|^2 (1 - 1.02) < 0`` (CountSketch is linear, so the sketch geometry is exact)."""
    honest = _honest(gamma)
    stacked = np.stack(honest).astype(np.float64)
    sketches = np.stack([sketch(h, k, seed) for h in honest])
    (extra,) = agreeing_updates(1, seed=extra_seed)
    coef, *_ = np.linalg.lstsq(sketches.T, sketch(extra, k, seed), rcond=None)
    y = extra.astype(np.float64) - coef @ stacked
    y *= np.sqrt(1.02) * np.linalg.norm(sketches.mean(axis=0)) / np.linalg.norm(sketch(y, k, seed))
    mean = stacked.mean(axis=0)
    disagreeing, reference = (mean + a * y).astype(np.float32), (mean - y / a).astype(np.float32)
    updates = [*honest[:AT], disagreeing, *honest[AT:]]
    rows = np.stack([commit_update(u, seed, k)[0] for u in updates])
    outcome = gram_rule_ref_int(quantize(rows), quantize(commit_update(reference, seed, k)[0]))
    return Scenario(updates, reference, outcome)


def _decides(s: Scenario) -> bool:
    """The reference decides the round as the end-to-end test needs: nobody flagged; the disagreeing trainer paid
    by the rule without the reference, below the median typicality and unpaid with it; everyone else paid the
    same integer both ways."""
    o, base = s.outcome, s.outcome.stats["base_scores"]
    others = [i for i in range(len(s.updates)) if i != AT]
    return (
        bool(o.stats["ref_ok"])
        and not o.flags.any()
        and base[AT] > 0 == o.scores[AT]
        and o.med_cos[AT] < int(o.stats["M"])
        and all(o.scores[i] == base[i] > 0 for i in others)
    )


def scenario(seed: int, k: int) -> Scenario:
    """The first candidate (a fixed search order over the noise, the direction's draw and its split) in which the
    reference decides (:func:`_decides`) for the project's sketch ``seed`` and width ``k``: the project id, and so
    the sketch, depends on the tests run before; about 95 % of single candidates qualify."""
    for gamma in (1.0, 1.5):
        for extra_seed in (91, 93, 94, 95, 96):
            for a in (1.5, 2.0):
                s = _candidate(seed, k, gamma, extra_seed, a)
                if _decides(s):
                    return s
    raise AssertionError(f"no candidate round for sketch seed {seed}")  # about 0.05**20: never


def _nodes(actors: Actors, store: ModelStore, updates: list[np.ndarray]) -> list[TrainerNode]:
    return [TrainerNode(t, store, FixedUpdate(u)) for t, u in zip(actors.trainers, updates, strict=False)]


def reference_round(actors: Actors, store: ModelStore) -> tuple[int, Scenario]:
    """A finished one-round project of ``HONEST + 1`` trainers, committed in trainer order, whose round the owner's
    reference decided (:func:`scenario`): the trainer at :data:`AT` unpaid by it. Run by the nodes: the owner
    commits, the trainers commit and reveal, the owner reveals, the aggregator finalizes."""
    pid = project(actors, store, n=HONEST + 1)
    s = scenario(actors.owner.sketch_seed(pid), actors.owner.sketch_width(pid))
    trainers = _nodes(actors, store, s.updates)
    owner = OwnerReferenceNode(actors.owner, store, FixedUpdate(s.reference))
    assert isinstance(owner.step(pid), ReferenceCommitted)
    for node in trainers:
        assert isinstance(node.step(pid), Committed)
    for node in trainers:
        assert isinstance(node.step(pid), Submitted)
    assert isinstance(owner.step(pid), ReferenceRevealed)
    assert isinstance(AggregatorNode(actors.aggregator, store).step(pid), RoundReport)
    return pid, s


def _withdraw_everyone(actors: Actors, pid: int, trainers: list[MarketClient]) -> int:
    return sum(c.withdraw(pid) for c in [actors.owner, actors.aggregator, *trainers])


def test_the_owners_reference_unpays_a_below_median_disagreeing_trainer_end_to_end(
    actors: Actors, ipfs_node: LocalIpfsNode
) -> None:
    store = store_of(ipfs_node)
    n = HONEST + 1
    pid = project(actors, store, n=n)
    s = scenario(actors.owner.sketch_seed(pid), actors.owner.sketch_width(pid))
    trainers = _nodes(actors, store, s.updates)
    owner = OwnerReferenceNode(actors.owner, store, FixedUpdate(s.reference))
    aggregator = AggregatorNode(actors.aggregator, store)
    escrowed = actors.owner.get_project(pid)

    committed = owner.step(pid)  # the owner commits as the round opens
    assert isinstance(committed, ReferenceCommitted), committed
    assert owner.step(pid) is ReferenceOutcome.WAITING_FOR_REVEAL
    for node in trainers:  # in arrival order; the last commit closes the commit phase
        assert isinstance(node.step(pid), Committed)
    for node in trainers:
        assert isinstance(node.step(pid), Submitted)
    assert aggregator.step(pid) is None  # every trainer revealed, but the round waits for the owner's reference
    revealed = owner.step(pid)
    assert isinstance(revealed, ReferenceRevealed) and revealed.commitment == committed.commitment, revealed
    assert owner.step(pid) is ReferenceOutcome.REVEALED

    report = aggregator.step(pid)
    assert isinstance(report, RoundReport), report
    assert actors.owner.get_project(pid).status is ProjectStatus.FINISHED
    assert owner.step(pid) is ReferenceOutcome.FINISHED
    order = actors.owner.arrival_order(pid, 0)
    assert order == list(range(n))  # trainer i committed i-th: slot i is trainer i
    base = s.outcome.stats["base_scores"]
    assert report.chain_scores == s.outcome.scores.tolist() and not any(report.flags)
    assert report.reference == ReferenceEffect(used=True, unpaid=[AT], added=[])  # what the report tells people
    assert report.chain_scores[AT] == 0 < base[AT]  # unpaid only because of the reference
    median = int(s.outcome.stats["M"])
    above = [i for i in range(n) if s.outcome.med_cos[i] >= median]
    assert above and all(report.chain_scores[i] == base[i] > 0 for i in above)  # paid as without the reference
    assert all(report.chain_scores[i] == base[i] for i in range(n) if i != AT)
    earned = [actors.owner.trainer_info(pid, t.address).earned for t in actors.trainers[:n]]
    assert earned[AT] == 0 and all(earned[i] > 0 for i in range(n) if i != AT)

    before = actors.chain.balance(actors.deployment.address("TrainingMarket"))
    withdrawn = _withdraw_everyone(actors, pid, actors.trainers[:n])
    assert withdrawn == escrowed.reward_budget + escrowed.aggregator_fee + n * escrowed.stake  # payouts + refunds
    assert actors.chain.balance(actors.deployment.address("TrainingMarket")) == before - withdrawn
    assert actors.owner.get_project(pid).total_earned == sum(earned)


@dataclass
class ClosesWhileTraining:
    """The owner's update source, training long enough for ``last`` (the last trainer) to commit meanwhile: its
    commit closes the commit phase before the owner's commit is sent."""

    update: np.ndarray
    last: TrainerNode
    project_id: int

    def make_update(self, ctx: UpdateContext) -> np.ndarray:
        assert isinstance(self.last.step(self.project_id), Committed)
        return self.update


def test_the_owners_node_outlives_a_commit_phase_closed_while_it_trained(
    actors: Actors, ipfs_node: LocalIpfsNode
) -> None:
    """The commit phase closes early, the moment the last trainer commits; the owner's node read it open, trained,
    and its commit reverts ``SubmissionClosed``. The node says the round runs without its reference (it raised
    before), and the round is finalized by the rule without the reference."""
    store = store_of(ipfs_node)
    pid = project(actors, store, n=3)
    updates = agreeing_updates(4, seed=93)
    trainers = _nodes(actors, store, updates[:3])
    for node in trainers[:2]:
        assert isinstance(node.step(pid), Committed)
    owner = OwnerReferenceNode(actors.owner, store, ClosesWhileTraining(updates[3], trainers[2], pid))
    assert owner.step(pid) is ReferenceOutcome.COMMIT_CLOSED
    assert not actors.owner.reference_of(pid, 0).committed
    for node in trainers:
        assert isinstance(node.step(pid), Submitted)
    report = AggregatorNode(actors.aggregator, store).step(pid)
    assert isinstance(report, RoundReport) and all(s > 0 for s in report.chain_scores), report
    assert owner.step(pid) is ReferenceOutcome.FINISHED


@dataclass
class SlowRowProver:
    """The test verifier's row prover, whose proof takes until after the round's reveal deadline."""

    actors: Actors
    project_id: int
    name: str = "test-hash"

    def prove_row(self, row: np.ndarray) -> bytes:
        deadline = self.actors.owner.round_deadlines(self.project_id).reveal
        self.actors.chain.increase_time(deadline - self.actors.chain.timestamp() + 1)
        return HashProver().prove_row(row)


def test_the_owners_node_outlives_a_reveal_that_lands_after_the_deadline(
    actors: Actors, ipfs_node: LocalIpfsNode
) -> None:
    """The owner's row proof outlasts the reveal phase: its reveal reverts ``RevealClosed``. The node says the
    reveal phase closed (it raised before), and the round is finalized without the reference."""
    store = store_of(ipfs_node)
    pid = project(actors, store, n=3)
    updates = agreeing_updates(4, seed=94)
    trainers = _nodes(actors, store, updates[:3])
    owner = OwnerReferenceNode(actors.owner, store, FixedUpdate(updates[3]), row_prover=SlowRowProver(actors, pid))
    assert isinstance(owner.step(pid), ReferenceCommitted)
    for node in trainers:
        assert isinstance(node.step(pid), Committed)
    for node in trainers:
        assert isinstance(node.step(pid), Submitted)
    assert owner.step(pid) is ReferenceOutcome.REVEAL_CLOSED
    assert not actors.owner.reference_of(pid, 0).revealed
    report = AggregatorNode(actors.aggregator, store).step(pid)
    assert isinstance(report, RoundReport) and all(s > 0 for s in report.chain_scores), report
