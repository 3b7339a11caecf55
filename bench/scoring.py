"""Benchmarks for the pure scoring core; prints tables.

1. Contribution fidelity: the paying score vs exact Shapley (Spearman, wall-clock cost ratio) for
   N = 4..10 trainers on the label-noise case (honest noise rates 0..80 %, ~25 % attackers).
   The paying score is ``GramScorer(sketch_dim=64, seed=seed, weighting="equal")``: payout
   shares (``marketplace.rule.gram.shares``) of the integer scores the circuit proves. The old
   ``SketchScorer`` (K = 4096) and GTG-Shapley (on its own, un-memoised utility) are comparison
   rows. Cost = the scorer's ``run_round`` (sketch, flags, scores, FedAvg) vs the 2^N utility
   evaluations of exact Shapley over *all N* trainers (what one would otherwise run); the zk proof
   of the Gram rule is not included (``bench.zk``).

   Issue 16's target: **Spearman >= 0.9 against exact Shapley over the trainers the rule does not
   flag, at N = 8 and 10, at <= 1/50 of its cost**; flagged trainers are judged by the robustness
   table (``bench.robustness``), not by Shapley values. ``rho unflagged`` ranks the trainers the
   paying rule leaves unflagged (unflagged attackers included: the rule's flags, not the ground
   truth, choose them) against their exact Shapley values *in the game restricted to them*:
   ``v_U(S) = v(S)`` for coalitions ``S`` of unflagged trainers only, Shapley over the ``|U|``
   players. Why restricted rather than the full game's values read off for ``U``: the rule never
   averages a flagged update into the model, so the coalitions it can form are subsets of ``U``;
   a full-game value would credit or charge an unflagged trainer for how it combines with updates
   (a noise or sign-flip attacker) that never reach the model, and would judge the rule's ranking
   partly on the flagged trainers it is not judged on. ``unflagged, full game`` (the same trainers
   against their full-game values) is printed beside it for comparison, as are the earlier
   measures, ``rho all`` (all N, full game) and ``rho honest`` (the honest trainers, full game).
   Every estimator is ranked over the paying rule's unflagged set. The restricted values cost no
   extra model evaluation (the memoised utility already holds every subset). Spearman is the mean
   over seeds; the PASS/FAIL lines, the per-seed values and every seed's flags, shares and Shapley
   values go to ``reports/fidelity.json``.
   Note: one-round Shapley on validation loss gives the ``gaussian`` attacker (honest update
   + 3x-rms noise) a *positive* value - isotropic noise barely moves the loss after
   averaging - while the scorers flag it; that alone drags "rho all" down for N >= 8.
2. Attack detection at 25 % malicious (8 trainers), IID and Dirichlet(0.5) shards.
3. CountSketch time for D = 1e4 .. 1e7.

Run: ``.venv/bin/python -m bench.scoring [--quick] [--seeds S] [--out reports/fidelity.json]``

Measured (full run, 3 seeds; 2 cores shared with other sessions' zk proofs and benchmarks, load 9.5-10.5
during the run; ``torch.set_num_threads(1)``; reports/fidelity.json). At N = 4 and 6 the attacker is
one ``sign_flip``, at N = 8 and 10 a ``sign_flip`` and a ``gaussian``. Columns: Spearman over all
trainers, the honest ones (both full game), the unflagged ones (restricted game: the target) and the
unflagged ones against full-game values; ``cost ms`` = the median of 5 ``run_round`` calls (the first,
cold call, which also draws the seed's sketch hashes, in brackets); ``exact s`` = exact Shapley over
all N trainers, one call; ``ratio`` = exact s / cost; ``target a/h/u`` = the paying row against the
target on all / honest / unflagged trainers (``-``: N not judged). Spearman values are deterministic,
costs vary with load.

    | N | estimator | rho all | honest | unflagged | unfl. full | cost ms (1st) | exact s | ratio | target a/h/u |
    |---:|---|---:|---:|---:|---:|---:|---:|---:|---|
    | 4 | Gram K=64 (pays) | 0.877 | 0.833 | 0.877 | 0.877 | 0.6 (3.5) | 0.01 | 22x | FAIL/FAIL/- |
    |  | SketchScorer K=4096 (old) | 1.000 | 1.000 | 1.000 | 1.000 | 1.2 (4.2) | 0.01 | 10x |  |
    |  | GTG-Shapley | 1.000 | 1.000 | 1.000 | 1.000 | 11.8 (11.8) | 0.01 | 1x |  |
    | 6 | Gram K=64 (pays) | 0.905 | 0.833 | 0.848 | 0.848 | 0.6 (0.7) | 0.04 | 69x | PASS/FAIL/- |
    |  | SketchScorer K=4096 (old) | 0.981 | 0.967 | 0.967 | 0.967 | 1.8 (4.7) | 0.04 | 23x |  |
    |  | GTG-Shapley | 0.981 | 0.967 | 0.967 | 0.967 | 39.2 (39.2) | 0.04 | 1x |  |
    | 8 | Gram K=64 (pays) | 0.503 | 0.905 | 0.926 | 0.926 | 0.7 (0.8) | 0.16 | 236x | FAIL/PASS/PASS |
    |  | SketchScorer K=4096 (old) | 0.559 | 0.981 | 0.981 | 0.981 | 6.3 (5.3) | 0.16 | 26x |  |
    |  | GTG-Shapley | 0.992 | 1.000 | 1.000 | 1.000 | 114.9 (114.9) | 0.16 | 1x |  |
    | 10 | Gram K=64 (pays) | 0.610 | 0.905 | 0.925 | 0.910 | 0.8 (5.2) | 0.63 | 814x | FAIL/PASS/PASS |
    |  | SketchScorer K=4096 (old) | 0.626 | 0.929 | 0.941 | 0.933 | 6.3 (6.0) | 0.63 | 100x |  |
    |  | GTG-Shapley | 0.972 | 0.952 | 0.965 | 0.957 | 241.8 (241.8) | 0.63 | 3x |  |

    PASS (unflagged trainers, restricted game): Gram K=64 (pays) Spearman >= 0.9 vs exact Shapley at
      <= 1/50 of its cost (all N trainers); rho 0.926 / 0.925, cost ratio 236x / 814x at N = 8 / 10
    FAIL (all trainers): ... rho 0.877 / 0.905 / 0.503 / 0.610 at N = 4 / 6 / 8 / 10; fails at N = 4, 8, 10
    FAIL (honest trainers only): ... rho 0.833 / 0.833 / 0.905 / 0.905; fails at N = 4, 6

Reading it: **the target is met** at N = 8 and 10 on the mean over the 3 seeds (0.926, 0.925), at
1/236 and 1/814 of exact Shapley's cost (first, cold calls: 1/194 and 1/122). Earlier runs timed a
single cold call per seed and got 1/52-1/89 at N = 8 and 1/158-1/455 at N = 10 at loads 3-11: the
ratio moves with load and with how the few-ms call is timed, and the 1/50 bound held in every run
from N = 8 on. It is met on the mean, not in every seed: per seed 0.893 / 0.943 / 0.943 (N = 8) and
0.857 / 0.952 / 0.967 (N = 10). Over 10 seeds (``--seeds 10``, same load) the means are 0.936 and 0.940
(PASS, ratios 232x and 812x; the old SketchScorer 0.970 / 0.954, GTG-Shapley 0.993 / 0.976), and 3 of
10 seeds fall below 0.9 at N = 8 (seeds 0, 3, 5: 0.893, 0.857, 0.829) and 1 of 10 at N = 10 (seed 0:
0.857). Every such miss is a swap among honest trainers with close Shapley values, none an attacker:
the sign-flipper the rule leaves unflagged in some seeds (N = 8 seeds 0, 3, 7, 8; N = 10 seeds 2-5,
7-9) is paid 0 by the leave-one-out gate and has the lowest restricted Shapley value, so it ranks last
in both. The swaps come from what the score measures, direction times a clipped size factor: at N = 8
seed 3 the trainer with 80 % label noise (norm 0.84, cosine 0.50 to the inliers' mean direction) is
paid 0.157, more than the one with 64 % noise (norm 0.75, cosine 0.56, paid 0.094) and about as much
as the one with 48 % (0.141), while its Shapley value is the lowest of the honest (-0.019 against
+0.006 and +0.015); at seed 0 the 16 %-noise trainer's update points further from the consensus
(cosine 0.64) than the 32 % one's (0.82) and is paid less (0.157 vs 0.210) though it lowers the
validation loss more (Shapley 0.056 vs 0.034). With 6-8 ranked trainers one adjacent swap costs
0.04-0.06 of Spearman and two cost ~0.1, so the per-seed figure sits near the bound. Restricting the
game barely moves the values here (0.926 / 0.910 against the full game's values): the flagged
trainers are a noise attacker, whose update averages out, and sometimes a sign-flipper. The earlier
measures stay as they were: over all trainers the target fails (the flagged noise attacker has a
positive full-game value), over the honest trainers it passes at N = 8 and 10. At N <= 6 exact
Shapley costs only 10-50 ms on this MLP, so 1/50 of it is about a millisecond, close to one
``run_round``; N = 4 and 6 are shown but not judged by the new target. The old SketchScorer ranks a
little better (it pays magnitude, not direction times a clipped size factor) but is not what the
circuit proves.

CountSketch to K = 4096, one float32 row (ms; same run, load ~10):

    | D | hash gen + sketch | cached sketch | hash memory MB |
    |---:|---:|---:|---:|
    | 1e4 | 0.6 | 0.0 | 0 |
    | 1e5 | 13.6 | 2.6 | 1 |
    | 1e6 | 109.4 | 14.5 | 8 |
    | 1e7 | 984.1 | 124.3 | 80 |

Detection (SketchScorer, attackers caught / honest false positives; "directions" = unit sketches; same
run, unchanged from the previous one):

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
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from marketplace.demo.attacks import Attack
from marketplace.fl.data import LocalData, load_npz, partition_digits
from marketplace.fl.models import StateDict, build_model
from marketplace.protocol.sketch import sketch, sketch_params
from marketplace.rule.gram import shares
from marketplace.rule.scorer import GramScorer
from research.baselines import SketchScorer, exact_shapley, gtg_shapley, spearman
from research.baselines.contribution import Utility
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
TARGET_SIZES = (8, 10)
"""The trainer counts the target on the unflagged trainers is judged at."""
RANKINGS = ("all", "honest", "unflagged", "unflagged_full")
WHO = {
    "all": "all trainers",
    "honest": "honest trainers only",
    "unflagged": "unflagged trainers, restricted game",
    "unflagged_full": "unflagged trainers, full game",
}
FIDELITY_JSON = Path("reports/fidelity.json")
CHEAP_REPEATS = 5
"""The scorers' cost is the median of this many ``run_round`` calls: one call takes a few ms, so a single
preemption on a loaded machine would otherwise set it (exact Shapley and GTG-Shapley run once)."""


@dataclass
class Fidelity:
    """One estimator at one N, averaged over seeds.

    Three rankings per seed, each a Spearman correlation with an exact Shapley value: ``all`` and
    ``honest`` against the Shapley values of the game of all N trainers (over all of them, and over
    the honest ones); ``unflagged`` against the Shapley values of the game *restricted to the
    trainers the paying rule does not flag* (see :func:`restricted_shapley`), over those trainers.
    ``unflagged_full`` ranks the same trainers against their full-game values, for comparison.
    """

    n: int
    estimator: str
    rho_all: list[float] = field(default_factory=list)
    rho_honest: list[float] = field(default_factory=list)
    rho_unflagged: list[float] = field(default_factory=list)
    rho_unflagged_full: list[float] = field(default_factory=list)
    cost_s: list[float] = field(default_factory=list)
    """Per seed, the median wall time of the estimator's calls (see :func:`timed`)."""
    first_s: list[float] = field(default_factory=list)
    """Per seed, the wall time of its first call: cold, with the seed's one-time sketch hash draw."""
    exact_s: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Exact Shapley's wall-clock cost (all N trainers) over this estimator's (mean over seeds)."""
        return float(np.mean(self.exact_s) / np.mean(self.cost_s))

    def rho(self, over: str) -> float:
        """Mean over seeds of the Spearman ``over`` one of :data:`RANKINGS`."""
        return float(np.mean(getattr(self, f"rho_{over}")))

    def passes(self, over: str = "all") -> bool:
        return self.rho(over) >= TARGET_RHO and self.ratio >= TARGET_RATIO

    def as_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "estimator": self.estimator,
            **{f"rho_{over}": round(self.rho(over), 4) for over in RANKINGS},
            "cost_ms": round(1e3 * float(np.mean(self.cost_s)), 3),
            "first_call_ms": round(1e3 * float(np.mean(self.first_s)), 3),
            "cost_ratio_first_call": round(float(np.mean(self.exact_s) / np.mean(self.first_s)), 1),
            "exact_s": round(float(np.mean(self.exact_s)), 3),
            "cost_ratio": round(self.ratio, 1),
            **{f"per_seed_rho_{over}": [round(r, 4) for r in getattr(self, f"rho_{over}")] for over in RANKINGS},
            "meets_target": self.passes(),
            "meets_target_honest_only": self.passes("honest"),
            "meets_target_unflagged": self.passes("unflagged"),
        }


@dataclass
class SeedCase:
    """One seed at one N: who the paying rule flagged and the values behind the unflagged ranking."""

    n: int
    seed: int
    attackers: list[int]
    flagged: list[int]
    paid: list[float]
    shapley_all: list[float]
    shapley_unflagged: list[float]
    """Exact Shapley values in the game restricted to the unflagged trainers, in their order."""
    rho_unflagged: float

    def as_dict(self) -> dict[str, object]:
        r4 = lambda xs: [round(float(x), 4) for x in xs]  # noqa: E731
        return {
            "n": self.n,
            "seed": self.seed,
            "attackers": self.attackers,
            "flagged": self.flagged,
            "paid": r4(self.paid),
            "shapley_all": [round(float(x), 5) for x in self.shapley_all],
            "shapley_unflagged": [round(float(x), 5) for x in self.shapley_unflagged],
            "rho_unflagged": round(self.rho_unflagged, 4),
        }


def gram_round(updates: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The paying score and the rule's flags: shares of GramScorer's integer scores (what the circuit
    proves and the chain pays)."""
    res = GramScorer(sketch_dim=GRAM_K, seed=seed, weighting="equal").run_round(updates)
    paid = shares(res.details["int_scores"])
    assert np.allclose(paid, res.scores), "GramScorer.run_round scores are the shares of its integer scores"
    return paid, np.asarray(res.flags, dtype=bool)


def estimate(
    name: str, updates: np.ndarray, num_samples: np.ndarray, state: StateDict, val: LocalData, seed: int
) -> np.ndarray:
    """One estimator's values for the round's trainers (GTG-Shapley on a fresh, un-memoised utility, so that
    its cost is its own)."""
    if name == PAYING:
        return gram_round(updates, seed)[0]
    if name == OLD:
        return SketchScorer().run_round(updates, num_samples=num_samples).scores
    return gtg_shapley(fedavg_utility("mlp", state, updates, val.x, val.y), len(updates), seed=seed)


def timed(run: Callable[[], np.ndarray], repeats: int) -> tuple[np.ndarray, float, float]:
    """``run()``'s result, its median wall time over ``repeats`` calls (each returns the same result) and the
    first call's."""
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - t0)
    assert result is not None
    return result, float(np.median(times)), times[0]


def restricted_shapley(utility: Utility, members: list[int]) -> np.ndarray:
    """Exact Shapley values of ``members`` in the game restricted to them: ``v_U(S) = v(S)`` for
    ``S`` a subset of ``U = members`` (the coalitions of those trainers only), in ``members``' order.

    With ``fedavg_utility``'s memoised utility, after :func:`exact_shapley` over all N every subset
    is already evaluated, so this costs no model evaluation."""
    return exact_shapley(lambda sub: utility(frozenset(members[i] for i in sub)), len(members))


def fidelity(sizes: list[int], seeds: list[int]) -> tuple[list[Fidelity], dict[int, str], list[SeedCase]]:
    """Spearman vs exact Shapley and cost of: the paying Gram score, the old SketchScorer, GTG-Shapley.

    Every estimator's ``unflagged`` ranking is over the trainers the *paying rule* leaves unflagged."""
    results: list[Fidelity] = []
    attackers_of: dict[int, str] = {}
    cases: list[SeedCase] = []
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
            utility = fedavg_utility("mlp", state, ru.updates, val.x, val.y)
            phi = exact_shapley(utility, n)
            exact_s = time.perf_counter() - t0
            flags = gram_round(ru.updates, seed)[1]
            sketch_params.cache_clear()  # each estimator's first call draws its hashes, as before this call
            unflagged = np.flatnonzero(~flags).tolist()
            phi_u = restricted_shapley(utility, unflagged)
            for name in ESTIMATORS:
                repeats = 1 if name == GTG else CHEAP_REPEATS
                est, cost, first = timed(partial(estimate, name, ru.updates, ru.num_samples, state, val, seed), repeats)
                r = rows[name]
                r.rho_all.append(spearman(est, phi))
                r.rho_honest.append(spearman(est[:n_hon], phi[:n_hon]))
                r.rho_unflagged.append(spearman(est[unflagged], phi_u))
                r.rho_unflagged_full.append(spearman(est[unflagged], phi[unflagged]))
                r.cost_s.append(cost)
                r.first_s.append(first)
                r.exact_s.append(exact_s)
                if name == PAYING:
                    cases.append(
                        SeedCase(n, seed, sorted(attacks), np.flatnonzero(flags).tolist(), est.tolist(),
                                 phi.tolist(), phi_u.tolist(), r.rho_unflagged[-1])
                    )  # fmt: skip
        results += rows.values()
    return results, attackers_of, cases


def shapley_table(results: list[Fidelity], attackers_of: dict[int, str]) -> Table:
    t = Table(title="contribution fidelity vs exact Shapley (utility = -val loss; mean over seeds)")
    cols = ["N", "attackers", "estimator", "rho all", "rho honest", "rho unflagged", "unflagged full game"]
    for col in [*cols, "cost ms (1st call)", "exact s", "cost ratio", "target all / honest / unflagged"]:
        t.add_column(col, justify="right")
    for i, r in enumerate(results):
        first = i == 0 or results[i - 1].n != r.n
        if first and i:
            t.add_section()
        t.add_row(
            str(r.n) if first else "",
            attackers_of[r.n] if first else "",
            r.estimator,
            *(f"{r.rho(over):.3f}" for over in RANKINGS),
            f"{1e3 * np.mean(r.cost_s):.1f} ({1e3 * np.mean(r.first_s):.1f})",
            f"{np.mean(r.exact_s):.2f}",
            f"{r.ratio:,.0f}x",
            marks(r, rich=True),
        )
    return t


def marks(r: Fidelity, rich: bool = False) -> str:
    """PASS/FAIL of the paying score's row on all / honest / unflagged trainers ("-": N not judged)."""
    if r.estimator != PAYING:
        return ""
    out = []
    for over in ("all", "honest", "unflagged"):
        if over == "unflagged" and r.n not in TARGET_SIZES:
            out.append("-")
            continue
        ok = r.passes(over)
        word = "PASS" if ok else "FAIL"
        out.append(f"[{'green' if ok else 'red'}]{word}[/]" if rich else word)
    return " / ".join(out)


def markdown(results: list[Fidelity]) -> str:
    """The docstring's table: Spearman over all / honest / unflagged (restricted game) / unflagged (full game)
    trainers, costs, and the paying row's PASS/FAIL on all / honest / unflagged trainers (the attackers at
    each N are in the printed table)."""
    head = ["N", "estimator", "rho all", "honest", "unflagged", "unfl. full", "cost ms (1st)", "exact s", "ratio",
            "target a/h/u"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|---:|---|" + "---:|" * 7 + "---|"]
    for i, r in enumerate(results):
        first = i == 0 or results[i - 1].n != r.n
        cells = [str(r.n) if first else "", r.estimator]
        cells += [f"{r.rho(over):.3f}" for over in RANKINGS]
        cells += [f"{1e3 * np.mean(r.cost_s):.1f} ({1e3 * np.mean(r.first_s):.1f})", f"{np.mean(r.exact_s):.2f}"]
        cells.append(f"{r.ratio:,.0f}x")
        cells.append(marks(r).replace(" / ", "/"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(results: list[Fidelity], over: str = "all") -> tuple[bool, str]:
    """The issue's target for the paying score: Spearman ``over`` all trainers or the honest ones at every
    N measured (N <= 10), or over the unflagged trainers (restricted game) at N in :data:`TARGET_SIZES`."""
    paying = [r for r in results if r.estimator == PAYING and (over != "unflagged" or r.n in TARGET_SIZES)]
    if not paying:
        return False, f"FAIL ({WHO[over]}): no N measured among {TARGET_SIZES}"
    failing = [r.n for r in paying if not r.passes(over)]
    ok = not failing
    line = (
        f"{'PASS' if ok else 'FAIL'} ({WHO[over]}): {PAYING} Spearman >= {TARGET_RHO} vs exact Shapley at <= 1/"
        f"{TARGET_RATIO:.0f} of its cost (all N trainers); rho {' / '.join(f'{r.rho(over):.3f}' for r in paying)}, "
        f"cost ratio {' / '.join(f'{r.ratio:,.0f}x' for r in paying)} at N = {' / '.join(str(r.n) for r in paying)}"
        + (f"; fails at N = {', '.join(map(str, failing))}" if failing else "")
    )
    return ok, line


def write_fidelity(
    results: list[Fidelity], attackers_of: dict[int, str], cases: list[SeedCase], seeds: list[int], out: Path
) -> None:
    verdicts = {over: verdict(results, over) for over in ("all", "honest", "unflagged")}
    report = {
        "target": {
            "spearman_min": TARGET_RHO,
            "cost_ratio_min": TARGET_RATIO,
            "unflagged_sizes": list(TARGET_SIZES),
            "pass": verdicts["all"][0],
            "verdict": verdicts["all"][1],
            "pass_honest_only": verdicts["honest"][0],
            "verdict_honest_only": verdicts["honest"][1],
            "pass_unflagged": verdicts["unflagged"][0],
            "verdict_unflagged": verdicts["unflagged"][1],
        },
        "setup": {
            "case": "label noise 0..80% on honest trainers, ~25% attackers, mlp on digits, 2 epochs, lr 0.5",
            "utility": "-validation loss of global + FedAvg(subset)",
            "unflagged": "Shapley values of the game restricted to the trainers GramScorer does not flag "
            "(v(S) for S within them only), ranked over those trainers",
            "seeds": seeds,
            "paying": f"GramScorer(sketch_dim={GRAM_K}, seed=seed, weighting='equal'), shares of int_scores",
            "old": "SketchScorer() (K=4096, median-distance flags, projection score)",
            "cost": "wall clock of run_round (sketch + flags + scores + FedAvg; median of "
            f"{CHEAP_REPEATS} calls, the first one, cold, apart) vs exact Shapley over all N trainers (2^N utilities,"
            " one call); proving is not included (see bench.zk)",
        },
        "attackers": {str(n): a for n, a in attackers_of.items()},
        "rows": [r.as_dict() for r in results],
        "cases": [c.as_dict() for c in cases],
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
    parser.add_argument("--seeds", type=int, help="seeds 0..SEEDS-1 for the fidelity table (default 3, quick 1)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # shared 2-core machine: single-threaded exact Shapley and scorers
    quick = args.quick
    console = Console(width=160)
    console.print(sketch_table([10**4, 10**5, 10**6] if quick else [10**4, 10**5, 10**6, 10**7]))
    sizes, seeds = ([4, 6, 8], [0]) if quick else ([4, 6, 8, 10], [0, 1, 2])
    if args.seeds:
        seeds = list(range(args.seeds))
    results, attackers_of, cases = fidelity(sizes, seeds)
    console.print(shapley_table(results, attackers_of))
    console.print(markdown(results), soft_wrap=True, markup=False)
    for over in ("all", "honest", "unflagged"):
        ok, line = verdict(results, over)
        console.print(f"[bold {'green' if ok else 'red'}]{line}[/]")
    for c in cases:
        if c.n in TARGET_SIZES and not c.rho_unflagged >= TARGET_RHO:
            console.print(f"N = {c.n} seed {c.seed}: rho unflagged {c.rho_unflagged:.3f}, flagged {c.flagged} "
                          f"(attackers {c.attackers})")  # fmt: skip
    write_fidelity(results, attackers_of, cases, seeds, args.out)
    console.print(f"wrote {args.out}")
    console.print(detection_table())


if __name__ == "__main__":
    main()
