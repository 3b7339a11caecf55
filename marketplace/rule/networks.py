"""Sorting and median selection as fixed arithmetic networks (what a zk circuit can compute)."""

from __future__ import annotations

import torch


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


def median_gathers(n: int) -> tuple[list[int], list[int]]:
    """The two gathers of :func:`median_weights` for ``n`` sorted positions: indices into
    ``[t_0 .. t_n, 0]`` (n + 2 values) of ``t_{2j}`` and ``t_{2j+1}`` for ``j = 0..n``, the index
    ``n + 1`` (the appended zero) wherever ``2j`` or ``2j + 1`` exceeds ``n``."""
    even = [min(2 * j, n + 1) for j in range(n + 1)]
    odd = [min(2 * j + 1, n + 1) for j in range(n + 1)]
    return even, odd


def median_weights(t: torch.Tensor, zero: torch.Tensor, gathers: tuple[list[int], list[int]]) -> torch.Tensor:
    """The median-selection weights (1, n) of ``n`` ascending sorted positions, ``gathers`` being
    :func:`median_gathers(n) <median_gathers>`.

    Specification: ``t_m = [count >= m]``; with ``lo = (count-1)//2`` and ``hi = count//2`` the
    weight of sorted position ``j`` is ``([j == lo] + [j == hi]) / 2``, and
    ``[j == lo] = t_{2j+1} - t_{2j+3}``, ``[j == hi] = t_{2j} - t_{2j+2}``; so the weight is
    ``(s_j - s_{j+1}) / 2`` with ``s_j = t_{2j} + t_{2j+1}`` (two gathers and adds, no constant
    matrix). ``t`` (1, n + 1) holds ``t_0 .. t_n`` at scale 0; ``t_m`` for ``m > n`` is 0 (a count of
    ``n`` positions never exceeds ``n``) and is taken from ``zero`` (1, 1), a 0 at scale 0 (a float
    constant 0 would lift the weights to the next scale and force a rescale). The weights of a count
    of 0 are all 0.
    """
    n = t.shape[1] - 1
    even, odd = gathers
    tz = torch.cat([t, zero], dim=1)  # (1, n + 2)
    s = tz[:, even] + tz[:, odd]  # (1, n + 1)
    return (s[:, :n] - s[:, 1:]) * 0.5
