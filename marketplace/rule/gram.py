"""The Gram-matrix paying rule: flags and scores from unit-normalised sketches.

This is the rule the zk circuit (:mod:`marketplace.rule.circuit`) proves; :func:`gram_rule_int` is its
exact quantized form and is what :class:`~marketplace.rule.scorer.GramScorer` pays with, so the aggregator's numbers and
the proof's public outputs are the same integers.

Input
-----
The rule reads the committed rows ``(v_i, l_i, a_i)`` of :mod:`marketplace.protocol.commitment`
(sanitised: rows outside the box are the zero row), slots in arrival order
(:mod:`marketplace.protocol.ordering`).

Rule (over the slots in submission order; ``[.]`` is 0/1)
-------------------------------------------------------
::

    G_ij  = <v_i, v_j>,  q_i = G_ii
    P_i   = a_i [|q_i - 1| <= UNIT_TOL]                     valid slots (unit norm)
    m_i   = median{G_ij : j in P, j != i}                   typical cosine to the others
    M     = median{m_i : i in P},  lam = median{l_i : i in P}
    far_i   = 1 - m_i > T (1 - M)                            (= m_i + (T - 1) < T M)
    lazy_i  = l_i < lam - log2(10)                          norm below 1/10 of the median norm
    boost_i = l_i > lam + B                                 norm above 2**B times the median
    dup_i   = exists j in P, j < i: q_i + q_j - 2 G_ij <= DUP   (a later near-copy of j)
    flag_i  = a_i and (not P_i or (|P| >= 3 and (far_i or lazy_i or boost_i or dup_i)))
    w_i     = a_i and not flag_i                             inliers
    agree_i = sum_{j != i} w_j G_ij > 0  or  m_i > 0        agrees with the other inliers on net
                                                             (a lone inlier: with itself) or with
                                                             most of the others
    c_i     = w_i agree_i sum_j w_j G_ij                     = |I| <v_i, g>, g = mean inlier unit vector
    p_i     = c_i f(l_i - lam)                               f ~ 2**x (see below)
    share_i = p_i / sum_j p_j

The ``agree`` gate is leave-one-out: an inlier is paid only if it agrees with the *other* inliers on
net, so an update that the ``far`` test lets through but that points against the others (a sign-flipper
once honest updates decorrelate late in training, when ``far`` no longer separates it) scores 0, and the
model's step (:meth:`GramScorer.run_round`, ``score_round``) takes the paid updates (score > 0) and,
clipped, only the unpaid ones that agree with them
(:func:`~marketplace.rule.aggregate.agreeing_clipped_mean`), which such a flipper does not. Without the
gate, each inlier's own ``G_ii = 1`` counted: four sign-flippers among six honest trainers with typical
cosine ``M < 1/3`` were paid and averaged in (IID, 15 rounds: 90.0 % accuracy against 93.7 % for
honest-only FedAvg). Paying the leave-one-out sum itself (no self term) ranked honest trainers worse
against exact Shapley (Spearman 0.77 against 0.94 in the label-noise test). The ``m_i > 0`` alternative
keeps one unflagged attacker from cancelling weakly agreeing honest trainers' sums (with the net test
alone, a sign-flipper among 3 honest trainers with 0-80 % label noise left nobody paid and the model
unchanged); ``m_i`` is a median, so a minority cannot push it.

``f`` interpolates ``2**x`` linearly between the integers -4..1 and is flat outside
(``f = 1/16`` below -4, ``2`` above 1): ``f(x) = 1/16 + sum_t s_t relu(x - t)`` with knots
``t = -4..1`` and slopes ``s = 1/16, 1/16, 1/8, 1/4, 1/2, -1``. An inlier's norm is between a
tenth and twice the median (the lazy/boost rules), so it is paid for its direction times its
relative size: direction-only scores ranked honest trainers with 0-80 % label noise against exact
Shapley at Spearman 0.54-0.94 (4 seeds), with the size factor 0.83-1.00.

``1 - G_ij = ||v_i - v_j||^2 / 2`` for unit vectors, so ``far`` says the median squared
distance to the others exceeds ``T`` times the typical one (T = 2.25 on squared distances is
1.5 on distances; 2.5 missed a sign-flipper among honest trainers with 0-80 % label noise, where
the typical cosine is only ~0.3, and 1.75-2.25 flag no honest trainer in the IID, Dirichlet(0.5)
and label-noise test rounds). Every statistic is a median over valid slots, so a minority cannot
move the yardsticks far. The score pays direction only: scaling an update changes ``l`` (and
may trip ``boost``/``lazy``) and the size factor ``f``, bounded by those rules.

Everything is a function of the Gram matrix plus N log-norms: no K-wide sorting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from marketplace.protocol.commitment import quantize
from marketplace.protocol.constants import SCALE


@dataclass(frozen=True)
class GramConfig:
    """Rule constants (all baked into the circuit's verifying key)."""

    threshold: float = 2.25
    """T: far if ``1 - m_i > T (1 - M)``."""
    lazy_log2: float = float(np.log2(10.0))
    """lazy if ``l_i < lam - lazy_log2`` (norm below a tenth of the median)."""
    boost_log2: float = 1.0
    """boosted if ``l_i > lam + boost_log2`` (norm above twice the median)."""
    dup_dist: float = 2.0**-6
    """duplicate if ``||v_i - v_j||^2 <= dup_dist`` (cosine above ~0.992)."""
    unit_tol: float = 2.0**-7
    """valid if ``|q_i - 1| <= unit_tol`` (snapping moves q by < 2**-10 for K <= 64)."""
    min_valid: int = 3
    earliest_wins: bool = True
    """duplicates: keep the earliest slot of a group (slots are in submission order)."""
    big: float = 4.0
    """Sort padding for excluded cosines (above every valid |G_ij| <= 1 + unit_tol)."""
    big_log: float = 64.0
    """Sort padding for excluded log-norms (above LOG_CLIP)."""


#: Knots and slopes of the piecewise-linear ``f(x) ~ 2**x`` of the size factor (module doc).
SIZE_KNOTS = (-4.0, -3.0, -2.0, -1.0, 0.0, 1.0)
SIZE_SLOPES = (1 / 16, 1 / 16, 1 / 8, 1 / 4, 1 / 2, -1.0)
SIZE_FLOOR = 1 / 16


def size_factor(x: np.ndarray) -> np.ndarray:
    """``f(x)``: ``2**x`` interpolated between the integers -4..1, flat outside (real arithmetic)."""
    r = np.maximum(np.asarray(x, dtype=np.float64)[..., None] - np.array(SIZE_KNOTS), 0.0)
    return SIZE_FLOOR + r @ np.array(SIZE_SLOPES)


# --------------------------------------------------------------------------- the rule (float)


def _masked_median(values: np.ndarray, mask: np.ndarray) -> float:
    return float(np.median(values[mask])) if mask.any() else 0.0


@dataclass(frozen=True)
class GramResult:
    """Flags, scores and the statistics behind them (float: real values; int: scale 2**13 integers)."""

    flags: np.ndarray
    scores: np.ndarray
    valid: np.ndarray
    med_cos: np.ndarray
    stats: dict[str, np.ndarray] = field(default_factory=dict)


def gram_rule_float(rows: np.ndarray, cfg: GramConfig | None = None) -> GramResult:
    """The rule in real arithmetic (documentation and cross-check; pay with :func:`gram_rule_int`)."""
    cfg = cfg or GramConfig()
    x = np.asarray(rows, dtype=np.float64)
    n, k = x.shape[0], x.shape[1] - 2
    v, lg, act = x[:, :k], x[:, k], x[:, k + 1] > 0.5
    gram = v @ v.T
    q = np.diag(gram).copy()
    valid = act & (np.abs(q - 1.0) <= cfg.unit_tol)
    m = np.zeros(n)
    for i in np.flatnonzero(valid):
        others = valid.copy()
        others[i] = False
        m[i] = _masked_median(gram[i], others)
    med_m, lam = _masked_median(m, valid), _masked_median(lg, valid)
    far = 1.0 - m > cfg.threshold * (1.0 - med_m)
    lazy = lg < lam - cfg.lazy_log2
    boost = lg > lam + cfg.boost_log2
    dist = q[:, None] + q[None, :] - 2.0 * gram
    earlier = np.tri(n, k=-1, dtype=bool) if cfg.earliest_wins else ~np.eye(n, dtype=bool)
    dup = ((dist <= cfg.dup_dist) & earlier & valid[None, :]).any(axis=1)
    enough = valid.sum() >= cfg.min_valid
    flags = act & (~valid | (enough & (far | lazy | boost | dup)))
    w = act & ~flags
    gv = np.where(np.outer(valid, valid), gram, 0.0)
    # agrees with the other inliers on net (a lone inlier: with itself), or with most of the others
    agree = (gv @ w - np.where(w.sum() >= 2, q, 0.0) > 0.0) | (m > 0.0)
    p = np.where(w & agree, np.maximum(gv @ w, 0.0), 0.0) * size_factor(lg - lam)
    return GramResult(flags, p, valid, m, {"M": np.array(med_m), "lam": np.array(lam), "q": q})


# --------------------------------------------------------------------------- the rule (exact integers)


def _rescale(v: np.ndarray | int, shift: int = SCALE) -> np.ndarray:
    """Divide integers by ``2**shift`` rounding half away from zero (ezkl's rescale)."""
    a = np.asarray(v, dtype=np.int64)
    d = 1 << shift
    return np.sign(a) * ((np.abs(a) + d // 2) // d)


def _c(value: float) -> int:
    """A constant as the circuit stores it (rounded at scale 13)."""
    return int(quantize(np.array([value]))[0])


def _median_int(values: np.ndarray, count: int) -> int:
    """``rescale(0.5 * 2**13 * (s[lo] + s[hi]))`` of the ascending ``values`` (the circuit's selection)."""
    if count <= 0:
        return 0
    s = np.sort(values)
    half = 1 << (SCALE - 1)
    return int(_rescale(half * int(s[(count - 1) // 2]) + half * int(s[count // 2])))


def gram_rule_int(rows_q: np.ndarray, cfg: GramConfig | None = None) -> GramResult:
    """The rule exactly as the circuit computes it, on integer rows at scale ``2**13``.

    ``rows_q = quantize(rows)`` of the (sanitised) committed rows. Products of two scale-13
    values are rescaled with round-half-away-from-zero (:func:`_rescale`); 0/1 masks multiply
    exactly; comparisons are exact. ``scores`` are the integers ``p_i`` at scale 13.
    """
    cfg = cfg or GramConfig()
    x = np.asarray(rows_q, dtype=np.int64)
    n, k = x.shape[0], x.shape[1] - 2
    one = 1 << SCALE
    v, lg, act = x[:, :k], x[:, k], x[:, k + 1] > one // 2
    gram = _rescale(v @ v.T)
    q = _rescale(np.einsum("ij,ij->i", v, v))
    valid = act & (q >= _c(1.0 - cfg.unit_tol)) & (q <= _c(1.0 + cfg.unit_tol))
    gm = np.where(np.outer(valid, valid), gram, 0)
    count = int(valid.sum())
    big = _c(cfg.big)
    y = gm + np.where(valid, 0, big)[:, None] + big * np.eye(n, dtype=np.int64)
    m = np.array([_median_int(y[:, i], count - 1) for i in range(n)], dtype=np.int64)
    med_m = _median_int(np.where(valid, m, m + big), count)
    lam = _median_int(np.where(valid, lg, lg + _c(cfg.big_log)), count)
    far = m + _c(cfg.threshold - 1.0) < _rescale(med_m * _c(cfg.threshold))
    lazy = lg < lam - _c(cfg.lazy_log2)
    boost = lg > lam + _c(cfg.boost_log2)
    dist = q[:, None] + q[None, :] - 2 * gm
    earlier = np.tri(n, k=-1, dtype=bool) if cfg.earliest_wins else ~np.eye(n, dtype=bool)
    dup = ((dist <= _c(cfg.dup_dist)) & earlier & valid[None, :]).any(axis=1)
    enough = count >= cfg.min_valid
    flags = act & (~valid | (enough & (far | lazy | boost | dup)))
    w = act & ~flags
    total = gm @ w.astype(np.int64)
    # agrees with the other inliers on net (a lone inlier: with itself), or with most of the others
    agree = (total - (q if w.sum() >= 2 else 0) > 0) | (m > 0)
    c = np.where(w & agree, np.maximum(total, 0), 0).astype(np.int64)
    knots = np.array([_c(t) for t in SIZE_KNOTS], dtype=np.int64)
    slopes = np.array([_c(t) for t in SIZE_SLOPES], dtype=np.int64)
    size = _c(SIZE_FLOOR) + _rescale(np.maximum((lg - lam)[:, None] - knots[None, :], 0) @ slopes)
    p = _rescale(c * size).astype(np.int64)
    stats = {"M": np.array(med_m), "lam": np.array(lam), "q": q, "size": size}
    stats.update(far=far, lazy=lazy, boost=boost, dup=dup)
    return GramResult(flags, p, valid, m, stats)


# --------------------------------------------------------------------------- the owner's reference row (optional)
#
# An extension of the rule above (docs/design/robust-reference.md), kept apart so that the rule itself is
# unchanged: with no reference, or a reference that does not pass its checks, the result is exactly
# :func:`gram_rule_int`'s. The reference ``(v_r, l_r, a_r)`` is a row committed like a trainer's (the owner's
# update on its validation data, from the round's global model, sketched with the project's sketch)::
#
#     g_i    = <v_i, v_r>                                   agreement with the reference
#     m_r    = median{g_j : j in P}                         the reference's typical cosine to the trainers
#     ok     = a_r and |q_r - 1| <= UNIT_TOL and |P| >= 3   a valid reference ...
#              and m_r > 0                                  ... agreeing with most trainers
#              and not (1 - m_r > T (1 - M))                ... and not "far" by the trainers' own yardstick
#     R_i    = w_i and g_i > 0                              the inliers agreeing with the reference
#     t_i    = sum_j R_j G_ij                               agreement with them (its own q_i included if in R)
#     keep_i = p_i > 0 and (g_i > 0 or m_i >= M)            paid today, and agrees with the reference or is at
#                                                           least as typical as the median trainer
#     add_i  = p_i = 0 and R_i and t_i > 0                  unpaid today, agrees with the reference and does
#                                                           not disagree with those that do
#     p'_i   = p_i if keep_i;  min(t_i, q_i) f(l_i - lam) if add_i;  0 otherwise
#     scores = p' if ok and sum_i p'_i > 0, else p          (the rule above)
#
# Flags are never changed, so the reference cannot get anyone slashed or recorded as flagged. A trainer paid
# both ways is paid the same integer. A trainer the reference leaves unpaid is a trainer paid today whose own
# median cosine to the others is below the median of those (``m_i < M``): at most half of the valid slots. A
# trainer it pays that today's rule does not is an unflagged slot paid at most ``q_i f(l_i - lam) <=
# 2 (1 + UNIT_TOL)``: what one trainer agreeing only with itself would score. A round today's rule pays
# stays paid (the fallback), so no budget goes back to the owner that today's rule would have paid out.


def gram_rule_ref_float(rows: np.ndarray, reference: np.ndarray | None, cfg: GramConfig | None = None) -> GramResult:
    """:func:`gram_rule_float` with the owner's reference row (real arithmetic; pay with :func:`gram_rule_ref_int`).

    ``reference``: the owner's committed row ``(v_r, l_r, a_r)`` (length K + 2), or ``None`` (no reference:
    the rule without it). Extra statistics: ``ref_ok`` (the reference decided the scores: it passed its
    checks and left someone paid), ``ref_cos`` (``g``), ``ref_med`` (``m_r``), ``ref_excluded`` /
    ``ref_included`` (paid by one rule and not the other) and ``base_scores`` (``p``).
    """
    cfg = cfg or GramConfig()
    base = gram_rule_float(rows, cfg)
    if reference is None:
        return base
    x = np.asarray(rows, dtype=np.float64)
    k = x.shape[1] - 2
    v, lg = x[:, :k], x[:, k]
    ref = np.asarray(reference, dtype=np.float64)
    v_r, a_r = ref[:k], bool(ref[k + 1] > 0.5)
    valid, m, q = base.valid, base.med_cos, base.stats["q"]
    med_m, lam = float(base.stats["M"]), float(base.stats["lam"])
    w = (x[:, k + 1] > 0.5) & ~base.flags
    g = v @ v_r
    agree_r = w & (g > 0.0)
    t = np.where(np.outer(valid, valid), v @ v.T, 0.0) @ agree_r
    added = np.minimum(t, q) * size_factor(lg - lam)
    m_r = _masked_median(g, valid)
    ok = (
        a_r
        and abs(float(v_r @ v_r) - 1.0) <= cfg.unit_tol
        and int(valid.sum()) >= cfg.min_valid
        and m_r > 0.0
        and not 1.0 - m_r > cfg.threshold * (1.0 - med_m)
    )
    paid = base.scores > 0
    keep = paid & ((g > 0.0) | (m >= med_m))
    add = ~paid & agree_r & (t > 0.0)
    return _with_reference(base, np.where(keep, base.scores, np.where(add, added, 0.0)), g, m_r, ok)


def gram_rule_ref_int(rows_q: np.ndarray, reference_q: np.ndarray | None, cfg: GramConfig | None = None) -> GramResult:
    """:func:`gram_rule_int` with the owner's reference row, exactly as a circuit would compute it.

    ``reference_q = quantize(reference)`` of the owner's sanitised committed row (length K + 2), or ``None``.
    Scale-13 integers throughout, products rescaled as in :func:`gram_rule_int`; the extra work is one Gram
    column (``g``), one median of the valid slots (``m_r``), one masked sum per slot (``t``), comparisons,
    a sum and selects. Flags, validity and medians are :func:`gram_rule_int`'s; ``scores`` differ from it
    only when the reference passes its checks.
    """
    cfg = cfg or GramConfig()
    base = gram_rule_int(rows_q, cfg)
    if reference_q is None:
        return base
    x = np.asarray(rows_q, dtype=np.int64)
    k = x.shape[1] - 2
    one = 1 << SCALE
    v, act = x[:, :k], x[:, k + 1] > one // 2
    ref = np.asarray(reference_q, dtype=np.int64)
    v_r, a_r = ref[:k], bool(ref[k + 1] > one // 2)
    valid, m, q, size = base.valid, base.med_cos, base.stats["q"], base.stats["size"]
    med_m = int(base.stats["M"])
    w = act & ~base.flags
    g = _rescale(v @ v_r).astype(np.int64)
    agree_r = w & (g > 0)
    t = np.where(np.outer(valid, valid), _rescale(v @ v.T), 0) @ agree_r.astype(np.int64)
    added = _rescale(np.minimum(t, q) * size).astype(np.int64)
    count = int(valid.sum())
    # invalid slots padded with BIG, above every valid g when v_r is a unit vector (m_r is read only then)
    m_r = _median_int(np.where(valid, g, _c(cfg.big)), count)
    q_r = int(_rescale(int(v_r @ v_r)))
    far_r = m_r + _c(cfg.threshold - 1.0) < int(_rescale(med_m * _c(cfg.threshold)))
    ok = a_r and _c(1.0 - cfg.unit_tol) <= q_r <= _c(1.0 + cfg.unit_tol) and count >= cfg.min_valid
    ok = ok and m_r > 0 and not far_r
    paid = base.scores > 0
    keep = paid & ((g > 0) | (m >= med_m))
    add = ~paid & agree_r & (t > 0)
    return _with_reference(base, np.where(keep, base.scores, np.where(add, added, 0)), g, m_r, ok)


def _with_reference(base: GramResult, scores: np.ndarray, ref_cos: np.ndarray, ref_med: float, ok: bool) -> GramResult:
    """The reference's ``scores`` if ``ok`` and some are positive, else ``base``'s (in ``base``'s dtype)."""
    scores = np.maximum(scores, 0).astype(base.scores.dtype)
    used = ok and bool((scores > 0).any())
    final = scores if used else base.scores
    stats = dict(base.stats)
    stats.update(
        ref_ok=np.array(used),
        ref_cos=ref_cos,
        ref_med=np.array(ref_med),
        ref_excluded=(base.scores > 0) & ~(final > 0),
        ref_included=(final > 0) & ~(base.scores > 0),
        base_scores=base.scores,
    )
    return GramResult(base.flags, final, base.valid, base.med_cos, stats)


def shares(scores: np.ndarray) -> np.ndarray:
    """Payout shares ``p_i / sum_j p_j`` (all 0 if the sum is 0)."""
    p = np.asarray(scores, dtype=np.float64)
    total = p.sum()
    return p / total if total > 0 else np.zeros_like(p)
