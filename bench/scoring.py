"""Benchmarks for the pure scoring core; prints tables.

1. Contribution fidelity: the paying score vs exact Shapley (Spearman, wall-clock cost ratio) for
   N = 4..10 trainers on the label-noise case (honest noise rates 0..80 %, ~25 % attackers).
   The paying score is ``GramScorer(sketch_dim=64, seed=seed, weighting="equal")``: payout
   shares (``marketplace.rule.gram.shares``) of the integer scores the circuit proves. The old
   ``SketchScorer`` (K = 4096) and GTG-Shapley (on its own, un-memoised utility) are comparison
   rows. Cost = the scorer's ``run_round`` (sketch, flags, scores, FedAvg) vs the 2^N utility
   evaluations of exact Shapley; the zk proof of the Gram rule is not included (``bench.zk``).
   The issue's target, Spearman >= 0.9 at <= 1/50 of the cost, is printed as PASS/FAIL and
   written with every row to ``reports/fidelity.json``.
   Note: one-round Shapley on validation loss gives the ``gaussian`` attacker (honest update
   + 3x-rms noise) a *positive* value - isotropic noise barely moves the loss after
   averaging - while the scorers flag it; that alone drags "rho all" down for N >= 8.
2. Attack detection at 25 % malicious (8 trainers), IID and Dirichlet(0.5) shards.
3. CountSketch time for D = 1e4 .. 1e7.

Run: ``.venv/bin/python -m bench.scoring [--quick] [--out reports/fidelity.json]``

Measured (full run, 2 cores shared with other jobs, load ~4; ``torch.set_num_threads(1)``; 3 seeds;
cost ratio = exact Shapley wall time / estimator wall time; reports/fidelity.json):

    | N | attackers | estimator | rho all | rho honest | cost ms | exact s | cost ratio | target all / honest |
    |---:|---|---|---:|---:|---:|---:|---:|---|
    | 4 | sign_flip | Gram K=64 (pays) | 1.000 | 1.000 | 3.9 | 0.01 | 3x | FAIL / FAIL |
    | | | SketchScorer K=4096 (old) | 1.000 | 1.000 | 3.2 | 0.01 | 4x | |
    | | | GTG-Shapley | 1.000 | 1.000 | 23.0 | 0.01 | 1x | |
    | 6 | sign_flip | Gram K=64 (pays) | 0.905 | 0.833 | 3.7 | 0.06 | 16x | FAIL / FAIL |
    | | | SketchScorer K=4096 (old) | 0.981 | 0.967 | 4.9 | 0.06 | 12x | |
    | | | GTG-Shapley | 0.981 | 0.967 | 50.1 | 0.06 | 1x | |
    | 8 | sign_flip, gaussian | Gram K=64 (pays) | 0.503 | 0.905 | 5.5 | 0.28 | 52x | FAIL / PASS |
    | | | SketchScorer K=4096 (old) | 0.559 | 0.981 | 9.2 | 0.28 | 31x | |
    | | | GTG-Shapley | 0.992 | 1.000 | 230.2 | 0.28 | 1x | |
    | 10 | sign_flip, gaussian | Gram K=64 (pays) | 0.610 | 0.905 | 4.2 | 0.66 | 158x | FAIL / PASS |
    | | | SketchScorer K=4096 (old) | 0.626 | 0.929 | 6.5 | 0.66 | 102x | |
    | | | GTG-Shapley | 0.972 | 0.952 | 218.9 | 0.66 | 3x | |

    FAIL (all trainers): Gram K=64 (pays) Spearman >= 0.9 vs exact Shapley at <= 1/50 of its cost;
      rho 1.000 / 0.905 / 0.503 / 0.610, cost ratio 3x / 16x / 52x / 158x at N = 4 / 6 / 8 / 10
    FAIL (honest trainers only): ... rho 1.000 / 0.833 / 0.905 / 0.905, same cost ratios; fails at N = 4, 6

Reading it: the target is not met on all trainers. At N >= 8 the cost half holds (52x, 158x; exact
Shapley grows as 2^N while the score stays at a few ms; at load ~5 the ratios were 51x and 235x), and
the honest trainers' ranking meets 0.9; the ranking over all trainers fails because of the
``gaussian`` attacker (see the note above), which the rule flags and pays 0 while exact Shapley ranks
it among the best: leaving only that trainer out, the paying score's rho is 0.94 (N = 8) and 0.93
(N = 10). At N <= 6 exact Shapley itself costs only 10-60 ms on this MLP, so 1/50 of it is about
a millisecond, below what one ``run_round`` (sketch, three evaluations of the rule, FedAvg) takes.
The old SketchScorer ranks a little better (it pays magnitude, not direction times a clipped size
factor) but is not what the circuit proves. Spearman values are deterministic; costs vary with load.

Rerun after the score's leave-one-out gate (an inlier is paid only when agreeing with the other
inliers on net or with most of them) and a single evaluation of the rule per ``run_round``, load ~3
(CI running alongside): the paying score's rho all / honest 0.877 / 0.833 (N = 4), 0.905 / 0.833,
0.503 / 0.905, 0.610 / 0.905 (N = 10), cost 1.6-2.4 ms, ratio 5x / 18x / 78x / 229x. Only N = 4
moved: in one seed the gate leaves unpaid an honest trainer with 40 % label noise whose median
cosine to the others is negative (-0.15) while an unflagged sign-flipper cancels its net agreement;
the tie at 0 with the attacker costs rank correlation. Same verdicts: FAIL over all trainers, PASS
over the honest ones at N = 8 and 10 (cost half met from N = 8 on).

CountSketch to K = 4096, one float32 row (ms):

    | D | hash gen + sketch | cached sketch | hash memory MB |
    |---:|---:|---:|---:|
    | 1e4 | 4.7 | 0.0 | 0 |
    | 1e5 | 3.7 | 3.4 | 1 |
    | 1e6 | 60.0 | 14.1 | 8 |
    | 1e7 | 1241.2 | 78.5 | 80 |

Detection (SketchScorer, attackers caught / honest false positives; "directions" = unit sketches):

    | attack | iid default | iid directions | dirichlet default | dirichlet directions |
    |---|---|---|---|---|
    | none | 0/0 FP 0 | 0/0 FP 0 | 0/0 FP 0 | 0/0 FP 0 |
    | sign_flip | 2/2 FP 0 | 2/2 FP 0 | 2/2 FP 0 | 2/2 FP 0 |
    | scaled | 2/2 FP 0 | 2/2 FP 0 | 2/2 FP 0 | 2/2 FP 0 |
    | gaussian | 2/2 FP 0 | 2/2 FP 0 | 1/2 FP 0 | 0/2 FP 0 |
    | label_flip | 2/2 FP 0 | 2/2 FP 0 | 0/2 FP 0 | 0/2 FP 0 |
    | free_rider_zero | 2/2 FP 0 | 2/2 FP 0 | 2/2 FP 0 | 2/2 FP 0 |
    | free_rider_copy | 2/2 FP 1 | 2/2 FP 1 | 2/2 FP 1 | 2/2 FP 1 |
    | sybil | 2/2 FP 0 | 2/2 FP 0 | 2/2 FP 0 | 2/2 FP 0 |
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from marketplace.demo.attacks import Attack
from marketplace.fl.data import load_npz, partition_digits
from marketplace.fl.models import build_model
from marketplace.protocol.sketch import sketch, sketch_params
from marketplace.rule.gram import shares
from marketplace.rule.scorer import GramScorer
from research.baselines import SketchScorer, exact_shapley, gtg_shapley, spearman
from research.scenarios import label_noise_shards
from research.simulate import collect_updates, run_rounds
from research.utility import fedavg_utility

ATTACK_CYCLE = ["sign_flip", "gaussian", "free_rider_zero"]
GRAM_K = 64
PAYING = f"Gram K={GRAM_K} (pays)"
OLD = "SketchScorer K=4096 (old)"
GTG = "GTG-Shapley"
ESTIMATORS = [PAYING, OLD, GTG]
TARGET_RHO = 0.9
"""The issue's target: Spearman vs exact Shapley of at least this ..."""
TARGET_RATIO = 50.0
"""... at no more than 1/50 of exact Shapley's wall-clock cost."""
FIDELITY_JSON = Path("reports/fidelity.json")


@dataclass
class Fidelity:
    """One estimator at one N, averaged over seeds."""

    n: int
    estimator: str
    rho_all: list[float] = field(default_factory=list)
    rho_honest: list[float] = field(default_factory=list)
    cost_s: list[float] = field(default_factory=list)
    exact_s: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Exact Shapley's wall-clock cost over this estimator's (mean over seeds)."""
        return float(np.mean(self.exact_s) / np.mean(self.cost_s))

    def passes(self, honest_only: bool = False) -> bool:
        rho = self.rho_honest if honest_only else self.rho_all
        return float(np.mean(rho)) >= TARGET_RHO and self.ratio >= TARGET_RATIO

    def as_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "estimator": self.estimator,
            "rho_all": round(float(np.mean(self.rho_all)), 4),
            "rho_honest": round(float(np.mean(self.rho_honest)), 4),
            "cost_ms": round(1e3 * float(np.mean(self.cost_s)), 3),
            "exact_s": round(float(np.mean(self.exact_s)), 3),
            "cost_ratio": round(self.ratio, 1),
            "per_seed_rho_all": [round(r, 4) for r in self.rho_all],
            "meets_target": self.passes(),
            "meets_target_honest_only": self.passes(honest_only=True),
        }


def gram_shares(updates: np.ndarray, seed: int) -> np.ndarray:
    """The paying score: shares of GramScorer's integer scores (what the circuit proves and the chain pays)."""
    res = GramScorer(sketch_dim=GRAM_K, seed=seed, weighting="equal").run_round(updates)
    paid = shares(res.details["int_scores"])
    assert np.allclose(paid, res.scores), "GramScorer.run_round scores are the shares of its integer scores"
    return paid


def fidelity(sizes: list[int], seeds: list[int]) -> tuple[list[Fidelity], dict[int, str]]:
    """Spearman vs exact Shapley and cost of: the paying Gram score, the old SketchScorer, GTG-Shapley."""
    results: list[Fidelity] = []
    attackers_of: dict[int, str] = {}
    for n in sizes:
        n_att = max(1, n // 4)
        n_hon = n - n_att
        attacks = {n_hon + k: ATTACK_CYCLE[k % len(ATTACK_CYCLE)] for k in range(n_att)}
        attackers_of[n] = ",".join(attacks.values())
        noise = [*np.linspace(0.0, 0.8, n_hon).tolist(), *[0.0] * n_att]
        rows = {name: Fidelity(n, name) for name in ESTIMATORS}
        for seed in seeds:
            shards, val = label_noise_shards(noise, shard_size=140, seed=seed)
            state = build_model("mlp", seed).state_dict()
            ru = collect_updates("mlp", state, shards, attacks, epochs=2, lr=0.5, seed=seed)
            t0 = time.perf_counter()
            phi = exact_shapley(fedavg_utility("mlp", state, ru.updates, val.x, val.y), n)
            exact_s = time.perf_counter() - t0
            for name in ESTIMATORS:
                t0 = time.perf_counter()
                if name == PAYING:
                    est = gram_shares(ru.updates, seed)
                elif name == OLD:
                    est = SketchScorer().run_round(ru.updates, num_samples=ru.num_samples).scores
                else:  # GTG on a fresh (un-memoised) utility, so its cost is its own
                    est = gtg_shapley(fedavg_utility("mlp", state, ru.updates, val.x, val.y), n, seed=seed)
                cost = time.perf_counter() - t0
                r = rows[name]
                r.rho_all.append(spearman(est, phi))
                r.rho_honest.append(spearman(est[:n_hon], phi[:n_hon]))
                r.cost_s.append(cost)
                r.exact_s.append(exact_s)
        results += rows.values()
    return results, attackers_of


def shapley_table(results: list[Fidelity], attackers_of: dict[int, str]) -> Table:
    t = Table(title="contribution fidelity vs exact Shapley (utility = -val loss; mean over seeds)")
    cols = ["N", "attackers", "estimator", "rho all", "rho honest", "cost ms", "exact s", "cost ratio"]
    for col in [*cols, "target all / honest"]:
        t.add_column(col, justify="right")
    for i, r in enumerate(results):
        first = i == 0 or results[i - 1].n != r.n
        if first and i:
            t.add_section()
        mark = " / ".join(
            "[green]PASS[/green]" if r.passes(h) else "[red]FAIL[/red]" for h in (False, True) if r.estimator == PAYING
        )
        t.add_row(
            str(r.n) if first else "",
            attackers_of[r.n] if first else "",
            r.estimator,
            f"{np.mean(r.rho_all):.3f}",
            f"{np.mean(r.rho_honest):.3f}",
            f"{1e3 * np.mean(r.cost_s):.1f}",
            f"{np.mean(r.exact_s):.2f}",
            f"{r.ratio:,.0f}x",
            mark,
        )
    return t


def verdict(results: list[Fidelity], honest_only: bool = False) -> tuple[bool, str]:
    """The issue's target for the paying score, at every N measured (N <= 10): on all trainers'
    ranking, or (``honest_only``) on the honest trainers' ranking only."""
    paying = [r for r in results if r.estimator == PAYING]
    rho = [float(np.mean(r.rho_honest if honest_only else r.rho_all)) for r in paying]
    ok = all(r.passes(honest_only) for r in paying)
    failing = [r.n for r in paying if not r.passes(honest_only)]
    who = "honest trainers only" if honest_only else "all trainers"
    line = (
        f"{'PASS' if ok else 'FAIL'} ({who}): {PAYING} Spearman >= {TARGET_RHO} vs exact Shapley at <= 1/"
        f"{TARGET_RATIO:.0f} of its cost; rho {' / '.join(f'{x:.3f}' for x in rho)}, cost ratio "
        f"{' / '.join(f'{r.ratio:,.0f}x' for r in paying)} at N = {' / '.join(str(r.n) for r in paying)}"
        + (f"; fails at N = {', '.join(map(str, failing))}" if failing else "")
    )
    return ok, line


def write_fidelity(results: list[Fidelity], attackers_of: dict[int, str], seeds: list[int], out: Path) -> None:
    ok, line = verdict(results)
    ok_honest, line_honest = verdict(results, honest_only=True)
    report = {
        "target": {
            "spearman_min": TARGET_RHO,
            "cost_ratio_min": TARGET_RATIO,
            "pass": ok,
            "verdict": line,
            "pass_honest_only": ok_honest,
            "verdict_honest_only": line_honest,
        },
        "setup": {
            "case": "label noise 0..80% on honest trainers, ~25% attackers, mlp on digits, 2 epochs, lr 0.5",
            "utility": "-validation loss of global + FedAvg(subset)",
            "seeds": seeds,
            "paying": f"GramScorer(sketch_dim={GRAM_K}, seed=seed, weighting='equal'), shares of int_scores",
            "old": "SketchScorer() (K=4096, median-distance flags, projection score)",
            "cost": "wall clock of run_round (sketch + flags + scores + FedAvg) vs exact Shapley (2^N utilities);"
            " proving is not included (see bench.zk)",
        },
        "attackers": {str(n): a for n, a in attackers_of.items()},
        "rows": [r.as_dict() for r in results],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


def detection_table() -> Table:
    t = Table(title="detection, 8 trainers / 2 attackers, 2 rounds x 2 epochs (flagged in all rounds)")
    scorers = {
        "default": SketchScorer(),
        "directions": SketchScorer(directions=True, max_norm_ratio=5.0),
    }
    for col in ["shards", "attack"] + [f"{k}: att caught / honest FP" for k in scorers]:
        t.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        for scheme in ["iid", "dirichlet"]:
            shards = [load_npz(p) for p in partition_digits(8, scheme, 0.5, seed=0, out_dir=f"{tmp}/{scheme}")]
            for attack in Attack:
                attackers = {} if attack is Attack.NONE else {6: attack, 7: attack}
                cells = []
                for scorer in scorers.values():
                    _, results = run_rounds("mlp", shards, scorer, 2, attackers, epochs=2, lr=0.5)
                    flags = np.array([r.flags for r in results])
                    caught = int(flags[:, 6:].all(axis=0).sum()) if attackers else 0
                    fp = int(flags[:, :6].any(axis=0).sum())
                    cells.append(f"{caught}/{len(attackers)}  FP {fp}")
                t.add_row(scheme, attack.value, *cells)
    return t


def sketch_table(dims: list[int], sketch_dim: int = 4096) -> Table:
    t = Table(title=f"CountSketch to D'={sketch_dim} (one row, float32 input)")
    for col in ["D", "hash gen + sketch ms", "cached sketch ms", "hash memory MB"]:
        t.add_column(col, justify="right")
    rng = np.random.default_rng(0)
    for d in dims:
        u = rng.normal(size=d).astype(np.float32)
        sketch_params.cache_clear()
        t0 = time.perf_counter()
        sketch(u, sketch_dim, seed=1)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        reps = 3
        for _ in range(reps):
            sketch(u, sketch_dim, seed=1)
        cached = (time.perf_counter() - t0) / reps
        h, s = sketch_params(1, d, sketch_dim)
        t.add_row(f"{d:.0e}", f"{1e3 * first:.1f}", f"{1e3 * cached:.1f}", f"{(h.nbytes + s.nbytes) / 1e6:.0f}")
    return t


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description="scoring benchmarks: fidelity vs exact Shapley, detection, sketch")
    parser.add_argument("--quick", action="store_true", help="N = 4, 6, 8 with one seed; D up to 1e6")
    parser.add_argument("--out", type=Path, default=FIDELITY_JSON, help="where the fidelity JSON goes")
    args = parser.parse_args()
    torch.set_num_threads(1)  # shared 2-core machine: single-threaded exact Shapley and scorers
    quick = args.quick
    console = Console(width=160)
    console.print(sketch_table([10**4, 10**5, 10**6] if quick else [10**4, 10**5, 10**6, 10**7]))
    sizes, seeds = ([4, 6, 8], [0]) if quick else ([4, 6, 8, 10], [0, 1, 2])
    results, attackers_of = fidelity(sizes, seeds)
    console.print(shapley_table(results, attackers_of))
    for honest_only in (False, True):
        ok, line = verdict(results, honest_only)
        console.print(f"[bold {'green' if ok else 'red'}]{line}[/]")
    write_fidelity(results, attackers_of, seeds, args.out)
    console.print(f"wrote {args.out}")
    console.print(detection_table())


if __name__ == "__main__":
    main()
