"""Weighted FedAvg of the inlier updates, and the protocol's model step (:func:`agreeing_clipped_mean`): the paid
updates and the unpaid ones that agree with them, clipped, bit for bit the same on every machine."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from fractions import Fraction

import numpy as np

from marketplace.protocol.constants import LOG_CLIP


def aggregation_weights(
    active_mask: np.ndarray, flags: np.ndarray, num_samples: np.ndarray | None = None
) -> np.ndarray:
    """Normalised FedAvg weights: ``w_i = n_i / sum_{j in I} n_j`` on inliers I, 0 elsewhere.

    ``num_samples=None`` means equal weights (``n_i = 1``). Returns all zeros when there is
    no inlier or the inliers' sample counts sum to 0.
    """
    keep = np.asarray(active_mask, dtype=bool) & ~np.asarray(flags, dtype=bool)
    n = np.ones(keep.shape[0]) if num_samples is None else np.asarray(num_samples, dtype=np.float64)
    if np.any(n < 0):
        raise ValueError("sample counts must be >= 0")
    raw = np.where(keep, n, 0.0)
    total = raw.sum()
    return raw / total if total > 0 else np.zeros_like(raw)


def fedavg(
    updates: np.ndarray,
    active_mask: np.ndarray,
    flags: np.ndarray,
    num_samples: np.ndarray | None = None,
) -> np.ndarray | None:
    """``sum_i w_i * u_i`` with :func:`aggregation_weights`; float32 of length D.

    Returns ``None`` when there is nothing to aggregate (no inlier, or zero total weight).
    ``None`` means "no update this round": the caller keeps the current global model,
    which is different from applying a zero update only in that nobody contributed.
    """
    w = aggregation_weights(active_mask, flags, num_samples)
    if not w.any():
        return None
    u = np.asarray(updates)
    rows = np.flatnonzero(w)
    # accumulate only the inliers, in float64, to keep D = 1e7 cheap and exact-ish
    total = np.zeros(u.shape[1], dtype=np.float64)
    for i in rows:
        total += np.multiply(u[i], w[i], dtype=np.float64)  # float64 whatever numpy's promotion rules
    return total.astype(np.float32)


# --------------------------------------------------------------------------- the protocol's model step

#: The round's step is lengthened towards :data:`STEP_TARGET` times the paid updates' median norm by at most this
#: factor, reached when every update at hand is in the step, and by at most :func:`step_cap` when some are left out
#: (a protocol constant, like :class:`~marketplace.rule.gram.GramConfig`'s, but no circuit reads it: the step is
#: audited, not proven). 1.5 with the cap is what ``bench/robustness.py`` measured best
#: (docs/design/robust-reference.md, section 8): unbounded, the step amplified conflicting paid updates (Dirichlet
#: 40 % label-flip 66.4 -> 54.4 % accuracy); a flat 1.5 lengthened the mean of the few updates left in attacked rounds
#: late in training (IID 15 rounds, 40 % sign-flip, 93.2 -> 92.6).
MAX_STEP = 1.5

#: The round's mean is lengthened towards this many times the paid updates' median norm ``r`` (within
#: :func:`step_cap`): a server step a quarter longer than the median update. Screened with ``bench/step_screen.py``
#: against lengthening towards ``r`` (docs/design/robust-reference.md, section 8): on seeds 0-4 and 5-9 it lifts
#: the 5-round IID clean runs 88.6 -> 90.4 and 88.9 -> 90.4 and the scaled-attack rows by about a point, leaves the
#: Dirichlet 5-round rows unchanged (their means are short: the cap binds), and misses the old step by more than
#: 0.2 point in 1 of 24 15-round comparisons (towards ``r``: 2).
STEP_TARGET = 1.25

#: An unpaid update this close in direction to a paid or already admitted one is a copy and stays out:
#: cosine ``>= 1 - 2**-7``, the rule's duplicate distance (``GramConfig.dup_dist`` = ``||u - v||^2 <= 2**-6``
#: on unit vectors).
COPY_COS = 1.0 - 2.0**-7

#: A paid update enters the step at most this many times as long as its committed sketch (``PAID_CLIP * 2**l``,
#: :func:`committed_norm_caps`). The rule scores a CountSketch of each update, so a component in the sketch's null
#: space (the seed is public) changes neither the commitment nor the flags nor the score: unclipped, a paid update
#: could carry it into the model at any norm. Honest updates are about as long as their sketches (``|u| / |s|``
#: 0.83-1.28 over 240 updates of the robustness bench's task, IID and Dirichlet, rounds 0-5: the sketch keeps
#: norms in expectation), so 1.5 shortens no honest update there and bounds what any paid update adds to
#: ``1.5 * 2**l``, with ``l`` taken at most :data:`PAID_LOG_SPREAD` above the paid updates' lower median
#: (:func:`paid_log_norms`): three median sketch norms.
PAID_CLIP = 1.5

#: A paid update's cap counts its committed log-norm at most this much above the paid updates' lower median
#: log-norm (:func:`paid_log_norms`): the rule's ``boost`` bound (``GramConfig.boost_log2``: twice the median norm),
#: as a clip. With three or more valid rows the rule already flags a longer update (against the median of all valid
#: rows), so this rarely binds; with fewer it flags nobody, and without it a paid update's cap was bounded by the
#: row's box only (``1.5 * 2**32``: two trainers, one 2**20 times as long as its partner, moved the model 5.4e5
#: partner sketch norms along a hidden poison).
PAID_LOG_SPREAD = 1.0

#: An update whose committed row points this far against the owner's revealed reference row (cosine of the unit
#: sketches at most this, the reference-aware rule's ``g`` at scale ``2**13``: ``g <= REFERENCE_STEP_BAR * 2**13``)
#: is left out of the model step when the reference is used; its pay is the rule's, unchanged
#: (:func:`~marketplace.rule.scorer.reference_screen`). The paying rule keeps a paid update that points against the
#: reference when it is typical of the round (its median cosine at least the median), which late in training on
#: skewed shards is a bloc of sign-flippers: Dirichlet(0.5) 15 rounds, 40 % sign-flip, seed 8 round 14, three of
#: four flippers paid and the step at cosine -0.51 with the honest mean. -0.3 rather than 0: at 0 the clean runs
#: lose 1.2 points (honest skewed updates often point slightly against the owner's); at -0.3 they lose at most 0.4
#: (``bench/reference_guard.py``, docs/design/robust-reference.md section 8). Audited, not proven, like
#: :data:`MAX_STEP`.
REFERENCE_STEP_BAR = -0.3

#: Width of the lane accumulator of :func:`fixed_dot`.
LANES = 4096
#: Entries :func:`fixed_dot` multiplies at once (a multiple of :data:`LANES`; it changes memory use, not the sum).
_BLOCK = 16 * LANES


def fixed_dot(a: np.ndarray, b: np.ndarray) -> float:
    """``<a, b>`` in float64, summed in an order this function alone fixes (no BLAS, no numpy reduction), so
    that every machine and numpy build gets the same bits: the elementwise float64 products ``a_k b_k``
    (exact when both are float32) are added into :data:`LANES` lane accumulators, starting at 0, entry ``k``
    into lane ``k mod LANES`` in increasing ``k`` (numpy's elementwise adds: one IEEE rounding each, whatever
    the SIMD width), and the lanes are summed by :func:`math.fsum` (correctly rounded, order-free). Below
    ``LANES`` entries it is the correctly rounded sum of the products. ``a`` and ``b``: 1-D, same length.

    Cost (2 shared cores): 16 ms at length 1e7, against 200 ms for BLAS's ``np.dot`` of the float64 copies
    (which also allocates them) and 780 ms for :func:`math.fsum` of every product."""
    d = a.shape[0]
    if b.shape != (d,) or a.ndim != 1:
        raise ValueError(f"fixed_dot needs two 1-D arrays of one length, not {a.shape} and {b.shape}")
    acc = np.zeros(LANES, dtype=np.float64)
    full = d - d % LANES
    for start in range(0, full, _BLOCK):
        stop = min(start + _BLOCK, full)
        for chunk in np.multiply(a[start:stop], b[start:stop], dtype=np.float64).reshape(-1, LANES):
            acc += chunk
    if full < d:
        acc[: d - full] += np.multiply(a[full:], b[full:], dtype=np.float64)
    return math.fsum(acc.tolist())


class FloatEnvironmentError(RuntimeError):
    """This thread flushes subnormal floats to zero (the x86 FTZ / DAZ modes: ``torch.set_flush_denormal(True)``, or
    a shared library built with ``-ffast-math`` loaded into the process): the model step would not be the bits
    that a machine in IEEE 754's default mode computes, and the audit would report a model that was computed
    faithfully as differing. An update is untrusted input: one made of float32 subnormals (finite, so accepted)
    has squared norm 0 in those modes and a positive one otherwise, and so is admitted by one machine only."""


def require_ieee_subnormals() -> None:
    """Raises :class:`FloatEnvironmentError` unless this thread keeps subnormal inputs and results, in float32 and
    float64 (IEEE 754's default, numpy's unless something changed the thread's floating-point control word).
    Costs a few microseconds; :func:`agreeing_admitted` and :func:`agreeing_clipped_mean` call it first."""
    smallest = np.array([2.0**-149], dtype=np.float32)  # the smallest float32 subnormal
    kept_in = np.multiply(smallest, smallest, dtype=np.float64)[0] != 0.0  # DAZ reads it as 0
    kept_out = (np.array([2.0**-126], dtype=np.float32) * np.float32(0.5))[0] != 0.0  # FTZ flushes the result
    kept_64 = (np.array([2.0**-1022]) * 0.5)[0] != 0.0
    if not (kept_in and kept_out and kept_64):
        raise FloatEnvironmentError(
            "this thread flushes subnormal floats to zero (FTZ/DAZ, e.g. torch.set_flush_denormal(True)); the "
            "model step would differ from other machines': run it with IEEE 754's default floating-point mode"
        )


@dataclass(frozen=True)
class ModelStep:
    """A round's model step (:func:`agreeing_clipped_mean`).

    Attributes:
        step: float32 (D,), ``stretch * sum_i weights_i u_i`` (summed as specified there), or None: nobody is paid.
        admitted: bool (N,), the unpaid updates the step takes (:func:`agreeing_admitted`).
        weights: float64 (N,), each update's coefficient in the mean before the stretch: ``min(1, c_i / |u_i|) /
            (|P| + |A|)`` for a paid one (``c_i`` its cap, infinite without caps), ``min(1, r / |u_j|) / (|P| + |A|)``
            for an admitted one, 0 elsewhere.
        clipped: bool (N,), the paid updates longer than their cap, shortened to it.
        stretch: the factor the mean was lengthened by, in ``[1, step_cap(...)]`` (at most ``max_step``).
        screened: bool (N,), the updates the owner's reference kept out of the step, paid or not
            (:meth:`~marketplace.rule.scorer.GramScorer.aggregate_paid`), or None: no screen applied.
    """

    step: np.ndarray | None
    admitted: np.ndarray
    weights: np.ndarray
    clipped: np.ndarray
    stretch: float = 1.0
    screened: np.ndarray | None = None


def paid_log_norms(log_norms: np.ndarray, paid: np.ndarray, spread: float = PAID_LOG_SPREAD) -> np.ndarray:
    """The log-norms the paid updates' caps count: ``min(l_i, m + spread)``, ``m`` the lower median of the paid
    ``l`` (the ``(n - 1) // 2``-th smallest of ``n``: with two paid, the shorter's), for every row (unpaid rows
    too, though no cap of theirs is used); ``log_norms`` unchanged when nobody is paid. Exact: ``l`` is on the
    ``2**-13`` grid and ``m + spread`` is a float64 sum of grid values."""
    values = np.asarray(log_norms, dtype=np.float64).reshape(-1)
    mask = np.asarray(paid, dtype=bool).reshape(-1)
    if mask.shape != values.shape:
        raise ValueError(f"{values.shape[0]} log-norms for {mask.shape[0]} paid flags")
    if not mask.any():
        return values.copy()
    ordered = np.sort(values[mask])
    return np.minimum(values, ordered[(ordered.shape[0] - 1) // 2] + spread)


def committed_norm_caps(log_norms: np.ndarray, factor: float = PAID_CLIP) -> np.ndarray:
    """``factor * 2**l_i`` for each committed log-norm ``l_i`` (float64, the rows' column ``K``: a value on the
    ``2**-13`` grid in ``[-32, 32]``), the most a paid update enters the step with (:data:`PAID_CLIP`).

    The same bits on every machine and in every process: ``2**l`` is computed in decimal arithmetic at 40
    significant digits (software, no platform ``pow``) in a context of this function's own (:func:`_cap_context`:
    never the thread's, which a caller may have set to trap ``Inexact`` or to overflow to infinity at a small
    ``Emax``), rounded once to float64, then multiplied by ``factor`` (one IEEE rounding). On the grid the float64
    does not depend on the 40th digit (every ``2**l`` there is more than ``1e-5`` float64 units from a rounding
    boundary), so a decimal library that rounds its last digit otherwise gets the same caps. Raises ValueError for
    a non-finite ``l`` or one outside ``[-LOG_CLIP, LOG_CLIP]`` (no committed row has it; its cap could be
    infinite)."""
    values = np.asarray(log_norms, dtype=np.float64).reshape(-1)
    if not (np.isfinite(values).all() and (np.abs(values) <= LOG_CLIP).all()):
        raise ValueError(f"committed log-norms must be finite and within [-{LOG_CLIP:g}, {LOG_CLIP:g}]")
    ctx = _cap_context()
    two = Decimal(2)
    caps = np.empty(values.shape[0], dtype=np.float64)
    for i, lg in enumerate(values.tolist()):
        caps[i] = factor * float(ctx.power(two, Decimal(lg)))  # Decimal(float) and float(Decimal): exact, no context
    return caps


def _cap_context() -> Context:
    """A fresh decimal context with every field given (``Context()`` copies the unset ones from
    ``decimal.DefaultContext``, which any code in the process may change): 40 digits, round half even, exponents
    far beyond ``2**±32``, invalid operations, division by zero and overflow trapped."""
    return Context(
        prec=40, rounding=ROUND_HALF_EVEN, Emin=-999_999, Emax=999_999, capitals=1, clamp=0, flags=[],
        traps=[InvalidOperation, DivisionByZero, Overflow],
    )  # fmt: skip


def agreeing_admitted(updates: np.ndarray, paid: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """The unpaid updates whose direction agrees with the paid ones (boolean mask over the N updates).

    With ``S`` the sum of the paid updates (as the step takes them: capped, :func:`agreeing_clipped_mean`), a
    candidate's agreement is ``cos_j = <u_j, S> / (|u_j| |S|)`` and a paid update's is its cosine with the rest of
    the paid sum, ``cos_i = <u_i, S - s_i u_i> / (|u_i| |S - s_i u_i|)`` (``s_i`` its cap's scale; 0 for a zero
    vector): each compared with the paid updates it is not one of. Update ``j`` is admitted exactly when at least
    two updates are paid, it is a candidate, not paid, nonzero, ``cos_j > max(0, min_{i paid} cos_i)`` (it agrees
    with the paid updates positively and more than the least agreeing paid update agrees with the others), and it
    is not a copy (cosine ``>= COPY_COS``) of a paid update or of an admitted update of lower index. Consequences:
    an update pointing against the paid mean (``cos <= 0``: a sign flip of any update that agrees with it) never
    enters; a scaled copy of an honest update enters exactly when that update's direction would; an unpaid honest
    update exchangeable with the paid ones enters about as often as not (the bar compared each paid update with a
    sum that included itself until stop 17, which kept most of them out: IID 5-round scaled 40 % took 35 % of the
    scaled attackers' rounds, clipped, against 87 % now); nothing enters when fewer than two are paid or the paid
    updates sum to 0.

    Bit-exact on every machine in IEEE 754's default mode (:class:`FloatEnvironmentError` otherwise): ``S`` is
    summed elementwise in trainer order (float64), every dot product and squared norm is :func:`fixed_dot`, and
    every comparison is made exactly, in rationals, on those floats (``<u_i, S - s_i u_i> = <u_i, S> - s_i |u_i|^2``
    and ``|S - s_i u_i|^2 = |S|^2 - 2 s_i <u_i, S> + s_i^2 |u_i|^2`` in rationals; cosines compared as signed squares
    ``sign(d) d^2 / (|u|^2 |rest|^2)``; a copy as ``<u_j, u_k> > 0`` and ``<u_j, u_k>^2 >= COPY_COS^2 |u_j|^2
    |u_k|^2``): no square root or division in floats decides an admission. Cost: :func:`fixed_dot` twice per paid
    or candidate update, and once per (admissible candidate, paid or earlier admitted update) pair for the copy
    test.
    """
    require_ieee_subnormals()
    u = np.asarray(updates)
    paid = np.asarray(paid, dtype=bool)
    terms = _paid_terms(u, paid, None)
    return _admission(u, paid, np.asarray(candidates, dtype=bool), terms)[0]


@dataclass(frozen=True)
class _PaidTerms:
    """The paid updates as the step takes them: squared norms (:func:`fixed_dot`), scale factors (1 or
    ``cap / |u_i|``), norms as taken (``|u_i|`` or the cap) and their scaled sum ``S`` (float64, elementwise in
    trainer order)."""

    sq: dict[int, float]
    scale: dict[int, float]
    norm: dict[int, float]
    total: np.ndarray


def _paid_terms(u: np.ndarray, paid: np.ndarray, caps: np.ndarray | None) -> _PaidTerms:
    """Each paid update's squared norm and scale (shortened to its cap when longer: decided exactly, ``|u|^2 >
    cap^2`` in rationals), and the sum of the paid updates so scaled."""
    sq: dict[int, float] = {}
    scale: dict[int, float] = {}
    norm: dict[int, float] = {}
    total = np.zeros(u.shape[1], dtype=np.float64)
    for i in map(int, np.flatnonzero(paid)):
        sq[i] = fixed_dot(u[i], u[i])
        cap = math.inf if caps is None else float(caps[i])
        if cap != math.inf and Fraction(sq[i]) > Fraction(cap) ** 2:
            scale[i], norm[i] = cap / math.sqrt(sq[i]), cap
            total += np.multiply(u[i], scale[i], dtype=np.float64)
        else:
            scale[i], norm[i] = 1.0, math.sqrt(sq[i])
            total += u[i]
    return _PaidTerms(sq, scale, norm, total)


def _admission(
    u: np.ndarray, paid: np.ndarray, candidates: np.ndarray, terms: _PaidTerms
) -> tuple[np.ndarray, dict[int, float]]:
    """:func:`agreeing_admitted`'s mask against the (scaled) paid sum of ``terms``, and the squared norms
    (:func:`fixed_dot`) of the paid and candidate rows."""
    cand = candidates & ~paid
    admitted = np.zeros(u.shape[0], dtype=bool)
    sq = dict(terms.sq)
    if not paid.any() or not cand.any():
        return admitted, sq
    total = terms.total
    total_sq = Fraction(fixed_dot(total, total))
    if total_sq == 0:
        return admitted, sq
    paid_rows = [int(i) for i in np.flatnonzero(paid)]
    if len(paid_rows) < 2:  # no other paid update to agree with: no bar
        return admitted, sq
    dots = {i: Fraction(fixed_dot(u[i], total)) for i in paid_rows}
    bar = min(_loo_agreement(dots[i], Fraction(terms.scale[i]), Fraction(sq[i]), total_sq) for i in paid_rows)
    kept = list(paid_rows)
    for j in (int(j) for j in np.flatnonzero(cand)):
        sq[j] = fixed_dot(u[j], u[j])
        if _loo_agreement(Fraction(fixed_dot(u[j], total)), Fraction(0), Fraction(sq[j]), total_sq) <= max(
            bar, Fraction(0)
        ):
            continue
        if any(_is_copy(fixed_dot(u[j], u[k]), sq[j], sq[k]) for k in kept):
            continue
        admitted[j] = True
        kept.append(j)
    return admitted, sq


def _loo_agreement(dot: Fraction, scale: Fraction, sq: Fraction, total_sq: Fraction) -> Fraction:
    """A key ordered as the cosine of ``u`` with the paid sum ``S`` less ``u``'s own term ``scale u`` (0 for an
    unpaid ``u``), exactly, in rationals, from ``dot = <u, S>``, ``sq = |u|^2`` and ``total_sq = |S|^2``:
    ``<u, S - scale u> = dot - scale sq`` and ``|S - scale u|^2 = total_sq - 2 scale dot + scale^2 sq``; the key is
    ``sign(d) d^2 / (sq |S - scale u|^2)``, 0 when ``u`` or the rest is zero (or the rest's squared norm, from
    rounded dots, is not positive)."""
    rest = total_sq - 2 * scale * dot + scale * scale * sq
    d = dot - scale * sq
    if sq == 0 or d == 0 or rest <= 0:
        return Fraction(0)
    key = d * d / (sq * rest)
    return key if d > 0 else -key


def _is_copy(dot: float, sq_a: float, sq_b: float) -> bool:
    """``cos(a, b) >= COPY_COS``, decided exactly from ``<a, b>`` and the squared norms."""
    return dot > 0.0 and Fraction(dot) ** 2 >= Fraction(COPY_COS) ** 2 * Fraction(sq_a) * Fraction(sq_b)


def step_cap(in_step: int, at_hand: int, max_step: float = MAX_STEP) -> float:
    """The most a round's mean of ``in_step`` of the ``at_hand`` updates may be lengthened:
    ``max(1, max_step * sqrt(in_step / at_hand))`` (Python float arithmetic, correctly rounded, so the same on
    every machine); ``max_step`` when every update at hand is in the step.

    Why: were the updates a common direction plus independent noise of one size, the mean of ``n`` of them would
    carry ``sqrt(h / n)`` times the noise of the mean of all ``h``; lengthened by at most this cap, the step's noise
    is at most ``max_step`` times the all-``h`` mean's. A round that leaves many updates out (attackers unpaid, or
    late in training a round where the leave-one-out gate pays only a few) is lengthened less: 6 of 10 at most
    1.16 times with ``max_step`` 1.5, 4 of 10 or fewer not at all."""
    if not 0 < in_step <= at_hand:
        raise ValueError(f"a step takes 1 to {at_hand} of the {at_hand} updates at hand, not {in_step}")
    return max(1.0, max_step * math.sqrt(in_step / at_hand))


def agreeing_clipped_mean(
    updates: np.ndarray,
    paid: np.ndarray,
    candidates: np.ndarray,
    max_step: float = MAX_STEP,
    paid_caps: np.ndarray | None = None,
) -> ModelStep:
    """The round's model step: the paid updates and the unpaid ones that agree with them (issue 16).

    ``paid_caps`` (float64 (N,), :func:`committed_norm_caps` of the committed rows: ``PAID_CLIP * 2**l_i``) bounds
    each paid update: one longer than its cap is taken shortened to it (``u_i c_i / |u_i|``; ``clipped``), so that
    a component the committed sketch does not see cannot enter the model at a norm the rule never judged. None
    (or an infinite cap): the paid updates are taken as they are; a NaN or negative cap is a ValueError.

    ``admitted`` is :func:`agreeing_admitted` against the sum ``S`` of the paid updates as the step takes them
    (capped); with ``r`` the median norm of those paid updates, the step is the equal-weight mean over the paid
    updates (capped) and the admitted ones clipped to norm ``r`` (``u_j min(1, r / |u_j|)``), summed elementwise in
    float64 in trainer order (each term a float64 weight times the float32 row, as :func:`fedavg` sums), then, when
    ``max_step > 1``, lengthened by ``clip(STEP_TARGET r / |mean|, 1, step_cap(|P| + |A|, |P| + |C|, max_step))`` (a
    server step towards :data:`STEP_TARGET` times the paid updates' median length, never shortened, at most
    ``max_step`` times and less when the step leaves updates at hand out: :func:`step_cap`; the updates at hand are
    the paid ones and the unpaid candidates C), then rounded to float32; None when nobody is paid. Norms are square
    roots of :func:`fixed_dot`, a cap is compared exactly (``|u_i|^2 > c_i^2`` in rationals), and the median and
    factors are plain float arithmetic, so the step is the same bits on every machine in IEEE 754's default
    floating-point mode; in a thread that flushes subnormals to zero it raises :class:`FloatEnvironmentError`
    (:func:`require_ieee_subnormals`) rather than compute other bits. Pay is not this function's business: admitted
    updates earn nothing, and a clipped paid update is paid as its committed row says.

    Equal weights, as the live path (``round.score.score_round``) has always averaged the paid updates: sample
    counts are the trainers' word, and one claiming many would weigh the model at will; equal weights also
    bound every admitted term's norm by ``r / (|P| + |A|)`` (P paid, A admitted) whatever its own norm, and with
    caps every paid term's by ``c_i / (|P| + |A|)``. With nothing admitted, nothing clipped and ``max_step = 1``
    the step is :func:`fedavg` of the paid updates, bit for bit.

    Cost at D = 1e7, N = 16 (float32 rows, 2 cores shared with other work): every update paid 0.55-0.60 s
    (:func:`fedavg` of the same rows 0.32 s; the rest is 17 :func:`fixed_dot` for the norms); 8 paid and 8
    unpaid candidates of which none agrees enough 0.7 s; 8 paid and 8 admitted 2.6 s, most of it the copy test
    (each admitted update's dot with every paid or earlier admitted one: 92 :func:`fixed_dot`).
    """
    if not max_step >= 1.0:
        raise ValueError("max_step must be >= 1")
    require_ieee_subnormals()
    u = np.asarray(updates)
    paid = np.asarray(paid, dtype=bool)
    candidates = np.asarray(candidates, dtype=bool)
    caps = None if paid_caps is None else np.asarray(paid_caps, dtype=np.float64)
    if caps is not None and (caps.shape != (u.shape[0],) or np.isnan(caps).any() or (caps < 0).any()):
        raise ValueError(f"paid_caps must be {u.shape[0]} numbers >= 0 (inf: no cap)")
    terms = _paid_terms(u, paid, caps)
    admitted, sq = _admission(u, paid, candidates, terms)
    weights = np.zeros(u.shape[0], dtype=np.float64)
    clipped = np.zeros(u.shape[0], dtype=bool)
    if not paid.any():
        return ModelStep(None, admitted, weights, clipped)
    count = int(paid.sum() + admitted.sum())
    radius = 0.0
    if admitted.any() or max_step > 1.0:
        norms = sorted(terms.norm.values())
        mid = len(norms) // 2
        radius = norms[mid] if len(norms) % 2 else (norms[mid - 1] + norms[mid]) / 2
    for i, factor in terms.scale.items():
        weights[i] = factor / count
        clipped[i] = factor != 1.0
    for j in np.flatnonzero(admitted):
        weights[j] = min(1.0, radius / math.sqrt(sq[int(j)])) / count
    total = np.zeros(u.shape[1], dtype=np.float64)
    for i in np.flatnonzero(paid | admitted):
        total += np.multiply(u[i], weights[i], dtype=np.float64)  # the float32 row times a float64 weight, as fedavg
    stretch = 1.0
    cap = step_cap(count, int((paid | candidates).sum()), max_step)
    if cap > 1.0:
        length = math.sqrt(fixed_dot(total, total))
        if length > 0.0:
            stretch = min(max(STEP_TARGET * radius / length, 1.0), cap)
        if stretch != 1.0:
            total *= stretch
    return ModelStep(total.astype(np.float32), admitted, weights, clipped, stretch)
