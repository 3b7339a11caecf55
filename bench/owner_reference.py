"""An owner's adversarial reference row and the pay it moves (bench/robustness.py's owner scenario).

The reference-aware rule (:func:`marketplace.rule.gram.gram_rule_ref_int`) lets the owner commit a row of its
own. A malicious owner knows every trainer's row before choosing it (worst case) and wants pay moved from
honest trainers to its colluders: :func:`adversarial_reference` searches a family of rows for the one that
gives the colluders the largest share (then takes the most from the others), and :func:`pay_moved` measures
what any reference did to a round's shares against the rule without it.

The family: for each set ``E`` made of the ``j`` best-paid trainers the rule lets a reference unpay
(paid today, ``m_i < M``, not colluders; ``j`` from all of them down to none), the minimum-norm direction
``d`` with ``<v_i, d> = -1`` on ``E`` and ``+1`` on every other valid slot (exact when the valid rows are
linearly independent, as N <= K rows generically are), blended with the trainers' mean direction ``c``
(``t d / |d| + (1 - t) c``, ``t`` in 0, 0.1, ..., 1: a larger ``t`` unpays more, a smaller one keeps the
reference close enough to the trainers to pass its checks). It is a search, not a proof of optimality:
the bound the rule promises is :attr:`PayMoved.bound`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from marketplace.protocol.commitment import committed_row, quantize
from marketplace.rule.gram import GramConfig, GramResult, gram_rule_int, gram_rule_ref_int, shares


@dataclass(frozen=True)
class PayMoved:
    """What a reference did to one round's pay, in shares of the round's budget (0..1)."""

    honest_lost: float
    """sum over the non-colluders of the share they lost (``max(0, before - after)``)."""
    colluder_gain: float
    """the colluders' share after minus before."""
    colluder_before: float
    """the colluders' share without the reference."""
    owner_kept: bool
    """the rule without the reference paid someone and the reference paid nobody (budget back to the owner)."""
    bound: float
    """the rule's bound on ``honest_lost`` by unpaying: the share of the non-colluders paid without the
    reference whose median cosine to the others is below the median (``m_i < M``)."""


def pay_moved(res: GramResult, colluders: np.ndarray) -> PayMoved:
    """``res``: a result of :func:`gram_rule_ref_int` given a reference (its ``base_scores`` statistic is the
    rule without it); ``colluders``: bool mask of the trainers on the owner's side."""
    col = np.asarray(colluders, dtype=bool)
    before, after = shares(res.stats["base_scores"]), shares(res.scores)
    below = (np.asarray(res.stats["base_scores"]) > 0) & (res.med_cos < res.stats["M"]) & ~col
    return PayMoved(
        honest_lost=float(np.maximum(before - after, 0.0)[~col].sum()),
        colluder_gain=float((after - before)[col].sum()),
        colluder_before=float(before[col].sum()),
        owner_kept=bool(before.sum() > 0 and after.sum() == 0),
        bound=float(before[below].sum()),
    )


def adversarial_reference(rows: np.ndarray, colluders: np.ndarray, cfg: GramConfig | None = None) -> np.ndarray:
    """The committed reference row (K + 2) of the family (module doc) that gives the ``colluders`` (bool mask)
    the largest share of ``rows``' round (sanitised committed rows, slot order), ties broken by the honest
    share lost."""
    cfg = cfg or GramConfig()
    rows_q = quantize(rows)
    base = gram_rule_int(rows_q, cfg)
    col = np.asarray(colluders, dtype=bool)
    k = rows.shape[1] - 2
    v = np.asarray(rows, dtype=np.float64)[:, :k]
    valid = base.valid
    if not valid.any():
        return committed_row(np.eye(k)[0])
    excludable = np.flatnonzero((base.scores > 0) & (base.med_cos < base.stats["M"]) & ~col)
    targets = excludable[np.argsort(-base.scores[excludable], kind="stable")]
    centre = v[valid].sum(axis=0)
    centre = centre / np.linalg.norm(centre) if np.linalg.norm(centre) > 0 else np.eye(k)[0]
    best: tuple[tuple[float, float], np.ndarray] | None = None
    for j in range(len(targets), -1, -1):
        y = np.ones(int(valid.sum()))
        y[np.isin(np.flatnonzero(valid), targets[:j])] = -1.0
        d = np.linalg.pinv(v[valid]) @ y
        d = d / np.linalg.norm(d) if np.linalg.norm(d) > 0 else centre
        for t in np.linspace(0.0, 1.0, 11):
            r = t * d + (1.0 - t) * centre
            if np.linalg.norm(r) == 0:
                continue
            row = committed_row(r / np.linalg.norm(r))
            moved = pay_moved(gram_rule_ref_int(rows_q, quantize(row), cfg), col)
            value = (moved.colluder_gain, moved.honest_lost)
            if best is None or value > best[0]:
                best = (value, row)
    assert best is not None  # j = 0, t = 0 is always tried
    return best[1]


def colluder_mask(n: int, colluders: Sequence[int]) -> np.ndarray:
    """Bool mask (n,) of the ``colluders``' indices."""
    mask = np.zeros(n, dtype=bool)
    mask[list(colluders)] = True
    return mask
