"""How close a coalition can come to an honest trainer's later row by publishing, as its own or as the owner's
reference, a row built from that trainer's earlier rows ("laundering", docs/security.md "Stale challenges").

``MarketDisputes.challengeStale`` compares a revealed row with a row revealed in an earlier round of the project:
within ``NEAR_COPY_DIST`` (``2**20`` at scale ``2**26``, cosine above ``1 - 2**-7`` = 0.99219 for unit rows) of
*another* author's row, or within ``OWN_COPY_DIST`` (``2**16``, cosine above 0.99951) of the trainer's *own*. A
colluder Y (or the owner, through its reference) that re-publishes honest trainer X's row of round ``s`` in round
``s + 1`` moves X's row of a later round ``t >= s + 2`` from the own bar to the looser one; an extrapolation of X's
trajectory may even come closer. This benchmark measures, on the robustness task (``bench.robustness.Task``: the demo's
``mlp`` on scikit-learn digits, 10 trainers, 2 local epochs at lr 0.5) for 15 rounds with the live rule's step
(``GramScorer.run_round``, no attackers), IID and Dirichlet(0.5) shards, how often some row a coalition could publish
before X's round-``t`` commit (built from rows revealed in rounds ``<= t - 2``) lies within each bar of X's round-``t``
row, at sketch widths 32 and 64.

Predictors of X's round-``t`` row from its rows ``x_0 .. x_s`` (``s <= t - 2``) and the round's others:
``copy`` (``x_s``, any ``s``), ``extrapolate m`` (``unit(x_s + m (x_s - x_{s-1}))``, m = 0.5, 1, 2),
``mean j`` (``unit(x_{s-j+1} + .. + x_s)``, j = 2, 3, all) and ``consensus`` (the unit mean of every trainer's
round-``s`` row). Run: ``python -m bench.stale_laundering [--seeds 0 1 2 3 4]``; it prints a table and writes
``reports/stale_laundering.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from marketplace.fl.data import load_npz, partition_digits
from marketplace.fl.models import build_model, state_to_vector, vector_to_state
from marketplace.protocol.commitment import committed_rows, quantize
from marketplace.protocol.sketch import sketch_rows
from marketplace.rule.scorer import GramScorer
from research.simulate import apply_update, collect_updates

#: ``MarketDisputes.NEAR_COPY_DIST`` and ``OWN_COPY_DIST`` (scale 2^26).
NEAR_COPY_DIST = 2**20
OWN_COPY_DIST = 2**16
ROUNDS = 15
WIDTHS = (32, 64)


@dataclass(frozen=True)
class Task:
    """``bench.robustness.Task``'s demo task (not imported: that module needs Flower)."""

    model: str = "mlp"
    trainers: int = 10
    rounds: int = ROUNDS
    epochs: int = 2
    lr: float = 0.5
    batch_size: int = 32
    partition: str = "iid"
    alpha: float = 0.5


Predictor = Callable[[list[np.ndarray], np.ndarray, int], np.ndarray | None]
"""``(x_0 .. x_s of the victim, every trainer's round-s unit sketch, s) -> a unit vector or None``."""


def _unit(v: np.ndarray) -> np.ndarray | None:
    n = float(np.linalg.norm(v))
    return None if n == 0.0 else v / n


def _extrapolate(m: float) -> Predictor:
    def predict(xs: list[np.ndarray], _others: np.ndarray, s: int) -> np.ndarray | None:
        return None if s < 1 else _unit(xs[s] + m * (xs[s] - xs[s - 1]))

    return predict


def _mean(j: int | None) -> Predictor:
    def predict(xs: list[np.ndarray], _others: np.ndarray, s: int) -> np.ndarray | None:
        lo = 0 if j is None else max(0, s - j + 1)
        return _unit(np.sum(xs[lo : s + 1], axis=0))

    return predict


PREDICTORS: dict[str, Predictor] = {
    "copy": lambda xs, _o, s: xs[s],
    "extrapolate 0.5": _extrapolate(0.5),
    "extrapolate 1": _extrapolate(1.0),
    "extrapolate 2": _extrapolate(2.0),
    "mean 2": _mean(2),
    "mean 3": _mean(3),
    "mean all": _mean(None),
    "consensus": lambda _xs, others, _s: _unit(others.sum(axis=0)),
}


def grid_distance(a: np.ndarray, b: np.ndarray) -> int:
    """The contract's squared distance of two unit vectors once committed (scale 2^13 integers, squared)."""
    qa = quantize(a, f32=False).astype(object)
    qb = quantize(b, f32=False).astype(object)
    return int(sum((x - y) ** 2 for x, y in zip(qa, qb, strict=True)))


@dataclass
class Tally:
    """Counts over (victim, target round) pairs with ``t >= 2``."""

    pairs: int = 0
    hits: dict[str, int] = field(default_factory=dict)
    """pairs where the predictor's best row (over ``s <= t - 2``) is within NEAR_COPY_DIST."""
    own_hits: int = 0
    """pairs where the victim's own row of ``t - 1`` is within OWN_COPY_DIST (an honest row shown stale today)."""
    max_cos: dict[str, float] = field(default_factory=dict)
    victims_hit: int = 0
    """victims (trainer, seed) hit in at least one round by at least one predictor."""
    victims: int = 0
    own_gap1_max_cos: float = -1.0
    """the largest cosine of a row with the same trainer's row one round earlier (for comparison)."""
    unrebuttable: int = 0
    """hit pairs where the hitting row is farther than NEAR_COPY_DIST from the victim's own row of round ``s``, the
    last one revealed before it (a rule that refuses, as evidence against X with the loose bar, a row that nearly
    copies X's latest earlier row would not save the victim)."""
    nearer_than_own: int = 0
    """hit pairs where the hitting row is closer to x_t than x_{t-1} is (no 'own row at least as close' rule
    would save the victim)."""


def trajectory(task: Task, seed: int) -> list[np.ndarray]:
    """Every round's N x D update matrix of a clean run on ``task`` (the live rule's step)."""
    with tempfile.TemporaryDirectory(prefix="bench-stale-") as tmp:
        paths = partition_digits(task.trainers, task.partition, alpha=task.alpha, seed=seed, out_dir=tmp)
        shards = [load_npz(p) for p in paths]
    scorer = GramScorer(sketch_dim=64, seed=seed, weighting="equal")
    state = state_to_vector(build_model(task.model, seed).state_dict())
    out = []
    for r in range(task.rounds):
        ru = collect_updates(
            task.model, vector_to_state(state, task.model), shards, None,
            task.epochs, task.lr, task.batch_size, seed=seed * 1000 + r,
        )  # fmt: skip
        out.append(ru.updates)
        state = apply_update(state, scorer.run_round(ru.updates).aggregate)
    return out


def measure(updates: list[np.ndarray], k: int, seed: int, tally: Tally) -> None:
    """Adds one run's pairs to ``tally`` at sketch width ``k``."""
    units = [committed_rows(sketch_rows(u, k, seed))[:, :k] for u in updates]  # rounds x N x K, on the grid
    n = units[0].shape[0]
    for i in range(n):
        xs = [units[r][i] for r in range(len(units))]
        tally.victims += 1
        hit_victim = False
        for t in range(1, len(xs)):
            tally.own_gap1_max_cos = max(tally.own_gap1_max_cos, float(xs[t] @ xs[t - 1]))
        for t in range(2, len(xs)):
            tally.pairs += 1
            own = grid_distance(xs[t], xs[t - 1])
            tally.own_hits += own <= OWN_COPY_DIST
            hit_pair = False
            for name, predict in PREDICTORS.items():
                best = None
                launders = False
                for s in range(t - 1):
                    row = predict(xs, units[s], s)
                    if row is None:
                        continue
                    d = grid_distance(xs[t], row)
                    best = d if best is None else min(best, d)
                    launders |= d <= NEAR_COPY_DIST and grid_distance(xs[s], row) > NEAR_COPY_DIST
                    tally.max_cos[name] = max(tally.max_cos.get(name, -1.0), float(xs[t] @ row))
                if best is not None and best <= NEAR_COPY_DIST:
                    tally.hits[name] = tally.hits.get(name, 0) + 1
                    hit_pair = True
                    tally.nearer_than_own += best < own
                    tally.unrebuttable += launders
            hit_victim |= hit_pair
        tally.victims_hit += hit_victim


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--out", type=Path, default=Path("reports/stale_laundering.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    report: dict[str, dict[str, object]] = {}
    for partition in ("iid", "dirichlet"):
        task = Task(rounds=args.rounds, partition=partition)
        tallies = {k: Tally() for k in WIDTHS}
        for seed in args.seeds:
            updates = trajectory(task, seed)
            for k in WIDTHS:
                measure(updates, k, seed, tallies[k])
            print(f"{partition} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
        for k, tally in tallies.items():
            report[f"{partition} K={k}"] = asdict(tally)
    for name, tally in report.items():
        print(f"\n{name}: {tally['pairs']} (victim, round) pairs, {tally['victims']} victims")
        own_hits, own_cos = tally["own_hits"], tally["own_gap1_max_cos"]
        print(f"  own row of t-1 within OWN_COPY_DIST: {own_hits}; own gap-1 max cos {own_cos:.4f}")
        hit, nearer = tally["victims_hit"], tally["nearer_than_own"]
        print(f"  victims hit at least once: {hit}; hits nearer than own t-1: {nearer}")
        print(f"  hits by a row farther than the bar from the victim's latest earlier row: {tally['unrebuttable']}")
        for pred in PREDICTORS:
            hits = tally["hits"].get(pred, 0)  # type: ignore[union-attr]
            print(f"  {pred:16s} hits {hits:4d}  max cos {tally['max_cos'].get(pred, float('nan')):.4f}")  # type: ignore[union-attr]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"seeds": args.seeds, "rounds": args.rounds, "runs": report}, indent=2))
    print(f"\n{time.perf_counter() - t0:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
