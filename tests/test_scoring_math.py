"""Hand-computed cases for the package's array math: FedAvg and the CountSketch.

The baseline flags, projection score and reference valuations are in
``research/tests/test_baselines_math.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from marketplace.protocol.sketch import sketch, sketch_params, sketch_rows
from marketplace.rule.aggregate import aggregation_weights, fedavg
from research.simulate import apply_update


def test_fedavg_by_hand() -> None:
    u = np.array([[1.0, 2.0], [3.0, 6.0], [100.0, 100.0]], dtype=np.float32)
    active, flags = np.ones(3, bool), np.array([False, False, True])
    assert np.allclose(fedavg(u, active, flags), [2.0, 4.0])
    # sample-weighted 1:3 -> (1 + 9) / 4 = 2.5, (2 + 18) / 4 = 5
    assert np.allclose(fedavg(u, active, flags, np.array([10, 30, 1000])), [2.5, 5.0])
    assert np.allclose(aggregation_weights(active, flags, np.array([10, 30, 1000])), [0.25, 0.75, 0])
    assert fedavg(u, active, np.ones(3, bool)) is None
    assert fedavg(u, active, flags, np.array([0, 0, 5])) is None
    g = np.array([1.0, 1.0], dtype=np.float32)
    assert np.allclose(apply_update(g, fedavg(u, active, flags)), [3.0, 5.0])
    assert np.array_equal(apply_update(g, None), g)


def test_sketch_definition_and_cache() -> None:
    h, s = sketch_params(7, 10, 4)
    u = np.arange(10, dtype=np.float64)
    expected = np.zeros(4)
    for j in range(10):
        expected[h[j]] += s[j] * u[j]
    assert np.allclose(sketch(u, 4, seed=7), expected)
    assert sketch_params(7, 10, 4)[0] is h  # cached
    assert set(np.unique(s)) <= {-1.0, 1.0} and h.min() >= 0 and h.max() < 4
    rows = sketch_rows(np.stack([u, 2 * u]), 4, seed=7)
    assert np.allclose(rows[1], 2 * expected)
    with pytest.raises(ValueError):
        sketch_rows(u, 4, 0)


def test_sketch_preserves_inner_products_roughly() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=100_000)
    b = a + rng.normal(size=100_000)
    sa, sb = sketch(a, 4096, seed=1), sketch(b, 4096, seed=1)
    cos_full = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    cos_sk = sa @ sb / np.linalg.norm(sa) / np.linalg.norm(sb)
    assert abs(cos_full - cos_sk) < 0.05
