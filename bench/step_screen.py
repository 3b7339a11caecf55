"""Screening of the model step's lengthening (docs/design/robust-reference.md, section 8): which cap on the
factor the round's mean is lengthened by, and towards which length, keeps the 5-round gains without a loss at 15
rounds.

Each variant replaces only the lengthening of :func:`marketplace.rule.aggregate.agreeing_clipped_mean` (the
same admission, clip and mean, its ``max_step = 1`` form): the mean is multiplied by
``variant(r / |mean|, n, h)``, ``r`` the paid median norm, ``n`` the updates in the mean and ``h`` those at hand.
Every variant runs as ``bench/robustness.py``'s ``ours`` and ``+ref`` do (the same pay, its own trajectory,
:func:`bench.robustness.run_scenario`), next to the old step (the paid mean alone) and the honest-only oracle, on
the decisive rows only: IID 5 rounds scaled 20 % and 40 % and sign-flip 40 %, Dirichlet(0.5) 5 rounds label-flip
and sign-flip 40 %, 15 rounds sign-flip 40 %, IID 15 rounds sign-flip, label-flip and noise 40 %, and the clean
runs of both partitions at 5 and 15 rounds. ``cap 1.5 to 1.25r`` is the live step
(:func:`marketplace.rule.aggregate.step_cap`, ``STEP_TARGET``), bit for bit on the bench's updates (no paid
update there is longer than its cap).

Run: ``.venv/bin/python -m bench.step_screen [--seeds 0 1 2 3 4] [--variants 1.0 1.25 ...]`` (needs ``make
install-bench`` for Flower; about 150 s per three variants at nice 19 on 2 shared cores). Writes
``reports/step_screen.json`` (per row and aggregator: per-seed final accuracy) and prints the markdown table
(ours / +ref per variant; "15-round misses": comparisons more than 0.2 point below the old step's).

Towards ``r`` or further (2026-11-30, ``--variants "cap 1.5" "cap 1.5 to 1.25r" "cap 2 to 1.5r"``, seeds 0-4;
``cap 1.5`` was the live step before)::

    | rounds | part | attack | bad | old | cap 1.5 | cap 1.5 to 1.25r | cap 2 to 1.5r | honest |
    |---:|---|---|---:|---:|---:|---:|---:|---:|
    | 5 | iid | scaled | 40% | 85.9 / 85.9 | 88.0 / 88.0 | 88.9 / 88.9 | 88.8 / 88.8 | 85.9 |
    | 5 | iid | sign_flip | 40% | 85.9 / 85.9 | 87.0 / 87.0 | 87.6 / 87.6 | 88.4 / 88.4 | 85.9 |
    | 5 | dir | label_flip | 40% | 66.4 / 67.3 | 68.7 / 70.2 | 68.7 / 70.2 | 54.0 / 72.1 | 73.0 |
    | 5 | dir | sign_flip | 40% | 52.0 / 69.4 | 54.8 / 69.7 | 54.8 / 69.7 | 66.3 / 72.4 | 73.0 |
    | 15 | dir | sign_flip | 40% | 71.6 / 84.8 | 67.5 / 86.1 | 74.0 / 86.1 | 70.7 / 84.7 | 88.6 |
    | 15 | iid | sign_flip | 40% | 93.2 / 92.9 | 93.2 / 92.4 | 93.4 / 92.8 | 93.5 / 92.9 | 93.7 |
    | 15 | iid | label_flip | 40% | 93.8 / 93.7 | 94.1 / 93.9 | 94.1 / 93.9 | 93.6 / 93.9 | 93.7 |
    | 15 | iid | gaussian | 40% | 93.6 / 93.6 | 93.7 / 93.9 | 93.7 / 93.8 | 94.0 / 94.3 | 93.7 |
    | 5 | dir | none | 0% | 83.6 / 84.1 | 87.2 / 86.6 | 87.2 / 86.6 | 76.9 / 78.5 | 83.6 |
    | 15 | dir | none | 0% | 89.2 / 91.6 | 91.9 / 92.7 | 91.9 / 93.1 | 89.8 / 88.8 | 92.4 |
    | 5 | iid | none | 0% | 87.8 / 87.8 | 88.6 / 88.6 | 90.4 / 90.4 | 87.6 / 87.6 | 87.8 |
    | 15 | iid | none | 0% | 94.1 / 94.0 | 94.4 / 94.5 | 94.4 / 94.4 | 91.9 / 92.9 | 94.3 |
    | | | 15-round misses | | - | 2 | 0 | 4 | |

Seeds 5-9 (``--seeds 5 6 7 8 9``, the two first variants, and IID scaled 20 %)::

    | rounds | part | attack | bad | old | cap 1.5 | cap 1.5 to 1.25r | honest |
    |---:|---|---|---:|---:|---:|---:|---:|
    | 5 | iid | scaled | 20% | 87.1 / 87.1 | 89.3 / 89.3 | 90.2 / 90.2 | 87.1 |
    | 5 | iid | scaled | 40% | 84.9 / 84.9 | 85.9 / 85.9 | 87.0 / 87.0 | 84.9 |
    | 5 | iid | sign_flip | 40% | 84.9 / 84.9 | 85.5 / 85.5 | 85.7 / 85.7 | 84.9 |
    | 5 | dir | label_flip | 40% | 62.7 / 64.7 | 68.8 / 70.5 | 68.8 / 70.5 | 70.7 |
    | 5 | dir | sign_flip | 40% | 64.4 / 69.2 | 65.0 / 70.2 | 65.0 / 70.2 | 70.7 |
    | 15 | dir | sign_flip | 40% | 76.5 / 85.3 | 78.6 / 86.7 | 79.2 / 85.9 | 86.6 |
    | 15 | iid | sign_flip | 40% | 91.4 / 92.9 | 91.8 / 92.7 | 92.3 / 92.6 | 93.5 |
    | 15 | iid | label_flip | 40% | 93.4 / 93.3 | 93.6 / 93.9 | 93.4 / 93.9 | 93.5 |
    | 15 | iid | gaussian | 40% | 93.6 / 93.8 | 94.2 / 94.1 | 94.2 / 94.1 | 93.5 |
    | 5 | dir | none | 0% | 81.7 / 82.6 | 85.3 / 85.2 | 85.3 / 85.2 | 83.6 |
    | 15 | dir | none | 0% | 92.2 / 93.4 | 93.9 / 93.8 | 93.9 / 93.9 | 92.1 |
    | 5 | iid | none | 0% | 88.0 / 88.0 | 88.9 / 88.9 | 90.4 / 90.4 | 88.0 |
    | 15 | iid | none | 0% | 94.4 / 94.7 | 95.0 / 95.0 | 95.1 / 95.0 | 94.7 |
    | | | 15-round misses | | - | 0 | 1 | |

Towards ``1.25 r``: IID 5-round clean +1.8 / +1.5, the scaled rows about +1, the Dirichlet 5-round rows unchanged
(their means are short, the cap binds either way), 1 miss of 24 over both seed sets against 2; towards ``1.5 r``
with a cap of 2 lengthens the noisy Dirichlet means too far (clean 87.2 -> 76.9).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from bench.robustness import Aggregate, Task, owner_reference, run_scenario
from marketplace.demo.attacks import Attack
from marketplace.fl.data import TEST_FILE, VALIDATION_FILE, LocalData, load_npz, partition_digits
from marketplace.rule.aggregate import agreeing_clipped_mean, fedavg, fixed_dot
from marketplace.rule.scorer import GramScorer
from research.simulate import apply_update


@dataclass(frozen=True)
class AtHand:
    """The updates at hand, counted three ways: all (``h``), less the flagged ones the step leaves out
    (``kept``), and each one left out weighted by its squared cosine with the paid sum over the paid updates' median
    leave-one-out squared cosine, clamped to [0, 1] (``weighted``: an inverse-variance count were updates a common
    direction plus noise)."""

    h: int
    kept: int
    weighted: float
    linear: float  # the same with the cosine ratio, not its square
    by_bar: float  # the squared-cosine ratio over the least paid leave-one-out one (the admission bar)


Stretch = Callable[[float, int, AtHand], float]
"""``(r / |mean|, n in the mean, the updates at hand) -> factor``."""


def _flat(m: float) -> Stretch:
    return lambda ratio, n, at: min(max(ratio, 1.0), m)


def _capped(m: float, target: float = 1.0, count: str = "h") -> Stretch:
    """``clip(target r / |mean|, 1, max(1, m sqrt(n / h)))``: towards ``target`` times the paid median norm;
    ``count``: which :class:`AtHand` count is ``h``."""
    return lambda ratio, n, at: min(max(target * ratio, 1.0), max(1.0, m * math.sqrt(n / getattr(at, count))))


VARIANTS: dict[str, Stretch] = {
    "1.0": _flat(1.0),
    "1.25": _flat(1.25),
    "1.5": _flat(1.5),
    "cap 1.5": _capped(1.5),
    "cap 1.25": _capped(1.25),
    "cap 1.5 to 1.25r": _capped(1.5, 1.25),
    "cap 2 to 1.5r": _capped(2.0, 1.5),
    "cap 1.5 to 1.25r, flagged out": _capped(1.5, 1.25, "kept"),
    "cap 1.5 to 1.5r, flagged out": _capped(1.5, 1.5, "kept"),
    "cap 1.5 to 1.4r, flagged out": _capped(1.5, 1.4, "kept"),
    "cap 1.5 to 1.25r, weighted": _capped(1.5, 1.25, "weighted"),
    "cap 1.5 to 1.5r, weighted": _capped(1.5, 1.5, "weighted"),
    "cap 1.5 to 1.25r, linear": _capped(1.5, 1.25, "linear"),
    "cap 1.5 to 1.25r, by bar": _capped(1.5, 1.25, "by_bar"),
    "cap 1.5 to 1.5r": _capped(1.5, 1.5),
}
"""Flat: ``clip(r / |mean|, 1, m)`` (1.5 was the first live step). Cap: the same with ``m sqrt(n / h)``, never
below 1 (``cap 1.5`` was live until ``STEP_TARGET``). ``to t r``: lengthened towards ``t r`` (``cap 1.5 to 1.25r`` is
live)."""
ROWS = (
    ("iid", 5, Attack.SCALED, 0.2),
    ("iid", 5, Attack.SCALED, 0.4),
    ("iid", 5, Attack.SIGN_FLIP, 0.4),
    ("dirichlet", 5, Attack.LABEL_FLIP, 0.4),
    ("dirichlet", 5, Attack.SIGN_FLIP, 0.4),
    ("dirichlet", 15, Attack.SIGN_FLIP, 0.4),
    ("iid", 15, Attack.SIGN_FLIP, 0.4),
    ("iid", 15, Attack.LABEL_FLIP, 0.4),
    ("iid", 15, Attack.GAUSSIAN, 0.4),
    ("dirichlet", 5, Attack.NONE, 0.0),
    ("dirichlet", 15, Attack.NONE, 0.0),
    ("iid", 5, Attack.NONE, 0.0),
    ("iid", 15, Attack.NONE, 0.0),
)
MISS_POINTS = 0.2


@dataclass
class ScreenRow:
    """One screened row: per aggregator, the final test accuracy per seed."""

    partition: str
    rounds: int
    attack: str
    fraction: float
    final: dict[str, list[float]]

    def mean(self, name: str) -> float:
        return 100 * float(np.mean(self.final[name]))


def lengthened(u: np.ndarray, paid: np.ndarray, flagged: np.ndarray, stretch: Stretch) -> np.ndarray | None:
    """The live step's mean (every unpaid update a candidate) lengthened by ``stretch``, summed as it sums."""
    base = agreeing_clipped_mean(u, paid, ~paid, max_step=1.0)
    if base.step is None:
        return None
    total = np.zeros(u.shape[1], dtype=np.float64)
    for i in np.flatnonzero(paid | base.admitted):
        total += base.weights[i] * u[i]
    norms = sorted(math.sqrt(fixed_dot(u[i], u[i])) for i in np.flatnonzero(paid))
    mid = len(norms) // 2
    radius = norms[mid] if len(norms) % 2 else (norms[mid - 1] + norms[mid]) / 2
    length = math.sqrt(fixed_dot(total, total))
    n = int(paid.sum() + base.admitted.sum())
    factor = stretch(radius / length, n, at_hand(u, paid, base.admitted, flagged)) if length > 0 else 1.0
    if factor != 1.0:
        total *= factor
    return total.astype(np.float32)


def at_hand(u: np.ndarray, paid: np.ndarray, admitted: np.ndarray, flagged: np.ndarray) -> AtHand:
    """:class:`AtHand` of a round (floats: a screen, not the rule)."""
    out = ~paid & ~admitted
    total = np.zeros(u.shape[1], dtype=np.float64)
    for i in np.flatnonzero(paid):
        total += u[i]

    def sq_cos(a: np.ndarray, b: np.ndarray) -> float:
        d, na, nb = fixed_dot(a, b), fixed_dot(a, a), fixed_dot(b, b)
        return 0.0 if na == 0 or nb == 0 or d <= 0 else d * d / (na * nb)

    loo = [sq_cos(u[i], total - u[i]) for i in np.flatnonzero(paid)] if paid.sum() > 1 else [0.0]
    typical, bar = float(np.median(loo)), min(loo)
    keys = [sq_cos(u[j], total) for j in np.flatnonzero(out)]
    weights = [min(1.0, a / typical) if typical > 0 else 1.0 for a in keys]
    by_bar = [min(1.0, a / bar) if bar > 0 else 1.0 for a in keys]
    n = int(paid.sum() + admitted.sum())
    linear = [math.sqrt(w) for w in weights]
    return AtHand(len(paid), len(paid) - int((flagged & out).sum()), n + sum(weights), n + sum(linear), n + sum(by_bar))


def screening_aggregators(
    variants: dict[str, Stretch],
) -> Callable[[Task, int, np.ndarray, LocalData], dict[str, Aggregate]]:
    """Per variant ``name`` and ``name +ref`` (the rule's pay without and with the owner's reference), and
    ``old``, ``old +ref`` and ``honest``."""

    def make(task: Task, seed: int, bad: np.ndarray, validation: LocalData) -> dict[str, Aggregate]:
        scorer = GramScorer(sketch_dim=64, seed=seed, weighting="equal")

        def rule(with_reference: bool, stretch: Stretch | None) -> Aggregate:
            round_ = 0

            def run(global_vec: np.ndarray, updates: np.ndarray, _n: np.ndarray) -> tuple[np.ndarray, None]:
                nonlocal round_
                reference = owner_reference(task, global_vec, validation, seed, round_) if with_reference else None
                round_ += 1
                result = scorer.run_round(updates, reference=reference)
                paid = np.asarray(result.scores) > 0
                if stretch is None:
                    return apply_update(global_vec, fedavg(updates, np.ones(len(paid), bool), ~paid)), None
                flagged = np.asarray(result.flags, dtype=bool)
                return apply_update(global_vec, lengthened(np.asarray(updates), paid, flagged, stretch)), None

            return run

        def honest(global_vec: np.ndarray, updates: np.ndarray, _n: np.ndarray) -> tuple[np.ndarray, None]:
            return apply_update(global_vec, fedavg(updates, np.ones(len(bad), bool), bad)), None

        out = {f"{name}{ref}": rule(bool(ref), fn) for name, fn in variants.items() for ref in ("", " +ref")}
        return out | {"old": rule(False, None), "old +ref": rule(True, None), "honest": honest}

    return make


def screen(variants: dict[str, Stretch], seeds: Sequence[int]) -> list[ScreenRow]:
    torch.set_num_threads(1)
    make = screening_aggregators(variants)
    rows = []
    for partition, rounds, attack, fraction in ROWS:
        task = Task(rounds=rounds, partition=partition)
        finals: dict[str, list[float]] = {}
        t0 = time.perf_counter()
        for seed in seeds:
            with tempfile.TemporaryDirectory(prefix="bench-step-") as tmp:
                paths = partition_digits(task.trainers, partition, alpha=task.alpha, seed=seed, out_dir=tmp)
                shards = [load_npz(p) for p in paths]
                test = load_npz(Path(tmp) / TEST_FILE)
                validation = load_npz(Path(tmp) / VALIDATION_FILE)
            attackers = {task.trainers - 1 - j: attack for j in range(round(fraction * task.trainers))}
            for name, traj in run_scenario(task, shards, test, validation, attackers, seed, make).items():
                finals.setdefault(name, []).append(traj.accuracy[-1])
        rows.append(ScreenRow(partition, rounds, attack.value, fraction, finals))
        print(f"{partition} {rounds} {attack.value} {fraction:.0%}: {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def markdown(rows: list[ScreenRow], variants: Sequence[str]) -> str:
    """Ours / +ref per variant and the old step, the oracle, and per variant its 15-round misses."""
    head = ["rounds", "part", "attack", "bad", "old", *variants, "honest"]
    lines = ["| " + " | ".join(head) + " |", "|---:|---|---|---:|" + "---:|" * (len(head) - 4)]
    misses = dict.fromkeys(variants, 0)
    for r in rows:
        cells = [str(r.rounds), r.partition[:3], r.attack, f"{r.fraction:.0%}"]
        cells += [f"{r.mean(name):.1f} / {r.mean(name + ' +ref'):.1f}" for name in ("old", *variants)]
        lines.append("| " + " | ".join([*cells, f"{r.mean('honest'):.1f}"]) + " |")
        if r.rounds == 15:
            for name in variants:
                for ref in ("", " +ref"):
                    misses[name] += r.mean(name + ref) < r.mean("old" + ref) - MISS_POINTS
    lines.append("| | | 15-round misses | | - | " + " | ".join(str(misses[n]) for n in variants) + " | |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("reports/step_screen.json"))
    args = parser.parse_args(argv)
    variants = {name: VARIANTS[name] for name in args.variants}
    rows = screen(variants, args.seeds)
    table = markdown(rows, list(variants))
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"seeds": args.seeds, "rows": [asdict(r) for r in rows], "markdown": table}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
