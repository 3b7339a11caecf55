"""Variants of the owner-reference rule compared in docs/design/robust-reference.md (section 2).

Each variant decides who is paid (and so averaged into the model) from the trainers' committed rows, the
rule's integer result and the owner's reference row; the trajectory follows that variant (sketch 64, the
bench's task: digits ``mlp``, 10 trainers, 2 local epochs of SGD at lr 0.5, batch 32). Real arithmetic
on the committed rows; only the paid set matters for accuracy (FedAvg of the paid updates, equal weights).

Variants (``g``: cosine to the reference, ``m``/``M``: median cosine to the others / its median,
``paid0``: paid by the rule, ``unfl``: not flagged, ``total``: sum of cosines to the unflagged):

* ``rule``: the rule without reference; ``oracle``: the honest trainers;
* ``exclude``: ``paid0`` minus (``g <= 0`` and ``m < M``);
* ``decide``: unflagged, ``g > 0`` and a positive sum over that set;
* ``resum``: kept = unflagged and (``g > 0`` or (``paid0`` and ``m >= M``)), positive sum over the kept set;
* ``add_total``: kept as ``resum``, positive ``total`` (a first version of the chosen rule);
* ``chosen``: the rule of ``gram_rule_ref_int``: ``paid0`` and (``g > 0`` or ``m >= M``), or not ``paid0``,
  unflagged, ``g > 0`` and a positive sum of cosines to the unflagged trainers with ``g > 0``;
* ``add_above``: as ``chosen`` but a trainer the rule does not pay is added only if ``m >= M``;
* ``half``: as ``chosen`` with ``g > m_r / 2`` for ``g > 0``.

Run: ``python -m research.reference_variants dirichlet sign_flip 0.4 --rounds 5 --seeds 0 1 2 3 4``.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from marketplace.demo.attacks import Attack
from marketplace.fl.data import TEST_FILE, VALIDATION_FILE, load_npz, partition_digits
from marketplace.fl.models import build_model, state_to_vector, vector_to_state
from marketplace.fl.train import evaluate, train_local
from marketplace.protocol.commitment import committed_rows, quantize
from marketplace.protocol.constants import SCALE
from marketplace.protocol.sketch import sketch_rows
from marketplace.rule.aggregate import fedavg
from marketplace.rule.gram import gram_rule_int
from research.simulate import apply_update, collect_updates

VARIANTS = ("rule", "oracle", "exclude", "decide", "resum", "add_total", "chosen", "add_above", "half")


def paid_set(variant: str, rows: np.ndarray, ref: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Who ``variant`` pays, from the committed ``rows`` (N, K + 2) and reference row ``ref`` (K + 2)."""
    if variant == "oracle":
        return ~bad
    res = gram_rule_int(quantize(rows))
    paid0 = res.scores > 0
    k = rows.shape[1] - 2
    v = rows[:, :k]
    gram, g, unfl = v @ v.T, v @ ref[:k], ~res.flags
    m, big_m = res.med_cos / 2.0**SCALE, float(res.stats["M"]) / 2.0**SCALE
    m_r = float(np.median(g[res.valid])) if res.valid.any() else 0.0
    if variant == "rule" or m_r <= 0:
        return paid0
    if variant == "exclude":
        out = paid0 & ~((g <= 0) & (m < big_m))
    elif variant == "decide":
        gate = unfl & (g > 0)
        out = gate & (gram @ gate > 0)
    elif variant == "resum":
        gate = unfl & ((g > 0) | ((m >= big_m) & paid0))
        out = gate & (gram @ gate > 0)
    elif variant == "add_total":
        gate = unfl & ((g > 0) | ((m >= big_m) & paid0))
        out = gate & (gram @ unfl > 0)
    else:
        agree = unfl & (g > (m_r / 2 if variant == "half" else 0.0))
        add = ~paid0 & agree & (gram @ agree > 0)
        out = (paid0 & ((g > 0) | (m >= big_m))) | (add & (m >= big_m) if variant == "add_above" else add)
    return out if out.any() else paid0


def run(
    partition: str, attack: Attack, fraction: float, rounds: int, seeds: Sequence[int], variants: Sequence[str]
) -> dict[str, float]:
    """Mean final test accuracy per variant."""
    torch.set_num_threads(1)
    acc: dict[str, list[float]] = {name: [] for name in variants}
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            paths = partition_digits(10, partition, alpha=0.5, seed=seed, out_dir=tmp)
            shards = [load_npz(p) for p in paths]
            validation, test = load_npz(Path(tmp) / VALIDATION_FILE), load_npz(Path(tmp) / TEST_FILE)
        attackers = {9 - j: attack for j in range(round(fraction * 10))}
        bad = np.isin(np.arange(10), list(attackers))
        for name in variants:
            state = state_to_vector(build_model("mlp", seed).state_dict())
            for r in range(rounds):
                start = vector_to_state(state, "mlp")
                ru = collect_updates("mlp", start, shards, attackers, 2, 0.5, 32, seed=seed * 1000 + r)
                ref = state_to_vector(train_local("mlp", start, validation, 2, 0.5, 32, seed=seed * 1000 + r + 777))
                rows = committed_rows(sketch_rows(np.vstack([ru.updates, ref[None]]), 64, seed))
                paid = paid_set(name, rows[:10], rows[10], bad)
                state = apply_update(state, fedavg(ru.updates, np.ones(10, bool), ~paid))
            acc[name].append(evaluate("mlp", vector_to_state(state, "mlp"), test.x, test.y)[1])
    return {name: float(np.mean(a)) for name, a in acc.items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("partition", choices=["iid", "dirichlet"])
    parser.add_argument("attack", choices=[a.value for a in Attack])
    parser.add_argument("fraction", type=float)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    args = parser.parse_args(argv)
    means = run(args.partition, Attack(args.attack), args.fraction, args.rounds, args.seeds, args.variants)
    print(" ".join(f"{name}={100 * a:.1f}" for name, a in means.items()))


if __name__ == "__main__":
    main()
