"""Benchmarks for the pure scoring core; prints tables.

1. Cheap paying score vs exact Shapley (Spearman, wall-clock cost ratio) for N = 4..10
   trainers on the label-noise case (honest noise rates 0..80 %, ~25 % attackers).
   Note: one-round Shapley on validation loss gives the ``gaussian`` attacker (honest update
   + 3x-rms noise) a *positive* value - isotropic noise barely moves the loss after
   averaging - while the scorer flags it; that alone drags "rho all" down for N >= 8.
2. Attack detection at 25 % malicious (8 trainers), IID and Dirichlet(0.5) shards.
3. CountSketch time for D = 1e4 .. 1e7.

Run: ``.venv/bin/python bench/scoring.py [--quick]``
"""

from __future__ import annotations

import sys
import tempfile
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from marketplace.fl.attacks import Attack
from marketplace.fl.data import load_npz, partition_digits
from marketplace.fl.models import build_model
from marketplace.fl.scenarios import label_noise_shards
from marketplace.fl.simulate import collect_updates, run_rounds
from marketplace.fl.utility import fedavg_utility
from marketplace.scoring import SketchScorer, exact_shapley, gtg_shapley, sketch, sketch_params, spearman

ATTACK_CYCLE = ["sign_flip", "gaussian", "free_rider_zero"]


def shapley_table(sizes: list[int], seeds: list[int]) -> Table:
    t = Table(title="cheap score vs exact Shapley (utility = -val loss; mean over seeds)")
    for col in ["N", "attackers", "rho all", "rho honest", "rho GTG", "cheap ms", "exact s", "cost ratio"]:
        t.add_column(col, justify="right")
    for n in sizes:
        n_att = max(1, n // 4)
        n_hon = n - n_att
        attacks = {n_hon + k: ATTACK_CYCLE[k % len(ATTACK_CYCLE)] for k in range(n_att)}
        noise = [*np.linspace(0.0, 0.8, n_hon).tolist(), *[0.0] * n_att]
        rho_all, rho_hon, rho_gtg, t_cheap, t_exact = [], [], [], [], []
        for seed in seeds:
            shards, val = label_noise_shards(noise, shard_size=140, seed=seed)
            state = build_model("mlp", seed).state_dict()
            ru = collect_updates("mlp", state, shards, attacks, epochs=2, lr=0.5, seed=seed)
            t0 = time.perf_counter()
            res = SketchScorer().run_round(ru.updates, num_samples=ru.num_samples)
            t_cheap.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            utility = fedavg_utility("mlp", state, ru.updates, val.x, val.y)
            phi = exact_shapley(utility, n)
            t_exact.append(time.perf_counter() - t0)
            rho_all.append(spearman(res.scores, phi))
            rho_hon.append(spearman(res.scores[:n_hon], phi[:n_hon]))
            rho_gtg.append(spearman(gtg_shapley(utility, n, seed=seed), phi))
        t.add_row(
            str(n),
            ",".join(attacks.values()),
            f"{np.mean(rho_all):.3f}",
            f"{np.mean(rho_hon):.3f}",
            f"{np.mean(rho_gtg):.3f}",
            f"{1e3 * np.mean(t_cheap):.1f}",
            f"{np.mean(t_exact):.2f}",
            f"{np.mean(t_exact) / np.mean(t_cheap):,.0f}x",
        )
    return t


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
    quick = "--quick" in sys.argv
    console = Console(width=160)
    console.print(sketch_table([10**4, 10**5, 10**6] if quick else [10**4, 10**5, 10**6, 10**7]))
    console.print(shapley_table([4, 6, 8] if quick else [4, 6, 8, 10], [0] if quick else [0, 1, 2]))
    console.print(detection_table())


if __name__ == "__main__":
    main()
