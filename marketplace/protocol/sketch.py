"""CountSketch random projection of flat updates.

For a public per-project ``seed`` and input/output dims ``(D, D')`` a numpy
``Generator(PCG64(seed))`` draws, once, a bucket ``h(j) in [0, D')`` and a sign
``s(j) in {-1, +1}`` for every coordinate ``j < D``. The sketch of ``u`` is

    sketch(u)[k] = sum_{j : h(j) = k} s(j) * u[j]      (k < D')

i.e. ``S = u @ P`` for the sparse D x D' matrix ``P[j, h(j)] = s(j)``. It is linear,
needs O(D) memory, and preserves inner products in expectation
(``E[<S u, S v>] = <u, v>``), so distances, medians-of-coordinates-as-a-sum and
projections computed on sketches approximate those on full updates. The computation is
one ``np.bincount`` (float64 accumulation), so D = 1e7 takes well under a second.

The (h, s) arrays for the most recent few ``(seed, D, D')`` triples are cached.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=4)
def sketch_params(seed: int, dim: int, sketch_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The (bucket, sign) arrays for ``(seed, dim, sketch_dim)``; cached, read-only.

    Buckets are int32 (``sketch_dim`` < 2**31), signs float32 in {-1, +1}. Buckets are
    drawn first, then signs, from one ``np.random.default_rng(seed)`` stream, so the
    arrays are a pure function of the triple.
    """
    if dim < 0 or sketch_dim < 1:
        raise ValueError("need dim >= 0 and sketch_dim >= 1")
    rng = np.random.default_rng(seed)
    buckets = rng.integers(0, sketch_dim, size=dim, dtype=np.int32)
    signs = (rng.integers(0, 2, size=dim, dtype=np.int8) * 2 - 1).astype(np.float32)
    buckets.flags.writeable = False
    signs.flags.writeable = False
    return buckets, signs


def sketch(update: np.ndarray, sketch_dim: int, seed: int) -> np.ndarray:
    """CountSketch of one flat update; returns float64 of length ``sketch_dim``."""
    u = np.asarray(update).reshape(-1)
    buckets, signs = sketch_params(seed, u.size, sketch_dim)
    return np.bincount(buckets, weights=signs * u, minlength=sketch_dim)


def sketch_rows(updates: np.ndarray, sketch_dim: int, seed: int) -> np.ndarray:
    """CountSketch of every row of an N x D array; returns N x ``sketch_dim`` float64."""
    u = np.asarray(updates)
    if u.ndim != 2:
        raise ValueError(f"expected an N x D array, got shape {u.shape}")
    out = np.empty((u.shape[0], sketch_dim), dtype=np.float64)
    for i, row in enumerate(u):
        out[i] = sketch(row, sketch_dim, seed)
    return out
