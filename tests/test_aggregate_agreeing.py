"""The protocol's model step (:func:`marketplace.rule.aggregate.agreeing_clipped_mean`, issue 16): the paid updates
and the unpaid ones that agree with them, clipped; properties over random update matrices, and its bit-exactness
(the order-fixed sums it decides with, and an admission a hair's breadth from the bar decided as exact arithmetic
decides it)."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal, getcontext
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from marketplace.rule.aggregate import (
    COPY_COS,
    LANES,
    MAX_STEP,
    PAID_CLIP,
    STEP_TARGET,
    agreeing_admitted,
    agreeing_clipped_mean,
    committed_norm_caps,
    fedavg,
    fixed_dot,
    paid_log_norms,
    step_cap,
)


@st.composite
def rounds(draw: st.DrawFn, min_n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """An N x D float32 update matrix (entries in [-4, 4]) and a paid mask with at least one paid update."""
    n = draw(st.integers(min_n, 8))
    d = draw(st.integers(2, 6))
    elements = st.floats(-4.0, 4.0, allow_nan=False, allow_infinity=False, width=32)
    u = draw(arrays(np.float32, (n, d), elements=elements))
    paid = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    assume(paid.any())
    return u, paid


def _paid_mean(u: np.ndarray, paid: np.ndarray) -> np.ndarray:
    return u[paid].astype(np.float64).mean(axis=0)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b) / (na * nb) if na > 0 and nb > 0 else 0.0


@settings(max_examples=200, deadline=None)
@given(rounds())
def test_a_sign_flipped_update_never_enters(case: tuple[np.ndarray, np.ndarray]) -> None:
    """Every paid update's sign flip is offered: none enters where the update agrees with the paid mean, and
    nothing that enters points against the paid mean."""
    u, paid = case
    flipped = np.concatenate([u, -u[paid]])
    paid_ext = np.concatenate([paid, np.zeros(int(paid.sum()), dtype=bool)])
    admitted = agreeing_admitted(flipped, paid_ext, ~paid_ext)
    g = _paid_mean(u, paid)
    for k, i in enumerate(np.flatnonzero(paid)):
        if _cos(u[i].astype(np.float64), g) >= 0.0:
            assert not admitted[len(u) + k]
    for j in np.flatnonzero(admitted):
        assert _cos(flipped[j].astype(np.float64), g) > 0.0


@settings(max_examples=200, deadline=None)
@given(rounds(), st.booleans())
def test_with_nothing_admitted_and_max_step_1_the_step_is_the_paid_mean_bit_for_bit(
    case: tuple[np.ndarray, np.ndarray], offer_unpaid: bool
) -> None:
    """The step before this rule (the equal-weight mean of the paid updates, :func:`fedavg`) is what the rule gives
    whenever it admits nobody and may not lengthen the step: with no candidate at all, and with every unpaid update
    a candidate whenever none of them agrees enough."""
    u, paid = case
    candidates = ~paid if offer_unpaid else np.zeros(len(u), dtype=bool)
    result = agreeing_clipped_mean(u, paid, candidates, max_step=1.0)
    assume(not result.admitted.any())
    expected = fedavg(u, np.ones(len(u), dtype=bool), ~paid)
    assert expected is not None and result.step is not None
    assert result.step.tobytes() == expected.tobytes()
    assert result.stretch == 1.0


@settings(max_examples=200, deadline=None)
@given(rounds(min_n=3), st.floats(1.0, 1e3))
def test_an_admitted_update_scaled_up_moves_the_model_no_further(
    case: tuple[np.ndarray, np.ndarray], factor: float
) -> None:
    """Admission depends on direction only, and an admitted update at or above the paid median norm is clipped
    to it: scaling it up by any factor leaves the step as it is (up to float rounding)."""
    u, paid = case
    assume((~paid).any())
    j = int(np.flatnonzero(~paid)[0])
    radius = float(np.median(np.linalg.norm(u[paid].astype(np.float64), axis=1)))
    norm_j = float(np.linalg.norm(u[j].astype(np.float64)))
    assume(radius > 0 and norm_j >= radius)
    before = agreeing_clipped_mean(u, paid, ~paid)
    scaled = u.copy()
    scaled[j] = u[j] * np.float32(factor)
    after = agreeing_clipped_mean(scaled, paid, ~paid)
    assert np.array_equal(before.admitted, after.admitted)
    assert before.step is not None and after.step is not None
    np.testing.assert_allclose(after.step, before.step, rtol=1e-4, atol=1e-4 * radius)


@settings(max_examples=200, deadline=None)
@given(rounds(), st.floats(1.0, 3.0))
def test_every_admitted_term_is_clipped_and_the_server_step_is_bounded(
    case: tuple[np.ndarray, np.ndarray], max_step: float
) -> None:
    """The step is the mean of the paid updates and the admitted ones clipped to the paid median norm,
    lengthened by clip(STEP_TARGET r / |mean|, 1, max(1, max_step sqrt(n / N))), n the updates in the mean and N all
    of them (every one is at hand): never shortened, at most max_step times."""
    u, paid = case
    u64 = u.astype(np.float64)
    result = agreeing_clipped_mean(u, paid, ~paid, max_step)
    radius = float(np.median(np.linalg.norm(u64[paid], axis=1)))
    rows = [u64[i] for i in np.flatnonzero(paid)]
    rows += [u64[j] * min(1.0, radius / np.linalg.norm(u64[j])) for j in np.flatnonzero(result.admitted)]
    mean = np.mean(rows, axis=0)
    length = float(np.linalg.norm(mean))
    cap = max(1.0, max_step * math.sqrt(len(rows) / len(u)))
    factor = float(np.clip(STEP_TARGET * radius / length, 1.0, cap)) if length > 0 else 1.0
    assert result.step is not None
    np.testing.assert_allclose(result.step, mean * factor, rtol=1e-5, atol=1e-5 * max(radius, 1e-3))
    assert result.stretch == pytest.approx(factor, rel=1e-9)
    np.testing.assert_allclose(result.weights @ u64, mean, rtol=1e-9, atol=1e-12)


def test_a_step_that_leaves_updates_out_is_lengthened_less() -> None:
    """Ten updates along e0 with orthogonal noise (norm 2, the paid mean 1.13 long: lengthened alone it would
    reach the 1.5 cap). All paid: 1.5 times. Six paid and four sign flips at hand, unpaid (none admitted): at
    most 1.5 sqrt(6 / 10) = 1.16 times; the same six with the four not at hand (not candidates): 1.5 again.
    Three paid of ten: the three other honest updates agree with the paid sum more than a paid one agrees with the
    other two (the bar compares each paid update with the rest of the paid sum), so they are admitted and six are
    in the step; with only the four flips at hand besides the three, none admitted: not lengthened (1.5 sqrt(3 / 7)
    < 1), the step is the paid mean bit for bit."""
    d = 12
    u = np.zeros((10, d), dtype=np.float32)
    for i in range(10):
        u[i, 0] = 1.0
        u[i, 1 + i] = math.sqrt(3.0)  # norm 2, orthogonal noise: the mean of n is sqrt(1 + 3 / n) long
    everyone = agreeing_clipped_mean(u, np.ones(10, dtype=bool), np.zeros(10, dtype=bool))
    assert everyone.stretch == MAX_STEP
    attacked = u.copy()
    attacked[6:] *= -1
    paid = np.arange(10) < 6
    six = agreeing_clipped_mean(attacked, paid, ~paid)
    assert not six.admitted.any()
    assert six.stretch == step_cap(6, 10) == MAX_STEP * math.sqrt(0.6)
    assert 1.16 < six.stretch < 1.17
    alone = agreeing_clipped_mean(attacked, paid, np.zeros(10, dtype=bool))
    assert alone.stretch == MAX_STEP  # 2 / sqrt(1.5) = 1.63, capped at 1.5
    few = np.arange(10) < 3
    joined = agreeing_clipped_mean(attacked, few, ~few)
    assert joined.admitted.tolist() == [False] * 3 + [True] * 3 + [False] * 4
    three = agreeing_clipped_mean(attacked, few, np.arange(10) >= 6)
    expected = fedavg(attacked, np.ones(10, dtype=bool), ~few)
    assert not three.admitted.any() and three.stretch == 1.0 and step_cap(3, 7) == 1.0
    assert three.step is not None and expected is not None and three.step.tobytes() == expected.tobytes()
    with pytest.raises(ValueError, match="updates at hand"):
        step_cap(0, 10)
    with pytest.raises(ValueError, match="updates at hand"):
        step_cap(11, 10)


@settings(max_examples=200, deadline=None)
@given(rounds(min_n=3), st.integers(0, 2**32 - 1))
def test_an_admitted_terms_norm_is_at_most_the_median_paid_norm_over_the_count(
    case: tuple[np.ndarray, np.ndarray], seed: int
) -> None:
    """Unpaid updates scaled by up to 10**4 are offered: each admitted one's term (its weight times the update)
    has norm at most r / (|P| + |A|), r the paid updates' median norm, whatever its own norm; paid terms are the
    updates over the count."""
    u, paid = case
    scale = np.where(paid, 1.0, 10.0 ** np.random.default_rng(seed).uniform(0, 4, len(u))).astype(np.float32)
    u = (u * scale[:, None]).astype(np.float32)
    assume(np.isfinite(u).all())
    result = agreeing_clipped_mean(u, paid, ~paid)
    norms = np.linalg.norm(u.astype(np.float64), axis=1)
    radius = float(np.median(norms[paid]))
    count = int(paid.sum() + result.admitted.sum())
    for j in np.flatnonzero(result.admitted):
        assert result.weights[j] * norms[j] <= radius / count * (1 + 1e-12)
    assert np.all(result.weights[paid] == 1.0 / count)
    assert np.all(result.weights[~paid & ~result.admitted] == 0.0)
    assert 1.0 <= result.stretch <= MAX_STEP


@settings(max_examples=100, deadline=None)
@given(rounds())
def test_a_copy_of_a_paid_update_never_enters(case: tuple[np.ndarray, np.ndarray]) -> None:
    u, paid = case
    i = int(np.flatnonzero(paid)[0])
    copies = np.concatenate([u, u[i : i + 1], 3 * u[i : i + 1]])
    paid_ext = np.concatenate([paid, [False, False]])
    admitted = agreeing_admitted(copies, paid_ext, ~paid_ext)
    assert not admitted[-2:].any()
    for j in np.flatnonzero(admitted):  # and no two admitted updates are copies of each other
        for k in np.flatnonzero(admitted | paid_ext):
            if k != j:
                assert _cos(copies[j].astype(np.float64), copies[k].astype(np.float64)) < COPY_COS or k > j


def test_an_agreeing_scaled_update_enters_clipped_and_its_sign_flip_stays_out() -> None:
    """Three paid updates (e1 + e3/2, 2 e1, 3 e1: median norm 2, the least agreeing at cosine 0.93 with their
    mean), a flagged 10x update along e1 + e2/5 (cosine 0.98 with the mean, 0.98 with e1: not a copy) and its
    sign flip: the scaled one enters at norm 2, the flipped one stays out; nobody paid: no step."""
    e = np.eye(4, dtype=np.float32)
    u = np.stack([e[0] + 0.5 * e[2], 2 * e[0], 3 * e[0], 10 * (e[0] + 0.2 * e[1]), -10 * (e[0] + 0.2 * e[1])])
    paid = np.array([True, True, True, False, False])
    result = agreeing_clipped_mean(u, paid, ~paid, max_step=1.0)
    assert result.admitted.tolist() == [False, False, False, True, False]
    clipped = 2 * (e[0] + 0.2 * e[1]) / np.linalg.norm(e[0] + 0.2 * e[1])
    assert result.step is not None
    np.testing.assert_allclose(result.step, (u[0] + u[1] + u[2] + clipped) / 4, rtol=1e-6)
    lengthened = agreeing_clipped_mean(u, paid, ~paid)  # the mean is 1.86 long, 1.25 times the median norm 2.5
    assert lengthened.step is not None and lengthened.stretch == pytest.approx(2.5 / np.linalg.norm(result.step))
    nobody = agreeing_clipped_mean(u, np.zeros(5, dtype=bool), np.ones(5, dtype=bool))
    assert nobody.step is None and not nobody.admitted.any()
    with pytest.raises(ValueError, match="max_step"):
        agreeing_clipped_mean(u, paid, ~paid, max_step=0.5)


# --------------------------------------------------------------------------- bit-exactness


def _dot_as_specified(a: np.ndarray, b: np.ndarray) -> float:
    """fixed_dot's documented order in plain Python: each float64 product into lane k mod LANES, in increasing k,
    then the correctly rounded sum of the lanes."""
    lanes = [0.0] * LANES
    for k, (x, y) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
        lanes[k % LANES] += x * y
    return math.fsum(lanes)


@pytest.mark.parametrize("length", [1, 7, LANES - 1, LANES, 3 * LANES + 17, 16 * LANES + 5])
def test_the_order_fixed_dot_is_its_specification_bit_for_bit(length: int) -> None:
    """fixed_dot (numpy blocks) is the plain-Python sum in the documented order, to the bit, for float32 rows and a
    float32 row against a float64 one (the paid sum); the lengths cross the lane width and the block size."""
    rng = np.random.default_rng(length)
    a = (rng.normal(size=length) * rng.lognormal(0, 3, size=length)).astype(np.float32)
    b = rng.normal(size=length).astype(np.float32)
    c = rng.normal(size=length) * 1e3
    assert fixed_dot(a, b) == _dot_as_specified(a, b)
    assert fixed_dot(a, c) == _dot_as_specified(a, c)
    assert fixed_dot(a, a) == _dot_as_specified(a, a) >= 0.0
    with pytest.raises(ValueError, match="1-D"):
        fixed_dot(a, b[:-1] if length > 1 else np.zeros(2, dtype=np.float32))


def _exact_cos(u: np.ndarray, total: list[Fraction]) -> Fraction:
    """``sign(<u, S>) cos(u, S)^2`` in exact rationals on the float32 entries (ordered as the cosine)."""
    entries = [Fraction(x) for x in u.tolist()]
    dot = sum((x * s for x, s in zip(entries, total, strict=True)), Fraction(0))
    sq = sum((x * x for x in entries), Fraction(0))
    norm = sum((s * s for s in total), Fraction(0))
    return (dot * dot / (sq * norm)) * (1 if dot > 0 else -1)


class _CosWithTail:
    """:func:`_exact_cos` against ``total`` for vectors that all end in ``tail``: the tail's exact sums (its dot with
    ``total``'s end, its square) and ``total``'s square are summed once, each call sums only the head."""

    def __init__(self, total: list[Fraction], tail: np.ndarray) -> None:
        self.total, self.tail, self.head = total, tail, len(total) - len(tail)
        entries = [Fraction(x) for x in tail.tolist()]
        self.dot = sum((x * s for x, s in zip(entries, total[self.head :], strict=True)), Fraction(0))
        self.sq = sum((x * x for x in entries), Fraction(0))
        self.norm = sum((s * s for s in total), Fraction(0))

    def __call__(self, u: np.ndarray) -> Fraction:
        assert len(u) == len(self.total) and np.array_equal(u[self.head :], self.tail)
        entries = [Fraction(x) for x in u[: self.head].tolist()]
        dot = sum((x * s for x, s in zip(entries, self.total, strict=False)), self.dot)
        sq = sum((x * x for x in entries), self.sq)
        return (dot * dot / (sq * self.norm)) * (1 if dot > 0 else -1)


def _as_decimal_cos(key: Fraction) -> Decimal:
    """The cosine a key of :func:`_exact_cos` stands for, to 60 digits."""
    getcontext().prec = 60
    return (Decimal(abs(key.numerator)) / Decimal(key.denominator)).sqrt() * (1 if key > 0 else -1)


@pytest.mark.parametrize("tail", [0, 3 * LANES + 1])
def test_an_admission_a_hairs_breadth_from_the_bar_decides_as_exact_arithmetic_does(tail: int) -> None:
    """Paid (1, x, 0, 0, e) and (1, -x, 0, 0, -e): the bar is the least of their cosines with the rest of the paid
    sum, here each other. Candidates (h, 0, 4, f, 0): h the smallest float32 that puts (h, 0, 4, 0, 0) above the
    bar, then f set (bisection in exact rationals) so that one candidate is 3e-13 above the bar and one 4e-13 below
    it; with ``tail``, every vector shares the same 12,289 more entries, so every dot is a rounded sum over lanes.
    The exact decision is the function's: the one just above the bar is admitted, the one just below is not."""
    x, e = np.float32(0.5), np.float32(2.0**-20)
    common = (np.random.default_rng(7).normal(size=tail) * 1e-3).astype(np.float32)

    def row(head: list[float]) -> np.ndarray:
        return np.concatenate([np.array(head, dtype=np.float32), common])

    paid_rows = [row([1, x, 0, 0, e]), row([1, -x, 0, 0, -e])]
    as_fractions = [[Fraction(v) for v in r.tolist()] for r in paid_rows]
    total = [a + b for a, b in zip(*as_fractions, strict=True)]
    bar = min(_exact_cos(paid_rows[i], as_fractions[1 - i]) for i in (0, 1))  # S less its own term: the other
    cos_with_total = _CosWithTail(total, common)  # the bisections' cosines: the shared tail summed once

    def gap(head: list[float]) -> Decimal:
        """The candidate's cosine with the paid sum less the bar, to 60 digits."""
        return _as_decimal_cos(cos_with_total(row(head))) - _as_decimal_cos(bar)

    def crossing(make: Callable[[np.float32], list[float]], top: float, target: Decimal) -> np.float32:
        """The smallest float32 v in [0, top] whose gap is on the other side of ``target`` than v = 0's (positive
        floats order as their bits)."""
        lo, hi = np.float32(0.0).view(np.int32), np.float32(top).view(np.int32)
        side = gap(make(lo.view(np.float32))) > target
        assert side != (gap(make(hi.view(np.float32))) > target)
        while hi - lo > 1:
            mid = np.int32((int(lo) + int(hi)) // 2)
            lo, hi = (mid, hi) if (gap(make(mid.view(np.float32))) > target) == side else (lo, mid)
        return hi.view(np.float32)

    h = crossing(lambda v: [v, 0, 4, 0, 0], 64.0, Decimal(0))  # coarse: the smallest h above the bar
    # fine: a small orthogonal f lowers the cosine; the first f under +3e-13 from the bar, and under -4e-13
    f_above = crossing(lambda v: [h, 0, 4, v, 0], 1.0, Decimal("3e-13"))
    f_below = crossing(lambda v: [h, 0, 4, v, 0], 1.0, Decimal("-4e-13"))
    gaps = [gap([h, 0, 4, f, 0]) for f in (f_above, f_below)]
    for f in (f_above, f_below):  # the tail summed once is the whole sum
        assert cos_with_total(row([h, 0, 4, f, 0])) == _exact_cos(row([h, 0, 4, f, 0]), total)
    assert Decimal("1e-14") < gaps[0] < Decimal("1e-12") and -Decimal("1e-12") < gaps[1] < -Decimal("1e-14")
    u = np.stack([*paid_rows, row([h, 0, 4, f_below, 0]), row([h, 0, 4, f_above, 0])])
    paid = np.array([True, True, False, False])
    assert agreeing_admitted(u, paid, ~paid).tolist() == [False, False, False, True]


def test_a_paid_caps_log_norm_is_counted_at_most_one_above_the_paid_lower_median() -> None:
    """``paid_log_norms``: the lower median of the paid ``l`` plus ``PAID_LOG_SPREAD`` bounds every row's ``l`` (with
    two paid, the shorter's plus one), unpaid rows do not set the median, nobody paid changes nothing, and the
    caps follow: a paid update 2**20 times as long as its partner is capped at 1.5 * 2 times its partner's."""
    logs = np.array([0.5, 20.5, -3.0, 7.0])
    both = paid_log_norms(logs, np.array([True, True, False, False]))
    assert both.tolist() == [0.5, 1.5, -3.0, 1.5]
    three = paid_log_norms(logs, np.array([True, True, False, True]))  # sorted paid 0.5, 7, 20.5: lower median 7
    assert three.tolist() == [0.5, 8.0, -3.0, 7.0]
    assert paid_log_norms(logs, np.zeros(4, dtype=bool)).tolist() == logs.tolist()
    assert committed_norm_caps(both)[:2].tolist() == [PAID_CLIP * 2**0.5, PAID_CLIP * 2**1.5]
    with pytest.raises(ValueError, match="4 log-norms for 3"):
        paid_log_norms(logs, np.ones(3, dtype=bool))
