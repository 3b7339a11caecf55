"""Sorting and median selection as fixed arithmetic networks (what a zk circuit can compute)."""

from __future__ import annotations

import numpy as np


def batcher_layers(n: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Batcher's odd-even merge sort for a power-of-two ``n`` as layers of disjoint (lo, hi) pairs."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"n must be a power of two, got {n}")
    layers: list[tuple[tuple[int, int], ...]] = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            pairs = []
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            layers.append(tuple(pairs))
            k //= 2
        p *= 2
    return tuple(layers)


def median_weights(n: int) -> np.ndarray:
    """(2n+2, n) matrix W with ``t @ W`` the median-selection weights.

    ``t_m = [count >= m]`` for ``m = 0..2n+1``; with ``lo = (count-1)//2`` and ``hi = count//2``
    the weight of sorted position ``j`` is ``([j == lo] + [j == hi]) / 2``, and
    ``[j == lo] = t_{2j+1} - t_{2j+3}``, ``[j == hi] = t_{2j} - t_{2j+2}``.
    """
    w = np.zeros((2 * n + 2, n))
    for j in range(n):
        w[2 * j + 1, j] += 0.5
        w[2 * j + 3, j] -= 0.5
        w[2 * j, j] += 0.5
        w[2 * j + 2, j] -= 0.5
    return w
