"""Hypothesis properties of FedAvg and the sketch (the baseline flags and scores:
``research/tests/test_baselines_properties.py``)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from marketplace.protocol.sketch import sketch
from marketplace.rule.aggregate import fedavg

finite = st.floats(-100, 100, allow_nan=False, allow_infinity=False, width=64)


@given(
    arrays(np.float32, st.integers(1, 20), elements=st.floats(-1e3, 1e3, width=32)),
    st.integers(1, 8),
    st.lists(st.integers(1, 1000), min_size=8, max_size=8),
)
@settings(max_examples=100, deadline=None)
def test_fedavg_of_identical_updates_is_that_update(v: np.ndarray, n: int, counts: list[int]) -> None:
    u = np.tile(v, (n, 1))
    for num in (None, np.array(counts[:n])):
        agg = fedavg(u, np.ones(n, bool), np.zeros(n, bool), num)
        assert agg is not None
        np.testing.assert_allclose(agg, v, rtol=1e-6, atol=1e-6)


@given(
    arrays(np.float64, 200, elements=finite),
    arrays(np.float64, 200, elements=finite),
    finite,
    finite,
    st.integers(0, 2**32 - 1),
)
@settings(max_examples=100, deadline=None)
def test_sketch_is_linear(a: np.ndarray, b: np.ndarray, x: float, y: float, seed: int) -> None:
    lhs = sketch(x * a + y * b, 16, seed)
    rhs = x * sketch(a, 16, seed) + y * sketch(b, 16, seed)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-6)
