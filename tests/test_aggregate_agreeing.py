"""The research step that also takes unpaid updates agreeing with the paid ones
(:func:`marketplace.rule.aggregate.agreeing_clipped_mean`, issue 16): properties over random update matrices."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from marketplace.rule.aggregate import COPY_COS, agreeing_admitted, agreeing_clipped_mean, fedavg


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
@given(rounds())
def test_with_no_unpaid_update_admitted_the_step_is_todays_mean_bit_for_bit(
    case: tuple[np.ndarray, np.ndarray],
) -> None:
    u, paid = case
    step, admitted = agreeing_clipped_mean(u, paid, np.zeros(len(u), dtype=bool))
    assert not admitted.any()
    expected = fedavg(u, np.ones(len(u), dtype=bool), ~paid)
    assert expected is not None and step is not None
    assert step.tobytes() == expected.tobytes()


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
    before, adm_before = agreeing_clipped_mean(u, paid, ~paid)
    scaled = u.copy()
    scaled[j] = u[j] * np.float32(factor)
    after, adm_after = agreeing_clipped_mean(scaled, paid, ~paid)
    assert np.array_equal(adm_before, adm_after)
    assert before is not None and after is not None
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4 * radius)


@settings(max_examples=200, deadline=None)
@given(rounds(), st.floats(1.0, 3.0))
def test_every_admitted_term_is_clipped_and_the_server_step_is_bounded(
    case: tuple[np.ndarray, np.ndarray], max_step: float
) -> None:
    """The step is the mean of the paid updates and the admitted ones clipped to the paid median norm,
    lengthened by clip(r / |mean|, 1, max_step): never shortened, at most max_step times."""
    u, paid = case
    u64 = u.astype(np.float64)
    step, admitted = agreeing_clipped_mean(u, paid, ~paid, max_step)
    radius = float(np.median(np.linalg.norm(u64[paid], axis=1)))
    rows = [u64[i] for i in np.flatnonzero(paid)]
    rows += [u64[j] * min(1.0, radius / np.linalg.norm(u64[j])) for j in np.flatnonzero(admitted)]
    mean = np.mean(rows, axis=0)
    length = float(np.linalg.norm(mean))
    factor = float(np.clip(radius / length, 1.0, max_step)) if length > 0 else 1.0
    assert step is not None
    np.testing.assert_allclose(step, mean * factor, rtol=1e-5, atol=1e-5 * max(radius, 1e-3))


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
    step, admitted = agreeing_clipped_mean(u, paid, ~paid)
    assert admitted.tolist() == [False, False, False, True, False]
    clipped = 2 * (e[0] + 0.2 * e[1]) / np.linalg.norm(e[0] + 0.2 * e[1])
    assert step is not None
    np.testing.assert_allclose(step, (u[0] + u[1] + u[2] + clipped) / 4, rtol=1e-6)
    assert agreeing_clipped_mean(u, np.zeros(5, dtype=bool), np.ones(5, dtype=bool))[0] is None
    with pytest.raises(ValueError, match="max_step"):
        agreeing_clipped_mean(u, paid, ~paid, max_step=0.5)
