"""Hypothesis properties of the baseline flags and projection scores."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from research.baselines import (
    SketchScorer,
    duplicate_flags,
    median_distance_flags,
    multi_krum_flags,
    norm_flags,
    projection_scores,
)

finite = st.floats(-100, 100, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def rounds(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 9))
    d = draw(st.integers(1, 6))
    u = draw(arrays(np.float64, (n, d), elements=finite))
    active = draw(arrays(np.bool_, (n,)))
    return u, active


@given(rounds(), st.floats(0.5, 4.0), st.integers(0, 3))
@settings(max_examples=150, deadline=None)
def test_inactive_rows_never_flagged(r: tuple[np.ndarray, np.ndarray], thr: float, f: int) -> None:
    u, active = r
    for flags in (
        median_distance_flags(u, active, thr),
        median_distance_flags(u, active, thr, directions=True),
        multi_krum_flags(u, active, f),
        norm_flags(u, active, 0.1, 3.0),
        duplicate_flags(u, active),
        SketchScorer(thr, sketch_dim=8).run_round(u, active).flags,
    ):
        assert not np.any(flags & ~active)


@given(rounds(), st.floats(1e-3, 1e3), st.floats(0.5, 4.0))
@example(r=(np.array([[1e-163]]), np.array([True])), c=1e3, thr=2.0)  # u.u underflowed to 0, (c u).(c u) did not
@settings(max_examples=150, deadline=None)
def test_scores_nonnegative_zero_when_flagged_and_scale_invariant(
    r: tuple[np.ndarray, np.ndarray], c: float, thr: float
) -> None:
    u, active = r
    flags = median_distance_flags(u, active, thr)
    s = projection_scores(u, active, flags)
    assert np.all(s >= 0)
    assert np.all(s[flags | ~active] == 0)
    assert s.sum() == 0 or abs(s.sum() - 1) < 1e-9
    # c * u is a scaled copy of u (to rounding) only where no entry is subnormal: below 2**-1022 floats
    # have few significant bits, and scaling may flush an entry to 0.
    normal = all(np.all((x == 0) | (np.abs(x) >= np.finfo(np.float64).tiny)) for x in (u, c * u))
    scaled_flags = median_distance_flags(c * u, active, thr)
    # flags can only differ on exact ties, which scaling by c can break by rounding
    if normal and np.array_equal(scaled_flags, flags):
        np.testing.assert_allclose(projection_scores(c * u, active, flags), s, rtol=1e-7, atol=1e-9)
    res, res_c = (
        SketchScorer(thr, sketch_dim=None).run_round(u, active),
        SketchScorer(thr, sketch_dim=None).run_round(c * u, active),
    )
    if normal and np.array_equal(res.flags, res_c.flags):
        np.testing.assert_allclose(res_c.scores, res.scores, rtol=1e-7, atol=1e-9)
